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

Dtypes, one rule for every layer: a layer computes in one dtype, float32 or float64, that of
its parameters (``layer.dtype``), or for a layer without parameters that of its input. An input
of another float dtype is cast to it once, on the way in, and so is the ``dout`` given to
``backward``; the output, ``dx`` and ``grads`` are in that dtype. Parameters replaced by arrays
of the other dtype (weights loaded from elsewhere) change the dtype the layer computes in;
``grads`` follow. What cannot work is a one-line ValueError naming the layer, the dtypes and the
fix: integer input, parameters of two dtypes in one layer, or of a dtype other than these two.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

#: The dtypes layers compute in (every kernel is compiled for these two).
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


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

    @property
    def dtype(self) -> np.dtype | None:
        """The dtype this layer computes in: that of its parameters (None for a layer without
        parameters, which computes in its input's dtype). A one-line ValueError if the
        parameters have two dtypes, or one that is not float32 or float64."""
        name = type(self).__name__
        dtype = first = None
        for key, array in self.params.items():
            if array.dtype not in FLOAT_DTYPES:
                raise ValueError(f"{name}: parameter {key} has dtype {array.dtype} but layers "
                                 f"compute in float32 or float64: layer.params[{key!r}] = "
                                 f"layer.params[{key!r}].astype(np.float32)")
            if dtype is None:
                dtype, first = array.dtype, key
            elif array.dtype != dtype:
                raise ValueError(f"{name}: parameter {first} has dtype {dtype} but {key} has "
                                 f"{array.dtype}; give them one: layer.params[{key!r}] = "
                                 f"layer.params[{key!r}].astype(np.{dtype})")
        return dtype

    def _cast_input(self, x: np.ndarray) -> np.ndarray:
        """``x`` C-contiguous in the dtype this layer computes in (cast here, once, if it is
        another float dtype); remembered for :meth:`_cast_grad`."""
        dtype, name = self.dtype, type(self).__name__
        if dtype is None and x.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{name}: input has dtype {x.dtype} but the layer computes in its "
                             f"input's dtype, float32 or float64: pass x.astype(np.float32)")
        if dtype is not None and x.dtype.kind != "f":  # (np.issubdtype: 1 us more per call)
            raise ValueError(f"{name}: input has dtype {x.dtype} but the layer computes in "
                             f"{dtype}: pass x.astype(np.{dtype})")
        self._compute_dtype = x.dtype if dtype is None else dtype
        return np.ascontiguousarray(x, dtype=self._compute_dtype)

    def _cast_grad(self, dout: np.ndarray) -> np.ndarray:
        """``dout`` C-contiguous in the dtype of the last forward (cast once if it differs)."""
        return np.ascontiguousarray(dout, dtype=self._compute_dtype)

    def _grad(self, key: str) -> np.ndarray:
        """``grads[key]``, replaced by a new array if ``params[key]`` was replaced by one of
        another dtype or shape (gradients always have their parameter's dtype and shape)."""
        param, grad = self.params[key], self.grads.get(key)
        if grad is None or grad.dtype != param.dtype or grad.shape != param.shape:
            grad = self.grads[key] = np.zeros_like(param)
        return grad

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
    """Raise a one-line ``ValueError`` unless ``x`` is an array of rank ``ndim`` (its dtype is
    checked by :meth:`Layer._cast_input`).

    NaN/inf are not looked for here (a full pass over every layer's input): ``Sequential``
    checks the network input once per batch instead.
    """
    if not isinstance(x, np.ndarray) or x.ndim != ndim:
        got = f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"{layer}: expected a {ndim}-D array {expected}, got {got}")
