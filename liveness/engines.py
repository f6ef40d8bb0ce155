"""Inference engines that run an exported (ONNX) network: OpenCV's DNN module, ONNX Runtime.

An engine plays the role of the network: ``predict(x, batch_size) -> outputs`` on a
preprocessed batch, exactly what ``scratchnet.Sequential.predict`` does, so a
:class:`liveness.net.LivenessModel` scores faces through scratchnet or through an engine with
the same preprocessing, threshold and report. ``--engine`` picks one on the command line:

* ``scratchnet`` (default): this project's own NumPy/Numba code, the network of a ``.npz``;
* ``opencv``: ``cv2.dnn.readNetFromONNX``, part of the OpenCV the project already needs;
* ``onnxruntime``: Microsoft's ONNX Runtime (``pip install ".[onnx]"``).

Both ONNX engines take the model as the bytes of an ONNX file (see ``LivenessModel.to_onnx``).
"""

from __future__ import annotations

import argparse
from typing import Any

import cv2
import numpy as np

from liveness.errors import UserError

ENGINES = ("scratchnet", "opencv", "onnxruntime")
INSTALL_HINT = 'pip install ".[onnx]"'


def _batches(run: Any, x: np.ndarray, batch_size: int) -> np.ndarray:
    """``run`` on consecutive batches of ``x`` (as contiguous float32), outputs concatenated."""
    if len(x) == 0:
        raise ValueError("predict: expected at least one sample, got an empty array")
    x = np.ascontiguousarray(x, dtype=np.float32)
    return np.concatenate([run(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


class OpenCVEngine:
    """An ONNX model on OpenCV's DNN module (CPU). Threads: ``cv2.setNumThreads``.

    OpenCV's Winograd algorithm for 3x3 convolutions is switched off: it trades accuracy for
    speed. With it, LivenessNet's logits (256 random inputs, logits up to 1.8) differed from
    scratchnet's by up to 1.5e-5, more than the 1e-5 this project holds every engine to;
    without it by 5.2e-6, as ONNX Runtime's (5.1e-6).
    """

    name = "opencv"

    def __init__(self, onnx_model: bytes) -> None:
        self.net = cv2.dnn.readNetFromONNX(np.frombuffer(onnx_model, np.uint8))
        self.net.enableWinograd(False)

    def _run(self, x: np.ndarray) -> np.ndarray:
        self.net.setInput(x)
        return self.net.forward()

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The network's output for ``x`` (N, ...), ``batch_size`` samples at a time."""
        return _batches(self._run, x, batch_size)


class OnnxRuntimeEngine:
    """An ONNX model in an ONNX Runtime session on the CPU, with ``threads`` threads (None:
    ONNX Runtime's default, one per core)."""

    name = "onnxruntime"

    def __init__(self, onnx_model: bytes, threads: int | None = None) -> None:
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(onnx_model, options,
                                            providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: x})[0]

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The network's output for ``x`` (N, ...), ``batch_size`` samples at a time."""
        return _batches(self._run, x, batch_size)


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or a one-line :class:`UserError` saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError(f"ONNX Runtime is not installed: {INSTALL_HINT} "
                        "(or run with --engine scratchnet or --engine opencv)") from None
    return onnxruntime


def make_engine(name: str, onnx_model: bytes) -> OpenCVEngine | OnnxRuntimeEngine:
    """The engine called ``name`` ("opencv" or "onnxruntime") running ``onnx_model``."""
    engines = {"opencv": OpenCVEngine, "onnxruntime": OnnxRuntimeEngine}
    if name not in engines:
        raise UserError(f"unknown engine {name!r}; use one of {', '.join(ENGINES)}")
    return engines[name](onnx_model)


def add_engine_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--engine`` option, shared by ``evaluate`` and ``demo``."""
    parser.add_argument(
        "--engine", choices=ENGINES, default="scratchnet",
        help="run the network on scratchnet (default), OpenCV's DNN module or ONNX Runtime "
             f"({INSTALL_HINT}); the model may then also be an ONNX file from `liveness export`")
