"""Softmax cross-entropy, fused and computed from logits (the numerically stable way).

Shapes: logits ``z`` (N, K), integer labels ``y`` (N,) in ``[0, K)``. With
``log p = log_softmax(z) = z - max(z) - log(sum(exp(z - max(z))))``::

    forward:   L = -(1/N) * sum_i log p[i, y_i]                      (a float)
    backward:  dL/dz = (softmax(z) - onehot(y)) / N                  (N, K)

The loss owns the 1/N (the mean over the batch), so layers and optimizers never divide by N.
Logits of +-1000 give finite values: every ``exp`` is of a number <= 0.
"""

from __future__ import annotations

import numpy as np

from scratchnet.activations import log_softmax


class SoftmaxCrossEntropy:
    """Mean cross-entropy between ``softmax(logits)`` and integer class labels."""

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        labels = np.asarray(labels)
        if logits.ndim != 2:
            raise ValueError(f"SoftmaxCrossEntropy: expected logits (N, classes), got shape "
                             f"{logits.shape}")
        n, k = logits.shape
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"SoftmaxCrossEntropy: expected {n} integer labels, got "
                             f"{labels.dtype} array of shape {labels.shape}")
        if n and (labels.min() < 0 or labels.max() >= k):
            raise ValueError(f"SoftmaxCrossEntropy: labels must be in [0, {k}), got "
                             f"{labels.min()}..{labels.max()}")
        logp = log_softmax(logits, axis=1)
        self._logp, self._labels = logp, labels
        return float(-logp[np.arange(n), labels].mean())

    def backward(self) -> np.ndarray:
        """dL/dlogits for the last ``forward``: ``(softmax - onehot) / N``."""
        n = len(self._labels)
        grad = np.exp(self._logp)
        grad[np.arange(n), self._labels] -= 1
        grad /= n
        return grad

    def __call__(self, logits: np.ndarray, labels: np.ndarray) -> float:
        return self.forward(logits, labels)
