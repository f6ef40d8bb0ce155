"""``liveness export MODEL.npz --out model.onnx``: the trained model as an ONNX file.

The file holds the network (``scratchnet.onnx_export``) and, in its metadata, everything a
deployment needs to use it correctly: input size, channel order, normalisation, class names and
the decision threshold (:meth:`liveness.net.LivenessModel.onnx_metadata`). Before the file is
written, the export is run on the engines at hand (OpenCV's DNN module, and ONNX Runtime when
installed) on random inputs, and their outputs are compared with scratchnet's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from liveness.engines import INSTALL_HINT, make_engine
from liveness.errors import UserError
from liveness.net import LivenessModel, load_model
from liveness.preprocess import normalize
from scratchnet.io import atomic_write

#: How close every engine's outputs must be to scratchnet's, on this many random inputs.
TOLERANCE, CHECK_SAMPLES = 1e-5, 32

EXAMPLE = """\
run it with ONNX Runtime (x: the views of N faces, preprocessed as the file's metadata says):
  session = onnxruntime.InferenceSession("model.onnx")
  p = session.run(None, {"input": x})[0][:, 1]   # P(real) per view: combine as "patches" says
"""


def engine_differences(model: LivenessModel, onnx_model: bytes, n: int = CHECK_SAMPLES,
                       seed: int = 0) -> dict[str, float]:
    """The largest difference between scratchnet's outputs and each engine's, on ``n`` random
    images preprocessed like the model's own input; engines not installed are left out."""
    size = model.preprocessing.size
    images = np.random.default_rng(seed).random((n, 3, size, size), dtype=np.float32)
    x = normalize(images, model.preprocessing.normalization)
    reference = model.net.predict(x)
    differences = {}
    for name in ("opencv", "onnxruntime"):
        try:
            engine = make_engine(name, onnx_model)
        except UserError:  # ONNX Runtime is optional
            continue
        differences[name] = float(np.abs(engine.predict(x) - reference).max())
    return differences


def export(model: LivenessModel, out: str | Path) -> dict[str, float]:
    """Write ``model`` as an ONNX file to ``out`` once the engines agree with scratchnet;
    returns each engine's largest difference from scratchnet."""
    onnx_model = model.to_onnx()
    differences = engine_differences(model, onnx_model)
    off = {name: d for name, d in differences.items() if d > TOLERANCE}
    if off:
        raise UserError("the ONNX export differs from scratchnet by "
                        + ", ".join(f"{d:.1e} on {name}" for name, d in off.items())
                        + f" (more than {TOLERANCE:g}); please report this as a bug")
    with atomic_write(out, "wb") as f:
        f.write(onnx_model)
    return differences


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLE
    parser.add_argument("model", help="model file written by `liveness train` (model.npz)")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="the ONNX file to write (e.g. model.onnx)")


def run(args: argparse.Namespace) -> int:
    if Path(args.model).suffix.lower() == ".onnx":
        raise UserError(f"{args.model} is already an ONNX file; export the model.npz written "
                        "by `liveness train`")
    model = load_model(args.model)
    differences = export(model, args.out)
    pp = model.preprocessing
    print(f"wrote {args.out}: input (N, 3, {pp.size}, {pp.size}) RGB, {pp.views} per face, "
          f"normalization {pp.normalization}, output P(fake), P(real); "
          f"threshold {model.threshold:.4f}")
    checks = ", ".join(f"{name} {d:.1e}" for name, d in differences.items())
    print(f"largest difference from scratchnet on {CHECK_SAMPLES} random inputs: {checks}")
    if "onnxruntime" not in differences:
        print(f"ONNX Runtime is not installed ({INSTALL_HINT}): not checked on it")
    return 0
