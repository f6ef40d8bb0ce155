"""Check a backward pass against numbers: centred finite differences.

For a scalar function ``f`` and a small step ``h``, each partial derivative is estimated as::

    df/dx[i] ~= (f(x + h e_i) - f(x - h e_i)) / (2h)        (error O(h^2))

To check a layer, turn its output into a scalar with a fixed random "upstream gradient"
``g``: ``L(x) = sum(layer.forward(x) * g)``, so ``dL/dout = g``. Then ``layer.backward(g)``
must equal the numerical ``dL/dx``, and ``layer.grads[k]`` the numerical ``dL/dparams[k]``.

Use float64 (``dtype=np.float64`` for the layer and the input): in float32 the rounding error
of ``f`` divided by ``2h`` swamps the derivative. Keep inputs away from kinks (ReLU at 0, ties
in max pooling), where the function is not differentiable.

>>> import numpy as np, scratchnet as sn
>>> x = np.random.default_rng(0).standard_normal((4, 3))
>>> errors = check_layer(sn.Dense(3, 2, dtype=np.float64, rng=0), x)
>>> sorted(errors)
['W', 'b', 'x']
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from scratchnet.base import Layer


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray,
                       h: float = 1e-5) -> np.ndarray:
    """Centred-difference gradient of the scalar ``f(x)`` with respect to every entry of ``x``.

    ``x`` is perturbed in place (one entry at a time) and restored, so ``f`` may also read
    ``x`` through another reference (a layer's weight array, for example).
    """
    grad = np.zeros_like(x, dtype=np.float64)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = f(x)
        x[i] = old - h
        minus = f(x)
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


def check_layer(layer: Layer, x: np.ndarray, *, training: bool = False, seed: int = 0,
                h: float = 1e-5, rtol: float = 1e-6, atol: float = 1e-9) -> dict[str, float]:
    """Compare ``layer.backward`` with finite differences for ``x`` and every parameter.

    Returns the largest absolute difference per array (``"x"`` and each param name) and raises
    ``AssertionError`` if any entry differs by more than ``atol + rtol * |numerical|``.
    Batch-norm running statistics are updated by the forward passes when ``training`` is True.
    """
    arrays = {"x": x, **layer.params}
    if any(a.dtype != np.float64 for a in arrays.values()):
        raise ValueError("check_layer: use float64 for the input and the layer "
                         "(dtype=np.float64); float32 is too coarse for finite differences")
    out = layer.forward(x, training)
    g = np.random.default_rng(seed).standard_normal(out.shape)
    analytic = {"x": layer.backward(g), **{k: v.copy() for k, v in layer.grads.items()}}

    def loss(_: np.ndarray) -> float:
        # Summed exactly (math.fsum): with a rounded sum, its rounding error (~1e-16 times the
        # sum of |terms|) divided by 2h would swamp the tolerance on layers with many outputs.
        return math.fsum((layer.forward(x, training) * g).ravel().tolist())

    errors = {}
    for name, array in arrays.items():
        numeric = numerical_gradient(loss, array, h)
        np.testing.assert_allclose(analytic[name], numeric, rtol=rtol, atol=atol,
                                   err_msg=f"{type(layer).__name__}: d loss / d {name}")
        errors[name] = float(np.abs(analytic[name] - numeric).max())
    return errors
