"""One dtype rule for every layer: a layer computes in its parameters' dtype (without parameters,
in its input's); an input or dout of the other float dtype is cast once, on the way in; the
output, dx and grads are in that dtype. What cannot work is a one-line ValueError naming the
layer, the dtypes and the fix. Each mixed case is compared, exactly, with the same layer fed
arrays already in its dtype."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet.io import LAYERS

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
OTHER = {F32: F64, F64: F32}

# every layer class, as (make(dtype, seed), input shape); conv and max-pool on both their paths
CASES = {
    "Conv2D 3x3 (direct)": (lambda dt, s: sn.Conv2D(2, 3, 3, padding="same", dtype=dt, rng=s),
                            (2, 2, 5, 6)),
    "Conv2D 2x2/2 (im2col)": (lambda dt, s: sn.Conv2D(2, 3, 2, stride=2, padding=1, dtype=dt,
                                                      rng=s), (2, 2, 5, 6)),
    "Dense": (lambda dt, s: sn.Dense(5, 3, dtype=dt, rng=s), (4, 5)),
    "BatchNorm1D": (lambda dt, s: sn.BatchNorm1D(3, dtype=dt), (4, 3)),
    "BatchNorm2D": (lambda dt, s: sn.BatchNorm2D(2, dtype=dt), (3, 2, 3, 4)),
    "MaxPool2D 2x2": (lambda dt, s: sn.MaxPool2D(2), (2, 2, 4, 6)),
    "MaxPool2D 3x3/1": (lambda dt, s: sn.MaxPool2D(3, stride=1), (2, 2, 5, 5)),
    "AvgPool2D": (lambda dt, s: sn.AvgPool2D(2, stride=1), (2, 2, 4, 5)),
    "Flatten": (lambda dt, s: sn.Flatten(), (2, 3, 2, 2)),
    "Dropout": (lambda dt, s: sn.Dropout(0.4, rng=s), (3, 7)),
    "ReLU": (lambda dt, s: sn.ReLU(), (3, 4)),
    "Sigmoid": (lambda dt, s: sn.Sigmoid(), (3, 4)),
    "ELU": (lambda dt, s: sn.ELU(0.7), (3, 4)),
    "Softmax": (lambda dt, s: sn.Softmax(), (4, 3)),
}
WITH_PARAMS = [name for name, (make, _) in CASES.items() if make(F32, 0).params]


def test_every_layer_class_is_covered():
    assert {type(make(F32, 0)).__name__ for make, _ in CASES.values()} == set(LAYERS)


def build(name: str, dtype: np.dtype, replaced: bool, seed: int) -> sn.Layer:
    """The layer with random parameters (and buffers) of ``dtype``: made with that dtype, or
    made in the other one and then given new ``dtype`` arrays, as when loading weights."""
    make, _ = CASES[name]
    layer = make(OTHER[dtype] if replaced else dtype, seed)
    rng = np.random.default_rng(seed)
    for key, array in layer.params.items():
        values = rng.uniform(0.5, 1.5, array.shape) * rng.choice([-1, 1], array.shape)
        if replaced:
            layer.params[key] = values.astype(dtype)
        else:
            array[...] = values
    for array in layer.buffers.values():
        array[...] = rng.uniform(0.5, 2.0, array.shape)
    return layer


def twin_of(layer: sn.Layer, name: str, dtype: np.dtype, seed: int) -> sn.Layer:
    """A layer made in ``dtype`` with copies of ``layer``'s parameters and buffers."""
    twin = CASES[name][0](dtype, seed)
    twin.params = {k: v.copy() for k, v in layer.params.items()}
    twin.buffers = {k: v.copy() for k, v in layer.buffers.items()}
    return twin


@settings(max_examples=60)
@given(name=st.sampled_from(sorted(CASES)), params=st.sampled_from([F32, F64]),
       x_dtype=st.sampled_from([F32, F64]), g_dtype=st.sampled_from([F32, F64]),
       replaced=st.booleans(), training=st.booleans(), seed=st.integers(0, 2**16))
def test_mixed_dtypes_are_cast_once_at_the_boundary(name, params, x_dtype, g_dtype, replaced,
                                                     training, seed):
    layer = build(name, params, replaced, seed)
    computes = params if layer.params else x_dtype
    twin = twin_of(layer, name, computes, seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal(CASES[name][1]).astype(x_dtype)

    y = layer.forward(x, training)
    y_twin = twin.forward(x.astype(computes), training)
    assert y.dtype == computes
    np.testing.assert_array_equal(y, y_twin)

    g = rng.standard_normal(y.shape).astype(g_dtype)
    dx = layer.backward(g)
    dx_twin = twin.backward(g.astype(computes))
    assert dx.dtype == computes and dx.shape == x.shape
    np.testing.assert_array_equal(dx, dx_twin)
    for key, grad in layer.grads.items():
        assert grad.dtype == computes and grad.shape == layer.params[key].shape
        np.testing.assert_array_equal(grad, twin.grads[key])
    for key, buffer in layer.buffers.items():
        np.testing.assert_array_equal(buffer, twin.buffers[key])


def test_a_conv2d_given_float64_weights_from_elsewhere_computes_in_float64():
    conv = sn.Conv2D(3, 4, 3, padding="same", rng=0)  # float32, as built by default
    rng = np.random.default_rng(1)
    conv.params["W"], conv.params["b"] = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    reference = sn.Conv2D(3, 4, 3, padding="same", dtype=np.float64)
    reference.params["W"][...], reference.params["b"][...] = conv.params["W"], conv.params["b"]
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    y = conv.forward(x)
    assert conv.dtype == y.dtype == np.float64 and conv.config()["dtype"] == "float64"
    np.testing.assert_array_equal(y, reference.forward(x.astype(np.float64)))


def test_a_float32_dense_given_float64_input_returns_float32_like_conv2d():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    assert sn.Conv2D(3, 2, 3, rng=0).forward(x).dtype == np.float32
    assert sn.Dense(48, 2, rng=0).forward(x.reshape(2, 48)).dtype == np.float32


def test_a_network_of_mixed_layers_trains_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    net = sn.Sequential([sn.Conv2D(1, 4, 3, padding="same", rng=0), sn.ReLU(),
                         sn.BatchNorm2D(4), sn.MaxPool2D(2), sn.Flatten(),
                         sn.Dense(16, 2, rng=0), sn.Softmax()])
    conv = net.layers[0]
    conv.params = {k: v.astype(np.float64) for k, v in conv.params.items()}
    x, y = rng.standard_normal((16, 1, 4, 4)), rng.integers(0, 2, 16)
    history = net.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert conv.grads["W"].dtype == np.float64 and net.layers[5].grads["W"].dtype == np.float32
    sn.save(net, tmp_path / "mixed.npz")
    loaded = sn.load(tmp_path / "mixed.npz")
    assert loaded.layers[0].params["W"].dtype == np.float64
    np.testing.assert_array_equal(loaded.predict(x), net.eval().predict(x))


def test_optimizers_step_parameters_replaced_after_they_were_built():
    for make in (lambda ps: sn.Adam(ps, lr=0.1), lambda ps: sn.SGD(ps, lr=0.1, momentum=0.9)):
        layer = sn.Dense(3, 2, rng=0)
        optimizer = make(sn.Sequential([layer]).parameters())
        layer.params["W"] = layer.params["W"].astype(np.float64)
        layer.params["b"] = layer.params["b"].astype(np.float64)
        before = layer.params["W"].copy()
        layer.forward(np.ones((4, 3)))
        layer.backward(np.ones((4, 2)))
        optimizer.step()
        assert layer.params["W"].dtype == np.float64
        assert (layer.params["W"] < before).all()  # every gradient is positive here


# ---- what cannot work: one line naming the layer, the dtypes and the fix ---------------------


def one_line_error(call, *words: str) -> None:
    with pytest.raises(ValueError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and "astype" in message, message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("name", WITH_PARAMS)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_parameters_of_two_dtypes_in_one_layer_are_refused(name, dtype):
    layer = build(name, dtype, replaced=False, seed=0)
    key = list(layer.params)[-1]
    layer.params[key] = layer.params[key].astype(OTHER[dtype])
    x = np.zeros(CASES[name][1], dtype)
    one_line_error(lambda: layer.forward(x, True), type(layer).__name__, dtype.name,
                   OTHER[dtype].name, f"layer.params[{key!r}]")


@pytest.mark.parametrize("name", WITH_PARAMS)
def test_parameters_of_another_dtype_are_refused(name):
    layer = build(name, F32, replaced=False, seed=0)
    layer.params = {k: v.astype(np.float16) for k, v in layer.params.items()}
    x = np.zeros(CASES[name][1], F32)
    one_line_error(lambda: layer.forward(x), type(layer).__name__, "float16", "float32")


@pytest.mark.parametrize("name", sorted(CASES))
def test_integer_input_is_refused_by_every_layer(name):
    layer = CASES[name][0](F32, 0)
    x = np.zeros(CASES[name][1], np.int64)
    one_line_error(lambda: layer.forward(x), type(layer).__name__, "int64", "float32")


@pytest.mark.parametrize("name", sorted(CASES))
def test_float16_input_is_cast_by_layers_with_parameters_and_refused_by_the_others(name):
    layer = CASES[name][0](F64, 0)
    x = np.ones(CASES[name][1], F16)
    if layer.params:
        assert layer.forward(x).dtype == F64
    else:
        one_line_error(lambda: layer.forward(x), type(layer).__name__, "float16",
                       "float32 or float64")
