"""Parity with PyTorch (the oracle): same weights and inputs, same outputs and gradients.

Dense, BatchNorm1D/2D (train and eval, running statistics too), softmax cross-entropy, and
10 optimizer steps of Adam and SGD with momentum. Conv/pool parity lives in test_conv.py and
test_pooling.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn

torch = pytest.importorskip("torch", reason="torch not installed: PyTorch parity skipped")


def close(ours, ref) -> None:
    """Within 1e-5 relative (to the entry, or to the array's largest entry for tiny ones)."""
    ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def leaf(a: np.ndarray):
    return torch.tensor(a, requires_grad=True)


@settings(max_examples=10)
@given(n=st.integers(1, 6), fin=st.integers(1, 9), fout=st.integers(1, 9),
       seed=st.integers(0, 2**16))
def test_dense(n, fin, fout, seed):
    rng = np.random.default_rng(seed)
    layer = sn.Dense(fin, fout, rng=rng)
    layer.params["b"][...] = rng.standard_normal(fout)
    x = rng.standard_normal((n, fin)).astype(np.float32)
    g = rng.standard_normal((n, fout)).astype(np.float32)
    out = layer.forward(x)
    dx = layer.backward(g)
    tx, tw, tb = leaf(x), leaf(layer.params["W"]), leaf(layer.params["b"])
    tout = torch.nn.functional.linear(tx, tw.T, tb)
    tout.backward(torch.tensor(g))
    for ours, ref in [(out, tout), (dx, tx.grad), (layer.grads["W"], tw.grad),
                      (layer.grads["b"], tb.grad)]:
        close(ours, ref)


@pytest.mark.parametrize("two_d", [False, True], ids=["1d", "2d"])
def test_batch_norm_train_then_eval(two_d):
    rng = np.random.default_rng(0)
    c, shape = 3, ((6, 3, 4, 5) if two_d else (8, 3))
    ours = (sn.BatchNorm2D if two_d else sn.BatchNorm1D)(c, momentum=0.2, eps=1e-3)
    ref = (torch.nn.BatchNorm2d if two_d else torch.nn.BatchNorm1d)(c, momentum=0.2, eps=1e-3)
    ours.params["gamma"][...] = rng.uniform(0.5, 2, c)
    ours.params["beta"][...] = rng.normal(0, 1, c)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(ours.params["gamma"]))
        ref.bias.copy_(torch.tensor(ours.params["beta"]))
    for training in (True, True, True, False):
        ref.train(training)
        x = rng.normal(2.0, 3.0, shape).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        out = ours.forward(x, training=training)
        dx = ours.backward(g)
        ref.zero_grad()
        tx = leaf(x)
        tout = ref(tx)
        tout.backward(torch.tensor(g))
        for a, b in [(out, tout), (dx, tx.grad), (ours.grads["gamma"], ref.weight.grad),
                     (ours.grads["beta"], ref.bias.grad),
                     (ours.buffers["running_mean"], ref.running_mean),
                     (ours.buffers["running_var"], ref.running_var)]:
            close(a, b)


def test_softmax_cross_entropy_including_logits_of_1000():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (7, 4)).astype(np.float32)
    logits[0] = [1000, -1000, 0, 1000]
    logits[1] = [-1000, -1000, -1000, 1000]
    labels = rng.integers(0, 4, 7)
    loss = sn.SoftmaxCrossEntropy()
    value = loss.forward(logits, labels)
    tl = leaf(logits)
    tvalue = torch.nn.functional.cross_entropy(tl, torch.tensor(labels))
    tvalue.backward()
    close(np.array(value), tvalue)
    close(loss.backward(), tl.grad)


def train_both(make_ours, make_ref, steps: int = 10) -> None:
    """``steps`` identical training steps of a small MLP in scratchnet and in torch (float64);
    the weights must stay together after every step."""
    rng = np.random.default_rng(2)
    net = sn.Sequential([sn.Dense(5, 6, dtype=np.float64, rng=rng), sn.ReLU(),
                         sn.Dense(6, 3, dtype=np.float64, rng=rng)])
    tparams = [leaf(p.data.copy()) for p in net.parameters()]
    opt, topt = make_ours(net.parameters()), make_ref(tparams)
    loss_fn = sn.SoftmaxCrossEntropy()
    for _ in range(steps):
        x, y = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
        loss_fn.forward(net.forward(x, training=True), y)
        net.backward(loss_fn.backward())
        opt.step()
        topt.zero_grad()
        w1, b1, w2, b2 = tparams
        logits = torch.relu(torch.tensor(x) @ w1 + b1) @ w2 + b2
        torch.nn.functional.cross_entropy(logits, torch.tensor(y)).backward()
        topt.step()
        for p, tp in zip(net.parameters(), tparams, strict=True):
            close(p.data, tp)


def test_ten_adam_steps():
    train_both(lambda p: sn.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6),
               lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6))


def test_ten_sgd_momentum_steps():
    train_both(lambda p: sn.SGD(p, lr=0.1, momentum=0.9),
               lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))
