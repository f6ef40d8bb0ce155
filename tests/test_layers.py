"""Dense, Flatten and Dropout: gradients vs finite differences, values, statistics, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet.gradcheck import check_layer, numerical_gradient

dims = st.integers(1, 5)


@settings(max_examples=25)
@given(n=dims, fin=dims, fout=dims, seed=st.integers(0, 2**16))
def test_dense_backward_matches_finite_differences(n, fin, fout, seed):
    rng = np.random.default_rng(seed)
    layer = sn.Dense(fin, fout, dtype=np.float64, rng=rng)
    layer.params["b"][...] = rng.standard_normal(fout)
    check_layer(layer, rng.standard_normal((n, fin)), seed=seed)


def test_dense_is_x_at_w_plus_b_and_keeps_float32():
    layer = sn.Dense(3, 2, rng=0)
    layer.params["b"][...] = [1, -1]
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = layer.forward(x)
    assert y.dtype == np.float32 and layer.params["W"].shape == (3, 2)
    np.testing.assert_allclose(y, x @ layer.params["W"] + [1, -1], rtol=1e-6)
    assert layer.backward(np.ones_like(y)).dtype == np.float32


def test_dense_grads_are_overwritten_not_accumulated():
    layer = sn.Dense(4, 3, rng=0)
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    dout = np.ones((5, 3), np.float32)
    layer.forward(x)
    layer.backward(dout)
    first = {k: v.copy() for k, v in layer.grads.items()}
    layer.backward(dout)
    for k in first:
        np.testing.assert_array_equal(layer.grads[k], first[k])


def test_initialisers_have_the_documented_scale_and_are_seedable():
    he = sn.Dense(400, 300, rng=0).params["W"]
    assert abs(he.std() - np.sqrt(2 / 400)) < 0.02 * np.sqrt(2 / 400)
    glorot = sn.Dense(400, 300, init="glorot", rng=0).params["W"]
    limit = np.sqrt(6 / 700)
    assert glorot.min() >= -limit and glorot.max() <= limit and glorot.max() > 0.99 * limit
    np.testing.assert_array_equal(sn.init.he_normal((3, 4), 3, rng=7),
                                  sn.init.he_normal((3, 4), 3, rng=7))
    assert sn.init.glorot_uniform((3, 4), 3, 4, dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize(("shape", "match"), [
    ((2, 5), r"Dense: expected input \(N, 4\), got shape \(2, 5\)$"),
    ((2, 1, 2, 2), "add a Flatten"),
    ((4,), r"expected input \(N, 4\)"),
])
def test_dense_rejects_wrong_input_with_one_line(shape, match):
    with pytest.raises(ValueError, match=match):
        sn.Dense(4, 3).forward(np.zeros(shape, np.float32))


def test_dense_rejects_bad_arguments():
    with pytest.raises(ValueError, match="init must be"):
        sn.Dense(2, 2, init="zeros")
    with pytest.raises(ValueError, match=">= 1"):
        sn.Dense(0, 2)


@settings(max_examples=10)
@given(shape=st.lists(dims, min_size=2, max_size=4), seed=st.integers(0, 2**16))
def test_flatten_forward_and_backward(shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    layer = sn.Flatten()
    y = layer.forward(x)
    assert y.shape == (shape[0], int(np.prod(shape[1:])))
    check_layer(layer, x, seed=seed)


def test_flatten_needs_a_batch_axis():
    with pytest.raises(ValueError, match="rank >= 2"):
        sn.Flatten().forward(np.zeros(3))


def test_dropout_is_identity_in_eval():
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    layer = sn.Dropout(0.5, rng=0)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    np.testing.assert_array_equal(layer.backward(x), x)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics_are_inverted_dropout(p):
    x = np.ones((200, 500), np.float32)
    y = sn.Dropout(p, rng=1).forward(x, training=True)
    assert y.dtype == np.float32
    dropped = np.mean(y == 0)
    # 100,000 Bernoulli draws: the standard error of the rate is < 0.0016, so 0.01 is > 6 sigma.
    assert abs(dropped - p) < 0.01
    np.testing.assert_allclose(np.unique(y[y != 0]), [1 / (1 - p)], rtol=1e-6)
    assert abs(y.mean() - 1) < 0.03  # expected value preserved


def test_dropout_backward_uses_the_forward_mask():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 7))
    layer = sn.Dropout(0.4, rng=5)
    y = layer.forward(x, training=True)
    g = rng.standard_normal(x.shape)
    mask = np.where(y != 0, 1 / 0.6, 0)
    np.testing.assert_allclose(layer.backward(g), g * mask)

    def loss(v):  # the same mask every call: reseed the layer
        layer.rng = np.random.default_rng(5)
        return float(np.sum(layer.forward(v, training=True) * g))

    np.testing.assert_allclose(layer.backward(g), numerical_gradient(loss, x), rtol=1e-6,
                               atol=1e-9)


def test_dropout_masks_are_seedable_and_p_is_checked():
    x = np.ones((3, 8))
    a = sn.Dropout(0.5, rng=2).forward(x, training=True)
    b = sn.Dropout(0.5, rng=2).forward(x, training=True)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        sn.Dropout(1.0)


@pytest.mark.parametrize("make", [lambda: sn.ReLU(), lambda: sn.Conv2D(2, 3, 3, padding=1),
                                  lambda: sn.BatchNorm2D(2), lambda: sn.MaxPool2D(2),
                                  lambda: sn.Dropout(0.5, rng=0)])
def test_output_arrays_are_reused_only_when_nobody_holds_them(make):
    layer = make()
    rng = np.random.default_rng(0)
    x = [rng.standard_normal((2, 2, 4, 4)).astype(np.float32) for _ in range(4)]
    kept = layer.forward(x[0], training=True)  # held by the caller
    kept_copy = kept.copy()
    view = layer.forward(x[1], training=True)[0]  # only a view of the second is held
    view_copy = view.copy()
    addresses = {layer.forward(xi, training=True).ctypes.data for xi in x[2:] * 3}
    np.testing.assert_array_equal(kept, kept_copy)  # never written over
    np.testing.assert_array_equal(view, view_copy)
    assert len(addresses) <= 2  # released outputs come back instead of new allocations
