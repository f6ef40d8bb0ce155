"""``liveness evaluate MODEL DATASET``: how well a model separates real faces from replays.

One report, built by :func:`build_report` from (scores, labels, threshold) and used by
``evaluate``, by ``train`` (on its validation set) and by the benchmarks, so every number in
the project is computed and printed the same way:

* the paper's table: precision, recall, F1 and support per class, accuracy, macro and
  weighted averages, and the confusion matrix;
* the field's metrics (ISO/IEC 30107-3): APCER, BPCER and ACER at the model's threshold, plus
  threshold-free ones: ROC AUC, EER, APCER at BPCER = 1% and 5%;
* the same ISO figures per group (recording) when the dataset has several;
* on request, decisions per presentation (``evaluate --per-recording``): ISO/IEC 30107-3
  counts presentations (a person or an attack in front of the camera), not frames, so each
  recording's real and fake video (each source of a ``liveness gather`` manifest) is scored by
  the mean P(real) of its frames and decided at the same threshold.

Figures that are undefined on the data (APCER without fakes) are ``None`` in JSON and "n/a"
in text.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from liveness import metrics as M
from liveness.data import load_dataset, presentations
from liveness.engines import add_engine_argument
from liveness.errors import UserError
from liveness.net import CLASSES, LivenessModel, load_model
from liveness.plots import plot_confusion, plot_roc
from liveness.preprocess import network_input
from scratchnet.io import atomic_write

REPORT_FILES = ("report.json", "report.txt", "confusion.png", "roc.png")


def _num(x: float) -> float | None:
    """JSON has no NaN: undefined figures become None."""
    return None if x is None or math.isnan(x) else float(x)


def iso_figures(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    """APCER/BPCER/ACER at ``threshold`` and the threshold-free AUC/EER for one set."""
    labels = np.asarray(labels)
    both = 0 < labels.sum() < labels.size
    eer, eer_threshold = M.eer(scores, labels) if both else (math.nan, math.nan)
    return {"apcer": _num(M.apcer(scores, labels, threshold)),
            "bpcer": _num(M.bpcer(scores, labels, threshold)),
            "acer": _num(M.acer(scores, labels, threshold)),
            "auc": _num(M.auc(scores, labels)),
            "eer": _num(eer), "eer_threshold": _num(eer_threshold),
            "n_real": int(labels.sum()), "n_fake": int((labels == 0).sum())}


def presentation_figures(scores: np.ndarray, labels: np.ndarray, keys: np.ndarray,
                         threshold: float) -> dict[str, Any]:
    """ISO figures over presentations: each presentation (the frames sharing a key, all of
    one class) scores the mean of its frames' scores, ``s_p = mean(scores[keys == p])``, and
    is accepted as real iff ``s_p >= threshold``. Also lists every presentation."""
    keys = np.asarray(keys)
    names = sorted(set(keys.tolist()))
    mean = np.array([scores[keys == k].mean() for k in names])
    label = np.array([labels[keys == k][0] for k in names])
    rows = [{"presentation": k, "label": CLASSES[y], "frames": int((keys == k).sum()),
             "score": float(m), "decision": CLASSES[int(m >= threshold)]}
            for k, y, m in zip(names, label, mean, strict=True)]
    return {**iso_figures(mean, label, threshold), "presentations": rows}


def build_report(scores: np.ndarray, labels: np.ndarray, threshold: float,
                 groups: np.ndarray | None = None,
                 presentations: np.ndarray | None = None) -> dict[str, Any]:
    """Every figure of an evaluation as one JSON-ready dict (see the module docstring);
    ``presentations`` (a key per frame) adds the presentation-level section."""
    scores, labels = M.check_inputs(scores, labels)
    if labels.size == 0:
        raise UserError("nothing to evaluate: the dataset has no images")
    predictions = M.predict(scores, threshold)
    table = M.classification_report(labels, predictions, CLASSES)
    report: dict[str, Any] = {
        "accuracy": table["accuracy"], **iso_figures(scores, labels, threshold),
        "threshold": float(threshold),
        "apcer_at_bpcer_1pct": _num(M.apcer_at_bpcer(scores, labels, 0.01)),
        "apcer_at_bpcer_5pct": _num(M.apcer_at_bpcer(scores, labels, 0.05)),
        "per_class": {name: table[name] for name in CLASSES},
        "macro_avg": table["macro avg"], "weighted_avg": table["weighted avg"],
        "confusion_matrix": M.confusion_matrix(labels, predictions).tolist(),
        "classes": list(CLASSES),
    }
    if groups is not None and len(set(groups)) > 1:
        groups = np.asarray(groups)
        report["per_group"] = {str(g): iso_figures(scores[groups == g], labels[groups == g],
                                                   threshold) for g in sorted(set(groups))}
    if presentations is not None:
        report["per_presentation"] = presentation_figures(scores, labels, presentations,
                                                          threshold)
    return report


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:6.1%}"


def format_report(report: dict[str, Any], title: str = "LivenessNet evaluation") -> str:
    """The report as text: the paper's table, the confusion matrix, the ISO metrics."""
    lines = [title, "", f"{'':>12}  precision    recall  f1-score   support"]
    rows = [(name, report["per_class"][name]) for name in report["classes"]]
    for name, r in rows:
        lines.append(f"{name:>12}  {r['precision']:9.3f} {r['recall']:9.3f} "
                     f"{r['f1']:9.3f} {r['support']:9d}")
    n = report["n_real"] + report["n_fake"]
    lines += ["", f"{'accuracy':>12}  {'':9} {'':9} {report['accuracy']:9.3f} {n:9d}"]
    for key in ("macro_avg", "weighted_avg"):
        r = report[key]
        lines.append(f"{key.replace('_', ' '):>12}  {r['precision']:9.3f} {r['recall']:9.3f} "
                     f"{r['f1']:9.3f} {r['support']:9d}")
    cm = report["confusion_matrix"]
    lines += ["", "confusion matrix (rows: true class, columns: predicted)",
              f"{'':>12}" + "".join(f"{c:>8}" for c in report["classes"])]
    lines += [f"{c:>12}" + "".join(f"{v:8d}" for v in row)
              for c, row in zip(report["classes"], cm, strict=True)]
    fakes_in, reals_out = cm[0][1], cm[1][0]
    lines += ["", f"ISO/IEC 30107-3 at threshold {report['threshold']:.4f}",
              f"  APCER {_pct(report['apcer'])}  fakes accepted as real "
              f"({fakes_in} of {report['n_fake']})",
              f"  BPCER {_pct(report['bpcer'])}  reals rejected as fake "
              f"({reals_out} of {report['n_real']})",
              f"  ACER  {_pct(report['acer'])}  (APCER + BPCER) / 2",
              "threshold-free",
              "  ROC AUC " + ("n/a" if report["auc"] is None else f"{report['auc']:.4f}")
              + f"   EER {_pct(report['eer'])}"
              + ("" if report["eer_threshold"] is None
                 else f" (at threshold {report['eer_threshold']:.4f})"),
              f"  APCER at BPCER = 1%: {_pct(report['apcer_at_bpcer_1pct'])}   "
              f"at BPCER = 5%: {_pct(report['apcer_at_bpcer_5pct'])}"]
    if "per_group" in report:
        lines += ["", "per group (recording), at the same threshold",
                  f"{'group':>16}  {'n_real':>6} {'n_fake':>6}  {'APCER':>6}  {'BPCER':>6}  "
                  f"{'ACER':>6}  {'AUC':>6}"]
        for g, r in report["per_group"].items():
            auc = "   n/a" if r["auc"] is None else f"{r['auc']:6.3f}"
            lines.append(f"{g:>16}  {r['n_real']:6d} {r['n_fake']:6d}  {_pct(r['apcer'])}  "
                         f"{_pct(r['bpcer'])}  {_pct(r['acer'])}  {auc}")
    if "per_presentation" in report:
        lines += _format_presentations(report["per_presentation"])
    return "\n".join(lines) + "\n"


def _format_presentations(r: dict[str, Any]) -> list[str]:
    wrong = {"fake": sum(p["decision"] == "real" for p in r["presentations"]
                         if p["label"] == "fake"),
             "real": sum(p["decision"] == "fake" for p in r["presentations"]
                         if p["label"] == "real")}
    lines = ["", "per presentation (mean score of its frames), at the same threshold",
             f"  APCER {_pct(r['apcer'])}  attacks accepted ({wrong['fake']} of {r['n_fake']})",
             f"  BPCER {_pct(r['bpcer'])}  bona fide rejected ({wrong['real']} of "
             f"{r['n_real']})",
             f"  ACER  {_pct(r['acer'])}",
             f"{'presentation':>32}  {'frames':>6}  {'score':>6}  decision"]
    for p in r["presentations"]:
        mark = "" if p["decision"] == p["label"] else "  (wrong)"
        lines.append(f"{p['presentation']:>32}  {p['frames']:6d}  {p['score']:6.3f}  "
                     f"{p['decision']}{mark}")
    return lines


def write_report(out_dir: str | Path, scores: np.ndarray, labels: np.ndarray, threshold: float,
                 groups: np.ndarray | None = None,
                 title: str = "LivenessNet evaluation",
                 presentations: np.ndarray | None = None) -> dict[str, Any]:
    """Build the report and write report.json, report.txt, confusion.png and roc.png."""
    out_dir = Path(out_dir)
    report = build_report(scores, labels, threshold, groups, presentations)
    with atomic_write(out_dir / "report.json", "w") as f:
        json.dump(report, f, indent=2)
    with atomic_write(out_dir / "report.txt", "w") as f:
        f.write(format_report(report, title))
    plot_confusion(np.array(report["confusion_matrix"]), report["classes"],
                   out_dir / "confusion.png",
                   title=f"threshold {threshold:.3f}, accuracy {report['accuracy']:.1%}")
    if report["auc"] is not None:
        plot_roc(M.roc_curve(scores, labels), out_dir / "roc.png", report["auc"], report["eer"],
                 operating_point=(report["apcer"], report["bpcer"]))
    return report


def score_dataset(model: LivenessModel, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """P(real) for dataset images in [0, 1] at the model's ``load_size`` (as ``load_dataset``
    returns them)."""
    return model.scores(network_input(images, model.preprocessing), batch_size=batch_size)


def evaluate(model_path: str | Path, dataset: str | Path, threshold: float | None = None,
             out_dir: str | Path | None = None, per_recording: bool = False,
             engine: str = "scratchnet") -> dict[str, Any]:
    """Load a model (to run on ``engine``) and a dataset folder, score it, report (and write
    to ``out_dir`` if set); ``per_recording`` adds the decisions per presentation (see the
    module docstring)."""
    model = load_model(model_path, engine)
    if not Path(dataset).is_dir():
        raise UserError(f"dataset folder {dataset} not found; point to a folder with real/ and "
                        "fake/ subfolders (see `liveness gather` or `liveness synth`)")
    ds = load_dataset(dataset, size=model.preprocessing.load_size)
    scores = score_dataset(model, ds.images)
    t = model.threshold if threshold is None else threshold
    keys = presentations(dataset, ds) if per_recording else None
    if out_dir is None:
        return build_report(scores, ds.labels, t, ds.groups, keys)
    return write_report(out_dir, scores, ds.labels, t, ds.groups, _title(model_path, dataset),
                        keys)


def _title(model_path: str | Path, dataset: str | Path) -> str:
    return f"LivenessNet evaluation: {model_path} on {dataset}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file written by `liveness train` (model.npz), or "
                                      "by `liveness export` (model.onnx, with --engine)")
    parser.add_argument("dataset", help="folder with real/ and fake/ (or <group>/real, "
                                        "<group>/fake) face crops")
    parser.add_argument("--threshold", type=float, default=None,
                        help="decision threshold on P(real) (default: the one stored in the "
                             "model, set on validation data by `liveness train`)")
    parser.add_argument("--json", action="store_true",
                        help="print every figure as one JSON object instead of the text report")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="also write report.json, report.txt, confusion.png, roc.png here")
    parser.add_argument("--per-recording", action="store_true",
                        help="also decide per presentation (each recording's real and fake "
                             "video, or each gathered source): the mean score of its frames")
    add_engine_argument(parser)


def run(args: argparse.Namespace) -> int:
    report = evaluate(args.model, args.dataset, args.threshold, args.out, args.per_recording,
                      args.engine)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print(format_report(report, _title(args.model, args.dataset)), end="")
        if args.out:
            print(f"wrote {', '.join(REPORT_FILES)} to {args.out}")
    return 0
