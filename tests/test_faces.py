"""The face-detector interface: specs, errors, the Haar default, order and downscaling."""

from __future__ import annotations

import cv2
import matplotlib.cbook
import numpy as np
import pytest

from liveness.errors import UserError
from liveness.faces import Box, HaarDetector, make_detector


@pytest.fixture(scope="module")
def grace() -> np.ndarray:
    return cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))


def test_specs_build_the_right_detector():
    assert make_detector("haar").scale_factor == 1.1
    d = make_detector("haar:1.3", min_size=60)
    assert isinstance(d, HaarDetector) and d.scale_factor == 1.3 and d.min_size == 60


@pytest.mark.parametrize("spec, message", [
    ("haar:fast", "use haar or haar:SCALE"),
    ("yunet:/no/such/model.onnx", "not found"),
    ("/no/such/model.onnx", "not found"),
    ("mtcnn", "unknown detector"),
])
def test_bad_specs_are_user_errors(spec, message):
    with pytest.raises(UserError, match=message):
        make_detector(spec)


def test_haar_finds_one_face_in_the_portrait(grace):
    (box,) = make_detector("haar").detect(grace)
    x, y, w, h = box
    assert 150 < w < 300 and w == h  # Haar boxes are square
    assert 0 <= x and x + w <= grace.shape[1] and 0 <= y and y + h <= grace.shape[0]


def test_boxes_come_largest_first_and_blank_frames_give_none(grace):
    small = cv2.resize(grace, (256, 300))
    canvas = np.zeros((600, 512 + 256, 3), np.uint8)
    canvas[:, :512], canvas[150:450, 512:] = grace, small
    boxes = make_detector("haar").detect(canvas)
    assert len(boxes) == 2 and boxes[0].area > boxes[1].area and boxes[0].x < 512
    assert make_detector("haar").detect(np.zeros((240, 320, 3), np.uint8)) == []


def test_downscaled_detection_maps_boxes_back_to_full_size(grace):
    full = HaarDetector().detect(grace)[0]
    fast = HaarDetector(downscale=256).detect(grace)[0]
    assert abs(fast.x - full.x) < 0.1 * full.w and abs(fast.w - full.w) < 0.15 * full.w


def test_box_area():
    assert Box(1, 2, 3, 4).area == 12
