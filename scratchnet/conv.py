"""2-D convolution, computed as im2col followed by one matrix product.

Shapes (NCHW): input ``x`` (N, C, H, W), weights ``W`` (F, C, KH, KW), bias ``b`` (F,),
output ``y`` (N, F, OH, OW) with ``OH = (H + pad_top + pad_bottom - KH) // stride + 1`` (same
for OW). Like PyTorch (and every CNN library) this is a cross-correlation::

    y[n, f, oh, ow] = b[f] + sum over c, i, j of W[f, c, i, j] * xp[n, c, oh*s + i, ow*s + j]

where ``xp`` is ``x`` with zero padding. im2col copies each window into a column, so with
``X_col`` (N, K, P), ``K = C*KH*KW`` rows and ``P = OH*OW`` columns, and ``W_row = W`` viewed
as (F, K), the whole layer is one (batched) matrix product handed to BLAS::

    forward:   Y[n] = W_row @ X_col[n] + b               (F, P)
    backward:  dW_row = sum_n dY[n] @ X_col[n].T          (F, K)
               db     = sum over n, p of dY[n, :, p]      (F,)
               dX_col[n] = W_row.T @ dY[n]                (K, P), folded back by col2im -> dx

For 3x3 filters with stride 1, ``forward``/``backward`` take a faster path: direct Numba
kernels on a zero-padded copy of the input (see ``kernels.py``), which skip the 9x larger
column matrix. ``conv.direct = False`` forces the im2col reference; the tests check that both
paths agree.

A worked example (the paper's): a 5x5 single-channel image and a 3x3 kernel, no padding,
stride 1, give a 3x3 feature map; each output is the sum of a 3x3 window times the kernel.

>>> import numpy as np
>>> conv = Conv2D(1, 1, 3, dtype=np.float64)
>>> conv.params["W"][...] = [[[[1, 0, 1], [0, 1, 0], [1, 0, 1]]]]
>>> conv.params["b"][...] = 0
>>> image = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1],
...                   [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]], dtype=np.float64)
>>> conv.forward(image[None, None])[0, 0]
array([[4., 3., 4.],
       [2., 4., 3.],
       [2., 3., 4.]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet import kernels
from scratchnet.base import Layer, check_input
from scratchnet.blas import one_blas_thread
from scratchnet.init import RngLike, he_normal

Pair = int | tuple[int, int] | list[int]

#: Pixels per task of the direct weight-gradient kernel: 4096 positions of every channel of x
#: and dy (16 channels: 2 x 256 KB) stay in a core's L2 cache while all filters are summed.
WEIGHT_GRAD_BLOCK = 4096
#: ... but at least this many tasks, so that small batches still keep several cores busy.
MIN_WEIGHT_GRAD_TASKS = 4


def pair(value: Pair, name: str) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``(3, 2)`` stays; anything else is a one-line ValueError."""
    values = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(values) != 2 or not all(isinstance(v, int | np.integer) for v in values):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(values[0]), int(values[1])


def output_size(size: int, window: int, stride: int, pad_total: int, layer: str) -> int:
    """Number of window positions along one axis; a one-line ValueError if there are none."""
    out = (size + pad_total - window) // stride + 1
    if out < 1:
        raise ValueError(f"{layer}: input size {size} (padding {pad_total}) is smaller than "
                         f"the window {window}")
    return out


class Conv2D(Layer):
    """Convolution over NCHW input with learned filters ``W`` (F, C, KH, KW) and bias ``b`` (F,).

    ``padding`` is an int or pair (zeros on both sides), ``"valid"`` (0) or ``"same"`` (output
    as large as the input; stride 1 only, like PyTorch; an even kernel pads one more zero
    below/right). Weights use He initialisation: normal with std ``sqrt(2 / (C*KH*KW))``.
    ``backward`` overwrites ``grads["W"]`` and ``grads["b"]``.

    The layer computes in the dtype of ``W`` and ``b`` (``dtype`` at construction; float64 if
    they were replaced by float64 arrays): input and ``dout`` of the other dtype are cast once.
    """

    #: Direct kernels run on the calling thread below this many multiply-adds (N*F*C*9*OH*OW).
    #: Measured on 2 cores, whole training steps of LivenessNet: at batch 8 (up to 19M per
    #: layer) one thread was 1.3x faster than two (waking a thread costs ~35 us, and the
    #: other core must first fetch the data into its own cache); at batch 32 (38-75M) the two
    #: were even, from batch 64 on two threads won. Again with the workers pinned to their own
    #: CPUs (``kernels.spread_workers``): 10M or 3M were no faster at batch 8, 32 or 128 (within
    #: the noise between runs), and 1M made batch-1 inference 1.7x slower. On a Zen 3 VM
    #: (AVX2), 20M rather than 40M (the 16->32 layer at batch 32, 37.7M, now on two threads):
    #: batch-32 steps 37.1 / 39.6 / 37.3 ms vs 38.8 / 45.2 / 38.0 in alternating runs, batch 8
    #: as fast (no layer reaches 20M there), and 10M slower at batch 8.
    parallel_min_macs = 20_000_000

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Pair, stride: Pair = 1,
                 padding: Pair | str = 0, *, dtype: Any = np.float32,
                 rng: RngLike = None) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"Conv2D: channel counts must be >= 1, got {in_channels}, "
                             f"{out_channels}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = pair(kernel_size, "Conv2D kernel_size")
        self.stride = pair(stride, "Conv2D stride")
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(f"Conv2D: kernel_size and stride must be >= 1, got "
                             f"{kernel_size}, {stride}")
        self.padding = padding
        self.pads = self._pads(padding)  # ((top, bottom), (left, right))
        kh, kw = self.kernel_size
        fan_in = self.in_channels * kh * kw
        w = he_normal((self.out_channels, self.in_channels, kh, kw), fan_in, rng, dtype)
        self.params = {"W": w, "b": np.zeros(self.out_channels, dtype=w.dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        # The fast path (direct 3x3 kernels) when it applies; False forces the im2col reference.
        self.direct = self.kernel_size == (3, 3) and self.stride == (1, 1) and max(
            max(self.pads)) <= 2
        self._scratch: dict[str, np.ndarray] = {}

    def _pads(self, padding: Pair | str) -> tuple[tuple[int, int], tuple[int, int]]:
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if self.stride != (1, 1):
                raise ValueError("Conv2D: padding='same' needs stride 1; give an int padding")
            kh, kw = self.kernel_size
            return ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)
        if isinstance(padding, str):
            raise ValueError(f"Conv2D: padding must be an int, 'same' or 'valid', got {padding!r}")
        ph, pw = pair(padding, "Conv2D padding")
        if min(ph, pw) < 0:
            raise ValueError(f"Conv2D: padding must be >= 0, got {padding!r}")
        return (ph, ph), (pw, pw)

    def config(self) -> dict[str, Any]:
        def plain(v: Any) -> Any:
            return list(v) if isinstance(v, tuple) else v
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": plain(self.kernel_size), "stride": plain(self.stride),
                "padding": plain(self.padding), "dtype": self.dtype.name}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(N, F, OH, OW) for an input of shape (N, C, H, W)."""
        n, _, h, w = input_shape
        (pt, pb), (pl, pr) = self.pads
        oh = output_size(h, self.kernel_size[0], self.stride[0], pt + pb, "Conv2D")
        ow = output_size(w, self.kernel_size[1], self.stride[1], pl + pr, "Conv2D")
        return n, self.out_channels, oh, ow

    def _work(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A private scratch array, reused from the previous call when the shape still fits."""
        arr = self._scratch.get(name)
        if arr is None or arr.shape != shape or arr.dtype != self._compute_dtype:
            arr = self._scratch[name] = np.empty(shape, dtype=self._compute_dtype)
        return arr

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        check_input(x, 4, "Conv2D", f"(N, {self.in_channels}, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2D: expected {self.in_channels} input channels, "
                             f"got shape {x.shape}")
        x = self._cast_input(x)
        self._x_shape = x.shape
        y = self._new_array("y", self.output_shape(x.shape), x.dtype)
        self._direct = self.direct  # backward takes the same path
        (self._forward_direct if self._direct else self._forward_im2col)(x, y)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        dy = self._cast_grad(dout)
        dx = self._new_array("dx", self._x_shape, dy.dtype) if self.needs_input_grad else None
        (self._backward_direct if self._direct else self._backward_im2col)(dy, dx)
        return dx

    # The reference path: im2col + one (batched) matrix product, as in the module docstring.

    @one_blas_thread
    def _forward_im2col(self, x: np.ndarray, y: np.ndarray) -> None:
        n, f, oh, ow = y.shape
        cols = self._work("cols", (n, self.in_channels, *self.kernel_size, oh, ow))
        kernels.im2col(x, *self.stride, self.pads[0][0], self.pads[1][0], cols)
        w_row = self.params["W"].reshape(f, -1)
        np.matmul(w_row, cols.reshape(n, w_row.shape[1], oh * ow), out=y.reshape(n, f, oh * ow))
        y += self.params["b"][:, None, None]

    @one_blas_thread
    def _backward_im2col(self, dy: np.ndarray, dx: np.ndarray | None) -> None:
        n, f, oh, ow = dy.shape
        w, cols = self.params["W"], self._scratch["cols"]
        d = dy.reshape(n, f, oh * ow)
        x_col = cols.reshape(n, -1, oh * ow)  # (N, K, P)
        self._grad("b")[...] = d.sum(axis=2).sum(axis=0)
        self._grad("W")[...] = (d @ x_col.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
        if dx is None:
            return
        dcols = (w.reshape(f, -1).T @ d).reshape(cols.shape)
        kernels.col2im(dcols, *self.stride, self.pads[0][0], self.pads[1][0], dx)

    # The fast path for 3x3 stride-1 filters: direct kernels on a padded copy of the input.

    def _forward_direct(self, x: np.ndarray, y: np.ndarray) -> None:
        (pt, pb), (pl, pr) = self.pads
        n, c, h, w = x.shape
        wp = w + pl + pr
        xp = self._work("xp", (c, n, h + pt + pb + kernels.spare_rows(wp), wp))
        kernels.pad_cnhw(x, pt, pl, xp)
        conv = kernels.pick("conv3x3", self._macs(y.size), self.parallel_min_macs)
        conv(xp, self.params["W"], self.params["b"], y)

    def _macs(self, output_size: int) -> int:
        """Multiply-adds of the forward product; the dW and dx products have as many."""
        return output_size * self.in_channels * 9

    def _backward_direct(self, dy: np.ndarray, dx: np.ndarray | None) -> None:
        # dx is a 3x3 convolution of dy padded by 2 - pad, with the filters flipped (i, j ->
        # 2-i, 2-j) and input/output channels swapped. dW correlates the padded input with dy
        # laid out on the input's grid; with "same" padding (one on every side), the padded
        # dy of dx is on that grid already, one row and one column in.
        n, f, oh, ow = dy.shape
        (pt, pb), (pl, pr) = self.pads
        xp = self._scratch["xp"]
        wp = ow + 4 - pl - pr
        dyp = self._work("dyp", (f, n, oh + 4 - pt - pb + kernels.spare_rows(wp), wp))
        kernels.pad_cnhw(dy, 2 - pt, 2 - pl, dyp)
        dy_grid, shift = dyp, (2 - pt) * wp + 2 - pl
        if dyp.shape[2:] != xp.shape[2:]:
            dy_grid, shift = self._work("dy_grid", (f, *xp.shape[1:])), 0
            kernels.pad_cnhw(dy, 0, 0, dy_grid)
        blocks = max(MIN_WEIGHT_GRAD_TASKS, dy_grid[0].size // WEIGHT_GRAD_BLOCK)
        blocks = kernels.round_to_threads(blocks)
        partial_w = self._work("dw_partial", (blocks, *self.params["W"].shape))
        partial_b = self._work("db_partial", (blocks, f))
        macs = self._macs(dy.size)
        kernels.pick("conv3x3_weight_grad", macs, self.parallel_min_macs)(
            xp, dy_grid, shift, partial_w, partial_b)
        partial_w.sum(axis=0, out=self._grad("W"))
        partial_b.sum(axis=0, out=self._grad("b"))
        if dx is None:
            return
        w_flipped = np.ascontiguousarray(self.params["W"][:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        conv = kernels.pick("conv3x3", macs, self.parallel_min_macs)
        conv(dyp, w_flipped, np.zeros(self.in_channels, dy.dtype), dx)
