"""Element-wise activations (ReLU, Sigmoid, ELU) and Softmax, each a layer with its backward.

The element-wise layers work on arrays of any shape: ``y = f(x)`` and ``dx = dout * f'(x)``.
Softmax normalises over axis 1 (the class axis of an (N, K) batch of logits). Having no
parameters, each computes in its input's dtype (float32 or float64); a ``dout`` of the other
dtype is cast to it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet import kernels
from scratchnet.base import Layer


def log_softmax(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """``log softmax(x) = x - logsumexp(x)``, computed as ``z - log(sum(exp(z)))`` with
    ``z = x - max(x)``: every ``exp`` is of a number <= 0, so logits of +-1000 are fine."""
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def softmax(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """``softmax(x)_k = exp(x_k) / sum_j exp(x_j)``, shifted by the maximum (no overflow)."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


class ReLU(Layer):
    """Rectified linear unit.

    forward:  ``y = max(x, 0)``
    backward: ``dx = dout * [x > 0]``  (the kink at 0 gets gradient 0, like PyTorch)

    ``x > 0`` exactly where ``y > 0``, so backward reads the output ``y`` (kept from forward)
    instead of a separate mask. Both are loops in ``kernels.py`` (one pass over memory each).
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._cast_input(x)
        self._y = self._new_array("y", x.shape, x.dtype)
        kernels.relu_forward(x, self._y)
        return self._y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout = self._cast_grad(dout)
        dx = self._new_array("dx", dout.shape, dout.dtype)
        kernels.relu_backward(self._y, dout, dx)
        return dx


class Sigmoid(Layer):
    """Logistic function.

    forward:  ``y = 1 / (1 + exp(-x))``, computed as ``(1 + tanh(x/2)) / 2`` (no overflow)
    backward: ``dx = dout * y * (1 - y)``
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._cast_input(x)
        self._y = 0.5 * np.tanh(0.5 * x) + 0.5
        return self._y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self._cast_grad(dout) * self._y * (1 - self._y)


class ELU(Layer):
    """Exponential linear unit.

    forward:  ``y = x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``
    backward: ``dx = dout`` if ``x > 0`` else ``dout * (y + alpha)``  (as ``y + alpha = alpha e^x``)
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._cast_input(x)
        self._mask = x > 0
        # expm1 of min(x, 0): accurate near 0 and never overflows for large positive x.
        self._y = np.where(self._mask, x, self.alpha * np.expm1(np.minimum(x, 0)))
        return self._y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self._cast_grad(dout) * np.where(self._mask, 1.0, self._y + self.alpha)


class Softmax(Layer):
    """Softmax over axis 1: turns logits (N, K) into probabilities (N, K) that sum to 1.

    forward:  ``y_k = exp(x_k) / sum_j exp(x_j)``
    backward: the Jacobian is ``dy_k/dx_j = y_k ([k = j] - y_j)``, so
              ``dx = y * (dout - sum_k(dout_k * y_k))``  (one (N, 1) sum, no K x K matrix)

    For training, :class:`scratchnet.Sequential` computes the loss on the logits before a
    trailing Softmax (fused softmax cross-entropy, numerically stable), so this backward is used
    when you differentiate the probabilities themselves (saliency maps, gradient checks).
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim < 2:
            raise ValueError(f"Softmax: expected (N, K) logits, got shape {x.shape}")
        self._y = softmax(self._cast_input(x), axis=1)
        return self._y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        y, dout = self._y, self._cast_grad(dout)
        return y * (dout - (dout * y).sum(axis=1, keepdims=True))
