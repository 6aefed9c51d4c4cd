"""One BLAS thread: the engine's own loops are the parallel part.

OpenBLAS (numpy's BLAS) starts a thread per core for every matrix product.  The engine's
products are thin, (points x 3-4) times (4 x K), and run in many small chunks, and its Lloyd
passes already run two threads over the points; BLAS threads on top of that mostly spin.
Measured on a 2-core machine under load: greedy k-means++ for K = 256 on 34 k colours took
3.6 s CPU with OpenBLAS's threads and 0.3 s with one; a whole ``vq quantize -k 256 --dither
fs`` on a 4 MP photo 4.8 s CPU against 1.8 s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["limit_blas_threads", "matmul", "one_blas_thread"]


def limit_blas_threads() -> None:
    """Limit every BLAS library loaded so far in this process to one thread.

    Called by the entry points (``vq``, the desktop app, batch workers).  Library users who
    run the engine in their own process can call it too.  A library loaded later (SciPy brings
    its own OpenBLAS) keeps its threads until the next call: the desktop window calls it again
    after its warm-up run has imported SciPy.  A call costs 1-6 ms.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency; without it BLAS keeps its threads
        return
    threadpool_limits(limits=1, user_api="blas")


_CONTROLLER: Any = None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the body with the BLAS library limited to one thread (if threadpoolctl is there).

    The mixture's E step multiplies tall, thin matrices ((chunk, 10) by (10, K)): memory-bound
    work that a second BLAS thread does not speed up, while OpenBLAS's spinning threads on a
    busy 2-core machine made one pass over 323 000 colours take 1.2-2.0 s instead of
    0.2-0.4 s (benchmarks/README.md).

    Yields
    ------
    None
    """
    global _CONTROLLER
    try:
        if _CONTROLLER is None:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER = ThreadpoolController()
        limiter = _CONTROLLER.limit(limits=1, user_api="blas")
    except Exception:  # no threadpoolctl, or no BLAS it knows: run as is
        yield
        return
    with limiter:
        yield


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Multiply finite matrices (``a @ b``) without OpenBLAS's spurious invalid-value flag.

    Some OpenBLAS kernels (selected at run time by the CPU) raise the floating-point
    "invalid" flag on finite inputs, for instance by scaling an uninitialised output buffer
    by beta = 0 (numpy issues #13173 and #24067, OpenBLAS #1924); numpy then warns "invalid
    value encountered in matmul" although the product is right.  It happened once in CI, on
    another machine, inside the K-means nearest-centre search.  The engine's products are
    of validated, finite colours and centres, so the flag carries no information there; it is
    ignored for this product only (in the calling thread: safe in worker threads too).

    Parameters
    ----------
    a : ndarray of shape (n, m) (or a stack (..., n, m))
    b : ndarray of shape (m, p)

    Returns
    -------
    product : ndarray of shape (n, p)
    """
    with np.errstate(invalid="ignore"):
        return np.matmul(a, b)
