"""The compiled loops: the only module in scratchnet that uses Numba.

NumPy is fast at whole-array arithmetic and at matrix products (it hands those to BLAS), but
slow at "gather these scattered elements" loops. Those loops live here, written as plain
Python loops that Numba compiles to machine code (two exceptions are written in LLVM's
instructions: ``conv3x3_tile``, see why there, and ``set_thread_affinity``, a call to the
operating system). Each kernel is short and says what it computes; the layers in ``conv.py``,
``pooling.py`` and the others call them and own the maths around them.

Conventions for every kernel:

* arrays are NCHW: ``x[n, c, h, w]`` is sample ``n``, channel ``c``, row ``h``, column ``w``
  (except the padded copies of the direct convolution, which are CNHW: see there);
* a kernel never allocates its result: the caller passes the output array and the kernel fills
  it completely (so buffers can be reused between steps);
* ``sh, sw`` are the strides, ``ph, pw`` the zero padding added above and left of the input
  (padding below/right is implied by the output size), ``kh, kw`` the window size;
* only the convolution kernels run on several threads (``prange``). They split their work
  into tasks that each write their own part of the output (a group of filters of one sample,
  a block of positions), so no two threads ever write the same element: ``name_task`` does
  one task, ``name`` runs all tasks in parallel, ``name_serial`` one after the other (the
  twins are two tiny functions, not one compiled twice, because Numba's disk cache does not
  tell a parallel compilation from a serial one). The other kernels (padding, pooling, ReLU,
  dropout, batch norm, Adam) move data more than they compute and run on the calling thread:
  on the 2-core machines measured, splitting them over two threads made training steps slower,
  not faster (handing half of the data to the other core's cache costs more than the work;
  padding on two pinned workers: batch-32 steps 27.5 / 28.2 ms vs 26.7 / 27.1 on one thread).

``cache=True`` stores the compiled code on disk, so only the very first import pays for
compilation. Each kernel is compiled once per dtype (float32, float64), never per shape.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import llvmlite.binding
import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import cgutils, types
from numba.extending import intrinsic

# Numba's OpenMP thread pool keeps its workers spinning between parallel loops; on a busy
# machine every loop then waits for a descheduled spinner (batch-32 training steps with one
# other busy process on 2 cores: 42-47 ms vs 27-34, and up to tenfold slower with more). The
# built-in "workqueue" pool sleeps between loops, and with its workers pinned to their own CPUs
# (``spread_workers`` below) it trains as fast as OpenMP on an idle machine (batch 32: 1086-1191
# vs 1031-1128 img/s, three runs each), so it is the default. A choice made by the user
# (NUMBA_THREADING_LAYER) wins; it must be made before the first parallel call.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"


def _compile_for_avx512() -> bool:
    """Whether the kernels are compiled for a CPU with 512-bit vector instructions (AVX-512):
    the host's, unless the user chose the CPU features (NUMBA_CPU_FEATURES / NUMBA_CPU_NAME).

    If so, allow LLVM to use them: on AVX-512 CPUs it emits 256-bit vector code unless told
    otherwise (wider vectors slowed the clock of early AVX-512 Xeons), and the convolution
    kernels below ran 1.2-1.4x faster with 512-bit vectors on a current Xeon. Like the
    threading layer, this must be set before the first kernel is compiled or loaded from the
    cache."""
    if "NUMBA_CPU_FEATURES" in os.environ or "NUMBA_CPU_NAME" in os.environ:
        return False
    features = llvmlite.binding.get_host_cpu_features().flatten()
    if "+avx512f" not in features.split(","):
        return False
    numba.config.CPU_FEATURES = features + ",-prefer-256-bit"
    return True


AVX512 = _compile_for_avx512()


def pick(name: str, work: int, min_work: int) -> Callable[..., None]:
    """The kernel ``name`` (parallel) when ``work`` (e.g. multiply-adds) reaches ``min_work``,
    else its twin ``name_serial`` (the same tasks, one thread)."""
    if work < min_work:
        return globals()[f"{name}_serial"]
    spread_workers()
    return globals()[name]


def round_to_threads(tasks: int) -> int:
    """``tasks`` rounded up to a multiple of the threads of a parallel loop, which each take
    an equal share: 9 tasks on 2 threads keep one thread idle for the last one."""
    threads = numba.get_num_threads()
    return -(-tasks // threads) * threads


# ---- Where the worker threads run ------------------------------------------------------------
# The workqueue pool's threads sleep between parallel loops, and Linux wakes a sleeping thread
# on the CPU of the thread that woke it when it can. The main thread wakes both workers and goes
# to sleep, so both often wake on its CPU and share it while the other CPU idles, and a
# parallel convolution runs no faster than on one thread (a probe after each of 100 calls on a
# 2-core VM found both workers on one CPU 3 to 81 times, depending on what ran before). Pinning
# worker i to CPU i, once, fixes that: batch-32 training steps 25.8-26.1 ms instead of
# 36.7-37.7; beside one or two busy processes, the same as unpinned (27.6 / 32.2 vs 27.4 / 33.4
# ms; 58-61 vs 55-58 ms). Only the pool's workers are pinned, never the caller's thread;
# SCRATCHNET_PIN_WORKERS=0 leaves them free.

_spread = False  # spread_workers has run in this process


@intrinsic
def set_thread_affinity(typingctx, mask):
    """Linux's ``sched_setaffinity(0, mask.nbytes, mask)``: the calling thread from now on runs
    only on the CPUs whose bits are set in ``mask`` (uint64 words: CPU k is bit k % 64 of word
    k // 64). Returns 0, or -1 if the system refused."""
    if not (isinstance(mask, types.Array) and mask.ndim == 1 and mask.layout == "C"
            and mask.dtype == types.uint64):
        return None

    def codegen(context, builder, sig, args):
        words = context.make_array(sig.args[0])(context, builder, args[0])
        i32, i64, bytes_ = ir.IntType(32), ir.IntType(64), ir.IntType(8).as_pointer()
        setaffinity = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i32, [i32, i64, bytes_]), "sched_setaffinity")
        size = builder.mul(words.nitems, ir.Constant(i64, 8))
        return builder.call(setaffinity,
                            [ir.Constant(i32, 0), size, builder.bitcast(words.data, bytes_)])

    return types.int32(mask), codegen


@njit(cache=True, parallel=True)
def pin_workers(masks, results):
    """Worker thread i keeps to the CPUs in ``masks[i]``; ``results[i]`` is 0 where that worked.
    One iteration per worker: the workqueue pool hands each of its threads an equal share."""
    for i in prange(masks.shape[0]):
        results[i] = set_thread_affinity(masks[i])


def spread_workers() -> None:
    """Pin each worker thread of Numba's pool to its own CPU, once per process (see above).

    Does nothing under another threading layer (OpenMP and TBB run loop iterations on the
    calling thread too, which must stay free), off Linux, when ``SCRATCHNET_PIN_WORKERS=0``,
    or when the process may use fewer CPUs than there are workers."""
    global _spread
    if _spread:
        return
    _spread = True
    if (numba.config.THREADING_LAYER != "workqueue" or not hasattr(os, "sched_getaffinity")
            or os.environ.get("SCRATCHNET_PIN_WORKERS") == "0"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    workers = numba.get_num_threads()
    if not 2 <= workers <= len(cpus):
        return
    masks = np.zeros((workers, cpus[-1] // 64 + 1), dtype=np.uint64)
    for worker, cpu in enumerate(cpus[:workers]):
        masks[worker, cpu // 64] = np.uint64(1) << np.uint64(cpu % 64)
    pin_workers(masks, np.empty(workers, dtype=np.int32))


def _after_fork_in_child() -> None:  # a forked child starts a new pool, with unpinned workers
    global _spread
    _spread = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@njit(cache=True)
def im2col(x, sh, sw, ph, pw, cols):
    """Unfold every convolution window of ``x`` into a column.

    ``x`` (N, C, H, W) -> ``cols`` (N, C, KH, KW, OH, OW) with::

        cols[n, c, i, j, oh, ow] = x[n, c, oh*sh + i - ph, ow*sw + j - pw]   (0 outside x)

    Seen as (N, C*KH*KW, OH*OW), sample ``n`` is a matrix whose column ``oh*OW + ow`` holds the
    window that produces output pixel (oh, ow), so a convolution is one matrix product.
    """
    n_, c_, h_, w_ = x.shape
    kh, kw, oh_, ow_ = cols.shape[2], cols.shape[3], cols.shape[4], cols.shape[5]
    for nc in range(n_ * c_):
        n, c = nc // c_, nc % c_
        for i in range(kh):
            for j in range(kw):
                for oh in range(oh_):
                    ih = oh * sh + i - ph
                    for ow in range(ow_):
                        iw = ow * sw + j - pw
                        inside = 0 <= ih < h_ and 0 <= iw < w_
                        cols[n, c, i, j, oh, ow] = x[n, c, ih, iw] if inside else 0.0


@njit(cache=True)
def col2im(cols, sh, sw, ph, pw, dx):
    """The adjoint of :func:`im2col`: add every column entry back onto the pixel it came from.

    ``cols`` (N, C, KH, KW, OH, OW) -> ``dx`` (N, C, H, W) with::

        dx[n, c, h, w] = sum of cols[n, c, i, j, oh, ow] over all (i, j, oh, ow)
                         with oh*sh + i - ph == h and ow*sw + j - pw == w

    Overlapping windows (stride < kernel) add up; entries that fell in the padding are dropped.
    """
    n_, c_, h_, w_ = dx.shape
    kh, kw, oh_, ow_ = cols.shape[2], cols.shape[3], cols.shape[4], cols.shape[5]
    for nc in range(n_ * c_):
        n, c = nc // c_, nc % c_
        dx[n, c] = 0.0
        for i in range(kh):
            for j in range(kw):
                for oh in range(oh_):
                    ih = oh * sh + i - ph
                    if 0 <= ih < h_:
                        for ow in range(ow_):
                            iw = ow * sw + j - pw
                            if 0 <= iw < w_:
                                dx[n, c, ih, iw] += cols[n, c, i, j, oh, ow]


@njit(cache=True)
def keep_larger(value, index, best, where):
    """``(value, index)`` if ``value > best`` else ``(best, where)``, as two selects, not an
    ``if``: on real data the winner is unpredictable and a branch would be mispredicted half of
    the time."""
    larger = value > best
    return (value if larger else best), (index if larger else where)


@njit(cache=True)
def maxpool_forward(x, kh, kw, sh, sw, out, argmax):
    """Max over each (kh, kw) window, remembering where the maximum was.

    ``x`` (N, C, H, W) -> ``out`` (N, C, OH, OW) and ``argmax`` (N, C, OH, OW) with::

        out[n, c, oh, ow]    = max over i<kh, j<kw of x[n, c, oh*sh + i, ow*sw + j]
        argmax[n, c, oh, ow] = h*W + w of that maximum (the first one on ties)
    """
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = out.shape[2], out.shape[3]
    for nc in range(n_ * c_):
        n, c = nc // c_, nc % c_
        for oh in range(oh_):
            for ow in range(ow_):
                h0, w0 = oh * sh, ow * sw
                best, where = x[n, c, h0, w0], h0 * w_ + w0
                for i in range(kh):
                    for j in range(kw):
                        best, where = keep_larger(x[n, c, h0 + i, w0 + j],
                                                  (h0 + i) * w_ + w0 + j, best, where)
                out[n, c, oh, ow] = best
                argmax[n, c, oh, ow] = where


@njit(cache=True)
def maxpool2x2_forward(x, out, argmax):
    """:func:`maxpool_forward` for the common 2x2 window with stride 2, written out: the four
    values of a window are read from two rows at once (3-4x faster than the general kernel's
    loops over the window)."""
    w_ = x.shape[3]
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for oh in range(out.shape[2]):
                top, bottom = x[n, c, 2 * oh], x[n, c, 2 * oh + 1]
                for ow in range(out.shape[3]):
                    j, k = 2 * ow, 2 * oh * w_ + 2 * ow  # k: flat index of the top-left value
                    best, where = top[j], k
                    best, where = keep_larger(top[j + 1], k + 1, best, where)
                    best, where = keep_larger(bottom[j], k + w_, best, where)
                    best, where = keep_larger(bottom[j + 1], k + w_ + 1, best, where)
                    out[n, c, oh, ow] = best
                    argmax[n, c, oh, ow] = where


@njit(cache=True)
def maxpool_backward(dout, argmax, dx):
    """Route each output gradient to the input pixel that won the max.

    ``dout``, ``argmax`` (N, C, OH, OW) -> ``dx`` (N, C, H, W)::

        dx[n, c].flat[argmax[n, c, oh, ow]] += dout[n, c, oh, ow]   (all other pixels 0)

    A pixel that wins several overlapping windows receives the sum of their gradients.
    """
    n_, c_, h_, w_ = dx.shape
    oh_, ow_ = dout.shape[2], dout.shape[3]
    for nc in range(n_ * c_):
        n, c = nc // c_, nc % c_
        dx[n, c] = 0.0
        for oh in range(oh_):
            for ow in range(ow_):
                k = argmax[n, c, oh, ow]
                dx[n, c, k // w_, k % w_] += dout[n, c, oh, ow]


@njit(cache=True)
def avgpool_forward(x, kh, kw, sh, sw, out):
    """Mean over each (kh, kw) window.

    ``x`` (N, C, H, W) -> ``out`` (N, C, OH, OW)::

        out[n, c, oh, ow] = sum over i<kh, j<kw of x[n, c, oh*sh + i, ow*sw + j] / (kh*kw)
    """
    n_, c_ = x.shape[0], x.shape[1]
    oh_, ow_ = out.shape[2], out.shape[3]
    scale = 1.0 / (kh * kw)
    for nc in range(n_ * c_):
        n, c = nc // c_, nc % c_
        for oh in range(oh_):
            for ow in range(ow_):
                s = 0.0
                for i in range(kh):
                    for j in range(kw):
                        s += x[n, c, oh * sh + i, ow * sw + j]
                out[n, c, oh, ow] = s * scale


@njit(cache=True)
def avgpool_backward(dout, kh, kw, sh, sw, dx):
    """Spread each output gradient evenly over its window.

    ``dout`` (N, C, OH, OW) -> ``dx`` (N, C, H, W)::

        dx[n, c, oh*sh + i, ow*sw + j] += dout[n, c, oh, ow] / (kh*kw)   for i<kh, j<kw
    """
    n_, c_ = dx.shape[0], dx.shape[1]
    oh_, ow_ = dout.shape[2], dout.shape[3]
    scale = 1.0 / (kh * kw)
    for nc in range(n_ * c_):
        n, c = nc // c_, nc % c_
        dx[n, c] = 0.0
        for oh in range(oh_):
            for ow in range(ow_):
                g = dout[n, c, oh, ow] * scale
                for i in range(kh):
                    for j in range(kw):
                        dx[n, c, oh * sh + i, ow * sw + j] += g


# ---- direct 3x3 convolution (stride 1): the fast path of Conv2D --------------------------------
# im2col copies every input pixel 9 times and hands BLAS a matrix with only 16-32 rows, so for
# the small channel counts of LivenessNet most of its time is memory traffic. These kernels read
# the padded input directly, with tricks that let the compiler vectorise them:
#
# * the padded input is stored channel-major, ``xp[c, n]`` (C, N, Hp, Wp), so that the planes of
#   one channel for all N samples follow each other in memory;
# * each padded plane (Hp, Wp) is read as one flat row of Hp*Wp values. Output pixel (oh, ow)
#   then sits at q = oh*Wp + ow and its tap (i, j) at q + i*Wp + j, so a whole plane is one long
#   loop over q instead of many short rows. The q with ow >= OW (two per row) fall in the
#   padding columns: they are computed and thrown away;
# * the forward product keeps a tile of sums, a few filters x a few vectors of positions, in CPU
#   registers through the whole sum over channels and taps (``conv3x3_tile``);
# * the loops over q run to a multiple of ``STEP`` (32: whole tiles of float32 positions, or
#   two 512-bit vectors): a vectorised loop of any other length ends with positions done one at a
#   time, as slow as whole vectors, which on a 16x16 plane nearly doubled the time. Every padded
#   plane has ``spare_rows(Wp)`` extra zero rows at the bottom so those extra reads stay inside.
#
# ``fastmath`` lets the compiler reorder the sums (results differ from im2col only in rounding).

STEP = 32


def spare_rows(wp: int) -> int:
    """Zero rows to add below each padded plane of width ``wp`` (see ``STEP`` above)."""
    return -(-STEP // wp)


@njit(cache=True)
def pad_cnhw_plane(x, pt, pl, xp, n, c):
    """Copy plane ``x[n, c]`` into ``xp[c, n]`` at row ``pt``, column ``pl``; zeros around it."""
    h_, w_ = x.shape[2], x.shape[3]
    hp, wp = xp.shape[2], xp.shape[3]
    plane, src = xp[c, n], x[n, c]
    for h in range(hp):
        row = plane[h]
        if h < pt or h >= pt + h_:
            row[:] = 0.0
            continue
        for j in range(pl):
            row[j] = 0.0
        src_row = src[h - pt]
        for j in range(w_):  # (a slice assignment here was 4x slower)
            row[pl + j] = src_row[j]
        for j in range(pl + w_, wp):
            row[j] = 0.0


@njit(cache=True)
def pad_cnhw(x, pt, pl, xp):
    """Copy ``x`` (N, C, H, W) into ``xp`` (C, N, Hp, Wp) at row ``pt``, column ``pl``, and set
    everything around it (the zero padding) to 0::

        xp[c, n, pt + h, pl + w] = x[n, c, h, w]
    """
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            pad_cnhw_plane(x, pt, pl, xp, n, c)


@njit(cache=True)
def add_scaled3(s, u, a, b, c):
    """The 3-tuple ``s + u * (a, b, c)`` (``u``, ``a``, ``b``, ``c`` numbers)."""
    return s[0] + u * a, s[1] + u * b, s[2] + u * c


# The tile: two vectors of positions x TILE_FILTERS filters. 512-bit vectors where the CPU has
# them (32 registers: the 16 sums of 8 filters, two input vectors and a weight fit), else
# 256-bit with 4 filters (16 registers: 8 sums, 2 inputs, a weight). 4 x 2 loads 6 values per 8
# multiply-adds where 8 filters x 1 vector loaded 9: on a Zen CPU, one core, LivenessNet's four
# convolutions at batch 128 ran 31-36 ms forward instead of 34-45, dx 26-29 ms instead of 33-37
# (3 runs each; 5 or 6 filters x 2 vectors and 2 x 4 were no faster than 4 x 2).
VECTOR_BYTES = 64 if AVX512 else 32
TILE_VECTORS = 2
TILE_FILTERS = 8 if AVX512 else 4


@intrinsic
def conv3x3_tile(typingctx, x, start, channel_stride, row_stride, channels,
                 w, w_start, sums, sums_start, sums_stride):
    """Sums of ``K = TILE_FILTERS`` filters at ``P = TILE_VECTORS * VECTOR_BYTES / itemsize``
    consecutive flat positions, over all channels and taps, written to ``sums``. All arrays are
    flat (1-D)::

        sums[sums_start + k*sums_stride + p] = sum over c < channels, i < 3, j < 3 of
            w[w_start + (k*channels + c)*9 + 3*i + j]
            * x[start + c*channel_stride + i*row_stride + j + p]          (k < K, p < P)

    Written as LLVM instructions instead of Python loops for one reason: the K x P sums must
    stay in vector registers from the first channel to the last. Numba keeps a loop's sums in
    an array, which LLVM reads and writes back to memory for every channel; with the tile in
    registers, each channel and tap costs only TILE_VECTORS loads of ``x`` and K loads of a
    weight for K * TILE_VECTORS fused multiply-adds (2x faster than the loop version, 130 vs
    70 GFLOP/s on one core of a 2023 Xeon). Nothing checks the bounds: the caller must.
    """
    integer = types.Integer
    if not (isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C"
            and x.dtype in (types.float32, types.float64) and w == x and sums == x
            and all(isinstance(t, integer) for t in (start, channel_stride, row_stride, channels,
                                                     w_start, sums_start, sums_stride))):
        return None
    signature = types.void(x, start, channel_stride, row_stride, channels, w, w_start, sums,
                           sums_start, sums_stride)

    def codegen(context, builder, sig, args):
        x_arr, w_arr, sums_arr = (context.make_array(sig.args[i])(context, builder, args[i])
                                  for i in (0, 5, 7))
        start_, c_stride, r_stride, channels_, w_start_, s_start, s_stride = (
            context.cast(builder, args[i], sig.args[i], types.int64) for i in (1, 2, 3, 4, 6, 8, 9))
        i64, i32 = ir.IntType(64), ir.IntType(32)
        scalar = context.get_value_type(sig.args[0].dtype)
        lanes = VECTOR_BYTES * 8 // sig.args[0].dtype.bitwidth
        vector = ir.VectorType(scalar, lanes)
        align = sig.args[0].dtype.bitwidth // 8
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector, [vector] * 3),
            f"llvm.fma.v{lanes}f{sig.args[0].dtype.bitwidth}")
        undefined = ir.Constant(vector, ir.Undefined)
        broadcast_mask = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)

        def at(array, index):
            return builder.bitcast(builder.gep(array.data, [index]), vector.as_pointer())

        def const(value):
            return ir.Constant(i64, value)

        # tile[k][v]: the sums of filter k at positions v*lanes .. v*lanes + lanes-1, from 0
        tile = [[cgutils.alloca_once_value(builder, ir.Constant(vector, None))
                 for v in range(TILE_VECTORS)] for k in range(TILE_FILTERS)]
        filter_stride = builder.mul(channels_, const(9))
        with cgutils.for_range(builder, channels_) as loop:  # for c in range(channels):
            c = loop.index
            sums_now = [[builder.load(cell) for cell in row] for row in tile]
            x_c = builder.add(start_, builder.mul(c, c_stride))
            w_c = builder.add(w_start_, builder.mul(c, const(9)))
            for tap in range(9):
                x_tap = builder.add(x_c, builder.add(builder.mul(r_stride, const(tap // 3)),
                                                     const(tap % 3)))
                inputs = [builder.load(at(x_arr, builder.add(x_tap, const(v * lanes))), align=align)
                          for v in range(TILE_VECTORS)]
                for k in range(TILE_FILTERS):  # tile[k][v] += inputs[v] * (w of filter k, c, tap)
                    w_index = builder.add(w_c, builder.add(builder.mul(filter_stride, const(k)),
                                                           const(tap)))
                    weight = builder.load(builder.gep(w_arr.data, [w_index]))
                    weights = builder.shuffle_vector(
                        builder.insert_element(undefined, weight, ir.Constant(i32, 0)),
                        undefined, broadcast_mask)
                    for v in range(TILE_VECTORS):
                        sums_now[k][v] = builder.call(fma, [inputs[v], weights, sums_now[k][v]])
            for row, values in zip(tile, sums_now, strict=True):
                for cell, value in zip(row, values, strict=True):
                    builder.store(value, cell)
        for k, row in enumerate(tile):  # write the tile out
            for v, cell in enumerate(row):
                index = builder.add(s_start, builder.add(builder.mul(s_stride, const(k)),
                                                         const(v * lanes)))
                builder.store(builder.load(cell), at(sums_arr, index), align=align)
        return context.get_dummy_value()

    return signature, codegen


@njit(cache=True)
def conv3x3_task(xp, w_tiles, b, y, task):
    """One task of :func:`conv3x3`: output channels ``f0 .. f0+K-1`` (those below F, ``K =
    TILE_FILTERS``) of sample ``n``, where ``task = n * groups + f0 // K``: tile after tile of
    positions along the flat plane (:func:`conv3x3_tile`), then the bias and the crop to the
    output pixels."""
    c_, n_, hp, wp = xp.shape
    f_, oh_, ow_ = y.shape[1], y.shape[2], y.shape[3]
    length = (oh_ - 1) * wp + ow_  # flat positions q from pixel (0, 0) to (OH-1, OW-1) ...
    length = -(-length // STEP) * STEP  # ... rounded up to whole tiles
    tile = TILE_VECTORS * VECTOR_BYTES // xp.itemsize
    groups = -(-f_ // TILE_FILTERS)
    n, f0 = task // groups, TILE_FILTERS * (task % groups)
    sums = np.empty((TILE_FILTERS, length), dtype=y.dtype)  # y[n, f0 + k] on the padded grid
    x, s = xp.reshape(-1), sums.reshape(-1)
    for q in range(0, length, tile):
        conv3x3_tile(x, n * hp * wp + q, n_ * hp * wp, wp, c_, w_tiles, f0 * c_ * 9, s, q,
                      length)
    for k in range(min(TILE_FILTERS, f_ - f0)):
        for oh in range(oh_):
            for ow in range(ow_):
                y[n, f0 + k, oh, ow] = sums[k, oh * wp + ow] + b[f0 + k]


@njit(cache=True)
def filters_by_tile(w):
    """``w`` (F, C, 3, 3) flattened, with zero filters added up to a multiple of
    ``TILE_FILTERS`` (:func:`conv3x3_tile` computes that many at a time)."""
    flat = w.reshape(-1)
    w_tiles = np.zeros(-(-w.shape[0] // TILE_FILTERS) * TILE_FILTERS * w[0].size, dtype=w.dtype)
    for i in range(flat.size):  # (a slice assignment took seconds more to compile)
        w_tiles[i] = flat[i]
    return w_tiles


@njit(cache=True, parallel=True)
def conv3x3(xp, w, b, y):
    """Direct 3x3 convolution, stride 1, of an already padded, channel-major input.

    ``xp`` (C, N, OH+2+spare, OW+2) with ``spare = spare_rows(OW+2)`` zero rows at the bottom,
    ``w`` (F, C, 3, 3), ``b`` (F,) -> ``y`` (N, F, OH, OW)::

        y[n, f, oh, ow] = b[f] + sum over c, i<3, j<3 of w[f, c, i, j] * xp[c, n, oh+i, ow+j]

    N * ceil(F / TILE_FILTERS) tasks (:func:`conv3x3_task`), run in parallel. (``prange``
    counts with unsigned integers; mixed with the task's signed ones, they made its index
    arithmetic 1.5x slower, hence the ``int64``.)
    """
    w_tiles = filters_by_tile(w)
    for task in prange(y.shape[0] * -(-y.shape[1] // TILE_FILTERS)):
        conv3x3_task(xp, w_tiles, b, y, np.int64(task))


@njit(cache=True)
def conv3x3_serial(xp, w, b, y):
    """:func:`conv3x3` on the calling thread, for inputs too small to pay for waking the
    other threads (see ``Conv2D.parallel_min_macs``)."""
    w_tiles = filters_by_tile(w)
    for task in range(y.shape[0] * -(-y.shape[1] // TILE_FILTERS)):
        conv3x3_task(xp, w_tiles, b, y, task)


@njit(cache=True, fastmath=True)
def conv3x3_weight_grad_task(xp, dy_grid, shift, partial_w, partial_b, task):
    """Block ``task`` of :func:`conv3x3_weight_grad`: ``partial_w[task]`` (F, C, 3, 3) and
    ``partial_b[task]`` (F,), summed over the block's positions q. One pass over q sums the
    three taps (i, 0..2) of one row of 4 filters f .. f+3 (the last one repeated where F is not
    a multiple of 4) for one input channel c: 12 sums, which stay in vector registers even on
    CPUs with only 16 of them, for 7 loads per 12 multiply-adds (1 filter x 9 taps: 10 loads
    per 9, 1.6-1.75x slower on a Zen CPU; 5 filters, 15 sums, spilled and ran at half speed)."""
    c_, n_, hp, wp = xp.shape
    f_, blocks = dy_grid.shape[0], partial_w.shape[0]
    length = n_ * hp * wp - 2 * wp - 2  # past the last output pixel, dy is 0 anyway
    block = -(-length // blocks // STEP) * STEP  # whole vectors (only the last block is not)
    q0, q1 = task * block, min((task + 1) * block, length)
    flat = xp.reshape(c_, n_ * hp * wp)
    dflat = dy_grid.reshape(f_, n_ * hp * wp)
    zero = xp.dtype.type(0)
    for f in range(f_):
        partial_b[task, f] = dflat[f, shift + q0:shift + q1].sum()
    for f in range(0, f_, 4):
        r0, r1, r2, r3 = f, min(f + 1, f_ - 1), min(f + 2, f_ - 1), min(f + 3, f_ - 1)
        d0, d1 = dflat[r0, shift + q0:shift + q1], dflat[r1, shift + q0:shift + q1]
        d2, d3 = dflat[r2, shift + q0:shift + q1], dflat[r3, shift + q0:shift + q1]
        for c in range(c_):
            for i in range(3):
                x = flat[c, q0 + i * wp:]
                x0, x1, x2 = x[0:], x[1:], x[2:]
                s0 = s1 = s2 = s3 = (zero, zero, zero)
                for q in range(q1 - q0):
                    s0 = add_scaled3(s0, d0[q], x0[q], x1[q], x2[q])
                    s1 = add_scaled3(s1, d1[q], x0[q], x1[q], x2[q])
                    s2 = add_scaled3(s2, d2[q], x0[q], x1[q], x2[q])
                    s3 = add_scaled3(s3, d3[q], x0[q], x1[q], x2[q])
                for k, sums in enumerate((s0, s1, s2, s3)):
                    if f + k < f_:
                        for j in range(3):
                            partial_w[task, f + k, c, i, j] = sums[j]


@njit(cache=True, parallel=True)
def conv3x3_weight_grad(xp, dy_grid, shift, partial_w, partial_b):
    """Gradients of :func:`conv3x3` with respect to the weights and bias, in ``B`` partial sums.

    ``xp`` (C, N, Hp, Wp) as for :func:`conv3x3`; ``dy_grid`` (F, N, Hp, Wp) holds dy
    (N, F, OH, OW) on the same grid, ``shift`` flat positions on (e.g. one row and one column
    in), and zeros elsewhere -> ``partial_w`` (B, F, C, 3, 3) and ``partial_b`` (B, F), whose
    sums over the first axis are the gradients::

        dw[f, c, i, j] = sum over n, oh, ow of dy[n, f, oh, ow] * xp[c, n, oh+i, ow+j]
        db[f]          = sum over n, oh, ow of dy[n, f, oh, ow]

    The N planes of a channel are consecutive, so pixel (n, oh, ow) is at the flat position
    q = (n*Hp + oh)*Wp + ow of ``xp`` and ``q + shift`` of ``dy_grid``, and each weight is a dot
    product over all q. The q are cut into B blocks (:func:`conv3x3_weight_grad_task`, run in
    parallel) small enough to stay in the core's cache while every (f, c) pair is summed over
    them.
    """
    for task in prange(partial_w.shape[0]):  # (int64: see conv3x3)
        conv3x3_weight_grad_task(xp, dy_grid, shift, partial_w, partial_b, np.int64(task))


@njit(cache=True)
def conv3x3_weight_grad_serial(xp, dy_grid, shift, partial_w, partial_b):
    """:func:`conv3x3_weight_grad` on the calling thread (see :func:`conv3x3_serial`)."""
    for task in range(partial_w.shape[0]):
        conv3x3_weight_grad_task(xp, dy_grid, shift, partial_w, partial_b, task)


# ---- ReLU: element-wise over flat views of contiguous arrays ----------------------------------
# NumPy's ``np.maximum(x, 0)`` plus a saved mask ``x > 0`` are two passes over memory and two
# new arrays; one compiled loop each way is 2-3x faster on LivenessNet's feature maps.


@njit(cache=True)
def relu_forward(x, y):
    """``y = max(x, 0)`` element-wise (a NaN stays NaN)."""
    xf, yf = x.reshape(-1), y.reshape(-1)
    for i in range(xf.size):
        yf[i] = max(xf[i], 0.0)


@njit(cache=True)
def relu_backward(y, dout, dx):
    """ReLU's ``dx = dout * [y > 0]`` from its output ``y`` (``y > 0`` iff ``x > 0``)."""
    yf, df, dxf = y.reshape(-1), dout.reshape(-1), dx.reshape(-1)
    for i in range(yf.size):
        dxf[i] = df[i] if yf[i] > 0 else 0.0


# ---- dropout: a mask from counter-based random numbers ---------------------------------------
# NumPy's generator fills an array of uniform floats at ~2.8 ns each; here each element's random
# number is a hash of (seed, its index), computed where it is used: 7x faster for the whole
# dropout forward (59 vs ~430 us for LivenessNet's first dropout at batch 32).


@njit(cache=True)
def dropout_forward(x, seed, threshold, scale, mask, y):
    """``mask = scale * [u >= p]`` and ``y = x * mask`` element-wise, where ``u`` is uniform.

    Element i's 24 random bits are the top bits of SplitMix64 (a 64-bit integer hash, Steele,
    Lea & Flood 2014) of ``seed + (i + 1) * 0x9E3779B97F4A7C15``; with ``u = bits / 2^24``,
    ``u >= p`` is ``bits >= threshold`` for ``threshold = ceil(p * 2^24)``. A new ``seed`` per
    call gives a new mask; the same seed, the same mask.
    """
    xf, mf, yf = x.reshape(-1), mask.reshape(-1), y.reshape(-1)
    keep, drop = x.dtype.type(scale), x.dtype.type(0)
    start, limit = np.uint64(seed), np.uint64(threshold)
    for i in range(xf.size):
        z = start + np.uint64(i + 1) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        mf[i] = keep if z >> np.uint64(40) >= limit else drop
        yf[i] = xf[i] * mf[i]


# ---- batch normalisation: per-channel loops over a (N, C, L) view --------------------------------
# BatchNorm2D sees (N, C, H, W) as (N, C, H*W) and BatchNorm1D sees (N, C) as (N, C, 1). NumPy
# would reduce over axes (0, 2) with temporaries for x - mean, xhat, dout * xhat, ...; here each
# channel is one pass and every statistic is a running sum.


@njit(cache=True, fastmath=True)
def channel_mean_var(x, mean, var):
    """Per-channel mean and biased variance of ``x`` (N, C, L) over N and L (float64 sums)::

        mean[c] = sum of x[:, c, :] / M       var[c] = sum of (x[:, c, :] - mean[c])^2 / M
    """
    n_, c_, l_ = x.shape
    m = n_ * l_
    for c in range(c_):
        s = 0.0
        for n in range(n_):
            for k in range(l_):
                s += x[n, c, k]
        mu = s / m
        ss = 0.0
        for n in range(n_):
            for k in range(l_):
                d = x[n, c, k] - mu
                ss += d * d
        mean[c], var[c] = mu, ss / m


@njit(cache=True, fastmath=True)
def batchnorm_forward(x, mean, inv_std, gamma, beta, y):
    """``y[n, c, k] = gamma[c] * (x[n, c, k] - mean[c]) * inv_std[c] + beta[c]``, all (N, C, L)."""
    n_, c_, l_ = x.shape
    for c in range(c_):
        mu, scale, shift = mean[c], gamma[c] * inv_std[c], beta[c]
        for n in range(n_):
            for k in range(l_):
                y[n, c, k] = (x[n, c, k] - mu) * scale + shift


@njit(cache=True, fastmath=True)
def batchnorm_backward(x, mean, inv_std, gamma, dout, training, dx, dgamma, dbeta):
    """Gradients of :func:`batchnorm_forward`, with ``xhat = (x - mean) * inv_std`` (N, C, L)::

        dbeta[c] = sum of dout[:, c, :]       dgamma[c] = sum of dout[:, c, :] * xhat[:, c, :]
        training: dx = gamma * inv_std / M * (M * dout - dbeta - xhat * dgamma)
        eval:     dx = gamma * inv_std * dout      (mean and inv_std are constants then)
    """
    n_, c_, l_ = x.shape
    m = n_ * l_
    for c in range(c_):
        mu, inv = mean[c], inv_std[c]
        s, sx = 0.0, 0.0
        for n in range(n_):
            for k in range(l_):
                s += dout[n, c, k]
                sx += dout[n, c, k] * (x[n, c, k] - mu) * inv
        dbeta[c], dgamma[c] = s, sx
        scale = gamma[c] * inv
        shift = scale * s / m if training else 0.0
        slope = scale * sx / m * inv if training else 0.0
        for n in range(n_):
            for k in range(l_):
                dx[n, c, k] = scale * dout[n, c, k] - shift - slope * (x[n, c, k] - mu)


# ---- optimizer -------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def adam_update(w, g, m, v, beta1, beta2, step_size, v_correction, eps):
    """One Adam step on flat arrays, in place (the bias corrections are folded into
    ``step_size = lr / (1 - beta1^t)`` and ``v_correction = 1 / sqrt(1 - beta2^t)``)::

        m = beta1 * m + (1 - beta1) * g         v = beta2 * v + (1 - beta2) * g^2
        w = w - step_size * m / (sqrt(v) * v_correction + eps)

    ``error_model="numpy"``: with Python's (the default) every division checks for zero and
    raises, which keeps the loop from being vectorised (6x slower). ``one`` has the arrays'
    dtype: a plain ``1 - beta1`` would be computed in float64.
    """
    one = w.dtype.type(1)
    for i in range(w.shape[0]):
        m[i] = beta1 * m[i] + (one - beta1) * g[i]
        v[i] = beta2 * v[i] + (one - beta2) * g[i] * g[i]
        w[i] -= step_size * m[i] / (np.sqrt(v[i]) * v_correction + eps)
