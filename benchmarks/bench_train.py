"""LivenessNet speed: training step and inference, scratchnet vs PyTorch in the same process.

    python benchmarks/bench_train.py [--threads 2] [--repeats 7] [--json results.json]

What it measures (the targets of issue 3 are ratios scratchnet / PyTorch from this one run):

* training throughput (img/s) of ``fit`` (forward + softmax cross-entropy + backward + Adam)
  at batch 8, 32 and 128, with batch norm and dropout (``--plain`` adds the network without);
* inference: latency of one image (batch 1) and throughput at batch 8 ... 256, eval mode;
* peak resident memory of a training run at batch 128 (each framework in its own process);
* start-up: ``import scratchnet`` + build + first forward, warm (compiled kernels cached on
  disk) and cold (empty Numba cache: the one-off compile time);
* recompilation: the number of compiled kernel versions must not grow with new batch sizes.

Both frameworks run with the same thread count; scratchnet and PyTorch timings alternate
repeat by repeat, so both see the same machine load, and the medians of the repeats are
reported. PyTorch is optional: without it the script says so and prints scratchnet alone.
Run it with ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` unset (the BLAS kernel in use is shown).
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


# ---- timing ----------------------------------------------------------------------------------


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 3, SIZE, SIZE), dtype=np.float32), rng.integers(0, 2, n)


class Trainer:
    """``run(steps)`` trains ``steps`` batches and returns the seconds it took."""

    def __init__(self, framework: str, batch: int, plain: bool, steps: int) -> None:
        self.framework, self.batch = framework, batch
        self.x, self.y = data(batch * steps)
        net = build_livenessnet(SIZE, plain=plain, seed=0)
        if framework == "scratchnet":
            self.net, self.opt = net, sn.Adam(net.parameters())
        else:
            self.net = torch_livenessnet(net).train()
            self.opt = torch.optim.Adam(self.net.parameters())
            self.loss = torch.nn.CrossEntropyLoss()
            self.tx, self.ty = torch.from_numpy(self.x), torch.from_numpy(self.y)

    def run(self, steps: int) -> float:
        n = self.batch * steps
        start = time.perf_counter()
        if self.framework == "scratchnet":
            self.net.fit(self.x[:n], self.y[:n], epochs=1, batch_size=self.batch,
                         optimizer=self.opt, shuffle=False, verbose=0)
        else:
            for i in range(0, n, self.batch):
                self.opt.zero_grad()
                loss = self.loss(self.net(self.tx[i:i + self.batch]), self.ty[i:i + self.batch])
                loss.backward()
                self.opt.step()
        return time.perf_counter() - start


class Predictor:
    """``run(steps)`` scores ``steps`` batches in eval mode and returns the seconds it took."""

    def __init__(self, framework: str, batch: int, steps: int) -> None:
        self.framework, self.batch = framework, batch
        self.x, _ = data(batch * steps, seed=1)
        net = build_livenessnet(SIZE, seed=0)
        if framework == "scratchnet":
            self.net = net.eval()
        else:
            self.net, self.tx = torch_livenessnet(net).eval(), torch.from_numpy(self.x)

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        for i in range(0, self.batch * steps, self.batch):
            if self.framework == "scratchnet":
                self.net.predict(self.x[i:i + self.batch], batch_size=self.batch)
            else:
                with torch.inference_mode():
                    torch.softmax(self.net(self.tx[i:i + self.batch]), dim=1).numpy()
        return time.perf_counter() - start


def race(make, frameworks: list[str], repeats: int) -> dict[str, list[float]]:
    """Seconds per step of each framework, one list entry per repeat, repeats interleaved.

    ``make(framework, steps)`` builds a runner; each repeat runs enough steps for ~0.3 s of the
    slower framework (calibrated after a warm-up that compiles and fills caches).
    """
    probe = {fw: make(fw, 3) for fw in frameworks}
    for runner in probe.values():
        runner.run(3)
    slowest = max(runner.run(3) / 3 for runner in probe.values())
    steps = max(3, int(0.3 / slowest))
    runners = {fw: make(fw, steps) for fw in frameworks}
    for runner in runners.values():
        runner.run(1)
    times: dict[str, list[float]] = {fw: [] for fw in frameworks}
    for _ in range(repeats):
        for fw, runner in runners.items():
            times[fw].append(runner.run(steps) / steps)
    return times


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
trainer = Trainer(fw, 128, False, 6)
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


def child(code: str, env: dict[str, str] | None = None) -> list[float]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, **(env or {})}, cwd=ROOT)
    return [float(v) for v in out.stdout.split()[-3:]]


def peak_memory(frameworks: list[str]) -> dict[str, dict[str, float]]:
    """Peak RSS (MB) of 6 training steps at batch 128, and the RSS before training started."""
    result = {}
    for fw in frameworks:
        base, peak = child(CHILD_RSS.format(root=str(ROOT), fw=fw))[-2:]
        result[fw] = {"before_training_mb": base / 1024, "peak_mb": peak / 1024}
    return result


def startup(repeats: int = 3) -> dict[str, float]:
    """Seconds for import / import+first forward / +first training step, cold and warm."""
    code = CHILD_START.format(root=str(ROOT))
    with tempfile.TemporaryDirectory() as cache:
        cold = child(code, {"NUMBA_CACHE_DIR": cache})
    child(code)  # make sure the real cache is populated
    warm = np.median([child(code) for _ in range(repeats)], axis=0)
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
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = [f"{Path(p['filepath']).name}: {p.get('internal_api')} "
                        f"{p.get('architecture', '')}".strip()
                        for p in threadpool_info() if p.get("user_api") == "blas"]
    except ImportError:
        info["blas"] = "unknown (pip install threadpoolctl to see the BLAS kernel)"
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            info[f"warning_{var}"] = f"{var}={os.environ[var]} is set: it may force a slower BLAS"
    info["torch"] = torch.__version__ if torch else "not installed"
    return info


def write_json(path: str, result: dict[str, object]) -> None:
    """Write a benchmark's results atomically and say where."""
    with sn.atomic_write(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {path}")


def set_threads(threads: int) -> None:
    import numba
    numba.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads, user_api="blas")
    except ImportError:
        print(f"threadpoolctl not installed: BLAS threads not set (set OPENBLAS_NUM_THREADS="
              f"{threads} for a fair comparison)")


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--train-batches", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--infer-batches", type=int, nargs="+", default=[1, 8, 32, 128, 256])
    parser.add_argument("--plain", action="store_true", help="also time LivenessNet without BN")
    parser.add_argument("--skip-processes", action="store_true",
                        help="skip the memory and start-up measurements (fresh processes)")
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    args = parser.parse_args(argv)

    set_threads(args.threads)
    frameworks = ["scratchnet"] + (["torch"] if torch is not None else [])
    result: dict[str, object] = {"machine": machine(args.threads)}
    print("machine:", json.dumps(result["machine"]))
    if torch is None:
        print("PyTorch is not installed: timing scratchnet alone (pip install torch to compare)")

    header = f"{'task':6} {'network':18} {'batch':>5}  {'scratchnet':>18}"
    if torch is not None:
        header += f"  {'PyTorch':>18}  {'ratio':>6}"
    print("\n" + header + "\n" + "-" * len(header))
    table = []

    def report(task: str, name: str, batch: int, times: dict[str, list[float]]) -> None:
        med = {fw: float(np.median(t)) for fw, t in times.items()}
        entry = {"task": task, "network": name, "batch": batch,
                 **{f"{fw}_s_per_batch": v for fw, v in med.items()},
                 **{f"{fw}_img_per_s": batch / v for fw, v in med.items()},
                 "repeats_s": times}

        def fmt(fw: str) -> str:
            if task == "infer" and batch == 1:
                return f"{med[fw] * 1e6:9.0f} us/img"
            return f"{batch / med[fw]:9.0f} img/s"

        line = f"{task:6} {name:18} {batch:5}  {fmt('scratchnet'):>18}"
        if torch is not None:
            # speed ratio: > 1 means scratchnet is faster (for latency: PyTorch's / ours)
            entry["ratio"] = med["torch"] / med["scratchnet"]
            line += f"  {fmt('torch'):>18}  {entry['ratio']:5.2f}x"
        print(line, flush=True)
        table.append(entry)

    variants = [("LivenessNet+BN", False)] + ([("LivenessNet plain", True)] if args.plain else [])
    for name, plain in variants:
        for batch in args.train_batches:
            times = race(lambda fw, steps, b=batch, p=plain: Trainer(fw, b, p, steps),
                         frameworks, args.repeats)
            report("train", name, batch, times)
    for batch in args.infer_batches:
        times = race(lambda fw, steps, b=batch: Predictor(fw, b, steps), frameworks,
                     args.repeats)
        report("infer", "LivenessNet+BN", batch, times)
    result["rows"] = table

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
