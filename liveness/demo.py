"""The real-time demo: camera or video -> detect -> preprocess -> score -> smooth -> draw.

One loop, :func:`run_demo`, does the work for the command line, the benchmark and the tests.
It takes any capture-like object with ``read() -> (ok, frame)`` and ``release()`` (an OpenCV
``VideoCapture``, or a fake camera in the tests), so nothing here needs a screen or a camera.

Per frame::

    capture   ok, frame = source.read()
    detect    boxes = detector.detect(frame)          (every ``detect_every`` frames)
    infer     x = preprocess_faces(frame, boxes, model.preprocessing)   (N * V, 3, S, S)
              raw = model.scores(x)                   P(real), all faces in ONE forward pass
              tracker: match boxes to last frame's faces by IoU, smooth each face's score
    draw      box + "real 0.93" coloured by decision, FPS and stage times in the corner
    output    write the annotated frame to the video / show it in a window

Smoothing is an exponential moving average per tracked face,
``s_t = a * s_(t-1) + (1 - a) * raw_t`` with ``a = smooth`` (0 turns it off). For independent
noise on ``raw`` it shrinks the standard deviation by ``sqrt((1 - a) / (1 + a))`` (a = 0.8:
x0.33), which is what stops labels near the threshold from flickering; it lags a true change by
about ``1 / (1 - a)`` frames (5 frames, 1/6 s at 30 fps). A smoothed score that hovers right at
the threshold can still cross it back and forth, so a face's label also changes only when the
new decision has held for ``hold`` frames in a row (``hold=1``: at once).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numba
import numpy as np

from liveness.engines import add_engine_argument
from liveness.errors import UserError
from liveness.faces import Box, FaceDetector, HaarDetector, make_detector
from liveness.net import CLASSES, REAL, load_model, on_engine
from liveness.preprocess import Preprocessing, preprocess_faces
from scratchnet.io import atomic_write

STAGES = ("capture", "detect", "infer", "draw", "output")
COLORS = {"real": (0, 200, 0), "fake": (0, 0, 255)}  # BGR
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}
WINDOW = "liveness demo (q or Esc quits)"


class Capture(Protocol):
    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


class Scorer(Protocol):
    """What the demo needs from a model (``liveness.net.LivenessModel`` is one)."""

    preprocessing: Preprocessing
    threshold: float

    def scores(self, x: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------- tracking


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes: |a & b| / |a | b|, 0 when they do not overlap."""
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    inter = max(0, w) * max(0, h)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """One face followed across frames: its last box and its smoothed score."""

    id: int
    box: Box
    score: float | None = None  # smoothed P(real); None until the first observation
    raw: float | None = None  # the last unsmoothed score
    label: str | None = None  # the shown decision
    pending: int = 0  # frames in a row whose decision differs from ``label``
    missed: int = 0  # detection frames in a row without a matching box


class FaceTracker:
    """Greedy IoU matching of boxes to tracks; per track a score average and a held label.

    ``assign(detections)`` returns the tracks to score on this frame: the matched and new
    ones, plus tracks the detector lost for at most ``max_missed`` detection frames (scored
    at their last box, so a face the detector misses for a frame does not blink). Passing
    ``None`` (a frame without detection) returns every live track with its last box.
    ``observe(track, raw)`` folds a new score into the track's average and updates its label.
    """

    def __init__(
        self,
        smooth: float = 0.8,
        threshold: float = 0.5,
        hold: int = 3,
        iou_threshold: float = 0.3,
        max_missed: int = 3,
    ) -> None:
        if not 0 <= smooth < 1:
            raise UserError(f"--smooth must be in [0, 1) (0 = off), got {smooth}")
        if hold < 1:
            raise UserError(f"--hold must be >= 1 (1 = off), got {hold}")
        self.smooth, self.hold = smooth, hold
        self.threshold = threshold
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self.created = 0  # tracks started so far
        self.flips = 0  # label changes of a track, summed over tracks

    def match(self, boxes: list[Box]) -> list[int | None]:
        """For each box, the index of its track (or None): best IoU pairs first, each used once."""
        pairs = sorted(
            ((iou(b, t.box), i, j) for i, b in enumerate(boxes) for j, t in enumerate(self.tracks)),
            reverse=True,
        )
        matched: list[int | None] = [None] * len(boxes)
        used: set[int] = set()
        for overlap, i, j in pairs:
            if overlap < self.iou_threshold:
                break
            if matched[i] is None and j not in used:
                matched[i] = j
                used.add(j)
        return matched

    def assign(self, detections: list[Box] | None) -> list[Track]:
        if detections is None:
            return list(self.tracks)
        matched = self.match(detections)
        current: list[Track] = []
        for box, j in zip(detections, matched, strict=True):
            if j is None:
                track = Track(self.created, box)
                self.created += 1
            else:
                track = self.tracks[j]
                track.box, track.missed = box, 0
            current.append(track)
        seen = {id(t) for t in current}
        for track in self.tracks:
            if id(track) not in seen:
                track.missed += 1
        lost = [t for t in self.tracks if id(t) not in seen and t.missed <= self.max_missed]
        self.tracks = current + lost
        return self.tracks

    def observe(self, track: Track, raw: float) -> None:
        a = self.smooth
        track.raw = raw
        track.score = raw if track.score is None else a * track.score + (1 - a) * raw
        decision = CLASSES[REAL] if track.score >= self.threshold else CLASSES[1 - REAL]
        if track.label is None:
            track.label = decision
        elif decision == track.label:
            track.pending = 0
        else:
            track.pending += 1
            if track.pending >= self.hold:
                track.label, track.pending = decision, 0
                self.flips += 1


# --------------------------------------------------------------------------- timing and summary


@dataclass
class DemoSummary:
    """What a run did and how fast: returned by :func:`run_demo`, printed by the CLI."""

    source: str
    frames: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    faces: int = 0  # scored faces, summed over frames
    labels: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    tracks: int = 0
    flips: int = 0
    ended: str = ""
    output: str | None = None
    json: str | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def stage_ms(self) -> dict[str, float]:
        return {s: 1e3 * t / max(self.frames, 1) for s, t in self.stage_seconds.items()}

    def stage_share(self) -> dict[str, float]:
        total = sum(self.stage_seconds.values())
        return {s: t / total if total > 0 else 0.0 for s, t in self.stage_seconds.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "frames": self.frames, "seconds": self.seconds,
                "fps": self.fps, "stage_ms": self.stage_ms(), "stage_share": self.stage_share(),
                "faces": self.faces, "labels": self.labels, "tracks": self.tracks,
                "label_flips": self.flips, "ended": self.ended, "output": self.output,
                "json": self.json}

    def format(self) -> str:
        lines = [f"demo: {self.frames} frames in {self.seconds:.1f} s = {self.fps:.1f} fps "
                 f"({self.source}; {self.ended})",
                 f"{'stage':<8} {'ms/frame':>9} {'share':>6}"]
        share = self.stage_share()
        lines += [f"{s:<8} {ms:9.2f} {share[s]:6.1%}" for s, ms in self.stage_ms().items()]
        lines.append(f"faces: {self.faces} scored in {self.tracks} tracks; labels "
                     + ", ".join(f"{k} {v}" for k, v in self.labels.items())
                     + f"; label flips {self.flips}")
        lines += [f"{what}: {path}" for what, path in
                  (("annotated video", self.output), ("per-frame results", self.json)) if path]
        return "\n".join(lines)


class StageClock:
    """Accumulates wall time per stage, and an exponential average per stage for the overlay."""

    def __init__(self, summary: DemoSummary) -> None:
        self.summary = summary
        self.recent = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            self.summary.stage_seconds[stage] += dt
            self.recent[stage] = 0.9 * self.recent[stage] + 0.1 * dt if self.recent[stage] else dt

    def overlay(self) -> list[str]:
        """Two lines for the corner of the frame: frames per second, then ms per stage."""
        total = sum(self.recent.values())
        fps = 1 / total if total > 0 else 0.0
        return [f"{fps:.0f} fps",
                " ".join(f"{s} {1e3 * t:.1f}" for s, t in self.recent.items()) + " ms"]


# --------------------------------------------------------------------------- sources and sinks


@contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own log inside the block: a failed open prints our one line, not its."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def open_source(source: str | int) -> tuple[cv2.VideoCapture, str]:
    """A camera index (``0``), a stream URL (``rtsp://...``) or a video file -> an open capture."""
    with quiet_opencv():
        return _open_source(source)


def _open_source(source: str | int) -> tuple[cv2.VideoCapture, str]:
    if isinstance(source, int) or str(source).isdigit():
        index = int(source)
        cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            raise UserError(f"cannot open camera {index}: none at that index or it is busy; "
                            "connect one, close programs using it, or pass --source video.mp4")
        return cap, f"camera {index}"
    if "://" in source:
        cap = cv2.VideoCapture(source)
        if not cap.isOpened():
            raise UserError(f"cannot open stream {source}; check the URL, credentials and network")
        return cap, source
    path = Path(source)
    if path.is_dir():
        raise UserError(f"{path} is a folder; pass a video file, a camera index or a stream URL")
    if not path.is_file():
        raise UserError(f"video file {path} not found; pass an existing video or a camera "
                        "index such as --source 0")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise UserError(f"cannot read video {path}: OpenCV cannot decode it; "
                        "convert it to mp4 (H.264) or pass another file")
    return cap, str(path)


def no_frames_error(name: str) -> UserError:
    if name.startswith("camera"):
        return UserError(f"{name} opened but delivered no frames (busy or disconnected?); "
                         "close other programs using it or pass --source video.mp4")
    return UserError(f"cannot read a frame from {name}: empty or unsupported video; "
                     "convert it to mp4 (H.264) or pass another file")


def read_frame(cap: Capture) -> np.ndarray | None:
    """The next frame, or None when the source ends or fails (a camera dropping out)."""
    try:
        ok, frame = cap.read()
    except cv2.error:
        return None
    return frame if ok and frame is not None and frame.size else None


@contextmanager
def video_writer(path: str | Path | None, fps: float, size: tuple[int, int]) -> Iterator[Any]:
    """An OpenCV writer to a temporary file, released and renamed onto ``path`` at the end.

    Release happens in ``finally``, so the video is playable however the loop ends, and a
    reader never sees a half-written file (same idea as :func:`scratchnet.io.atomic_write`).
    """
    if path is None:
        yield None
        return
    path = Path(path)
    if path.suffix.lower() not in FOURCC:
        raise UserError(f"output {path}: unsupported video type; use a name ending in "
                        + " or ".join(FOURCC))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC[path.suffix.lower()]),
                             fps, size)
    if not writer.isOpened():
        raise UserError(f"cannot write video {path}; check the folder is writable")
    try:
        yield writer
    finally:
        writer.release()
        os.replace(tmp, path)


def source_fps(cap: Capture, default: float = 30.0) -> float:
    get = getattr(cap, "get", None)
    fps = get(cv2.CAP_PROP_FPS) if get else 0.0
    return fps if fps and 1 <= fps <= 240 else default


@contextmanager
def one_numba_thread() -> Iterator[None]:
    """Run scratchnet's Numba kernels on one thread inside the block, then restore the setting.

    A frame holds one or a few faces: far too little work to split across threads, and on a
    busy machine every parallel kernel waits for a second thread to be scheduled (measured with
    2 threads under load: 175 ms of inference per frame, against 1.7 ms on one thread).
    """
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def has_screen() -> bool:
    """False on Linux/BSD without an X11 or Wayland display (ssh, CI, containers)."""
    if sys.platform.startswith(("win", "darwin")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


# --------------------------------------------------------------------------- drawing


def _text(img: np.ndarray, text: str, org: tuple[int, int], color: tuple[int, int, int],
          scale: float) -> None:
    """Text with a dark outline, readable on any background."""
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, max(1, round(2 * scale))
    cv2.putText(img, text, org, font, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, font, scale, color, thick, cv2.LINE_AA)


def draw(frame: np.ndarray, tracks: list[Track], overlay: list[str]) -> None:
    """A box per face, coloured by decision, with ``label score`` above it (inside at the top),
    and the overlay lines in the top-left corner; sizes follow the frame width (640 px: 1)."""
    ui = frame.shape[1] / 640
    for t in tracks:
        x, y, w, h = t.box
        color = COLORS[t.label]
        cv2.rectangle(frame, (x, y), (x + w, y + h), color, max(2, round(2 * ui)))
        up = round(8 * ui)
        _text(frame, f"{t.label} {t.score:.2f}", (x, y - up if y > 4 * up else y + 3 * up),
              color, 0.6 * ui)
    scale = 0.4 * min(ui, 1.5)
    for i, line in enumerate(overlay):
        _text(frame, line, (6, round((16 + 20 * i) * scale / 0.4)), (255, 255, 255), scale)


# --------------------------------------------------------------------------- the loop


class Pipeline:
    """Detect, score and draw on one frame; the stages :func:`run_demo` times and repeats."""

    def __init__(self, model: Scorer, detector: FaceDetector, tracker: FaceTracker,
                 clock: StageClock, detect_every: int = 1) -> None:
        if detect_every < 1:
            raise UserError(f"--detect-every must be >= 1, got {detect_every}")
        self.model, self.detector, self.tracker = model, detector, tracker
        self.clock, self.detect_every = clock, detect_every

    def process(self, frame: np.ndarray, index: int) -> list[Track]:
        """Label the faces of frame ``index`` and draw them on ``frame`` (in place)."""
        with self.clock("detect"):
            boxes = self.detector.detect(frame) if index % self.detect_every == 0 else None
        with self.clock("infer"):
            tracks = self.tracker.assign(boxes)
            if tracks:
                x = preprocess_faces(frame, [t.box for t in tracks], self.model.preprocessing)
                for t, raw in zip(tracks, self.model.scores(x), strict=True):
                    self.tracker.observe(t, float(raw))
        with self.clock("draw"):
            draw(frame, tracks, self.clock.overlay())
        return tracks


def run_demo(
    source_or_capture: str | int | Capture,
    model: Scorer,
    detector: FaceDetector,
    *,
    threshold: float | None = None,
    smooth: float = 0.8,
    hold: int = 3,
    detect_every: int = 1,
    output: str | Path | None = None,
    json_path: str | Path | None = None,
    display: bool = False,
    max_frames: int | None = None,
    on_frame: Callable[[int, np.ndarray, list[Track]], None] | None = None,
) -> DemoSummary:
    """Label every face in every frame of a source; return what happened and how fast.

    ``source_or_capture``: a camera index, stream URL or video path (opened here), or an
    already open capture-like object (``read()``/``release()``); it is released at the end in
    every case. ``threshold`` overrides the model's; ``smooth`` is the EMA factor in [0, 1)
    and ``hold`` the frames a changed decision must last before a face's label changes;
    the detector runs every ``detect_every`` frames (tracked boxes in between). ``output``
    writes the annotated video, ``json_path`` the per-frame results; ``on_frame(index,
    annotated_frame, tracks)`` is a hook for tests and tools. A source that stops delivering
    frames ends the run normally (``summary.ended`` says why); one that delivers no frame at
    all is a :class:`UserError`.
    """
    threshold = model.threshold if threshold is None else threshold
    tracker = FaceTracker(smooth, threshold, hold)  # checks the options first
    summary = DemoSummary(source="", output=str(output) if output else None,
                          json=str(json_path) if json_path else None)
    clock = StageClock(summary)
    pipeline = Pipeline(model, detector, tracker, clock, detect_every)
    if isinstance(source_or_capture, (str, int)):
        cap, summary.source = open_source(source_or_capture)
    else:
        cap, summary.source = source_or_capture, type(source_or_capture).__name__
    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    try:
        with clock("capture"):
            frame = read_frame(cap)
        if frame is None:
            raise no_frames_error(summary.source)
        size = (frame.shape[1], frame.shape[0])
        with video_writer(output, source_fps(cap), size) as writer, one_numba_thread():
            warm_up(model)
            while frame is not None:
                tracks = pipeline.process(frame, summary.frames)
                with clock("output"):
                    if writer is not None:
                        writer.write(frame)
                    key = _show(frame) if display else -1
                results.append(_record(summary, tracks))
                if on_frame is not None:
                    on_frame(summary.frames - 1, frame, tracks)
                if key in (ord("q"), 27):
                    summary.ended = "stopped by the user"
                    break
                if max_frames is not None and summary.frames >= max_frames:
                    summary.ended = f"--max-frames {max_frames} reached"
                    break
                with clock("capture"):
                    frame = read_frame(cap)
            else:
                summary.ended = "end of the stream"
    except KeyboardInterrupt:
        summary.ended = "interrupted"
    finally:
        summary.seconds = time.perf_counter() - start
        cap.release()
        if display:
            with suppress(cv2.error):  # no GUI backend: already reported
                cv2.destroyAllWindows()
    summary.tracks, summary.flips = tracker.created, tracker.flips
    if json_path is not None:
        with atomic_write(json_path, "w") as f:
            json.dump({"summary": summary.to_dict(), "threshold": threshold, "smooth": smooth,
                       "hold": hold, "frames": results}, f, indent=1)
    return summary


def warm_up(model: Scorer) -> None:
    """One forward pass on a blank face, so loading/compiling the Numba kernels (~0.3 s)
    is not counted as the first frame's inference time."""
    pp = model.preprocessing
    model.scores(np.zeros((pp.views, 3, pp.size, pp.size), np.float32))


def _record(summary: DemoSummary, tracks: list[Track]) -> dict[str, Any]:
    """Count one finished frame in the summary; its per-frame result for the JSON file."""
    index = summary.frames
    summary.frames += 1
    summary.faces += len(tracks)
    for t in tracks:
        summary.labels[t.label] += 1
    return {"frame": index, "faces": [
        {"box": list(t.box), "track": t.id, "score": round(t.score, 4),
         "raw_score": round(t.raw, 4), "label": t.label} for t in tracks]}


def _show(frame: np.ndarray) -> int:
    """Show the frame; the key pressed (or -1). No GUI backend is a :class:`UserError`."""
    try:
        cv2.imshow(WINDOW, frame)
        return cv2.waitKey(1) & 0xFF
    except cv2.error as e:
        raise UserError(f"cannot open a window ({e.msg.strip()}); "
                        "run with --no-display --output annotated.mp4") from None


# --------------------------------------------------------------------------- command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="PATH",
                   help="model file written by `liveness train` (or `liveness export`, with "
                        "--engine)")
    p.add_argument("--source", default="0", metavar="SRC",
                   help="camera index, video file or stream URL (default: camera 0)")
    p.add_argument("--output", metavar="VIDEO",
                   help="write the annotated video here (.mp4 or .avi)")
    p.add_argument("--json", metavar="PATH",
                   help="write per-frame results (frame, box, score, label) here")
    p.add_argument("--no-display", action="store_true",
                   help="no window (automatic when there is no screen)")
    p.add_argument("--threshold", type=float, metavar="T",
                   help="call a face real when P(real) >= T (default: the model's threshold)")
    p.add_argument("--smooth", type=float, default=0.8, metavar="S",
                   help="score smoothing over frames in [0, 1): EMA factor, 0 = off (default 0.8)")
    p.add_argument("--hold", type=int, default=3, metavar="K",
                   help="a face's label changes only after K frames agree (default 3, 1 = off)")
    p.add_argument("--detector", default="haar:1.2", metavar="SPEC",
                   help="face detector: haar, haar:SCALE or yunet:MODEL.onnx (default haar:1.2)")
    p.add_argument("--detect-width", type=int, default=320, metavar="PX",
                   help="run the Haar detector on a copy this many pixels wide (0 = full size)")
    p.add_argument("--detect-every", type=int, default=1, metavar="K",
                   help="detect faces every K frames, follow them in between (default 1)")
    p.add_argument("--min-face", type=int, default=40, metavar="PX",
                   help="smallest face side in pixels (default 40)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--calibrate-from", metavar="DIR",
                   help="first calibrate the model (in memory) on the face crops in DIR/real "
                        "and DIR/fake from this camera, as `liveness calibrate` does with its "
                        "defaults")
    add_engine_argument(p)


def build_detector(spec: str, min_face: int = 40, detect_width: int = 320) -> FaceDetector:
    """``make_detector(spec)``; a Haar detector runs on a frame ``detect_width`` wide (0: full)."""
    detector = make_detector(spec, min_size=min_face)
    if isinstance(detector, HaarDetector) and detect_width:
        detector.downscale = detect_width
    return detector


def run(args: argparse.Namespace) -> int:
    calibrating = bool(args.calibrate_from)  # calibration retrains part of scratchnet's net
    model = load_model(args.model, "scratchnet" if calibrating else args.engine)
    if calibrating:
        from liveness.calibrate import calibrate_from_folder, summary_line  # heavy, rarely used
        model, info = calibrate_from_folder(model, args.calibrate_from)
        print(f"demo: {summary_line(info)} in {args.calibrate_from}", file=sys.stderr)
        model = on_engine(model, args.engine)
    detector = build_detector(args.detector, args.min_face, args.detect_width)
    display = not args.no_display
    if display and not has_screen():
        print("demo: no screen (DISPLAY is not set), running headless", file=sys.stderr)
        display = False
    if not display and not (args.output or args.json):
        print("demo: headless without --output or --json: only the summary will be printed",
              file=sys.stderr)
    summary = run_demo(args.source, model, detector, threshold=args.threshold,
                       smooth=args.smooth, hold=args.hold, detect_every=args.detect_every,
                       output=args.output, json_path=args.json, display=display,
                       max_frames=args.max_frames)
    print(summary.format())
    return 0
