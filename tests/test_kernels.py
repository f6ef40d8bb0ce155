"""Each compiled kernel against a naive Python-loop implementation of the same operation."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import llvmlite.binding
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet import kernels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # subprocesses run here

# ---- naive twins: the definitions, written as directly as possible ----------------------------


def naive_im2col(x, kh, kw, sh, sw, ph, pw, oh, ow):
    n, c, h, w = x.shape
    cols = np.zeros((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for idx in np.ndindex(cols.shape):
        b, ch, i, j, r, s = idx
        ih, iw = r * sh + i - ph, s * sw + j - pw
        if 0 <= ih < h and 0 <= iw < w:
            cols[idx] = x[b, ch, ih, iw]
    return cols


def naive_col2im(cols, x_shape, sh, sw, ph, pw):
    dx = np.zeros(x_shape, dtype=cols.dtype)
    h, w = x_shape[2:]
    for idx in np.ndindex(cols.shape):
        b, ch, i, j, r, s = idx
        ih, iw = r * sh + i - ph, s * sw + j - pw
        if 0 <= ih < h and 0 <= iw < w:
            dx[b, ch, ih, iw] += cols[idx]
    return dx


def naive_conv(xp, w, b):
    """y[n, f, oh, ow] = b[f] + sum of w[f] * the window of xp at (oh, ow) (stride 1, no pad)."""
    (n, _, hp, wp), (f, _, kh, kw) = xp.shape, w.shape
    y = np.zeros((n, f, hp - kh + 1, wp - kw + 1), dtype=xp.dtype)
    for b_, ch, r, s in np.ndindex(y.shape):
        y[b_, ch, r, s] = b[ch] + np.sum(w[ch] * xp[b_, :, r:r + kh, s:s + kw])
    return y


def naive_conv_weight_grad(xp, dy, kh, kw):
    dw = np.zeros((dy.shape[1], xp.shape[1], kh, kw), dtype=xp.dtype)
    for b_, ch, r, s in np.ndindex(dy.shape):
        dw[ch] += dy[b_, ch, r, s] * xp[b_, :, r:r + kh, s:s + kw]
    return dw


def naive_pool(x, kh, kw, sh, sw, reduce):
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.zeros((n, c, oh, ow), dtype=x.dtype)
    for b, ch, r, s in np.ndindex(out.shape):
        out[b, ch, r, s] = reduce(x[b, ch, r * sh:r * sh + kh, s * sw:s * sw + kw])
    return out


def naive_maxpool_backward(x, dout, kh, kw, sh, sw):
    dx = np.zeros_like(x)
    for b, ch, r, s in np.ndindex(dout.shape):
        window = x[b, ch, r * sh:r * sh + kh, s * sw:s * sw + kw]
        i, j = np.unravel_index(np.argmax(window), window.shape)
        dx[b, ch, r * sh + i, s * sw + j] += dout[b, ch, r, s]
    return dx


def naive_avgpool_backward(x_shape, dout, kh, kw, sh, sw):
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for b, ch, r, s in np.ndindex(dout.shape):
        dx[b, ch, r * sh:r * sh + kh, s * sw:s * sw + kw] += dout[b, ch, r, s] / (kh * kw)
    return dx


# ---- strategies -----------------------------------------------------------------------------

dtypes = st.sampled_from([np.float32, np.float64])


@st.composite
def conv_case(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 8))
    w = draw(st.integers(max(1, kw - 2 * pw), 8))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, h, w), (kh, kw), (sh, sw), (ph, pw)


@st.composite
def pool_case(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(kh, 9)), draw(st.integers(kw, 9))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, h, w), (kh, kw), (sh, sw)


# ---- tests ----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(case=conv_case(), dtype=dtypes, seed=st.integers(0, 2**16))
def test_im2col_and_col2im_match_naive_loops(case, dtype, seed):
    shape, (kh, kw), (sh, sw), (ph, pw) = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    oh, ow = (shape[2] + 2 * ph - kh) // sh + 1, (shape[3] + 2 * pw - kw) // sw + 1
    cols = np.full((shape[0], shape[1], kh, kw, oh, ow), np.nan, dtype=dtype)
    kernels.im2col(x, sh, sw, ph, pw, cols)
    np.testing.assert_array_equal(cols, naive_im2col(x, kh, kw, sh, sw, ph, pw, oh, ow))

    dcols = rng.standard_normal(cols.shape).astype(dtype)
    dx = np.full(shape, np.nan, dtype=dtype)
    kernels.col2im(dcols, sh, sw, ph, pw, dx)
    expected = naive_col2im(dcols, shape, sh, sw, ph, pw)
    np.testing.assert_allclose(dx, expected, rtol=1e-6 if dtype == np.float32 else 1e-13)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 4), f=st.integers(1, 18), h=st.integers(1, 8),
       w=st.integers(1, 8), pads=st.tuples(*[st.integers(0, 2)] * 4), dtype=dtypes,
       seed=st.integers(0, 2**16))
def test_direct_3x3_kernels_match_naive_loops(n, c, f, h, w, pads, dtype, seed):
    rng = np.random.default_rng(seed)
    pt, pb, pl, pr = pads
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wp = w + pl + pr
    spare = kernels.spare_rows(wp)  # zero rows below each plane, read by the rounded-up loops
    xp = np.full((c, n, h + pt + pb + spare, wp), np.nan, dtype=dtype)
    kernels.pad_cnhw(x, pt, pl, xp)
    np.testing.assert_array_equal(xp, np.pad(x, ((0, 0), (0, 0), (pt, pb + spare), (pl, pr))
                                             ).transpose(1, 0, 2, 3))
    if min(h + pt + pb, wp) < 3:
        return
    weights = rng.standard_normal((f, c, 3, 3)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    y = np.full((n, f, h + pt + pb - 2, wp - 2), np.nan, dtype=dtype)
    kernels.conv3x3(xp, weights, bias, y)
    y_serial = np.full(y.shape, np.nan, dtype=dtype)
    kernels.conv3x3_serial(xp, weights, bias, y_serial)
    np.testing.assert_array_equal(y_serial, y)  # the same tasks, one thread
    x_padded = xp[:, :, :h + pt + pb].transpose(1, 0, 2, 3)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    np.testing.assert_allclose(y, naive_conv(x_padded, weights, bias), **tol)
    dy = rng.standard_normal(y.shape).astype(dtype)
    r = int(rng.integers(0, 2))  # dy on xp's grid, r rows and r columns in
    dy_grid = np.pad(dy, ((0, 0), (0, 0), (r, 2 - r + spare), (r, 2 - r)))
    dy_grid = dy_grid.transpose(1, 0, 2, 3).copy()
    partial_w = np.full((3, *weights.shape), np.nan, dtype=dtype)  # 3 blocks of positions
    partial_b = np.full((3, f), np.nan, dtype=dtype)
    kernels.conv3x3_weight_grad(xp, dy_grid, r * wp + r, partial_w, partial_b)
    serial_w, serial_b = np.full_like(partial_w, np.nan), np.full_like(partial_b, np.nan)
    kernels.conv3x3_weight_grad_serial(xp, dy_grid, r * wp + r, serial_w, serial_b)
    np.testing.assert_array_equal(serial_w, partial_w)
    np.testing.assert_array_equal(serial_b, partial_b)
    np.testing.assert_allclose(partial_w.sum(axis=0), naive_conv_weight_grad(x_padded, dy, 3, 3),
                               **tol)
    np.testing.assert_allclose(partial_b.sum(axis=0), dy.sum(axis=(0, 2, 3)), **tol)


@settings(max_examples=40, deadline=None)
@given(case=pool_case(), dtype=dtypes, seed=st.integers(0, 2**16))
def test_pooling_kernels_match_naive_loops(case, dtype, seed):
    shape, (kh, kw), (sh, sw) = case
    rng = np.random.default_rng(seed)
    x = rng.permutation(np.prod(shape)).reshape(shape).astype(dtype)  # distinct: one argmax
    expected_max = naive_pool(x, kh, kw, sh, sw, np.max)
    out = np.full(expected_max.shape, np.nan, dtype=dtype)
    argmax = np.empty(out.shape, dtype=np.int64)
    kernels.maxpool_forward(x, kh, kw, sh, sw, out, argmax)
    np.testing.assert_array_equal(out, expected_max)

    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = np.full(shape, np.nan, dtype=dtype)
    kernels.maxpool_backward(dout, argmax, dx)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(dx, naive_maxpool_backward(x, dout, kh, kw, sh, sw), rtol=tol)

    kernels.avgpool_forward(x, kh, kw, sh, sw, out)
    np.testing.assert_allclose(out, naive_pool(x, kh, kw, sh, sw, np.mean), rtol=tol)
    kernels.avgpool_backward(dout, kh, kw, sh, sw, dx)
    np.testing.assert_allclose(dx, naive_avgpool_backward(shape, dout, kh, kw, sh, sw),
                               rtol=tol, atol=tol)


@settings(max_examples=30, deadline=None)
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(2, 9),
                       st.integers(2, 9)), dtype=dtypes, seed=st.integers(0, 2**16))
def test_maxpool2x2_matches_the_general_kernel(shape, dtype, seed):
    x = np.random.default_rng(seed).integers(0, 3, shape).astype(dtype)  # many ties
    out_shape = (*shape[:2], shape[2] // 2, shape[3] // 2)
    out, argmax = np.full(out_shape, np.nan, dtype=dtype), np.empty(out_shape, dtype=np.int64)
    kernels.maxpool_forward(x, 2, 2, 2, 2, out, argmax)
    out_2x2, argmax_2x2 = np.full_like(out, np.nan), np.empty_like(argmax)
    kernels.maxpool2x2_forward(x, out_2x2, argmax_2x2)
    np.testing.assert_array_equal(out_2x2, out)
    np.testing.assert_array_equal(argmax_2x2, argmax)  # the first maximum on ties


@settings(max_examples=20, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), dtype=dtypes,
       seed=st.integers(0, 2**16))
def test_relu_kernels_match_the_definition(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[::5] = 0.0  # the kink: gradient 0, like PyTorch
    x.reshape(-1)[1::7] = np.nan  # a NaN goes through, it is not hidden as 0
    dout = rng.standard_normal(shape).astype(dtype)
    y, dx = np.full_like(x, -1.0), np.full_like(x, -1.0)
    kernels.relu_forward(x, y)
    np.testing.assert_array_equal(y, np.maximum(x, 0))  # (NaN where x is NaN)
    kernels.relu_backward(y, dout, dx)
    np.testing.assert_array_equal(dx, np.where(x > 0, dout, 0))


def naive_splitmix64(value):
    """SplitMix64's output function on a Python int (mod 2^64), written out step by step."""
    mod = 2**64
    z = value % mod
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % mod
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % mod
    return z ^ (z >> 31)


@settings(max_examples=20, deadline=None)
@given(size=st.integers(1, 300), p=st.floats(0, 0.99), dtype=dtypes, seed=st.integers(0, 2**63 - 1))
def test_dropout_kernel_matches_the_definition(size, p, dtype, seed):
    x = np.random.default_rng(0).standard_normal(size).astype(dtype)
    mask, y = np.full_like(x, np.nan), np.full_like(x, np.nan)
    threshold, scale = math.ceil(p * 2**24), 1 / (1 - p)
    kernels.dropout_forward(x, seed, threshold, scale, mask, y)
    bits = [naive_splitmix64(seed + (i + 1) * 0x9E3779B97F4A7C15) >> 40 for i in range(size)]
    expected = np.array([scale if b / 2**24 >= p else 0 for b in bits], dtype=dtype)
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(y, x * expected)


def test_dropout_masks_look_independent():
    """Neighbouring elements and successive seeds give uncorrelated masks at the right rate."""
    x = np.ones(200_000, np.float32)
    masks = []
    for seed in (1, 2):
        mask, y = np.empty_like(x), np.empty_like(x)
        kernels.dropout_forward(x, seed, math.ceil(0.3 * 2**24), 1.0, mask, y)
        masks.append(mask)
    a, b = masks
    # 200,000 draws: standard errors ~0.001 (rate) and ~0.0022 (correlations); bounds ~5 sigma
    assert abs(a.mean() - 0.7) < 0.005
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 0.011
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.011


# Run in a fresh process: the vector width is chosen when scratchnet.kernels is imported.
WITHOUT_AVX512 = """
import numpy as np
from scratchnet import kernels
from tests.test_kernels import naive_conv, naive_conv_weight_grad
assert (kernels.VECTOR_BYTES, kernels.TILE_VECTORS, kernels.TILE_FILTERS) == (32, 2, 4)
rng = np.random.default_rng(0)
for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-12)):
    n, c, f, h, w = 2, 3, 11, 7, 9
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    xp = np.empty((c, n, h + 2 + kernels.spare_rows(w + 2), w + 2), dtype=dtype)
    kernels.pad_cnhw(x, 1, 1, xp)
    weights = rng.standard_normal((f, c, 3, 3)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    x_padded = xp[:, :, :h + 2].transpose(1, 0, 2, 3)
    expected = naive_conv(x_padded, weights, bias)
    for conv in (kernels.conv3x3, kernels.conv3x3_serial):
        y = np.full((n, f, h, w), np.nan, dtype=dtype)
        conv(xp, weights, bias, y)
        np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)
    dy = rng.standard_normal((n, f, h, w)).astype(dtype)
    dy_grid = np.zeros((f, *xp.shape[1:]), dtype=dtype)  # dy on xp's grid (shift 0)
    dy_grid[:, :, :h, :w] = dy.transpose(1, 0, 2, 3)
    for grad in (kernels.conv3x3_weight_grad, kernels.conv3x3_weight_grad_serial):
        partial_w = np.full((2, f, c, 3, 3), np.nan, dtype)  # 2 blocks of positions
        partial_b = np.full((2, f), np.nan, dtype)
        grad(xp, dy_grid, 0, partial_w, partial_b)
        np.testing.assert_allclose(partial_w.sum(axis=0), naive_conv_weight_grad(
            x_padded, dy, 3, 3), rtol=tol, atol=tol)
        np.testing.assert_allclose(partial_b.sum(axis=0), dy.sum(axis=(0, 2, 3)), rtol=tol,
                                   atol=tol)
"""


@pytest.mark.skipif("+avx2" not in llvmlite.binding.get_host_cpu_features().flatten().split(","),
                    reason="compiles for a Haswell (AVX2) CPU, which this one cannot run")
def test_direct_3x3_convolution_without_avx512(tmp_path):
    """The 256-bit, 4-filter tile of conv3x3_tile (CPUs without AVX-512), compiled for a Haswell
    CPU."""
    env = {**os.environ, "NUMBA_CPU_NAME": "haswell", "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", WITHOUT_AVX512], env=env, capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_kernels_compile_once_per_dtype_not_per_shape():
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 4, 4), (2, 3, 6, 5), (3, 2, 9, 7)]:
        x = rng.standard_normal(shape).astype(np.float32)
        out = np.empty((shape[0], shape[1], shape[2] // 2, shape[3] // 2), dtype=np.float32)
        kernels.avgpool_forward(x, 2, 2, 2, 2, out)
        cols = np.empty((shape[0], shape[1], 3, 3, shape[2], shape[3]), dtype=np.float32)
        kernels.im2col(x, 1, 1, 1, 1, cols)
    f32 = [sig for sig in kernels.avgpool_forward.signatures if "float32" in str(sig)]
    assert len(f32) == 1, kernels.avgpool_forward.signatures
    f32 = [sig for sig in kernels.im2col.signatures if "float32" in str(sig)]
    assert len(f32) == 1, kernels.im2col.signatures


# Run in a fresh process: the worker threads are started (and pinned) once per process.
WORKER_PLACEMENT = """
import json, os, sys, threading
allowed = sorted(os.sched_getaffinity(0))
if sys.argv[1] == "one cpu":
    os.sched_setaffinity(0, allowed[:1])
from scratchnet import kernels
kernels.spread_workers()
def cpus(text):  # "0-2,5" -> [0, 1, 2, 5]
    out = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        out += range(int(first), int(last or first) + 1)
    return out
placement = {}
for tid in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{tid}/status") as status:
        line = next(line for line in status if line.startswith("Cpus_allowed_list:"))
    placement[int(tid)] = cpus(line.split(":")[1].strip())
print(json.dumps({"main": placement.pop(threading.get_native_id()),
                  "others": sorted(placement.values()), "allowed": allowed}))
"""


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and at least 2 CPUs to place threads on")
@pytest.mark.parametrize("case", ["default", "opted out", "one cpu"])
def test_each_worker_thread_gets_its_own_cpu_and_the_caller_stays_free(case):
    env = {**os.environ, "NUMBA_NUM_THREADS": "2", "SCRATCHNET_PIN_WORKERS": "1"}
    env.pop("NUMBA_THREADING_LAYER", None)
    if case == "opted out":
        env["SCRATCHNET_PIN_WORKERS"] = "0"
    done = subprocess.run([sys.executable, "-c", WORKER_PLACEMENT, case], env=env,
                          capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    allowed = seen["allowed"][:1] if case == "one cpu" else seen["allowed"]
    assert seen["main"] == allowed  # the caller's thread is never pinned
    pinned = [cpus for cpus in seen["others"] if len(cpus) == 1 and cpus != allowed]
    if case == "default":  # two workers, two different CPUs, both allowed to the process
        assert sorted(pinned) == [[cpu] for cpu in seen["allowed"][:2]]
    else:  # opted out, or more workers (2) than CPUs (1): nothing pinned
        assert pinned == []
