"""The one preprocessing path shared by train, evaluate, demo and explain.

Train/serve skew (a model trained on one kind of input and served another) is the classic
failure of liveness tools, so every command goes through these functions, and the settings
travel inside the model file (:meth:`Preprocessing.to_dict`).

Steps: crop the face box with a margin (frames only) -> resize to ``size`` x ``size`` ->
BGR to RGB, scale to [0, 1], NCHW float32 (:func:`to_input`) -> [augmentation, training only]
-> normalise (:func:`normalize`).

Patch mode (``face_size > 0``, the "patch-based CNN" of Atoum et al., IJCB 2017): the face is
resized to ``face_size`` x ``face_size`` instead, so it keeps more of the texture that tells
skin from a screen (moire, pixel grid, glare), and the network sees ``size`` x ``size``
patches of it: one random patch per face in each training batch (:func:`random_views`),
and a fixed ``grid`` x ``grid`` of patches at use time (:func:`grid_patches`), whose P(real)
are averaged into the face's score. With ``whole`` the whole face, resized to ``size``, is one
more view (drawn for half of the training samples), and the face's score is the mean of two
scales: the whole face's P(real) and the mean of its patches'. Each face has ``views``
consecutive network inputs, the patches first.
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
    face_size: 0 feeds the whole face resized to ``size``; a larger number resizes the face
        to ``face_size`` and feeds ``size`` x ``size`` patches of it (patch mode).
    grid: patch mode only: the face's score is the mean over ``grid`` x ``grid`` patches,
        evenly spaced from corner to corner.
    whole: patch mode only: the whole face at ``size`` is a view too, and scores half.
    """

    size: int = 32
    margin: float = 0.0
    normalization: str = "unit"
    face_size: int = 0
    grid: int = 3
    whole: bool = False

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, "
                             f"got {self.normalization!r}")
        if self.size < 4 or self.margin < 0:
            raise ValueError(f"need size >= 4 and margin >= 0, got {self.size}, {self.margin}")
        if self.face_size and (self.face_size <= self.size or self.grid < 1):
            raise ValueError(f"patch mode needs face_size > size ({self.size}) and grid >= 1, "
                             f"got face_size {self.face_size}, grid {self.grid}")

    @property
    def load_size(self) -> int:
        """The side a face crop is resized to first (``face_size`` in patch mode)."""
        return self.face_size or self.size

    @property
    def views(self) -> int:
        """Network inputs per face: ``grid**2`` patches (+ the whole face) in patch mode, else 1."""
        return self.grid ** 2 + self.whole if self.face_size else 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        names = ("size", "margin", "normalization", "face_size", "grid", "whole")
        return cls(**{k: d[k] for k in names if k in d})


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


def patch_starts(face_size: int, size: int, grid: int) -> list[int]:
    """Where the ``grid`` patches of one row (or column) start: evenly spaced from 0 to
    ``face_size - size``, or the centre for ``grid=1``."""
    room = face_size - size
    return np.rint(np.linspace(0, room, grid)).astype(int).tolist() if grid > 1 else [room // 2]


def grid_patches(faces: np.ndarray, size: int, grid: int) -> np.ndarray:
    """(N, C, F, F) faces -> (N * grid**2, C, size, size): each face's ``grid`` x ``grid``
    patches, row by row, evenly spaced from the top-left to the bottom-right corner (one
    centred patch for ``grid=1``). With F = grid * size they tile the face exactly."""
    starts = patch_starts(faces.shape[-1], size, grid)
    patches = [faces[:, :, r:r + size, c:c + size] for r in starts for c in starts]
    return np.stack(patches, axis=1).reshape(-1, faces.shape[1], size, size)


def shrink(faces: np.ndarray, size: int) -> np.ndarray:
    """(N, C, F, F) -> (N, C, size, size), area-averaged (the whole face at network size)."""
    out = np.empty((*faces.shape[:2], size, size), dtype=faces.dtype)
    for i, face in enumerate(faces):
        small = cv2.resize(face.transpose(1, 2, 0), (size, size), interpolation=cv2.INTER_AREA)
        out[i] = small.reshape(size, size, -1).transpose(2, 0, 1)
    return out


def random_views(faces: np.ndarray, pp: Preprocessing, rng: np.random.Generator) -> np.ndarray:
    """One training view per face: a ``size`` x ``size`` patch at a uniformly random place, or
    (with ``pp.whole``, for each face with probability 1/2) the whole face shrunk to ``size``."""
    room = faces.shape[-1] - pp.size
    rows, cols = rng.integers(0, room + 1, (2, len(faces)))
    out = np.stack([f[:, r:r + pp.size, c:c + pp.size]
                    for f, r, c in zip(faces, rows, cols, strict=True)])
    if pp.whole:
        pick = rng.random(len(faces)) < 0.5
        out[pick] = shrink(faces[pick], pp.size)
    return out


def network_input(faces: np.ndarray, pp: Preprocessing) -> np.ndarray:
    """Faces in [0, 1] at ``pp.load_size`` -> normalised network input, ``pp.views`` per face."""
    if not pp.face_size:
        return normalize(faces, pp.normalization)
    n, channels = faces.shape[:2]
    views = grid_patches(faces, pp.size, pp.grid).reshape(n, -1, channels, pp.size, pp.size)
    if pp.whole:
        views = np.concatenate([views, shrink(faces, pp.size)[:, None]], axis=1)
    return normalize(views.reshape(-1, *views.shape[2:]), pp.normalization)


def preprocess(images_bgr: list[np.ndarray] | np.ndarray, pp: Preprocessing) -> np.ndarray:
    """Face crops (BGR uint8) -> network input, exactly as at training time (minus augmentation):
    ``pp.views`` consecutive rows per face."""
    return network_input(to_input(images_bgr, pp.load_size), pp)


def preprocess_faces(frame_bgr: np.ndarray, boxes: list[Box], pp: Preprocessing) -> np.ndarray:
    """Crop each box (with the model's margin) from a frame and preprocess the crops."""
    return preprocess([crop_face(frame_bgr, b, pp.margin) for b in boxes], pp)
