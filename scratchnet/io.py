"""Files: atomic writes (temporary file, then rename) and saving/loading models as one .npz."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from scratchnet.activations import ELU, ReLU, Sigmoid, Softmax
from scratchnet.base import Layer
from scratchnet.conv import Conv2D
from scratchnet.layers import Dense, Dropout, Flatten
from scratchnet.model import Sequential
from scratchnet.normalization import BatchNorm1D, BatchNorm2D
from scratchnet.pooling import AvgPool2D, MaxPool2D


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    A crash or an exception inside the ``with`` block leaves any previous ``path`` untouched
    and removes the temporary file, so a reader never sees a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------- model files
#
# A model file is one .npz (a zip of .npy arrays, read with allow_pickle=False) holding:
#   "param/<i>.<name>"  every parameter and buffer (Sequential.state_dict())
#   "__format__"        FORMAT, so foreign .npz files are recognised
#   "__architecture__"  JSON: [{"class": "Conv2D", "config": {...}}, ...]
#   "__metadata__"      JSON: whatever the caller wants to keep with the weights
#   "__digest__"        SHA-256 of all the above, so an edited or corrupted file is refused
# Loading looks class names up in LAYERS (never imports or evaluates anything from the file).

FORMAT = "scratchnet-model-v1"
LAYERS: dict[str, type[Layer]] = {cls.__name__: cls for cls in (
    Conv2D, MaxPool2D, AvgPool2D, Dense, Flatten, Dropout, ReLU, Sigmoid, ELU, Softmax,
    BatchNorm1D, BatchNorm2D)}


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Make a custom layer class loadable by name (usable as a class decorator)."""
    LAYERS[cls.__name__] = cls
    return cls


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save(model: Sequential, path: str | os.PathLike,
         metadata: dict[str, Any] | None = None) -> None:
    """Write ``model`` (weights, buffers, architecture) and ``metadata`` (JSON-serialisable;
    default ``model.metadata``) to one ``.npz`` at ``path``, atomically."""
    architecture = [{"class": type(layer).__name__, "config": layer.config()}
                    for layer in model.layers]
    for entry in architecture:
        if LAYERS.get(entry["class"]) is None:
            raise ValueError(f"save: layer class {entry['class']} is not registered; "
                             "decorate it with scratchnet.register_layer")
    meta = model.metadata if metadata is None else metadata
    arrays = {f"param/{k}": v for k, v in model.state_dict().items()}
    arrays |= {"__format__": np.array(FORMAT),
               "__architecture__": np.array(json.dumps(architecture)),
               "__metadata__": np.array(json.dumps(meta))}
    arrays["__digest__"] = np.array(_digest(arrays))
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def _read(path: Path) -> dict[str, np.ndarray]:
    """Every array of the .npz at ``path``; a ValueError naming the file if it is not one."""
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{path}: not a readable scratchnet model file ({reason})") from None


def load(path: str | os.PathLike) -> Sequential:
    """Rebuild the model saved at ``path`` (in eval mode, ready for inference), with its
    ``.metadata``. A truncated, foreign or tampered file raises a ValueError naming the file."""
    path = Path(path)
    arrays = _read(path)
    if str(arrays.get("__format__", "")) != FORMAT:
        raise ValueError(f"{path}: not a scratchnet model file (no {FORMAT} marker)")
    digest = str(arrays.pop("__digest__", ""))
    if digest != _digest(arrays):
        raise ValueError(f"{path}: the file was modified or corrupted after it was saved "
                         "(checksum mismatch)")
    try:
        architecture = json.loads(str(arrays["__architecture__"]))
        metadata = json.loads(str(arrays["__metadata__"]))
        if not isinstance(metadata, dict):
            raise ValueError("the metadata is not a JSON object")
        layers = []
        for entry in architecture:
            cls = LAYERS.get(entry["class"])
            if cls is None:
                raise ValueError(f"unknown layer class {entry['class']!r}")
            layers.append(cls(**entry["config"]))
        model = Sequential(layers)
        model.load_state_dict({name.removeprefix("param/"): a for name, a in arrays.items()
                               if name.startswith("param/")})
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: invalid scratchnet model file ({e})") from None
    model.metadata = metadata
    return model.eval()
