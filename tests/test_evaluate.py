"""``liveness evaluate``: report figures, files and errors (tiny model, synthetic data)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liveness import cli
from liveness.data import read_image
from liveness.evaluate import build_report, format_report
from liveness.net import LivenessModel, build_livenessnet
from liveness.preprocess import Preprocessing
from liveness.synthetic import write_dataset

KEYS = {"accuracy", "apcer", "bpcer", "acer", "auc", "eer", "threshold", "n_real", "n_fake",
        "per_class", "macro_avg", "weighted_avg", "confusion_matrix", "apcer_at_bpcer_1pct",
        "apcer_at_bpcer_5pct"}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth")
    write_dataset(path, n_per_class=12, seed=1)
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """An untrained LivenessNet on 16x16 standardised input, threshold 0.5."""
    path = tmp_path_factory.mktemp("model") / "model.npz"
    net = build_livenessnet(size=16, seed=3)
    LivenessModel(net, Preprocessing(size=16, normalization="standardize"), 0.5).save(path)
    return path


def test_report_figures_and_text_for_a_hand_table():
    scores = np.array([0.9, 0.7, 0.7, 0.4, 0.8, 0.7, 0.3, 0.2])
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    groups = np.array(["a", "a", "b", "b", "a", "a", "b", "b"])
    r = build_report(scores, labels, 0.5, groups)
    assert KEYS <= r.keys()
    assert (r["apcer"], r["bpcer"], r["acer"], r["accuracy"]) == (0.5, 0.25, 0.375, 0.625)
    assert (r["eer"], r["eer_threshold"], r["n_real"], r["n_fake"]) == (0.375, 0.7, 4, 4)
    assert r["confusion_matrix"] == [[2, 2], [1, 3]]
    # group a: reals .9 .7, fakes .8 .7 -> both fakes accepted, no real rejected
    assert (r["per_group"]["a"]["apcer"], r["per_group"]["a"]["bpcer"]) == (1.0, 0.0)
    assert (r["per_group"]["b"]["apcer"], r["per_group"]["b"]["bpcer"]) == (0.0, 0.5)
    text = format_report(r)
    for needle in ("precision    recall  f1-score   support", "weighted avg", "APCER  50.0%",
                   "BPCER  25.0%", "ACER   37.5%", "EER  37.5%", "(2 of 4)"):
        assert needle in text


def test_one_class_report_is_valid_json_with_nulls():
    r = build_report(np.array([0.9, 0.1]), np.array([1, 1]), 0.5)
    assert r["apcer"] is None and r["auc"] is None and r["bpcer"] == 0.5
    json.loads(json.dumps(r, allow_nan=False))
    assert "n/a" in format_report(r)


def test_evaluate_json_and_files(synth_dir, model_path, tmp_path, capsys):
    out = tmp_path / "eval"
    assert cli.main(["evaluate", str(model_path), str(synth_dir), "--json",
                     "--out", str(out)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert KEYS <= r.keys() and (r["n_real"], r["n_fake"]) == (12, 12)
    assert r["threshold"] == 0.5
    for name in ("report.json", "report.txt", "confusion.png", "roc.png"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "report.json").read_text()) == r
    # The same decisions through the demo's path (BGR crops -> preprocess -> scores).
    from liveness.net import load_model
    model = load_model(model_path)
    files = sorted((synth_dir / "real").glob("*.png")) + sorted((synth_dir / "fake").glob("*.png"))
    scores = model.score_crops([read_image(f) for f in files])
    labels = np.r_[np.ones(12), np.zeros(12)]
    assert r["accuracy"] == pytest.approx(np.mean((scores >= 0.5) == labels))


def test_threshold_override_and_text_output(synth_dir, model_path, capsys):
    assert cli.main(["evaluate", str(model_path), str(synth_dir), "--threshold", "0"]) == 0
    text = capsys.readouterr().out
    assert "ISO/IEC 30107-3 at threshold 0.0000" in text
    assert "APCER 100.0%" in text and "BPCER   0.0%" in text


@pytest.mark.parametrize("which", ["model", "dataset"])
def test_missing_inputs_exit_2_with_one_line(which, synth_dir, model_path, tmp_path, capsys):
    argv = [str(tmp_path / "nope.npz"), str(synth_dir)] if which == "model" \
        else [str(model_path), str(tmp_path / "no_such_folder")]
    assert cli.main(["evaluate", *argv]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err and err.count("\n") == 1


def test_presentation_level_figures_for_a_hand_table():
    scores = np.array([0.9, 0.7, 0.3, 0.4, 0.2, 0.8, 0.6, 0.1, 0.3])
    labels = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0])
    keys = np.array(["a/real"] * 3 + ["b/real"] * 2 + ["a/fake"] * 2 + ["b/fake"] * 2)
    r = build_report(scores, labels, 0.5, presentations=keys)
    # frames: reals .3 .4 .2 rejected (3 of 5), fakes .8 .6 accepted (2 of 4)
    assert (r["bpcer"], r["apcer"]) == (0.6, 0.5)
    # presentations (mean of frames): a/real .633 real, b/real .3 fake (wrong),
    # a/fake .7 real (wrong), b/fake .2 fake
    p = r["per_presentation"]
    assert (p["apcer"], p["bpcer"], p["acer"], p["n_real"], p["n_fake"]) == (0.5, 0.5, 0.5, 2, 2)
    rows = {row["presentation"]: row for row in p["presentations"]}
    assert rows["a/real"]["score"] == pytest.approx(1.9 / 3) and rows["a/real"]["frames"] == 3
    assert [rows[k]["decision"] for k in ("a/real", "b/real", "a/fake", "b/fake")] == \
        ["real", "fake", "real", "fake"]
    text = format_report(r)
    assert "per presentation (mean score of its frames)" in text
    assert "attacks accepted (1 of 2)" in text and "bona fide rejected (1 of 2)" in text
    assert "b/real       2   0.300  fake  (wrong)" in text
    assert "per_presentation" not in build_report(scores, labels, 0.5)  # frames by default


def test_per_recording_uses_the_gather_manifest_sources(tmp_path, model_path, capsys):
    root = tmp_path / "data"
    for group in ("g1", "g2"):
        write_dataset(root / group, n_per_class=4, seed=5)
    real = sorted(p.name for p in (root / "g1" / "real").iterdir())
    with open(root / "g1" / "manifest.csv", "w") as f:
        f.write("crop,label,source,frame\n")
        for i, name in enumerate(real):
            f.write(f"real/{name},real,/videos/{'me' if i < 2 else 'me_again'}.mp4,{i}\n")
    assert cli.main(["evaluate", str(model_path), str(root), "--per-recording", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["per_presentation"]["presentations"]
    frames = {row["presentation"]: row["frames"] for row in rows}
    assert frames == {"g1/real/me.mp4": 2, "g1/real/me_again.mp4": 2, "g1/fake": 4,
                      "g2/real": 4, "g2/fake": 4}
