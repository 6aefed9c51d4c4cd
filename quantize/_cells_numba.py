"""The grid cells of coarse-to-fine K-means as compiled loops (numba), for D <= 3.

:class:`quantize.cluster._cells.CellTree` puts points on a grid of ``2**bits`` cells per
axis and needs, per occupied cell in Morton order, its weight, weighted sum and weighted
sum of squared norms.  Numpy sorts the points by their Morton code (two 16-bit radix
passes), gathers them and reduces the runs: about 0.2 s for the 1.3 million distinct
colours of a 15-megapixel photo.  These two loops need no sort: :func:`cell_codes` writes
each point's code and counts the codes in a table of every possible code (``2**(D bits)``
counters), then turns the counts into the rank of each occupied code; :func:`cell_sums`
adds each point into its cell's row (about 0.05 s; benchmarks/README.md).

The grid is the numpy form's, operation for operation: cell ``floor((x - lo) / h)`` per
axis, the last cell also taking the maximum.  The sums add each cell's points in input
order, as the numpy form's stable sort and ``reduceat`` do.

The loops allocate nothing and cannot raise; they are compiled once into C-callable
functions whose machine code :mod:`quantize._native` caches and loads with llvmlite alone.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import carray, types

__all__ = ["KERNELS", "cell_codes", "cell_sums"]

_JIT: dict[str, Any] = {"nogil": True, "error_model": "numpy", "cache": False}


@numba.njit(**_JIT)
def cell_codes(
    X: np.ndarray,
    lo: np.ndarray,
    h: np.ndarray,
    spread: np.ndarray,
    table: np.ndarray,
    cell: np.ndarray,
    n_cells: np.ndarray,
) -> None:  # pragma: no cover - compiled; the tests compare it with numpy
    """Write each point's Morton code to ``cell`` and rank the occupied codes in ``table``.

    ``X`` (N, D) points; ``lo``, ``h`` (D,) the grid's origin and cell side per axis;
    ``spread`` (2**bits,) int64, the bits of each cell coordinate spread D places apart;
    ``table`` (2**(D bits),) int32, all zero on entry, on return the rank (in code order) of
    every occupied code and -1 elsewhere; ``n_cells[0]`` gets the number of occupied codes.
    """
    n, D = X.shape
    last = spread.shape[0] - 1
    for i in range(n):
        code = np.int64(0)
        for d in range(D):
            f = (X[i, d] - lo[d]) / h[d]
            if not f >= 0.0:  # (never, with lo the column's minimum: a guard against NaN)
                f = 0.0
            t = np.intp(f) if f < last else last  # the maximum lands on the last cell
            code |= spread[t] << (D - 1 - d)
        cell[i] = np.int32(code)
        table[code] += 1
    rank = np.int32(0)
    for c in range(table.shape[0]):
        if table[c]:
            table[c] = rank
            rank += 1
        else:
            table[c] = -1
    n_cells[0] = rank


@numba.njit(**_JIT)
def cell_sums(
    X: np.ndarray,
    w: np.ndarray,
    table: np.ndarray,
    cell: np.ndarray,
    codes: np.ndarray,
    W: np.ndarray,
    S: np.ndarray,
    Q: np.ndarray,
) -> None:  # pragma: no cover - compiled; the tests compare it with numpy
    """Add every point into its cell's row; ``cell`` becomes each point's cell (its rank).

    ``table`` and ``cell`` as :func:`cell_codes` left them; ``codes`` (B,) int64 gets each
    cell's Morton code; ``W`` (B,), ``S`` (B, D) and ``Q`` (B,), all zero on entry, get the
    cells' weights, weighted sums and weighted sums of squared norms.
    """
    n, D = X.shape
    for i in range(n):
        code = cell[i]
        r = table[code]
        cell[i] = r
        codes[r] = code
        wi = w[i]
        q = 0.0
        for d in range(D):
            x = X[i, d]
            S[r, d] += wi * x
            q += x * x
        W[r] += wi
        Q[r] += wi * q


# ---------------------------------------------------------------- C-callable entry points
_f64, _i32, _i64, _n = (
    types.CPointer(types.float64),
    types.CPointer(types.int32),
    types.CPointer(types.int64),
    types.intp,
)


@numba.cfunc(types.void(_f64, _n, _n, _f64, _f64, _i64, _n, _i32, _i32, _i64), error_model="numpy")
def c_cell_codes(x, n, d, lo, h, spread, bits, table, cell, n_cells):  # pragma: no cover
    """:func:`cell_codes` on raw buffers: ``n`` points of ``d`` coordinates, ``bits`` per axis."""
    cell_codes(
        carray(x, (n, d)),
        carray(lo, (d,)),
        carray(h, (d,)),
        carray(spread, (1 << bits,)),
        carray(table, (1 << (d * bits),)),
        carray(cell, (n,)),
        carray(n_cells, (1,)),
    )


@numba.cfunc(
    types.void(_f64, _f64, _n, _n, _n, _n, _i32, _i32, _i64, _f64, _f64, _f64),
    error_model="numpy",
)
def c_cell_sums(x, w, n, d, bits, b, table, cell, codes, W, S, Q):  # pragma: no cover
    """:func:`cell_sums` on raw buffers: ``b`` cells (as :func:`cell_codes` counted them)."""
    cell_sums(
        carray(x, (n, d)),
        carray(w, (n,)),
        carray(table, (1 << (d * bits),)),
        carray(cell, (n,)),
        carray(codes, (b,)),
        carray(W, (b,)),
        carray(S, (b, d)),
        carray(Q, (b,)),
    )


#: The entry points, by name.
KERNELS = {"cell_codes": c_cell_codes, "cell_sums": c_cell_sums}
