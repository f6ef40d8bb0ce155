"""Conv2D: the paper's worked example, gradients vs finite differences, parity with PyTorch."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
import scratchnet.conv
from scratchnet.conv import Conv2D
from scratchnet.gradcheck import check_layer

# Two summation orders of the same products: equal up to a few units of rounding.
TIGHT = {np.float32: {"rtol": 1e-5, "atol": 1e-5}, np.float64: {"rtol": 1e-12, "atol": 1e-12}}


@st.composite
def conv_case(draw):
    kh, kw = draw(st.sampled_from([(3, 3), (3, 3), (1, 1), (2, 2), (1, 3), (3, 2)]))
    stride = draw(st.sampled_from([1, 1, 2, (1, 2), (2, 1)]))  # 3x3 stride 1: the direct path
    if stride == 1 and draw(st.booleans()):
        padding = draw(st.sampled_from(["same", "valid"]))
        ph = pw = 0 if padding == "valid" else max(kh, kw)
    else:
        padding = draw(st.sampled_from([0, 1, 2, (1, 0)]))
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
    h = draw(st.integers(max(1, kh - 2 * ph), 6))
    w = draw(st.integers(max(1, kw - 2 * pw), 6))
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, h, w), f, (kh, kw), stride, padding


def test_paper_examples_in_the_docstring():
    assert doctest.testmod(scratchnet.conv).failed == 0


def test_5x5_image_and_3x3_kernel_give_3x3_map_of_window_sums():
    conv = Conv2D(1, 1, 3, dtype=np.float64)
    conv.params["W"][...] = 1.0
    conv.params["b"][...] = 0.5
    image = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)
    out = conv.forward(image)
    assert out.shape == (1, 1, 3, 3)
    windows = [[image[0, 0, r:r + 3, s:s + 3].sum() + 0.5 for s in range(3)] for r in range(3)]
    np.testing.assert_array_equal(out[0, 0], windows)


@settings(max_examples=30, deadline=None)
@given(case=conv_case(), seed=st.integers(0, 2**16), direct=st.booleans())
def test_backward_matches_finite_differences(case, seed, direct):
    shape, f, kernel, stride, padding = case
    rng = np.random.default_rng(seed)
    conv = Conv2D(shape[1], f, kernel, stride, padding, dtype=np.float64, rng=rng)
    conv.params["b"][...] = rng.standard_normal(f)
    conv.direct = conv.direct and direct
    x = rng.standard_normal(shape)
    if padding == "same":
        assert conv.forward(x).shape[2:] == shape[2:]
    check_layer(conv, x, seed=seed)  # dx, dW, db vs centred differences, rtol 1e-6


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 4), f=st.integers(1, 18), h=st.integers(1, 9),
       w=st.integers(1, 9), padding=st.sampled_from([0, 1, 2, (2, 0), "same", "valid"]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_direct_3x3_path_matches_im2col_reference(n, c, f, h, w, padding, dtype, seed):
    rng = np.random.default_rng(seed)
    direct = Conv2D(c, f, 3, padding=padding, dtype=dtype, rng=seed)
    reference = Conv2D(c, f, 3, padding=padding, dtype=dtype, rng=seed)
    assert direct.direct
    direct.parallel_min_macs = seed % 2 * 10**9  # the parallel kernels or their serial twins
    reference.direct = False
    for conv in (direct, reference):
        conv.params["b"][...] = np.arange(f)
    x = rng.standard_normal((n, c, h + 2, w + 2)).astype(dtype)
    out = direct.forward(x)
    np.testing.assert_allclose(out, reference.forward(x), **TIGHT[dtype])
    g = rng.standard_normal(out.shape).astype(dtype)
    np.testing.assert_allclose(direct.backward(g), reference.backward(g), **TIGHT[dtype])
    for name in ("W", "b"):
        np.testing.assert_allclose(direct.grads[name], reference.grads[name], **TIGHT[dtype])


def test_backward_overwrites_gradients():
    rng = np.random.default_rng(0)
    conv = Conv2D(2, 3, 3, padding=1, rng=rng)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    g = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    conv.forward(x)
    conv.backward(g)
    first = {k: v.copy() for k, v in conv.grads.items()}
    conv.forward(x)
    conv.backward(g)
    for k, v in conv.grads.items():
        np.testing.assert_array_equal(v, first[k])


@pytest.mark.parametrize("direct", [True, False])
def test_without_input_grad_backward_skips_dx_but_not_the_weight_gradients(direct):
    rng = np.random.default_rng(1)
    conv = Conv2D(3, 10, 3, padding="same", rng=rng)
    conv.direct = direct
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    g = rng.standard_normal((2, 10, 6, 6)).astype(np.float32)
    conv.forward(x)
    assert conv.backward(g) is not None
    full = {k: v.copy() for k, v in conv.grads.items()}
    conv.needs_input_grad = False
    conv.forward(x)
    assert conv.backward(g) is None
    for k, v in conv.grads.items():
        np.testing.assert_array_equal(v, full[k])


def test_he_initialisation_and_config_round_trip():
    conv = Conv2D(16, 32, 3, padding="same", rng=0)
    assert conv.params["W"].shape == (32, 16, 3, 3) and conv.params["W"].dtype == np.float32
    assert conv.params["b"].shape == (32,) and not conv.params["b"].any()
    assert abs(conv.params["W"].std() - np.sqrt(2 / (16 * 9))) < 0.01
    np.testing.assert_array_equal(Conv2D(16, 32, 3, padding="same", rng=0).params["W"],
                                  conv.params["W"])
    assert Conv2D(**conv.config()).config() == conv.config()


@pytest.mark.parametrize("make, x, match", [
    (lambda: Conv2D(3, 4, 3), np.zeros((3, 8, 8), np.float32), "4-D"),
    (lambda: Conv2D(3, 4, 3), np.zeros((1, 2, 8, 8), np.float32), "3 input channels"),
    (lambda: sn.Sequential([Conv2D(3, 4, 3)]), np.full((1, 3, 8, 8), np.nan, np.float32),
     "NaN"),
    (lambda: Conv2D(3, 4, 5), np.zeros((1, 3, 4, 4), np.float32), "smaller than the window"),
    (lambda: Conv2D(3, 4, 3), np.zeros((1, 3, 8, 8), np.int64), "dtype"),
    (lambda: Conv2D(3, 4, 0), None, "kernel_size"),
    (lambda: Conv2D(3, 4, 3, stride=2, padding="same"), None, "stride 1"),
    (lambda: Conv2D(3, 4, 3, padding="full"), None, "padding"),
    (lambda: Conv2D(3, 4, 3, padding=-1), None, "padding"),
    (lambda: Conv2D(3, 4, (3, 3, 3)), None, "pair"),
    (lambda: Conv2D(0, 4, 3), None, "channel"),
])
def test_bad_input_is_a_one_line_value_error(make, x, match):
    with pytest.raises(ValueError, match=match) as err:
        make().forward(x)
    assert "\n" not in str(err.value)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@settings(max_examples=15, deadline=None)
@given(case=conv_case(), seed=st.integers(0, 2**16))
def test_parity_with_torch(case, seed):
    torch = pytest.importorskip("torch", reason="torch not installed: PyTorch parity skipped")
    shape, f, kernel, stride, padding = case
    rng = np.random.default_rng(seed)
    conv = Conv2D(shape[1], f, kernel, stride, padding, rng=rng)
    conv.params["b"][...] = rng.standard_normal(f)
    x = rng.standard_normal(shape).astype(np.float32)
    out = conv.forward(x)
    g = rng.standard_normal(out.shape).astype(np.float32)
    dx = conv.backward(g)

    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(conv.params["W"], requires_grad=True)
    tb = torch.tensor(conv.params["b"], requires_grad=True)
    tout = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding)
    tout.backward(torch.tensor(g))
    for ours, ref in [(out, tout), (dx, tx.grad), (conv.grads["W"], tw.grad),
                      (conv.grads["b"], tb.grad)]:
        ref = ref.detach().numpy()
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
