"""ReLU, Sigmoid, ELU and Softmax: gradients vs finite differences, values, extreme inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet.gradcheck import check_layer

shapes = st.lists(st.integers(1, 4), min_size=2, max_size=4)


def off_the_kink(shape, seed):
    """Random values with |x| in [0.1, 2]: at least 1e4 * h away from a kink at 0."""
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 2.0, shape)


@settings(max_examples=15)
@given(shape=shapes, seed=st.integers(0, 2**16), alpha=st.floats(0.1, 2.0))
@pytest.mark.parametrize("make", [sn.ReLU, sn.Sigmoid, sn.ELU], ids=["relu", "sigmoid", "elu"])
def test_elementwise_backward_matches_finite_differences(make, shape, seed, alpha):
    layer = make(alpha) if make is sn.ELU else make()
    check_layer(layer, off_the_kink(shape, seed), seed=seed)


@settings(max_examples=15)
@given(n=st.integers(1, 4), k=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_softmax_backward_matches_finite_differences(n, k, seed):
    x = np.random.default_rng(seed).standard_normal((n, k)) * 3
    check_layer(sn.Softmax(), x, seed=seed)


def test_values():
    x = np.array([[-2.0, 0.0, 3.0]], np.float32)
    np.testing.assert_array_equal(sn.ReLU().forward(x), [[0, 0, 3]])
    np.testing.assert_allclose(sn.Sigmoid().forward(x), 1 / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_allclose(sn.ELU(0.5).forward(x), [[0.5 * np.expm1(-2), 0, 3]], rtol=1e-6)
    p = sn.Softmax().forward(x)
    np.testing.assert_allclose(p, np.exp(x) / np.exp(x).sum(), rtol=1e-6)


def test_relu_gradient_at_zero_is_zero_like_pytorch():
    relu = sn.ReLU()
    relu.forward(np.array([[0.0, 1.0]]))
    np.testing.assert_array_equal(relu.backward(np.ones((1, 2))), [[0, 1]])


def test_relu_takes_strided_input_and_casts_the_gradient_to_its_dtype():
    relu = sn.ReLU()
    y = relu.forward(np.array([[-2, 1], [3, -4]], np.float32).T)  # not contiguous
    np.testing.assert_array_equal(y, [[0, 3], [1, 0]])
    dx = relu.backward(np.full((2, 2), 0.5))  # float64, cast to the forward's float32
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx, [[0, 0.5], [0.5, 0]])
    with pytest.raises(ValueError, match="ReLU: input has dtype int64 .* x.astype"):
        relu.forward(np.array([[-2, 1]]))  # integers: a one-line error (tests/test_dtypes.py)


@pytest.mark.parametrize("make", [sn.ReLU, sn.Sigmoid, sn.ELU, sn.Softmax])
def test_extreme_inputs_stay_finite_and_float32(make):
    x = np.array([[-1000.0, 0.0, 1000.0], [1000.0, 1000.0, -1000.0]], np.float32)
    layer = make()
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow either
        y = layer.forward(x, training=True)
        dx = layer.backward(np.ones_like(y))
    assert y.dtype == np.float32 and dx.dtype == np.float32
    assert np.isfinite(y).all() and np.isfinite(dx).all()


def test_softmax_of_extreme_logits():
    p = sn.Softmax().forward(np.array([[1000.0, -1000.0], [1000.0, 1000.0]]))
    np.testing.assert_array_equal(p, [[1, 0], [0.5, 0.5]])


def test_softmax_needs_a_class_axis():
    with pytest.raises(ValueError, match=r"expected \(N, K\) logits"):
        sn.Softmax().forward(np.zeros(3))
