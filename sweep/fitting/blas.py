"""One BLAS thread for the fits: every fit solves problems of 3-9 parameters, where BLAS threads never help, and on
a busy machine they hurt by orders of magnitude.

Measured on the development machine (2 cores, OpenBLAS 0.3.31 from scipy's wheel) while a sweep trained beside it:
50 Approach 3 bootstrap refits of the Chinchilla table took 25.0 s with OpenBLAS's default threads and 0.23 s with
one (L-BFGS-B's Fortran core calls BLAS on 5-vectors, and each call waited for threads that had no core). threadpoolctl
(the scikit-learn project's) sets the limit for the loaded BLAS libraries inside a block and restores it after, so
a training process that imports the fits keeps its own threads.
"""

from __future__ import annotations

import functools
import threading

from threadpoolctl import threadpool_limits

_inside = threading.local()


def one_blas_thread(function):
    """Run ``function`` with BLAS limited to one thread (module docstring). Nested calls (a bootstrap's thousand
    refits) pay for the limit once: setting it takes ~0.5 ms, a refit ~10 ms."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if getattr(_inside, "active", False):
            return function(*args, **kwargs)
        _inside.active = True
        try:
            with threadpool_limits(limits=1, user_api="blas"):
                return function(*args, **kwargs)
        finally:
            _inside.active = False

    return wrapper
