"""The three pictures of a training run: learning curves, confusion matrix, ROC curve.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot, no window, no
global state), and every PNG is written atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from liveness.metrics import Roc
from scratchnet.io import atomic_write


def save_png(fig: Figure, path: str | Path, dpi: int = 110) -> None:
    """Render ``fig`` with Agg and write it to ``path`` atomically."""
    FigureCanvasAgg(fig)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)


def plot_curves(history: Mapping[str, Sequence[float]], path: str | Path,
                title: str = "LivenessNet training") -> None:
    """Loss and accuracy per epoch, train vs validation (the paper's Figure 7)."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    fig.suptitle(title)
    for ax, key in zip(fig.subplots(1, 2), ("loss", "accuracy"), strict=True):
        for prefix, label, style in (("", "train", "-o"), ("val_", "validation", "-s")):
            values = history.get(prefix + key) or []
            if values:
                ax.plot(np.arange(1, len(values) + 1), values, style, ms=3, label=label)
        ax.set(xlabel="epoch", ylabel=key, title=key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if key == "accuracy":
            ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
    save_png(fig, path)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: str | Path,
                   title: str = "confusion matrix") -> None:
    """Counts with row percentages; rows = true class, columns = predicted class."""
    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    fig = Figure(figsize=(4.6, 4), layout="constrained")
    ax = fig.subplots()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, f"{count}\n{share[i, j]:.1%}", ha="center", va="center",
                color="white" if share[i, j] > 0.5 else "black")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, labels=class_names)
    ax.set_yticks(ticks, labels=class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    save_png(fig, path)


def plot_roc(roc: Roc, path: str | Path, auc: float, eer: float,
             operating_point: tuple[float, float] | None = None,
             title: str = "ROC (positive class: real)") -> None:
    """ROC curve (APCER on x, 1 - BPCER on y) with the model's operating point marked.

    ``operating_point`` is (APCER, BPCER) at the model's threshold.
    """
    fig = Figure(figsize=(4.8, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.plot(roc.apcer, 1 - roc.bpcer, "-", lw=2, label=f"AUC {auc:.3f}, EER {eer:.1%}")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax.plot([0, 1], [1, 0], "--", color="lightgrey", lw=1, label="APCER = BPCER")
    if operating_point is not None:
        a, b = operating_point
        ax.plot([a], [1 - b], "o", color="crimson",
                label=f"threshold: APCER {a:.1%}, BPCER {b:.1%}")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="APCER (fakes accepted)",
           ylabel="1 - BPCER (reals accepted)", title=title)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    save_png(fig, path)
