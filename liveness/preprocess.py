"""The one preprocessing path shared by train, evaluate, demo and explain.

Train/serve skew (a model trained on one kind of input and served another) is the classic
failure of liveness tools, so every command goes through these functions, and the settings
travel inside the model file (:meth:`Preprocessing.to_dict`).

Steps: crop the face box with a margin (frames only) -> resize to ``size`` x ``size`` ->
BGR to RGB, scale to [0, 1], NCHW float32 (:func:`to_input`) -> [augmentation, training only]
-> normalise (:func:`normalize`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from liveness.faces import Box

NORMALIZATIONS = ("unit", "standardize")


@dataclass(frozen=True)
class Preprocessing:
    """How a face image becomes network input.

    size: side of the square input (the paper uses 32).
    margin: extra context around a detected box, as a fraction of the box side, on each side.
    normalization: ``"unit"`` keeps pixels in [0, 1]; ``"standardize"`` makes each image
        zero-mean, unit-variance (removes global brightness/contrast differences between
        cameras and rooms).
    """

    size: int = 32
    margin: float = 0.0
    normalization: str = "unit"

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, "
                             f"got {self.normalization!r}")
        if self.size < 4 or self.margin < 0:
            raise ValueError(f"need size >= 4 and margin >= 0, got {self.size}, {self.margin}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        return cls(**{k: d[k] for k in ("size", "margin", "normalization") if k in d})


def crop_face(frame_bgr: np.ndarray, box: Box, margin: float = 0.0) -> np.ndarray:
    """The box grown by ``margin`` x its side on every side, clipped to the frame."""
    x, y, w, h = box
    dx, dy = round(w * margin), round(h * margin)
    height, width = frame_bgr.shape[:2]
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(width, x + w + dx), min(height, y + h + dy)
    return frame_bgr[y0:y1, x0:x1]


def to_input(images_bgr: list[np.ndarray] | np.ndarray, size: int) -> np.ndarray:
    """Resize BGR uint8 images to ``size`` x ``size``, as RGB in [0, 1]: (N, 3, S, S) float32."""
    out = np.empty((len(images_bgr), 3, size, size), dtype=np.float32)
    for i, img in enumerate(images_bgr):
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        interp = cv2.INTER_AREA if min(img.shape[:2]) >= size else cv2.INTER_LINEAR
        small = cv2.resize(img, (size, size), interpolation=interp)
        out[i] = small[:, :, ::-1].transpose(2, 0, 1)
    out *= np.float32(1 / 255)
    return out


def normalize(x: np.ndarray, normalization: str) -> np.ndarray:
    """Apply the model's normalisation to a batch in [0, 1] (returns a new array)."""
    if normalization == "unit":
        return x.astype(np.float32, copy=True)
    if normalization == "standardize":
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        std = x.std(axis=(1, 2, 3), keepdims=True)
        return ((x - mean) / np.maximum(std, 1e-3)).astype(np.float32)
    raise ValueError(f"unknown normalization {normalization!r}")


def preprocess(images_bgr: list[np.ndarray] | np.ndarray, pp: Preprocessing) -> np.ndarray:
    """Face crops (BGR uint8) -> network input, exactly as at training time (minus augmentation)."""
    return normalize(to_input(images_bgr, pp.size), pp.normalization)


def preprocess_faces(frame_bgr: np.ndarray, boxes: list[Box], pp: Preprocessing) -> np.ndarray:
    """Crop each box (with the model's margin) from a frame and preprocess the crops."""
    return preprocess([crop_face(frame_bgr, b, pp.margin) for b in boxes], pp)
