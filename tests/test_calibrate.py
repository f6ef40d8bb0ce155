"""``liveness calibrate``: a crafted camera shift it must fix, the three methods, the model file
it writes, and every error (one line, exit 2, the input model untouched)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import scratchnet as sn
from liveness import cli
from liveness import metrics as M
from liveness.calibrate import (
    DEFAULT_METHOD,
    MIN_PER_CLASS,
    calibrate,
    finetune_last_dense,
    refit_batchnorm,
    take_per_class,
)
from liveness.data import load_dataset
from liveness.evaluate import build_report, score_dataset
from liveness.net import LivenessModel, build_livenessnet, load_model
from liveness.preprocess import Preprocessing, network_input
from liveness.train import save_checkpoint

SIZE = 8
LEVELS = {"fake": (0.25, 0.40), "real": (0.55, 0.70)}  # mean brightness range of each class


def brightness_net() -> sn.Sequential:
    """P(real) = sigmoid(20 (mean(x) - 0.9)): higher for brighter crops, but below 0.5 for
    every crop darker than 0.9, so at threshold 0.5 it rejects all of the crafted set (a
    camera whose scores are all shifted down): APCER 0, BPCER 1."""
    d = 3 * SIZE * SIZE
    dense = sn.Dense(d, 2, rng=0)
    dense.params["W"][...] = 0
    dense.params["W"][:, 1] = 20 / d
    dense.params["b"][...] = [0, -20 * 0.9]
    return sn.Sequential([sn.Flatten(), dense, sn.Softmax()])


def crafted_model(path=None) -> LivenessModel:
    model = LivenessModel(brightness_net(), Preprocessing(size=SIZE, normalization="unit"), 0.5)
    if path is not None:
        model.save(path, training={"note": "crafted"})
    return model


def write_crops(root, n_real: int = 8, n_fake: int = 8, seed: int = 0):
    """Flat grey crops with a little noise; each class's brightness spread over its range."""
    rng = np.random.default_rng(seed)
    for label, n in (("real", n_real), ("fake", n_fake)):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i, level in enumerate(np.linspace(*LEVELS[label], n)):
            img = np.clip(level * 255 + rng.normal(0, 3, (SIZE, SIZE, 3)), 0, 255)
            cv2.imwrite(str(root / label / f"{i}.png"), img.astype(np.uint8))
    return root


def test_threshold_calibration_moves_the_threshold_into_the_gap(tmp_path):
    ds = load_dataset(write_crops(tmp_path / "calib"), size=SIZE)
    model = crafted_model()
    scores = score_dataset(model, ds.images)
    assert scores.max() < 0.5  # the shift: every crop, real or fake, is called fake
    assert M.acer(scores, ds.labels, model.threshold) == 0.5

    new, info = calibrate(model, ds.images, ds.labels, "threshold")
    gap = (scores[ds.labels == 0].max(), scores[ds.labels == 1].min())
    assert new.threshold == pytest.approx(sum(gap) / 2)  # the middle of the gap, not its edge
    assert M.acer(score_dataset(new, ds.images), ds.labels, new.threshold) == 0.0
    assert model.threshold == 0.5  # the source model is left as it was
    assert info["source_figures"]["acer"] == 0.5 and info["report"]["acer"] == 0.0
    # and it transfers to other crops of the same camera
    test = load_dataset(write_crops(tmp_path / "test", 5, 5, seed=1), size=SIZE)
    assert M.acer(score_dataset(new, test.images), test.labels, new.threshold) == 0.0
    assert M.acer(score_dataset(model, test.images), test.labels, 0.5) == 0.5


def test_dense_fine_tuning_also_fixes_the_shifted_camera(tmp_path):
    ds = load_dataset(write_crops(tmp_path / "calib"), size=SIZE)
    model = crafted_model()
    new, info = calibrate(model, ds.images, ds.labels, "dense")
    assert info["source_figures"]["acer"] == 0.5 and info["report"]["acer"] == 0.0
    test = load_dataset(write_crops(tmp_path / "test", 5, 5, seed=1), size=SIZE)
    assert M.acer(score_dataset(new, test.images), test.labels, new.threshold) == 0.0
    assert not np.array_equal(new.net.layers[1].params["W"], model.net.layers[1].params["W"])


def test_refit_batchnorm_sets_the_running_statistics_of_the_batch():
    rng = np.random.default_rng(0)
    net = sn.Sequential([sn.BatchNorm2D(3), sn.Dropout(0.5, rng=0), sn.Flatten(),
                         sn.Dense(3 * 4 * 4, 4, rng=0), sn.BatchNorm1D(4), sn.Dense(4, 2, rng=0),
                         sn.Softmax()])
    x = rng.normal(2.0, 3.0, (10, 3, 4, 4)).astype(np.float32)
    assert refit_batchnorm(net, x) == 2
    bn2, bn1 = net.layers[0], net.layers[4]
    np.testing.assert_allclose(bn2.buffers["running_mean"], x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(bn2.buffers["running_var"], x.var(axis=(0, 2, 3), ddof=1),
                               rtol=1e-4)
    # the second one sees the first one's eval-mode output with the new statistics, no dropout
    h = net.layers[3].forward(net.layers[0].forward(x, False).reshape(10, -1), False)
    np.testing.assert_allclose(bn1.buffers["running_mean"], h.mean(axis=0), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(bn1.buffers["running_var"], h.var(axis=0, ddof=1), rtol=1e-4)
    assert bn2.momentum == bn1.momentum == 0.1  # restored


def test_finetune_moves_only_the_last_dense_layer_and_lowers_the_loss():
    rng = np.random.default_rng(1)
    net = build_livenessnet(size=SIZE, seed=0).eval()
    x = rng.normal(0, 1, (12, 3, SIZE, SIZE)).astype(np.float32)
    y = np.array([0, 1] * 6)
    before = net.state_dict()
    loss_before = net.evaluate(x, y)["loss"]
    finetune_last_dense(net, x, y, steps=30, lr=1e-2)
    after = net.state_dict()
    last = max(i for i, layer in enumerate(net.layers) if isinstance(layer, sn.Dense))
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed == {f"{last}.W", f"{last}.b"}
    assert net.evaluate(x, y)["loss"] < loss_before


@pytest.mark.parametrize("method", ["threshold", "batchnorm", "dense"])
def test_every_method_records_what_it_did_and_changes_only_its_part(tmp_path, method):
    ds = load_dataset(write_crops(tmp_path / "calib"), size=SIZE)
    net = build_livenessnet(size=SIZE, seed=0)
    model = LivenessModel(net, Preprocessing(size=SIZE, normalization="unit"), 0.5)
    new, info = calibrate(model, ds.images, ds.labels, method, seed=3)
    assert info["method"] == method and info["seed"] == 3
    assert (info["n_real"], info["n_fake"]) == (8, 8)
    report = build_report(score_dataset(new, ds.images), ds.labels, new.threshold)
    assert report == info["report"]
    same = all(np.array_equal(a, b) for a, b in zip(model.net.state_dict().values(),
                                                   new.net.state_dict().values(), strict=True))
    assert same == (method == "threshold")  # only the other two change the network
    if method == "batchnorm":
        bn = next(layer for layer in new.net.layers if isinstance(layer, sn.BatchNorm2D))
        x = network_input(ds.images, new.preprocessing)
        h = new.net.layers[1].forward(new.net.layers[0].forward(x, False), False)
        np.testing.assert_allclose(bn.buffers["running_mean"], h.mean(axis=(0, 2, 3)),
                                   rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ["batchnorm", "dense"])
def test_patch_mode_models_calibrate_on_their_views(tmp_path, method):
    ds = load_dataset(write_crops(tmp_path / "calib"), size=2 * SIZE)
    pp = Preprocessing(size=SIZE, normalization="unit", face_size=2 * SIZE, grid=2, whole=True)
    model = LivenessModel(build_livenessnet(size=SIZE, seed=0), pp, 0.5)
    new, info = calibrate(model, ds.images, ds.labels, method, seed=0)
    assert new.preprocessing == pp and (info["n_real"], info["n_fake"]) == (8, 8)
    assert len(score_dataset(new, ds.images)) == len(ds.labels)


def test_cli_writes_a_calibrated_model_with_its_record(tmp_path, capsys):
    src = tmp_path / "run" / "model.npz"
    crafted_model(src)
    before = src.read_bytes()
    calib = write_crops(tmp_path / "calib", 12, 9)
    out = tmp_path / "calibrated.npz"
    assert cli.main(["calibrate", str(src), str(calib), "--out", str(out),
                     "--max-per-class", "6", "--seed", "4", "--method", "threshold"]) == 0
    printed = capsys.readouterr().out
    assert "6 real + 6 fake" in printed and "0.5000 ->" in printed and str(out) in printed
    assert src.read_bytes() == before
    meta = sn.load(out).metadata
    assert meta["training"] == {"note": "crafted"}  # the source's metadata is kept
    c = meta["calibration"]
    assert (c["method"], c["n_real"], c["n_fake"], c["seed"]) == ("threshold", 6, 6, 4)
    assert (c["max_per_class"], c["source_threshold"]) == (6, 0.5)
    assert c["source_model"] == str(src) and c["folder"] == str(calib)
    assert c["report"]["threshold"] == meta["threshold"] and c["report"]["acer"] == 0.0
    assert c["report"]["n_real"] == c["report"]["n_fake"] == 6
    assert load_model(out).threshold == meta["threshold"] != 0.5


def test_max_per_class_draw_is_seeded(tmp_path):
    ds = load_dataset(write_crops(tmp_path / "calib", 12, 7), size=SIZE)
    draws = [take_per_class(ds, 5, seed).paths for seed in (0, 0, 1)]
    assert draws[0] == draws[1] != draws[2]
    picked = take_per_class(ds, 5, 0)
    assert (int(picked.labels.sum()), int((picked.labels == 0).sum())) == (5, 5)
    assert picked.paths == sorted(picked.paths, key=ds.paths.index)  # original order kept
    assert take_per_class(ds, None).paths == ds.paths


def test_calibrated_model_loads_in_evaluate_explain_and_demo(tmp_path, capsys):
    src, out = tmp_path / "model.npz", tmp_path / "calibrated.npz"
    LivenessModel(build_livenessnet(size=SIZE), Preprocessing(size=SIZE), 0.5).save(src)
    calib = write_crops(tmp_path / "calib")
    assert cli.main(["calibrate", str(src), str(calib), "--out", str(out),
                     "--method", "batchnorm"]) == 0
    capsys.readouterr()
    threshold = load_model(out).threshold
    assert cli.main(["evaluate", str(out), str(calib), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["threshold"] == threshold
    assert report["acer"] == sn.load(out).metadata["calibration"]["report"]["acer"]
    assert cli.main(["explain", str(out), str(calib / "real" / "0.png"),
                     "--out", str(tmp_path / "explain")]) == 0
    assert list((tmp_path / "explain").glob("*.png"))


def test_demo_calibrates_in_memory_from_a_folder(tmp_path, capsys):
    from tests.test_demo import write_video

    video = write_video(tmp_path / "v.avi", 3)
    src = tmp_path / "model.npz"
    crafted_model(src)
    before = src.read_bytes()
    calib = write_crops(tmp_path / "calib")
    assert cli.main(["demo", "--model", str(src), "--source", str(video), "--no-display",
                     "--calibrate-from", str(calib), "--json", str(tmp_path / "o.json")]) == 0
    err = capsys.readouterr().err
    assert f"calibrated ({DEFAULT_METHOD}) on 8 real + 8 fake crops: threshold 0.5000 ->" in err
    assert src.read_bytes() == before
    assert len(json.loads((tmp_path / "o.json").read_text())["frames"]) == 3


def _single_line_error(capsys, *needles: str) -> None:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.mark.parametrize("case", ["missing dir", "no real", "too few", "one class empty",
                                  "unreadable", "out is input", "max too small", "out is dir",
                                  "bad rule"])
def test_errors_are_one_line_exit_2_and_leave_the_model(tmp_path, capsys, case):
    src = tmp_path / "model.npz"
    crafted_model(src)
    before = src.read_bytes()
    calib = write_crops(tmp_path / "calib")
    out = tmp_path / "new.npz"
    extra: list[str] = []
    needles: tuple[str, ...] = ()
    if case == "missing dir":
        calib, needles = tmp_path / "nowhere", ("nowhere", "not found")
    elif case == "no real":
        for f in (calib / "real").iterdir():
            f.unlink()
        (calib / "real").rmdir()
        needles = ("no real/ folder",)
    elif case == "too few":
        for f in sorted((calib / "fake").iterdir())[MIN_PER_CLASS - 1:]:
            f.unlink()
        needles = (f"{MIN_PER_CLASS - 1} fake crop(s)", f"at least {MIN_PER_CLASS}",
                   "liveness gather")
    elif case == "one class empty":
        for f in (calib / "fake").iterdir():
            f.unlink()
        needles = ("no readable fake images",)
    elif case == "unreadable":
        (calib / "real" / "broken.png").write_bytes(b"not a png")
        needles = ("broken.png", "not an image OpenCV can read")
    elif case == "out is input":
        out, needles = src, ("is the input model",)
    elif case == "max too small":
        extra, needles = ["--max-per-class", "3"], ("--max-per-class 3",)
    elif case == "out is dir":
        out, needles = tmp_path, ("is a folder",)
    elif case == "bad rule":
        extra, needles = ["--threshold-at", "sometimes"], ("--threshold-at",)
    assert cli.main(["calibrate", str(src), str(calib), "--out", str(out), *extra]) == 2
    _single_line_error(capsys, *needles)
    assert src.read_bytes() == before
    assert case == "out is input" or case == "out is dir" or not out.exists()


@pytest.mark.parametrize("command", ["evaluate", "demo", "explain", "calibrate"])
def test_a_checkpoint_given_as_model_says_what_it_is(tmp_path, capsys, command):
    run = tmp_path / "run"
    net = build_livenessnet(size=SIZE)
    save_checkpoint(run / "checkpoint.npz", net, sn.Adam(net.parameters()),
                    {"epoch": 1, "history": {}}, None)
    ckpt = str(run / "checkpoint.npz")
    calib = str(write_crops(tmp_path / "calib"))
    argv = {"evaluate": ["evaluate", ckpt, calib],
            "demo": ["demo", "--model", ckpt, "--source", calib, "--no-display"],
            "explain": ["explain", ckpt, calib, "--out", str(tmp_path / "x")],
            "calibrate": ["calibrate", ckpt, calib, "--out", str(tmp_path / "new.npz")]}
    assert cli.main(argv[command]) == 2
    _single_line_error(capsys, "checkpoint.npz is a training checkpoint, not a model",
                       str(run / "model.npz"), f"liveness train --resume {run}")
