"""Real-data experiments for LivenessNet (not a test: minutes to hours on a CPU).

Data: ``../shared/data/faces/<recording>/{real,fake}`` (22 recordings, see DATA.md), or
``--data`` / env ``LIVENESS_DATA``. Nothing here is written into the repository.

Experiments (``--run``, comma-separated):

paper   The paper's protocol: one recording (the tutorial's own, ``pyis_orig``), random 75/25
        frame split, ``--preset paper``. Reports validation accuracy (optimistic: neighbouring
        frames of one video land on both sides), then the same model on every other recording.
lro     Leave recordings out, the honest number: recordings are dealt into ``--folds`` folds;
        for each fold, train on the other recordings (a few of them held back as validation
        for early stopping and the threshold) and evaluate on the fold's recordings, which the
        model never saw. Reports APCER/BPCER/ACER/AUC per held-out recording, and the mean
        ACER of the recordings of several people (``MULTI_PERSON``) apart from the others.
all     The default model trained on all recordings (what the README's command produces).
calibrated
        Leave recordings out, then ``liveness calibrate`` on each held-out recording: for
        K = 5, 10, 20, 50 crops per class taken from the recording's first frames
        (:func:`first_frames`), calibrate the fold's model with each method (``--methods``,
        default all) and evaluate it on the recording's remaining, later crops, beside the
        zero-shot model on the same crops. ``--from-lro DIR`` (repeatable) reuses the fold
        models of earlier ``--run lro`` outputs (DIR/results.json,
        DIR/[seedN/]lro/foldI/model.npz) instead of training.

Any training setting can be changed with ``--set key=value`` (``TrainConfig`` fields), which
is how the ablations in the notes were run. A single run moves by ~5 points of mean ACER from
seed to seed, so compare settings over several seeds with ``--seeds``, e.g.::

    python benchmarks/train_liveness.py --run lro --seeds 0-6 --set jitter=0

``--members K`` scores seed ensembles in lro: in each fold, K models trained on the same split
with different seeds, their P(real) averaged and the threshold set on the averaged validation
scores (K times the training time).

Prints tables and writes ``results.json`` (and every run directory) under ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from liveness import metrics as M
from liveness.calibrate import METHODS, calibrate
from liveness.data import IMAGE_SUFFIXES, Dataset, load_dataset, split_by_group
from liveness.evaluate import build_report, evaluate, score_dataset
from liveness.metrics import select_threshold
from liveness.net import LivenessModel, load_model
from liveness.train import PRESETS, TrainConfig, train
from scratchnet.io import atomic_write

ROOT = Path(__file__).resolve().parents[1]
PAPER_RECORDING = "pyis_orig"
# Recordings of several people (../shared/DATA.md); the others show one person each.
MULTI_PERSON = frozenset({"neonipun", "nuredinali", "shubhamlala", "sivakumar", "viguardieiro"})
ISO = ("apcer", "bpcer", "acer", "auc")


def recordings(data: Path) -> dict[str, int]:
    """{recording: number of images} for every ``<data>/<name>/{real,fake}``."""
    return {d.name: sum(1 for f in d.glob("*/*") if f.suffix.lower() in IMAGE_SUFFIXES)
            for d in sorted(data.iterdir())
            if (d / "real").is_dir() and (d / "fake").is_dir()}


def deal_folds(sizes: dict[str, int], k: int) -> list[list[str]]:
    """Deal recordings, largest first, into ``k`` folds of similar size (snake order)."""
    folds: list[list[str]] = [[] for _ in range(k)]
    for i, name in enumerate(sorted(sizes, key=lambda n: (-sizes[n], n))):
        round_, pos = divmod(i, k)
        folds[pos if round_ % 2 == 0 else k - 1 - pos].append(name)
    return folds


def subset_folder(data: Path, names: list[str], where: Path) -> Path:
    """A folder of symbolic links to some recordings (nothing is copied)."""
    where.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = where / name
        if not link.exists():
            link.symlink_to((data / name).resolve(), target_is_directory=True)
    return where


def config(dataset: Path, out: Path, overrides: dict[str, Any], preset: str = "default"
           ) -> TrainConfig:
    return TrainConfig(dataset=str(dataset), out=str(out), **{**PRESETS[preset], **overrides})


def held_out_figures(model: Path, data: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """The model's ISO figures, at its stored threshold, on each recording in ``names``."""
    rows = {}
    for name in names:
        r = evaluate(model, data / name)
        rows[name] = {k: r[k] for k in (*ISO, "eer", "accuracy", "n_real", "n_fake")}
    return rows


def print_table(title: str, rows: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Per-recording table plus mean/max ACER and mean AUC (returned)."""
    print(f"\n{title}\n{'recording':>14} {'n':>5} {'APCER':>7} {'BPCER':>7} {'ACER':>7} "
          f"{'AUC':>6}")
    for name, r in rows.items():
        n = r["n_real"] + r["n_fake"]
        print(f"{name:>14} {n:5d} {r['apcer']:7.1%} {r['bpcer']:7.1%} {r['acer']:7.1%} "
              f"{r['auc']:6.3f}")
    acer = np.array([r["acer"] for r in rows.values()])
    multi = np.array([name in MULTI_PERSON for name in rows])
    summary = {"mean_acer": float(acer.mean()), "max_acer": float(acer.max()),
               "mean_auc": float(np.mean([r["auc"] for r in rows.values()])),
               "mean_eer": float(np.mean([r["eer"] for r in rows.values()])),
               "n_above_30pct": int((acer > 0.30).sum()),
               "mean_acer_multi_person": float(acer[multi].mean()) if multi.any() else None,
               "mean_acer_one_person": float(acer[~multi].mean()) if (~multi).any() else None}
    print(f"{'mean':>14} {'':5} {'':7} {'':7} {summary['mean_acer']:7.1%} "
          f"{summary['mean_auc']:6.3f}   max ACER {summary['max_acer']:.1%}, "
          f"{summary['n_above_30pct']} recording(s) above 30%; mean EER "
          f"{summary['mean_eer']:.1%}")
    for label, part in (("several people", multi), ("one person", ~multi)):
        if part.any():
            print(f"{label:>14} {'':5} {'':7} {'':7} {acer[part].mean():7.1%}   "
                  f"({part.sum()} recordings)")
    return summary


def run_paper(data: Path, out: Path, overrides: dict[str, Any], verbose: bool) -> dict:
    run_dir = out / "paper"
    model = train(config(data / PAPER_RECORDING, run_dir, overrides, preset="paper"),
                  force=True, verbose=verbose)
    history = json.loads((run_dir / "history.json").read_text())
    report = json.loads((run_dir / "report.json").read_text())
    others = [n for n in recordings(data) if n != PAPER_RECORDING]
    result = {"val_accuracy_argmax": history["val_accuracy"][-1],
              "val_accuracy_at_threshold": report["accuracy"], "threshold": model.threshold,
              "val_auc": report["auc"], "epochs": len(history["loss"]),
              "other_recordings": held_out_figures(run_dir / "model.npz", data, others)}
    print(f"\npaper protocol on {PAPER_RECORDING}: validation accuracy "
          f"{result['val_accuracy_argmax']:.1%} (argmax), {report['accuracy']:.1%} at the "
          f"stored threshold {model.threshold:.3f}; AUC {report['auc']:.3f}")
    result["other_summary"] = print_table(
        f"the same model on the {len(others)} other recordings", result["other_recordings"])
    return result


def run_lro(data: Path, out: Path, overrides: dict[str, Any], k: int, verbose: bool,
            members: int = 1) -> dict:
    sizes = recordings(data)
    rows: dict[str, dict[str, Any]] = {}
    folds = deal_folds(sizes, k)
    for i, test in enumerate(folds):
        rest = [n for n in sizes if n not in test]
        pool = subset_folder(data, rest, out / "lro_data" / f"fold{i}")
        run_dir = out / "lro" / f"fold{i}"
        print(f"\nfold {i + 1}/{k}: held out {', '.join(test)}", flush=True)
        train(config(pool, run_dir, overrides), force=True, verbose=verbose)
        val = json.loads((run_dir / "report.json").read_text())
        print(f"  validation recordings {', '.join(val.get('per_group', {}) or ['?'])}: "
              f"AUC {val['auc']:.3f}, threshold {val['threshold']:.3f}")
        if members > 1:
            rows |= ensemble_figures(data, pool, run_dir, overrides, members, test, verbose)
        else:
            rows |= held_out_figures(run_dir / "model.npz", data, test)
    rows = dict(sorted(rows.items()))
    title = "leave recordings out (each recording never seen in training)"
    if members > 1:
        title += f", ensembles of {members} seeds"
    return {"folds": folds, "recordings": rows, "summary": print_table(title, rows)}


def ensemble_figures(data: Path, pool: Path, first_run: Path, overrides: dict[str, Any],
                     members: int, test: list[str], verbose: bool) -> dict[str, dict[str, Any]]:
    """Train ``members - 1`` more models beside ``first_run`` and score their ensemble.

    Member j is trained with seed ``seed + 100 * j`` on the same split as the first model
    (its validation recordings are passed as ``val_groups``), so the members differ only in
    their initial weights, sample order, dropout and augmentation. The ensemble's score for a
    face is the mean P(real) of the members; its threshold is chosen by the members' rule
    (``threshold_at``) on the mean scores of the validation recordings.
    """
    first = config(pool, first_run, overrides)
    pool_set = load_dataset(pool, size=first.preprocessing().load_size)
    _, val_set = split_by_group(pool_set, list(first.val_groups) or None, first.val_fraction,
                                first.seed)
    val_groups = tuple(sorted(set(val_set.groups.tolist())))
    models = [load_model(first_run / "model.npz")]
    for j in range(1, members):
        cfg = config(pool, first_run.with_name(f"{first_run.name}_member{j}"),
                     overrides | {"seed": first.seed + 100 * j, "val_groups": val_groups})
        models.append(train(cfg, force=True, verbose=verbose))
    val_scores = np.mean([score_dataset(m, val_set.images) for m in models], axis=0)
    threshold = select_threshold(val_scores, val_set.labels, first.threshold_at)
    rows = {}
    for name in test:
        ds = load_dataset(data / name, size=first.preprocessing().load_size)
        scores = np.mean([score_dataset(m, ds.images) for m in models], axis=0)
        r = build_report(scores, ds.labels, threshold)
        rows[name] = {k: r[k] for k in (*ISO, "eer", "accuracy", "n_real", "n_fake")}
    return rows


def run_lro_seeds(data: Path, out: Path, overrides: dict[str, Any], k: int, seeds: list[int],
                  verbose: bool, members: int = 1) -> dict:
    """:func:`run_lro` once per seed, then the per-recording figures averaged over the seeds.

    One run is deterministic for a code version and seed but moves by ~5 points of mean ACER
    from seed to seed, so settings are compared on the mean of several seeds."""
    runs = {seed: run_lro(data, out / f"seed{seed}", {**overrides, "seed": seed}, k, verbose,
                          members) for seed in seeds}
    first = runs[seeds[0]]["recordings"]
    mean_rows = {name: {key: float(np.mean([r["recordings"][name][key] for r in runs.values()]))
                        for key in (*ISO, "eer", "accuracy")}
                 | {"n_real": first[name]["n_real"], "n_fake": first[name]["n_fake"]}
                 for name in first}
    acer = np.array([r["summary"]["mean_acer"] for r in runs.values()])
    summary = print_table(f"leave recordings out, mean of seeds {', '.join(map(str, seeds))}",
                          mean_rows)
    print(f"mean ACER per seed: {', '.join(f'{a:.1%}' for a in acer)} (sd {acer.std():.1%})")
    return {"seeds": {str(seed): r for seed, r in runs.items()}, "recordings": mean_rows,
            "summary": summary | {"sd_mean_acer_over_seeds": float(acer.std())}}


CALIBRATION_KS = (5, 10, 20, 50)
MIN_TEST_PER_CLASS = 5  # a K is skipped for a recording with fewer than K + 5 crops in a class


def natural_key(name: str) -> list[str | int]:
    """Sort key comparing runs of digits as numbers: ``"100 (10).webp"`` ->
    ``["", 100, " (", 10, ").webp"]``, so ``"f9"`` sorts before ``"f10"``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def first_frames(ds: Dataset, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, test) indices: the first ``k`` crops of each class in time order, and
    the rest.

    Time order is the natural order of the file names (:func:`natural_key`): in every
    recording of ``../shared/data/faces`` and in ``liveness gather``'s output the name holds
    the frame index (``12.png``, ``real.mp412.png``, ``100 (12).webp``, ``face_0012.webp``,
    ``...-f000012-0.png``), so the test crops are later frames, not neighbours of the
    calibration ones. Where names carry no order (people or lightings named in the prefix, as
    in sivakumar and ydf1014), the same natural order is used: alphabetical by prefix, then by
    number, so calibration takes the first prefix's frames.
    """
    calib, test = [], []
    for class_id in np.unique(ds.labels):
        idx = np.flatnonzero(ds.labels == class_id)
        idx = np.array(sorted(idx, key=lambda i: natural_key(Path(ds.paths[i]).name)))
        calib.append(idx[:k])
        test.append(idx[k:])
    return np.concatenate(calib), np.concatenate(test)


def lro_models(out_dirs: list[Path]) -> dict[int, list[tuple[Path, list[str]]]]:
    """{training seed: [(fold model, recordings it held out), ...]} from ``--run lro`` outputs
    (one seed, or several with ``--seeds``), as listed in each DIR/results.json."""
    found: dict[int, list[tuple[Path, list[str]]]] = {}
    for out in out_dirs:
        lro = json.loads((out / "results.json").read_text())["lro"]
        if "seeds" in lro:
            runs = {int(s): (out / f"seed{s}", r["folds"]) for s, r in lro["seeds"].items()}
        else:
            seed = json.loads((out / "results.json").read_text())["overrides"].get("seed", 0)
            runs = {int(seed): (out, lro["folds"])}
        for seed, (where, folds) in runs.items():
            found[seed] = [(where / "lro" / f"fold{i}" / "model.npz", names)
                           for i, names in enumerate(folds)]
    return found


def calibrated_rows(model: LivenessModel, ds: Dataset, seed: int, ks: tuple[int, ...],
                    methods: tuple[str, ...] = METHODS) -> dict[str, dict[str, float]]:
    """{str(K): {"zero_shot": ACER, method: ACER, ...}} on one held-out recording, every
    figure on the crops after the first K per class (K skipped when a class has too few)."""
    scores = score_dataset(model, ds.images)
    rows = {}
    n_least = min(int((ds.labels == c).sum()) for c in (0, 1))
    for k in ks:
        if n_least < k + MIN_TEST_PER_CLASS:
            continue
        calib, test = first_frames(ds, k)
        row = {"zero_shot": M.acer(scores[test], ds.labels[test], model.threshold),
               "n_test": int(test.size)}
        for method in methods:
            new, _ = calibrate(model, ds.images[calib], ds.labels[calib], method, seed=seed)
            row[method] = M.acer(score_dataset(new, ds.images[test]), ds.labels[test],
                                 new.threshold)
        rows[str(k)] = row
    return rows


def summarise_calibrated(per_seed: dict[int, dict[str, dict[str, dict[str, float]]]],
                         ks: tuple[int, ...], methods: tuple[str, ...] = METHODS
                         ) -> dict[str, dict[str, Any]]:
    """Per K and method: mean ACER over recordings (mean, sd and se over seeds), the worst
    recording (its ACER averaged over seeds), and the paired difference to zero-shot."""
    seeds = sorted(per_seed)
    summary: dict[str, dict[str, Any]] = {}
    for k in map(str, ks):
        names = sorted(n for n in per_seed[seeds[0]] if k in per_seed[seeds[0]][n])
        if not names:
            continue
        table: dict[str, Any] = {"recordings": len(names),
                                 "skipped": sorted(set(per_seed[seeds[0]]) - set(names))}
        zero = np.array([[per_seed[s][n][k]["zero_shot"] for n in names] for s in seeds])
        for method in ("zero_shot", *methods):
            acer = np.array([[per_seed[s][n][k][method] for n in names] for s in seeds])
            means, diff = acer.mean(axis=1), (acer - zero).mean(axis=1)
            per_recording = acer.mean(axis=0)
            worst = int(per_recording.argmax())
            table[method] = {
                "mean_acer": float(means.mean()), **_spread(means),
                "max_acer": float(per_recording[worst]), "max_recording": names[worst],
                "n_above_20pct": int((per_recording > 0.20).sum()),
                "d_vs_zero_shot": float(diff.mean()), "se_d": _spread(diff)["se"]}
        summary[k] = table
    return summary


def _spread(values: np.ndarray) -> dict[str, float | None]:
    """Sample standard deviation and standard error of the mean (None for one value)."""
    if len(values) < 2:
        return {"sd": None, "se": None}
    sd = float(np.std(values, ddof=1))
    return {"sd": sd, "se": sd / float(np.sqrt(len(values)))}


def print_calibrated(summary: dict[str, dict[str, Any]], seeds: list[int],
                     methods: tuple[str, ...] = METHODS) -> None:
    def pm(x: float | None) -> str:
        return "   n/a" if x is None else f"{x:6.1%}"

    print(f"\ncalibrated on the first K crops per class of each held-out recording, evaluated "
          f"on its later crops; seeds {', '.join(map(str, seeds))}")
    for k, table in summary.items():
        print(f"\nK = {k} per class: {table['recordings']} recordings"
              + (f" (skipped, too few crops: {', '.join(table['skipped'])})"
                 if table["skipped"] else ""))
        print(f"{'method':>10} {'mean ACER':>9} {'sd':>6} {'se':>6} {'max':>6} {'(where)':>14} "
              f"{'>20%':>4} {'d vs zero-shot':>14} {'se d':>6}")
        for method in ("zero_shot", *methods):
            r = table[method]
            print(f"{method:>10} {r['mean_acer']:9.1%} {pm(r['sd'])} {pm(r['se'])} "
                  f"{r['max_acer']:6.1%} {r['max_recording']:>14} {r['n_above_20pct']:4d} "
                  f"{r['d_vs_zero_shot']:+14.1%} {pm(r['se_d'])}")


def run_calibrated(data: Path, out: Path, overrides: dict[str, Any], k: int, verbose: bool,
                   seeds: list[int] | None, from_lro: list[Path],
                   ks: tuple[int, ...] = CALIBRATION_KS, methods: tuple[str, ...] = METHODS
                   ) -> dict:
    """Leave recordings out (reused from ``from_lro`` or trained here), then calibration on
    each held-out recording's first frames (see the module docstring)."""
    if from_lro:
        models = lro_models(from_lro)
    else:
        models = {}
        for seed in seeds or [overrides.get("seed", 0)]:
            where = out / f"seed{seed}"
            folds = run_lro(data, where, {**overrides, "seed": seed}, k, verbose)["folds"]
            models[seed] = [(where / "lro" / f"fold{i}" / "model.npz", names)
                            for i, names in enumerate(folds)]
    cache: dict[tuple[str, int], Dataset] = {}
    per_seed: dict[int, dict[str, dict[str, dict[str, float]]]] = {}
    for seed in sorted(models):
        per_seed[seed] = {}
        for model_path, names in models[seed]:
            model = load_model(model_path)
            for name in names:
                key = (name, model.preprocessing.load_size)
                if key not in cache:
                    cache[key] = load_dataset(data / name, size=key[1])
                per_seed[seed][name] = calibrated_rows(model, cache[key], seed, ks, methods)
        print(f"seed {seed}: {len(per_seed[seed])} recordings calibrated", flush=True)
    summary = summarise_calibrated(per_seed, ks, methods)
    print_calibrated(summary, sorted(models), methods)
    return {"seeds": sorted(models), "methods": list(methods),
            "recordings": {str(s): r for s, r in per_seed.items()}, "summary": summary}


def parse_seeds(text: str) -> list[int]:
    """``"0-6"`` -> [0, 1, ..., 6]; ``"0,2,5"`` -> [0, 2, 5]."""
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds += list(range(int(first), int(last or first) + 1))
    return seeds


def parse_methods(text: str) -> tuple[str, ...]:
    """``"threshold,dense"`` -> ("threshold", "dense"), each one of ``METHODS``."""
    methods = tuple(m for m in text.split(",") if m)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(METHODS)}")
    return methods


def run_all(data: Path, out: Path, overrides: dict[str, Any], verbose: bool) -> dict:
    run_dir = out / "all"
    train(config(data, run_dir, overrides), force=True, verbose=verbose)
    report = json.loads((run_dir / "report.json").read_text())
    print(f"\nall recordings -> {run_dir / 'model.npz'}; validation recordings "
          f"{', '.join(report.get('per_group', {}))}: ACER {report['acer']:.1%}, AUC "
          f"{report['auc']:.3f}, threshold {report['threshold']:.3f}")
    return {"model": str(run_dir / "model.npz"), "validation": report}


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["epochs=3", "normalization=unit"]`` -> typed values from TrainConfig's defaults."""
    defaults = dataclasses.asdict(TrainConfig("", ""))
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in defaults or key in ("dataset", "out"):
            sys.exit(f"--set {item}: unknown setting; choose from {sorted(defaults)}")
        kind = type(defaults[key])
        if kind is bool:
            out[key] = value.lower() in ("1", "true", "yes", "on")
        elif kind is tuple:
            out[key] = tuple(v for v in value.split(",") if v)
        elif defaults[key] is None:
            out[key] = value
        else:
            out[key] = kind(value)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(
        os.environ.get("LIVENESS_DATA", ROOT.parent / "shared" / "data")) / "faces")
    parser.add_argument("--out", type=Path, default=Path("/tmp/liveness_bench"))
    parser.add_argument("--run", default="paper,lro,all", help="paper, lro, all, calibrated")
    parser.add_argument("--folds", type=int, default=4, help="folds for lro (default 4)")
    parser.add_argument("--seeds", type=parse_seeds, default=None, metavar="LIST",
                        help="lro once per seed (e.g. 0-6 or 0,1,2) and the mean per recording")
    parser.add_argument("--members", type=int, default=1, metavar="K",
                        help="lro: score ensembles of K models per fold (seeds seed, "
                             "seed+100, ...; K times the training time)")
    parser.add_argument("--from-lro", action="append", type=Path, default=[], metavar="DIR",
                        help="calibrated: reuse the fold models of this --run lro output "
                             "(repeatable, e.g. one per seed) instead of training")
    parser.add_argument("--methods", type=parse_methods, default=METHODS, metavar="LIST",
                        help="calibrated: the calibration methods to run, comma-separated "
                             f"(default {','.join(METHODS)})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a training setting (TrainConfig field)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no face data at {args.data}; pass --data or set LIVENESS_DATA")
    overrides = parse_overrides(args.set)
    results: dict[str, Any] = {"data": str(args.data), "overrides": overrides}
    runners = {"paper": lambda: run_paper(args.data, args.out, overrides, not args.quiet),
               "lro": lambda: (run_lro_seeds(args.data, args.out, overrides, args.folds,
                                             args.seeds, not args.quiet, args.members)
                               if args.seeds else
                               run_lro(args.data, args.out, overrides, args.folds,
                                       not args.quiet, args.members)),
               "all": lambda: run_all(args.data, args.out, overrides, not args.quiet),
               "calibrated": lambda: run_calibrated(args.data, args.out, overrides, args.folds,
                                                    not args.quiet, args.seeds, args.from_lro,
                                                    methods=args.methods)}
    for name in args.run.split(","):
        start = time.perf_counter()
        results[name] = runners[name]()
        results[name]["seconds"] = round(time.perf_counter() - start, 1)
        with atomic_write(args.out / "results.json", "w") as f:
            json.dump(results, f, indent=2)
    print(f"\nwrote {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
