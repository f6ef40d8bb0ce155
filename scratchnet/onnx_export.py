"""Export a trained ``Sequential`` to ONNX, the file format inference engines read.

ONNX describes a network as a graph of standard operators (``Conv``, ``MaxPool``, ``Gemm``,
...) with the weights stored beside it, so the same file runs on ONNX Runtime, OpenCV's DNN
module, TensorRT and many other engines. Each scratchnet layer becomes one operator, in eval
mode (what inference runs):

=============================  ==========================================================
scratchnet layer               ONNX operator(s)
=============================  ==========================================================
Conv2D                         ``Conv`` (pads ``[top, left, bottom, right]``, strides)
MaxPool2D / AvgPool2D          ``MaxPool`` / ``AveragePool`` (no padding, floor: the
                               windows that would run off the edge are dropped)
Dense                          ``Gemm``: ``y = x @ W + b``, ``W`` stored (in, out)
Flatten                        ``Flatten`` (axis 1: keeps the batch axis)
ReLU / Sigmoid / ELU           ``Relu`` / ``Sigmoid`` / ``Elu`` (alpha)
Softmax                        ``Softmax`` (axis 1)
BatchNorm1D / BatchNorm2D      ``BatchNormalization`` with the running mean and variance
Dropout                        ``Identity`` (dropout does nothing at inference)
=============================  ==========================================================

The batch axis is dynamic (named ``N``): one file serves batch 1 and batch 256. Weights are
written as float32, what every engine runs. The ``onnx`` package (``pip install ".[onnx]"``)
builds the graph and checks it (:func:`onnx.checker.check_model`); it is imported only when
an export is asked for, so ``import scratchnet`` still needs only numpy and numba.

The graph reproduces ``net.forward(x, training=False)``. ``Sequential.predict`` also applies a
softmax when the last layer is not one; such a network's file outputs its logits.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from scratchnet.activations import ELU, ReLU, Sigmoid, Softmax
from scratchnet.base import Layer
from scratchnet.conv import Conv2D
from scratchnet.io import atomic_write
from scratchnet.layers import Dense, Dropout, Flatten
from scratchnet.model import Sequential
from scratchnet.normalization import BatchNorm1D, BatchNorm2D
from scratchnet.pooling import AvgPool2D, MaxPool2D

if TYPE_CHECKING:
    import onnx

#: The operator-set version the graph declares: ONNX Runtime reads it from version 1.17 (the
#: oldest the extra allows), OpenCV 4.14 too. IR version 9 is the file format that goes with it.
OPSET, IR_VERSION = 20, 9
INPUT, OUTPUT = "input", "output"
INSTALL_HINT = 'pip install ".[onnx]"'


class _Graph:
    """The nodes and weights of the graph being built, with unique names per layer."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self.nodes: list[Any] = []
        self.weights: list[Any] = []

    def inputs(self, x: str, name: str, arrays: dict[str, np.ndarray]) -> list[str]:
        """``x`` followed by ``arrays`` stored as float32 constants named ``<name>.<key>``, in
        the dict's order (an operator's inputs are positional)."""
        for key, array in arrays.items():
            self.weights.append(self.onnx.numpy_helper.from_array(array.astype(np.float32),
                                                                  f"{name}.{key}"))
        return [x, *(f"{name}.{key}" for key in arrays)]

    def node(self, op: str, inputs: Sequence[str], output: str, **attributes: Any) -> str:
        """Append one operator; returns the name of its output tensor."""
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [output], name=output,
                                                     **attributes))
        return output


# One function per layer class: (graph, layer, input tensor, prefix for names) -> output tensor.
Emitter = Callable[[_Graph, Any, str, str], str]


def _conv(g: _Graph, layer: Conv2D, x: str, name: str) -> str:
    (top, bottom), (left, right) = layer.pads
    return g.node("Conv", g.inputs(x, name, {"W": layer.params["W"], "b": layer.params["b"]}),
                  name, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                  pads=[top, left, bottom, right])


def _pool(op: str) -> Emitter:
    def emit(g: _Graph, layer: MaxPool2D | AvgPool2D, x: str, name: str) -> str:
        return g.node(op, [x], name, kernel_shape=list(layer.kernel_size),
                      strides=list(layer.stride))
    return emit


def _dense(g: _Graph, layer: Dense, x: str, name: str) -> str:
    # Gemm is alpha * A @ B + beta * C; with the defaults (alpha = beta = 1, nothing
    # transposed) that is x @ W + b.
    return g.node("Gemm", g.inputs(x, name, {"W": layer.params["W"], "b": layer.params["b"]}),
                  name)


def _batch_norm(g: _Graph, layer: BatchNorm1D | BatchNorm2D, x: str, name: str) -> str:
    # inference mode: (x - mean) / sqrt(var + epsilon) * scale + B, per channel (axis 1)
    arrays = {"gamma": layer.params["gamma"], "beta": layer.params["beta"],
              "running_mean": layer.buffers["running_mean"],
              "running_var": layer.buffers["running_var"]}
    return g.node("BatchNormalization", g.inputs(x, name, arrays), name, epsilon=layer.eps)


def _simple(op: str, **attributes: Any) -> Emitter:
    def emit(g: _Graph, layer: Layer, x: str, name: str) -> str:
        return g.node(op, [x], name, **attributes)
    return emit


def _elu(g: _Graph, layer: ELU, x: str, name: str) -> str:
    return g.node("Elu", [x], name, alpha=layer.alpha)


EMITTERS: dict[type[Layer], Emitter] = {
    Conv2D: _conv, MaxPool2D: _pool("MaxPool"), AvgPool2D: _pool("AveragePool"), Dense: _dense,
    Flatten: _simple("Flatten", axis=1), ReLU: _simple("Relu"), Sigmoid: _simple("Sigmoid"),
    ELU: _elu, Softmax: _simple("Softmax", axis=1), BatchNorm1D: _batch_norm,
    BatchNorm2D: _batch_norm, Dropout: _simple("Identity"),
}


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError(f"export_onnx needs the onnx package: {INSTALL_HINT}") from None
    return onnx


def to_onnx(net: Sequential, input_shape: Sequence[int],
            metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """The ONNX model of ``net`` in eval mode, checked by ``onnx.checker``.

    ``input_shape`` is one sample's shape without the batch axis, e.g. ``(3, 32, 32)``: the
    graph's input ``"input"`` is ``(N, *input_shape)`` float32 with a dynamic ``N``, its output
    ``"output"`` is what the last layer returns. ``metadata`` (string keys and values) goes
    into the model's ``metadata_props``. A layer with no ONNX equivalent, or an input shape the
    network cannot take, is a one-line ValueError.
    """
    for i, layer in enumerate(net.layers):
        if type(layer) not in EMITTERS:
            raise ValueError(f"export_onnx: layer {i} ({type(layer).__name__}) has no ONNX "
                             f"export; exportable: {', '.join(c.__name__ for c in EMITTERS)}")
    sample = np.zeros((1, *input_shape), dtype=np.float32)
    try:
        out_shape = net.forward(sample, training=False).shape
    except ValueError as e:
        raise ValueError(f"export_onnx: input_shape {tuple(input_shape)} does not fit the "
                         f"network: {e}") from None
    onnx = _import_onnx()
    g = _Graph(onnx)
    x = INPUT
    for i, layer in enumerate(net.layers):
        x = EMITTERS[type(layer)](g, layer, x, f"{i}.{type(layer).__name__}")
    g.node("Identity", [x], OUTPUT)

    def batch_of(name: str, shape: Sequence[int]) -> onnx.ValueInfoProto:
        return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                  ["N", *shape[1:]])

    graph = onnx.helper.make_graph(g.nodes, "scratchnet", [batch_of(INPUT, sample.shape)],
                                   [batch_of(OUTPUT, out_shape)], initializer=g.weights)
    model = onnx.helper.make_model(graph, producer_name="scratchnet", ir_version=IR_VERSION,
                                   opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    onnx.helper.set_model_props(model, metadata or {})
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(net: Sequential, path: str | os.PathLike, input_shape: Sequence[int],
                metadata: dict[str, str] | None = None) -> None:
    """Write ``net`` as an ONNX file at ``path``, atomically (see :func:`to_onnx`)."""
    data = to_onnx(net, input_shape, metadata).SerializeToString()
    with atomic_write(path, "wb") as f:
        f.write(data)
