"""BatchNorm1D/2D: gradients (train and eval) vs finite differences, PyTorch running-stat
semantics, train/eval behaviour, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet.gradcheck import check_layer


def randomised(layer, rng):
    """Move gamma, beta and the running statistics away from their defaults."""
    c = layer.num_features
    layer.params["gamma"][...] = rng.uniform(0.5, 2.0, c)
    layer.params["beta"][...] = rng.normal(0, 1, c)
    layer.buffers["running_mean"][...] = rng.normal(0, 1, c)
    layer.buffers["running_var"][...] = rng.uniform(0.3, 3.0, c)
    return layer


@st.composite
def bn_case(draw):
    two_d = draw(st.booleans())
    c = draw(st.integers(1, 4))
    n = draw(st.integers(2, 5))
    shape = (n, c, draw(st.integers(1, 3)), draw(st.integers(1, 3))) if two_d else (n, c)
    return (sn.BatchNorm2D if two_d else sn.BatchNorm1D), shape


@settings(max_examples=30)
@given(case=bn_case(), training=st.booleans(), seed=st.integers(0, 2**16))
def test_backward_matches_finite_differences(case, training, seed):
    make, shape = case
    rng = np.random.default_rng(seed)
    layer = randomised(make(shape[1], dtype=np.float64), rng)
    x = rng.normal(1.0, 2.0, shape)
    check_layer(layer, x, training=training, seed=seed)


def test_training_normalises_each_channel_and_updates_running_stats_like_pytorch():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (8, 3, 4, 5)).astype(np.float32)
    bn = sn.BatchNorm2D(3, momentum=0.2)
    y = bn.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-3)  # eps = 1e-5 shrinks it
    mu, var_unbiased = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.2 * mu, rtol=1e-5)
    np.testing.assert_allclose(bn.buffers["running_var"], 0.8 + 0.2 * var_unbiased, rtol=1e-5)
    assert y.dtype == np.float32 and bn.buffers["running_var"].dtype == np.float32


def test_eval_uses_running_stats_and_leaves_them_alone():
    rng = np.random.default_rng(1)
    bn = randomised(sn.BatchNorm1D(4, dtype=np.float64), rng)
    before = {k: v.copy() for k, v in bn.buffers.items()}
    x = rng.standard_normal((5, 4))
    y = bn.forward(x, training=False)
    expected = ((x - before["running_mean"]) / np.sqrt(before["running_var"] + 1e-5)
                * bn.params["gamma"] + bn.params["beta"])
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    for k, v in bn.buffers.items():
        np.testing.assert_array_equal(v, before[k])


def test_running_stats_converge_to_the_data_statistics():
    rng = np.random.default_rng(2)
    bn = sn.BatchNorm1D(2)
    for _ in range(200):
        bn.forward(rng.normal([5.0, -1.0], [2.0, 0.5], (64, 2)).astype(np.float32), training=True)
    np.testing.assert_allclose(bn.buffers["running_mean"], [5.0, -1.0], atol=0.2)
    np.testing.assert_allclose(bn.buffers["running_var"], [4.0, 0.25], rtol=0.15)


@pytest.mark.parametrize(("layer", "shape", "match"), [
    (sn.BatchNorm1D(3), (4, 2), r"BatchNorm1D: expected input \(N, 3\), got shape \(4, 2\)$"),
    (sn.BatchNorm2D(3), (4, 3), r"expected input \(N, 3, H, W\)"),
    (sn.BatchNorm2D(3), (4, 2, 5, 5), r"expected input \(N, 3, H, W\)"),
])
def test_rejects_wrong_input(layer, shape, match):
    with pytest.raises(ValueError, match=match):
        layer.forward(np.zeros(shape, np.float32), training=True)


def test_training_on_a_single_value_per_channel_is_an_error_but_eval_is_fine():
    bn = sn.BatchNorm1D(3)
    with pytest.raises(ValueError, match="more than one value per channel"):
        bn.forward(np.ones((1, 3), np.float32), training=True)
    assert bn.forward(np.ones((1, 3), np.float32)).shape == (1, 3)
