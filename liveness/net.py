"""LivenessNet on scratchnet, and the model file that carries everything needed to use it.

The architecture is the paper's (4 conv, 2 max-pool, 2 dense, ReLU, softmax at the end) with
the layer sizes of the tutorial it follows::

    32x32x3 -> [Conv 16 3x3 same, ReLU, BN] x2 -> MaxPool 2 -> Dropout .25
            -> [Conv 32 3x3 same, ReLU, BN] x2 -> MaxPool 2 -> Dropout .25
            -> Flatten -> Dense 64, ReLU, BN, Dropout .5 -> Dense 2 -> Softmax

``plain=True`` drops batch norm and dropout. Class 0 is "fake", class 1 is "real"; the score of
a face is P(real), and a face is called real when its score >= the model's threshold.

A model lives in a ``.npz`` (scratchnet's format, written by ``liveness train``) or in an ONNX
file (``liveness export``) for inference engines; both carry the preprocessing and the
threshold, and :func:`load_model` reads either, for the engine asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

import scratchnet as sn
from liveness.engines import INSTALL_HINT, make_engine
from liveness.errors import UserError
from liveness.preprocess import Preprocessing, preprocess
from scratchnet.onnx_export import to_onnx

CLASSES = ("fake", "real")
REAL = CLASSES.index("real")
#: The key of an ONNX file's metadata that holds the model file's whole metadata as JSON.
ONNX_METADATA_KEY = "liveness"
#: What each normalisation does, written into ONNX files for whoever deploys them.
NORMALIZATION_FORMULAS = {
    "unit": "x = rgb / 255, values in [0, 1]",
    "standardize": "x = rgb / 255, then per input (face or patch) x = (x - mean(x)) / "
                   "max(std(x), 0.001), mean and std over all its channels and pixels",
}


def views_description(pp: Preprocessing) -> str:
    """How one face becomes the network's inputs and their outputs its score, in words (for
    the ONNX metadata key ``patches``)."""
    if not pp.face_size:
        return "1 input per face: the resized face"
    g, s = pp.grid, pp.size
    text = (f"{pp.views} inputs per face: {g} x {g} patches of {s} x {s} of the resized face, "
            "evenly spaced from its top-left to its bottom-right corner, row by row")
    if pp.whole:
        return (text + f", then the whole face shrunk to {s} x {s} (cv2.INTER_AREA); the "
                "face's output is the mean of (the mean of its patches' outputs) and (the whole "
                "face's output)")
    return text + "; the face's output is the mean of its patches' outputs"


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


class Predictor(Protocol):
    """What scores a preprocessed batch: a scratchnet ``Sequential``, or an engine running its
    ONNX export (:mod:`liveness.engines`)."""

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray: ...


@dataclass
class LivenessModel:
    """A trained network plus what it needs at use time: preprocessing and threshold.

    ``net`` is the scratchnet network, or an inference engine running its ONNX export: every
    score goes through ``net.predict``, whichever it is.
    """

    net: sn.Sequential | Predictor
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

    def onnx_metadata(self) -> dict[str, str]:
        """What a deployment needs to feed the ONNX file and read its output, as readable
        keys, plus the model file's whole metadata as JSON under :data:`ONNX_METADATA_KEY`."""
        pp, size = self.preprocessing, self.preprocessing.size
        return {
            ONNX_METADATA_KEY: json.dumps(self.net.metadata | self.metadata()),
            "input_shape": f"N,3,{size},{size}",
            "input_size": str(size),
            "layout": "NCHW, float32",
            "channel_order": "RGB",
            "crop_margin": f"{pp.margin:g} (the face box grown by this share of its side on "
                           "each side)",
            "resize": f"the face crop to {pp.load_size} x {pp.load_size} with cv2.resize: "
                      "INTER_AREA when shrinking, INTER_LINEAR when enlarging",
            "views": str(pp.views),
            "patches": views_description(pp),
            "normalization": pp.normalization,
            "normalization_formula": NORMALIZATION_FORMULAS[pp.normalization],
            "classes": ",".join(CLASSES),
            "output": f"probabilities (N, {len(CLASSES)}), columns in the order of classes",
            "threshold": repr(float(self.threshold)),
            "decision": f"real when P(real) >= threshold, P(real) = output[:, {REAL}] of the "
                        "face's views combined as patches says",
        }

    def to_onnx(self) -> bytes:
        """The network as an ONNX file (its bytes), with :meth:`onnx_metadata` inside."""
        size = self.preprocessing.size
        try:
            return to_onnx(self.net, (3, size, size), self.onnx_metadata()).SerializeToString()
        except ImportError:
            raise UserError(f"exporting to ONNX needs the onnx package: {INSTALL_HINT}") from None


def load_model(path: str | Path, engine: str = "scratchnet") -> LivenessModel:
    """Load a model file to run on ``engine`` (see :mod:`liveness.engines`): a ``.npz``
    written by ``liveness train`` (any engine) or an ``.onnx`` written by ``liveness export``
    (ONNX engines). A missing or foreign file is a one-line :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} not found; train one with `liveness train` "
                        "or run `liveness quickstart`")
    if path.suffix.lower() == ".onnx":
        return _load_onnx(path, engine)
    try:
        net = sn.load(path)
    except ValueError as e:
        from liveness.train import is_checkpoint  # only on this error path: train is heavy
        if is_checkpoint(path):
            raise UserError(f"{path} is a training checkpoint, not a model; use "
                            f"{path.parent / 'model.npz'}, or resume training with "
                            f"`liveness train --resume {path.parent}`") from None
        raise UserError(f"{e}; retrain or re-download the model") from None
    return on_engine(_from_metadata(net, net.metadata, path), engine)


def on_engine(model: LivenessModel, engine: str) -> LivenessModel:
    """``model`` with its scratchnet network exported to ONNX and run on ``engine`` ("opencv"
    or "onnxruntime"); ``model`` itself for "scratchnet"."""
    if engine == "scratchnet":
        return model
    return replace(model, net=make_engine(engine, model.to_onnx()))


def _from_metadata(net: sn.Sequential | Predictor, meta: dict[str, Any],
                   path: Path) -> LivenessModel:
    if meta.get("kind") != "LivenessNet":
        raise UserError(f"{path} is a scratchnet model but not a LivenessNet model "
                        "(no liveness metadata); use a model written by `liveness train`")
    return LivenessModel(net, Preprocessing.from_dict(meta.get("preprocessing", {})),
                         float(meta.get("threshold", 0.5)))


def _load_onnx(path: Path, engine: str) -> LivenessModel:
    """An ONNX file from ``liveness export``: its metadata, and the network on ``engine``."""
    if engine == "scratchnet":
        raise UserError(f"{path} is an ONNX file: run it with --engine onnxruntime or --engine "
                        "opencv (scratchnet runs the model.npz written by `liveness train`)")
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ImportError:
        raise UserError(f"reading {path} needs the onnx package: {INSTALL_HINT}") from None
    data = path.read_bytes()
    try:
        props = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    except DecodeError:
        raise UserError(f"{path} is not a readable ONNX file; export it again with "
                        "`liveness export`") from None
    if ONNX_METADATA_KEY not in props:
        raise UserError(f"{path} is an ONNX model without liveness metadata; export a "
                        "LivenessNet model with `liveness export`")
    return _from_metadata(make_engine(engine, data), json.loads(props[ONNX_METADATA_KEY]), path)
