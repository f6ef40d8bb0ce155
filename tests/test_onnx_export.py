"""ONNX export: random networks of every exportable layer give scratchnet's outputs on OpenCV DNN
and ONNX Runtime (to 1e-5 in float32), with a dynamic batch; errors, atomic writes, imports."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.util import find_spec

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_normalization import randomised  # batch norm's gamma, beta and statistics

import scratchnet as sn
from liveness.engines import OnnxRuntimeEngine, OpenCVEngine
from liveness.net import build_livenessnet
from scratchnet.onnx_export import EMITTERS, IR_VERSION, OPSET, to_onnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # subprocesses run here
needs_onnx = pytest.mark.skipif(find_spec("onnx") is None,
                                reason='onnx not installed (pip install ".[onnx]"): export '
                                       "tests skipped")
HAS_ORT = find_spec("onnxruntime") is not None
ENGINES = [pytest.param(OpenCVEngine, id="opencv"),
           pytest.param(OnnxRuntimeEngine, id="onnxruntime", marks=pytest.mark.skipif(
               not HAS_ORT, reason='onnxruntime not installed (pip install ".[onnx]"): '
                                   "ONNX Runtime parity skipped"))]


def randomise(layer: sn.Layer, rng: np.random.Generator) -> sn.Layer:
    """Non-trivial biases and batch-norm statistics (a fresh layer has zeros and ones)."""
    if "b" in layer.params:
        layer.params["b"][...] = rng.normal(0, 0.5, layer.params["b"].shape)
    return randomised(layer, rng) if "gamma" in layer.params else layer


PAIRS = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))
KERNELS = st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4)))
PADDINGS = st.one_of(st.just("valid"), st.integers(0, 2),
                     st.tuples(st.integers(0, 2), st.integers(0, 2)))
EXTRAS = ["pool", "bn", "relu", "sigmoid", "elu", "softmax", "dropout"]


def conv(draw: st.DrawFn, channels: int, seed: int, strides: st.SearchStrategy = PAIRS
         ) -> sn.Conv2D:
    """Any kernel and padding Conv2D accepts ("same": with stride 1 only), a stride drawn
    from ``strides``."""
    stride = draw(strides)
    padding = draw(st.one_of(PADDINGS, st.just("same")) if stride == 1 else PADDINGS)
    return sn.Conv2D(channels, draw(st.integers(1, 4)), draw(KERNELS), stride, padding,
                     rng=seed)


def pool(draw: st.DrawFn) -> sn.MaxPool2D | sn.AvgPool2D:
    """Max or average pooling; a stride smaller than the window makes windows overlap."""
    cls = draw(st.sampled_from([sn.MaxPool2D, sn.AvgPool2D]))
    return cls(draw(PAIRS), draw(st.one_of(st.none(), PAIRS)))


def extra(draw: st.DrawFn, kind: str, features: int, bn: type) -> sn.Layer:
    """A layer that keeps the shape (or pools), for ``features`` channels."""
    if kind == "pool":
        return pool(draw)
    if kind == "bn":
        return bn(features, eps=draw(st.sampled_from([1e-5, 1e-3])))
    if kind == "elu":
        return sn.ELU(draw(st.floats(0.1, 2)))
    if kind == "dropout":
        return sn.Dropout(draw(st.floats(0, 0.9)))
    return {"relu": sn.ReLU, "sigmoid": sn.Sigmoid, "softmax": sn.Softmax}[kind]()


def output_shape(layer: sn.Layer, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The layer's output shape for one sample of ``shape``, None if it does not fit."""
    try:
        return layer.forward(np.zeros((1, *shape), np.float32)).shape[1:]
    except ValueError:
        return None


@st.composite
def networks(draw: st.DrawFn) -> tuple[sn.Sequential, tuple[int, ...]]:
    """A random network and its input shape: 1-3 convolutions, each followed by up to two
    other layers (pooling, batch norm, activations, softmax, dropout), then Flatten; or flat
    input. Then up to four of Dense, BatchNorm1D, activations, Softmax, Dropout."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    layers: list[sn.Layer] = []

    def add(layer: sn.Layer, shape: tuple[int, ...]) -> tuple[int, ...]:
        new = output_shape(layer, shape)
        if new is None:  # it does not fit: leave it out
            return shape
        layers.append(randomise(layer, rng))
        return new

    if draw(st.booleans()):
        shape: tuple[int, ...] = (draw(st.integers(1, 3)), draw(st.integers(4, 10)),
                                  draw(st.integers(4, 10)))
        input_shape = shape
        for _ in range(draw(st.integers(1, 3))):
            # stride 1 or 2, so that the maps stay large enough for more layers
            shape = add(conv(draw, shape[0], int(rng.integers(99)), st.integers(1, 2)), shape)
            for kind in draw(st.lists(st.sampled_from(EXTRAS), max_size=2)):
                shape = add(extra(draw, kind, shape[0], sn.BatchNorm2D), shape)
        layers.append(sn.Flatten())
        features = int(np.prod(shape))
    else:
        features = draw(st.integers(1, 6))
        input_shape = (features,)
    for kind in draw(st.lists(st.sampled_from(["dense", *EXTRAS[1:]]), min_size=1,
                              max_size=4)):
        if kind == "dense":
            out = draw(st.integers(1, 5))
            layers.append(randomise(sn.Dense(features, out, rng=rng), rng))
            features = out
        else:
            layers.append(randomise(extra(draw, kind, features, sn.BatchNorm1D), rng))
    return sn.Sequential(layers).eval(), input_shape


def assert_close(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


def check_engine(engine: type, net: sn.Sequential, input_shape: tuple[int, ...], n: int,
                 seed: int) -> None:
    """The export of ``net`` on ``engine`` gives scratchnet's outputs, at batch n and 1."""
    x = np.random.default_rng(seed).standard_normal((n, *input_shape)).astype(np.float32)
    run = engine(to_onnx(net, input_shape).SerializeToString())
    assert_close(run.predict(x), net.forward(x))
    assert_close(run.predict(x[:1]), net.forward(x[:1]))  # the batch size is not fixed


@needs_onnx
@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=40)
@given(case=networks(), n=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_random_networks_give_scratchnets_outputs(engine, case, n, seed):
    check_engine(engine, *case, n, seed)


@needs_onnx
@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=40)
@given(data=st.data(), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       n=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_every_convolution_and_pooling_setting(engine, data, c, h, w, n, seed):
    layer = conv(data.draw, c, seed) if data.draw(st.booleans()) else pool(data.draw)
    assume(output_shape(layer, (c, h, w)) is not None)
    check_engine(engine, sn.Sequential([randomise(layer, np.random.default_rng(seed))]),
                 (c, h, w), n, seed)


def test_random_networks_cover_every_exportable_layer():
    seen: set[type] = set()

    @settings(max_examples=200, derandomize=True, database=None)
    @given(case=networks())
    def collect(case):
        seen.update(type(layer) for layer in case[0].layers)

    collect()
    assert seen == set(EMITTERS)


@needs_onnx
@pytest.mark.parametrize("engine", ENGINES)
def test_livenessnet_with_trained_statistics(engine):
    rng = np.random.default_rng(0)
    net = build_livenessnet(32, seed=1)
    for layer in net.layers:
        randomise(layer, rng)
    x = rng.random((300, 3, 32, 32), dtype=np.float32)  # more than one engine batch (256)
    assert_close(engine(to_onnx(net, (3, 32, 32)).SerializeToString()).predict(x),
                 net.eval().predict(x))


@needs_onnx
def test_float64_network_is_written_as_float32():
    rng = np.random.default_rng(0)
    net = sn.Sequential([sn.Conv2D(2, 3, 3, dtype=np.float64, rng=0), sn.ReLU(), sn.Flatten(),
                         randomise(sn.Dense(12, 2, dtype=np.float64, rng=0), rng)])
    model = to_onnx(net, (2, 4, 4))
    assert all(t.data_type == 1 for t in model.graph.initializer)  # 1: FLOAT
    x = rng.standard_normal((3, 2, 4, 4))
    assert_close(OpenCVEngine(model.SerializeToString()).predict(x), net.forward(x))


@needs_onnx
def test_file_declares_opset_dynamic_batch_and_metadata(tmp_path):
    import onnx

    net = sn.Sequential([sn.Flatten(), sn.Dense(12, 2, rng=0), sn.Softmax()])
    sn.export_onnx(net, tmp_path / "m.onnx", (3, 2, 2), metadata={"classes": "a,b"})
    model = onnx.load(tmp_path / "m.onnx")
    assert model.opset_import[0].version == OPSET and model.ir_version == IR_VERSION
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (model.graph.input[0], model.graph.output[0])]
    assert dims == [["N", 3, 2, 2], ["N", 2]]
    assert {p.key: p.value for p in model.metadata_props} == {"classes": "a,b"}
    assert [n.op_type for n in model.graph.node] == ["Flatten", "Gemm", "Softmax", "Identity"]


class Square(sn.Layer):
    def forward(self, x, training=False):
        return x * x


@needs_onnx
def test_unexportable_layer_and_wrong_shape_are_one_line_errors(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(ValueError, match=r"^export_onnx: layer 1 \(Square\) has no ONNX") as e:
        sn.export_onnx(sn.Sequential([sn.ReLU(), Square()]), path, (3,))
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"input_shape \(3,\) does not fit .*Dense"):
        sn.export_onnx(sn.Sequential([sn.Dense(4, 2)]), path, (3,))
    assert path.read_bytes() == b"previous"  # nothing written, no temporary file left
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_missing_onnx_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` fail
    with pytest.raises(ImportError, match=r'pip install "\.\[onnx\]"'):
        to_onnx(sn.Sequential([sn.ReLU()]), (2,))


def test_scratchnet_imports_neither_onnx_nor_opencv():
    code = ("import sys, scratchnet; "
            "print(sorted({'onnx', 'onnxruntime', 'cv2', 'liveness'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"
