"""The contract every layer follows, and the handle an optimizer uses to reach a weight.

A layer is a small object with two methods:

* ``forward(x, training=False) -> y`` computes the output and remembers what backward needs;
* ``backward(dout) -> dx`` takes dL/dy (same shape as y) and returns dL/dx (same shape as x).

A layer whose ``needs_input_grad`` is False may skip dL/dx and return ``None`` from
``backward``: ``Sequential.fit`` sets it on the first layer while training, because nobody
needs the gradient with respect to the data (for a convolution that is a third of its work).

Trainable arrays live in ``layer.params`` (name -> ndarray) and their gradients in
``layer.grads`` under the same names. Each ``backward`` **overwrites** ``grads``; it never
accumulates, so there is no ``zero_grad`` to forget. State that is not trained (batch-norm
running statistics) lives in ``layer.buffers``. Layers never update their own weights: that is
the optimizer's job.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


class Layer:
    """Base class: holds ``params``, ``grads`` and ``buffers``; subclasses do the maths."""

    #: False: ``backward`` may skip dL/dx and return None (only the parameter gradients).
    needs_input_grad = True

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _new_array(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An uninitialised array for this layer's output (or gradient) ``name``: one returned
        by an earlier call if nothing references it any more, else a new one.

        NumPy's large arrays come straight from the operating system, and the first write to
        each page of a new array costs a page fault: 10-15% of a LivenessNet training step.
        Training reuses the arrays of two steps ago (the previous step's are still held by the
        next layer), so each name keeps up to two. An array anyone still holds, even through a
        view, is never handed out again.
        """
        kept = self.__dict__.setdefault("_arrays", {}).setdefault(name, [])
        for arr in kept:
            # references: the list, ``arr`` and getrefcount's own argument
            if sys.getrefcount(arr) == 3 and arr.shape == shape and arr.dtype == dtype:
                return arr
        arr = np.empty(shape, dtype=dtype)
        if len(kept) == 2:
            kept.pop(0)
        kept.append(arr)
        return arr

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable) that rebuild this layer: used by save/load."""
        return {}

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.forward(x, training)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Parameter:
    """A handle on one trainable array: ``data`` is ``layer.params[key]``, ``grad`` its gradient.

    Optimizers hold a list of these (what ``Sequential.parameters()`` returns) and update
    ``data`` in place, so the layer sees the new weights without any copying.
    """

    def __init__(self, layer: Layer, key: str, name: str | None = None) -> None:
        self.layer = layer
        self.key = key
        self.name = name or key

    @property
    def data(self) -> np.ndarray:
        return self.layer.params[self.key]

    @property
    def grad(self) -> np.ndarray:
        return self.layer.grads[self.key]

    def __repr__(self) -> str:
        return f"Parameter({self.name}, shape={self.data.shape}, dtype={self.data.dtype})"


def check_input(x: np.ndarray, ndim: int, layer: str, expected: str) -> None:
    """Raise a one-line ``ValueError`` unless ``x`` is a float array of rank ``ndim``.

    NaN/inf are not looked for here (a full pass over every layer's input): ``Sequential``
    checks the network input once per batch instead.
    """
    if not isinstance(x, np.ndarray) or x.ndim != ndim:
        got = f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"{layer}: expected a {ndim}-D array {expected}, got {got}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{layer}: expected a float32 or float64 array, got dtype {x.dtype}")
