"""Split row-wise work into chunks that fit a working-memory budget."""

from __future__ import annotations

from collections.abc import Iterator

DEFAULT_WORKING_MEMORY_MIB = 128

__all__ = ["DEFAULT_WORKING_MEMORY_MIB", "chunk_size", "iter_chunks"]


def chunk_size(
    n_rows: int, bytes_per_row: int, working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB
) -> int:
    """Return how many rows of temporaries fit in ``working_memory_mib``.

    Parameters
    ----------
    n_rows : int
        Total number of rows.
    bytes_per_row : int
        Bytes of temporaries needed per row (e.g. ``8 * K * 3`` for a few (n, K) float64
        arrays).
    working_memory_mib : float
        Budget in MiB.

    Returns
    -------
    rows : int
        At least 1 and at most ``n_rows`` (or 1 for ``n_rows == 0``).
    """
    budget = max(float(working_memory_mib), 1e-3) * 2**20
    rows = int(budget // max(int(bytes_per_row), 1))
    return max(1, min(max(n_rows, 1), rows))


def iter_chunks(n_rows: int, rows_per_chunk: int) -> Iterator[slice]:
    """Yield consecutive row slices covering ``range(n_rows)``.

    Parameters
    ----------
    n_rows : int
        Total number of rows.
    rows_per_chunk : int
        Rows per slice (the last one may be shorter).

    Yields
    ------
    sl : slice
    """
    step = max(1, int(rows_per_chunk))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))
