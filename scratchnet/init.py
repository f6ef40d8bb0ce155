"""Weight initialisers: random starting weights whose scale keeps activations from dying out.

``fan_in`` is the number of inputs each output unit sums over (``in_features`` for a dense
layer, ``C*KH*KW`` for a convolution), ``fan_out`` the number of outputs each input feeds.

* He (Kaiming) normal, for ReLU networks: ``W ~ N(0, 2 / fan_in)``. ReLU zeroes half of its
  inputs, so doubling the variance keeps the variance of activations constant layer to layer.
* Glorot (Xavier) uniform, for tanh/sigmoid networks: ``W ~ U(-a, a)`` with
  ``a = sqrt(6 / (fan_in + fan_out))``, i.e. variance ``2 / (fan_in + fan_out)``.

``rng`` is a ``np.random.Generator``, an int seed (reproducible) or None (fresh entropy).
"""

from __future__ import annotations

from typing import Any

import numpy as np

RngLike = np.random.Generator | int | None


def he_normal(shape: tuple[int, ...], fan_in: int, rng: RngLike = None,
              dtype: Any = np.float32) -> np.ndarray:
    """Normal weights with standard deviation ``sqrt(2 / fan_in)``."""
    std = np.sqrt(2.0 / fan_in)
    return (np.random.default_rng(rng).standard_normal(shape) * std).astype(dtype)


def glorot_uniform(shape: tuple[int, ...], fan_in: int, fan_out: int, rng: RngLike = None,
                   dtype: Any = np.float32) -> np.ndarray:
    """Uniform weights on ``[-a, a]`` with ``a = sqrt(6 / (fan_in + fan_out))``."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return np.random.default_rng(rng).uniform(-limit, limit, shape).astype(dtype)
