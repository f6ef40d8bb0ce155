"""LivenessNet speed: training and inference, scratchnet vs PyTorch, each in its own process.

    python benchmarks/bench_train.py [--threads 2] [--pairs 3] [--repeats 5] [--json out.json]

What it measures (the targets of issue 16 are ratios PyTorch time / scratchnet time):

* training throughput (img/s) at batch 8, 32 and 128, with batch norm and dropout
  (``--plain`` adds the network without), two ways for scratchnet:

  - ``loop``: a loop of one's own on the public API, over a float32 array in batches::

        z = net.forward(x, training=True); loss.forward(z, y); net.backward(loss.backward())
        opt.step()

    (``net`` is LivenessNet without its trailing Softmax: the loss takes logits, as
    PyTorch's ``CrossEntropyLoss`` does);
  - ``fit``: ``net.fit(x, y, batch_size=..., optimizer=opt)``;

  PyTorch runs its usual loop (``zero_grad``, loss, ``backward``, ``step``) for both;
* inference: latency of one image (batch 1) and throughput at batch 8 ... 256, eval mode, by
  ``net.forward(x)`` (``loop``) and by ``net.predict(x)`` (``fit``) vs PyTorch's
  ``softmax(model(x))`` under ``inference_mode``;
* peak resident memory of a training run at batch 128 (each framework in its own process);
* start-up: ``import scratchnet`` + build + first forward, warm (compiled kernels cached on
  disk) and cold (empty Numba cache: the one-off compile time);
* recompilation: the number of compiled kernel versions must not grow with new batch sizes.

Each measurement runs in a fresh process holding one library only (scratchnet's processes
cannot import torch), as a user's script would; no thread setting is touched but Numba's and
PyTorch's thread counts (``--threads``): BLAS keeps its default. A pair is one process of each
kind, run one after the other (scratchnet loop, PyTorch, scratchnet fit, the order reversed
from one pair to the next); each process reports the median of ``--repeats`` timings of
~0.3 s per task and batch, and the ratio of a row is the median over the pairs of the ratio
within each pair, so both sides of a ratio ran minutes apart at most. PyTorch is optional:
without it the script says so and times scratchnet alone. Run it with
``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` unset (the BLAS kernel in use is shown).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import scratchnet as sn  # noqa: E402
from liveness.net import build_livenessnet  # noqa: E402
from scratchnet import kernels  # noqa: E402

try:
    import torch
except ImportError:  # the benchmark still runs, scratchnet alone
    torch = None

SIZE = 32  # LivenessNet input: 3 x 32 x 32
WAYS = ("loop", "fit")  # scratchnet's two ways to train (and to infer: forward / predict)


# ---- the same network in PyTorch, with scratchnet's weights ----------------------------------


def torch_livenessnet(net: sn.Sequential) -> torch.nn.Sequential:
    """PyTorch twin of a scratchnet LivenessNet, layer by layer, weights copied."""
    nn, layers = torch.nn, []
    for layer in net.layers:
        if isinstance(layer, sn.Conv2D):
            t = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                          padding=layer.padding)
            t.weight.data = torch.tensor(layer.params["W"])
        elif isinstance(layer, sn.Dense):
            t = nn.Linear(layer.in_features, layer.out_features)
            t.weight.data = torch.tensor(layer.params["W"].T.copy())
        elif isinstance(layer, (sn.BatchNorm2D, sn.BatchNorm1D)):
            kind = nn.BatchNorm2d if isinstance(layer, sn.BatchNorm2D) else nn.BatchNorm1d
            t = kind(layer.num_features, eps=layer.eps, momentum=layer.momentum)
            t.weight.data = torch.tensor(layer.params["gamma"])
            t.bias.data = torch.tensor(layer.params["beta"])
            t.running_mean.data = torch.tensor(layer.buffers["running_mean"])
            t.running_var.data = torch.tensor(layer.buffers["running_var"])
        elif isinstance(layer, sn.MaxPool2D):
            t = nn.MaxPool2d(layer.kernel_size, layer.stride)
        elif isinstance(layer, sn.Dropout):
            t = nn.Dropout(layer.p)
        elif isinstance(layer, sn.Softmax):
            continue  # CrossEntropyLoss takes logits, like scratchnet's fit
        else:
            t = {sn.ReLU: nn.ReLU, sn.Flatten: nn.Flatten}[type(layer)]()
        if "b" in layer.params:
            t.bias.data = torch.tensor(layer.params["b"])
        layers.append(t)
    return nn.Sequential(*layers)


# ---- timing (inside one process) -------------------------------------------------------------


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 3, SIZE, SIZE), dtype=np.float32), rng.integers(0, 2, n)


class Trainer:
    """``run(steps)`` trains ``steps`` batches one ``way`` and returns the seconds it took."""

    def __init__(self, framework: str, way: str, batch: int, plain: bool, steps: int) -> None:
        self.framework, self.way, self.batch = framework, way, batch
        self.x, self.y = data(batch * steps)
        net = build_livenessnet(SIZE, plain=plain, seed=0)
        if framework == "scratchnet":
            self.net = net if way == "fit" else sn.Sequential(net.layers[:-1])  # logits
            self.opt, self.loss = sn.Adam(net.parameters()), sn.SoftmaxCrossEntropy()
        else:
            self.net = torch_livenessnet(net).train()
            self.opt = torch.optim.Adam(self.net.parameters())
            self.loss = torch.nn.CrossEntropyLoss()
            self.tx, self.ty = torch.from_numpy(self.x), torch.from_numpy(self.y)

    def run(self, steps: int) -> float:
        n, b, net, loss, opt = self.batch * steps, self.batch, self.net, self.loss, self.opt
        start = time.perf_counter()
        if self.framework == "torch":
            for i in range(0, n, b):
                opt.zero_grad()
                loss(net(self.tx[i:i + b]), self.ty[i:i + b]).backward()
                opt.step()
        elif self.way == "fit":
            net.fit(self.x[:n], self.y[:n], epochs=1, batch_size=b, optimizer=opt, shuffle=False,
                    verbose=0)
        else:
            x, y = self.x, self.y
            for i in range(0, n, b):
                z = net.forward(x[i:i + b], training=True)
                loss.forward(z, y[i:i + b])
                net.backward(loss.backward())
                opt.step()
        return time.perf_counter() - start


class Predictor:
    """``run(steps)`` scores ``steps`` batches in eval mode and returns the seconds it took."""

    def __init__(self, framework: str, way: str, batch: int, steps: int) -> None:
        self.framework, self.way, self.batch = framework, way, batch
        self.x, _ = data(batch * steps, seed=1)
        net = build_livenessnet(SIZE, seed=0)
        if framework == "scratchnet":
            self.net = net.eval()
        else:
            self.net, self.tx = torch_livenessnet(net).eval(), torch.from_numpy(self.x)

    def run(self, steps: int) -> float:
        b, net = self.batch, self.net
        start = time.perf_counter()
        for i in range(0, b * steps, b):
            if self.framework == "torch":
                with torch.inference_mode():
                    torch.softmax(net(self.tx[i:i + b]), dim=1).numpy()
            elif self.way == "fit":
                net.predict(self.x[i:i + b], batch_size=b)
            else:
                net.forward(self.x[i:i + b])
        return time.perf_counter() - start


def seconds_per_step(make: Callable[[int], Trainer | Predictor], repeats: int) -> list[float]:
    """Seconds per step, one entry per repeat of ~0.3 s (the step count calibrated after a
    warm-up that loads the compiled kernels and fills caches)."""
    probe = make(3)
    probe.run(3)
    steps = max(3, int(0.3 / (probe.run(3) / 3)))
    runner = make(steps)
    runner.run(1)
    return [runner.run(steps) / steps for _ in range(repeats)]


def measure(framework: str, way: str, args: argparse.Namespace) -> dict[str, list[float]]:
    """Every timing of one process: ``{"train <network> <batch>": [...], "infer <batch>": ...}``
    in seconds per step."""
    set_threads(args.threads)
    times = {}
    for name, plain in [("LivenessNet+BN", False)] + ([("plain", True)] if args.plain else []):
        for b in args.train_batches:
            times[f"train {name} {b}"] = seconds_per_step(
                lambda steps, b=b, p=plain: Trainer(framework, way, b, p, steps), args.repeats)
    for b in args.infer_batches:
        times[f"infer LivenessNet+BN {b}"] = seconds_per_step(
            lambda steps, b=b: Predictor(framework, way, b, steps), args.repeats)
    return times


# ---- one process per library: the pairs ------------------------------------------------------

CHILD = """
import json, sys
sys.path.insert(0, {root!r} + "/benchmarks")
if {framework!r} == "scratchnet":
    sys.modules["torch"] = None  # scratchnet's process never loads PyTorch
import bench_train
args = bench_train.parser().parse_args({argv!r})
print(json.dumps(bench_train.measure({framework!r}, {way!r}, args)))
"""


def child(code: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh Python from the repository root; its last line of output."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, **(env or {})}, cwd=ROOT)
    return out.stdout.strip().splitlines()[-1]


def pairs(argv: list[str], args: argparse.Namespace, frameworks: list[str]
          ) -> dict[str, list[dict[str, list[float]]]]:
    """The timings of every process, by process kind ("scratchnet loop", "torch", ...), one
    entry per pair."""
    kinds = [(fw, way) for fw, way in [("scratchnet", "loop"), ("torch", "loop"),
                                        ("scratchnet", "fit")] if fw in frameworks]
    runs: dict[str, list[dict[str, list[float]]]] = {}
    for i in range(args.pairs):
        for framework, way in kinds if i % 2 == 0 else kinds[::-1]:
            kind = framework if framework == "torch" else f"{framework} {way}"
            print(f"pair {i + 1}/{args.pairs}: {kind} ...", flush=True)
            code = CHILD.format(root=str(ROOT), framework=framework, way=way, argv=argv)
            runs.setdefault(kind, []).append(json.loads(child(code)))
    return runs


def rows(runs: dict[str, list[dict[str, list[float]]]]) -> list[dict[str, object]]:
    """One row per task, network, batch and way: medians, and the ratio PyTorch / scratchnet
    (> 1: scratchnet is faster) within each pair, with its median."""
    table = []
    for key in runs["scratchnet loop"][0]:
        task, network, batch = key.split()
        for way in WAYS:
            mine = [float(np.median(r[key])) for r in runs[f"scratchnet {way}"]]
            row: dict[str, object] = {"task": task, "network": network, "batch": int(batch),
                                      "way": way, "scratchnet_s_per_batch": float(np.median(mine)),
                                      "scratchnet_repeats_s": [r[key] for r in
                                                               runs[f"scratchnet {way}"]]}
            if "torch" in runs:
                theirs = [float(np.median(r[key])) for r in runs["torch"]]
                ratios = [t / s for t, s in zip(theirs, mine, strict=True)]
                row |= {"torch_s_per_batch": float(np.median(theirs)),
                        "torch_repeats_s": [r[key] for r in runs["torch"]],
                        "pair_ratios": ratios, "ratio": float(np.median(ratios))}
            table.append(row)
    return table


def show(row: dict[str, object]) -> str:
    def fmt(seconds: float) -> str:
        if row["task"] == "infer" and row["batch"] == 1:
            return f"{seconds * 1e6:9.0f} us/img"
        return f"{row['batch'] / seconds:9.0f} img/s"

    way = row["way"]
    if row["task"] == "infer":
        way = {"loop": "forward", "fit": "predict"}[way]
    line = (f"{row['task']:6} {row['network']:15} {way:8} {row['batch']:5}  "
            f"{fmt(row['scratchnet_s_per_batch']):>16}")
    if "ratio" in row:
        per_pair = " ".join(f"{r:.2f}" for r in row["pair_ratios"])
        line += f"  {fmt(row['torch_s_per_batch']):>16}  {row['ratio']:5.2f}x  ({per_pair})"
    return line


# ---- memory, start-up, recompilation (fresh processes) ----------------------------------------

CHILD_RSS = """
import sys
sys.path.insert(0, {root!r} + "/benchmarks")
fw = {fw!r}
if fw == "scratchnet":
    sys.modules["torch"] = None  # measure scratchnet without PyTorch loaded
from bench_train import Trainer
def peak_kb():  # VmHWM: this process's peak resident set (ru_maxrss survives exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
trainer = Trainer(fw, "fit", 128, False, 6)
base = peak_kb()
trainer.run(6)
print(base, peak_kb())
"""

CHILD_START = """
import time
t0 = time.perf_counter()
import sys
sys.path.insert(0, {root!r})
import numpy as np
import scratchnet as sn
t1 = time.perf_counter()
from liveness.net import build_livenessnet
net = build_livenessnet(32, seed=0).eval()
net.forward(np.zeros((1, 3, 32, 32), np.float32))
t2 = time.perf_counter()
net.train()
net.fit(np.zeros((8, 3, 32, 32), np.float32), np.zeros(8, np.int64), batch_size=8, verbose=0)
t3 = time.perf_counter()
print(t1 - t0, t2 - t0, t3 - t0)
"""


def numbers(code: str, env: dict[str, str] | None = None) -> list[float]:
    return [float(v) for v in child(code, env).split()]


def peak_memory(frameworks: list[str]) -> dict[str, dict[str, float]]:
    """Peak RSS (MB) of 6 training steps at batch 128, and the RSS before training started."""
    result = {}
    for fw in frameworks:
        base, peak = numbers(CHILD_RSS.format(root=str(ROOT), fw=fw))
        result[fw] = {"before_training_mb": base / 1024, "peak_mb": peak / 1024}
    return result


def startup(repeats: int = 3) -> dict[str, float]:
    """Seconds for import / import+first forward / +first training step, cold and warm."""
    code = CHILD_START.format(root=str(ROOT))
    with tempfile.TemporaryDirectory() as cache:
        cold = numbers(code, {"NUMBA_CACHE_DIR": cache})
    numbers(code)  # make sure the real cache is populated
    warm = np.median([numbers(code) for _ in range(repeats)], axis=0)
    return {"cold_import_s": cold[0], "cold_first_forward_s": cold[1],
            "cold_first_train_step_s": cold[2], "warm_import_s": warm[0],
            "warm_first_forward_s": warm[1], "warm_first_train_step_s": warm[2]}


def compiled_versions() -> int:
    return sum(len(getattr(kernels, name).signatures) for name in dir(kernels)
               if hasattr(getattr(kernels, name), "signatures"))


def recompilations() -> int:
    """Kernel versions added by training and inference at batch sizes not seen before (after
    one small and one large batch, which load both the serial and the parallel kernels)."""
    net = build_livenessnet(SIZE, seed=0)

    def train_and_predict(sizes: tuple[int, ...]) -> None:
        for n in sizes:
            x, y = data(n)
            net.fit(x, y, batch_size=n, verbose=0)
            net.predict(x, batch_size=n // 2)

    train_and_predict((4, 64))
    before = compiled_versions()
    train_and_predict((5, 6, 17, 23))
    return compiled_versions() - before


# ---- report -----------------------------------------------------------------------------------


def machine(threads: int) -> dict[str, object]:
    info: dict[str, object] = {"python": platform.python_version(), "numpy": np.__version__,
                               "threads": threads, "cpus": os.cpu_count(),
                               "cpu": platform.processor() or platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f
                               if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from threadpoolctl import threadpool_info
    info["blas"] = [f"{Path(p['filepath']).name}: {p.get('internal_api')} "
                    f"{p.get('architecture', '')}, {p['num_threads']} threads by default".strip()
                    for p in threadpool_info() if p.get("user_api") == "blas"]
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS"):
        if var in os.environ:
            info[f"warning_{var}"] = f"{var}={os.environ[var]} is set: it changes the BLAS"
    info["torch"] = torch.__version__ if torch else "not installed"
    return info


def write_json(path: str, result: dict[str, object]) -> None:
    """Write a benchmark's results atomically and say where."""
    with sn.atomic_write(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {path}")


def set_threads(threads: int) -> None:
    """Numba's and PyTorch's thread counts (BLAS keeps its own: scratchnet needs no setting)."""
    import numba
    numba.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pairs", type=int, default=3, help="processes of each kind (default 3)")
    p.add_argument("--repeats", type=int, default=5, help="timings per process, task, batch")
    p.add_argument("--train-batches", type=int, nargs="+", default=[8, 32, 128])
    p.add_argument("--infer-batches", type=int, nargs="+", default=[1, 8, 32, 128, 256])
    p.add_argument("--plain", action="store_true", help="also time LivenessNet without BN")
    p.add_argument("--skip-processes", action="store_true",
                   help="skip the memory, start-up and recompilation measurements")
    p.add_argument("--json", type=Path, help="write the results to this JSON file")
    return p


def main(argv: list[str] | None = None) -> dict[str, object]:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    frameworks = ["scratchnet"] + (["torch"] if torch is not None else [])
    result: dict[str, object] = {"machine": machine(args.threads), "argv": argv}
    print("machine:", json.dumps(result["machine"]))
    if torch is None:
        print("PyTorch is not installed: timing scratchnet alone (pip install torch to compare)")
    result["rows"] = table = rows(pairs(argv, args, frameworks))
    header = (f"{'task':6} {'network':15} {'way':8} {'batch':>5}  {'scratchnet':>16}"
              + (f"  {'PyTorch':>16}  {'ratio':>6}  (each pair)" if torch is not None else ""))
    print("\n" + header + "\n" + "-" * len(header))
    for row in table:
        print(show(row))

    if not args.skip_processes:
        result["memory"] = peak_memory(frameworks)
        for fw, mem in result["memory"].items():
            print(f"peak RSS, training at batch 128, {fw}: {mem['peak_mb']:.0f} MB "
                  f"({mem['before_training_mb']:.0f} MB before the first step)")
        result["startup"] = start = startup()
        print(f"start-up (import scratchnet + build LivenessNet + first forward): warm "
              f"{start['warm_first_forward_s']:.2f} s (import {start['warm_import_s']:.2f} s), "
              f"cold {start['cold_first_forward_s']:.2f} s; first training step done at: warm "
              f"{start['warm_first_train_step_s']:.2f} s, cold "
              f"{start['cold_first_train_step_s']:.2f} s")
        result["recompilations"] = recompilations()
        print(f"kernel versions compiled for new batch sizes: {result['recompilations']}")
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
