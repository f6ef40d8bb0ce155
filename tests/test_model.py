"""Sequential: chain rule, modes, parameters, state dicts, summary, and the fit/evaluate/predict
loop (trailing Softmax, callbacks, early stopping, transform hook, NaN loss)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.gradcheck import numerical_gradient
from scratchnet.model import batch_slices


def mlp(softmax: bool = True, dtype=np.float32, seed: int = 0) -> sn.Sequential:
    rng = np.random.default_rng(seed)
    layers = [sn.Dense(4, 8, dtype=dtype, rng=rng), sn.ELU(), sn.BatchNorm1D(8, dtype=dtype),
              sn.Dropout(0.3, rng=rng), sn.Dense(8, 3, dtype=dtype, rng=rng)]
    return sn.Sequential(layers + [sn.Softmax()] if softmax else layers)


def blobs(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated Gaussian blobs in 4-D."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]], np.float32)
    return (centres[y] + rng.normal(0, 0.5, (n, 4))).astype(np.float32), y


def test_backward_is_the_chain_rule_through_every_layer():
    net = mlp(dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((5, 4))
    g = np.random.default_rng(2).standard_normal((5, 3))
    net.forward(x, training=False)
    dx = net.backward(g)
    numeric = numerical_gradient(lambda v: float(np.sum(net.forward(v, training=False) * g)), x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-9)


def test_modes_switch_dropout_and_batch_norm():
    net = mlp()
    x = blobs(8)[0]
    assert net.training  # like PyTorch
    assert net.eval() is net and not net.training
    np.testing.assert_array_equal(net.forward(x), net.forward(x))  # deterministic in eval
    net.train()
    assert not np.array_equal(net.forward(x), net.forward(x))  # dropout masks differ
    np.testing.assert_array_equal(net.forward(x, training=False), net.eval().forward(x))


def test_parameters_alias_the_layer_arrays_and_are_named():
    net = mlp()
    params = net.parameters()
    assert [p.name for p in params] == ["0.W", "0.b", "2.gamma", "2.beta", "4.W", "4.b"]
    assert params[0].data is net.layers[0].params["W"]
    net.forward(blobs(6)[0])
    net.backward(np.ones((6, 3), np.float32))
    assert params[0].grad is net.layers[0].grads["W"]


def test_state_dict_copies_and_round_trips():
    a, b = mlp(seed=0), mlp(seed=1)
    a.forward(blobs(8)[0], training=True)  # move the running stats
    state = a.state_dict()
    assert sorted(state) == ["0.W", "0.b", "2.beta", "2.gamma", "2.running_mean",
                             "2.running_var", "4.W", "4.b"]
    state["0.W"][...] = 0  # a copy: the model is untouched
    assert np.abs(a.layers[0].params["W"]).sum() > 0
    b.load_state_dict(a.state_dict())
    x = blobs(5)[0]
    np.testing.assert_array_equal(a.eval().forward(x), b.eval().forward(x))


@pytest.mark.parametrize(("change", "match"), [
    (lambda s: s.pop("2.running_var"), r"missing keys \['2.running_var'\], unexpected keys \[\]"),
    (lambda s: s.update(extra=np.zeros(1)), r"unexpected keys \['extra'\]"),
    (lambda s: s.update({"4.W": np.zeros((3, 8))}), r"4.W should have shape \(8, 3\), got"),
    (lambda s: s["0.b"].__setitem__(0, np.nan), "0.b must hold finite numbers"),
])
def test_load_state_dict_is_strict_and_changes_nothing_on_error(change, match):
    net = mlp()
    before = net.state_dict()
    state = mlp(seed=3).state_dict()
    change(state)
    with pytest.raises(ValueError, match=match):
        net.load_state_dict(state)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize(("x", "match"), [
    (np.array([[1.0, np.nan, 0, 0]]), "input contains NaN or inf"),
    (np.array([[1.0, np.inf, 0, 0]]), "input contains NaN or inf"),
    (np.ones((2, 4), np.int64), "expected a float array .* got dtype int64"),
    ([[1.0, 2.0, 3.0, 4.0]], "expected a float array .* got list"),
    (np.ones((2, 5), np.float32), r"Dense: expected input \(N, 4\)"),
])
def test_bad_input_is_a_one_line_value_error(x, match):
    with pytest.raises(ValueError, match=match) as err:
        mlp().forward(x)
    assert "\n" not in str(err.value)


def test_float64_input_is_cast_to_the_model_dtype():
    assert mlp().forward(blobs(4)[0].astype(np.float64)).dtype == np.float32


def test_summary_lists_layers_shapes_and_counts():
    net = sn.Sequential([sn.Conv2D(3, 4, 3, padding="same", rng=0), sn.ReLU(),
                         sn.BatchNorm2D(4), sn.MaxPool2D(2), sn.Flatten(),
                         sn.Dense(64, 2, rng=0), sn.Softmax()])
    text = net.summary((3, 8, 8))
    rows = [re.split(r"\s{2,}", line.strip()) for line in text.splitlines()]
    table = {row[0]: row[1:] for row in rows if row[0].isdigit()}
    assert table["0"] == ["Conv2D(3, 4, 3x3, 1x1, same)", "(None, 4, 8, 8)", "112"]
    assert table["2"] == ["BatchNorm2D(4, 0.1, 1e-05)", "(None, 4, 8, 8)", "8"]
    assert table["3"][1:] == ["(None, 4, 4, 4)", "0"]
    assert table["5"] == ["Dense(64, 2, he)", "(None, 2)", "130"]
    assert table["6"][0] == "Softmax()"
    assert "Trainable parameters: 250" in text and "Non-trainable buffers: 8" in text


def test_summary_reports_an_impossible_architecture():
    with pytest.raises(ValueError, match="add a Flatten"):
        sn.Sequential([sn.Conv2D(1, 2, 3), sn.Dense(8, 2)]).summary((1, 5, 5))


def test_batch_slices_never_leave_a_single_sample_batch():
    assert batch_slices(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert batch_slices(9, 4) == [slice(0, 4), slice(4, 9)]
    assert batch_slices(1, 4) == [slice(0, 1)]


def test_fit_learns_and_returns_history_per_epoch(capsys):
    x, y = blobs(120)
    net = mlp()
    history = net.fit(x, y, epochs=4, batch_size=16, validation_data=blobs(40, seed=1), seed=0,
                      optimizer=sn.Adam(net.parameters(), lr=0.01))
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 4 for v in history.history.values()) and history.epoch == [0, 1, 2, 3]
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.9
    assert capsys.readouterr().out.count("epoch ") == 4  # verbose: a line per epoch


def test_trailing_softmax_is_fused_into_the_loss():
    """With or without a final Softmax, fit follows the same trajectory (loss on the logits)."""
    x, y = blobs(50)
    runs = [mlp(softmax=s, seed=4).fit(x, y, epochs=2, batch_size=8, seed=1, verbose=0).history
            for s in (True, False)]
    assert runs[0] == runs[1]
    net = mlp(seed=5)
    p = net.predict(x)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    loss = -np.mean(np.log(p[np.arange(len(y)), y]))
    assert net.evaluate(x, y)["loss"] == pytest.approx(loss, rel=1e-5)
    assert net.evaluate(x, y)["accuracy"] == np.mean(p.argmax(axis=1) == y)


def test_predict_gives_probabilities_without_a_softmax_layer_and_in_eval_mode():
    net = mlp(softmax=False).train()
    x = blobs(7)[0]
    p = net.predict(x, batch_size=3)
    np.testing.assert_allclose(p, net.predict(x), rtol=1e-6)
    np.testing.assert_allclose(p, sn.Softmax().forward(net.forward(x, training=False)),
                               rtol=1e-6)
    assert net.training  # predict does not change the mode


def test_fit_is_reproducible_with_a_seed():
    x, y = blobs(40)
    runs = [mlp(seed=2).fit(x, y, epochs=2, batch_size=8, seed=3, verbose=0).history
            for _ in range(2)]
    assert runs[0] == runs[1]


class Recorder(sn.Callback):
    def __init__(self, stop_after: int | None = None):
        self.calls: list[str] = []
        self.stop_after = stop_after

    def on_train_begin(self, model):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch):
        self.calls.append(f"epoch_begin {epoch}")

    def on_batch_end(self, batch, logs):
        self.calls.append(f"batch {batch} {sorted(logs)}")

    def on_epoch_end(self, epoch, logs):
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")
        return epoch == self.stop_after

    def on_train_end(self):
        self.calls.append("train_end")


def test_callbacks_are_called_in_order_and_can_stop_training():
    x, y = blobs(10)
    rec = Recorder(stop_after=1)
    history = mlp().fit(x, y, epochs=5, batch_size=6, callbacks=[rec], verbose=0)
    batch = "batch {} ['accuracy', 'loss']"
    assert rec.calls == ["train_begin",
                         "epoch_begin 0", batch.format(0), batch.format(1),
                         "epoch_end 0 ['accuracy', 'loss']",
                         "epoch_begin 1", batch.format(0), batch.format(1),
                         "epoch_end 1 ['accuracy', 'loss']", "train_end"]
    assert len(history.history["loss"]) == 2


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    net = mlp()
    stop = sn.EarlyStopping(monitor="val_loss", patience=2)
    stop.on_train_begin(net)
    for epoch, val_loss in enumerate([1.0, 0.5, 0.7, 0.6]):
        net.layers[0].params["b"][...] = epoch  # a recognisable weight per epoch
        assert stop.on_epoch_end(epoch, {"val_loss": val_loss}) == (epoch == 3)
    stop.on_train_end()
    assert stop.best_epoch == 1 and stop.stopped_epoch == 3
    np.testing.assert_array_equal(net.layers[0].params["b"], 1)
    accuracy = sn.EarlyStopping(monitor="val_accuracy", patience=1)
    accuracy.on_train_begin(net)
    assert not accuracy.on_epoch_end(0, {"val_accuracy": 0.5})
    assert not accuracy.on_epoch_end(1, {"val_accuracy": 0.9})  # higher is better for accuracy
    assert accuracy.on_epoch_end(2, {"val_accuracy": 0.8})


def test_early_stopping_in_fit_needs_the_monitored_value():
    x, y = blobs(20)
    with pytest.raises(ValueError, match="'val_loss' is not among"):
        mlp().fit(x, y, epochs=2, callbacks=[sn.EarlyStopping()], verbose=0)
    frozen = sn.Sequential([sn.Dense(4, 3, rng=0)])  # steps below float32 resolution
    history = frozen.fit(x, y, epochs=30, validation_data=(x, y), verbose=0,
                         callbacks=[sn.EarlyStopping(patience=1)],
                         optimizer=sn.SGD(frozen.parameters(), lr=1e-20))
    assert len(history.history["loss"]) == 2 and len(set(history.history["val_loss"])) == 1


def test_transform_is_applied_to_training_batches_only():
    x, y = blobs(20)
    seen = []

    def transform(batch, rng):
        assert isinstance(rng, np.random.Generator)
        seen.append(batch.shape)
        return batch * 2

    mlp().fit(x, y, epochs=2, batch_size=8, transform=transform, validation_data=(x, y),
              verbose=0)
    assert seen == [(8, 4), (8, 4), (4, 4)] * 2


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_a_non_finite_loss_raises_floating_point_error():
    x, y = blobs(20)
    net = mlp()
    net.layers[4].params["W"][0, 0] = np.inf
    with pytest.raises(FloatingPointError, match=r"^loss became NaN/inf at epoch 1 batch 1 "):
        net.fit(x, y, epochs=1, verbose=0)


def test_fit_checks_labels():
    x, y = blobs(10)
    with pytest.raises(ValueError, match="expected 10 integer labels"):
        mlp().fit(x, y[:-1], verbose=0)
    with pytest.raises(ValueError, match="expected 10 integer labels"):
        mlp().fit(x, y.astype(float), verbose=0)


def test_fit_skips_the_data_gradient_only_while_training():
    net = sn.Sequential([sn.Conv2D(1, 2, 3, rng=0), sn.Flatten(), sn.Dense(2, 2, rng=0)])
    calls = []
    conv_backward = net.layers[0].backward

    def spy(dout):
        calls.append(net.layers[0].needs_input_grad)
        return conv_backward(dout)

    net.layers[0].backward = spy
    x = np.random.default_rng(0).standard_normal((4, 1, 3, 3)).astype(np.float32)
    net.fit(x, np.array([0, 1, 0, 1]), batch_size=2, verbose=0)
    assert calls == [False, False] and net.layers[0].needs_input_grad
    net.forward(x)
    assert net.backward(np.ones((4, 2), np.float32)).shape == x.shape and calls[-1]
