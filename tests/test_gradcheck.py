"""The public gradient checker: exact on known derivatives, and it catches a wrong backward."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import scratchnet as sn
import scratchnet.gradcheck
from scratchnet.gradcheck import check_layer, numerical_gradient


def test_docstring_example():
    assert doctest.testmod(scratchnet.gradcheck).failed == 0


def test_numerical_gradient_of_a_known_function_and_x_is_restored():
    x = np.array([[0.5, -1.0, 2.0]])
    before = x.copy()
    grad = numerical_gradient(lambda v: float(np.sum(v ** 3)), x)
    np.testing.assert_allclose(grad, 3 * before ** 2, rtol=1e-9)
    np.testing.assert_array_equal(x, before)


class LeakyBackward(sn.ReLU):
    """A ReLU whose backward forgets the mask: check_layer must notice."""

    def backward(self, dout):
        return dout


class WrongWeightGrad(sn.Dense):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["W"] *= 2
        return dx


def test_check_layer_catches_a_wrong_input_gradient():
    x = np.array([[-1.0, 2.0], [3.0, -0.5]])
    with pytest.raises(AssertionError, match="LeakyBackward: d loss / d x"):
        check_layer(LeakyBackward(), x)


def test_check_layer_catches_a_wrong_parameter_gradient():
    layer = WrongWeightGrad(2, 3, dtype=np.float64, rng=0)
    with pytest.raises(AssertionError, match="d loss / d W"):
        check_layer(layer, np.ones((2, 2)))


def test_check_layer_reports_errors_per_array_and_insists_on_float64():
    errors = check_layer(sn.Dense(3, 2, dtype=np.float64, rng=0), np.ones((2, 3)))
    assert set(errors) == {"x", "W", "b"} and max(errors.values()) < 1e-8
    with pytest.raises(ValueError, match="use float64"):
        check_layer(sn.Dense(3, 2, rng=0), np.ones((2, 3)))
