"""Data augmentation for face crops: random affine warps plus optional lighting jitter.

The settings are those of the Keras ``ImageDataGenerator`` in the tutorial the paper follows
(rotation 20 deg, zoom 0.15, width/height shift 0.2, shear 0.15, horizontal flip, "nearest"
fill). Each sample i gets its own random affine map, composed for the whole batch at once as
(N, 3, 3) homogeneous matrices acting on pixel coordinates p = (x, y, 1)::

    M_i = T(c + t_i) . R(theta_i) . S(s_i) . Z(zx_i, zy_i) . F(f_i) . T(-c)

    T(v)  translation by v          c = ((W-1)/2, (H-1)/2), the image centre
    R     rotation by theta ~ U(-rotation, rotation) degrees, plus k * 90 degrees with k
          uniform in {0, 1, 2, 3} when ``quarter_turns`` is on
    S     shear [[1, s], [0, 1]], s ~ U(-shear, shear)   (x' = x + s*y)
    Z     zoom diag(zx, zy), zx, zy ~ U(1-zoom, 1+zoom) independently (as Keras)
    F     diag(f, 1), f = -1 with probability 1/2 (horizontal flip) else 1
    t     (tx*W, ty*H), tx, ty ~ U(-shift, shift)

An output pixel p' takes the input value at M_i^-1 p' (OpenCV ``warpAffine``, bilinear), and
points that fall outside the input take the nearest edge pixel (``BORDER_REPLICATE``, Keras's
"nearest"). Bilinear interpolation of in-range values stays in range, so [0, 1] in gives [0, 1]
out. Note: Keras reads ``shear_range`` in degrees, so the tutorial's 0.15 was in effect almost
no shear; here 0.15 is the shear factor (about 8.5 degrees), the amount evidently intended.

Lighting jitter (off by default; lighting is a top cause of failure in deployed liveness
tools), per sample: contrast around the image mean by a ~ U(1-contrast, 1+contrast), colour
gain per channel g_c ~ U(1-color, 1+color), brightness offset b ~ U(-brightness, brightness),
then clipping to [0, 1]:  x' = clip(g_c * (mean + a * (x - mean)) + b, 0, 1).

Only the training batches are augmented (the ``transform`` hook of ``Sequential.fit``); labels
are untouched, since a warped or re-lit face is still the same kind of face.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import cv2
import numpy as np

from liveness.data import LABELS, find_images, read_image, write_png
from liveness.errors import UserError
from liveness.preprocess import to_input


def _matrix(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray,
            tx: np.ndarray | float = 0.0, ty: np.ndarray | float = 0.0) -> np.ndarray:
    """(N, 3, 3) homogeneous matrices [[a, b, tx], [c, d, ty], [0, 0, 1]] from (N,) arrays."""
    n = len(a)
    m = np.zeros((n, 3, 3))
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = a, b, tx
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = c, d, ty
    m[:, 2, 2] = 1.0
    return m


@dataclass(frozen=True)
class Augmenter:
    """Random affine warps and lighting jitter for NCHW batches in [0, 1] (see module doc).

    ``aug(x_batch, rng) -> new batch`` has the signature of ``Sequential.fit``'s ``transform``.
    Setting every range to 0 and ``flip=False`` gives the identity.
    """

    rotation: float = 20.0
    zoom: float = 0.15
    shift: float = 0.2
    shear: float = 0.15
    flip: bool = True
    quarter_turns: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    color: float = 0.0

    def matrices(self, n: int, height: int, width: int,
                 rng: np.random.Generator) -> np.ndarray:
        """The (n, 3, 3) maps M_i from input to output pixel coordinates."""
        degrees = rng.uniform(-self.rotation, self.rotation, n)
        if self.quarter_turns:
            degrees += 90 * rng.integers(0, 4, n)
        theta = np.deg2rad(degrees)
        zx, zy = rng.uniform(1 - self.zoom, 1 + self.zoom, (2, n))
        s = rng.uniform(-self.shear, self.shear, n)
        tx, ty = rng.uniform(-self.shift, self.shift, (2, n)) * np.array([[width], [height]])
        f = np.where(rng.random(n) < 0.5, -1.0, 1.0) if self.flip else np.ones(n)
        one, zero = np.ones(n), np.zeros(n)
        cx, cy = (width - 1) / 2, (height - 1) / 2
        cos, sin = np.cos(theta), np.sin(theta)
        return (_matrix(one, zero, zero, one, cx + tx, cy + ty)
                @ _matrix(cos, -sin, sin, cos)
                @ _matrix(one, s, zero, one)
                @ _matrix(zx, zero, zero, zy)
                @ _matrix(f, zero, zero, one)
                @ _matrix(one, zero, zero, one, -cx, -cy))

    def __call__(self, x: np.ndarray, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Augment a batch ``x`` (N, C, H, W), C <= 4, values in [0, 1]; returns a new float32
        batch of the same shape, sample i made from input sample i."""
        if x.ndim != 4 or x.shape[1] > 4:
            raise ValueError(f"expected an (N, C<=4, H, W) batch, got shape {x.shape}")
        rng = np.random.default_rng(rng)
        n, _, h, w = x.shape
        m = self.matrices(n, h, w, rng)
        nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1), dtype=np.float32)
        out = np.empty_like(nhwc)
        for i in range(n):
            warped = cv2.warpAffine(nhwc[i], m[i, :2], (w, h), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
            out[i] = warped.reshape(out[i].shape)  # cv2 drops a size-1 channel axis
        out = out.transpose(0, 3, 1, 2)
        if self.brightness or self.contrast or self.color:
            a = rng.uniform(1 - self.contrast, 1 + self.contrast, (n, 1, 1, 1))
            g = rng.uniform(1 - self.color, 1 + self.color, (n, out.shape[1], 1, 1))
            b = rng.uniform(-self.brightness, self.brightness, (n, 1, 1, 1))
            mean = out.mean(axis=(1, 2, 3), keepdims=True)
            out = np.clip(g * (mean + a * (out - mean)) + b, 0, 1)
        return np.ascontiguousarray(out, dtype=np.float32)


def preview_grid(images: np.ndarray, labels: np.ndarray, augmenter: Augmenter, cols: int,
                 rng: np.random.Generator, scale: int = 2) -> np.ndarray:
    """One row per image: the original, then ``cols - 1`` augmentations. BGR uint8 grid with
    2 px gaps, each tile upscaled ``scale`` x, the class written on the original."""
    n, _, s, _ = images.shape
    rows = []
    for img, label in zip(images, labels, strict=True):
        batch = augmenter(np.repeat(img[None], cols - 1, axis=0), rng)
        tiles = np.concatenate([img[None], batch])  # (cols, 3, s, s) RGB
        tiles = (tiles.transpose(0, 2, 3, 1)[..., ::-1] * 255 + 0.5).astype(np.uint8)
        tiles = [cv2.resize(t, (s * scale, s * scale), interpolation=cv2.INTER_NEAREST)
                 for t in tiles]
        name = next(k for k, v in LABELS.items() if v == label)
        cv2.putText(tiles[0], name, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                    cv2.LINE_AA)
        gap = np.full((s * scale, 2, 3), 255, np.uint8)
        rows.append(np.hstack([x for t in tiles for x in (t, gap)][:-1]))
    hgap = np.full((2, rows[0].shape[1], 3), 255, np.uint8)
    return np.vstack([x for r in rows for x in (r, hgap)][:-1])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", metavar="DATASET", help="dataset folder (real/ and fake/)")
    parser.add_argument("--out", default="augment_preview.png",
                        help="grid PNG to write (default augment_preview.png)")
    parser.add_argument("--rows", type=int, default=8, help="images (half real, half fake)")
    parser.add_argument("--cols", type=int, default=8, help="original + cols-1 augmentations")
    parser.add_argument("--size", type=int, default=64, help="tile side in pixels (default 64)")
    parser.add_argument("--jitter", type=float, default=0.0,
                        help="brightness/contrast/colour jitter amount, e.g. 0.2 (default 0)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if args.rows < 1 or args.cols < 2:
        raise UserError("need --rows >= 1 and --cols >= 2")
    rng = np.random.default_rng(args.seed)
    files = find_images(args.dataset)
    chosen, labels = [], []
    for label in (LABELS["real"], LABELS["fake"]):
        want, picked = (args.rows + (label == LABELS["real"])) // 2, 0
        for i in rng.permutation([i for i, f in enumerate(files) if f[1] == label]):
            if picked == want:
                break
            img = read_image(files[i][0])
            if img is not None:
                chosen.append(img)
                labels.append(label)
                picked += 1
    aug = Augmenter(brightness=args.jitter, contrast=args.jitter, color=args.jitter)
    grid = preview_grid(to_input(chosen, args.size), np.array(labels), aug, args.cols, rng)
    write_png(args.out, grid)
    print(f"wrote {args.out}: {len(labels)} images x {args.cols - 1} augmentations")
    return 0
