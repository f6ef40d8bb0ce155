"""The BLAS thread policy: the library's own matrix products run on one BLAS thread, whatever
loop calls them, and the user's setting is back as soon as a call returns."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import scratchnet as sn
from scratchnet import kernels
from scratchnet.blas import ThreadCount, one_blas_thread, thread_counts

pytestmark = pytest.mark.skipif(not thread_counts(), reason="threadpoolctl finds no BLAS")

USER = 2  # the user's setting in these tests (BLAS default: one thread per core)


def blas_threads() -> list[int]:
    """As threadpoolctl reads them (not through scratchnet.blas)."""
    return [count.library.get_num_threads() for count in thread_counts()]


def every(threads: int) -> list[int]:
    """``blas_threads()`` when every BLAS library (NumPy's, OpenCV's, ...) runs ``threads``."""
    return [threads] * len(thread_counts())


def set_blas_threads(threads: int) -> None:
    for count in thread_counts():
        count.set(threads)


@pytest.fixture(autouse=True)
def user_setting():
    before = blas_threads()
    set_blas_threads(USER)
    assert blas_threads() == every(USER)
    yield
    for count, threads in zip(thread_counts(), before, strict=True):
        count.set(threads)


def spy(record: list[list[int]], function):
    """``function`` that first notes the BLAS thread counts in ``record``."""
    def wrapped(*args, **kwargs):
        record.append(blas_threads())
        return function(*args, **kwargs)
    return wrapped


class Recording(dict):
    """A layer's ``params`` that note the BLAS thread counts each time the layer reads them."""

    def __init__(self, params: dict, record: list[list[int]]) -> None:
        super().__init__(params)
        self.record = record

    def __getitem__(self, key: str) -> np.ndarray:
        self.record.append(blas_threads())
        return super().__getitem__(key)


def test_dense_products_run_on_one_thread_called_directly():
    layer, seen = sn.Dense(64, 32, rng=0), []
    layer.params = Recording(layer.params, seen)
    y = layer.forward(np.ones((128, 64), np.float32))
    assert seen and all(s == every(1) for s in seen) and blas_threads() == every(USER)
    seen.clear()
    layer.backward(np.ones_like(y))
    assert seen and all(s == every(1) for s in seen) and blas_threads() == every(USER)


def test_im2col_convolution_runs_on_one_thread(monkeypatch):
    conv, seen = sn.Conv2D(3, 8, 5, padding=2, rng=0), []  # 5x5: the im2col path
    monkeypatch.setattr(kernels, "im2col", spy(seen, kernels.im2col))
    monkeypatch.setattr(kernels, "col2im", spy(seen, kernels.col2im))
    y = conv.forward(np.ones((4, 3, 16, 16), np.float32))
    assert blas_threads() == every(USER)
    conv.backward(np.ones_like(y))
    assert seen == [every(1)] * 2 and blas_threads() == every(USER)


def net_with_spy(seen: list[list[int]]) -> sn.Sequential:
    net = sn.Sequential([sn.Flatten(), sn.Dense(8, 16, rng=0), sn.ReLU(), sn.Dense(16, 2, rng=0)])
    relu = net.layers[2]
    relu.forward, relu.backward = spy(seen, relu.forward), spy(seen, relu.backward)
    return net


def test_the_public_loop_keeps_the_users_setting_between_steps():
    seen, between = [], []
    net = net_with_spy(seen)
    loss, opt = sn.SoftmaxCrossEntropy(), sn.SGD(net.parameters(), lr=0.1)
    x, y = np.ones((6, 2, 2, 2), np.float32), np.array([0, 1] * 3)
    for _ in range(3):
        z = net.forward(x, training=True)
        loss.forward(z, y)
        net.backward(loss.backward())
        opt.step()
        between.append(blas_threads())
        _ = np.ones((300, 300)) @ np.ones((300, 300))  # the user's own product, between steps
    assert seen == [every(1)] * 6 and between == [every(USER)] * 3


def test_fit_runs_the_layers_on_one_thread_and_callbacks_with_the_users_setting():
    seen, in_callbacks = [], []

    class Spy(sn.Callback):
        def on_batch_end(self, batch, logs):
            in_callbacks.append(blas_threads())

    net = net_with_spy(seen)
    net.fit(np.ones((4, 2, 2, 2), np.float32), np.array([0, 1, 0, 1]), batch_size=2,
            callbacks=[Spy()], verbose=0)
    net.predict(np.ones((3, 2, 2, 2), np.float32))
    assert seen == [every(1)] * 5 and in_callbacks == [every(USER)] * 2
    assert blas_threads() == every(USER)


def test_a_new_user_setting_is_read_on_the_next_call():
    seen = []
    net = net_with_spy(seen)
    x = np.ones((2, 2, 2, 2), np.float32)
    net.forward(x)
    with threadpool_limits(3, user_api="blas"):
        net.forward(x)
        assert blas_threads() == every(3)
    with threadpool_limits(1, user_api="blas"):
        net.forward(x)
        assert blas_threads() == every(1)
    assert seen == [every(1)] * 3 and blas_threads() == every(USER)


def test_the_setting_is_restored_when_a_layer_raises():
    with pytest.raises(ValueError, match="Dense: expected input"):
        sn.Dense(4, 2).forward(np.ones((2, 5), np.float32))
    assert blas_threads() == every(USER)
    calls = []
    inner = one_blas_thread(lambda: calls.append(blas_threads()))

    @one_blas_thread
    def outer():
        inner()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        outer()
    assert calls == [every(1)] and blas_threads() == every(USER)


def test_two_python_threads_calling_at_once_leave_the_users_setting():
    seen = []
    nets = [net_with_spy(seen) for _ in range(2)]
    start = threading.Barrier(2)

    def work(net: sn.Sequential) -> None:
        start.wait()
        for _ in range(200):
            net.backward(net.forward(np.ones((2, 2, 2, 2), np.float32)))

    threads = [threading.Thread(target=work, args=(net,)) for net in nets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # every product of both threads ran on one thread: neither restored the user's setting
    # while the other was still inside a call
    assert seen == [every(1)] * (2 * 2 * 200) and blas_threads() == every(USER)


def test_thread_counts_read_what_threadpoolctl_reads():
    for count in thread_counts():
        if count.library.internal_api == "openblas" and count.library.threading_layer != "openmp":
            assert not hasattr(count.get, "__self__")  # OpenBLAS's C function, not a method
    for threads in (1, 3, USER):
        with threadpool_limits(threads, user_api="blas"):
            assert [count.get() for count in thread_counts()] == every(threads)


def test_libraries_other_than_openblas_go_through_threadpoolctls_controller():
    class Controller:  # what threadpoolctl gives for, e.g., MKL
        internal_api, threading_layer, threads, released = "mkl", "intel", 4, 0

        def get_num_threads(self):
            return self.threads

        def set_num_threads(self, n):
            self.threads = n

        @classmethod
        def clear_controlling_thread(cls):
            cls.released += 1

    count = ThreadCount(Controller())
    assert count.get() == 4
    count.set(1)
    assert count.get() == 1 and Controller.released == 1
