"""``liveness export`` and ``--engine``: a LivenessNet trained on synthetic data, exported to ONNX,
gives the same scores, reports and demo labels on OpenCV DNN and ONNX Runtime as on scratchnet."""

from __future__ import annotations

import json
import re
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

import scratchnet as sn
from liveness import cli
from liveness.data import load_dataset
from liveness.demo import build_detector, run_demo
from liveness.evaluate import score_dataset
from liveness.net import (
    NORMALIZATION_FORMULAS,
    ONNX_METADATA_KEY,
    LivenessModel,
    build_livenessnet,
    load_model,
)
from liveness.preprocess import NORMALIZATIONS, Preprocessing, network_input
from liveness.synthetic import write_dataset, write_videos
from liveness.train import TrainConfig, train

pytestmark = pytest.mark.skipif(find_spec("onnx") is None,
                                reason='onnx not installed (pip install ".[onnx]"): export '
                                       "tests skipped")
ONNX_RUNTIME = pytest.mark.skipif(find_spec("onnxruntime") is None,
                                  reason='onnxruntime not installed (pip install ".[onnx]"): '
                                         "ONNX Runtime runs skipped")
ENGINES = ["opencv", pytest.param("onnxruntime", marks=ONNX_RUNTIME)]
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """``liveness train`` on a small synthetic set, then ``liveness export``; a second
    synthetic set, never trained on, to evaluate."""
    root = tmp_path_factory.mktemp("deploy")
    write_dataset(root / "train", n_per_class=40, seed=2)
    write_dataset(root / "test", n_per_class=20, seed=5)
    train(TrainConfig(dataset=str(root / "train"), out=str(root / "run"), epochs=6,
                      batch_size=8, lr=1e-3, early_stopping=0), verbose=False)
    assert cli.main(["export", str(root / "run" / "model.npz"),
                     "--out", str(root / "model.onnx")]) == 0
    return root


def onnx_props(path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(path).metadata_props}


def test_export_stores_what_a_deployment_needs(run_dir):
    model = load_model(run_dir / "run" / "model.npz")
    props = onnx_props(run_dir / "model.onnx")
    assert json.loads(props[ONNX_METADATA_KEY]) == model.net.metadata  # all of it, training too
    assert (props["input_size"], props["input_shape"], props["channel_order"]) == \
        ("32", "N,3,32,32", "RGB")
    assert props["normalization"] == "standardize" and props["classes"] == "fake,real"
    pp = model.preprocessing  # the default: 3 x 3 patches of the face at 96 px, the whole face
    assert props["views"] == str(pp.views) == "10" and f"{pp.face_size} x" in props["resize"]
    assert props["patches"].startswith("10 inputs per face: 3 x 3 patches of 32 x 32")
    assert float(props["threshold"]) == model.threshold
    assert props["decision"].startswith("real when P(real) >= threshold, P(real) = output[:, 1]")


def test_export_prints_the_check_and_help_shows_onnx_runtime(run_dir, tmp_path, capsys):
    assert cli.main(["export", str(run_dir / "run" / "model.npz"),
                     "--out", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "opencv" in out and "threshold" in out
    assert (tmp_path / "m.onnx").read_bytes() == (run_dir / "model.onnx").read_bytes()
    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    help_text = capsys.readouterr().out
    assert "onnxruntime.InferenceSession(" in help_text and 'session.run(None' in help_text


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("model_file", ["run/model.npz", "model.onnx"])
def test_scores_and_report_are_the_same_on_every_engine(run_dir, engine, model_file, capsys):
    test_set = str(run_dir / "test")
    assert cli.main(["evaluate", str(run_dir / "run" / "model.npz"), test_set, "--json"]) == 0
    reference = json.loads(capsys.readouterr().out)
    assert cli.main(["evaluate", str(run_dir / model_file), test_set, "--json",
                     "--engine", engine]) == 0
    report = json.loads(capsys.readouterr().out)
    eer_threshold = report.pop("eer_threshold")  # a score, so equal to 1e-5 only
    assert eer_threshold == pytest.approx(reference.pop("eer_threshold"), rel=1e-5, abs=1e-5)
    assert report == reference  # ACER, AUC, confusion matrix, per class: all of it
    predicted = np.sum(reference["confusion_matrix"], axis=0)
    assert predicted.min() > 0  # some faces called real, some fake: the decisions are tested
    images = load_dataset(test_set, size=load_model(run_dir / "run" / "model.npz")
                          .preprocessing.load_size).images
    np.testing.assert_allclose(
        score_dataset(load_model(run_dir / model_file, engine), images),
        score_dataset(load_model(run_dir / "run" / "model.npz"), images), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("whole", [False, True])
def test_patch_mode_model_scores_the_same_and_says_how_to_cut_patches(engine, whole, tmp_path):
    pp = Preprocessing(size=16, normalization="standardize", face_size=40, grid=2, whole=whole)
    LivenessModel(build_livenessnet(16, seed=3), pp, 0.5).save(tmp_path / "m.npz")
    assert cli.main(["export", str(tmp_path / "m.npz"), "--out", str(tmp_path / "m.onnx")]) == 0
    props = onnx_props(tmp_path / "m.onnx")
    assert props["input_size"] == "16" and "40 x 40" in props["resize"]
    views = "5 inputs per face" if whole else "4 inputs per face"
    assert props["patches"].startswith(f"{views}: 2 x 2 patches of 16 x 16")
    assert ("whole face shrunk to 16 x 16" in props["patches"]) == whole
    crops = [np.random.default_rng(i).integers(0, 255, (50, 44, 3), dtype=np.uint8)
             for i in range(5)]
    np.testing.assert_allclose(load_model(tmp_path / "m.onnx", engine).score_crops(crops),
                               load_model(tmp_path / "m.npz").score_crops(crops), rtol=1e-5,
                               atol=1e-5)


@ONNX_RUNTIME
def test_readme_snippet_runs_the_file_without_this_project(run_dir, monkeypatch):
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)
    snippet = next(block for block in blocks if "onnxruntime.InferenceSession" in block)
    model = load_model(run_dir / "run" / "model.npz")
    images = load_dataset(run_dir / "test", size=model.preprocessing.load_size).images
    names = {"x": network_input(images, model.preprocessing)}
    monkeypatch.chdir(run_dir)  # the snippet opens "model.onnx"
    exec(snippet, names)
    assert model.preprocessing.whole  # the snippet is written for the default preprocessing
    assert (names["is_real"] == (model.scores(names["x"]) >= model.threshold)).all()


@pytest.mark.parametrize("engine", ENGINES)
def test_demo_labels_the_same_on_every_engine(run_dir, engine, tmp_path):
    video = write_videos(tmp_path, seconds=1, fps=8, seed=1, size=(320, 240))["real"]
    results = {}
    for name, path in (("scratchnet", "run/model.npz"), (engine, "model.onnx")):
        faces: list[tuple[int, str, float]] = []
        summary = run_demo(str(video), load_model(run_dir / path, name),
                           build_detector("haar:1.2", detect_width=0),
                           on_frame=lambda i, _, tracks, out=faces: out.extend(
                               (i, t.label, t.raw) for t in tracks))
        results[name] = faces
        assert summary.frames == 8 and summary.faces > 0
    ours, theirs = results["scratchnet"], results[engine]
    assert [f[:2] for f in theirs] == [f[:2] for f in ours]  # same faces, same labels
    np.testing.assert_allclose([f[2] for f in theirs], [f[2] for f in ours], rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("engine", ENGINES)
def test_demo_calibrates_on_scratchnet_then_runs_on_the_engine(run_dir, engine, tmp_path,
                                                               capsys):
    video = write_videos(tmp_path, seconds=0.5, fps=8, seed=2, size=(320, 240))["real"]
    frames = {}
    for name in ("scratchnet", engine):
        out = tmp_path / f"{name}.json"
        assert cli.main(["demo", "--model", str(run_dir / "run" / "model.npz"), "--source",
                         str(video), "--no-display", "--detect-width", "0", "--calibrate-from",
                         str(run_dir / "test"), "--engine", name, "--json", str(out)]) == 0
        frames[name] = json.loads(out.read_text())["frames"]
    assert "calibrated" in capsys.readouterr().err
    faces = [[f["faces"] for f in frames[name]] for name in ("scratchnet", engine)]
    assert any(faces[0])
    for ours, theirs in zip(*faces, strict=True):
        assert [f["label"] for f in theirs] == [f["label"] for f in ours]
        # scores are written with 4 decimals: equal to 1e-5 may still round 1e-4 apart
        assert np.allclose([f["raw_score"] for f in theirs], [f["raw_score"] for f in ours],
                           rtol=0, atol=1.01e-4)


def test_missing_onnx_runtime_is_one_line_and_exit_2(run_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    assert cli.main(["evaluate", str(run_dir / "model.onnx"), str(run_dir / "test"),
                     "--engine", "onnxruntime"]) == 2
    err = capsys.readouterr().err
    assert 'pip install ".[onnx]"' in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_onnx_package_is_one_line_and_nothing_written(run_dir, tmp_path, monkeypatch,
                                                             capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)
    for argv in (["export", str(run_dir / "run" / "model.npz"), "--out", str(tmp_path / "m.onnx")],
                 ["evaluate", str(run_dir / "model.onnx"), str(run_dir / "test"),
                  "--engine", "opencv"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert 'pip install ".[onnx]"' in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_onnx_files_the_engines_cannot_use_are_one_line_errors(run_dir, tmp_path, capsys):
    foreign, junk = tmp_path / "foreign.onnx", tmp_path / "junk.onnx"
    sn.export_onnx(sn.Sequential([sn.Flatten()]), foreign, (3, 4, 4))
    junk.write_bytes(b"not an onnx file")
    assert cli.main(["export", str(run_dir / "model.onnx"), "--out", str(tmp_path / "o.onnx")]) == 2
    assert "already an ONNX file" in capsys.readouterr().err
    cases = [(run_dir / "model.onnx", "scratchnet", "--engine onnxruntime or --engine opencv"),
             (foreign, "opencv", "without liveness metadata"),
             (junk, "opencv", "not a readable ONNX file")]
    for path, engine, message in cases:
        assert cli.main(["evaluate", str(path), str(run_dir / "test"), "--engine", engine]) == 2
        err = capsys.readouterr().err
        assert message in err and str(path) in err and err.count("\n") == 1


def test_every_normalization_is_described_for_deployments():
    assert set(NORMALIZATION_FORMULAS) == set(NORMALIZATIONS)


def test_export_refuses_to_write_a_file_an_engine_disagrees_with(run_dir, tmp_path, monkeypatch,
                                                                 capsys):
    from liveness.engines import OpenCVEngine

    honest = OpenCVEngine.predict
    monkeypatch.setattr(OpenCVEngine, "predict", lambda self, x: honest(self, x) + 2e-5)
    assert cli.main(["export", str(run_dir / "run" / "model.npz"),
                     "--out", str(tmp_path / "m.onnx")]) == 2
    assert "2.0e-05 on opencv" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
