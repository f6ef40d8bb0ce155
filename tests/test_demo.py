"""The demo loop on short synthetic clips from a fake camera: no screen, no camera needed.

Each frame shows two faces (matplotlib's Grace Hopper portrait): a natural one on the left and
a blue-tinted "replay" on the right. A stand-in scorer calls a crop real when its red channel
is brighter than its blue one, so the expected labels are known without a trained network.
"""

from __future__ import annotations

import json

import cv2
import matplotlib.cbook
import numpy as np
import pytest

from liveness import cli
from liveness.demo import FaceTracker, Track, iou, open_source, run_demo
from liveness.errors import UserError
from liveness.faces import Box, HaarDetector
from liveness.preprocess import Preprocessing

SIZE = (320, 240)


def make_frames(n: int) -> list[np.ndarray]:
    """``n`` frames 320x240: real face on the left moving right, replay on the right moving left."""
    photo = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    face = cv2.resize(photo, (110, 128), interpolation=cv2.INTER_AREA)
    replay = cv2.flip(face, 1).astype(np.float32)
    replay[..., 0] = np.minimum(255, replay[..., 0] * 1.3 + 40)  # more blue
    replay[..., 2] *= 0.6  # less red
    replay = replay.astype(np.uint8)
    frames = []
    for i in range(n):
        dx = 2 * (i % 6)
        frame = np.full((SIZE[1], SIZE[0], 3), 110, np.uint8)
        frame[50:178, 15 + dx:125 + dx] = face
        frame[60:188, 190 - dx:300 - dx] = replay
        frames.append(frame)
    return frames


class FakeCamera:
    """``read()``/``release()`` like cv2.VideoCapture; stops (or raises) after its frames."""

    def __init__(self, frames: list[np.ndarray], fail_with: type[Exception] | None = None):
        self.frames, self.fail_with = list(frames), fail_with
        self.released = False

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.frames:
            return True, self.frames.pop(0).copy()
        if self.fail_with is not None:
            raise self.fail_with("camera unplugged")
        return False, None

    def release(self) -> None:
        self.released = True


class RedOverBlue:
    """Stand-in model: P(real) = 1 when a crop is redder than it is blue. Records batch sizes."""

    preprocessing = Preprocessing(size=16)
    threshold = 0.5

    def __init__(self) -> None:
        self.batches: list[int] = []

    def scores(self, x: np.ndarray) -> np.ndarray:
        self.batches.append(len(x))
        return (x[:, 0].mean(axis=(1, 2)) > x[:, 2].mean(axis=(1, 2))).astype(np.float32)


class Noisy:
    """Stand-in model: P(real) = 0.6 + N(0, 0.15) per face, a flickery scorer near the threshold."""

    preprocessing = Preprocessing(size=16)
    threshold = 0.5

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def scores(self, x: np.ndarray) -> np.ndarray:
        return (0.6 + 0.15 * self.rng.standard_normal(len(x))).astype(np.float32)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return make_frames(12)


@pytest.fixture(scope="module")
def detector() -> HaarDetector:
    return HaarDetector(scale_factor=1.2)


def write_video(path, n_frames: int):
    """An MJPG .avi of ``make_frames(n_frames)``; returns ``path``."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, SIZE)
    for frame in make_frames(n_frames):
        writer.write(frame)
    writer.release()
    return path


def read_video(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return out
        out.append(frame)


def test_iou_by_hand():
    a = Box(0, 0, 10, 10)
    assert iou(a, a) == 1.0
    assert iou(a, Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou(a, Box(10, 0, 10, 10)) == 0.0  # touching edges share no area
    assert iou(a, Box(2, 2, 4, 4)) == pytest.approx(16 / 100)


def test_tracker_follows_faces_by_overlap():
    tracker = FaceTracker(max_missed=1)
    left, right = Box(10, 10, 50, 50), Box(200, 10, 50, 50)
    first = tracker.assign([left, right])
    ids = {t.box: t.id for t in first}
    # moved a little and listed in the other order: same tracks, new boxes
    moved = tracker.assign([Box(205, 12, 50, 50), Box(14, 10, 50, 50)])
    assert [t.id for t in moved] == [ids[right], ids[left]]
    assert moved[0].box == Box(205, 12, 50, 50)
    # a new face far away starts a track; the lost right face coasts one detection frame
    now = tracker.assign([Box(16, 10, 50, 50), Box(100, 150, 40, 40)])
    assert [t.id for t in now] == [ids[left], 2, ids[right]]
    assert now[2].missed == 1 and now[2].box == Box(205, 12, 50, 50)
    assert [t.id for t in tracker.assign([Box(18, 10, 50, 50)])] == [ids[left], 2]
    # no detection on this frame: every live track keeps its box
    assert [t.box for t in tracker.assign(None)] == [Box(18, 10, 50, 50), Box(100, 150, 40, 40)]


def test_tracker_ema_and_flips():
    tracker = FaceTracker(smooth=0.5, threshold=0.5, hold=1)
    track = Track(0, Box(0, 0, 1, 1))
    for raw in (1.0, 0.0, 0.0):
        tracker.observe(track, raw)
    assert track.score == pytest.approx(0.25)  # 1 -> 0.5 -> 0.25
    assert track.raw == 0.0 and track.label == "fake" and tracker.flips == 1

    off, track = FaceTracker(smooth=0.0), Track(1, Box(0, 0, 1, 1))
    for raw in (0.9, 0.1, 0.7):
        off.observe(track, raw)
        assert track.score == raw
    with pytest.raises(UserError, match="smooth"):
        FaceTracker(smooth=1.0)
    with pytest.raises(UserError, match="hold"):
        FaceTracker(hold=0)


def test_label_changes_only_after_hold_frames_agree():
    tracker, track = FaceTracker(smooth=0.0, threshold=0.5, hold=3), Track(0, Box(0, 0, 1, 1))
    labels = []
    for raw in (0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.2):
        tracker.observe(track, raw)
        labels.append(track.label)
    # two fake frames are not enough (and the count restarts after a real one); three are
    assert labels == ["real"] * 6 + ["fake"] * 2
    assert tracker.flips == 1


def test_demo_labels_each_face_and_writes_video_and_json(tmp_path, frames, detector):
    model, camera = RedOverBlue(), FakeCamera(frames)
    seen = []
    summary = run_demo(camera, model, detector, output=tmp_path / "out.mp4",
                       json_path=tmp_path / "out.json",
                       on_frame=lambda i, frame, tracks: seen.append(
                           sorted((t.box.x, t.label) for t in tracks)))
    assert camera.released
    assert summary.frames == len(frames) and summary.ended == "end of the stream"
    # left face real, right face (the blue replay) fake, on every frame, in one batch per frame
    assert all([label for _, label in faces] == ["real", "fake"] for faces in seen)
    assert model.batches == [1] + [2] * len(frames)  # a warm-up pass, then one per frame
    assert summary.labels == {"fake": len(frames), "real": len(frames)}
    assert summary.tracks == 2 and summary.flips == 0

    video = read_video(tmp_path / "out.mp4")
    assert len(video) == len(frames) and video[0].shape == (SIZE[1], SIZE[0], 3)
    assert not np.array_equal(video[0], frames[0])  # annotated, not the raw frame
    result = json.loads((tmp_path / "out.json").read_text())
    assert [f["frame"] for f in result["frames"]] == list(range(len(frames)))
    face = result["frames"][0]["faces"][0]
    assert set(face) == {"box", "track", "score", "raw_score", "label"} and len(face["box"]) == 4
    assert result["summary"]["frames"] == len(frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "out.mp4"]  # no temp files


def test_detect_every_k_frames_keeps_faces_in_between(frames, detector):
    class Counting:
        calls = 0

        def detect(self, frame):
            Counting.calls += 1
            return detector.detect(frame)

    counts = []
    run_demo(FakeCamera(frames), RedOverBlue(), Counting(), detect_every=3,
             on_frame=lambda i, frame, tracks: counts.append(len(tracks)))
    assert Counting.calls == 4 and counts == [2] * len(frames)


def test_smoothing_reduces_flicker(frames, detector):
    raw = run_demo(FakeCamera(frames * 3), Noisy(), detector, smooth=0.0, hold=1)
    ema = run_demo(FakeCamera(frames * 3), Noisy(), detector, smooth=0.8, hold=1)
    held = run_demo(FakeCamera(frames * 3), Noisy(), detector, smooth=0.8, hold=3)
    assert raw.flips >= 8  # the noisy scorer crosses 0.5 often on 72 face-frames
    assert ema.flips <= raw.flips // 4
    assert held.flips <= ema.flips


@pytest.mark.parametrize("fail_with", [None, cv2.error])
def test_camera_dropping_out_mid_stream_ends_cleanly(tmp_path, frames, detector, fail_with):
    camera = FakeCamera(frames[:5], fail_with=fail_with)
    summary = run_demo(camera, RedOverBlue(), detector, output=tmp_path / "o.avi",
                       json_path=tmp_path / "o.json")
    assert summary.frames == 5 and camera.released
    assert len(read_video(tmp_path / "o.avi")) == 5
    assert len(json.loads((tmp_path / "o.json").read_text())["frames"]) == 5


def test_source_without_frames_is_a_user_error(tmp_path, detector):
    camera = FakeCamera([])
    with pytest.raises(UserError, match="cannot read a frame"):
        run_demo(camera, RedOverBlue(), detector, output=tmp_path / "o.mp4")
    assert camera.released and not any(tmp_path.iterdir())


def test_open_source_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="not found"):
        open_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(UserError, match="is a folder"):
        open_source(str(tmp_path))
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    with pytest.raises(UserError, match="cannot read video"):
        open_source(str(garbage))

    class Closed:
        def __init__(self, *args):
            pass

        def isOpened(self):
            return False

    monkeypatch.setattr(cv2, "VideoCapture", Closed)
    with pytest.raises(UserError, match="cannot open camera 0.*busy"):
        open_source("0")
    with pytest.raises(UserError, match="cannot open stream"):
        open_source("rtsp://example.invalid/stream")


def test_busy_camera_that_opens_but_gives_no_frame(monkeypatch, detector):
    class Busy(FakeCamera):
        def __init__(self, *args):
            super().__init__([])

        def isOpened(self):
            return True

    monkeypatch.setattr(cv2, "VideoCapture", Busy)
    with pytest.raises(UserError, match="camera 0 opened but delivered no frames.*--source"):
        run_demo("0", RedOverBlue(), detector)


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    video = write_video(tmp_path / "v.avi", 1)
    missing = ["demo", "--model", str(tmp_path / "none.npz"), "--source", str(video),
               "--no-display"]
    assert cli.main(missing) == 2
    err = capsys.readouterr().err.strip()
    assert "none.npz" in err and "not found" in err and "\n" not in err

    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    assert cli.main(["demo", "--model", str(foreign), "--source", str(video), "--no-display"]) == 2
    err = capsys.readouterr().err.strip()
    assert "foreign.npz" in err and "\n" not in err


def test_cli_runs_a_saved_model_on_a_video(tmp_path, capsys):
    from liveness.net import LivenessModel, build_livenessnet

    video = write_video(tmp_path / "v.avi", 6)
    model = LivenessModel(build_livenessnet(size=16), Preprocessing(size=16), threshold=0.5)
    model.save(tmp_path / "m.npz")
    code = cli.main(["demo", "--model", str(tmp_path / "m.npz"), "--source", str(video),
                     "--no-display", "--output", str(tmp_path / "o.mp4"),
                     "--json", str(tmp_path / "o.json")])
    assert code == 0
    out = capsys.readouterr().out
    assert "6 frames" in out and "detect" in out and "infer" in out
    frames = json.loads((tmp_path / "o.json").read_text())["frames"]
    assert [len(f["faces"]) for f in frames] == [2] * 6
    assert all(0 <= face["score"] <= 1 for f in frames for face in f["faces"])
    assert len(read_video(tmp_path / "o.mp4")) == 6


def test_window_mode_quits_on_q(monkeypatch, frames, detector):
    keys = iter([-1, -1, ord("q")])  # cv2.waitKey results: nothing, nothing, q
    shown = []
    monkeypatch.setattr(cv2, "imshow", lambda title, frame: shown.append(frame.shape))
    monkeypatch.setattr(cv2, "waitKey", lambda delay: next(keys))
    monkeypatch.setattr(cv2, "destroyAllWindows", lambda: None)
    camera = FakeCamera(frames)
    summary = run_demo(camera, RedOverBlue(), detector, display=True)
    assert summary.frames == 3 and len(shown) == 3
    assert summary.ended == "stopped by the user" and camera.released
