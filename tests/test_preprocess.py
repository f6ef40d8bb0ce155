"""The one preprocessing path: crop with margin, resize, RGB [0, 1] NCHW, normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from liveness.faces import Box
from liveness.preprocess import (
    Preprocessing,
    crop_face,
    normalize,
    preprocess,
    preprocess_faces,
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
