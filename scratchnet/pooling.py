"""Max and average pooling over (KH, KW) windows moved by a stride (default: the window size).

Shapes (NCHW): ``x`` (N, C, H, W) -> ``y`` (N, C, OH, OW) with ``OH = (H - KH) // SH + 1``
(windows that would run off the edge are dropped, like PyTorch's default). Each channel is
pooled on its own; there are no parameters, so both layers compute in their input's dtype
(float32 or float64).

* Max pooling: ``y[n, c, oh, ow] = max over the window``. Backward sends each ``dy`` to the one
  input pixel that was the maximum (remembered in forward as an index), every other pixel gets 0.
* Average pooling: ``y = mean over the window``. Backward spreads ``dy / (KH*KW)`` over the
  window.

Windows may overlap (stride < window); then a pixel collects gradient from every window it is
in. The paper's worked example, a 3x3 pooling over a 5x5 feature map (stride 1 gives 3x3),
max vs average on the same input:

>>> import numpy as np
>>> fmap = np.array([[1, 1, 2, 4, 0], [5, 6, 7, 8, 1], [3, 2, 1, 0, 2],
...                  [1, 2, 3, 4, 9], [0, 1, 0, 2, 3]], dtype=np.float64)[None, None]
>>> MaxPool2D(3, stride=1).forward(fmap)[0, 0]
array([[7., 8., 8.],
       [7., 8., 9.],
       [3., 4., 9.]])
>>> AvgPool2D(3, stride=1).forward(fmap)[0, 0] * 9
array([[28., 31., 25.],
       [30., 33., 35.],
       [13., 15., 24.]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet import kernels
from scratchnet.base import Layer, check_input
from scratchnet.conv import Pair, output_size, pair


class _Pool2D(Layer):
    """Shared argument checking and output shape for the two pooling layers."""

    def __init__(self, kernel_size: Pair, stride: Pair | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.kernel_size = pair(kernel_size, f"{name} kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, f"{name} stride")
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(f"{name}: kernel_size and stride must be >= 1, got "
                             f"{kernel_size}, {stride}")

    def config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride)}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(N, C, OH, OW) for an input of shape (N, C, H, W)."""
        n, c, h, w = input_shape
        name = type(self).__name__
        return (n, c, output_size(h, self.kernel_size[0], self.stride[0], 0, name),
                output_size(w, self.kernel_size[1], self.stride[1], 0, name))

    def _prepare(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Check ``x``, make it contiguous and allocate the output."""
        check_input(x, 4, type(self).__name__, "(N, C, H, W)")
        x = self._cast_input(x)
        self._x_shape = x.shape
        return x, self._new_array("y", self.output_shape(x.shape), x.dtype)


class MaxPool2D(_Pool2D):
    """Maximum over each window; backward routes the gradient to the winning pixel."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x, y = self._prepare(x)
        self._argmax = self._new_array("argmax", y.shape, np.int64)
        if self.kernel_size == self.stride == (2, 2):
            kernels.maxpool2x2_forward(x, y, self._argmax)
        else:
            kernels.maxpool_forward(x, *self.kernel_size, *self.stride, y, self._argmax)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout = self._cast_grad(dout)
        dx = self._new_array("dx", self._x_shape, dout.dtype)
        kernels.maxpool_backward(dout, self._argmax, dx)
        return dx


class AvgPool2D(_Pool2D):
    """Mean over each window; backward spreads the gradient evenly over the window."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x, y = self._prepare(x)
        kernels.avgpool_forward(x, *self.kernel_size, *self.stride, y)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout = self._cast_grad(dout)
        dx = np.empty(self._x_shape, dtype=dout.dtype)
        kernels.avgpool_backward(dout, *self.kernel_size, *self.stride, dx)
        return dx
