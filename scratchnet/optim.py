"""Optimizers: SGD with momentum and Adam. Each owns its state and updates weights in place.

``params`` is the list of :class:`scratchnet.Parameter` that ``model.parameters()`` returns;
``step()`` reads every ``p.grad`` (written by the last backward) and changes ``p.data`` in
place, so the layers see the new weights at once. Gradients are never divided by the batch
size here (the loss already took the mean).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scratchnet import kernels
from scratchnet.base import Parameter


class Optimizer:
    """Holds the parameters, the learning rate and named state arrays (for checkpoints)."""

    def __init__(self, params: Sequence[Parameter], lr: float) -> None:
        if not lr > 0:
            raise ValueError(f"{type(self).__name__}: lr must be > 0, got {lr}")
        self.params, self.lr = list(params), float(lr)
        self.t = 0  # number of steps taken

    def step(self) -> None:
        raise NotImplementedError

    def _state(self) -> dict[str, list[np.ndarray]]:
        """Per-parameter state arrays by kind, e.g. ``{"m": [...], "v": [...]}``."""
        return {}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the state: ``"t"`` and ``"<kind>.<i>"`` for parameter ``i``."""
        state = {"t": np.array(self.t)}
        for kind, arrays in self._state().items():
            state |= {f"{kind}.{i}": a.copy() for i, a in enumerate(arrays)}
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` output; any mismatch is a one-line ValueError."""
        mine = self.state_dict()
        if set(state) != set(mine):
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected keys "
                             f"{sorted(mine)}, got {sorted(state)}")
        for kind, arrays in self._state().items():
            for i, a in enumerate(arrays):
                new = np.asarray(state[f"{kind}.{i}"])
                if new.shape != a.shape:
                    raise ValueError(f"{type(self).__name__}.load_state_dict: {kind}.{i} should "
                                     f"have shape {a.shape}, got {new.shape}")
                a[...] = new
        self.t = int(state["t"])


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum, as in PyTorch.

    ``v = momentum * v + g``;  ``w = w - lr * v``   (``momentum=0``: ``w = w - lr * g``)
    """

    def __init__(self, params: Sequence[Parameter], lr: float, momentum: float = 0.0) -> None:
        super().__init__(params, lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.velocity = [np.zeros_like(p.data) for p in self.params] if momentum else []

    def _state(self) -> dict[str, list[np.ndarray]]:
        return {"velocity": self.velocity}

    def step(self) -> None:
        self.t += 1
        for i, p in enumerate(self.params):
            if self.momentum:
                v = self.velocity[i]
                v *= self.momentum
                v += p.grad
                p.data[...] -= self.lr * v
            else:
                p.data[...] -= self.lr * p.grad


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction. At step ``t`` with gradient ``g``::

        m = b1 * m + (1 - b1) * g            v = b2 * v + (1 - b2) * g^2
        m_hat = m / (1 - b1^t)               v_hat = v / (1 - b2^t)
        w = w - lr * m_hat / (sqrt(v_hat) + eps)
    """

    def __init__(self, params: Sequence[Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params, lr)
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas}")
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = float(eps)
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def _state(self) -> dict[str, list[np.ndarray]]:
        return {"m": self.m, "v": self.v}

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = self.lr / (1 - b1 ** self.t)
        v_correction = 1 / np.sqrt(1 - b2 ** self.t)
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            # w -= lr * m_hat / (sqrt(v_hat) + eps), with the corrections pulled out of the
            # arrays; one compiled pass over each parameter (flat views, updated in place),
            # in the parameter's precision (the constants are cast to its dtype).
            scalars = np.array([b1, b2, step_size, v_correction, self.eps], dtype=p.data.dtype)
            kernels.adam_update(p.data.reshape(-1), p.grad.reshape(-1), m.reshape(-1),
                                v.reshape(-1), *scalars)
