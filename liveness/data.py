"""Face dataset folders -> arrays, and train/validation splits (random, or by group).

A dataset folder is either one recording ("group")::

    ROOT/real/**/*.png      ROOT/fake/**/*.png          (group name: ROOT's folder name)

or a parent of several groups (people, recordings, devices), like ``../shared/data/faces``::

    ROOT/<group>/real/**    ROOT/<group>/fake/**

Images may sit at any depth below ``real/`` and ``fake/``; anything OpenCV can read counts
(hidden files, e.g. half-written temporaries, are ignored). Unreadable files are skipped with a
warning naming them and a count at the end.

Why split by group: frames of one video are near-duplicates, so a random split puts the same
moment in train and validation and reports ~100%. ``split_by_group`` keeps every recording
entirely on one side, which is what a new user in a new room looks like to the model.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from liveness.errors import UserError
from liveness.preprocess import to_input
from scratchnet.io import atomic_write

LABELS = {"fake": 0, "real": 1}  # class ids, in the order of liveness.net.CLASSES


def warn(message: str) -> None:
    """A warning on stderr that does not break a progress bar."""
    tqdm.write(f"warning: {message}", file=sys.stderr)


class SkipLog:
    """Files skipped because they cannot be read: one warning per file (the first ``limit``),
    then a count from :meth:`report`."""

    def __init__(self, limit: int = 20) -> None:
        self.skipped: list[str] = []
        self.limit = limit

    def skip(self, path: str | Path, reason: str) -> None:
        self.skipped.append(str(path))
        if len(self.skipped) <= self.limit:
            warn(f"skipping {path}: {reason}")

    def report(self) -> None:
        if self.skipped:
            warn(f"skipped {len(self.skipped)} unreadable file(s)")


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def read_image(path: str | Path) -> np.ndarray | None:
    """A BGR uint8 image, or None when ``path`` is not an image OpenCV can decode."""
    try:
        return cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error:
        return None


def write_png(path: str | Path, img: np.ndarray) -> None:
    """Save a BGR uint8 image as PNG, atomically (a reader never sees half a file)."""
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError(f"cannot encode an image for {path}")
    with atomic_write(path, "wb") as f:
        f.write(buf.tobytes())


@dataclass
class Dataset:
    """Face crops as network input, with what each one is and where it came from.

    images: (N, 3, S, S) float32 RGB in [0, 1] (from :func:`liveness.preprocess.to_input`)
    labels: (N,) int64, 1 = real, 0 = fake
    groups: (N,) str, the recording/person each image belongs to
    paths: the N image files
    """

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> Dataset:
        index = np.asarray(index, dtype=np.int64)
        return Dataset(self.images[index], self.labels[index], self.groups[index],
                       [self.paths[i] for i in index])

    def summary(self) -> str:
        """e.g. ``"311 images (161 real, 150 fake) in 1 group"``."""
        real = int((self.labels == LABELS["real"]).sum())
        n_groups = len(set(self.groups.tolist()))
        return (f"{len(self)} images ({real} real, {len(self) - real} fake) in {n_groups} "
                f"group{'s' if n_groups != 1 else ''}")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _group_folders(root: Path) -> dict[str, Path]:
    """{group name: folder holding real/ and/or fake/} for either layout."""
    if (root / "real").is_dir() or (root / "fake").is_dir():
        for label in LABELS:
            if not (root / label).is_dir():
                raise UserError(f"{root} has no {label}/ folder; put the {label} face images "
                                f"in {root / label}")
        return {root.resolve().name: root}
    groups = {d.name: d for d in sorted(root.iterdir())
              if d.is_dir() and ((d / "real").is_dir() or (d / "fake").is_dir())}
    if not groups:
        raise UserError(f"{root} has no real/ and fake/ folders; expected {root}/real and "
                        f"{root}/fake, or {root}/<group>/real and {root}/<group>/fake")
    for name, folder in groups.items():
        for label in LABELS:
            if not (folder / label).is_dir():
                warn(f"group {name} has no {label}/ folder")
    return groups


def find_images(path: str | Path) -> list[tuple[Path, int, str]]:
    """(file, class id, group) for every file under ``path``'s real/ and fake/ folders
    (either layout above), sorted. Raises UserError for a missing folder or layout."""
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"dataset folder {root} not found; pass a folder with real/ and fake/ "
                        "(made by `liveness gather` or `liveness synth`)")
    found = []
    for group, folder in _group_folders(root).items():
        for label, class_id in LABELS.items():
            if (folder / label).is_dir():
                found += [(file, class_id, group) for file in _files(folder / label)]
    return found


def load_dataset(path: str | Path, size: int = 32, strict: bool = False) -> Dataset:
    """Load every readable image under ``path`` (either layout above) as ``size`` x ``size``.

    Raises UserError when the folder is missing, has no real/ and fake/, or a class ends up
    with no readable image; with ``strict``, also at the first unreadable file (instead of
    skipping it).
    """
    images, labels, groups, paths = [], [], [], []
    log = SkipLog()
    for file, class_id, group in find_images(path):
        img = read_image(file)
        if img is None and strict:
            raise UserError(f"{file} is not an image OpenCV can read; remove or replace it")
        if img is None:
            log.skip(file, "not an image OpenCV can read")
            continue
        images.append(img)
        labels.append(class_id)
        groups.append(group)
        paths.append(str(file))
    log.report()
    labels_arr = np.asarray(labels, dtype=np.int64)
    for label, class_id in LABELS.items():
        if not (labels_arr == class_id).any():
            raise UserError(f"no readable {label} images under {path}; add face crops to "
                            f"{label}/ (e.g. with `liveness gather ... --label {label}`)")
    return Dataset(to_input(images, size), labels_arr, np.asarray(groups, dtype=str), paths)


def presentations(path: str | Path, ds: Dataset) -> np.ndarray:
    """One key per image of ``ds`` (loaded from ``path``) naming the presentation it is a
    frame of: ``"<group>/<label>/<source file name>"`` for crops that the group's ``manifest.csv``
    (written by ``liveness gather``) lists with their source video or camera session, else
    ``"<group>/<label>"`` (a class folder of one recording is one presentation).

    ISO/IEC 30107-3 counts presentations (a person, or an attack, in front of the camera),
    not frames; frames of one presentation are near-duplicates.
    """
    folders = _group_folders(Path(path))
    sources: dict[Path, str] = {}
    for folder in folders.values():
        manifest = folder / "manifest.csv"
        if manifest.is_file():
            with manifest.open(newline="") as f:
                sources |= {(folder / row["crop"]).resolve(): Path(row["source"]).name
                            for row in csv.DictReader(f) if row.get("crop") and row.get("source")}
    names = {class_id: label for label, class_id in LABELS.items()}
    keys = []
    for group, class_id, file in zip(ds.groups, ds.labels, ds.paths, strict=True):
        key = f"{group}/{names[int(class_id)]}"
        source = sources.get(Path(file).resolve())
        keys.append(key if source is None else f"{key}/{source}")
    return np.asarray(keys, dtype=str)


def _check_fraction(val_fraction: float) -> None:
    if not 0 < val_fraction < 1:
        raise UserError(f"validation fraction must be between 0 and 1, got {val_fraction}")


def split_random(ds: Dataset, val_fraction: float = 0.25,
                 seed: int | None = 0) -> tuple[Dataset, Dataset]:
    """Random (train, val) split, stratified: each class puts ``val_fraction`` of its images
    (at least one, if it has two) into validation. The paper's split; optimistic for video
    frames (see the module docstring)."""
    _check_fraction(val_fraction)
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for class_id in np.unique(ds.labels):
        idx = rng.permutation(np.flatnonzero(ds.labels == class_id))
        k = round(len(idx) * val_fraction)
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        val.append(idx[:k])
    val_idx = np.sort(np.concatenate(val))
    train_idx = np.setdiff1d(np.arange(len(ds)), val_idx)
    return ds.subset(train_idx), ds.subset(val_idx)


def _pick_groups(sizes: dict[str, int], order: list[str], target: float) -> set[str]:
    """Walk groups in ``order``, taking each one that brings the validation size closer to
    ``target``; always leave at least one group for training and take at least one."""
    chosen: set[str] = set()
    total = 0
    for g in order:
        if len(chosen) == len(order) - 1:
            break
        if abs(total + sizes[g] - target) < abs(total - target):
            chosen.add(g)
            total += sizes[g]
    return chosen or {min(order, key=lambda g: sizes[g])}


def split_by_group(ds: Dataset, val_groups: list[str] | None = None, val_fraction: float = 0.25,
                   seed: int | None = 0, tries: int = 50) -> tuple[Dataset, Dataset]:
    """(train, val) split with no group on both sides.

    ``val_groups`` names the validation groups; otherwise groups are drawn at random until
    validation holds about ``val_fraction`` of the images. Random draws are repeated (up to
    ``tries``, seeded) until both sides have both classes, when that is possible.
    """
    names = sorted(set(ds.groups.tolist()))
    if val_groups is not None:
        unknown = sorted(set(val_groups) - set(names))
        if unknown:
            raise UserError(f"unknown validation group(s) {', '.join(unknown)}; "
                            f"the dataset has: {', '.join(names)}")
        chosen = set(val_groups)
        if not chosen or chosen == set(names):
            raise UserError("validation groups must leave at least one group for training, "
                            "and name at least one")
    else:
        _check_fraction(val_fraction)
        if len(names) < 2:
            raise UserError(f"a split by group needs at least 2 groups, the dataset has only "
                            f"{names[0]!r}; load a parent folder of several recordings, or "
                            "split randomly")
        rng = np.random.default_rng(seed)
        sizes = {g: int((ds.groups == g).sum()) for g in names}
        for _ in range(tries):
            chosen = _pick_groups(sizes, list(rng.permutation(names)), val_fraction * len(ds))
            in_val = np.isin(ds.groups, list(chosen))
            if all(len(np.unique(ds.labels[side])) == len(LABELS) for side in (in_val, ~in_val)):
                break
        else:
            warn("no split by group puts both classes on both sides; using the last draw")
    in_val = np.isin(ds.groups, list(chosen))
    return ds.subset(np.flatnonzero(~in_val)), ds.subset(np.flatnonzero(in_val))
