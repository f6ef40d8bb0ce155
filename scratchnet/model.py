"""Sequential: a list of layers run in order, with a Keras-like training loop on top.

The network is a chain ``y = f_L(... f_2(f_1(x)))``. ``forward`` runs the layers in order;
``backward(dout)`` runs their backward passes in reverse (the chain rule), leaving every
layer's ``grads`` filled in. ``fit`` is the classic loop: for each shuffled mini-batch,
forward -> softmax cross-entropy on the logits -> backward -> ``optimizer.step()``.

If the last layer is :class:`Softmax`, ``fit`` and ``evaluate`` take the loss on the logits
before it (the fused, numerically stable form, as Keras does), and ``predict`` returns the
probabilities either way.

``forward`` and ``backward`` run BLAS on one thread (:mod:`scratchnet.blas`), as each layer
that calls it does on its own, so ``fit`` and a loop of your own written on the public API,
``net.forward(x, training=True)``, ``loss.forward(z, y)``, ``net.backward(loss.backward())``,
``optimizer.step()``, train at the same speed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from scratchnet.activations import Softmax, softmax
from scratchnet.base import Layer, Parameter
from scratchnet.blas import one_blas_thread
from scratchnet.losses import SoftmaxCrossEntropy
from scratchnet.optim import Adam, Optimizer

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class History:
    """What ``fit`` returns: ``history["loss"][e]`` is the value after epoch ``e`` (0-based)."""

    def __init__(self) -> None:
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))


class Callback:
    """Hooks into ``fit``; override the ones you need. ``on_epoch_end`` returns True to stop.

    ``logs`` holds ``loss`` and ``accuracy`` (of the batch in ``on_batch_end``, of the epoch in
    ``on_epoch_end``, which also has ``val_loss``/``val_accuracy`` with validation data).
    """

    def on_train_begin(self, model: Sequential) -> None:
        pass

    def on_epoch_begin(self, epoch: int) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict[str, float]) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool | None:
        return False

    def on_train_end(self) -> None:
        pass


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; with ``restore_best``
    the model ends training with the weights (and buffers) of its best epoch.

    ``mode`` "min" (losses) or "max" (accuracies); "auto" picks "max" for names with "acc".
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, restore_best: bool = True,
                 mode: str = "auto") -> None:
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.restore_best = monitor, int(patience), restore_best
        self.sign = -1.0 if mode == "max" or (mode == "auto" and "acc" in monitor) else 1.0

    def on_train_begin(self, model: Sequential) -> None:
        self.model = model
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, np.ndarray] | None = None
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool:
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping: {self.monitor!r} is not among {sorted(logs)}; "
                             "pass validation_data to fit or monitor another value")
        value = self.sign * logs[self.monitor]
        if self.best is None or value < self.best:
            self.best, self.best_epoch = value, epoch
            if self.restore_best:
                self.best_state = self.model.state_dict()
            return False
        if epoch - self.best_epoch >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self) -> None:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive slices of ``batch_size``; a last batch of one sample joins the one before
    (batch norm cannot compute a variance from one value)."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return [slice(s, e) for s, e in zip(starts, starts[1:] + [n], strict=True)]


class Sequential:
    """Layers applied in order. Starts in training mode, like PyTorch (see :meth:`eval`)."""

    def __init__(self, layers: Iterable[Layer]) -> None:
        self.layers = list(layers)
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: expected scratchnet layers, got {layer!r}")
        self.training = True
        self.metadata: dict[str, Any] = {}

    # ----------------------------------------------------------------- the network itself

    def train(self, mode: bool = True) -> Sequential:
        """Training mode: dropout drops, batch norm uses (and updates) batch statistics."""
        self.training = mode
        return self

    def eval(self) -> Sequential:
        """Inference mode: dropout is the identity, batch norm uses its running statistics."""
        return self.train(False)

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the first parameter (what :meth:`summary` feeds); float32 if none."""
        for layer in self.layers:
            for array in layer.params.values():
                return array.dtype
        return np.dtype(np.float32)

    @staticmethod
    def _check_input(x: np.ndarray) -> None:
        """The one finite check per batch (each layer casts its input to its own dtype)."""
        if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
            got = f"dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"Sequential: expected a float array (N, ...), got {got}")
        if not np.isfinite(x).all():
            raise ValueError("Sequential: input contains NaN or inf")

    def _body(self) -> list[Layer]:
        """The layers up to the logits: all of them, or all but a trailing Softmax."""
        last = self.layers[-1] if self.layers else None
        return self.layers[:-1] if isinstance(last, Softmax) else self.layers

    @one_blas_thread
    def _forward(self, layers: Sequence[Layer], x: np.ndarray, training: bool) -> np.ndarray:
        self._check_input(x)
        for layer in layers:
            x = layer.forward(x, training)
        return x

    @staticmethod
    @one_blas_thread
    def _backward(layers: Sequence[Layer], dout: np.ndarray, input_grad: bool = True
                  ) -> np.ndarray | None:
        """Backward through ``layers``; ``input_grad=False`` lets the first layer skip dL/dx
        (training never needs the gradient with respect to the data) and returns None."""
        if not layers:
            return dout
        for layer in reversed(layers[1:]):
            dout = layer.backward(dout)
        first = layers[0]
        first.needs_input_grad = input_grad
        try:
            return first.backward(dout)
        finally:
            first.needs_input_grad = True

    def forward(self, x: np.ndarray, training: bool | None = None) -> np.ndarray:
        """Run every layer; ``training=None`` uses the mode set by :meth:`train`/:meth:`eval`."""
        return self._forward(self.layers, x, self.training if training is None else training)

    __call__ = forward

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dL/d(input) from dL/d(output); fills every layer's ``grads`` (overwriting them)."""
        return self._backward(self.layers, dout)

    def parameters(self) -> list[Parameter]:
        """Every trainable array, named ``"<layer index>.<name>"`` (what optimizers take)."""
        return [Parameter(layer, key, f"{i}.{key}")
                for i, layer in enumerate(self.layers) for key in layer.params]

    # ----------------------------------------------------------------- state

    def _arrays(self) -> dict[str, np.ndarray]:
        """The live parameter and buffer arrays by state-dict name."""
        return {f"{i}.{key}": array for i, layer in enumerate(self.layers)
                for key, array in (layer.params | layer.buffers).items()}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer: ``{"0.W": ..., "2.running_mean": ...}``."""
        return {name: array.copy() for name, array in self._arrays().items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy ``state`` into the model in place. Strict: the keys must match exactly, shapes
        too, and values must be finite; otherwise a one-line ValueError and nothing changes."""
        mine = self._arrays()
        missing, unexpected = sorted(set(mine) - set(state)), sorted(set(state) - set(mine))
        if missing or unexpected:
            raise ValueError(f"load_state_dict: missing keys {missing[:5]}, unexpected keys "
                             f"{unexpected[:5]} (expected {len(mine)} arrays)")
        for name, array in mine.items():
            new = np.asarray(state[name])
            if new.shape != array.shape:
                raise ValueError(f"load_state_dict: {name} should have shape {array.shape}, "
                                 f"got {new.shape}")
            if not np.issubdtype(new.dtype, np.number) or not np.isfinite(new).all():
                raise ValueError(f"load_state_dict: {name} must hold finite numbers")
        for name, array in mine.items():
            array[...] = state[name]

    def summary(self, input_shape: Sequence[int]) -> str:
        """A table of layers, output shapes and parameter counts for one input of shape
        ``input_shape`` (without the batch axis, e.g. ``(3, 32, 32)``)."""
        x = np.zeros((1, *input_shape), dtype=self.dtype)
        rows = [("#", "Layer", "Output shape", "Params")]
        for i, layer in enumerate(self.layers):
            x = layer.forward(x, training=False)
            count = sum(a.size for a in layer.params.values())
            args = ", ".join("x".join(map(str, v)) if isinstance(v, list) else str(v)
                             for k, v in layer.config().items() if k != "dtype")
            rows.append((str(i), f"{type(layer).__name__}({args})", str((None, *x.shape[1:])),
                         f"{count:,}"))
        widths = [max(len(row[c]) for row in rows) for c in range(4)]
        lines = ["  ".join(cell.ljust(w) if c < 3 else cell.rjust(w)
                           for c, (cell, w) in enumerate(zip(row, widths, strict=True)))
                 for row in rows]
        rule = "-" * len(lines[0])
        params = sum(p.data.size for p in self.parameters())
        buffers = sum(a.size for layer in self.layers for a in layer.buffers.values())
        return "\n".join([lines[0], rule, *lines[1:], rule,
                          f"Trainable parameters: {params:,}",
                          f"Non-trainable buffers: {buffers:,}"])

    # ----------------------------------------------------------------- Keras-like loop

    @staticmethod
    def _check_data(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) != len(x):
            raise ValueError(f"expected {len(x)} integer labels for {len(x)} inputs, got "
                             f"{y.dtype} labels of shape {y.shape}")
        if len(y) == 0:
            raise ValueError("expected at least one sample, got an empty array")
        return y

    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int = 1, batch_size: int = 32,
            optimizer: Optimizer | None = None,
            validation_data: tuple[np.ndarray, np.ndarray] | None = None,
            callbacks: Sequence[Callback] = (), shuffle: bool = True, seed: int | None = None,
            transform: Transform | None = None, verbose: int = 1) -> History:
        """Train on ``x`` (N, ...) with integer labels ``y`` (N,) by mini-batch descent.

        ``optimizer`` defaults to ``Adam(self.parameters())``. ``transform(x_batch, rng)`` is
        applied to each training batch (augmentation); ``seed`` fixes the shuffling and the
        ``rng`` handed to ``transform``. ``verbose`` prints one line per epoch. A NaN/inf loss
        raises ``FloatingPointError``. Returns a :class:`History` of per-epoch ``loss``,
        ``accuracy`` (and ``val_loss``/``val_accuracy`` with ``validation_data``).
        """
        y = self._check_data(x, y)
        optimizer = Adam(self.parameters()) if optimizer is None else optimizer
        loss_fn, body, rng = SoftmaxCrossEntropy(), self._body(), np.random.default_rng(seed)
        history = History()
        for cb in callbacks:
            cb.on_train_begin(self)
        for epoch in range(epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            order = rng.permutation(len(y)) if shuffle else np.arange(len(y))
            total_loss = correct = 0.0
            for b, part in enumerate(batch_slices(len(y), batch_size)):
                xb, yb = x[order[part]], y[order[part]]
                if transform is not None:
                    xb = transform(xb, rng)
                logits = self._forward(body, xb, True)
                loss = loss_fn.forward(logits, yb)
                if not np.isfinite(loss):
                    raise FloatingPointError(
                        f"loss became NaN/inf at epoch {epoch + 1} batch {b + 1} (learning rate "
                        f"{optimizer.lr:g} too high, or bad inputs?)")
                self._backward(body, loss_fn.backward(), input_grad=False)
                optimizer.step()
                hits = int((logits.argmax(axis=1) == yb).sum())
                total_loss, correct = total_loss + loss * len(yb), correct + hits
                for cb in callbacks:
                    cb.on_batch_end(b, {"loss": loss, "accuracy": hits / len(yb)})
            logs = {"loss": total_loss / len(y), "accuracy": correct / len(y)}
            if validation_data is not None:
                val = self.evaluate(*validation_data)
                logs |= {"val_loss": val["loss"], "val_accuracy": val["accuracy"]}
            history.append(epoch, logs)
            if verbose:
                print(f"epoch {epoch + 1}/{epochs}  "
                      + "  ".join(f"{k} {v:.4f}" for k, v in logs.items()))
            if any([bool(cb.on_epoch_end(epoch, logs)) for cb in callbacks]):
                break
        for cb in callbacks:
            cb.on_train_end()
        return history

    def _logits(self, x: np.ndarray, batch_size: int) -> Iterable[tuple[slice, np.ndarray]]:
        """Eval-mode logits of ``x``, batch by batch."""
        body = self._body()
        for part in batch_slices(len(x), batch_size):
            yield part, self._forward(body, x[part], False)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> dict[str, float]:
        """Mean cross-entropy and accuracy on ``(x, y)`` in eval mode."""
        y = self._check_data(x, y)
        loss_fn, total_loss, correct = SoftmaxCrossEntropy(), 0.0, 0
        for part, logits in self._logits(x, batch_size):
            total_loss += loss_fn.forward(logits, y[part]) * len(logits)
            correct += int((logits.argmax(axis=1) == y[part]).sum())
        return {"loss": total_loss / len(y), "accuracy": correct / len(y)}

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, classes) in eval mode (softmax of the logits)."""
        parts = [softmax(logits, axis=1) for _, logits in self._logits(x, batch_size)]
        if not parts:
            raise ValueError("predict: expected at least one sample, got an empty array")
        return np.concatenate(parts)
