"""``liveness explain``: what the network sees, and which pixels drove its decision.

For every face image one PNG, readable at a glance:

* the face as loaded, and the ``size`` x ``size`` input the network actually sees (after the
  model's own preprocessing, :mod:`liveness.preprocess`);
* a **saliency map**: the gradient of the real-class probability with respect to the input
  pixels, ``s = dP(real)/dx`` (shape ``(3, S, S)``), computed with scratchnet's own backward
  pass: an eval-mode forward, then ``dout = one-hot(real)`` fed backward through every layer,
  the final Softmax included. Shown as ``max_c |s[c]|`` over the face (where the network looks,
  Simonyan et al. 2014) and as ``sum_c s[c]`` (red: brightening the pixel raises P(real), blue:
  it lowers it). With two classes ``dP(real)/dx = P(1 - P) d(z_real - z_fake)/dx``, so the map
  has the pattern of the logit margin, scaled down when the network is confident;
* the first-layer filters (each one an RGB 3x3 patch, mid-gray = 0);
* the feature maps after each convolution block and each pooling layer, obtained by running
  the network layer by layer (``for layer in net.layers``); the most active channels are shown.

With more than one image, ``mean_saliency.png`` adds the mean saliency map of each folder:
single maps are speckled, the mean over a recording shows when a model keys on a screen bezel,
a play-button overlay or the background instead of the face.

The functions :func:`forward_backward`, :func:`explain_image`, :func:`render` and
:func:`render_mean_saliency` are what the command uses, and what tests and notebooks can call.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import scratchnet as sn
from liveness.data import IMAGE_SUFFIXES, read_image
from liveness.errors import UserError
from liveness.net import CLASSES, REAL, LivenessModel, load_model
from liveness.plots import save_png
from liveness.preprocess import Preprocessing, patch_starts, preprocess

DPI = 80  # one explanation PNG is ~1100 x 1250 px
POOLS = (sn.MaxPool2D, sn.AvgPool2D)
# A convolution block is a Conv2D and the element-wise layers after it (ReLU, BatchNorm2D, ...)
# up to the next layer of one of these kinds.
BLOCK_ENDS = (sn.Conv2D, *POOLS, sn.Flatten, sn.Dense)
MAPS_PER_STAGE = 8
MAX_FILTERS = 32
SMOOTH_SIGMA = 1.0  # input pixels
MEAN_NAME = "mean_saliency.png"


@dataclass
class Explanation:
    """Everything the picture shows, as arrays (``S`` = the model's input size)."""

    image_rgb: np.ndarray  # (H, W, 3) uint8, the image as loaded
    input: np.ndarray  # (3, S, S) float32, the network input after preprocessing
    normalization: str  # the model's normalisation of ``input``
    score: float  # P(real)
    threshold: float
    filters: np.ndarray  # (F, C, k, k) weights of the first Conv2D
    feature_maps: list[tuple[str, np.ndarray]]  # (label, (C, H, W)) per conv block / pooling
    saliency: np.ndarray  # (3, S, S) dP(real)/dx

    @property
    def decision(self) -> str:
        return CLASSES[REAL] if self.score >= self.threshold else CLASSES[1 - REAL]


def forward_backward(net: sn.Sequential, x: np.ndarray,
                     class_index: int = REAL) -> tuple[list[np.ndarray], np.ndarray]:
    """Run ``net`` layer by layer in eval mode, then backpropagate from one class's output.

    x: (N, C, H, W). Returns the output of every layer (``outputs[-1]`` is the network output
    ``p``, (N, classes)) and ``d p[:, class_index] / d x`` (the shape of ``x``): the backward
    pass starts from ``dout = one-hot(class_index)`` for every sample and goes through
    ``reversed(net.layers)``, each layer's ``backward`` mapping dL/d(output) to dL/d(input).
    The layers' ``grads`` are overwritten on the way (harmless: no optimizer step follows).
    """
    net.eval()
    outputs = []
    h = x
    for layer in net.layers:
        h = layer.forward(h, training=False)
        outputs.append(h)
    dout = np.zeros_like(h)
    dout[:, class_index] = 1
    for layer in reversed(net.layers):
        dout = layer.backward(dout)
    return outputs, dout


def feature_stages(net: sn.Sequential) -> list[tuple[int, str]]:
    """``(layer index, label)`` of the layers that end a conv block or are a pooling layer."""
    layers = net.layers
    stages, n_conv, n_pool = [], 0, 0
    for i, layer in enumerate(layers):
        if isinstance(layer, sn.Conv2D):
            n_conv += 1
            end = i
            while end + 1 < len(layers) and not isinstance(layers[end + 1], BLOCK_ENDS):
                end += 1
            names = " > ".join(type(lay).__name__ for lay in layers[i:end + 1])
            stages.append((end, f"conv block {n_conv} ({names})"))
        elif isinstance(layer, POOLS):
            n_pool += 1
            stages.append((i, f"pooling {n_pool} ({type(layer).__name__})"))
    return stages


def explain_image(model: LivenessModel, image_bgr: np.ndarray) -> Explanation:
    """Score one face crop (BGR uint8) and collect input, filters, feature maps and saliency."""
    net = model.net
    convs = [layer for layer in net.layers if isinstance(layer, sn.Conv2D)]
    if not convs:
        raise UserError("the model has no Conv2D layer, so there are no filters or feature "
                        "maps to show; use a LivenessNet model written by `liveness train`")
    pp = model.preprocessing
    x = preprocess([image_bgr], pp)
    outputs, dx = forward_backward(net, x, REAL)
    shown, saliency = on_the_face(x, dx, pp) if pp.face_size else (x[0], dx[0])
    view = pp.grid ** 2 // 2 if pp.face_size else 0  # feature maps: the centre patch's
    image = image_bgr if image_bgr.ndim == 3 else cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
    return Explanation(
        image_rgb=np.ascontiguousarray(image[:, :, ::-1]),
        input=shown,
        normalization=pp.normalization,
        score=float(model.scores(x)[0]),
        threshold=model.threshold,
        filters=convs[0].params["W"],
        feature_maps=[(label, outputs[i][view]) for i, label in feature_stages(net)],
        saliency=saliency,
    )


def on_the_face(x: np.ndarray, dx: np.ndarray, pp: Preprocessing
                ) -> tuple[np.ndarray, np.ndarray]:
    """Patch mode: one face's views ``x`` (V, 3, S, S) and their gradients ``dx`` put back in
    place on the (3, F, F) face, F = ``pp.face_size``.

    The input shown is the mean of the patches covering each pixel. The saliency is the
    gradient of the face's score, the weighted mean of its views' P(real): each patch's
    gradient times its weight (1 / grid**2, halved with ``whole``), summed where patches
    overlap, plus, with ``whole``, half the whole-face view's gradient spread back over the
    pixels it was shrunk from (each gets (S / F)**2 of it: exact when F is a multiple of S).
    """
    size, face, n = pp.size, pp.face_size, pp.grid ** 2
    starts = patch_starts(face, size, pp.grid)
    places = [(r, c) for r in starts for c in starts]
    weight = 1 / n / (2 if pp.whole else 1)
    shown, cover, saliency = (np.zeros((3, face, face), np.float32) for _ in range(3))
    for (r, c), patch, grad in zip(places, x[:n], dx[:n], strict=True):
        shown[:, r:r + size, c:c + size] += patch
        cover[:, r:r + size, c:c + size] += 1
        saliency[:, r:r + size, c:c + size] += weight * grad
    if pp.whole:
        spread = cv2.resize(dx[n].transpose(1, 2, 0), (face, face),
                            interpolation=cv2.INTER_NEAREST).transpose(2, 0, 1)
        saliency += 0.5 * (size / face) ** 2 * spread
    return shown / np.maximum(cover, 1), saliency


def _unit(a: np.ndarray) -> np.ndarray:
    """Min-max rescale to [0, 1] for display (a constant array becomes 0.5)."""
    lo, hi = float(a.min()), float(a.max())
    return np.full(a.shape, 0.5) if hi <= lo else (a - lo) / (hi - lo)


def _filter_tile(w: np.ndarray) -> np.ndarray:
    """One filter (C, k, k) as a (k, k, 3) image with mid-gray = 0 (grayscale if C != 3)."""
    w = w if w.shape[0] == 3 else np.repeat(w.mean(axis=0, keepdims=True), 3, axis=0)
    peak = float(np.abs(w).max()) or 1.0
    return (w.transpose(1, 2, 0) / (2 * peak) + 0.5).clip(0, 1)


def mosaic(tiles: list[np.ndarray], gap: int = 1) -> np.ndarray:
    """Tiles of one shape (h, w) or (h, w, 3) side by side, separated by ``gap`` NaN columns."""
    spacer = np.full((tiles[0].shape[0], gap, *tiles[0].shape[2:]), np.nan)
    parts = [part for tile in tiles for part in (tile, spacer)][:-1]
    return np.concatenate(parts, axis=1)


def _label_tiles(ax, labels: list[str], tile_width: int, gap: int = 1) -> None:
    ax.set_xticks([i * (tile_width + gap) + (tile_width - 1) / 2 for i in range(len(labels))],
                  labels, fontsize=8)
    ax.tick_params(length=0)


def render(expl: Explanation, title: str = "") -> Figure:
    """The explanation as one matplotlib figure (Agg canvas): save it with :func:`save_png`.

    Top row: the face, the network input, the saliency over the face (lightly blurred),
    ``max_c |s|`` and ``sum_c s``. Then one strip of first-layer filters, and one strip per
    feature-map stage showing its most active channels (highest mean), each rescaled to its own
    min..max.
    """
    filters = expl.filters[:MAX_FILTERS]
    rows = 2 + len(expl.feature_maps)
    fig = Figure(figsize=(14, 4.2 + 1.45 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows, 5, height_ratios=[2.6] + [1] * (rows - 1))
    colour = "tab:green" if expl.decision == "real" else "tab:red"
    fig.suptitle(f"{title}   P(real) = {expl.score:.3f}, threshold {expl.threshold:.2f}"
                 f"  ->  {expl.decision.upper()}", fontsize=14, color=colour, weight="bold")

    h, w = expl.image_rgb.shape[:2]
    size = expl.input.shape[-1]
    heat = np.abs(expl.saliency).max(axis=0)
    signed = expl.saliency.sum(axis=0)
    axes = [fig.add_subplot(grid[0, i]) for i in range(5)]
    axes[0].imshow(expl.image_rgb)
    axes[0].set_title(f"face as loaded ({w}x{h})")
    shown = expl.input.transpose(1, 2, 0)
    axes[1].imshow(shown.clip(0, 1) if expl.normalization == "unit" else _unit(shown),
                   interpolation="nearest")
    axes[1].set_title(f"network input {size}x{size}\n({expl.normalization} normalisation)")
    axes[2].imshow(expl.image_rgb)
    # Raw gradients are speckled pixel to pixel; a light blur shows *where* at a glance.
    smooth = cv2.GaussianBlur(heat, (0, 0), SMOOTH_SIGMA)
    axes[2].imshow(smooth, cmap="inferno", alpha=0.6, extent=(-0.5, w - 0.5, h - 0.5, -0.5),
                   interpolation="bilinear")
    axes[2].set_title(f"saliency on the face: max over RGB\nof |dP(real)/dx|, blurred "
                      f"(sigma {SMOOTH_SIGMA:g} px)")
    axes[3].imshow(heat, cmap="inferno", interpolation="nearest")
    axes[3].set_title(f"|dP(real)/dx|, peak {heat.max():.2g}")
    lim = float(np.abs(signed).max()) or 1.0
    axes[4].imshow(signed, cmap="bwr", vmin=-lim, vmax=lim, interpolation="nearest")
    axes[4].set_title("sum over RGB of dP(real)/dx\nred raises P(real), blue lowers it")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])

    ax = fig.add_subplot(grid[1, :])
    ax.imshow(mosaic([_filter_tile(f) for f in filters]), interpolation="nearest")
    _label_tiles(ax, [str(i) for i in range(len(filters))], filters.shape[3])
    ax.set_title(f"first-layer filters ({len(filters)} of {len(expl.filters)}, "
                 f"{filters.shape[1]}x{filters.shape[2]}x{filters.shape[3]}, "
                 "shown as RGB, mid-gray = 0)", fontsize=10)
    ax.set_yticks([])

    for row, (label, maps) in enumerate(expl.feature_maps, start=2):
        c, mh, mw = maps.shape
        order = np.argsort(-maps.reshape(c, -1).mean(axis=1))[:MAPS_PER_STAGE]
        ax = fig.add_subplot(grid[row, :])
        ax.imshow(mosaic([_unit(maps[ch]) for ch in order]), cmap="viridis",
                  interpolation="nearest")
        _label_tiles(ax, [f"ch {ch}" for ch in order], mw)
        ax.set_title(f"{label}: {c}x{mh}x{mw}, the {len(order)} most active channels",
                     fontsize=10)
        ax.set_yticks([])
    return fig


def border_share(heat: np.ndarray) -> float:
    """Fraction of a saliency map's total on the outer ring of the image (1/8 of its side)."""
    width = max(1, heat.shape[0] // 8)
    inner = heat[width:-width, width:-width].sum()
    return float(1 - inner / heat.sum()) if heat.sum() > 0 else 0.0


def render_mean_saliency(by_folder: dict[str, list[Explanation]]) -> Figure:
    """Where the network looks on average, one panel per folder of images.

    Each image's map ``max_c |dP(real)/dx|`` is scaled to sum 1 before averaging, so confident
    and unsure faces weigh the same. Single maps are speckled; the mean shows what the network
    keys on for a whole recording: a bright band along an edge means the crop border (screen
    bezel, background) rather than the face. Each title gives the share of the saliency on the
    outer ring (1/8 of the side), against the share of the pixels there.
    """
    fig = Figure(figsize=(3.2 * len(by_folder), 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle("mean saliency |dP(real)/dx| per folder (each map normalised to sum 1)")
    for ax, (folder, expls) in zip(np.atleast_1d(fig.subplots(1, len(by_folder))),
                                   by_folder.items(), strict=True):
        heats = [np.abs(e.saliency).max(axis=0) for e in expls]
        maps = [h / h.sum() for h in heats if h.sum() > 0]  # 0 only if P(real) saturated
        mean = np.mean(maps, axis=0) if maps else np.zeros_like(heats[0])
        ring_pixels = border_share(np.ones_like(mean))
        n_real = sum(e.decision == "real" for e in expls)
        ax.imshow(mean, cmap="inferno", interpolation="nearest")
        ax.set_title(f"{folder}\n{len(expls)} images, {n_real} called real\n"
                     f"border: {border_share(mean):.0%} of saliency, {ring_pixels:.0%} of pixels",
                     fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def find_images(paths: list[str]) -> list[tuple[Path, str]]:
    """Each image file, and each image under each folder (sorted), with a unique output name.

    A file is named by its stem, an image found in a folder by its path inside the folder
    (``real/7.png`` -> ``real_7``); names that clash take in parent folders until they differ
    (``alexcamargo/real/4.png`` and ``krzysiek/real/4.png`` -> ``alexcamargo_real_4``, ...).
    """
    found: list[tuple[Path, int]] = []  # (file, how many trailing path parts name it)
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                kinds = ", ".join(sorted(IMAGE_SUFFIXES))
                raise UserError(f"no images ({kinds}) under folder {p}; "
                                "pass face crops or a folder of them")
            found += [(f, len(f.relative_to(p).parts)) for f in files]
        elif p.is_file():
            found.append((p, 1))
        else:
            raise UserError(f"image {p} not found; pass face crop files or folders of them")
    parts = [f.absolute().with_suffix("").parts for f, _ in found]
    depth = [d for _, d in found]
    while True:
        names = ["_".join(p[-d:]) for p, d in zip(parts, depth, strict=True)]
        counts = Counter(names)
        clashing = [i for i, n in enumerate(names) if counts[n] > 1 and depth[i] < len(parts[i])]
        if not clashing:
            return [(f, n) for (f, _), n in zip(found, names, strict=True)]
        for i in clashing:
            depth[i] += 1


def read_face(path: Path) -> np.ndarray:
    """A BGR uint8 image, or a :class:`UserError` naming the file."""
    image = read_image(path)
    if image is None:
        raise UserError(f"cannot read image {path}; pass a PNG/JPEG face crop")
    return image


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="model file written by `liveness train` (.npz)")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="face crop image(s), or folder(s) of them (searched recursively)")
    parser.add_argument("--out", required=True, help="folder for the PNGs (one per image)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a folder for the PNGs")
    model = load_model(args.model)
    images = find_images(args.images)
    by_folder: dict[str, list[Explanation]] = {}
    for path, name in images:
        expl = explain_image(model, read_face(path))
        target = out / f"{name}.png"
        save_png(render(expl, title=str(path)), target, dpi=DPI)
        print(f"{target}  P(real)={expl.score:.3f}  {expl.decision}")
        folder = "/".join(path.absolute().parent.parts[-2:])
        by_folder.setdefault(folder, []).append(replace(expl, feature_maps=[]))  # maps are large
    if len(images) > 1:
        save_png(render_mean_saliency(by_folder), out / MEAN_NAME, dpi=DPI)
        print(f"{out / MEAN_NAME}  mean saliency per folder")
    return 0
