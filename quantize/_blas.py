"""One BLAS thread: the engine's own loops are the parallel part.

OpenBLAS (numpy's BLAS) starts a thread per core for every matrix product.  The engine's
products are thin, (points x 3-4) times (4 x K), and run in many small chunks, and its Lloyd
passes already run two threads over the points; BLAS threads on top of that mostly spin.
Measured on a 2-core machine under load: greedy k-means++ for K = 256 on 34 k colours took
3.6 s CPU with OpenBLAS's threads and 0.3 s with one; a whole ``vq quantize -k 256 --dither
fs`` on a 4 MP photo 4.8 s CPU against 1.8 s.
"""

from __future__ import annotations

__all__ = ["limit_blas_threads"]

_done = False


def limit_blas_threads() -> None:
    """Limit every loaded BLAS library of this process to one thread (once; idempotent).

    Called by the entry points (``vq``, the desktop app, batch workers).  Library users who
    run the engine in their own process can call it too.
    """
    global _done
    if _done:
        return
    _done = True
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency; without it BLAS keeps its threads
        return
    threadpool_limits(limits=1, user_api="blas")
