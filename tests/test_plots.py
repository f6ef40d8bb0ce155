"""The run's pictures are real PNGs with something drawn, and no temporary file is left."""

from __future__ import annotations

import cv2
import numpy as np

from liveness import metrics as M
from liveness import plots


def _read(path):
    img = cv2.imread(str(path))
    assert img is not None, f"{path} is not a readable PNG"
    return img


def test_curves_confusion_and_roc_are_drawn(tmp_path):
    history = {"loss": [0.9, 0.6, 0.4], "accuracy": [0.5, 0.7, 0.9],
               "val_loss": [1.0, 0.8, 0.7], "val_accuracy": [0.5, 0.6, 0.7]}
    plots.plot_curves(history, tmp_path / "curves.png")
    plots.plot_confusion(np.array([[5, 1], [2, 7]]), ("fake", "real"), tmp_path / "conf.png")
    scores, labels = np.array([0.9, 0.7, 0.4, 0.8, 0.3, 0.2]), np.array([1, 1, 1, 0, 0, 0])
    plots.plot_roc(M.roc_curve(scores, labels), tmp_path / "roc.png",
                   auc=M.auc(scores, labels), eer=M.eer(scores, labels)[0],
                   operating_point=(1 / 3, 1 / 3))
    for name in ("curves.png", "conf.png", "roc.png"):
        img = _read(tmp_path / name)
        assert img.shape[0] > 200 and img.std() > 10  # not a blank canvas
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf.png", "curves.png", "roc.png"]

