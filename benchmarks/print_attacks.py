"""LivenessNet on simulated print attacks, an attack type the shared recordings do not have.

Every attack in ``../shared/data`` is a screen or phone replay, so whether a model trained on
them catches a printed photo cannot be measured on real prints here. This script measures it
on simulated ones (``liveness.synthetic.print_attack``: halftone, ink/paper tone range,
desaturation, paper grain, uneven light, tilt, then a webcam): for each recording a model
never saw in training (the fold models of a ``train_liveness.py --run lro`` output), its real
crops against prints made from those same crops. A print of a face is scored against the
face itself, so identity, pose and background carry no information: only what printing does.

Reported per held-out recording and seed: AUC (real vs print), APCER of the prints at the
model's own threshold, and beside them the AUC of real vs the recording's own replays.

    python benchmarks/train_liveness.py --run lro --seeds 0-6 --out /tmp/lro
    python benchmarks/print_attacks.py --lro /tmp/lro
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from liveness.data import find_images, read_image
from liveness.metrics import apcer, auc
from liveness.net import REAL, load_model
from liveness.synthetic import print_attack
from scratchnet.io import atomic_write

ROOT = Path(__file__).resolve().parents[1]


def fold_models(lro: Path) -> list[tuple[int, Path, list[str]]]:
    """(seed, model file, held-out recordings) for every fold of an lro output folder."""
    results = json.loads((lro / "results.json").read_text())["lro"]
    runs = results["seeds"] if "seeds" in results else {"": results}
    found = []
    for seed, run in runs.items():
        base = lro / f"seed{seed}" if seed else lro
        for i, test in enumerate(run["folds"]):
            found.append((int(seed or 0), base / "lro" / f"fold{i}" / "model.npz", test))
    return found


def crops(folder: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """BGR crops of a recording and their labels (1 = real)."""
    pairs = [(read_image(f), label) for f, label, _ in find_images(folder)]
    pairs = [(img, label) for img, label in pairs if img is not None]
    return [img for img, _ in pairs], np.array([label for _, label in pairs])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lro", type=Path, action="append", required=True,
                        help="output folder of train_liveness.py --run lro (repeatable, e.g. "
                             "one per seed)")
    parser.add_argument("--data", type=Path, default=Path(
        os.environ.get("LIVENESS_DATA", ROOT.parent / "shared" / "data")) / "faces")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON results (default: print_attacks.json in the first --lro)")
    args = parser.parse_args()
    rows: dict[str, dict[int, dict[str, float]]] = {}
    folds = [fold for lro in args.lro for fold in fold_models(lro)]
    for seed, model_path, test in folds:
        model = load_model(model_path)
        for name in test:
            images, labels = crops(args.data / name)
            real = [img for img, label in zip(images, labels, strict=True) if label == REAL]
            rng = np.random.default_rng(1000 * seed + len(rows))
            prints = [print_attack(img, rng) for img in real]
            s_all, s_print = model.score_crops(images), model.score_crops(prints)
            s_real = s_all[labels == REAL]
            both = np.r_[s_real, s_print]
            is_real = np.r_[np.ones(len(s_real)), np.zeros(len(s_print))].astype(int)
            rows.setdefault(name, {})[seed] = {
                "auc_print": float(auc(both, is_real)),
                "apcer_print": float(apcer(both, is_real, model.threshold)),
                "auc_replay": float(auc(s_all, labels))}
    print(f"{'recording':>14} {'AUC print':>10} {'APCER print':>12} {'AUC replay':>11}")
    mean = {}
    for name, by_seed in sorted(rows.items()):
        mean[name] = {k: float(np.mean([r[k] for r in by_seed.values()]))
                      for k in ("auc_print", "apcer_print", "auc_replay")}
        m = mean[name]
        print(f"{name:>14} {m['auc_print']:10.3f} {m['apcer_print']:12.1%} "
              f"{m['auc_replay']:11.3f}")
    seeds = sorted({s for by_seed in rows.values() for s in by_seed})
    per_seed = [np.mean([rows[n][s]["auc_print"] for n in rows]) for s in seeds]
    summary = {k: float(np.mean([m[k] for m in mean.values()])) for k in next(iter(mean.values()))}
    summary |= {"auc_print_per_seed": [float(a) for a in per_seed], "seeds": seeds}
    print(f"{'mean':>14} {summary['auc_print']:10.3f} {summary['apcer_print']:12.1%} "
          f"{summary['auc_replay']:11.3f}   AUC print per seed "
          f"{', '.join(f'{a:.3f}' for a in per_seed)}")
    out = args.out or args.lro[0] / "print_attacks.json"
    with atomic_write(out, "w") as f:
        json.dump({"recordings": mean, "by_seed": rows, "summary": summary}, f, indent=2)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
