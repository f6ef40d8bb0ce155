"""The built-in SYNTHETIC liveness set: drawn faces ("real") and the same faces replayed ("fake").

A user on a fresh machine has no recordings yet, so ``liveness synth`` (and the quickstart) make a
labelled set with no download. Everything written here is synthetic and named so (file names
start with ``synthetic_``, and a ``README.txt`` says so); it exercises the tool end to end, it is
not a substitute for recordings of real people and real attacks.

"Real" samples are faces drawn procedurally -- varied skin tone, head shape, pose, expression,
hair, lighting and background -- plus matplotlib's public-domain portrait of Grace Hopper
(``grace_hopper.jpg``, shipped in matplotlib's wheel) as a photographic face, each seen by a
simulated webcam (blur, white balance, sensor noise, JPEG).

"Fake" samples are the same scenes shown on a simulated screen and filmed again, which adds the
cues real replay attacks leave:

* the display's pixel grid (R, G, B sub-pixel stripes), resampled by the camera at a pitch that
  does not match it -> aliasing, seen as moire bands;
* the display's tone curve: lifted blacks, compressed contrast, a gamma change and a colour cast;
* defocus blur (the screen is not where the camera focuses), specular glare on the glass;
* the bezel of the phone or monitor and the room behind it.

Each cue has a random strength, and the real camera also varies in blur, colour and noise, so the
task is learnable by a small CNN but not trivial. Faces in the camera frame have the same size
distribution in both classes (no "fakes are smaller" shortcut). Crops are cut where OpenCV's Haar
cascade finds the face, exactly as ``liveness gather`` cuts them from a video.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from liveness.data import write_png
from liveness.faces import Box, make_detector
from liveness.preprocess import crop_face
from scratchnet.io import atomic_write

# Skin tones from very light to very dark (RGB), interpolated at random.
SKIN_RGB = np.array([(255, 224, 196), (241, 194, 125), (224, 172, 105), (198, 134, 66),
                     (141, 85, 36), (94, 58, 35)], dtype=np.float32) / 255
HAIR_RGB = np.array([(20, 16, 14), (60, 40, 25), (110, 75, 40), (190, 150, 90), (150, 150, 150),
                     (120, 45, 20)], dtype=np.float32) / 255
IRIS_RGB = np.array([(60, 40, 25), (30, 20, 15), (70, 110, 160), (80, 120, 80)],
                    dtype=np.float32) / 255
GRACE_FRACTION = 0.1  # share of "real" samples that are the Grace Hopper photograph
README = """SYNTHETIC liveness data written by `liveness synth` (liveness.synthetic).
real/: procedurally drawn faces and matplotlib's Grace Hopper sample photo, seen by a simulated
camera.
fake/: the same scenes replayed on a simulated screen (pixel grid, moire, tone curve, glare, bezel).
No real person was recorded. Use it to try the tool; train on real recordings for real use.
"""


def _rgb_to_bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[..., ::-1])


def _pick(rng: np.random.Generator, palette: np.ndarray) -> np.ndarray:
    """A random colour between two neighbouring palette entries, as BGR."""
    i = rng.integers(len(palette) - 1)
    t = rng.random()
    return _rgb_to_bgr((1 - t) * palette[i] + t * palette[i + 1])


@dataclass(frozen=True)
class FaceParams:
    """One drawn identity and its pose/expression. Colours are BGR in [0, 1]."""

    skin: np.ndarray
    hair: np.ndarray
    iris: np.ndarray
    lips: np.ndarray
    clothes: np.ndarray
    hair_style: int  # 0 none, 1 short, 2 long
    elongation: float  # head half-height / half-width
    yaw: float  # radians, turning left/right
    roll: float  # degrees, in-plane tilt
    eye_open: float  # 1 open, ~0 blink
    brow_raise: float
    smile: float  # -1 frown .. 1 smile
    mouth_open: float  # 0 closed .. 1 open
    light: tuple[float, float, float]  # unit direction (x right, y down, z to camera)
    ambient: float
    background_seed: int


def random_face(rng: np.random.Generator) -> FaceParams:
    """A random identity with a random (near-frontal) pose, expression and lighting."""
    az, el = rng.uniform(-1.0, 1.0), rng.uniform(-0.5, 0.3)
    light = (math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el))
    skin = _pick(rng, SKIN_RGB)
    lips = skin * np.float32([0.7, 0.55, 0.9]) * np.float32(rng.uniform(0.75, 1.0))  # BGR
    return FaceParams(
        skin=skin, hair=_pick(rng, HAIR_RGB), iris=_pick(rng, IRIS_RGB), lips=lips,
        clothes=rng.random(3).astype(np.float32),
        hair_style=int(rng.integers(3)), elongation=rng.uniform(1.2, 1.4),
        yaw=rng.uniform(-0.3, 0.3), roll=rng.uniform(-10, 10), eye_open=rng.uniform(0.6, 1.0),
        brow_raise=rng.uniform(-0.3, 1.0), smile=rng.uniform(-0.5, 1.0),
        mouth_open=rng.uniform(0, 0.6) * (rng.random() < 0.4), light=light,
        ambient=rng.uniform(0.35, 0.65), background_seed=int(rng.integers(2**31)),
    )


def repose(p: FaceParams, rng: np.random.Generator, amount: float = 1.0) -> FaceParams:
    """The same identity with a slightly different pose and expression."""
    return replace(
        p, yaw=float(np.clip(p.yaw + amount * rng.uniform(-0.1, 0.1), -0.35, 0.35)),
        roll=p.roll + amount * rng.uniform(-3, 3),
        smile=float(np.clip(p.smile + amount * rng.uniform(-0.3, 0.3), -0.5, 1.0)),
    )


# ---------------------------------------------------------------- drawing primitives (float BGR)

def _ellipse(xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, rx: float, ry: float,
             angle: float = 0.0) -> np.ndarray:
    """Anti-aliased filled ellipse as an alpha map in [0, 1] (about one pixel of soft edge)."""
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = xs - cx, ys - cy
    u, v = (dx * c + dy * s) / rx, (dy * c - dx * s) / ry
    return np.clip((1 - np.sqrt(u * u + v * v)) * min(rx, ry) + 0.5, 0, 1)


def _paint(img: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> None:
    """Blend ``color`` over ``img`` in place with per-pixel ``alpha``."""
    img += alpha[..., None] * (color - img)


class _Canvas:
    """Pixel coordinates of an image region whose top-left pixel is (x0, y0).

    Shapes are evaluated only inside their bounding window, which keeps drawing fast.
    """

    def __init__(self, x0: int, y0: int, w: int, h: int) -> None:
        self.x0, self.y0, self.w, self.h = x0, y0, w, h
        self.xs = np.arange(x0, x0 + w, dtype=np.float32)[None, :]
        self.ys = np.arange(y0, y0 + h, dtype=np.float32)[:, None]

    def window(self, cx: float, cy: float, rx: float, ry: float) -> tuple[slice, slice]:
        """Local rows and columns that a shape centred at (cx, cy) with radii rx, ry can touch."""
        x, y = cx - self.x0, cy - self.y0
        return (slice(min(self.h, max(0, int(y - ry) - 1)), max(0, min(self.h, int(y + ry) + 3))),
                slice(min(self.w, max(0, int(x - rx) - 1)), max(0, min(self.w, int(x + rx) + 3))))

    def ellipse(self, cx: float, cy: float, rx: float, ry: float,
                angle: float = 0.0) -> tuple[tuple[slice, slice], np.ndarray]:
        win = self.window(cx, cy, max(rx, ry), max(rx, ry))
        return win, _ellipse(self.xs[:, win[1]], self.ys[win[0]], cx, cy, rx, ry, angle)

    def fill(self, img: np.ndarray, color: np.ndarray, cx: float, cy: float, rx: float,
             ry: float, angle: float = 0.0) -> None:
        """Paint a filled ellipse of ``color`` into ``img`` (an array covering this canvas)."""
        win, alpha = self.ellipse(cx, cy, rx, ry, angle)
        _paint(img[win], alpha, color)

    def shade(self, shade: np.ndarray, gain: float, cx: float, cy: float, rx: float,
              ry: float) -> None:
        """Multiply ``shade`` by 1 + gain * exp(-((x-cx)/rx)^2 - ((y-cy)/ry)^2) (a soft bump)."""
        win = self.window(cx, cy, 2.5 * rx, 2.5 * ry)
        xs, ys = self.xs[:, win[1]], self.ys[win[0]]
        shade[win] *= 1 + gain * np.exp(-(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2))


def background(seed: int, w: int, h: int) -> np.ndarray:
    """A smooth "room" (low-resolution colour noise, upsampled), the same look at any size."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.15, 0.85) + rng.uniform(-0.12, 0.12, 3)  # a muted wall colour
    cells = base + rng.uniform(-0.2, 0.2, (int(rng.integers(2, 6)), int(rng.integers(2, 6)), 1))
    cells = cells + rng.uniform(-0.06, 0.06, cells.shape[:2] + (3,))
    room = cv2.resize(np.clip(cells, 0, 1).astype(np.float32), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.5:  # a door frame or shelf edge
        x = int(rng.uniform(0.05, 0.95) * w)
        room[:, x:x + max(2, w // 25)] *= rng.uniform(0.5, 0.8)
    return np.clip(room, 0, 1)


def draw_face(img: np.ndarray, p: FaceParams, cx: float, cy: float, r: float) -> None:
    """Draw head and shoulders in place, head centre (cx, cy), head half-width ``r`` pixels.

    The head is an egg-shaped ellipsoid lit by a directional light: with (u, v) the pixel's
    position in head units and n = (u, v, sqrt(1 - u^2 - v^2)) its surface normal, the shade is
    ambient + (1 - ambient) * max(0, n . light). Eye sockets and the side of the nose get extra
    shadow: the dark-eyes / bright-cheeks / bright-nose-bridge pattern the Haar cascade looks for.
    """
    h, w = img.shape[:2]
    rh = r * p.elongation
    cyaw, syaw = math.cos(p.yaw), math.sin(p.yaw)

    def fx(u0: float) -> float:  # x of a feature at head coordinate u0 after turning by yaw
        return cx + r * (u0 * cyaw + 0.75 * syaw)

    frame = _Canvas(0, 0, w, h)
    if p.hair_style == 2:  # long hair falls behind the shoulders
        frame.fill(img, p.hair, cx, cy + 0.25 * rh, 1.25 * r, 1.2 * rh)
    frame.fill(img, p.clothes, cx, cy + 2.35 * rh, 2.3 * r, 1.2 * rh)
    frame.fill(img, p.skin * 0.7, cx + 0.3 * syaw * r, cy + 1.0 * rh, 0.55 * r, 0.7 * rh)  # neck
    for side in (-1, 1):  # ears
        frame.fill(img, p.skin * 0.8, cx + r * (side * 0.97 * cyaw + 0.15 * syaw),
                   cy + 0.05 * rh, 0.17 * r * (0.6 + 0.4 * cyaw), 0.27 * rh)
    if p.hair_style:
        frame.fill(img, p.hair, cx + 0.1 * syaw * r, cy - 0.12 * rh, 1.06 * r, 1.0 * rh)

    # Head: egg-shaped (narrower chin), shaded as an ellipsoid, drawn in its own window.
    win = frame.window(cx, cy, 1.2 * r, 1.05 * rh)
    head_canvas = _Canvas(win[1].start, win[0].start, win[1].stop - win[1].start,
                          win[0].stop - win[0].start)
    if head_canvas.w == 0 or head_canvas.h == 0:
        return
    u = (head_canvas.xs - cx - 0.1 * syaw * r) / r
    v = (head_canvas.ys - cy) / rh
    u = u / (1 - 0.22 * np.clip(v, 0, 1) ** 2)
    rr = u * u + v * v
    head = np.clip((1 - np.sqrt(rr)) * r + 0.5, 0, 1)
    nz = np.sqrt(np.clip(1 - rr, 0.02, 1))
    lx, ly, lz = p.light
    shade = p.ambient + (1 - p.ambient) * np.clip(u * lx + v * ly + nz * lz, 0, 1)
    albedo = np.broadcast_to(p.skin, head.shape + (3,)).copy()

    ey = cy - 0.12 * rh
    for side in (-1, 1):
        ex, sx = fx(side * 0.38), 1 - 0.25 * side * syaw
        head_canvas.shade(shade, -0.45, ex, ey, 0.3 * r * sx, 0.17 * rh)  # eye socket
        brow = np.minimum(p.hair, p.skin * 0.5)  # always darker than the skin, as Haar expects
        head_canvas.fill(albedo, brow, ex, ey - (0.2 + 0.06 * p.brow_raise) * rh,
                         0.27 * r * sx, 0.055 * rh, -side * 0.12)
        ry = 0.085 * rh * p.eye_open
        if p.eye_open > 0.25:
            ewin, sclera = head_canvas.ellipse(ex, ey, 0.17 * r * sx, ry)
            xs, ys = head_canvas.xs[:, ewin[1]], head_canvas.ys[ewin[0]]
            _paint(albedo[ewin], sclera, np.float32([0.92, 0.93, 0.95]))
            ix = ex + 0.04 * syaw * r
            _paint(albedo[ewin], _ellipse(xs, ys, ix, ey, 0.08 * r, 0.08 * r) * sclera, p.iris)
            _paint(albedo[ewin], _ellipse(xs, ys, ix, ey, 0.035 * r, 0.035 * r) * sclera,
                   np.float32([0.02, 0.02, 0.02]))
        head_canvas.fill(albedo, np.float32([0.1, 0.08, 0.08]), ex, ey - 0.8 * ry,
                         0.19 * r * sx, 0.025 * rh)  # upper lash line (whole eye when blinking)

    # Nose: bright bridge, shadow on the side away from the light, dark nostrils.
    nx = fx(0.0)
    head_canvas.shade(shade, 0.12, nx, cy, 0.08 * r, 0.25 * rh)
    side = 1 if lx < 0 else -1
    head_canvas.shade(shade, -0.25, nx + side * 0.1 * r, cy + 0.1 * rh, 0.06 * r, 0.2 * rh)
    head_canvas.shade(shade, -0.3, nx, cy + 0.33 * rh, 0.16 * r, 0.05 * rh)
    for s in (-1, 1):
        head_canvas.fill(albedo, p.skin * 0.35, nx + s * 0.08 * r, cy + 0.27 * rh, 0.05 * r,
                         0.03 * rh)

    # Mouth: lips between parabolas; corners go up with ``smile``; ``mouth_open`` shows a gap.
    mx, my, mw = fx(0.0), cy + 0.55 * rh, 0.33 * r * cyaw * (1 + 0.15 * p.smile)
    mwin = head_canvas.window(mx, my, mw, 0.3 * rh)
    xs, ys = head_canvas.xs[:, mwin[1]], head_canvas.ys[mwin[0]]
    t = np.clip(1 - ((xs - mx) / mw) ** 2, 0, 1)
    centre = my + 0.07 * rh * p.smile * (t - 0.5)
    gap = 0.12 * rh * p.mouth_open * np.sqrt(t)
    dy = ys - centre
    upper = np.clip(np.minimum(-dy - gap / 2, gap / 2 + 0.05 * rh * np.sqrt(t) + dy) + 0.5, 0, 1)
    lower = np.clip(np.minimum(dy - gap / 2, gap / 2 + 0.07 * rh * np.sqrt(t) - dy) + 0.5, 0, 1)
    inside = np.clip(np.minimum(gap / 2 - np.abs(dy), 0.5 * rh) + 0.5, 0, 1) * (t > 0)
    mouth = albedo[mwin]
    _paint(mouth, np.maximum(upper, lower) * (t > 0), p.lips)
    _paint(mouth, np.clip(1 - np.abs(dy), 0, 1) * (t > 0.05), p.lips * 0.4)
    _paint(mouth, inside, np.float32([0.08, 0.05, 0.05]))

    region = img[win]
    _paint(region, head, albedo * shade[..., None])
    if p.hair_style:  # fringe over the forehead
        fwin, fringe = head_canvas.ellipse(cx + 0.1 * syaw * r, cy - 0.95 * rh, 1.02 * r,
                                           0.42 * rh)
        _paint(region[fwin], fringe * head[fwin], p.hair * (0.8 + 0.2 * shade[fwin][..., None]))


def face_box(cx: float, cy: float, r: float) -> Box:
    """Where a detector's square box falls around a drawn head (calibrated on the Haar cascade)."""
    side = 1.9 * r
    return Box(round(cx - side / 2), round(cy - 0.22 * r - side / 2 + 0.35 * r), round(side),
               round(side))


def drawn_scene(p: FaceParams, w: int, h: int, cx: float, cy: float, r: float) -> np.ndarray:
    """A room with one drawn person, tilted by ``p.roll`` about the face: float BGR (h, w, 3)."""
    img = background(p.background_seed, w, h)
    draw_face(img, p, cx, cy, r)
    # Face-priority auto exposure, as webcams do: the face's mean level is brought to ~0.45
    # (so dark skin is exposed as well as light skin, within the camera's gain range).
    x, y, side, _ = face_box(cx, cy, r)
    face = img[max(0, y):y + side, max(0, x):x + side]
    if face.size:
        img *= np.float32(np.clip(0.45 / max(float(face.mean()), 1e-3), 0.7, 1.8))
    if p.roll:
        m = cv2.getRotationMatrix2D((cx, cy), p.roll, 1.0)
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT101)
    return img


@functools.cache
def _grace() -> tuple[np.ndarray, Box]:
    """matplotlib's Grace Hopper photo (float BGR) and where the Haar cascade finds her face."""
    import matplotlib.cbook

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    img = cv2.imread(str(path))
    boxes = make_detector("haar").detect(img)
    box = boxes[0] if boxes else Box(155, 105, 222, 222)
    return img.astype(np.float32) / 255, box


def grace_scene(rng: np.random.Generator, w: int, h: int, cx: float, cy: float,
                r: float) -> np.ndarray:
    """The Grace Hopper photo scaled/rotated so her face sits where a drawn head of
    half-width ``r`` centred at (cx, cy) would, with a random exposure and flip."""
    photo, b = _grace()
    if rng.random() < 0.5:  # mirror the photo (and her face box with it)
        photo = np.ascontiguousarray(photo[:, ::-1])
        b = Box(photo.shape[1] - b.x - b.w, b.y, b.w, b.h)
    target = face_box(cx, cy, r)
    scale = target.w / b.w
    m = cv2.getRotationMatrix2D((b.x + b.w / 2, b.y + b.h / 2), rng.uniform(-8, 8), scale)
    m[:, 2] += (target.x + target.w / 2 - (b.x + b.w / 2), target.y + target.h / 2
                - (b.y + b.h / 2))
    img = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT101)
    return img * np.float32(rng.uniform(0.75, 1.2))


# ---------------------------------------------------------------- camera and screen models

def camera(img: np.ndarray, rng: np.random.Generator, jpeg: bool = True) -> np.ndarray:
    """A webcam shot of a float BGR scene -> uint8: lens blur, white balance and exposure gains,
    sensor noise, and JPEG compression for stills (a video codec compresses clips anyway).

    The noise is uniform with standard deviation sd (half-width sd * sqrt(3)): as good as
    Gaussian here, and several times cheaper to draw.
    """
    sigma = rng.uniform(0.0, 0.7)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    gains = np.float32(rng.uniform(0.8, 1.2)) * rng.uniform(0.92, 1.08, 3).astype(np.float32)
    sd = np.float32(rng.uniform(0.004, 0.02))
    noise = rng.random(img.shape, dtype=np.float32)
    noise -= np.float32(0.5)
    noise *= np.float32(2 * math.sqrt(3)) * sd
    out = img * gains
    out += noise
    out *= np.float32(255)
    out += np.float32(0.5)
    np.clip(out, 0, 255, out=out)
    out = out.astype(np.uint8)
    if not jpeg:
        return out
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 96))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else out


def subpixel_grid(content: np.ndarray, dim: float = 0.25) -> np.ndarray:
    """What a display shows, magnified 3x: each pixel becomes a 3x3 cell of R, G, B stripes.

    Cell column k lights only channel k (BGR order reversed: R, G, B from the left); the last
    row of each cell is dimmed to ``dim`` (the black matrix between pixel rows). A camera that
    samples this at a pitch that does not match 3 px aliases it into moire bands.
    """
    h, w = content.shape[:2]
    big = cv2.resize(content, (3 * w, 3 * h), interpolation=cv2.INTER_NEAREST)
    mask = np.zeros((3, 3, 3), np.float32)
    for k, channel in enumerate((2, 1, 0)):  # R, G, B stripes in BGR storage
        mask[:, k, channel] = 1.0
    mask[2] *= dim
    mask *= 9 / (2 + dim)  # keep the cell's mean brightness equal to the pixel value
    return big * np.tile(mask, (h, w, 1))


@dataclass(frozen=True)
class ScreenLook:
    """How one replay device shows and reflects an image (random per attack)."""

    black: float  # lifted black level
    white: float  # peak white
    gamma: float
    cast: np.ndarray  # per-channel gain (BGR)
    pitch: float  # camera pixels per screen pixel
    optics: float  # lens blur sigma before sampling, camera px: moire amplitude ~exp(-2 pi^2 o^2)
    blur: float  # extra defocus, pixels
    glare: float  # peak glare added
    glare_pos: tuple[float, float, float, float, float]  # centre u, v; radii u, v; angle
    bezel: np.ndarray  # BGR
    bezel_width: float  # fraction of screen width


def random_look(rng: np.random.Generator) -> ScreenLook:
    """A random replay device. Displays are usually cooler (bluer) than the warm room light the
    camera is balanced for, so the colour cast leans blue, by a random amount."""
    cool = rng.uniform(0.0, 0.12)
    cast = np.array([1 + cool, 1.0, 1 - cool]) + rng.normal(0, 0.04, 3)  # BGR gains
    return ScreenLook(
        black=rng.uniform(0.02, 0.2), white=rng.uniform(0.7, 1.0), gamma=rng.uniform(0.75, 1.3),
        cast=cast.astype(np.float32), pitch=rng.uniform(0.85, 1.25), optics=rng.uniform(0.1, 0.4),
        blur=rng.uniform(0.6, 1.8),
        glare=rng.uniform(0.05, 0.5) * (rng.random() < 0.8),
        glare_pos=(rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.6),
                   rng.uniform(0.05, 0.2), rng.uniform(0, math.pi)),
        bezel=np.full(3, rng.choice([0.05, 0.12, 0.3, 0.85]), np.float32),
        bezel_width=rng.uniform(0.02, 0.08),
    )


def replay(content: np.ndarray, quad: np.ndarray, room: np.ndarray,
           look: ScreenLook) -> np.ndarray:
    """Show ``content`` (float BGR, one value per screen pixel) on a screen whose glass corners
    land at ``quad`` (4x2, clockwise from top-left, camera pixels) in front of ``room``.

    The display maps a value c to black + (white - black) * c^gamma, times the colour cast; the
    sub-pixel grid is projected with a homography and sampled bilinearly (aliasing -> moire).
    """
    h, w = room.shape[:2]
    shown = look.black + (look.white - look.black) * np.clip(content, 0, 1) ** look.gamma
    grid = subpixel_grid(shown * look.cast)
    grid = cv2.GaussianBlur(grid, (0, 0), 3 * look.optics / look.pitch)

    # Work only in the window around the phone/monitor (bezel included): the rest is the room.
    centre = quad.mean(axis=0)
    bezel_quad = centre + (quad - centre) * (1 + 2 * look.bezel_width)
    x0, y0 = np.clip(np.floor(bezel_quad.min(axis=0)).astype(int) - 2, 0, None)
    x1, y1 = np.minimum(np.ceil(bezel_quad.max(axis=0)).astype(int) + 3, (w, h))
    out = room.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    origin = np.float32([x0, y0])
    gh, gw = grid.shape[:2]
    src = np.float32([[0, 0], [gw, 0], [gw, gh], [0, gh]])
    hom = cv2.getPerspectiveTransform(src, np.float32(quad - origin))
    size = (int(x1 - x0), int(y1 - y0))
    screen = cv2.warpPerspective(grid, hom, size, flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones((gh, gw), np.float32), hom, size, flags=cv2.INTER_LINEAR)

    win = out[y0:y1, x0:x1]
    cv2.fillConvexPoly(win, (bezel_quad - origin).astype(np.int32), look.bezel.tolist(),
                       lineType=cv2.LINE_AA)
    win = win * (1 - mask[..., None]) + screen

    if look.glare > 0:  # an elongated soft highlight on the glass
        gu, gv, ru, rv, ang = look.glare_pos
        local = quad - origin
        top, bottom = (1 - gu) * local[0] + gu * local[1], (1 - gu) * local[3] + gu * local[2]
        gx, gy = (1 - gv) * top + gv * bottom
        side = float(np.linalg.norm(quad[1] - quad[0]))
        ys, xs = np.ogrid[0:size[1], 0:size[0]]
        xs, ys = xs.astype(np.float32) - gx, ys.astype(np.float32) - gy
        c, s = math.cos(ang), math.sin(ang)
        du, dv = (xs * c + ys * s) / (ru * side), (ys * c - xs * s) / (rv * side)
        win += (np.float32(look.glare) * np.exp(-(du * du + dv * dv)) * mask)[..., None]
    if look.blur > 0.3:
        win = cv2.GaussianBlur(win, (0, 0), look.blur)
    out[y0:y1, x0:x1] = win
    return out


def halftone(cmy: np.ndarray, period: float, rng: np.random.Generator) -> np.ndarray:
    """Ink coverage of each channel (float, 0 = paper) printed as a halftone screen.

    Channel k is compared with a dot screen ``s(u, v) = 0.5 + 0.25 (cos 2 pi u/period +
    cos 2 pi v/period)`` in coordinates (u, v) rotated by the channel's screen angle (15, 75
    and 0 degrees plus a random offset, as colour printers do to avoid moire between inks):
    ink where coverage > s, paper elsewhere, so a 40% grey becomes dots covering ~40%.
    """
    h, w = cmy.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty_like(cmy)
    turn = rng.uniform(0, 90)
    for k, angle in enumerate((15.0, 75.0, 0.0)):
        a = math.radians(angle + turn)
        u = (xs * math.cos(a) + ys * math.sin(a)) * (2 * math.pi / period)
        v = (ys * math.cos(a) - xs * math.sin(a)) * (2 * math.pi / period)
        screen = 0.5 + 0.25 * (np.cos(u) + np.cos(v))
        out[..., k] = cmy[..., k] > screen
    return out


def print_attack(face_bgr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A face crop (BGR uint8) printed on paper and held up to the camera: a simulated print
    attack, for measuring a model on an attack type the shared recordings do not have.

    Printer: colours pulled towards grey (saturation x U(0.6, 0.9)), tones mapped between ink
    black (U(0.06, 0.2)) and paper white (U(0.8, 0.95)), a halftone screen (period U(2.5, 4)
    px), blurred and mixed with the continuous tone (the camera does not resolve every dot),
    and paper grain. Then the sheet: lit unevenly (a linear gradient of up to +-25% across
    it), slightly tilted (corners moved by up to 4% of the side), and shot by :func:`camera`.
    """
    img = face_bgr.astype(np.float32) / 255
    h, w = img.shape[:2]
    grey = img.mean(axis=2, keepdims=True)
    img = grey + rng.uniform(0.6, 0.9) * (img - grey)
    ink, paper = rng.uniform(0.06, 0.2), rng.uniform(0.8, 0.95)
    dots = cv2.GaussianBlur(1 - halftone(1 - img, rng.uniform(2.5, 4.0), rng), (0, 0),
                            rng.uniform(0.5, 0.9))
    mix = np.float32(rng.uniform(0.15, 0.4))
    img = ink + (paper - ink) * (mix * dots + (1 - mix) * img)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 0.8)
    img *= (1 + rng.uniform(0.01, 0.04) * grain)[..., None]
    gx, gy = rng.uniform(-0.25, 0.25, 2)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    img *= (1 + gx * (xs / w - 0.5) * 2 + gy * (ys / h - 0.5) * 2)[..., None]
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = (corners + rng.uniform(-0.04, 0.04, (4, 2)) * (w, h)).astype(np.float32)
    img = cv2.warpPerspective(img, cv2.getPerspectiveTransform(corners, moved), (w, h),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return camera(img.astype(np.float32), rng)


# ---------------------------------------------------------------- samples, dataset, videos

FRAME = 176  # side of the square camera frame a dataset sample is cut from


def screen_quad(cx: float, cy: float, half_w: float, half_h: float, degrees: float,
                corner_scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Corners (4x2 float32, clockwise from top-left) of a screen centred at (cx, cy), rotated by
    ``degrees``; ``corner_scale`` (4x1) moves corners in or out, a mild perspective."""
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * (half_w, half_h) * corner_scale
    return (corners @ rot.T + (cx, cy)).astype(np.float32)


def sample_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, Box]:
    """One scene filmed directly (real) and replayed on a screen (fake): two uint8 BGR frames of
    FRAME x FRAME pixels with the face at the same place and size, and that face's box."""
    r = rng.uniform(34, 52)  # head half-width in camera pixels (same for both classes)
    cx, cy = FRAME / 2 + rng.uniform(-10, 10), FRAME / 2 + rng.uniform(-8, 4)
    grace = rng.random() < GRACE_FRACTION
    params = random_face(rng)
    if grace:
        real_scene = grace_scene(rng, FRAME, FRAME, cx, cy, r)
    else:
        real_scene = drawn_scene(params, FRAME, FRAME, cx, cy, r)
    real = camera(real_scene, rng)

    # The screen: a rectangle around the face (padding varies, so the bezel is sometimes close),
    # slightly rotated and in perspective; content rendered at the screen's own resolution.
    look = random_look(rng)
    half_w, half_h = r * rng.uniform(1.5, 2.6), r * rng.uniform(1.8, 2.8)
    quad = screen_quad(cx, cy, half_w, half_h, rng.uniform(-6, 6),
                       1 + rng.uniform(-0.04, 0.04, (4, 1)))
    sw, sh = max(8, round(2 * half_w / look.pitch)), max(8, round(2 * half_h / look.pitch))
    k = sw / (2 * half_w)  # screen pixels per camera pixel
    scx, scy, sr = sw / 2, sh / 2, r * k
    if grace:
        content = grace_scene(rng, sw, sh, scx, scy, sr)
    else:
        content = drawn_scene(repose(params, rng), sw, sh, scx, scy, sr)
    room = background(int(rng.integers(2**31)), FRAME, FRAME) * np.float32(rng.uniform(0.5, 1.1))
    fake = camera(replay(content, quad, room, look), rng)
    return real, fake, face_box(cx, cy, r)


def _crop(detector, frame: np.ndarray) -> np.ndarray | None:
    boxes = detector.detect(frame)
    return crop_face(frame, boxes[0]) if boxes else None


def write_dataset(out_dir: str | Path, n_per_class: int = 200,
                  seed: int = 0) -> dict[str, list[Path]]:
    """Write ``n_per_class`` synthetic face crops to ``out_dir/real`` and ``out_dir/fake``.

    Each crop is cut where the Haar cascade finds the face in the simulated camera frame (as
    ``liveness gather`` would); scenes where it finds no face are replaced by new ones.
    Returns ``{"real": [paths], "fake": [paths]}``. Same seed -> same files.
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    detector = make_detector("haar", min_size=60)
    paths: dict[str, list[Path]] = {"real": [], "fake": []}
    attempts = 0
    while min(len(v) for v in paths.values()) < n_per_class:
        attempts += 1
        if attempts > 4 * n_per_class + 20:
            raise RuntimeError("the Haar cascade misses most synthetic faces; check OpenCV")
        frames = sample_pair(rng)[:2]
        for label, frame in zip(("real", "fake"), frames, strict=True):
            if len(paths[label]) >= n_per_class:
                continue
            crop = _crop(detector, frame)
            if crop is None:
                continue
            path = out_dir / label / f"synthetic_{label}_{len(paths[label]):04d}.png"
            write_png(path, crop)
            paths[label].append(path)
    with atomic_write(out_dir / "README.txt", "w") as f:
        f.write(README)
    return paths


def video_writer(path: Path, fps: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, Path]:
    """An MP4 (mp4v) writer, or MJPG AVI when this OpenCV build cannot write MP4."""
    writer = cv2.VideoWriter(str(path.with_suffix(".mp4")), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                             size)
    if writer.isOpened():
        return writer, path.with_suffix(".mp4")
    writer = cv2.VideoWriter(str(path.with_suffix(".avi")), cv2.VideoWriter_fourcc(*"MJPG"), fps,
                             size)
    if not writer.isOpened():
        raise RuntimeError(f"this OpenCV build cannot write video to {path.parent}")
    return writer, path.with_suffix(".avi")


def write_videos(out_dir: str | Path, seconds: float = 4.0, fps: float = 15.0, seed: int = 0,
                 size: tuple[int, int] = (640, 480)) -> dict[str, Path]:
    """Write a synthetic person moving in front of a webcam (real) and the same clip replayed
    on a phone held up to the webcam (fake). Returns ``{"real": path, "fake": path}``.

    The person drifts, turns, tilts, blinks and talks; the phone shakes in the attacker's hand.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    person = random_face(rng)
    look = random_look(rng)
    # A clip is one attack with one device: keep its artefacts moderate so the cascade finds
    # the face in most frames (the still set covers the extremes).
    look = replace(look, glare=float(np.clip(look.glare, 0.15, 0.35)),
                   optics=max(look.optics, 0.3), blur=min(look.blur, 1.2))
    room = background(int(rng.integers(2**31)), w, h)
    n = max(1, round(seconds * fps))
    phone_h = 0.9 * h
    phone_w = 0.56 * phone_h
    sw, sh = round(phone_w / look.pitch), round(phone_h / look.pitch)
    paths = {}
    for label in ("real", "fake"):
        writer, tmp = video_writer(out_dir / f".synthetic_{label}.part", fps, (w, h))
        frame_rng = np.random.default_rng([seed, int(label == "fake")])
        try:
            for i in range(n):
                t = i / fps
                p = replace(person, yaw=0.25 * math.sin(1.3 * t), roll=5 * math.sin(0.9 * t),
                            eye_open=0.15 if (t % 2.7) < 0.15 else 0.9,
                            mouth_open=0.3 * (1 + math.sin(9 * t)) * ((t % 3) > 1.5))
                if label == "real":
                    r = h * (0.15 + 0.01 * math.sin(0.7 * t))
                    cx = w / 2 + 0.15 * w * math.sin(0.8 * t)
                    cy = h / 2 + 0.05 * h * math.sin(1.1 * t)
                    scene = drawn_scene(p, w, h, cx, cy, r)
                else:
                    content = drawn_scene(p, sw, sh, sw / 2, sh * 0.45, sw * 0.3)
                    quad = screen_quad(w / 2 + 4 * math.sin(5 * t), h / 2 + 3 * math.cos(4 * t),
                                       phone_w / 2, phone_h / 2, 2 * math.sin(3 * t))
                    scene = replay(content, quad, room, look)
                writer.write(camera(scene, frame_rng, jpeg=False))
        finally:
            writer.release()
        paths[label] = out_dir / f"synthetic_{label}{tmp.suffix}"
        os.replace(tmp, paths[label])  # appears complete or not at all
    return paths


# ---------------------------------------------------------------- command line

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder to write real/, fake/ (and videos/)")
    parser.add_argument("--n", type=int, default=200,
                        help="crops per class (default 200; 0 with --videos: videos only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--videos", action="store_true",
                        help="also write videos/synthetic_real.mp4 and synthetic_fake.mp4")
    parser.add_argument("--seconds", type=float, default=4.0, help="video length (default 4)")
    parser.add_argument("--fps", type=float, default=15.0, help="video frame rate (default 15)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.n > 0:
        paths = write_dataset(out, args.n, args.seed)
        print(f"wrote {len(paths['real'])} real and {len(paths['fake'])} fake SYNTHETIC crops "
              f"to {out}/real and {out}/fake")
    if args.videos:
        videos = write_videos(out / "videos", args.seconds, args.fps, args.seed)
        print("wrote SYNTHETIC videos: " + ", ".join(str(p) for p in videos.values()))
    return 0
