"""LivenessNet on three inference engines in the same run: scratchnet, OpenCV DNN, ONNX Runtime.

    python benchmarks/bench_engines.py [--repeats 7] [--json engines.json]

The network is exported once to ONNX (``LivenessModel.to_onnx``, what ``liveness export``
writes) and run as ``liveness evaluate/demo --engine ...`` run it, through each engine's
``predict``. Measured: batch-1 latency (one network input: a face in whole-face mode, a tenth
of one in the default patch mode) on 1 and on 2 threads, and batch-256 throughput (``liveness
evaluate``, a server scoring many crops) on 2 threads.
Threads: scratchnet ``numba.set_num_threads`` (its BLAS calls run on one thread, as always);
OpenCV ``cv2.setNumThreads``; ONNX Runtime ``intra_op_num_threads`` (one session per count).
Repeats interleave the engines, so all see the same machine load; medians are reported, and
ratios to scratchnet from this one run. A fresh LivenessNet is timed (speed does not depend on
the weights); before timing, every engine's outputs are checked against scratchnet's.

OpenCV runs with Winograd off, as ``liveness`` runs it (see ``liveness.engines``); the row
"opencv+winograd" shows what the faster, less exact 3x3 algorithm would give.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numba
import numpy as np
from bench_train import data, machine, write_json

from liveness.engines import OnnxRuntimeEngine, OpenCVEngine, import_onnxruntime
from liveness.net import LivenessModel, Predictor, build_livenessnet
from liveness.preprocess import Preprocessing

SIZE = 32


class Runner:
    """``run(steps)`` scores ``steps`` batches of ``batch`` on one engine; returns seconds."""

    def __init__(self, engine: Predictor, batch: int, steps: int) -> None:
        self.engine, self.batch = engine, batch
        self.x, _ = data(batch * steps, seed=1)

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        for i in range(0, self.batch * steps, self.batch):
            self.engine.predict(self.x[i:i + self.batch], batch_size=self.batch)
        return time.perf_counter() - start


def engines(model: LivenessModel, onnx_model: bytes, threads: int) -> dict[str, Predictor]:
    """Every engine set to ``threads`` threads (numba and OpenCV settings are per process)."""
    numba.set_num_threads(threads)
    cv2.setNumThreads(threads)
    winograd = OpenCVEngine(onnx_model)
    winograd.net.enableWinograd(True)
    return {"scratchnet": model.net, "opencv": OpenCVEngine(onnx_model),
            "opencv+winograd": winograd,
            "onnxruntime": OnnxRuntimeEngine(onnx_model, threads=threads)}


def differences(runs: dict[str, Predictor]) -> dict[str, float]:
    """Largest difference from scratchnet's probabilities on 256 random inputs."""
    x, _ = data(256, seed=2)
    reference = runs["scratchnet"].predict(x)
    return {name: float(np.abs(run.predict(x) - reference).max()) for name, run in runs.items()}


def timed(runs: dict[str, Predictor], batch: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per batch of each engine, one list entry per repeat, repeats interleaved: each
    repeat runs enough batches for ~0.3 s of the slowest engine (calibrated after a warm-up)."""
    probe = {name: Runner(run, batch, 3) for name, run in runs.items()}
    for runner in probe.values():
        runner.run(3)
    slowest = max(runner.run(3) / 3 for runner in probe.values())
    steps = max(3, int(0.3 / slowest))
    runners = {name: Runner(run, batch, steps) for name, run in runs.items()}
    for runner in runners.values():
        runner.run(1)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, runner in runners.items():
            times[name].append(runner.run(steps) / steps)
    return times


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    args = parser.parse_args(argv)

    ort = import_onnxruntime()
    model = LivenessModel(build_livenessnet(SIZE, seed=0).eval(), Preprocessing(size=SIZE))
    onnx_model = model.to_onnx()
    result: dict[str, Any] = {
        "machine": {**machine(2), "opencv": cv2.__version__, "onnxruntime": ort.__version__,
                    "load_average_before": os.getloadavg()[0]},
        "repeats": args.repeats}
    print("machine:", json.dumps(result["machine"]))
    cases = [("latency_1_thread", 1, 1), ("latency_2_threads", 1, 2),
             ("throughput_256_2_threads", 256, 2)]
    result["max_abs_difference"] = differences(engines(model, onnx_model, 2))
    medians: dict[str, dict[str, float]] = {}
    for key, batch, threads in cases:
        runs = engines(model, onnx_model, threads)
        times = timed(runs, batch, args.repeats)
        medians[key] = {name: float(np.median(t)) for name, t in times.items()}
        result[key] = {"batch": batch, "threads": threads, "median_s_per_batch": medians[key],
                       "repeats_s_per_batch": times}
    result["load_average_after"] = os.getloadavg()[0]
    print_table(medians, result["max_abs_difference"])
    if args.json:
        write_json(str(args.json), result)
    return result


def print_table(medians: dict[str, dict[str, float]], diffs: dict[str, float]) -> None:
    """Latency in ms and throughput in img/s per engine, each with its ratio to scratchnet
    (> 1: faster than scratchnet), and the outputs' largest difference from scratchnet."""
    header = (f"{'engine':16} {'batch 1, 1 thread':>20} {'batch 1, 2 threads':>20} "
              f"{'batch 256, 2 threads':>24} {'max |diff|':>10}")
    print("\n" + header + "\n" + "-" * len(header))
    for name in medians["latency_1_thread"]:
        ratio = {key: m["scratchnet"] / m[name] for key, m in medians.items()}
        cells = [f"{1e3 * medians[key][name]:.3f} ms ({ratio[key]:.2f}x)"
                 for key in ("latency_1_thread", "latency_2_threads")]
        key = "throughput_256_2_threads"
        cells.append(f"{256 / medians[key][name]:.0f} img/s ({ratio[key]:.2f}x)")
        print(f"{name:16} {cells[0]:>20} {cells[1]:>20} {cells[2]:>24} {diffs[name]:10.1e}")


if __name__ == "__main__":
    main()
