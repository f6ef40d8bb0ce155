"""The one preprocessing path: crop with margin, resize, RGB [0, 1] NCHW, normalisation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from liveness.faces import Box
from liveness.preprocess import (
    Preprocessing,
    crop_face,
    grid_patches,
    network_input,
    normalize,
    preprocess,
    preprocess_faces,
    random_views,
    shrink,
    to_input,
)


def frame(h=40, w=60) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_crop_face_margin_and_clipping():
    f = frame()
    np.testing.assert_array_equal(crop_face(f, Box(10, 5, 20, 10)), f[5:15, 10:30])
    np.testing.assert_array_equal(crop_face(f, Box(10, 5, 20, 10), margin=0.25),
                                  f[3:17, 5:35])  # 5 px wider, round(2.5) = 2 px taller
    np.testing.assert_array_equal(crop_face(f, Box(50, 30, 20, 20), margin=0.5),
                                  f[20:40, 40:60])  # clipped at the bottom-right corner


def test_to_input_is_rgb_unit_nchw():
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 0] = 255  # blue
    gray = np.full((5, 7), 51, np.uint8)
    x = to_input([bgr, gray], 4)
    assert x.shape == (2, 3, 4, 4) and x.dtype == np.float32
    assert (x[0, 2] == 1).all() and (x[0, :2] == 0).all()
    np.testing.assert_allclose(x[1], 0.2, rtol=1e-6)


def test_normalize():
    x = np.random.default_rng(1).random((3, 3, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(normalize(x, "unit"), x)
    z = normalize(x, "standardize")
    np.testing.assert_allclose(z.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(1, 2, 3)), 1, rtol=1e-4)
    with pytest.raises(ValueError, match="unknown normalization"):
        normalize(x, "zscore")


def test_preprocessing_settings_round_trip_and_validate():
    pp = Preprocessing(size=24, margin=0.1, normalization="standardize")
    assert Preprocessing.from_dict(pp.to_dict()) == pp
    with pytest.raises(ValueError):
        Preprocessing(normalization="minmax")
    with pytest.raises(ValueError):
        Preprocessing(margin=-0.1)


def test_preprocess_faces_equals_preprocess_of_the_crops():
    f, boxes = frame(), [Box(10, 5, 20, 20), Box(30, 10, 16, 16)]
    pp = Preprocessing(size=8, margin=0.2)
    expected = preprocess([crop_face(f, b, 0.2) for b in boxes], pp)
    np.testing.assert_array_equal(preprocess_faces(f, boxes, pp), expected)


def faces(n=2, side=12) -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 1, (n, 3, side, side)).astype(np.float32)


def test_grid_patches_tile_the_face_row_by_row():
    f = faces(side=12)
    patches = grid_patches(f, 4, 3).reshape(2, 3, 3, 3, 4, 4)  # (face, row, col, C, 4, 4)
    tiled = patches.transpose(0, 3, 1, 4, 2, 5).reshape(2, 3, 12, 12)
    np.testing.assert_array_equal(tiled, f)


def test_grid_patches_overlap_from_corner_to_corner_and_one_is_centred():
    f = faces(side=10)
    p = grid_patches(f, 4, 3).reshape(2, 9, 3, 4, 4)
    np.testing.assert_array_equal(p[:, 0], f[:, :, 0:4, 0:4])
    np.testing.assert_array_equal(p[:, 4], f[:, :, 3:7, 3:7])  # rint(linspace(0, 6, 3)) = 0, 3, 6
    np.testing.assert_array_equal(p[:, 8], f[:, :, 6:10, 6:10])
    np.testing.assert_array_equal(grid_patches(f, 4, 1), f[:, :, 3:7, 3:7])


def test_random_views_are_windows_of_their_own_face_at_varied_places():
    f = faces(n=64, side=8)
    p = random_views(f, Preprocessing(size=5, face_size=8), np.random.default_rng(0))
    assert p.shape == (64, 3, 5, 5)
    places = set()
    for face, patch in zip(f, p, strict=True):
        hits = [(r, c) for r in range(4) for c in range(4)
                if np.array_equal(face[:, r:r + 5, c:c + 5], patch)]
        assert len(hits) == 1
        places.add(hits[0])
    assert len(places) >= 12  # 16 places possible; 64 uniform draws miss few of them


def test_patch_mode_settings():
    pp = Preprocessing(size=8, normalization="standardize", face_size=24, grid=2)
    assert (pp.load_size, pp.views) == (24, 4)
    assert Preprocessing.from_dict(pp.to_dict()) == pp
    assert (Preprocessing(size=8).load_size, Preprocessing(size=8).views) == (8, 1)
    with pytest.raises(ValueError, match="face_size > size"):
        Preprocessing(size=8, face_size=8)
    x = network_input(faces(n=3, side=24), pp)
    assert x.shape == (12, 3, 8, 8)  # 4 consecutive views per face, each standardised
    np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    crops = [frame(30, 20), frame(50, 50)]
    assert preprocess(crops, pp).shape == (8, 3, 8, 8)


def test_whole_face_view_last_and_half_of_the_training_views():
    pp = Preprocessing(size=4, face_size=12, grid=3, whole=True)
    f = faces(n=3, side=12)
    whole = shrink(f, 4)
    np.testing.assert_allclose(whole, f.reshape(3, 3, 4, 3, 4, 3).mean(axis=(3, 5)), atol=1e-6)
    assert pp.views == 10 and Preprocessing.from_dict(pp.to_dict()) == pp
    x = network_input(f, replace(pp, normalization="unit")).reshape(3, 10, 3, 4, 4)
    np.testing.assert_array_equal(x[:, :9].reshape(-1, 3, 4, 4), grid_patches(f, 4, 3))
    np.testing.assert_allclose(x[:, 9], whole, atol=1e-6)
    many = faces(n=400, side=12)
    views = random_views(many, pp, np.random.default_rng(0))
    is_whole = np.isclose(views, shrink(many, 4), atol=1e-6).all(axis=(1, 2, 3))
    assert 150 < is_whole.sum() < 250
