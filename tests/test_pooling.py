"""MaxPool2D / AvgPool2D: worked examples, gradients vs finite differences, parity with PyTorch."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
import scratchnet.pooling
from scratchnet.gradcheck import check_layer
from scratchnet.pooling import AvgPool2D, MaxPool2D


@st.composite
def pool_case(draw):
    kernel = draw(st.sampled_from([1, 2, 3, (2, 3), (3, 1)]))
    stride = draw(st.sampled_from([None, 1, 2, 3, (1, 2)]))  # stride 1 with kernel 3: overlap
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    h, w = draw(st.integers(kh, 7)), draw(st.integers(kw, 7))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w), kernel, stride


def distinct_input(shape, rng):
    """Distinct values 0.1 apart (far more than 2h), so the max is stable under +-h."""
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.1


def test_paper_examples_in_the_docstring():
    assert doctest.testmod(scratchnet.pooling).failed == 0


def test_3x3_pooling_over_a_5x5_map_max_vs_average():
    fmap = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)
    fmap[0, 0, 0, 0] = 100.0  # one outlier: max pooling keeps it, average pooling dilutes it
    mx, avg = MaxPool2D(3, stride=1).forward(fmap), AvgPool2D(3, stride=1).forward(fmap)
    assert mx.shape == avg.shape == (1, 1, 3, 3)
    assert mx[0, 0, 0, 0] == 100.0 and avg[0, 0, 0, 0] == pytest.approx((100 + 54) / 9)
    assert (mx >= avg).all()
    assert MaxPool2D(3).forward(fmap).shape == (1, 1, 1, 1)  # stride defaults to the window
    assert MaxPool2D(3, stride=2).forward(fmap).shape == (1, 1, 2, 2)


@settings(max_examples=30, deadline=None)
@given(case=pool_case(), layer=st.sampled_from([MaxPool2D, AvgPool2D]), seed=st.integers(0, 999))
def test_backward_matches_finite_differences(case, layer, seed):
    shape, kernel, stride = case
    rng = np.random.default_rng(seed)
    check_layer(layer(kernel, stride), distinct_input(shape, rng), seed=seed)


def test_overlapping_max_windows_add_gradients_on_the_shared_winner():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0  # the centre wins all four 2x2 windows with stride 1
    pool = MaxPool2D(2, stride=1)
    pool.forward(x)
    dx = pool.backward(np.ones((1, 1, 2, 2)))
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 1, 1] = 4.0
    np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("layer", [MaxPool2D, AvgPool2D])
def test_keeps_float32_and_config_round_trips(layer):
    pool = layer(2)
    assert pool.forward(np.ones((1, 2, 4, 4), np.float32)).dtype == np.float32
    assert layer(**pool.config()).config() == pool.config() == {"kernel_size": [2, 2],
                                                                 "stride": [2, 2]}


@pytest.mark.parametrize("layer", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize("make_args, x, match", [
    ((2,), np.zeros((4, 4), np.float32), "4-D"),
    ((5,), np.zeros((1, 1, 4, 4), np.float32), "smaller than the window"),
    ((0,), None, "kernel_size"),
    ((2, 0), None, "stride"),
    (("2",), None, "pair"),
])
def test_bad_input_is_a_one_line_value_error(layer, make_args, x, match):
    with pytest.raises(ValueError, match=match) as err:
        layer(*make_args).forward(x)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("layer", [MaxPool2D, AvgPool2D])
def test_non_finite_input_is_caught_once_by_sequential(layer):
    with pytest.raises(ValueError, match="NaN or inf") as err:
        sn.Sequential([layer(2)]).forward(np.full((1, 1, 4, 4), np.inf, np.float32))
    assert "\n" not in str(err.value)


@settings(max_examples=15, deadline=None)
@given(case=pool_case(), layer=st.sampled_from([MaxPool2D, AvgPool2D]), seed=st.integers(0, 999))
def test_parity_with_torch(case, layer, seed):
    torch = pytest.importorskip("torch", reason="torch not installed: PyTorch parity skipped")
    shape, kernel, stride = case
    rng = np.random.default_rng(seed)
    pool = layer(kernel, stride)
    x = distinct_input(shape, rng).astype(np.float32)
    out = pool.forward(x)
    g = rng.standard_normal(out.shape).astype(np.float32)
    dx = pool.backward(g)

    tx = torch.tensor(x, requires_grad=True)
    fn = torch.nn.functional.max_pool2d if layer is MaxPool2D else torch.nn.functional.avg_pool2d
    tout = fn(tx, kernel, stride)
    tout.backward(torch.tensor(g))
    for ours, ref in [(out, tout), (dx, tx.grad)]:
        ref = ref.detach().numpy()
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
