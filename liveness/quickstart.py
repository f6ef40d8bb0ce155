"""``liveness quickstart``: the whole tool on SYNTHETIC data, in one folder, in a couple of minutes.

For a fresh machine with no recordings and no camera. Each step calls the same function as
its command, so this is also a tour of the Python API::

    1 synth      liveness.synthetic.write_videos   a person filmed directly (real) and the same
                                                   clip replayed on a phone (fake), per recording;
                 liveness.synthetic.write_dataset  crops of many other faces and screens
    2 gather     liveness.gather.gather            Haar face crops -> faces/<recording>/{real,fake}
    3 train      liveness.train.train              LivenessNet, validated on a held-out recording
                                                   and held-out crops
    4 evaluate   liveness.evaluate.evaluate        ISO 30107-3 report on a recording and crops
                                                   never seen (faces_test/{test,synth})
    5 demo       liveness.demo.run_demo            that recording's real then fake clip, annotated

Everything is synthetic (drawn faces, a simulated screen): it shows the tool working end to end,
not how well a model trained on it does on real people.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from liveness.demo import build_detector, run_demo
from liveness.errors import UserError
from liveness.evaluate import evaluate
from liveness.gather import Settings, gather
from liveness.net import load_model
from liveness.synthetic import write_dataset, write_videos
from liveness.train import TrainConfig, train


class Playlist:
    """Several captures played one after the other, as one ``read()``/``release()`` source."""

    def __init__(self, paths: list[Path]) -> None:
        self.captures = [cv2.VideoCapture(str(p)) for p in paths]

    def read(self) -> tuple[bool, np.ndarray | None]:
        while self.captures:
            ok, frame = self.captures[0].read()
            if ok:
                return ok, frame
            self.captures.pop(0).release()
        return False, None

    def release(self) -> None:
        for cap in self.captures:
            cap.release()
        self.captures = []

    def get(self, prop: int) -> float:
        return self.captures[0].get(prop) if self.captures else 0.0


def quickstart(
    out: str | Path,
    recordings: int = 4,
    seconds: float = 3.0,
    fps: float = 15.0,
    crops: int = 150,
    epochs: int = 8,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Run synth -> gather -> train -> evaluate -> demo into ``out``; return the artefacts.

    ``recordings`` synthetic recordings (a real and a fake clip of ``seconds`` each) are made
    for training and validation, plus one more for the test and the demo; every second frame
    is gathered. A recording shows one person and one phone, so ``crops`` crops per class of
    varied faces and screens (group ``synth``) are added to the training set, and a third as
    many to the validation set (``synth_val``: the threshold is set on many faces, not on one
    person) and to the test set. The folder must be new or empty, so a rerun never mixes two
    runs' files.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; pass --out NEW_DIR "
                        "(or delete the old quickstart folder)")
    if recordings < 2:
        raise UserError("need at least 2 training recordings (one is kept for validation)")
    t0 = time.perf_counter()

    def step(n: int, what: str) -> None:
        say(f"[{n}/5 {time.perf_counter() - t0:5.1f} s] {what}")

    held_out = max(crops // 3, 1)
    step(1, f"synth: {recordings + 1} SYNTHETIC recordings (real + fake clip of {seconds:g} s "
            f"each); {crops} + {held_out} + {held_out} crops per class of other faces")
    names = [f"rec{i}" for i in range(recordings)] + ["test"]
    videos = {name: write_videos(out / "videos" / name, seconds, fps, seed=seed + i)
              for i, name in enumerate(names)}
    for i, (folder, n) in enumerate((("faces/synth", crops), ("faces/synth_val", held_out),
                                     ("faces_test/synth", held_out))):
        write_dataset(out / folder, n, seed=seed + len(names) + i)

    step(2, "gather: Haar face crops from every second frame of every clip")
    for name, clips in videos.items():
        faces = out / ("faces_test/test" if name == "test" else f"faces/{name}")
        for label, clip in clips.items():
            gather([str(clip)], label, faces, Settings(every=2), progress=False)

    val_groups = (f"rec{recordings - 1}", "synth_val")
    step(3, f"train: LivenessNet, {epochs} epochs, validated on {' and '.join(val_groups)}")
    cfg = TrainConfig(dataset=str(out / "faces"), out=str(out / "train"), split="group",
                      val_groups=val_groups, epochs=epochs, seed=seed)
    train(cfg, verbose=False)
    model_path = out / "train" / "model.npz"

    step(4, "evaluate: the unseen recording's crops and other unseen crops")
    report = evaluate(model_path, out / "faces_test", out_dir=out / "eval")
    say(f"         test accuracy {report['accuracy']:.1%}, APCER {report['apcer']:.1%}, "
        f"BPCER {report['bpcer']:.1%}, ACER {report['acer']:.1%}")

    step(5, "demo: the unseen recording, real clip then fake clip")
    summary = run_demo(Playlist([videos["test"]["real"], videos["test"]["fake"]]),
                       load_model(model_path), build_detector("haar:1.2"),
                       output=out / "demo" / "annotated.mp4",
                       json_path=out / "demo" / "demo.json")
    say(f"         {summary.frames} frames at {summary.fps:.0f} fps; face-frames labelled "
        + ", ".join(f"{k} {v}" for k, v in summary.labels.items())
        + f"; label flips {summary.flips}")

    artefacts = {
        "videos": out / "videos",
        "face crops": out / "faces",
        "test crops": out / "faces_test",
        "model": model_path,
        "training curves": out / "train" / "curves.png",
        "validation report": out / "train" / "report.txt",
        "test report": out / "eval" / "report.txt",
        "ROC / confusion": out / "eval" / "roc.png",
        "annotated video": out / "demo" / "annotated.mp4",
        "demo results": out / "demo" / "demo.json",
    }
    say(f"done in {time.perf_counter() - t0:.0f} s; everything is in {out}:")
    width = max(map(len, artefacts))
    for what, path in artefacts.items():
        say(f"  {what:<{width}}  {path}")
    say(f"next: liveness demo --model {model_path} --source 0   (your camera)")
    return artefacts


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="liveness-quickstart",
                   help="folder for every artefact; must be new or empty "
                        "(default ./liveness-quickstart)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    p.add_argument("--seconds", type=float, default=3.0,
                   help="length of each synthetic clip (default 3)")
    p.add_argument("--crops", type=int, default=150,
                   help="extra synthetic training crops per class (default 150)")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    quickstart(args.out, seconds=args.seconds, crops=args.crops, epochs=args.epochs,
               seed=args.seed)
    return 0
