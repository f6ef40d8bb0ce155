"""The thread policy of scratchnet's own matrix products: BLAS runs them on one thread.

NumPy hands every matrix product (``@``) to a BLAS library (OpenBLAS in NumPy's wheels, MKL,
BLIS, ...), which by default splits a large enough product over all cores. In scratchnet the
products are few and small (``Dense`` and the im2col path of ``Conv2D``) and sit between Numba
kernels that already keep both cores busy, and a second BLAS thread costs more than it saves:

* after a product on two threads, OpenBLAS's worker thread keeps spinning for ~0.1 s (2^28
  clock cycles) waiting for the next product, on one of the cores the next parallel
  convolution needs;
* on a busy machine the product itself waits for its worker to be scheduled: LivenessNet's
  first dense layer took 44-66 ms per training step at batch 8 instead of 0.25-0.32 ms.

So every function of the library that calls BLAS is decorated with :func:`one_blas_thread`.
The policy is process-wide, as OpenBLAS's thread count is: the first decorated call to start
(in any Python thread) reads each BLAS library's thread count and sets those above one to one;
the last decorated call to return sets them back to what they were. A counter under a lock
tells first from last, so calls nested inside others (``Sequential.forward`` running
``Dense.forward``) and calls from two Python threads at once change nothing but the counter,
and no call can restore the user's setting while another one still runs. The user's own
products before and after a call run with the user's setting, and a setting changed between
two calls is read afresh on the next: nothing is cached but the handles on the libraries
(found once with threadpoolctl). While a scratchnet call runs, products in other Python
threads run on one thread too. Optimizers and the other layers call no BLAS.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from threadpoolctl import ThreadpoolController

F = TypeVar("F", bound=Callable[..., Any])

_counts: list[ThreadCount] | None = None  # one per BLAS library in the process, found once
_lock = threading.Lock()  # guards the two below
_running = 0  # decorated calls running now, in every Python thread
_changed: list[tuple[ThreadCount, int]] = []  # what the first of them set to one, and from what


class ThreadCount:
    """Reads (``get()``) and sets (``set(n)``) the thread count of one BLAS library, given
    threadpoolctl's controller of it.

    OpenBLAS on its own threads (as in NumPy's wheels) is driven through its C functions
    directly: through the controller's methods, whose Python runs around the same C calls,
    LivenessNet's batch-1 forward took 431 instead of 415 us (fastest of 40 alternating rounds
    of 100; the bare C call: 415). Other libraries (MKL, BLIS, OpenBLAS on OpenMP) go through
    the controller, which knows their functions.
    """

    def __init__(self, library: Any) -> None:
        self.library = library
        self.get: Callable[[], int] = library.get_num_threads
        self.set: Callable[[int], None] = self._set_through_threadpoolctl
        if library.internal_api == "openblas" and library.threading_layer != "openmp":
            # the names OpenBLAS builds give these two functions (as threadpoolctl looks them up)
            for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
                get = getattr(library.dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
                if get is not None:
                    self.get = get
                    self.set = getattr(library.dynlib, f"{prefix}openblas_set_num_threads{suffix}")
                    break

    def _set_through_threadpoolctl(self, threads: int) -> None:
        self.library.set_num_threads(threads)
        # threadpoolctl lets one Python thread at a time change a process-wide pool; give that
        # role back, as its own ``threadpool_limits`` does on exit (in versions that have it).
        release = getattr(type(self.library), "clear_controlling_thread", None)
        if release is not None:
            release()


def thread_counts() -> list[ThreadCount]:
    """A :class:`ThreadCount` for each BLAS library in this process (found on first use: NumPy,
    which loads its BLAS, is imported by then)."""
    global _counts
    if _counts is None:
        libraries = ThreadpoolController().select(user_api="blas").lib_controllers
        _counts = [ThreadCount(library) for library in libraries]
    return _counts


def _limit_to_one() -> list[tuple[ThreadCount, int]]:
    """Set every BLAS library that runs on several threads to one; return those changed, with
    their previous thread counts."""
    changed = []
    for count in thread_counts():
        threads = count.get() or 1
        if threads > 1:
            count.set(1)
            if count.get() == 1:  # (through threadpoolctl: not if another thread holds the role)
                changed.append((count, threads))
    return changed


def one_blas_thread(function: F) -> F:
    """Decorator: ``function`` runs with every BLAS library on one thread; the previous thread
    counts are back when the last running decorated call returns or raises (see the module
    docstring)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _running, _changed
        with _lock:
            if _running == 0:
                _changed = _limit_to_one()
            _running += 1
        try:
            return function(*args, **kwargs)
        finally:
            with _lock:
                _running -= 1
                if _running == 0:
                    for count, threads in _changed:
                        count.set(threads)

    return wrapper  # type: ignore[return-value]
