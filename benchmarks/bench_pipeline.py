"""End-to-end speed of the demo pipeline on one core, and LivenessNet latency vs PyTorch.

Runs :func:`liveness.demo.run_demo` headless on a 640x480 video (synthetic by default, or a real
one) with every thread pool limited to one thread (OpenCV, Numba, BLAS, PyTorch), then times
one face at batch 1 through scratchnet and through PyTorch running the same weights.

    python benchmarks/bench_pipeline.py                       # synthetic 640x480 video
    python benchmarks/bench_pipeline.py --video ../shared/data/videos/apfol/real2.webm
    python benchmarks/bench_pipeline.py --model run/model.npz --json bench.json

Speed does not depend on the weights, so without ``--model`` a freshly initialised
LivenessNet is used. Besides wall-clock fps it reports fps by CPU time (frames / CPU seconds of
this process), the figure one idle core would give when the machine is shared.
Targets (issue 6): >= 30 fps end to end, inference < 10% of frame time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numba
import numpy as np
from bench_train import torch, torch_livenessnet, write_json
from threadpoolctl import threadpool_limits

import scratchnet as sn
from liveness.demo import build_detector, run_demo
from liveness.net import LivenessModel, build_livenessnet, load_model
from liveness.preprocess import Preprocessing, preprocess_faces


def synthetic_video(folder: Path, seconds: float) -> Path:
    """A 640x480, 30 fps synthetic clip (the "real" one) from liveness.synthetic."""
    from liveness.synthetic import write_videos

    return Path(write_videos(folder, seconds=seconds, fps=30, seed=0, size=(640, 480))["real"])


def to_torch(net: sn.Sequential) -> Any:
    """The same network in PyTorch (eval mode, softmax output), weights copied layer by layer."""

    return torch.nn.Sequential(torch_livenessnet(net), torch.nn.Softmax(dim=1)).eval()


def median_ms(fn: Any, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds, after 10 warm-up calls."""
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def latency(model: LivenessModel, x1: np.ndarray, repeats: int) -> dict[str, Any]:
    """Per-face batch-1 latency (median ms) of scratchnet and, when installed, PyTorch."""
    result: dict[str, Any] = {"scratchnet_ms": median_ms(lambda: model.scores(x1), repeats)}
    try:
        import torch
    except ImportError:
        result["torch_ms"] = None
        result["torch_note"] = "torch is not installed: pip install -e '.[torch]' to compare"
        return result
    torch.set_num_threads(1)
    tnet = to_torch(model.net)
    xt = torch.from_numpy(x1)
    with torch.inference_mode():
        result["torch_ms"] = median_ms(lambda: tnet(xt), repeats)
        ours = model.net.predict(x1)
        result["max_abs_diff"] = float(np.abs(tnet(xt).numpy() - ours).max())
    result["torch_version"] = torch.__version__
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", help="a real video (default: a synthetic 640x480 clip)")
    ap.add_argument("--seconds", type=float, default=10.0, help="synthetic clip length")
    ap.add_argument("--frames", type=int, default=300, help="frames to run (at most)")
    ap.add_argument("--model", help="a trained model file (default: fresh LivenessNet)")
    ap.add_argument("--detector", default="haar:1.2")
    ap.add_argument("--detect-width", type=int, default=320)
    ap.add_argument("--detect-every", type=int, default=1)
    ap.add_argument("--output", help="also write the annotated video (adds encoding time)")
    ap.add_argument("--repeats", type=int, default=300, help="timed batch-1 forward passes")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)

    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "threads;1")  # video decoding
    cv2.setNumThreads(1)
    numba.set_num_threads(1)
    model = (load_model(args.model) if args.model else
             LivenessModel(build_livenessnet(32), Preprocessing(size=32), threshold=0.5))
    detector = build_detector(args.detector, detect_width=args.detect_width)
    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        video = Path(args.video) if args.video else synthetic_video(Path(tmp), args.seconds)
        first = cv2.VideoCapture(str(video)).read()[1]
        boxes = detector.detect(first)[:1] or [None]
        if boxes[0] is None:
            raise SystemExit(f"no face found in the first frame of {video}")
        x1 = preprocess_faces(first, boxes, model.preprocessing)
        model.scores(x1)  # compile / warm up the kernels before timing
        cpu0 = time.process_time()
        summary = run_demo(str(video), model, detector, detect_every=args.detect_every,
                           output=args.output, max_frames=args.frames)
        cpu_seconds = time.process_time() - cpu0
        lat = latency(model, x1, args.repeats)

    frame_ms = 1e3 * summary.seconds / max(summary.frames, 1)
    faces_per_frame = summary.faces / max(summary.frames, 1)
    res = {"video": str(video) if args.video else f"synthetic {args.seconds:g} s",
           "size": [first.shape[1], first.shape[0]], "threads": 1, **summary.to_dict(),
           "frame_ms": frame_ms, "faces_per_frame": faces_per_frame,
           "cpu_seconds": cpu_seconds, "fps_cpu": summary.frames / max(cpu_seconds, 1e-9),
           "load_average": os.getloadavg()[0],
           "infer_ms_per_face": 1e3 * summary.stage_seconds["infer"] / max(summary.faces, 1),
           "detector": args.detector, "detect_width": args.detect_width,
           "detect_every": args.detect_every, "latency": lat}

    print(f"pipeline on {res['video']} ({res['size'][0]}x{res['size'][1]}), "
          f"{summary.frames} frames, 1 thread everywhere, detector {args.detector} "
          f"at width {args.detect_width}, every {args.detect_every} frame(s)")
    print(f"end to end: {summary.fps:.1f} fps ({frame_ms:.1f} ms/frame), "
          f"{faces_per_frame:.2f} faces/frame; by CPU time {res['fps_cpu']:.1f} fps "
          f"(what an idle core gives; load average now {res['load_average']:.1f})")
    print(f"{'stage':<8} {'ms/frame':>9} {'share':>6}")
    for stage, ms in summary.stage_ms().items():
        print(f"{stage:<8} {ms:9.2f} {summary.stage_share()[stage]:6.1%}")
    print(f"per-face inference, batch 1 (median of {args.repeats}): "
          f"scratchnet {lat['scratchnet_ms']:.3f} ms in a loop; in the pipeline the infer stage "
          f"takes {res['infer_ms_per_face']:.3f} ms per face (crop, resize, tracker, caches "
          "cold after detection)")
    if lat["torch_ms"] is None:
        print(f"  {lat['torch_note']}")
    else:
        print(f"  PyTorch {lat['torch_version']} at batch 1: {lat['torch_ms']:.3f} ms "
              f"(ratio {lat['scratchnet_ms'] / lat['torch_ms']:.2f}x; "
              f"outputs agree to {lat['max_abs_diff']:.1e})")
    if args.json:
        write_json(args.json, res)
    return res


if __name__ == "__main__":
    main()
