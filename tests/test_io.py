"""save/load: one .npz round trip, and truncated, foreign or tampered files refused by name."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import scratchnet as sn
import scratchnet.io
from scratchnet.io import FORMAT, _digest


def small_cnn() -> sn.Sequential:
    rng = np.random.default_rng(0)
    return sn.Sequential([
        sn.Conv2D(2, 3, 3, padding=1, rng=rng), sn.ELU(0.5), sn.BatchNorm2D(3),
        sn.AvgPool2D(2), sn.Dropout(0.2, rng=rng), sn.Conv2D(3, 4, 2, stride=1, rng=rng),
        sn.ReLU(), sn.MaxPool2D(2, stride=1), sn.Flatten(), sn.Dense(4, 5, init="glorot", rng=rng),
        sn.Sigmoid(), sn.BatchNorm1D(5), sn.Dense(5, 2, rng=rng), sn.Softmax()])


@pytest.fixture
def saved(tmp_path) -> tuple[sn.Sequential, Path]:
    net = small_cnn()
    x = np.random.default_rng(1).standard_normal((6, 2, 6, 6)).astype(np.float32)
    net.forward(x, training=True)  # running statistics away from their defaults
    path = tmp_path / "model.npz"
    sn.save(net, path, metadata={"threshold": 0.3, "classes": ["fake", "real"]})
    return net, path


def test_round_trip_rebuilds_the_same_model(saved):
    net, path = saved
    loaded = sn.load(path)
    assert [repr(a) for a in loaded.layers] == [repr(b) for b in net.layers]
    assert loaded.metadata == {"threshold": 0.3, "classes": ["fake", "real"]}
    assert not loaded.training  # ready for inference
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v)
        assert loaded.state_dict()[k].dtype == v.dtype
    x = np.random.default_rng(2).standard_normal((3, 2, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
    assert [p.name for p in path.parent.iterdir()] == ["model.npz"]  # no temporary left behind


def test_metadata_defaults_to_the_model_metadata_and_survives_a_resave(saved, tmp_path):
    loaded = sn.load(saved[1])
    sn.save(loaded, tmp_path / "again.npz")
    assert sn.load(tmp_path / "again.npz").metadata["threshold"] == 0.3


def test_the_file_is_plain_arrays_no_pickle(saved):
    with np.load(saved[1], allow_pickle=False) as npz:
        assert str(npz["__format__"]) == FORMAT
        architecture = json.loads(str(npz["__architecture__"]))
        assert architecture[0] == {"class": "Conv2D", "config": {
            "in_channels": 2, "out_channels": 3, "kernel_size": [3, 3], "stride": [1, 1],
            "padding": 1, "dtype": "float32"}}
        assert "param/2.running_var" in npz.files


def rewrite(path: Path, change) -> None:
    """Rewrite the .npz at ``path`` with ``change(arrays)`` applied (an edit by hand)."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    np.savez(path, **arrays)


def reseal(arrays: dict) -> None:
    """Recompute the checksum, as a deliberate forger would."""
    arrays.pop("__digest__")
    arrays["__digest__"] = np.array(_digest(arrays))


def edit_architecture(arrays, **entry) -> None:
    architecture = json.loads(str(arrays["__architecture__"]))
    architecture[0] |= entry
    arrays["__architecture__"] = np.array(json.dumps(architecture))


@pytest.mark.parametrize(("change", "match"), [
    (lambda a: a["param/0.W"].__setitem__((0, 0, 0, 0), 1.0), "modified or corrupted"),
    (lambda a: a.update(__metadata__=np.array('{"threshold": 0.0}')), "modified or corrupted"),
    (lambda a: a.pop("__digest__"), "modified or corrupted"),
    (lambda a: (edit_architecture(a, **{"class": "os.system"}), reseal(a)),
     "unknown layer class 'os.system'"),
    (lambda a: (edit_architecture(a, config={"evil": 1}), reseal(a)), "unexpected keyword"),
    (lambda a: (a.pop("param/4.W", None), a.pop("param/0.b"), reseal(a)), "missing keys"),
    (lambda a: (a.update({"param/0.W": np.zeros((1, 1))}), reseal(a)), "should have shape"),
    (lambda a: (a.update(__architecture__=np.array("[{")), reseal(a)), "invalid"),
    (lambda a: (a.update(__metadata__=np.array("[1]")), reseal(a)), "not a JSON object"),
])
def test_tampered_files_are_refused(saved, change, match):
    path = saved[1]
    rewrite(path, change)
    with pytest.raises(ValueError, match=match) as err:
        sn.load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("keep", [0.0, 0.3, 0.9, 0.999])
def test_truncated_files_are_refused(saved, keep):
    path = saved[1]
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ValueError, match="not a readable scratchnet model file") as err:
        sn.load(path)
    assert str(path) in str(err.value)


def test_foreign_files_are_refused(tmp_path):
    cases = {"weights.npz": lambda p: np.savez(p, W=np.ones(3)),
             "array.npy": lambda p: np.save(p, np.ones(3)),
             "notes.txt": lambda p: p.write_text("hello"),
             "archive.npz": lambda p: zipfile.ZipFile(p, "w").writestr("a.txt", "x")}
    for name, write in cases.items():
        write(tmp_path / name)
        with pytest.raises(ValueError, match=f"{name}: not a") as err:
            sn.load(tmp_path / name)
        assert "\n" not in str(err.value)


def test_a_pickle_inside_is_never_unpickled(tmp_path):
    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("unpickled!",))

    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as z, z.open("__format__.npy", "w") as f:
        np.lib.format.write_array(f, np.array([Boom()], dtype=object), allow_pickle=True)
    assert b"unpickled!" in path.read_bytes()  # the payload is really in there
    with pytest.raises(ValueError, match="evil.npz: not a readable scratchnet model file"):
        sn.load(path)


def test_custom_layers_need_registering(tmp_path, monkeypatch):
    monkeypatch.setattr(scratchnet.io, "LAYERS", dict(scratchnet.io.LAYERS))  # keep it local

    class Double(sn.Layer):
        def forward(self, x, training=False):
            return 2 * x

        def backward(self, dout):
            return 2 * dout

    net = sn.Sequential([sn.Dense(2, 2, rng=0), Double()])
    with pytest.raises(ValueError, match="Double is not registered"):
        sn.save(net, tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()
    sn.register_layer(Double)
    sn.save(net, tmp_path / "m.npz")
    x = np.ones((1, 2), np.float32)
    np.testing.assert_array_equal(sn.load(tmp_path / "m.npz").forward(x), net.forward(x))
