"""``liveness calibrate MODEL CALIB_DIR --out NEW_MODEL``: adapt a model to a new camera.

A model trained on other recordings often *ranks* the faces of a new camera and room well
(real above fake) but *decides* them badly: their scores sit in a range of their own, and the
threshold set on other recordings falls in the wrong place. Deployed systems fix this with
an enrolment step: a few seconds of a live person and of a replay at the new camera, and the
decision rule tuned on them. That is what this command does, with three methods:

``threshold``  only a new threshold, chosen on the calibration crops' scores.
``batchnorm``  first refit the batch-norm running statistics on the calibration crops
               (both classes), so each channel is normalised with the new camera's mean and
               variance ("AdaBN"), then a new threshold.
``dense``      first fine-tune the last dense layer (every other layer frozen) on the
               calibration crops, a few full-batch Adam steps from the trained weights,
               then a new threshold.

The threshold comes from ``--threshold-at`` (the rules of ``liveness train``). "eer" is the
equal-error point of the calibration scores *taken in the middle of its interval*
(:func:`liveness.metrics.eer_midpoint_threshold`): with 5 crops per class many thresholds make
the same decisions on them, and the middle of that gap is the one farthest from the
calibration scores on both sides. The result is a normal model file (it loads wherever
``model.npz`` does) whose metadata key ``"calibration"`` records the method, the crops used,
the seed, the source model's threshold and the calibration set's report (which is optimistic:
the threshold was chosen on those very crops).

Why ``dense`` is the default, and the midpoint threshold, as measured: ``docs/experiments.md``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

import scratchnet as sn
from liveness.data import LABELS, Dataset, load_dataset
from liveness.errors import UserError
from liveness.evaluate import build_report, score_dataset
from liveness.metrics import parse_threshold_rule, select_threshold
from liveness.net import LivenessModel, load_model
from liveness.preprocess import network_input
from liveness.train import balanced_order

METHODS = ("threshold", "batchnorm", "dense")
DEFAULT_METHOD = "dense"
MIN_PER_CLASS = 5
DENSE_STEPS, DENSE_LR = 100, 1e-2  # fine-tuning of the last dense layer: full-batch Adam


# --------------------------------------------------------------------------- the calibration set


def take_per_class(ds: Dataset, k: int | None, seed: int = 0) -> Dataset:
    """At most ``k`` images of each class, drawn at random (seeded), in their original order."""
    if k is None:
        return ds
    rng = np.random.default_rng(seed)
    keep = [rng.choice(idx, min(k, len(idx)), replace=False)
            for idx in (np.flatnonzero(ds.labels == c) for c in LABELS.values())]
    return ds.subset(np.sort(np.concatenate(keep)))


def check_counts(labels: np.ndarray, where: str | Path) -> None:
    """At least :data:`MIN_PER_CLASS` crops of each class, else a UserError saying how to
    get more."""
    for label, class_id in LABELS.items():
        n = int((labels == class_id).sum())
        if n < MIN_PER_CLASS:
            raise UserError(f"{where} has {n} {label} crop(s); calibration needs at least "
                            f"{MIN_PER_CLASS} per class: gather a few more seconds with "
                            f"`liveness gather 0 --label {label} --out {where}`")


def load_calibration_set(path: str | Path, size: int, max_per_class: int | None = None,
                         seed: int = 0) -> Dataset:
    """The crops of ``path`` (``real/`` and ``fake/``, or ``<group>/real``, ``<group>/fake``),
    at most ``max_per_class`` of each class (seeded draw). A missing folder or class, an
    unreadable crop or fewer than :data:`MIN_PER_CLASS` crops in a class is a UserError."""
    if max_per_class is not None and max_per_class < MIN_PER_CLASS:
        raise UserError(f"--max-per-class {max_per_class} is too small; use at least "
                        f"{MIN_PER_CLASS}")
    ds = take_per_class(load_dataset(path, size=size, strict=True), max_per_class, seed)
    check_counts(ds.labels, path)
    return ds


# --------------------------------------------------------------------------- the methods


def refit_batchnorm(net: sn.Sequential, x: np.ndarray) -> int:
    """Set every batch-norm layer's running statistics to those of ``x`` (AdaBN).

    Layer by layer in eval mode: a batch-norm layer first takes the statistics of its input
    over the whole calibration batch, ``running_mean = mu`` and ``running_var = var * M /
    (M - 1)`` (one training-mode pass with momentum 1), then passes that input on normalised
    with them, as it will at inference. So every layer gets the statistics of what it will
    see on these crops, with the layers before it already refit. Dropout stays off. Returns
    the number of layers refit.
    """
    refit = 0
    for layer in net.layers:
        if isinstance(layer, (sn.BatchNorm1D, sn.BatchNorm2D)):
            momentum, layer.momentum = layer.momentum, 1.0
            try:
                layer.forward(x, training=True)
            finally:
                layer.momentum = momentum
            refit += 1
        x = layer.forward(x, training=False)
    return refit


def finetune_last_dense(net: sn.Sequential, x: np.ndarray, labels: np.ndarray, seed: int = 0,
                        steps: int = DENSE_STEPS, lr: float = DENSE_LR) -> None:
    """Train the last :class:`~scratchnet.Dense` layer of ``net`` on ``(x, labels)``, in place.

    The layers before it are frozen and run once in eval mode, giving features ``h``; the head
    ``softmax(h W + b)`` is then fit with ``steps`` full-batch Adam steps on the cross-entropy,
    starting from the trained ``W`` and ``b`` (few steps and a small rate keep it near them,
    the only guard against over-fitting a handful of crops). Classes are balanced by repeating
    crops of the smaller one.
    """
    last = max(i for i, layer in enumerate(net.layers) if isinstance(layer, sn.Dense))
    for layer in net.layers[:last]:
        x = layer.forward(x, training=False)
    order = balanced_order(labels, np.zeros(len(labels), dtype=str), "class",
                           np.random.default_rng(seed))
    head = sn.Sequential(net.layers[last:])  # the same layer objects: trained in place
    head.fit(x[order], labels[order], epochs=steps, batch_size=len(order),
             optimizer=sn.Adam(head.parameters(), lr=lr), seed=seed, verbose=0)


def calibrate(model: LivenessModel, images: np.ndarray, labels: np.ndarray,
              method: str = DEFAULT_METHOD, threshold_at: str = "eer",
              seed: int = 0) -> tuple[LivenessModel, dict[str, Any]]:
    """A copy of ``model`` adapted to the calibration crops ``images`` (in [0, 1], as
    ``load_dataset`` returns them) with ``labels``; ``model`` is left as it was.

    Needs both classes (see :data:`MIN_PER_CLASS` for how many make sense). Returns the new
    model and what was done: method, rule, counts, seed, the source threshold, the source
    model's figures on these crops and the calibration report (``build_report``).
    """
    if method not in METHODS:
        raise UserError(f"unknown calibration method {method!r}; choose from {', '.join(METHODS)}")
    try:
        parse_threshold_rule(threshold_at)
    except ValueError as e:
        raise UserError(f"--threshold-at: {e}") from None
    new = dataclasses.replace(model, net=copy.deepcopy(model.net))
    before = build_report(score_dataset(model, images), labels, model.threshold)
    if method == "batchnorm":
        refit_batchnorm(new.net, network_input(images, new.preprocessing))
    elif method == "dense":
        finetune_last_dense(new.net, network_input(images, new.preprocessing),
                            np.repeat(labels, new.preprocessing.views), seed)
    scores = score_dataset(new, images)
    new.threshold = select_threshold(scores, labels, threshold_at, midpoint=True)
    info = {"method": method, "threshold_at": threshold_at, "seed": seed,
            "n_real": int(labels.sum()), "n_fake": int((labels == 0).sum()),
            "source_threshold": float(model.threshold),
            "source_figures": {k: before[k] for k in ("apcer", "bpcer", "acer", "auc")},
            "report": build_report(scores, labels, new.threshold)}
    return new, info


def calibrate_from_folder(model: LivenessModel, folder: str | Path,
                          method: str = DEFAULT_METHOD, max_per_class: int | None = None,
                          seed: int = 0, threshold_at: str = "eer"
                          ) -> tuple[LivenessModel, dict[str, Any]]:
    """:func:`calibrate` on the crops of ``folder`` (see :func:`load_calibration_set`)."""
    ds = load_calibration_set(folder, model.preprocessing.load_size, max_per_class, seed)
    new, info = calibrate(model, ds.images, ds.labels, method, threshold_at, seed)
    return new, {"folder": str(folder), "max_per_class": max_per_class, **info}


def calibrate_file(model_path: str | Path, folder: str | Path, out: str | Path,
                   method: str = DEFAULT_METHOD, max_per_class: int | None = None,
                   seed: int = 0, threshold_at: str = "eer"
                   ) -> tuple[LivenessModel, dict[str, Any]]:
    """Load ``model_path``, calibrate on ``folder``, write the result to ``out`` (atomically;
    the input file is never written). The source's other metadata (training settings, ...)
    is kept; ``"calibration"`` holds :func:`calibrate`'s record plus the source file."""
    model_path, out = Path(model_path), Path(out)
    if out.resolve() == model_path.resolve():
        raise UserError(f"--out {out} is the input model; write the calibrated model to a new "
                        "file, e.g. --out calibrated.npz")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'model.npz'}")
    model = load_model(model_path)
    new, info = calibrate_from_folder(model, folder, method, max_per_class, seed, threshold_at)
    info = {"source_model": str(model_path), **info}
    base = new.metadata()
    kept = {k: v for k, v in model.net.metadata.items() if k not in base and k != "calibration"}
    new.save(out, **kept, calibration=info)
    return new, info


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file to adapt (model.npz from `liveness train`)")
    parser.add_argument("calib_dir", metavar="CALIB_DIR",
                        help="face crops from the target camera: real/ and fake/ (as `liveness "
                             "gather` writes them), or <group>/real and <group>/fake")
    parser.add_argument("--out", required=True, metavar="NEW_MODEL",
                        help="where to write the calibrated model (a new file)")
    parser.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                        help="threshold: only a new threshold; batchnorm: refit the batch-norm "
                             "statistics on the crops, then the threshold; dense: fine-tune the "
                             f"last dense layer, then the threshold (default {DEFAULT_METHOD})")
    parser.add_argument("--max-per-class", type=int, metavar="K",
                        help="use at most K crops of each class, drawn at random (seeded); "
                             "default all")
    parser.add_argument("--seed", type=int, default=0, help="default 0")
    parser.add_argument("--threshold-at", default="eer", metavar="RULE",
                        help="eer (the equal-error point, midway between the scores around "
                             "it), bpcer=0.05 or a fixed number; default eer")


def summary_line(info: dict[str, Any]) -> str:
    """e.g. ``calibrated (threshold) on 10 real + 10 fake crops: threshold 0.79 -> 0.41, ACER
    on these crops 35.0% -> 0.0%``."""
    before, after = info["source_figures"]["acer"], info["report"]["acer"]
    return (f"calibrated ({info['method']}) on {info['n_real']} real + {info['n_fake']} fake "
            f"crops: threshold {info['source_threshold']:.4f} -> "
            f"{info['report']['threshold']:.4f}, ACER on these crops {before:.1%} -> "
            f"{after:.1%}")


def run(args: argparse.Namespace) -> int:
    _, info = calibrate_file(args.model, args.calib_dir, args.out, args.method,
                             args.max_per_class, args.seed, args.threshold_at)
    print(summary_line(info))
    print(f"wrote {args.out}")
    return 0
