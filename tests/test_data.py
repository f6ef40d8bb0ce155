"""Dataset folders -> arrays (both layouts, bad files, errors), random and by-group splits."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from liveness.data import LABELS, load_dataset, split_by_group, split_random
from liveness.errors import UserError

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LIVENESS_DATA", REPO.parent / "shared" / "data"))


def write_images(folder: Path, n: int, color_bgr=None, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)
        if color_bgr is not None:
            img[:] = color_bgr
        cv2.imwrite(str(folder / f"{i:03d}.png"), img)


@pytest.fixture
def groups(tmp_path):
    """root/<g>/{real,fake}/...: sizes per group (real, fake) chosen so splits are checkable."""
    sizes = {"ann": (4, 3), "bob": (2, 5), "cyd": (6, 2), "dan": (3, 3)}
    for g, (n_real, n_fake) in sizes.items():
        write_images(tmp_path / g / "real" / "take1", n_real)
        write_images(tmp_path / g / "fake", n_fake)
    return tmp_path, sizes


def test_single_folder_layout_shapes_labels_and_rgb(tmp_path):
    root = tmp_path / "alice"
    write_images(root / "real", 3, color_bgr=(255, 0, 0))  # pure blue in BGR
    write_images(root / "fake" / "deep" / "er", 2, color_bgr=(0, 0, 255))  # pure red
    ds = load_dataset(root, size=16)
    assert ds.images.shape == (5, 3, 16, 16) and ds.images.dtype == np.float32
    assert ds.labels.dtype == np.int64
    assert ds.labels.tolist() == [LABELS["fake"]] * 2 + [LABELS["real"]] * 3
    assert set(ds.groups.tolist()) == {"alice"}
    red, blue = ds.images[0], ds.images[-1]  # RGB channel order
    assert (red[0] == 1).all() and (red[1:] == 0).all()
    assert (blue[2] == 1).all() and (blue[:2] == 0).all()
    assert ds.paths[0].endswith("fake/deep/er/000.png")


def test_group_layout_any_depth(groups):
    root, sizes = groups
    ds = load_dataset(root, size=8)
    assert len(ds) == sum(r + f for r, f in sizes.values())
    for g, (n_real, n_fake) in sizes.items():
        mine = ds.labels[ds.groups == g]
        assert (mine == LABELS["real"]).sum() == n_real and (mine == LABELS["fake"]).sum() == n_fake
    assert ds.images.min() >= 0 and ds.images.max() <= 1


def test_unreadable_files_are_skipped_with_names_and_count(tmp_path, capsys):
    write_images(tmp_path / "real", 2)
    write_images(tmp_path / "fake", 2)
    (tmp_path / "fake" / "broken.png").write_bytes(b"\x89PNG garbage")
    (tmp_path / "real" / "notes.txt").write_text("not an image")
    (tmp_path / "real" / ".partial.png.tmp").write_bytes(b"")  # hidden: ignored silently
    ds = load_dataset(tmp_path)
    assert len(ds) == 4
    err = capsys.readouterr().err
    assert "broken.png" in err and "notes.txt" in err and "skipped 2 unreadable" in err
    assert ".partial" not in err


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "not found"),
    (lambda root: write_images(root / "real", 2), "no fake/ folder"),
    (lambda root: (write_images(root / "real", 2), (root / "fake").mkdir()), "no readable fake"),
    (lambda root: write_images(root / "misc", 2), "no real/ and fake/ folders"),
])
def test_bad_dataset_folders_are_user_errors(tmp_path, make, message):
    root = tmp_path / "ds"
    make(root)
    with pytest.raises(UserError, match=message):
        load_dataset(root)


def test_split_random_is_stratified_disjoint_and_seeded(groups):
    ds = load_dataset(groups[0], size=8)
    train, val = split_random(ds, val_fraction=0.25, seed=3)
    assert sorted(train.paths + val.paths) == sorted(ds.paths)
    assert not set(train.paths) & set(val.paths)
    for class_id in LABELS.values():
        n = (ds.labels == class_id).sum()
        assert (val.labels == class_id).sum() == round(n * 0.25)
    again = split_random(ds, val_fraction=0.25, seed=3)[1]
    assert again.paths == val.paths
    assert split_random(ds, val_fraction=0.25, seed=4)[1].paths != val.paths


def test_split_by_group_keeps_each_group_on_one_side(groups):
    ds = load_dataset(groups[0], size=8)
    for seed in range(5):
        train, val = split_by_group(ds, val_fraction=0.3, seed=seed)
        assert not set(train.groups.tolist()) & set(val.groups.tolist())
        assert len(train) + len(val) == len(ds)
        assert set(val.labels.tolist()) == set(train.labels.tolist()) == {0, 1}
    train, val = split_by_group(ds, val_groups=["bob", "dan"])
    assert set(val.groups.tolist()) == {"bob", "dan"} and len(val) == 13
    assert split_by_group(ds, seed=2)[1].paths == split_by_group(ds, seed=2)[1].paths


def test_split_by_group_errors(groups, tmp_path):
    ds = load_dataset(groups[0], size=8)
    with pytest.raises(UserError, match="unknown validation group.*zed"):
        split_by_group(ds, val_groups=["zed"])
    with pytest.raises(UserError, match="at least one group for training"):
        split_by_group(ds, val_groups=["ann", "bob", "cyd", "dan"])
    one = load_dataset(groups[0] / "ann", size=8)
    with pytest.raises(UserError, match="at least 2 groups"):
        split_by_group(one)


def test_labels_match_the_network_classes():
    from liveness.net import CLASSES

    assert {name: CLASSES.index(name) for name in CLASSES} == LABELS


@pytest.mark.skipif(not (DATA / "faces").is_dir(),
                    reason=f"real face crops not found in {DATA} (set LIVENESS_DATA)")
def test_real_face_sets_load_and_split_by_set():
    ds = load_dataset(DATA / "faces", size=32)
    names = {p.name for p in (DATA / "faces").iterdir() if p.is_dir()}
    assert set(ds.groups.tolist()) == names
    assert len(ds) > 1000 and set(ds.labels.tolist()) == {0, 1}
    train, val = split_by_group(ds, seed=0)
    assert not set(train.groups.tolist()) & set(val.groups.tolist())
    assert 0.1 < len(val) / len(ds) < 0.45
