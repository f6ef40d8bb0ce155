"""Layer by layer: scratchnet vs PyTorch vs a straightforward NumPy implementation.

    python benchmarks/bench_layers.py [--batch 32] [--threads 2] [--repeats 9] [--json PATH]

Every layer of LivenessNet (at its shape in the network) is timed forward and forward+backward
in three implementations, alternating repeat by repeat so all three see the same machine load:

* scratchnet (Numba kernels + BLAS);
* PyTorch, in the same process (skipped, and said so, when it is not installed);
* "naive NumPy": the classic cs231n-style code a from-scratch library usually starts with:
  im2col by fancy indexing, col2im with ``np.add.at``, pooling by a Python loop over output
  positions, batch norm and Adam as plain array expressions.

BLAS runs on one thread in scratchnet (its layers see to it, ``scratchnet.blas``) and in naive
NumPy alike (wrapped in the same decorator): a multi-threaded BLAS call leaves its workers
spinning for a while on the cores the next measurement (of any implementation) needs, which
made every timing depend on its neighbour.

The last rows time one whole training step of LivenessNet (forward, loss, backward, Adam) in
the three implementations. Reported: the median time of the repeats, scratchnet's speed-up over
naive NumPy, and PyTorch's time divided by scratchnet's (> 1: scratchnet is faster).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_train import (  # noqa: E402
    data,
    machine,
    set_threads,
    torch,
    torch_livenessnet,
    write_json,
)

import scratchnet as sn  # noqa: E402
from liveness.net import build_livenessnet  # noqa: E402
from scratchnet.blas import one_blas_thread  # noqa: E402

# ---- the naive NumPy reference (cs231n style) -----------------------------------------------


def im2col_indices(shape: tuple[int, ...], k: int, pad: int, stride: int):
    """Row/column index arrays that gather every k x k window of the padded input."""
    _, c, h, w = shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    i = np.tile(np.repeat(np.arange(k), k), c)[:, None] + stride * np.repeat(np.arange(oh), ow)
    j = np.tile(np.arange(k), k * c)[:, None] + stride * np.tile(np.arange(ow), oh)
    ch = np.repeat(np.arange(c), k * k)[:, None]
    return ch, i, j, oh, ow


class NaiveConv:
    def __init__(self, layer: sn.Conv2D) -> None:
        self.w, self.b = layer.params["W"].copy(), layer.params["b"].copy()
        self.k, self.pad = layer.kernel_size[0], layer.pads[0][0]

    def forward(self, x: np.ndarray) -> np.ndarray:
        n, f = len(x), len(self.w)
        ch, i, j, oh, ow = self.idx = im2col_indices(x.shape, self.k, self.pad, 1)
        xp = np.pad(x, ((0, 0), (0, 0), (self.pad,) * 2, (self.pad,) * 2))
        self.cols = xp[:, ch, i, j].transpose(1, 2, 0).reshape(len(ch), -1)  # (K, P*N)
        self.x_shape = x.shape
        out = self.w.reshape(f, -1) @ self.cols + self.b[:, None]
        return out.reshape(f, oh, ow, n).transpose(3, 0, 1, 2)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        n, c, h, w = self.x_shape
        f = len(self.w)
        self.db = dout.sum(axis=(0, 2, 3))
        d = dout.transpose(1, 2, 3, 0).reshape(f, -1)
        self.dw = (d @ self.cols.T).reshape(self.w.shape)
        dcols = (self.w.reshape(f, -1).T @ d).reshape(-1, self.idx[3] * self.idx[4], n)
        ch, i, j, _, _ = self.idx
        dxp = np.zeros((n, c, h + 2 * self.pad, w + 2 * self.pad), dtype=dout.dtype)
        np.add.at(dxp, (slice(None), ch, i, j), dcols.transpose(2, 0, 1))
        return dxp[:, :, self.pad:self.pad + h, self.pad:self.pad + w]


class NaiveMaxPool:
    def __init__(self, k: int) -> None:
        self.k = k

    def forward(self, x: np.ndarray) -> np.ndarray:
        n, c, h, w = x.shape
        k, self.x = self.k, x
        out = np.empty((n, c, h // k, w // k), dtype=x.dtype)
        for r in range(h // k):
            for s in range(w // k):
                out[:, :, r, s] = x[:, :, r * k:r * k + k, s * k:s * k + k].max(axis=(2, 3))
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        x, k = self.x, self.k
        dx = np.zeros_like(x)
        for r in range(dout.shape[2]):
            for s in range(dout.shape[3]):
                win = x[:, :, r * k:r * k + k, s * k:s * k + k]
                mask = win == win.max(axis=(2, 3), keepdims=True)
                dx[:, :, r * k:r * k + k, s * k:s * k + k] += mask * dout[:, :, r, s, None, None]
        return dx


class NaiveBatchNorm:
    def __init__(self, layer: sn.Layer) -> None:
        self.gamma, self.beta = layer.params["gamma"].copy(), layer.params["beta"].copy()

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.axes = (0,) if x.ndim == 2 else (0, 2, 3)
        self.shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
        mu, var = x.mean(axis=self.axes), x.var(axis=self.axes)
        self.inv = 1 / np.sqrt(var + 1e-5)
        self.xhat = (x - mu.reshape(self.shape)) * self.inv.reshape(self.shape)
        return self.gamma.reshape(self.shape) * self.xhat + self.beta.reshape(self.shape)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        m = dout.size // dout.shape[1]
        self.dbeta = dout.sum(axis=self.axes)
        self.dgamma = (dout * self.xhat).sum(axis=self.axes)
        scale = (self.gamma * self.inv).reshape(self.shape) / m
        return scale * (m * dout - self.dbeta.reshape(self.shape)
                        - self.xhat * self.dgamma.reshape(self.shape))


class NaiveReLU:
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self.mask


class NaiveDense:
    def __init__(self, layer: sn.Dense) -> None:
        self.w, self.b = layer.params["W"].copy(), layer.params["b"].copy()

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x_shape, self.x = x.shape, x.reshape(len(x), -1)
        return self.x @ self.w + self.b

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self.dw, self.db = self.x.T @ dout, dout.sum(axis=0)
        return (dout @ self.w.T).reshape(self.x_shape)


class NaiveDropout:
    def __init__(self, p: float) -> None:
        self.p, self.rng = p, np.random.default_rng(0)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = ((self.rng.random(x.shape) >= self.p) / (1 - self.p)).astype(x.dtype)
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self.mask


def naive_layer(layer: sn.Layer):
    if isinstance(layer, sn.Conv2D):
        return NaiveConv(layer)
    if isinstance(layer, sn.MaxPool2D):
        return NaiveMaxPool(layer.kernel_size[0])
    if isinstance(layer, (sn.BatchNorm2D, sn.BatchNorm1D)):
        return NaiveBatchNorm(layer)
    if isinstance(layer, sn.Dense):
        return NaiveDense(layer)
    if isinstance(layer, sn.Dropout):
        return NaiveDropout(layer.p)
    if isinstance(layer, sn.ReLU):
        return NaiveReLU()
    raise TypeError(f"no naive twin for {layer!r}")


class NaiveStep:
    """One naive training step: forward, softmax cross-entropy, backward, Adam."""

    def __init__(self, net: sn.Sequential) -> None:
        self.layers = [naive_layer(layer) for layer in net.layers
                       if not isinstance(layer, (sn.Flatten, sn.Softmax))]
        self.params = [(layer, name) for layer in self.layers
                       for name in ("w", "b", "gamma", "beta") if hasattr(layer, name)]
        self.m = [np.zeros_like(getattr(layer, name)) for layer, name in self.params]
        self.v = [np.zeros_like(getattr(layer, name)) for layer, name in self.params]
        self.t = 0

    def __call__(self, x: np.ndarray, y: np.ndarray) -> None:
        for layer in self.layers:
            x = layer.forward(x)
        p = np.exp(x - x.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        d = p / len(y)
        for layer in reversed(self.layers):
            d = layer.backward(d)
        self.t += 1
        for (layer, name), m, v in zip(self.params, self.m, self.v, strict=True):
            g = getattr(layer, {"w": "dw", "b": "db", "gamma": "dgamma", "beta": "dbeta"}[name])
            m[...] = 0.9 * m + 0.1 * g
            v[...] = 0.999 * v + 0.001 * g * g
            mhat, vhat = m / (1 - 0.9 ** self.t), v / (1 - 0.999 ** self.t)
            setattr(layer, name, getattr(layer, name) - 1e-3 * mhat / (np.sqrt(vhat) + 1e-8))


# ---- timing -----------------------------------------------------------------------------------


def race(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function. Each repeat calls a function enough times
    for ~20 ms of work; the functions take turns repeat by repeat."""
    calls = {}
    for name, fn in fns.items():
        fn()  # warm-up
        start = time.perf_counter()
        fn()
        calls[name] = max(1, int(0.02 / (time.perf_counter() - start)))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            times[name].append((time.perf_counter() - start) / calls[name])
    return {name: float(np.median(t)) for name, t in times.items()}


def layer_cases(net: sn.Sequential, batch: int):
    """(name, scratchnet layer, input) for each distinct layer shape in LivenessNet."""
    x = data(batch)[0]
    seen = set()
    for layer in net.layers:
        key = (type(layer).__name__, x.shape)
        if isinstance(layer, sn.Conv2D):
            name = f"Conv2D {layer.in_channels}->{layer.out_channels} @{x.shape[2]}"
        else:
            name = f"{type(layer).__name__} {'x'.join(map(str, x.shape[1:]))}"
        if key not in seen and not isinstance(layer, (sn.Flatten, sn.Softmax)):
            seen.add(key)
            yield name, layer, x.copy()
        x = layer.forward(x, training=True)


def bench_layer(layer: sn.Layer, x: np.ndarray, repeats: int) -> dict[str, dict[str, float]]:
    g = np.random.default_rng(1).standard_normal(layer.forward(x, True).shape).astype(x.dtype)
    fns: dict[str, Callable[[], object]] = {
        "scratchnet fwd": lambda: layer.forward(x, True),
        "scratchnet fwd+bwd": lambda: (layer.forward(x, True), layer.backward(g))}
    if not isinstance(layer, sn.Dropout):
        naive = naive_layer(layer)
        fns["naive fwd"] = one_blas_thread(lambda: naive.forward(x))
        fns["naive fwd+bwd"] = one_blas_thread(lambda: (naive.forward(x), naive.backward(g)))
    if torch is not None:
        tlayer = torch_livenessnet(sn.Sequential([layer])).train()
        tx, tg = torch.tensor(x, requires_grad=True), torch.tensor(g)

        def torch_fwd() -> None:
            with torch.no_grad():
                tlayer(tx)

        def torch_fwd_bwd() -> None:
            tlayer.zero_grad()
            tx.grad = None
            tlayer(tx).backward(tg)

        fns["torch fwd"], fns["torch fwd+bwd"] = torch_fwd, torch_fwd_bwd
    med = race(fns, repeats)
    return {pass_: {impl: med[f"{impl} {pass_}"] for impl in ("scratchnet", "naive", "torch")
                    if f"{impl} {pass_}" in med} for pass_ in ("fwd", "fwd+bwd")}


def bench_step(batch: int, repeats: int) -> dict[str, float]:
    x, y = data(batch * 4)
    net = build_livenessnet(32, seed=0)
    opt = sn.Adam(net.parameters())
    naive = NaiveStep(build_livenessnet(32, seed=0))
    fns: dict[str, Callable[[], object]] = {
        "scratchnet": lambda: net.fit(x, y, batch_size=batch, optimizer=opt, shuffle=False,
                                      verbose=0),
        "naive": one_blas_thread(lambda: [naive(x[i:i + batch], y[i:i + batch])
                                          for i in range(0, len(x), batch)])}
    if torch is not None:
        tnet = torch_livenessnet(net).train()
        topt, loss = torch.optim.Adam(tnet.parameters()), torch.nn.CrossEntropyLoss()
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def torch_steps() -> None:
            for i in range(0, len(x), batch):
                topt.zero_grad()
                loss(tnet(tx[i:i + batch]), ty[i:i + batch]).backward()
                topt.step()

        fns["torch"] = torch_steps
    return {impl: t / 4 for impl, t in race(fns, repeats).items()}


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    result: dict[str, object] = {"machine": machine(args.threads), "batch": args.batch}
    print("machine:", json.dumps(result["machine"]))
    if torch is None:
        print("PyTorch is not installed: comparing scratchnet with naive NumPy only")

    header = (f"{'layer (batch ' + str(args.batch) + ')':26} {'pass':8} {'scratchnet':>11} "
              f"{'naive':>10} {'speed-up':>9}")
    if torch is not None:
        header += f" {'PyTorch':>10} {'ratio':>6}"
    print("\n" + header + "\n" + "-" * len(header))

    def show(name: str, pass_: str, t: dict[str, float]) -> dict[str, object]:
        row: dict[str, object] = {"layer": name, "pass": pass_, **{f"{k}_ms": v * 1e3
                                                                  for k, v in t.items()}}
        line = f"{name:26} {pass_:8} {t['scratchnet'] * 1e3:8.3f} ms"
        if "naive" in t:
            row["speedup_vs_naive"] = t["naive"] / t["scratchnet"]
            line += f" {t['naive'] * 1e3:7.2f} ms {row['speedup_vs_naive']:8.1f}x"
        else:
            line += f" {'-':>10} {'-':>9}"
        if "torch" in t:
            row["torch_ratio"] = t["torch"] / t["scratchnet"]
            line += f" {t['torch'] * 1e3:7.3f} ms {row['torch_ratio']:5.2f}x"
        print(line)
        return row

    rows = []
    net = build_livenessnet(32, seed=0)
    for name, layer, x in layer_cases(net, args.batch):
        for pass_, t in bench_layer(layer, x, args.repeats).items():
            rows.append(show(name, pass_, t))
    rows.append(show("whole training step", "step", bench_step(args.batch, args.repeats)))
    result["rows"] = rows
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
