"""``liveness quickstart`` at toy sizes: every step runs and every artefact it names exists."""

from __future__ import annotations

import json

import cv2
import pytest

from liveness.errors import UserError
from liveness.net import load_model
from liveness.quickstart import quickstart


def test_quickstart_writes_every_artefact(tmp_path):
    lines: list[str] = []
    out = tmp_path / "qs"
    artefacts = quickstart(out, recordings=2, seconds=1.0, fps=6, crops=12, epochs=1,
                           say=lines.append)
    for what, path in artefacts.items():
        assert path.exists(), what
        assert str(path) in "\n".join(lines)  # the user is told where it is
        assert out in path.parents
    model = load_model(artefacts["model"])
    assert model.preprocessing.size == 32 and 0 <= model.threshold <= 1
    assert list((out / "faces").iterdir())  # crops from the gather step
    assert {p.name for p in (out / "eval").iterdir()} >= {"report.txt", "report.json", "roc.png"}
    demo = json.loads(artefacts["demo results"].read_text())
    frames = demo["frames"]
    assert len(frames) == 12  # the test recording: 6 real then 6 fake frames
    assert any(f["faces"] for f in frames)
    assert all(face["label"] in ("real", "fake") for f in frames for face in f["faces"])
    cap = cv2.VideoCapture(str(artefacts["annotated video"]))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12 and cap.read()[0]


def test_quickstart_refuses_a_folder_in_use(tmp_path):
    (tmp_path / "old.txt").write_text("a previous run")
    with pytest.raises(UserError, match="not empty"):
        quickstart(tmp_path)
