"""The thread policy of scratchnet's own matrix products: BLAS runs them on one thread.

NumPy hands every matrix product (``@``) to a BLAS library (OpenBLAS in NumPy's wheels, MKL,
BLIS, ...), which by default splits a large enough product over all cores. In scratchnet the
products are few and small (``Dense`` and the im2col path of ``Conv2D``) and sit between Numba
kernels that already keep both cores busy, and a second BLAS thread costs more than it saves:

* after a product on two threads, OpenBLAS's worker thread keeps spinning for ~0.1 s (2^28
  clock cycles) waiting for the next product, on one of the cores the next parallel
  convolution needs;
* on a busy machine the product itself waits for its worker to be scheduled: LivenessNet's
  first dense layer took 44-66 ms per training step at batch 8 instead of 0.3-0.4 ms.

So every function of the library that calls BLAS is decorated with :func:`one_blas_thread`.
On entry it reads each BLAS library's thread count; those above one are set to one, and on
return set back to what they were. The user's own products before and after a call run with
the user's setting, and a setting changed between two calls is read afresh on the next: nothing
is cached but the handles on the libraries (threadpoolctl's controllers, found once). Calls
made from inside a decorated call (``Sequential.forward`` running ``Dense.forward``) find the
work done and cost one attribute lookup. Optimizers and the other layers call no BLAS.

The thread count of OpenBLAS is process-wide: while a scratchnet call runs, products in other
Python threads run on one thread too. A thread only restores what it changed itself, so two
threads calling scratchnet at once never leave BLAS on one thread after both have returned.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from threadpoolctl import ThreadpoolController

F = TypeVar("F", bound=Callable[..., Any])

_state = threading.local()  # .inside: this Python thread is in a decorated call
_libraries: list[Any] | None = None  # threadpoolctl's controllers of the loaded BLAS libraries


def blas_libraries() -> list[Any]:
    """threadpoolctl's controllers of the BLAS libraries in this process (found on first use:
    NumPy, which loads its BLAS, is imported by then)."""
    global _libraries
    if _libraries is None:
        _libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    return _libraries


def _limit_to_one() -> list[tuple[Any, int]]:
    """Set every BLAS library that runs on several threads to one; return the libraries
    changed, with their previous thread counts."""
    changed = []
    for library in blas_libraries():
        threads = library.get_num_threads() or 1
        if threads > 1:
            library.set_num_threads(1)
            if library.get_num_threads() == 1:  # (not if another Python thread holds the role)
                changed.append((library, threads))
    return changed


def _restore(changed: list[tuple[Any, int]]) -> None:
    for library, threads in changed:
        library.set_num_threads(threads)
        # threadpoolctl lets one Python thread at a time change a process-wide pool; give that
        # role back, as its own ``threadpool_limits`` does on exit (in versions that have it).
        release = getattr(type(library), "clear_controlling_thread", None)
        if release is not None:
            release()


def one_blas_thread(function: F) -> F:
    """Decorator: ``function`` runs with every BLAS library on one thread; the previous thread
    counts are back when it returns or raises (see the module docstring)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if getattr(_state, "inside", False):
            return function(*args, **kwargs)
        changed = _limit_to_one()
        _state.inside = True
        try:
            return function(*args, **kwargs)
        finally:
            _state.inside = False
            _restore(changed)

    return wrapper  # type: ignore[return-value]
