"""liveness explain: saliency from scratchnet's backward pass, the picture, the command's errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import scratchnet as sn
from liveness import cli
from liveness.explain import (
    border_share,
    explain_image,
    feature_stages,
    find_images,
    forward_backward,
    on_the_face,
    render,
    save_png,
)
from liveness.net import REAL, LivenessModel, build_livenessnet
from liveness.preprocess import Preprocessing, grid_patches, network_input, preprocess, shrink
from scratchnet.gradcheck import numerical_gradient


def small_net() -> sn.Sequential:
    """Every kind of layer LivenessNet has, in float64 so finite differences are exact to ~1e-9.

    Batch-norm running statistics and affine parameters are set away from their defaults, so
    the eval-mode formula is really exercised.
    """
    rng = np.random.default_rng(1)
    f64 = {"dtype": np.float64}
    net = sn.Sequential([
        sn.Conv2D(3, 4, 3, padding="same", rng=rng, **f64), sn.ReLU(), sn.BatchNorm2D(4, **f64),
        sn.MaxPool2D(2), sn.Dropout(0.25, rng=rng),
        sn.Conv2D(4, 6, 3, padding="same", rng=rng, **f64), sn.ReLU(), sn.AvgPool2D(2),
        sn.Flatten(), sn.Dense(24, 5, rng=rng, **f64), sn.ReLU(), sn.BatchNorm1D(5, **f64),
        sn.Dropout(0.5, rng=rng), sn.Dense(5, 2, rng=rng, **f64), sn.Softmax(),
    ])
    for layer in net.layers:
        if isinstance(layer, sn.BatchNorm2D | sn.BatchNorm1D):
            c = layer.params["gamma"].shape
            layer.params["gamma"][...] = rng.uniform(0.5, 2.0, c)
            layer.params["beta"][...] = rng.normal(0, 0.5, c)
            layer.buffers["running_mean"][...] = rng.normal(0, 0.5, c)
            layer.buffers["running_var"][...] = rng.uniform(0.3, 3.0, c)
    return net


def face(size: int = 72, shade: int = 180) -> np.ndarray:
    """A drawn face (BGR uint8): skin ellipse, eyes, mouth on a textured background."""
    rng = np.random.default_rng(shade)
    img = rng.integers(40, 90, (size, size, 3), dtype=np.uint8)
    c = size // 2
    cv2.ellipse(img, (c, c), (size // 3, size * 2 // 5), 0, 0, 360, (shade - 60, shade - 20, shade),
                -1)
    for dx in (-size // 8, size // 8):
        cv2.circle(img, (c + dx, c - size // 10), size // 20, (30, 30, 30), -1)
    cv2.ellipse(img, (c, c + size // 6), (size // 8, size // 20), 0, 0, 180, (40, 40, 150), 2)
    return img


def test_saliency_is_the_gradient_of_p_real():
    """The backward pass through every layer (Softmax included) matches centred differences."""
    net = small_net()
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (1, 3, 8, 8))
    outputs, dx = forward_backward(net, x, REAL)
    pixels = tuple(rng.integers(0, n, 12) for n in x.shape)  # 12 random input pixels

    def p_real(values: np.ndarray) -> float:
        moved = x.copy()
        moved[pixels] = values
        return float(forward_backward(net, moved, REAL)[0][-1][0, REAL])

    numeric = numerical_gradient(p_real, x[pixels].copy(), h=1e-5)
    assert np.abs(numeric).min() > 1e-5  # every checked pixel really matters
    np.testing.assert_allclose(dx[pixels], numeric, rtol=1e-6, atol=1e-10)
    assert np.allclose(outputs[-1], net.predict(x))


def test_patch_mode_saliency_is_the_gradient_of_the_face_score():
    """Overlapping patches plus the whole-face view, put back on the face, against centred
    differences of the face's score (mean of scales) with respect to the face's pixels."""
    pp = Preprocessing(size=8, normalization="unit", face_size=16, grid=3, whole=True)
    model = LivenessModel(small_net(), pp)
    rng = np.random.default_rng(3)
    f = rng.uniform(0, 1, (3, 16, 16))

    def views(face: np.ndarray) -> np.ndarray:  # network_input's views, kept in float64
        return np.concatenate([grid_patches(face[None], 8, 3), shrink(face[None], 8)])

    np.testing.assert_allclose(views(f), network_input(f[None], pp), atol=1e-6)
    x = views(f)
    _, dx = forward_backward(model.net, x, REAL)
    shown, saliency = on_the_face(x, dx, pp)
    np.testing.assert_allclose(shown, f, atol=1e-6)  # unit input: the patches are the face
    pixels = tuple(rng.integers(0, n, 16) for n in f.shape)

    def score(values: np.ndarray) -> float:
        moved = f.copy()
        moved[pixels] = values
        return float(model.scores(views(moved))[0])

    numeric = numerical_gradient(score, f[pixels].copy(), h=1e-5)
    np.testing.assert_allclose(saliency[pixels], numeric, rtol=1e-5, atol=1e-9)


def test_explain_image_in_patch_mode_shows_the_face_and_its_score():
    pp = Preprocessing(normalization="standardize", face_size=96, grid=3)
    model = LivenessModel(build_livenessnet(seed=0), pp, threshold=0.4)
    expl = explain_image(model, face())
    assert expl.input.shape == expl.saliency.shape == (3, 96, 96)
    assert expl.score == pytest.approx(float(model.score_crops([face()])[0]), rel=1e-5)
    assert [m.shape for _, m in expl.feature_maps][0] == (16, 32, 32)


def test_explain_image_on_livenessnet(tmp_path: Path):
    pp = Preprocessing(normalization="standardize")
    model = LivenessModel(build_livenessnet(seed=0), pp, threshold=0.4)
    img = face()
    expl = explain_image(model, img)

    assert np.array_equal(expl.input, preprocess([img], pp)[0])  # the model's own preprocessing

    assert expl.input.shape == (3, 32, 32)
    assert expl.filters.shape == (16, 3, 3, 3)
    assert expl.saliency.shape == (3, 32, 32) and np.isfinite(expl.saliency).all()
    assert np.abs(expl.saliency).max() > 0
    assert expl.score == pytest.approx(float(model.score_crops([img])[0]), rel=1e-5)
    assert expl.decision == ("real" if expl.score >= 0.4 else "fake")
    assert expl.image_rgb.shape == img.shape and (expl.image_rgb == img[:, :, ::-1]).all()
    shapes = [m.shape for _, m in expl.feature_maps]
    assert shapes == [(16, 32, 32), (16, 32, 32), (16, 16, 16),
                      (32, 16, 16), (32, 16, 16), (32, 8, 8)]
    labels = [label for label, _ in expl.feature_maps]
    assert labels[0] == "conv block 1 (Conv2D > ReLU > BatchNorm2D)"
    assert labels[2] == "pooling 1 (MaxPool2D)"

    path = tmp_path / "out" / "face.png"
    save_png(render(expl, title="face.png"), path)
    picture = cv2.imread(str(path))
    assert picture is not None and picture.shape[1] > 800 and picture.shape[0] > 600
    assert [p.name for p in path.parent.iterdir()] == ["face.png"]  # no temporary file left


def test_feature_stages_of_the_plain_net():
    net = build_livenessnet(plain=True)
    names = [type(layer).__name__ for layer in net.layers]
    stages = feature_stages(net)
    assert [i for i, _ in stages] == [1, 3, 4, 6, 8, 9]
    assert all(names[i] in ("ReLU", "MaxPool2D") for i, _ in stages)


def test_border_share():
    assert border_share(np.ones((32, 32))) == pytest.approx(1 - (24 / 32) ** 2)
    centre = np.zeros((32, 32))
    centre[4:28, 4:28] = 1
    assert border_share(centre) == 0
    centre[0, 0] = centre.sum()  # as much on one border pixel as in the whole centre
    assert border_share(centre) == pytest.approx(0.5)


def test_output_names_are_unique_and_readable(tmp_path: Path):
    for sub in ("a/real", "b/real", "c"):
        (tmp_path / sub).mkdir(parents=True)
    files = [tmp_path / "a/real/4.png", tmp_path / "b/real/4.png", tmp_path / "c/face.jpg"]
    for f in files:
        f.write_bytes(b"")
    (tmp_path / "c/notes.txt").write_text("not an image")
    assert [name for _, name in find_images([str(f) for f in files])] == [
        "a_real_4", "b_real_4", "face"]
    assert find_images([str(tmp_path / "c")]) == [(tmp_path / "c/face.jpg", "face")]


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.npz"
    LivenessModel(build_livenessnet(plain=True, seed=3), Preprocessing(), 0.5).save(path)
    return path


def test_command_on_a_folder(tmp_path: Path, model_file: Path, capsys):
    faces = tmp_path / "faces"
    for label, shade in (("real", 190), ("fake", 120)):
        (faces / label).mkdir(parents=True)
        cv2.imwrite(str(faces / label / "0.png"), face(shade=shade))
    out = tmp_path / "explained"
    assert cli.main(["explain", str(model_file), str(faces), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["fake_0.png", "mean_saliency.png",
                                                     "real_0.png"]
    printed = capsys.readouterr().out
    assert printed.count("P(real)=") == 2 and "mean saliency per folder" in printed


@pytest.mark.parametrize("case", ["no model", "no image", "empty folder", "not an image",
                                  "out is a file"])
def test_command_errors_name_the_file(tmp_path: Path, model_file: Path, capsys, case: str):
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), face())
    out = tmp_path / "out"
    model, target, culprit = model_file, image, None
    if case == "no model":
        model = culprit = tmp_path / "missing.npz"
    elif case == "no image":
        target = culprit = tmp_path / "missing.png"
    elif case == "empty folder":
        target = culprit = tmp_path / "empty"
        target.mkdir()
    elif case == "not an image":
        target = culprit = tmp_path / "notes.png"
        target.write_text("not a png")
    else:
        out = culprit = tmp_path / "taken"
        out.write_text("")
    assert cli.main(["explain", str(model), str(target), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("liveness explain: error:") and str(culprit) in err
    assert len(err.strip().splitlines()) == 1
