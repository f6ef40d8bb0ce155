"""Batch normalisation over (N, C) features (BatchNorm1D) or (N, C, H, W) maps (BatchNorm2D).

Each channel ``c`` is normalised over its ``M`` values in the batch (``M = N`` for 1-D,
``M = N*H*W`` for 2-D), then scaled and shifted by learned ``gamma`` and ``beta`` (C,)::

    training:  mu = mean(x),  var = mean((x - mu)^2)          (biased, over the M values)
    eval:      mu = running_mean,  var = running_var
    xhat = (x - mu) / sqrt(var + eps),      y = gamma * xhat + beta

As in PyTorch, training also updates the buffers with the *unbiased* batch variance::

    running_mean = (1 - momentum) * running_mean + momentum * mu
    running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)

Backward (sums over the M values of each channel; ``std = sqrt(var + eps)``)::

    dbeta  = sum(dout)        dgamma = sum(dout * xhat)
    training:  dx = gamma / (M * std) * (M * dout - dbeta - xhat * dgamma)
    eval:      dx = gamma / std * dout          (mu and var are constants)

``backward`` overwrites ``grads``; it uses the mode of the last ``forward``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet.base import Layer


class _BatchNorm(Layer):
    """Shared maths; subclasses fix the input rank and the axes the statistics run over."""

    ndim: int
    layout: str

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5, *,
                 dtype: Any = np.float32) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"{type(self).__name__}: num_features must be >= 1, "
                             f"got {num_features}")
        self.num_features, self.momentum, self.eps = int(num_features), float(momentum), float(eps)
        self.dtype = np.dtype(dtype)
        c = self.num_features
        self.params = {"gamma": np.ones(c, self.dtype), "beta": np.zeros(c, self.dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.buffers = {"running_mean": np.zeros(c, self.dtype),
                        "running_var": np.ones(c, self.dtype)}
        self._axes = (0,) if self.ndim == 2 else (0, 2, 3)
        self._bshape = (1, c) if self.ndim == 2 else (1, c, 1, 1)  # broadcast (C,) over x

    def config(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps,
                "dtype": self.dtype.name}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim != self.ndim or x.shape[1] != self.num_features:
            layout = self.layout.format(c=self.num_features)
            raise ValueError(f"{type(self).__name__}: expected input {layout}, got shape "
                             f"{x.shape}")
        m = x.size // self.num_features
        if training:
            if m < 2:
                raise ValueError(f"{type(self).__name__}: training needs more than one value "
                                 f"per channel, got input shape {x.shape}")
            mu = x.mean(axis=self._axes)
            xc = x - mu.reshape(self._bshape)
            var = np.square(xc).mean(axis=self._axes)
            rm, rv, mom = self.buffers["running_mean"], self.buffers["running_var"], self.momentum
            rm *= 1 - mom
            rm += mom * mu
            rv *= 1 - mom
            rv += (mom * m / (m - 1)) * var
        else:
            var = self.buffers["running_var"]
            xc = x - self.buffers["running_mean"].reshape(self._bshape)
        self._training, self._m = training, m
        self._inv_std = (1 / np.sqrt(var + self.eps)).astype(x.dtype, copy=False)
        self._xhat = xc * self._inv_std.reshape(self._bshape)
        return (self.params["gamma"].reshape(self._bshape) * self._xhat
                + self.params["beta"].reshape(self._bshape))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dbeta = dout.sum(axis=self._axes)
        dgamma = (dout * self._xhat).sum(axis=self._axes)
        self.grads["beta"][...] = dbeta
        self.grads["gamma"][...] = dgamma
        scale = (self.params["gamma"] * self._inv_std).reshape(self._bshape)
        if not self._training:
            return scale * dout
        m, b = self._m, self._bshape
        return (scale / m) * (m * dout - dbeta.reshape(b) - self._xhat * dgamma.reshape(b))


class BatchNorm1D(_BatchNorm):
    """Batch norm for (N, C) features, statistics over the batch axis. See the module doc."""

    ndim, layout = 2, "(N, {c})"


class BatchNorm2D(_BatchNorm):
    """Batch norm for (N, C, H, W) feature maps, statistics over N, H and W per channel."""

    ndim, layout = 4, "(N, {c}, H, W)"
