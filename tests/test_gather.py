"""liveness gather: videos, image folders, reruns, bad input, the command line, real recordings."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from liveness import synthetic
from liveness.cli import main
from liveness.errors import UserError
from liveness.gather import Settings, gather

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LIVENESS_DATA", REPO.parent / "shared" / "data"))
FPS, SECONDS = 8, 1.5  # 12 frames per clip


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return synthetic.write_videos(tmp_path_factory.mktemp("videos"), seconds=SECONDS, fps=FPS,
                                  seed=0, size=(320, 240))


def manifest(out: Path) -> list[dict[str, str]]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_gather_video_writes_crops_and_manifest(videos, tmp_path):
    s = gather([str(videos["fake"])], "fake", tmp_path, progress=False)
    assert s.total.frames == 12
    assert s.total.faces == s.total.frames - s.total.no_face >= 10  # one face kept per frame
    rows = manifest(tmp_path)
    crops = sorted((tmp_path / "fake").glob("*.png"))
    assert [tmp_path / r["crop"] for r in rows] == crops and len(crops) == s.total.faces
    for row in rows:
        assert row["label"] == "fake" and row["source"] == str(videos["fake"].resolve())
        assert row["face"] == "0"
        crop = cv2.imread(str(tmp_path / row["crop"]))
        assert crop.shape[:2] == (int(row["h"]), int(row["w"]))  # margin 0: exactly the box
        assert 0 <= int(row["x"]) and int(row["x"]) + int(row["w"]) <= 320
    assert sorted({int(r["frame"]) for r in rows}) == [int(r["frame"]) for r in rows]


def test_rerun_does_not_duplicate_and_settings_change_replaces(videos, tmp_path):
    first = gather([str(videos["real"])], "real", tmp_path, progress=False)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "real").iterdir()}
    manifest_bytes = (tmp_path / "manifest.csv").read_bytes()

    again = gather([str(videos["real"])], "real", tmp_path, progress=False)
    assert again.already_done == [str(videos["real"].resolve())]
    assert again.total == first.total
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "real").iterdir()} == before
    assert (tmp_path / "manifest.csv").read_bytes() == manifest_bytes

    every3 = gather([str(videos["real"])], "real", tmp_path, Settings(every=3, crop_size=24),
                    progress=False)
    assert every3.total.frames == 4 and not every3.already_done
    rows = manifest(tmp_path)
    assert {int(r["frame"]) % 3 for r in rows} == {0}  # old crops of other frames are gone
    assert sorted((tmp_path / "real").glob("*.png")) == [tmp_path / r["crop"] for r in rows]
    assert all(cv2.imread(str(tmp_path / r["crop"])).shape == (24, 24, 3) for r in rows)


def test_image_folder_with_unreadable_files(tmp_path, capsys):
    folder = tmp_path / "shots"
    nested = folder / "day2"
    nested.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, where in enumerate((folder, folder, nested)):
        cv2.imwrite(str(where / f"shot{i}.png"), synthetic.sample_pair(rng)[0])
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    (folder / "notes.txt").write_text("hello")

    out = folder / "dataset"  # inside the source folder: its crops must not become sources
    s = gather([str(folder)], "real", out, progress=False)
    assert s.total.frames == 3
    assert sorted(Path(p).name for p in s.unreadable) == ["broken.jpg", "notes.txt"]
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "notes.txt" in err and "skipped 2 unreadable" in err
    rows = manifest(out)
    assert {r["frame"] for r in rows} == {"0"} and len(rows) == s.total.faces >= 2

    again = gather([str(folder)], "real", out, progress=False)
    assert len(again.already_done) == 3 and again.total == s.total
    assert len(again.unreadable) == 2  # manifest.csv and the crops were not picked up


def test_max_faces_keeps_the_largest_or_all(tmp_path):
    rng = np.random.default_rng(5)
    big = synthetic.sample_pair(rng)[0]
    small = cv2.resize(synthetic.sample_pair(rng)[0], (132, 132))
    frame = np.zeros((176, 176 + 132, 3), np.uint8)
    frame[:, :176], frame[22:154, 176:] = big, small
    cv2.imwrite(str(tmp_path / "two.png"), frame)

    one = gather([str(tmp_path / "two.png")], "fake", tmp_path / "one", progress=False)
    assert one.total.multi_face == 1 and one.total.faces == 1
    (row,) = manifest(tmp_path / "one")
    assert int(row["x"]) < 176  # the big face on the left
    both = gather([str(tmp_path / "two.png")], "fake", tmp_path / "all", Settings(max_faces=0),
                  progress=False)
    assert both.total.faces == 2
    assert [r["face"] for r in manifest(tmp_path / "all")] == ["0", "1"]


def test_missing_source_and_dead_camera_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        gather([str(tmp_path / "nope.mp4")], "real", tmp_path / "out", progress=False)
    with pytest.raises(UserError, match="cannot open camera 97"):
        gather(["97"], "real", tmp_path / "out", progress=False)
    with pytest.raises(UserError, match="--every"):
        Settings(every=0)


def test_unreadable_video_is_skipped_not_fatal(tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00" * 100)
    s = gather([str(bad)], "fake", tmp_path / "out", progress=False)
    assert s.unreadable == [str(bad)] and s.total.frames == 0


def test_command_line(videos, tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["gather", str(videos["real"]), "--label", "real", "--out", str(out),
                 "--every", "4", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "frames examined:           3 (every 4)" in text and "faces saved" in text
    assert main(["gather", str(tmp_path / "missing.mp4"), "--label", "real", "--out",
                 str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("liveness gather: error:") and "\n" not in err


@pytest.mark.skipif(not (DATA / "videos" / "apfol" / "real2.webm").is_file(),
                    reason=f"real recordings not found in {DATA} (set LIVENESS_DATA)")
def test_real_recording(tmp_path):
    video = DATA / "videos" / "apfol" / "real2.webm"
    s = gather([str(video)], "real", tmp_path, Settings(every=25), progress=False)
    assert s.total.frames >= 8
    assert s.total.faces >= s.total.frames // 2
