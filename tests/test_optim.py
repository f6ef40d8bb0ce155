"""SGD (momentum) and Adam against steps worked out by hand; in-place updates; state dicts."""

from __future__ import annotations

import numpy as np
import pytest

import scratchnet as sn


def one_weight(value: float = 1.0) -> tuple[sn.Dense, list[sn.Parameter]]:
    """A Dense(1, 1) in float64 whose W we drive by hand (b stays at 0 with zero gradient)."""
    layer = sn.Dense(1, 1, dtype=np.float64)
    layer.params["W"][...] = value
    return layer, sn.Sequential([layer]).parameters()


def test_sgd_without_momentum_is_w_minus_lr_g():
    layer, params = one_weight(1.0)
    opt = sn.SGD(params, lr=0.1)
    layer.grads["W"][...] = 2.0
    opt.step()
    assert layer.params["W"][0, 0] == pytest.approx(0.8, abs=1e-15)


def test_sgd_momentum_by_hand():
    layer, params = one_weight(1.0)
    opt = sn.SGD(params, lr=0.1, momentum=0.9)
    # v1 = 0.5, w1 = 1 - 0.05 = 0.95; v2 = 0.9 * 0.5 + (-1) = -0.55, w2 = 0.95 + 0.055 = 1.005
    for g, w in [(0.5, 0.95), (-1.0, 1.005)]:
        layer.grads["W"][...] = g
        opt.step()
        assert layer.params["W"][0, 0] == pytest.approx(w, abs=1e-12)


def test_adam_by_hand():
    layer, params = one_weight(1.0)
    opt = sn.Adam(params, lr=0.1)
    # step 1: m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25 -> w = 1 - 0.1 * 0.5 / 0.5
    # step 2: m = -0.055, v = 0.00124975, m_hat = -0.055 / 0.19, v_hat = 0.00124975 / 0.001999
    for g, w in [(0.5, 0.9000000019999999), (-1.0, 0.9366103542405653)]:
        layer.grads["W"][...] = g
        opt.step()
        assert layer.params["W"][0, 0] == pytest.approx(w, abs=1e-12)
    assert opt.m[0][0, 0] == pytest.approx(-0.055) and opt.v[0][0, 0] == pytest.approx(0.00124975)


@pytest.mark.parametrize("make", [lambda p: sn.SGD(p, 0.1, momentum=0.5), sn.Adam])
def test_updates_are_in_place_and_keep_float32(make):
    layer = sn.Dense(3, 2, rng=0)
    arrays = dict(layer.params)
    opt = make(sn.Sequential([layer]).parameters())
    layer.grads["W"][...] = 1.0
    before = layer.params["W"].copy()
    opt.step()
    assert all(layer.params[k] is arrays[k] for k in arrays)
    assert layer.params["W"].dtype == np.float32
    assert (layer.params["W"] < before).all()


@pytest.mark.parametrize("make", [lambda p: sn.SGD(p, 0.1, momentum=0.9), sn.Adam])
def test_state_dict_round_trip_continues_identically(make):
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((6, 3, 2)).astype(np.float32)
    runs = []
    for resume in (False, True):
        layer = sn.Dense(3, 2, rng=1)
        opt = make(sn.Sequential([layer]).parameters())
        for i, g in enumerate(grads):
            if resume and i == 3:  # swap in a fresh optimizer restored from a snapshot
                state = opt.state_dict()
                opt = make(sn.Sequential([layer]).parameters())
                opt.load_state_dict(state)
            layer.grads["W"][...] = g
            opt.step()
        runs.append(layer.params["W"].copy())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_load_state_dict_rejects_mismatches():
    opt = sn.Adam(sn.Sequential([sn.Dense(3, 2)]).parameters())
    state = opt.state_dict()
    with pytest.raises(ValueError, match="expected keys"):
        opt.load_state_dict({k: v for k, v in state.items() if k != "m.0"})
    with pytest.raises(ValueError, match=r"m.0 should have shape \(3, 2\)"):
        opt.load_state_dict(state | {"m.0": np.zeros((2, 3))})


def test_bad_hyperparameters():
    params = sn.Sequential([sn.Dense(1, 1)]).parameters()
    with pytest.raises(ValueError, match="lr must be > 0"):
        sn.SGD(params, lr=0)
    with pytest.raises(ValueError, match="momentum"):
        sn.SGD(params, lr=0.1, momentum=1.5)
    with pytest.raises(ValueError, match="betas"):
        sn.Adam(params, betas=(0.9, 1.0))
