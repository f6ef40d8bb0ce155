"""End to end: a small CNN learns to tell vertical from horizontal bars, then survives save/load."""

from __future__ import annotations

import numpy as np

import scratchnet as sn


def bars(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 1, 8, 8) noisy images with one bright bar at a random place: label 1 vertical,
    0 horizontal."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 0.3, (n, 1, 8, 8)).astype(np.float32)
    where = rng.integers(0, 8, n)
    for i in range(n):
        if y[i]:
            x[i, 0, :, where[i]] += 1
        else:
            x[i, 0, where[i], :] += 1
    return x, y


def test_small_cnn_learns_bars_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    net = sn.Sequential([
        sn.Conv2D(1, 4, 3, padding="same", rng=rng), sn.ReLU(), sn.BatchNorm2D(4),
        sn.MaxPool2D(2), sn.Conv2D(4, 8, 3, padding="same", rng=rng), sn.ReLU(),
        sn.AvgPool2D(4), sn.Flatten(), sn.Dropout(0.2, rng=rng), sn.Dense(8, 2, rng=rng),
        sn.Softmax()])
    x, y = bars(256, seed=1)
    x_test, y_test = bars(200, seed=2)
    history = net.fit(x, y, epochs=8, batch_size=16, seed=0, validation_data=(x_test, y_test),
                      optimizer=sn.Adam(net.parameters(), lr=0.02), verbose=0)
    assert history.history["accuracy"][0] < 0.8  # it really had to learn
    assert history.history["val_accuracy"][-1] > 0.95
    result = net.evaluate(x_test, y_test)
    assert result["accuracy"] > 0.95
    sn.save(net, tmp_path / "bars.npz", metadata={"task": "bars"})
    loaded = sn.load(tmp_path / "bars.npz")
    np.testing.assert_array_equal(loaded.predict(x_test), net.predict(x_test))
    assert loaded.metadata == {"task": "bars"}
