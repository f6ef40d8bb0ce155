"""Dense (fully connected), Flatten and Dropout layers.

Layers check the rank and size of their input (cheap); the finite-value check is done once per
batch by :class:`scratchnet.Sequential` on the network input, not in every layer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scratchnet import kernels
from scratchnet.base import Layer
from scratchnet.blas import one_blas_thread
from scratchnet.init import RngLike, glorot_uniform, he_normal


class Dense(Layer):
    """Fully connected layer: every output is a weighted sum of every input.

    Shapes: ``x`` (N, in_features), ``W`` (in_features, out_features), ``b`` (out_features,),
    ``y`` (N, out_features).

    forward:  ``y = x @ W + b``
    backward: ``dW = x.T @ dout``   (in, out)
              ``db = sum over N of dout``   (out,)
              ``dx = dout @ W.T``   (N, in)

    Weights start He-normal (``init="he"``, for ReLU networks) or Glorot-uniform
    (``init="glorot"``); the bias starts at zero. ``backward`` overwrites ``grads``. The
    layer computes in the dtype of ``W`` and ``b``: input and ``dout`` of the other dtype are
    cast once (a float32 layer returns float32 for float64 input, as ``Conv2D`` does).
    """

    def __init__(self, in_features: int, out_features: int, *, init: str = "he",
                 dtype: Any = np.float32, rng: RngLike = None) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Dense: feature counts must be >= 1, got {in_features}, "
                             f"{out_features}")
        if init not in ("he", "glorot"):
            raise ValueError(f"Dense: init must be 'he' or 'glorot', got {init!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.init = init
        shape = (self.in_features, self.out_features)
        w = (he_normal(shape, self.in_features, rng, dtype) if init == "he" else
             glorot_uniform(shape, *shape, rng, dtype))
        self.params = {"W": w, "b": np.zeros(self.out_features, dtype=w.dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "init": self.init, "dtype": self.dtype.name}

    @one_blas_thread
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            hint = "; add a Flatten() before Dense" if x.ndim > 2 else ""
            raise ValueError(f"Dense: expected input (N, {self.in_features}), got shape "
                             f"{x.shape}{hint}")
        self._x = x = self._cast_input(x)
        return x @ self.params["W"] + self.params["b"]

    @one_blas_thread
    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout = self._cast_grad(dout)
        self._grad("W")[...] = self._x.T @ dout
        self._grad("b")[...] = dout.sum(axis=0)
        return dout @ self.params["W"].T


class Flatten(Layer):
    """Reshape (N, d1, d2, ...) to (N, d1*d2*...); backward reshapes the gradient back.

    forward:  ``y = x.reshape(N, -1)``      backward: ``dx = dout.reshape(x.shape)``
    Both are views: no data is copied for contiguous input.
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim < 2:
            raise ValueError(f"Flatten: expected a batch (N, ...) of rank >= 2, got shape "
                             f"{x.shape}")
        x = self._cast_input(x)
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self._cast_grad(dout).reshape(self._shape)


class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability ``p`` and scale the
    survivors by ``1 / (1 - p)`` so the expected output equals the input; in eval, identity.

    forward (training):  ``mask = [u >= p] / (1 - p)`` with ``u ~ U[0, 1)``; ``y = x * mask``
    backward (training): ``dx = dout * mask``        (eval: ``y = x``, ``dx = dout``)

    ``u`` is one random number per element from ``kernels.dropout_forward`` (a hash of a seed
    and the element's index, the seed drawn from ``rng`` at each call); ``rng`` (Generator or
    int seed) makes the masks reproducible.
    """

    def __init__(self, p: float = 0.5, rng: RngLike = None) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = np.random.default_rng(rng)

    def config(self) -> dict[str, Any]:
        return {"p": self.p}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._cast_input(x)
        if not training or self.p == 0:
            self._mask = None
            return x
        self._mask = self._new_array("mask", x.shape, x.dtype)
        y = self._new_array("y", x.shape, x.dtype)
        kernels.dropout_forward(x, int(self.rng.integers(2**63)), math.ceil(self.p * 2**24),
                                1 / (1 - self.p), self._mask, y)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout = self._cast_grad(dout)
        if self._mask is None:
            return dout
        dx = self._new_array("dx", dout.shape, dout.dtype)
        return np.multiply(dout, self._mask, out=dx)
