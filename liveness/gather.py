"""``liveness gather``: face crops from videos, images, folders or a camera -> a dataset folder.

This is the first step of the tutorial the paper follows: record a real face and a replayed
face, read the frames, find the face in each with OpenCV, save the crops. For every frame
examined (every ``every``-th), the detector's boxes (largest first) are cropped with ``margin``
and saved as PNG::

    DATASET_DIR/<label>/<source stem>-<hash>-f<frame>-<face>.png
    DATASET_DIR/manifest.csv   one row per crop: crop, label, source, frame, face, box, ...
    DATASET_DIR/sources.csv    one row per finished source: counts and the settings used

Which faces are kept: ``max_faces`` largest boxes per frame (default 1, the largest face;
0 keeps all). A replay held up to the camera often shows the real person behind it too; the
largest face is normally the one nearest the camera, but check a contact sheet of the crops.

Idempotent and resumable: crop names are a function of (source path, frame, face rank), so a
rerun overwrites rather than duplicates; a source already listed in ``sources.csv`` with the
same label and settings is skipped; a source interrupted half-way (or gathered again with other
settings) is redone and its old crops replaced. The manifest is rewritten atomically after each
source. A camera recording is a new source each time (its name holds the start time).

Run one ``--out`` folder per person/recording (e.g. ``data/alice``) and ``load_dataset`` on the
parent folder can split by group.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from liveness.data import IMAGE_SUFFIXES, LABELS, SkipLog, read_image, write_png
from liveness.errors import UserError
from liveness.faces import FaceDetector, make_detector
from liveness.preprocess import crop_face
from scratchnet.io import atomic_write

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
MANIFEST_FIELDS = ["crop", "label", "source", "frame", "face", "faces_in_frame",
                   "x", "y", "w", "h", "margin", "crop_size", "detector"]
SOURCES_FIELDS = ["source", "label", "frames", "faces", "no_face", "multi_face", "settings"]


@dataclass(frozen=True)
class Settings:
    """How frames become crops (recorded per source in ``sources.csv``)."""

    every: int = 1  # examine frames 0, every, 2*every, ...
    min_size: int = 40  # smallest face side the detector reports, pixels
    margin: float = 0.0  # context added on each side, as a fraction of the box side
    max_faces: int = 1  # largest faces kept per frame; 0 = all
    crop_size: int | None = None  # resize crops to this square side; None keeps the crop
    detector: str = "haar"  # liveness.faces.make_detector spec

    def __post_init__(self) -> None:
        if self.every < 1 or self.min_size < 1 or self.margin < 0 or self.max_faces < 0:
            raise UserError("need --every >= 1, --min-size >= 1, --margin >= 0, --max-faces >= 0")
        if self.crop_size is not None and self.crop_size < 8:
            raise UserError(f"--crop-size {self.crop_size} is too small; use 8 or more")

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass
class Counts:
    """Frames examined, crops saved, frames with no face, frames with several faces."""

    frames: int = 0
    faces: int = 0
    no_face: int = 0
    multi_face: int = 0

    def __iadd__(self, other: Counts) -> Counts:
        for name in ("frames", "faces", "no_face", "multi_face"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


@dataclass
class Summary:
    """What a gather run did; ``per_source`` maps each source to its counts."""

    total: Counts = field(default_factory=Counts)
    per_source: dict[str, Counts] = field(default_factory=dict)
    already_done: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def report(self, out_dir: Path, label: str, settings: Settings) -> str:
        t = self.total
        kept = "all" if settings.max_faces == 0 else f"the largest {settings.max_faces}"
        lines = [
            f"gathered {len(self.per_source)} source(s) into {out_dir / label}"
            + (f" ({len(self.already_done)} already gathered, skipped)" if self.already_done
               else ""),
            f"  frames examined:           {t.frames} (every {settings.every})",
            f"  faces saved:               {t.faces}",
            f"  frames with no face:       {t.no_face}",
            f"  frames with several faces: {t.multi_face} (kept {kept} per frame)",
        ]
        if self.unreadable:
            lines.append(f"  unreadable files skipped:  {len(self.unreadable)}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Source:
    """A video or image file, or a camera (``camera`` index, ``path`` None)."""

    name: str  # the manifest's "source": resolved path, or camera<i>@<start time>
    kind: str  # "video", "image" or "camera"
    path: Path | None = None
    camera: int | None = None

    @property
    def prefix(self) -> str:
        """Crop-name prefix: readable stem plus a short hash of the full name."""
        stem = Path(self.name).stem if self.path else self.name
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[:40]
        return f"{stem}-{hashlib.sha1(self.name.encode()).hexdigest()[:8]}"


class Unreadable(Exception):
    """A source file that OpenCV cannot decode (skipped with a warning, not an error)."""


def _file_source(path: Path) -> Source:
    kind = "image" if path.suffix.lower() in IMAGE_SUFFIXES else "video"
    return Source(str(path.resolve()), kind, path=path)


def expand_sources(specs: list[str], out_dir: Path, log: SkipLog) -> list[Source]:
    """Turn command-line SOURCE arguments into sources.

    A digit string is a camera index; a folder contributes every image and video below it
    (sorted; other files are skipped with a warning; the output folder is left out); a file
    with an image suffix is an image, any other file is tried as a video.
    """
    out_dir = out_dir.resolve()
    sources: list[Source] = []
    for spec in specs:
        path = Path(spec)
        if spec.isdigit() and not path.exists():
            stamp = time.strftime("%Y%m%dT%H%M%S")
            sources.append(Source(f"camera{spec}@{stamp}", "camera", camera=int(spec)))
        elif path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                if file.name.startswith(".") or out_dir in file.resolve().parents:
                    continue
                if file.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                    sources.append(_file_source(file))
                else:
                    log.skip(file, "not an image or video file")
        elif path.is_file():
            sources.append(_file_source(path))
        else:
            raise UserError(f"source {spec} not found; pass a video, an image, a folder of "
                            "them, or a camera index such as 0")
    unique = {s.name: s for s in sources}  # a file named twice (or via its folder) counts once
    return list(unique.values())


def frames(source: Source, every: int = 1,
           seconds: float = 10.0) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame index, BGR frame) for every ``every``-th frame of ``source``.

    A camera is recorded for ``seconds``. Raises :class:`Unreadable` for a file OpenCV cannot
    decode and UserError for a camera that cannot be opened.
    """
    if source.kind == "image":
        img = read_image(source.path)
        if img is None:
            raise Unreadable("not an image OpenCV can read")
        yield 0, img
        return
    cap = cv2.VideoCapture(source.camera if source.kind == "camera" else str(source.path))
    try:
        if not cap.isOpened():
            if source.kind == "camera":
                raise UserError(f"cannot open camera {source.camera}; check it is connected and "
                                "not in use, or pass a video file instead")
            raise Unreadable("not a video OpenCV can open")
        start, index = time.monotonic(), 0
        while source.kind != "camera" or time.monotonic() - start < seconds:
            ok, frame = cap.read() if index % every == 0 else (cap.grab(), None)
            if not ok:
                break
            if frame is not None:
                yield index, frame
            index += 1
        if index == 0:
            if source.kind == "camera":
                raise UserError(f"camera {source.camera} opened but gave no frame; check it is "
                                "not in use by another program")
            raise Unreadable("no frame could be decoded")
    finally:
        cap.release()


def _estimate_frames(source: Source, every: int) -> int:
    if source.kind == "image":
        return 1
    if source.kind == "camera":
        return 0
    cap = cv2.VideoCapture(str(source.path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    cap.release()
    return max(0, -(-n // every))


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    with atomic_write(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


class _Store:
    """The dataset folder's crops and its two CSV files, kept in step with each other."""

    def __init__(self, out_dir: Path, label: str) -> None:
        self.out_dir, self.label = out_dir, label
        self.manifest = _read_csv(out_dir / "manifest.csv")
        self.sources = _read_csv(out_dir / "sources.csv")

    def done(self, source: Source, settings: Settings) -> Counts | None:
        """The recorded counts if ``source`` was fully gathered with this label and settings."""
        for row in self.sources:
            if (row["source"], row["label"], row["settings"]) == (
                    source.name, self.label, settings.key()):
                return Counts(*(int(row[k]) for k in ("frames", "faces", "no_face", "multi_face")))
        return None

    def replace(self, source: Source, rows: list[dict], counts: Counts | None,
                settings: Settings) -> None:
        """Swap this source's manifest rows for ``rows`` (deleting crops no longer listed),
        record it as finished when ``counts`` is given, and rewrite both files atomically."""
        def mine(row: dict) -> bool:
            return row["source"] == source.name and row["label"] == self.label

        new_crops = {r["crop"] for r in rows}
        for row in filter(mine, self.manifest):
            if row["crop"] not in new_crops:
                (self.out_dir / row["crop"]).unlink(missing_ok=True)
        self.manifest = sorted([r for r in self.manifest if not mine(r)] + rows,
                               key=lambda r: r["crop"])
        self.sources = [r for r in self.sources if not mine(r)]
        if counts is not None:
            self.sources.append({"source": source.name, "label": self.label, **asdict(counts),
                                 "settings": settings.key()})
        _write_csv(self.out_dir / "manifest.csv", MANIFEST_FIELDS, self.manifest)
        _write_csv(self.out_dir / "sources.csv", SOURCES_FIELDS, self.sources)


def _crop_frame(frame: np.ndarray, index: int, source: Source, detector: FaceDetector,
                settings: Settings,
                store: _Store, counts: Counts) -> list[dict]:
    """Detect faces in one frame, save the kept crops, update ``counts``; manifest rows."""
    boxes = detector.detect(frame)
    counts.frames += 1
    counts.no_face += not boxes
    counts.multi_face += len(boxes) > 1
    kept = boxes if settings.max_faces == 0 else boxes[:settings.max_faces]
    rows = []
    for rank, box in enumerate(kept):
        crop = crop_face(frame, box, settings.margin)
        if settings.crop_size:
            side = settings.crop_size
            interp = cv2.INTER_AREA if min(crop.shape[:2]) >= side else cv2.INTER_LINEAR
            crop = cv2.resize(crop, (side, side), interpolation=interp)
        name = f"{store.label}/{source.prefix}-f{index:06d}-{rank}.png"
        write_png(store.out_dir / name, crop)
        rows.append({"crop": name, "label": store.label, "source": source.name, "frame": index,
                     "face": rank, "faces_in_frame": len(boxes), **box._asdict(),
                     "margin": settings.margin, "crop_size": settings.crop_size or "",
                     "detector": settings.detector})
    counts.faces += len(kept)
    return rows


def gather(sources: list[str], label: str, out_dir: str | Path, settings: Settings = Settings(),
           seconds: float = 10.0, progress: bool = True) -> Summary:
    """Detect, crop and save faces from ``sources`` into ``out_dir/label`` (see module doc).

    Returns a :class:`Summary`; unreadable files are skipped with a warning and listed in it.
    """
    if label not in LABELS:
        raise UserError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
    out_dir = Path(out_dir)
    log = SkipLog()
    todo = expand_sources(sources, out_dir, log)
    detector = make_detector(settings.detector, min_size=settings.min_size)
    store = _Store(out_dir, label)
    summary = Summary()
    estimate = {s.name: _estimate_frames(s, settings.every) for s in todo
                if not store.done(s, settings)}
    bar = tqdm(total=sum(estimate.values()) or None, unit="frame", desc=f"gather {label}",
               disable=not progress)
    try:
        for source in todo:
            previous = store.done(source, settings)
            if previous is not None:
                summary.already_done.append(source.name)
                summary.per_source[source.name] = previous
                summary.total += previous
                continue
            counts, rows = Counts(), []
            try:
                for index, frame in frames(source, settings.every, seconds):
                    rows += _crop_frame(frame, index, source, detector, settings, store, counts)
                    bar.update(1)
                    bar.set_postfix(faces=summary.total.faces + counts.faces,
                                    no_face=summary.total.no_face + counts.no_face,
                                    refresh=False)
            except Unreadable as e:
                log.skip(source.path, str(e))
                continue
            except BaseException:  # interrupted: list the crops saved so far, not marked done
                store.replace(source, rows, None, settings)
                raise
            store.replace(source, rows, counts, settings)
            if bar.total:  # container frame counts can be wrong (e.g. WebM): fix the bar's total
                bar.total += counts.frames - estimate[source.name]
                bar.refresh()
            summary.per_source[source.name] = counts
            summary.total += counts
    finally:
        bar.close()
    log.report()
    summary.unreadable = log.skipped
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="video file, image, folder of them, or camera index (e.g. 0)")
    parser.add_argument("--label", required=True, choices=sorted(LABELS),
                        help="what the sources show: a real face or a replay/photo (fake)")
    parser.add_argument("--out", required=True, metavar="DATASET_DIR",
                        help="dataset folder; crops go to DATASET_DIR/<label>/")
    parser.add_argument("--every", type=int, default=1, metavar="N",
                        help="examine every N-th frame (default 1: all)")
    parser.add_argument("--min-size", type=int, default=40, metavar="PX",
                        help="smallest face side to detect, pixels (default 40)")
    parser.add_argument("--margin", type=float, default=0.0,
                        help="context around each box, fraction of its side (default 0)")
    parser.add_argument("--max-faces", type=int, default=1, metavar="K",
                        help="keep the K largest faces per frame (default 1; 0 = all). With a "
                             "replay, the person behind the screen may be detected too: the "
                             "largest face (usually nearest the camera) is kept")
    parser.add_argument("--crop-size", type=int, default=None, metavar="PX",
                        help="resize crops to PX x PX (default: keep the detected size)")
    parser.add_argument("--detector", default="haar",
                        help="haar (default), haar:SCALE (e.g. haar:1.3, faster) or "
                             "yunet:MODEL.onnx")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="how long to record from a camera (default 10)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    settings = Settings(every=args.every, min_size=args.min_size, margin=args.margin,
                        max_faces=args.max_faces, crop_size=args.crop_size,
                        detector=args.detector)
    summary = gather(args.sources, args.label, args.out, settings, seconds=args.seconds,
                     progress=not args.quiet)
    print(summary.report(Path(args.out), args.label, settings))
    return 0
