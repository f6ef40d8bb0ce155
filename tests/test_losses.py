"""SoftmaxCrossEntropy: values, gradient vs finite differences, logits of +-1000, bad labels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet.gradcheck import numerical_gradient


@settings(max_examples=25)
@given(n=st.integers(1, 6), k=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_value_and_gradient(n, k, seed):
    rng = np.random.default_rng(seed)
    logits, labels = rng.normal(0, 3, (n, k)), rng.integers(0, k, n)
    loss = sn.SoftmaxCrossEntropy()
    value = loss.forward(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert value == pytest.approx(-np.log(p[np.arange(n), labels]).mean(), rel=1e-12)
    grad = loss.backward()
    numeric = numerical_gradient(lambda z: sn.SoftmaxCrossEntropy().forward(z, labels), logits)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_uniform_logits_give_log_k():
    assert sn.SoftmaxCrossEntropy()(np.zeros((3, 4)), np.array([0, 1, 3])) == pytest.approx(
        np.log(4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logits_of_plus_minus_1000_are_exact_and_finite(dtype):
    logits = np.array([[1000, -1000], [1000, -1000], [-1000, 1000], [1000, 1000]], dtype)
    labels = np.array([0, 1, 1, 0])
    loss = sn.SoftmaxCrossEntropy()
    # per sample: 0, 2000, 0, log 2
    assert loss.forward(logits, labels) == pytest.approx((2000 + np.log(2)) / 4, rel=1e-6)
    grad = loss.backward()
    assert grad.dtype == dtype and np.isfinite(grad).all()
    np.testing.assert_allclose(grad, np.array([[0, 0], [1, -1], [0, 0], [-0.5, 0.5]]) / 4,
                               atol=1e-7)


@pytest.mark.parametrize(("logits", "labels", "match"), [
    (np.zeros((2, 3)), np.array([0, 3]), r"labels must be in \[0, 3\)"),
    (np.zeros((2, 3)), np.array([0, -1]), r"labels must be in \[0, 3\)"),
    (np.zeros((2, 3)), np.array([0.0, 1.0]), "expected 2 integer labels"),
    (np.zeros((2, 3)), np.array([0, 1, 1]), "expected 2 integer labels"),
    (np.zeros(3), np.array([0]), r"expected logits \(N, classes\)"),
])
def test_bad_input_is_a_one_line_error(logits, labels, match):
    with pytest.raises(ValueError, match=match):
        sn.SoftmaxCrossEntropy().forward(logits, labels)
