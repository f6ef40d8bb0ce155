"""``liveness train``: a tiny end-to-end run on synthetic data, refusal, resume, NaN."""

from __future__ import annotations

import json

import numpy as np
import pytest

import scratchnet as sn
from liveness import cli
from liveness.errors import UserError
from liveness.net import load_model
from liveness.train import TrainConfig, balanced_order, load_checkpoint, resume_config, train

OUTPUTS = ("model.npz", "history.json", "curves.png", "report.json", "report.txt",
           "confusion.png", "roc.png", "checkpoint.npz", "config.json")


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    from liveness.synthetic import write_dataset
    path = tmp_path_factory.mktemp("synth")
    write_dataset(path, n_per_class=16, seed=2)
    return path


def tiny(synth_dir, out, **kw) -> TrainConfig:
    settings = {"epochs": 2, "batch_size": 8, "size": 16, "lr": 1e-3, **kw}
    return TrainConfig(dataset=str(synth_dir), out=str(out), **settings)


def test_cli_run_writes_every_output_and_a_usable_model(synth_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", str(synth_dir), "--out", str(out), "--epochs", "2",
                     "--batch-size", "8", "--size", "16", "--margin", "0.1",
                     "--threshold-at", "bpcer=0.05"]) == 0
    printed = capsys.readouterr().out
    assert "Conv2D" in printed and "epoch   2/2" in printed  # summary, one line per epoch
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    history = json.loads((out / "history.json").read_text())
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "val_auc"} <= history.keys()
    assert len(history["loss"]) == len(history["val_loss"]) == 2
    model = load_model(out / "model.npz")
    report = json.loads((out / "report.json").read_text())
    assert model.threshold == report["threshold"]
    assert model.preprocessing.margin == 0.1 and model.preprocessing.size == 16
    assert model.preprocessing.normalization == "standardize"
    # the report is of the validation split: a quarter of 16 + 16, and its BPCER keeps the budget
    assert (report["n_real"], report["n_fake"]) == (4, 4) and report["bpcer"] <= 0.05


def test_refuses_to_overwrite_a_run_without_force(synth_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.npz").write_bytes(b"precious")
    assert cli.main(["train", str(synth_dir), "--out", str(out), "--epochs", "1"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "model.npz").read_bytes() == b"precious"
    train(tiny(synth_dir, out, epochs=1), force=True, verbose=False)
    assert load_model(out / "model.npz").net is not None


class _InterruptAt(sn.Callback):
    """Ctrl-C in the middle of the given epoch (fit is called once per epoch)."""

    def __init__(self, epoch: int) -> None:
        self.epoch, self.calls = epoch, 0

    def on_epoch_begin(self, epoch: int) -> None:
        self.calls += 1

    def on_batch_end(self, batch: int, logs: dict) -> None:
        if self.calls == self.epoch and batch == 1:
            raise KeyboardInterrupt


def test_interrupt_leaves_a_checkpoint_and_resume_continues(synth_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(tiny(synth_dir, out, epochs=3), verbose=False, callbacks=[_InterruptAt(2)])
    parts, state = load_checkpoint(out / "checkpoint.npz")
    assert state["epoch"] == 1 and len(state["history"]["loss"]) == 1
    assert parts["optimizer"] and not (out / "model.npz").exists()
    first_loss = state["history"]["loss"][0]
    train(resume_config(out), resume=True, verbose=False)
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 3 and history["loss"][0] == first_loss
    _, state = load_checkpoint(out / "checkpoint.npz")
    assert state["epoch"] == 3
    assert cli.main(["train", "--resume", str(tmp_path / "nothing")]) == 2


@pytest.mark.filterwarnings("ignore:.*encountered in matmul:RuntimeWarning")
def test_nan_loss_is_a_clear_error(synth_dir, tmp_path, capsys):
    with pytest.raises(UserError, match="diverged.*--lr"):
        train(tiny(synth_dir, tmp_path / "run", lr=1e30, plain=True), verbose=False)


def test_bad_settings_fail_before_training(synth_dir, tmp_path, capsys):
    assert cli.main(["train", str(synth_dir), "--out", str(tmp_path / "r"),
                     "--threshold-at", "median"]) == 2
    assert "--threshold-at" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_early_stopping_keeps_the_best_epoch(synth_dir, tmp_path):
    out = tmp_path / "run"
    model = train(tiny(synth_dir, out, epochs=3, early_stopping=1, monitor="val_auc"),
                  verbose=False)
    parts, state = load_checkpoint(out / "checkpoint.npz")
    auc = json.loads((out / "history.json").read_text())["val_auc"]
    assert state["best_epoch"] == 1 + max(range(len(auc)), key=lambda i: (auc[i], -i))
    assert state["stopped"] == (len(auc) == state["best_epoch"] + 1)
    saved = model.net.state_dict()
    assert all((saved[k] == v).all() for k, v in parts["best"].items())


def test_balanced_order_per_group_and_per_class():
    labels = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    groups = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])
    rng = np.random.default_rng(0)
    by_group = balanced_order(labels, groups, "group", rng)
    counts = {(g, c): int(((groups[by_group] == g) & (labels[by_group] == c)).sum())
              for g in "ab" for c in (0, 1)}
    assert counts == {("a", 0): 3, ("a", 1): 3, ("b", 0): 3, ("b", 1): 3}
    assert set(range(8)) <= set(by_group.tolist())  # nothing dropped
    by_class = balanced_order(labels, groups, "class", rng)
    assert np.bincount(labels[by_class]).tolist() == [4, 4]
    assert balanced_order(labels, groups, "none", rng).tolist() == list(range(8))


def test_separate_validation_folder_and_split_by_recording(synth_dir, tmp_path):
    train(tiny(synth_dir, tmp_path / "val", epochs=1, val=str(synth_dir)), verbose=False)
    report = json.loads((tmp_path / "val" / "report.json").read_text())
    assert (report["n_real"], report["n_fake"]) == (16, 16)  # the whole --val folder
    parent = tmp_path / "recordings"
    parent.mkdir()
    for name in ("alice", "bob"):
        (parent / name).symlink_to(synth_dir, target_is_directory=True)
    train(tiny(parent, tmp_path / "group", epochs=1, val_groups=("bob",)), verbose=False)
    report = json.loads((tmp_path / "group" / "report.json").read_text())
    assert (report["n_real"], report["n_fake"]) == (16, 16)  # all of bob, none of alice


def test_patch_mode_trains_and_scores_each_face_by_its_mean_patch(synth_dir, tmp_path):
    model = train(tiny(synth_dir, tmp_path / "run", size=8, face_size=16, grid=2, whole=False),
                  verbose=False)
    assert (model.preprocessing.face_size, model.preprocessing.grid) == (16, 2)
    loaded = load_model(tmp_path / "run" / "model.npz")
    assert loaded.preprocessing == model.preprocessing
    x = np.random.default_rng(0).normal(size=(12, 3, 8, 8)).astype(np.float32)  # 3 faces
    per_patch = loaded.net.predict(x)[:, 1].reshape(3, 4)
    np.testing.assert_allclose(loaded.scores(x), per_patch.mean(axis=1), rtol=1e-6)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["n_real"] + report["n_fake"] == 8  # faces, not patches, are counted


def test_whole_face_view_counts_half_of_a_face_score(synth_dir, tmp_path):
    model = train(tiny(synth_dir, tmp_path / "run", size=8, face_size=16, grid=2, whole=True,
                       epochs=1), verbose=False)
    x = np.random.default_rng(0).normal(size=(10, 3, 8, 8)).astype(np.float32)  # 2 faces
    p = model.net.predict(x)[:, 1].reshape(2, 5)
    np.testing.assert_allclose(model.scores(x), (p[:, :4].mean(axis=1) + p[:, 4]) / 2,
                               rtol=1e-6)
