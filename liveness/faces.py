"""Face detection behind one small interface: ``detector.detect(frame_bgr) -> list[Box]``.

``gather`` and ``demo`` both take a detector made by :func:`make_detector`, so a better
detector plugs in everywhere at once. The default is OpenCV's Haar frontal-face cascade,
which ships inside ``opencv-python`` 4.x and works offline. OpenCV's DNN detector
``FaceDetectorYN`` (YuNet) is supported with a model file the user supplies.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Protocol

import cv2
import numpy as np

from liveness.errors import UserError


class Box(NamedTuple):
    """A face box in pixels: top-left corner ``(x, y)``, width ``w`` and height ``h``."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h


class FaceDetector(Protocol):
    def detect(self, frame_bgr: np.ndarray) -> list[Box]:
        """Faces in a BGR uint8 frame, largest first."""
        ...


def _largest_first(boxes: list[Box]) -> list[Box]:
    return sorted(boxes, key=lambda b: b.area, reverse=True)


class HaarDetector:
    """OpenCV's Haar cascade (``haarcascade_frontalface_default.xml`` from ``cv2.data``).

    ``scale_factor`` trades speed for recall (1.1 finds more faces, 1.3 is ~3x faster);
    ``downscale`` runs detection on a frame shrunk so its width is at most that many pixels,
    then maps boxes back to full resolution.
    """

    def __init__(
        self,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 40,
        downscale: int | None = None,
    ) -> None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise UserError(f"cannot load the Haar cascade {path}; reinstall opencv-python 4.x")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.downscale = downscale

    def detect(self, frame_bgr: np.ndarray) -> list[Box]:
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY) if frame_bgr.ndim == 3 else frame_bgr
        scale = 1.0
        if self.downscale and gray.shape[1] > self.downscale:
            scale = gray.shape[1] / self.downscale
            size = (self.downscale, round(gray.shape[0] / scale))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        min_px = max(1, round(self.min_size / scale))
        found = self.cascade.detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(min_px, min_px),
        )
        boxes = [Box(*(round(v * scale) for v in b)) for b in np.asarray(found).reshape(-1, 4)]
        return _largest_first(boxes)


class YuNetDetector:
    """OpenCV's ``FaceDetectorYN`` with a user-supplied ONNX model (e.g. face_detection_yunet)."""

    def __init__(self, model_path: str | Path, score_threshold: float = 0.8, min_size: int = 40):
        model_path = Path(model_path)
        if not model_path.is_file():
            raise UserError(f"detector model {model_path} not found; pass an existing .onnx file")
        try:
            self.net = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), score_threshold)
        except cv2.error as e:
            raise UserError(f"cannot load detector model {model_path}: {e.msg.strip()}") from None
        self.min_size = min_size

    def detect(self, frame_bgr: np.ndarray) -> list[Box]:
        h, w = frame_bgr.shape[:2]
        self.net.setInputSize((w, h))
        _, faces = self.net.detect(frame_bgr)
        boxes = [] if faces is None else [Box(*(int(round(v)) for v in f[:4])) for f in faces]
        return _largest_first([b for b in boxes if min(b.w, b.h) >= self.min_size])


def make_detector(spec: str = "haar", min_size: int = 40) -> FaceDetector:
    """Build a detector from a command-line spec.

    ``haar`` (default), ``haar:1.3`` (Haar with scale factor 1.3), or ``yunet:PATH.onnx`` /
    a path ending in ``.onnx`` (OpenCV FaceDetectorYN with that model).
    """
    kind, _, arg = spec.partition(":")
    if kind == "haar":
        try:
            scale = float(arg) if arg else 1.1
        except ValueError:
            raise UserError(f"bad detector {spec!r}: use haar or haar:SCALE, "
                            "e.g. haar:1.2") from None
        return HaarDetector(scale_factor=scale, min_size=min_size)
    if kind == "yunet":
        return YuNetDetector(arg, min_size=min_size)
    if spec.lower().endswith(".onnx"):
        return YuNetDetector(spec, min_size=min_size)
    raise UserError(f"unknown detector {spec!r}: use haar, haar:SCALE or yunet:MODEL.onnx")
