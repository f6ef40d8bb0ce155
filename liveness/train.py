"""``liveness train DATASET --out RUN_DIR``: fit LivenessNet, set its threshold, report.

The loop, one epoch at a time, so that every epoch ends in a usable checkpoint::

    x_train, x_val  <- load_dataset -> split (by recording when there are several)
    for epoch in start..epochs:
        net.fit(x_train, epochs=1, transform=augment+normalise)   progress bar
        val_loss, val_accuracy, val_auc, val_eer                  one line per epoch
        checkpoint.npz  <- weights, optimizer state, history       (atomic, every epoch)
        early stopping on the monitored validation figure (optional, best weights kept)
    threshold <- validation scores ("eer" point or a "bpcer=0.05" budget), not blindly 0.5
    model.npz, history.json, curves.png, report.json/.txt, confusion.png, roc.png

The training pipeline is the shared one: ``to_input`` (done by the loader) -> [patch mode, the
default: one random view of each face, a patch or the whole face, ``random_views``] ->
augmentation (training batches only) -> ``normalize`` with the model's setting; validation,
evaluate and demo use ``network_input``, so they see what training saw.

Why these defaults, and what else was measured: ``docs/experiments.md``.

Validation is always whole recordings other than the training ones, which is what makes its
loss (early stopping) and its EER threshold mean something for a new recording.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import scratchnet as sn
from liveness.augment import Augmenter
from liveness.data import Dataset, load_dataset, split_by_group, split_random
from liveness.errors import UserError
from liveness.evaluate import write_report
from liveness.metrics import auc, eer, parse_threshold_rule, select_threshold
from liveness.net import CLASSES, LivenessModel, build_livenessnet
from liveness.plots import plot_curves
from liveness.preprocess import (
    NORMALIZATIONS,
    Preprocessing,
    network_input,
    normalize,
    random_views,
)
from scratchnet.io import atomic_write
from scratchnet.model import batch_slices

RUN_FILES = ("model.npz", "history.json", "curves.png", "report.json", "report.txt",
             "confusion.png", "roc.png", "checkpoint.npz", "config.json")
CHECKPOINT = "checkpoint.npz"


@dataclass
class TrainConfig:
    """Every setting of a training run; saved as ``config.json`` and inside ``model.npz``."""

    dataset: str
    out: str
    val: str | None = None  # a separate validation folder (else a split of ``dataset``)
    split: str = "auto"  # auto: by group (recording) when there are several, else random
    val_groups: tuple[str, ...] = ()  # recordings to validate on (split=group)
    val_fraction: float = 0.25
    seed: int = 0
    epochs: int = 6
    batch_size: int = 32
    lr: float = 1e-3
    plain: bool = False
    size: int = 32
    margin: float = 0.0  # the margin the crops were cut with (recorded for the demo)
    normalization: str = "standardize"
    face_size: int = 96  # > size: patch mode (see liveness.preprocess), faces resized to this
    grid: int = 3  # patch mode: grid x grid patches scored per face
    whole: bool = True  # patch mode: the whole face at size is a view too (half the score)
    augment: bool = True
    jitter: float = 0.2  # brightness / contrast / colour jitter strength (0 = tutorial's)
    quarter_turns: bool = False  # also rotate training faces by random multiples of 90 degrees
    balance: str = "group"  # "group": real = fake within each recording; "class"; "none"
    early_stopping: int = 2  # patience in epochs (0 = off)
    monitor: str = "val_loss"  # or "val_auc"
    threshold_at: str = "eer"  # "eer", "bpcer=0.05" or a fixed number such as "0.5"

    def preprocessing(self) -> Preprocessing:
        """What the model file records, so evaluate and demo feed the net as training did."""
        return Preprocessing(self.size, self.margin, self.normalization, self.face_size,
                             self.grid, self.whole)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["val_groups"] = list(self.val_groups)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in fields}
        d["val_groups"] = tuple(d.get("val_groups", ()))
        return cls(**d)


# The paper's settings (Adam, lr 1e-5, batch 8, 50 epochs, random 75/25 split, the tutorial's
# augmentation, inputs in [0, 1], the whole face resized to the input); everything else keeps
# the defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "paper": {"lr": 1e-5, "batch_size": 8, "epochs": 50, "split": "random",
              "val_fraction": 0.25, "augment": True, "jitter": 0.0, "balance": "none",
              "early_stopping": 0, "normalization": "unit", "face_size": 0, "whole": False},
}


# --------------------------------------------------------------------------- data


def _check_classes(ds: Dataset, what: str) -> None:
    n_real = int(ds.labels.sum())
    if n_real == 0 or n_real == len(ds.labels):
        raise UserError(f"{what} needs both real and fake images, got {n_real} real and "
                        f"{len(ds.labels) - n_real} fake; check the real/ and fake/ folders")


def load_split(cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    """Training and validation sets as ``cfg`` asks (separate folder, by recording, random)."""
    for path in (cfg.dataset, cfg.val):
        if path is not None and not Path(path).is_dir():
            raise UserError(f"dataset folder {path} not found; point to a folder with real/ and "
                            "fake/ subfolders (see `liveness gather` or `liveness synth`)")
    size = cfg.preprocessing().load_size
    ds = load_dataset(cfg.dataset, size=size)
    if cfg.val is not None:
        train, val = ds, load_dataset(cfg.val, size=size)
    else:
        split = cfg.split
        if split == "auto":
            split = "group" if len(set(ds.groups)) > 1 or cfg.val_groups else "random"
        if split == "group":
            train, val = split_by_group(ds, val_groups=list(cfg.val_groups) or None,
                                        val_fraction=cfg.val_fraction, seed=cfg.seed)
        else:
            train, val = split_random(ds, val_fraction=cfg.val_fraction, seed=cfg.seed)
    _check_classes(train, f"training set of {cfg.dataset}")
    _check_classes(val, f"validation set ({cfg.val or 'split of ' + cfg.dataset})")
    return train, val


BALANCES = ("group", "class", "none")


def balanced_order(labels: np.ndarray, groups: np.ndarray, balance: str,
                   rng: np.random.Generator) -> np.ndarray:
    """Training indices with the smaller class repeated (drawn at random) up to the larger.

    ``"class"`` balances the whole set; ``"group"`` balances real and fake *within each group*
    (recording). The latter matters when recordings differ in their share of fakes: then
    "which recording is this?" predicts the label, a shortcut that does not transfer to a new
    recording. With real = fake inside every recording, that cue carries no information and
    the net has to learn the difference between real and replayed faces instead.
    ``"none"`` keeps the data as it is.
    """
    if balance == "none":
        return np.arange(len(labels))
    keys = groups if balance == "group" else np.full(len(labels), "all")
    order = []
    for g in np.unique(keys):
        in_g = [np.flatnonzero((keys == g) & (labels == c)) for c in (0, 1)]
        n = max(len(i) for i in in_g)
        order += [np.r_[i, rng.choice(i, n - len(i))] for i in in_g if len(i)]
    return np.concatenate(order)


def make_transform(cfg: TrainConfig) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """The per-batch training transform: a random patch of each face (patch mode), then
    augmentation (if on), then the model's normalisation."""
    augment = Augmenter(quarter_turns=cfg.quarter_turns, brightness=cfg.jitter,
                        contrast=cfg.jitter, color=cfg.jitter) if cfg.augment else None

    pp = cfg.preprocessing()

    def transform(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if pp.face_size:
            x = random_views(x, pp, rng)
        return normalize(augment(x, rng) if augment else x, cfg.normalization)

    return transform


# --------------------------------------------------------------------------- loop pieces


class _ProgressBar(sn.Callback):
    """A tqdm bar over the batches of one epoch, showing the running loss."""

    def __init__(self, epoch: int, epochs: int, n_batches: int, enabled: bool) -> None:
        self.epoch, self.epochs, self.n_batches, self.enabled = epoch, epochs, n_batches, enabled
        self.bar: tqdm | None = None

    def on_epoch_begin(self, epoch: int) -> None:
        self.bar = tqdm(total=self.n_batches, desc=f"epoch {self.epoch}/{self.epochs}",
                        leave=False, disable=not self.enabled, file=sys.stderr)

    def on_batch_end(self, batch: int, logs: dict) -> None:
        self.bar.update(1)
        if "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

    def on_epoch_end(self, epoch: int, logs: dict) -> bool:
        self.bar.close()
        return False


def validation_figures(model: LivenessModel, x_val: np.ndarray, y_val: np.ndarray
                       ) -> tuple[dict[str, float], np.ndarray]:
    """Loss, accuracy (argmax), ROC AUC and EER on the validation set, and its P(real) scores.

    ``x_val`` is the network input of the validation faces (``network_input``). The loss is
    the mean cross-entropy of the predicted probabilities, ``-mean(log p[i, y_i])``, the
    quantity ``fit`` minimises (in patch mode, of each face's probabilities averaged over its
    patches).
    """
    probs = model.probabilities(x_val)
    p_true = probs[np.arange(len(y_val)), y_val]
    scores = probs[:, CLASSES.index("real")]
    figures = {"val_loss": float(-np.mean(np.log(np.maximum(p_true, 1e-12)))),
               "val_accuracy": float(np.mean(probs.argmax(axis=1) == y_val)),
               "val_auc": float(auc(scores, y_val)),
               "val_eer": float(eer(scores, y_val)[0])}
    return figures, scores


def _improved(monitor: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value > best if monitor == "val_auc" else value < best


def save_checkpoint(path: Path, net: sn.Sequential, optimizer: sn.Adam | sn.SGD,
                    state: dict[str, Any], best_weights: dict[str, np.ndarray] | None) -> None:
    """One ``.npz``: weights, optimizer state, best weights so far, and the run state as JSON."""
    arrays = {f"model/{k}": v for k, v in net.state_dict().items()}
    arrays |= {f"optimizer/{k}": v for k, v in optimizer.state_dict().items()}
    if best_weights is not None:
        arrays |= {f"best/{k}": v for k, v in best_weights.items()}
    arrays["state"] = np.array(json.dumps(state))
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is an ``.npz`` written by :func:`save_checkpoint` (a run state plus
    ``model/...`` weights), e.g. to tell a user who passed it where a model was expected."""
    try:
        with zipfile.ZipFile(path) as z:  # an .npz is a zip of "<name>.npy" members
            names = z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return "state.npy" in names and any(n.startswith("model/") for n in names)


def load_checkpoint(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """``({"model": ..., "optimizer": ..., "best": ...}, state)`` from :func:`save_checkpoint`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            parts: dict[str, dict[str, np.ndarray]] = {"model": {}, "optimizer": {}, "best": {}}
            for key in z.files:
                if key != "state":
                    part, _, name = key.partition("/")
                    parts[part][name] = z[key]
            state = json.loads(str(z["state"]))
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"checkpoint {path} is unreadable ({e}); start again with --force") \
            from None
    return parts, state


# --------------------------------------------------------------------------- training


def _prepare_run_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory for the run")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"run directory {out} is not empty; pass --force to overwrite it or "
                        f"--resume {out} to continue its training")
    out.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:  # a forced rerun must not leave stale outputs of the old run
        (out / name).unlink(missing_ok=True)


def check_config(cfg: TrainConfig) -> None:
    """Catch bad settings before any time is spent loading or training."""
    try:
        parse_threshold_rule(cfg.threshold_at)
    except ValueError as e:
        raise UserError(f"--threshold-at: {e}") from None
    problems = [msg for bad, msg in (
        (cfg.normalization not in NORMALIZATIONS, f"--normalization: one of {NORMALIZATIONS}"),
        (cfg.split not in ("auto", "random", "group"), "--split must be auto, random or group"),
        (cfg.balance not in BALANCES, f"--balance must be one of {BALANCES}"),
        (cfg.monitor not in ("val_loss", "val_auc"), "--monitor must be val_loss or val_auc"),
        (cfg.epochs < 1 or cfg.batch_size < 1, "--epochs and --batch-size must be >= 1"),
        (not 0 < cfg.val_fraction < 1, "--val-fraction must be between 0 and 1"),
        (cfg.face_size and (cfg.face_size <= cfg.size or cfg.grid < 1),
         f"--face-size must be 0 (off) or larger than --size ({cfg.size}), and --grid >= 1"),
        (not cfg.lr > 0, "--lr must be > 0"),
    ) if bad]
    if problems:
        raise UserError("; ".join(problems))


def _one_epoch(net: sn.Sequential, optimizer: sn.Optimizer, x: np.ndarray, y: np.ndarray,
               transform: Callable[[np.ndarray, np.random.Generator], np.ndarray],
               cfg: TrainConfig, epoch: int, callbacks: list[sn.Callback]) -> dict[str, float]:
    """One pass of ``fit`` over the training set: ``{"loss", "accuracy", "seconds"}``."""
    start = time.perf_counter()
    try:
        history = net.fit(x, y, epochs=1, batch_size=cfg.batch_size, optimizer=optimizer,
                          callbacks=callbacks, shuffle=True, seed=cfg.seed * 1000 + epoch,
                          transform=transform, verbose=0).history
    except FloatingPointError as e:  # fit's NaN/inf loss check: the net diverged
        raise UserError(f"training diverged in epoch {epoch} ({e}); lower the learning rate "
                        f"(--lr {cfg.lr:g} now) or check the images") from None
    return {"loss": history["loss"][-1], "accuracy": history["accuracy"][-1],
            "seconds": time.perf_counter() - start}


def train(cfg: TrainConfig, *, force: bool = False, resume: bool = False, verbose: bool = True,
          callbacks: Sequence[sn.Callback] = ()) -> LivenessModel:
    """Train LivenessNet as ``cfg`` says and write the run directory; returns the model.

    ``resume=True`` continues the run in ``cfg.out`` from its last checkpoint (use
    :func:`resume_config` to read its settings). Extra ``callbacks`` go to ``fit``.
    Raises :class:`UserError` for bad inputs and when the loss becomes NaN.
    """
    out = Path(cfg.out)
    check_config(cfg)
    if not resume:
        _prepare_run_dir(out, force)
    say = print if verbose else (lambda *a, **k: None)
    train_set, val_set = load_split(cfg)
    rng = np.random.default_rng(cfg.seed)
    order = balanced_order(train_set.labels, train_set.groups, cfg.balance, rng)
    x_train, y_train = train_set.images[order], train_set.labels[order]
    x_val, y_val = network_input(val_set.images, cfg.preprocessing()), val_set.labels

    net = build_livenessnet(cfg.size, plain=cfg.plain, seed=cfg.seed)
    model = LivenessModel(net, cfg.preprocessing())
    optimizer = sn.Adam(net.parameters(), lr=cfg.lr)
    history: dict[str, list[float]] = {}
    state: dict[str, Any] = {"epoch": 0, "best": None, "best_epoch": None, "stopped": False}
    best_weights: dict[str, np.ndarray] | None = None
    if resume:
        parts, state = load_checkpoint(out / CHECKPOINT)
        net.load_state_dict(parts["model"])
        optimizer.load_state_dict(parts["optimizer"])
        best_weights = parts["best"] or None
        history = state.pop("history")
        say(f"resuming {out} after epoch {state['epoch']}")
    else:
        with atomic_write(out / "config.json", "w") as f:
            json.dump(cfg.to_dict(), f, indent=2)
    say(net.summary((3, cfg.size, cfg.size)))
    say(f"train: {len(train_set.labels)} images ({int(train_set.labels.sum())} real) from "
        f"{len(set(train_set.groups))} group(s), {len(y_train)} per epoch after balancing; "
        f"validation: {len(y_val)} images ({int(y_val.sum())} real) from "
        f"{', '.join(sorted(set(val_set.groups)))}")

    transform = make_transform(cfg)
    n_batches = len(batch_slices(len(y_train), cfg.batch_size))
    epoch = state["epoch"]
    try:
        while epoch < cfg.epochs and not state["stopped"]:
            epoch += 1
            row = _one_epoch(net, optimizer, x_train, y_train, transform, cfg, epoch,
                             [_ProgressBar(epoch, cfg.epochs, n_batches, verbose), *callbacks])
            row |= validation_figures(model, x_val, y_val)[0]
            for k, v in row.items():
                history.setdefault(k, []).append(float(v))
            say(f"epoch {epoch:3d}/{cfg.epochs}  loss {row['loss']:.4f}  acc "
                f"{row['accuracy']:.3f}  val_loss {row['val_loss']:.4f}  val_acc "
                f"{row['val_accuracy']:.3f}  val_auc {row['val_auc']:.3f}  val_eer "
                f"{row['val_eer']:.3f}  ({row['seconds']:.1f} s)")
            if cfg.early_stopping and _improved(cfg.monitor, row[cfg.monitor], state["best"]):
                state.update(best=row[cfg.monitor], best_epoch=epoch)
                best_weights = {k: v.copy() for k, v in net.state_dict().items()}
            elif cfg.early_stopping and epoch - state["best_epoch"] >= cfg.early_stopping:
                state["stopped"] = True
                say(f"early stopping: {cfg.monitor} has not improved for "
                    f"{cfg.early_stopping} epochs; keeping epoch {state['best_epoch']}")
            state["epoch"] = epoch
            save_checkpoint(out / CHECKPOINT, net, optimizer, {**state, "history": history},
                            best_weights)
    except KeyboardInterrupt:
        print(f"\ninterrupted; the checkpoint after epoch {state['epoch']} is in {out}; "
              f"continue with: liveness train --resume {out}", file=sys.stderr)
        raise
    if best_weights is not None:
        net.load_state_dict(best_weights)
    return _finish(cfg, model, history, state, x_val, y_val, val_set.groups, say)


def _finish(cfg: TrainConfig, model: LivenessModel, history: dict[str, list[float]],
            state: dict[str, Any], x_val: np.ndarray, y_val: np.ndarray, groups: np.ndarray,
            say: Callable[..., None]) -> LivenessModel:
    """Set the threshold on validation scores and write model, history, curves and report."""
    out = Path(cfg.out)
    _, scores = validation_figures(model, x_val, y_val)
    threshold = model.threshold = select_threshold(scores, y_val, cfg.threshold_at)
    model.save(out / "model.npz", training=cfg.to_dict(), epochs_trained=state["epoch"],
               best_epoch=state["best_epoch"])
    with atomic_write(out / "history.json", "w") as f:
        json.dump(history, f, indent=2)
    if history:
        plot_curves(history, out / "curves.png", title=f"LivenessNet on {cfg.dataset}")
    report = write_report(out, scores, y_val, threshold, groups,
                          title=f"validation of {out / 'model.npz'} "
                                f"(threshold: {cfg.threshold_at} on validation)")
    say(f"threshold {threshold:.4f} ({cfg.threshold_at} on validation): APCER "
        f"{report['apcer']:.1%}  BPCER {report['bpcer']:.1%}  ACER {report['acer']:.1%}  "
        f"AUC {report['auc']:.3f}")
    say(f"wrote {out}/model.npz, history.json, curves.png, report.txt, report.json, "
        "confusion.png, roc.png")
    return model


def resume_config(run_dir: str | Path, epochs: int | None = None) -> TrainConfig:
    """The settings of the run in ``run_dir`` (optionally with more epochs), for ``resume``."""
    path = Path(run_dir) / "config.json"
    if not (Path(run_dir) / CHECKPOINT).is_file() or not path.is_file():
        raise UserError(f"{run_dir} has no checkpoint to resume (config.json and "
                        f"{CHECKPOINT}); start a new run with `liveness train DATASET --out DIR`")
    cfg = TrainConfig.from_dict(json.loads(path.read_text()))
    return dataclasses.replace(cfg, epochs=epochs) if epochs else cfg


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig("", "")
    parser.add_argument("dataset", nargs="?",
                        help="folder of face crops: real/, fake/ or <recording>/{real,fake}/")
    parser.add_argument("--out", help="run directory for model.npz, history, plots, report")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default",
                        help="paper: Adam lr 1e-5, batch 8, 50 epochs, random 75/25 split, "
                             "tutorial augmentation, inputs in [0, 1]")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue an interrupted run from its last checkpoint")
    parser.add_argument("--force", action="store_true", help="overwrite a non-empty --out")
    parser.add_argument("--val", help="separate validation folder (instead of a split)")
    parser.add_argument("--split", choices=("auto", "random", "group"),
                        help=f"how to split off validation data (default {d.split}: by "
                             "recording when the dataset has several, else random)")
    parser.add_argument("--val-groups", help="comma-separated recordings to validate on")
    parser.add_argument("--val-fraction", type=float, help=f"default {d.val_fraction}")
    parser.add_argument("--seed", type=int, help=f"default {d.seed}")
    parser.add_argument("--epochs", type=int, help=f"default {d.epochs}")
    parser.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    parser.add_argument("--lr", type=float, help=f"Adam learning rate, default {d.lr:g}")
    parser.add_argument("--plain", action="store_true", default=None,
                        help="LivenessNet without batch norm and dropout")
    parser.add_argument("--size", type=int, help=f"input side in pixels, default {d.size}")
    parser.add_argument("--face-size", type=int, metavar="PIXELS",
                        help="patch mode: resize each face to PIXELS (> --size) and train on "
                             "random --size patches of it; a face's score is the mean over a "
                             f"--grid x --grid of patches (default {d.face_size}; 0 = off: the "
                             "whole face resized to --size only)")
    parser.add_argument("--grid", type=int, help=f"patch mode: patches per side, default {d.grid}")
    parser.add_argument("--whole", action=argparse.BooleanOptionalAction, default=None,
                        help="patch mode: the whole face at --size is a view too, half of the "
                             f"score (default {'on' if d.whole else 'off'})")
    parser.add_argument("--margin", type=float,
                        help="crop margin the dataset was gathered with (stored for the demo)")
    parser.add_argument("--normalization", choices=NORMALIZATIONS,
                        help=f"default {d.normalization} (per-image zero mean, unit variance)")
    parser.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                        help="train without augmentation")
    parser.add_argument("--jitter", type=float,
                        help=f"brightness/contrast/colour jitter, default {d.jitter}")
    parser.add_argument("--quarter-turns", action="store_true", default=None,
                        help="augmentation also turns faces by random multiples of 90 degrees "
                             "(for recordings whose faces are stored rotated)")
    parser.add_argument("--balance", choices=BALANCES,
                        help="oversample the smaller class within each recording (group), "
                             f"over the whole set (class), or not (none); default {d.balance}")
    parser.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                        help="stop when --monitor has not improved for PATIENCE epochs and "
                             "keep the best epoch")
    parser.add_argument("--monitor", choices=("val_loss", "val_auc"),
                        help=f"figure early stopping watches, default {d.monitor}")
    parser.add_argument("--threshold-at", metavar="RULE",
                        help="how to set the decision threshold on validation data: eer, "
                             f"bpcer=0.05 or a fixed number, default {d.threshold_at}")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults < preset < options given on the command line."""
    if args.dataset is None or args.out is None:
        raise UserError("give a dataset folder and --out RUN_DIR (or --resume RUN_DIR)")
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if f.name not in ("dataset", "out", "val_groups")
             and getattr(args, f.name, None) is not None}
    if args.val_groups:
        given["val_groups"] = tuple(g.strip() for g in args.val_groups.split(",") if g.strip())
    return TrainConfig(dataset=args.dataset, out=args.out, **{**PRESETS[args.preset], **given})


def run(args: argparse.Namespace) -> int:
    if args.resume:
        cfg = resume_config(args.resume, args.epochs)
        train(cfg, resume=True, verbose=not args.quiet)
    else:
        train(config_from_args(args), force=args.force, verbose=not args.quiet)
    return 0
