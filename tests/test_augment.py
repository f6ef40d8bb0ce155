"""Augmentation keeps its promises: shapes, range, identity, flips, the affine maps, seeds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveness.augment import Augmenter
from liveness.cli import main

NONE = dict(rotation=0, zoom=0, shift=0, shear=0, flip=False)


def batch(n=6, c=3, h=12, w=10, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, c, h, w)).astype(np.float32)


def test_all_ranges_zero_is_the_identity():
    x = batch()
    np.testing.assert_array_equal(Augmenter(**NONE)(x, 0), x)


def test_a_flip_is_a_flip():
    x = batch(n=20)
    y = Augmenter(**{**NONE, "flip": True})(x, 1)
    flipped = [np.array_equal(b, a[..., ::-1]) for a, b in zip(x, y, strict=True)]
    kept = [np.array_equal(b, a) for a, b in zip(x, y, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))  # exactly one of the two
    assert 3 <= sum(flipped) <= 17


def test_seeds_reproduce_and_input_is_untouched():
    x = batch()
    copy = x.copy()
    aug = Augmenter(brightness=0.2, contrast=0.2, color=0.2)
    a, b, c = aug(x, 5), aug(x, np.random.default_rng(5)), aug(x, 6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(x, copy)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), c=st.sampled_from([1, 3]), h=st.integers(4, 20),
       w=st.integers(4, 20), jitter=st.sampled_from([0.0, 0.5]), seed=st.integers(0, 99))
def test_shape_dtype_and_range(n, c, h, w, jitter, seed):
    x = batch(n, c, h, w, seed)
    y = Augmenter(brightness=jitter, contrast=jitter, color=jitter)(x, seed)
    assert y.shape == x.shape and y.dtype == np.float32
    assert y.min() >= 0 and y.max() <= 1


def test_each_output_comes_from_its_own_input():
    """The label of sample i stays right because output i is made from input i only."""
    colors = np.linspace(0.05, 0.95, 8, dtype=np.float32)
    x = np.broadcast_to(colors[:, None, None, None], (8, 3, 16, 16)).copy()
    x[:, 1, 4:12, 4:12] = 1 - x[:, 1, 4:12, 4:12]  # some structure to warp
    y = Augmenter()(x, 0)
    np.testing.assert_allclose(y[:, 0].mean(axis=(1, 2)), colors, atol=1e-6)


def test_matrices_are_the_documented_affine_maps():
    aug = Augmenter(rotation=20, zoom=0, shift=0, shear=0, flip=False)
    m = aug.matrices(50, 11, 21, np.random.default_rng(0))
    lin = m[:, :2, :2]
    np.testing.assert_allclose(lin @ lin.transpose(0, 2, 1), np.broadcast_to(np.eye(2), lin.shape),
                               atol=1e-12)  # pure rotations
    angles = np.degrees(np.arctan2(lin[:, 1, 0], lin[:, 0, 0]))
    assert np.abs(angles).max() <= 20 and np.abs(angles).max() > 15
    centre = np.array([10, 5, 1.0])
    np.testing.assert_allclose(m @ centre, np.broadcast_to(centre, (50, 3)), atol=1e-12)

    zoom = Augmenter(rotation=0, zoom=0.15, shift=0, shear=0, flip=False)
    det = np.linalg.det(zoom.matrices(50, 8, 8, np.random.default_rng(1))[:, :2, :2])
    assert det.min() >= 0.85**2 and det.max() <= 1.15**2

    shift = Augmenter(rotation=0, zoom=0, shift=0.2, shear=0, flip=False)
    t = shift.matrices(50, 10, 30, np.random.default_rng(2))[:, :2, 2]
    assert np.abs(t[:, 0]).max() <= 0.2 * 30 and np.abs(t[:, 1]).max() <= 0.2 * 10


def test_shift_moves_a_dot_by_the_matrix_translation():
    x = np.zeros((1, 1, 21, 21), np.float32)
    x[0, 0, 10, 10] = 1
    aug = Augmenter(rotation=0, zoom=0, shift=0.2, shear=0, flip=False)
    y = aug(x, 3)
    tx, ty = aug.matrices(1, 21, 21, np.random.default_rng(3))[0, :2, 2]
    cy, cx = np.unravel_index(y[0, 0].argmax(), y.shape[2:])
    assert (cx, cy) == (10 + round(tx), 10 + round(ty))


def test_augment_preview_writes_a_grid(tmp_path, capsys):
    for label in ("real", "fake"):
        (tmp_path / "ds" / label).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(tmp_path / "ds" / label / f"{i}.png"),
                        np.full((30, 30, 3), 60 * i, np.uint8))
    out = tmp_path / "grid.png"
    assert main(["augment-preview", str(tmp_path / "ds"), "--out", str(out), "--rows", "4",
                 "--cols", "5", "--size", "16"]) == 0
    grid = cv2.imread(str(out))
    assert grid.shape == (4 * 32 + 3 * 2, 5 * 32 + 4 * 2, 3)  # tiles upscaled 2x, 2 px gaps


@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 5, 8, 8)])
def test_bad_shapes_are_refused(shape):
    with pytest.raises(ValueError, match="N, C<=4, H, W"):
        Augmenter()(np.zeros(shape, np.float32), 0)


def test_quarter_turns_rotate_square_faces_exactly_by_multiples_of_90_degrees():
    x = np.random.default_rng(0).uniform(0, 1, (40, 3, 9, 9)).astype(np.float32)
    turns = Augmenter(rotation=0, zoom=0, shift=0, shear=0, flip=False, quarter_turns=True)
    y = turns(x, 3)
    seen = set()
    for before, after in zip(x, y, strict=True):
        k = [k for k in range(4)
             if np.allclose(np.rot90(before, k, axes=(1, 2)), after, atol=1e-5)]
        assert len(k) == 1
        seen.add(k[0])
    assert seen == {0, 1, 2, 3}
