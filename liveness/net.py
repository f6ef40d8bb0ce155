"""LivenessNet on scratchnet, and the model file that carries everything needed to use it.

The architecture is the paper's (4 conv, 2 max-pool, 2 dense, ReLU, softmax at the end) with
the layer sizes of the tutorial it follows::

    32x32x3 -> [Conv 16 3x3 same, ReLU, BN] x2 -> MaxPool 2 -> Dropout .25
            -> [Conv 32 3x3 same, ReLU, BN] x2 -> MaxPool 2 -> Dropout .25
            -> Flatten -> Dense 64, ReLU, BN, Dropout .5 -> Dense 2 -> Softmax

``plain=True`` drops batch norm and dropout. Class 0 is "fake", class 1 is "real"; the score of
a face is P(real), and a face is called real when its score >= the model's threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import scratchnet as sn
from liveness.errors import UserError
from liveness.preprocess import Preprocessing, preprocess

CLASSES = ("fake", "real")
REAL = CLASSES.index("real")


def build_livenessnet(size: int = 32, plain: bool = False, seed: int | None = 0) -> sn.Sequential:
    """LivenessNet for ``size`` x ``size`` RGB input (NCHW), with or without BN/dropout."""
    rng = np.random.default_rng(seed)

    def block(c_in: int, c_out: int) -> list[sn.Layer]:
        layers: list[sn.Layer] = []
        for c in (c_in, c_out):
            layers += [sn.Conv2D(c, c_out, 3, padding="same", rng=rng), sn.ReLU()]
            if not plain:
                layers.append(sn.BatchNorm2D(c_out))
        layers.append(sn.MaxPool2D(2))
        if not plain:
            layers.append(sn.Dropout(0.25, rng=rng))
        return layers

    head: list[sn.Layer] = [sn.Flatten(), sn.Dense(32 * (size // 4) ** 2, 64, rng=rng), sn.ReLU()]
    if not plain:
        head += [sn.BatchNorm1D(64), sn.Dropout(0.5, rng=rng)]
    head += [sn.Dense(64, len(CLASSES), rng=rng), sn.Softmax()]
    return sn.Sequential(block(3, 16) + block(16, 32) + head)


@dataclass
class LivenessModel:
    """A trained network plus what it needs at use time: preprocessing and threshold."""

    net: sn.Sequential
    preprocessing: Preprocessing
    threshold: float = 0.5

    def probabilities(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, 2) class probabilities for the network input of N faces, ``x`` (N * V, 3, S, S)
        with V = ``preprocessing.views`` consecutive rows per face (see ``preprocess``): the
        mean of the network's softmax outputs over each face's patches, and with ``whole``
        the mean of that and the whole face's output."""
        probs = self.net.predict(x, batch_size=batch_size)
        probs = probs.reshape(-1, self.preprocessing.views, probs.shape[1])
        if self.preprocessing.whole:
            return (probs[:, :-1].mean(axis=1) + probs[:, -1]) / 2
        return probs.mean(axis=1)

    def scores(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """P(real) for the network input of N faces (as :meth:`probabilities`)."""
        return self.probabilities(x, batch_size)[:, REAL]

    def score_crops(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        """P(real) for face crops (BGR uint8), preprocessed exactly as in training."""
        if not crops_bgr:
            return np.zeros(0, dtype=np.float32)
        return self.scores(preprocess(crops_bgr, self.preprocessing))

    def metadata(self, **extra: Any) -> dict[str, Any]:
        return {"kind": "LivenessNet", "classes": list(CLASSES),
                "preprocessing": self.preprocessing.to_dict(),
                "threshold": float(self.threshold), **extra}

    def save(self, path: str | Path, **extra: Any) -> None:
        """One ``.npz`` (scratchnet format), written atomically, metadata included."""
        sn.save(self.net, path, metadata=self.metadata(**extra))


def load_model(path: str | Path) -> LivenessModel:
    """Load a LivenessNet model file; a missing or foreign file is a one-line :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} not found; train one with `liveness train` "
                        "or run `liveness quickstart`")
    try:
        net = sn.load(path)
    except ValueError as e:
        from liveness.train import is_checkpoint  # only on this error path: train is heavy
        if is_checkpoint(path):
            raise UserError(f"{path} is a training checkpoint, not a model; use "
                            f"{path.parent / 'model.npz'}, or resume training with "
                            f"`liveness train --resume {path.parent}`") from None
        raise UserError(f"{e}; retrain or re-download the model") from None
    meta = getattr(net, "metadata", {}) or {}
    if meta.get("kind") != "LivenessNet":
        raise UserError(f"{path} is a scratchnet model but not a LivenessNet model "
                        "(no liveness metadata); use a model written by `liveness train`")
    return LivenessModel(net, Preprocessing.from_dict(meta.get("preprocessing", {})),
                         float(meta.get("threshold", 0.5)))
