"""LivenessNet's architecture and the model file that carries preprocessing and threshold."""

from __future__ import annotations

import numpy as np
import pytest

import scratchnet as sn
from liveness.errors import UserError
from liveness.net import LivenessModel, build_livenessnet, load_model
from liveness.preprocess import Preprocessing


def test_architecture_is_the_papers():
    net = build_livenessnet(32)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds.count("Conv2D") == 4 and kinds.count("MaxPool2D") == 2
    assert kinds.count("Dense") == 2 and kinds[-1] == "Softmax"
    assert kinds.count("BatchNorm2D") == 4 and kinds.count("BatchNorm1D") == 1
    assert kinds.count("Dropout") == 3
    # conv 3*16*9+16, 16*16*9+16, 16*32*9+32, 32*32*9+32; dense 2048*64+64, 64*2+2;
    # batch norm gamma and beta: 2 * (16 + 16 + 32 + 32 + 64)
    expected = 448 + 2320 + 4640 + 9248 + 131136 + 130 + 320
    assert sum(p.data.size for p in net.parameters()) == expected
    probs = net.predict(np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32))
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)


def test_plain_variant_has_no_batch_norm_or_dropout():
    kinds = {type(layer).__name__ for layer in build_livenessnet(16, plain=True).layers}
    assert not kinds & {"BatchNorm2D", "BatchNorm1D", "Dropout"}


def test_model_file_round_trip_keeps_threshold_preprocessing_and_scores(tmp_path):
    pp = Preprocessing(size=16, margin=0.2, normalization="standardize")
    model = LivenessModel(build_livenessnet(16, seed=5), pp, threshold=0.37)
    model.save(tmp_path / "m.npz", note="hello")
    back = load_model(tmp_path / "m.npz")
    assert back.preprocessing == pp and back.threshold == 0.37
    assert back.net.metadata["note"] == "hello"
    crops = [np.random.default_rng(i).integers(0, 255, (40, 36, 3), dtype=np.uint8)
             for i in range(3)]
    np.testing.assert_allclose(back.score_crops(crops), model.score_crops(crops), rtol=1e-6)


def test_load_model_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_model(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    with pytest.raises(UserError, match="junk.npz"):
        load_model(tmp_path / "junk.npz")
    sn.save(sn.Sequential([sn.Flatten()]), tmp_path / "foreign.npz")
    with pytest.raises(UserError, match="not a LivenessNet"):
        load_model(tmp_path / "foreign.npz")
