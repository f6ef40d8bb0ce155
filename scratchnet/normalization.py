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

``backward`` overwrites ``grads``; it uses the mode of the last ``forward``. The per-channel
loops run as compiled kernels (``scratchnet.kernels``) on an (N, C, L) view of the input.
The layer computes in the dtype of ``gamma`` and ``beta``: input and ``dout`` of the other
dtype are cast once; the running statistics are used in that dtype whatever their own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet import kernels
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
        c = self.num_features
        self.params = {"gamma": np.ones(c, dtype), "beta": np.zeros(c, dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.buffers = {"running_mean": np.zeros(c, dtype), "running_var": np.ones(c, dtype)}

    def config(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps,
                "dtype": self.dtype.name}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim != self.ndim or x.shape[1] != self.num_features:
            layout = self.layout.format(c=self.num_features)
            raise ValueError(f"{type(self).__name__}: expected input {layout}, got shape "
                             f"{x.shape}")
        m = x.size // self.num_features
        x3 = self._cast_input(x).reshape(len(x), self.num_features, -1)  # (N, C, L) view
        if training:
            if m < 2:
                raise ValueError(f"{type(self).__name__}: training needs more than one value "
                                 f"per channel, got input shape {x.shape}")
            mu, var = np.empty(self.num_features), np.empty(self.num_features)
            kernels.channel_mean_var(x3, mu, var)
            rm, rv, mom = self.buffers["running_mean"], self.buffers["running_var"], self.momentum
            rm *= 1 - mom
            rm += mom * mu
            rv *= 1 - mom
            rv += (mom * m / (m - 1)) * var
        else:
            mu, var = self.buffers["running_mean"], self.buffers["running_var"]
        self._training, self._x3 = training, x3
        self._mu = mu.astype(x3.dtype)
        self._inv_std = (1 / np.sqrt(var + self.eps)).astype(x3.dtype, copy=False)
        y = self._new_array("y", x3.shape, x3.dtype)
        kernels.batchnorm_forward(x3, self._mu, self._inv_std, self.params["gamma"],
                                  self.params["beta"], y)
        return y.reshape(x.shape)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        d3 = self._cast_grad(dout).reshape(self._x3.shape)
        dx = self._new_array("dx", d3.shape, d3.dtype)
        kernels.batchnorm_backward(
            self._x3, self._mu, self._inv_std, self.params["gamma"], d3, self._training, dx,
            self._grad("gamma"), self._grad("beta"))
        return dx.reshape(dout.shape)


class BatchNorm1D(_BatchNorm):
    """Batch norm for (N, C) features, statistics over the batch axis. See the module doc."""

    ndim, layout = 2, "(N, {c})"


class BatchNorm2D(_BatchNorm):
    """Batch norm for (N, C, H, W) feature maps, statistics over N, H and W per channel."""

    ndim, layout = 4, "(N, {c}, H, W)"
