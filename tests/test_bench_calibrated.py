"""``benchmarks/train_liveness.py --run calibrated``: time order of crops, and a tiny smoke run
on synthetic recordings (trained here, and reused from a ``--run lro`` output)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from liveness.data import Dataset
from liveness.synthetic import write_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import train_liveness as bench  # noqa: E402


def test_natural_order_is_frame_order():
    names = ["10.png", "9.png", "100 (10).webp", "100 (9).webp", "real.mp410.png",
             "real.mp49.png", "face_0011.webp", "face_0009.webp"]
    assert sorted(names, key=bench.natural_key) == [
        "9.png", "10.png", "100 (9).webp", "100 (10).webp", "face_0009.webp",
        "face_0011.webp", "real.mp49.png", "real.mp410.png"]


def test_first_frames_takes_the_earliest_k_of_each_class():
    paths = ["r/10.png", "r/2.png", "r/1.png", "f/3.png", "f/20.png", "f/100.png", "r/30.png"]
    labels = np.array([1, 1, 1, 0, 0, 0, 1])
    ds = Dataset(np.zeros((7, 3, 2, 2), np.float32), labels, np.array(["g"] * 7), paths)
    calib, test = bench.first_frames(ds, 2)
    assert sorted(ds.paths[i] for i in calib) == ["f/20.png", "f/3.png", "r/1.png", "r/2.png"]
    assert sorted(ds.paths[i] for i in test) == ["f/100.png", "r/10.png", "r/30.png"]


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    for i in range(4):
        write_dataset(root / f"rec{i}", n_per_class=12, seed=10 + i)
    return root


def test_calibrated_run_trains_or_reuses_lro_models_alike(faces, tmp_path):
    settings = {"epochs": 1, "size": 16, "batch_size": 8}
    trained = bench.run_calibrated(faces, tmp_path / "a", settings, 2, False, [0], [],
                                   ks=(5, 10))
    lro = bench.run_lro_seeds(faces, tmp_path / "lro", settings, 2, [0], False)
    (tmp_path / "lro" / "results.json").write_text(json.dumps({"lro": lro}))
    reused = bench.run_calibrated(faces, tmp_path / "b", settings, 2, False, None,
                                  [tmp_path / "lro"], ks=(5, 10))
    assert reused["recordings"] == trained["recordings"]  # same seed, same fold models
    dense_only = bench.run_calibrated(faces, tmp_path / "c", settings, 2, False, None,
                                      [tmp_path / "lro"], ks=(5,), methods=("dense",))
    for name, row in dense_only["recordings"]["0"].items():
        assert row == {"5": {key: trained["recordings"]["0"][name]["5"][key]
                             for key in ("zero_shot", "n_test", "dense")}}
    assert set(dense_only["summary"]["5"]) == {"recordings", "skipped", "zero_shot", "dense"}
    rows = trained["recordings"]["0"]
    assert sorted(rows) == [f"rec{i}" for i in range(4)]
    for row in rows.values():
        assert list(row) == ["5"]  # 12 crops per class: K = 10 leaves 2 to test, skipped
        assert row["5"]["n_test"] == 14
        assert all(0 <= row["5"][m] <= 1 for m in ("zero_shot", "threshold", "batchnorm",
                                                   "dense"))
    summary = trained["summary"]
    assert list(summary) == ["5"] and summary["5"]["recordings"] == 4
    acer = [rows[n]["5"]["threshold"] for n in sorted(rows)]
    assert summary["5"]["threshold"]["mean_acer"] == pytest.approx(np.mean(acer))
    assert summary["5"]["threshold"]["se"] is None  # one seed: no spread to report


def test_methods_are_checked():
    assert bench.parse_methods("threshold,dense") == ("threshold", "dense")
    for bad in ("dense,fancy", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="choose from threshold"):
            bench.parse_methods(bad)
