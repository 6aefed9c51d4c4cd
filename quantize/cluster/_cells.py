"""Regular grid cells at several resolutions over weighted points (coarse-to-fine K-means).

The points are put on a regular grid of ``2**bits`` cells per axis over their bounding box
and their cells taken in Morton (Z-) order, so that the cells of every coarser grid (``2**L``
cells per axis: the first ``L`` bits of each cell coordinate) own contiguous runs of finer
cells.  The finest cells' weights ``W``, weighted sums ``S`` and weighted sums of squared
norms ``Q`` come from one pass over the points (compiled, :mod:`quantize._cells_numba`; or
numpy, after sorting the points by code); each coarser level's come from runs of the finer
level's, and the means are ``S / W``.

Lloyd on the cell means with weights ``W`` is Lloyd restricted to partitions that keep each
cell together; its inertia plus the within-cell scatter ``sum(Q - |S|^2 / W)`` is the exact
inertia of that partition of the points.  A fine grid's partitions include the coarse
grid's, so a fit can go from coarse cells to fine cells to the points without its inertia
ever going up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from quantize import _native

__all__ = ["LEVELS", "CellTree"]

LEVELS = (5, 6, 7)  # bits per axis of the grids kept, coarse to fine
_BITS = LEVELS[-1]
_MAX_DIMS = 4
_NATIVE_MAX_DIMS = 3  # the compiled loops count codes in a table of 2**(D * 7) entries
#: Points from which a cell tree loads the compiled loops if this process has not loaded
#: them yet (0.03 s from their cache file, about what they save on 250,000 points).
_KERNEL_LOAD_MIN_POINTS = 1 << 18


def _sq_norms(X: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", X, X)


def _spread_bits(D: int, bits: int) -> np.ndarray:
    """Lookup table: value v (< 2**bits) -> its bits spread D places apart (Morton code)."""
    v = np.arange(1 << bits, dtype=np.int64)
    out = np.zeros_like(v)
    for b in range(bits):
        out |= ((v >> b) & 1) << (b * D)
    return out


def _radix_argsort(code: np.ndarray, n_bits: int) -> np.ndarray:
    """Stable argsort of non-negative codes below ``2**n_bits`` (numpy's 16-bit radix sort)."""
    order = None
    for shift in range(0, max(n_bits, 1), 16):
        digit = ((code >> shift) & 0xFFFF).astype(np.uint16)
        if order is None:
            order = np.argsort(digit, kind="stable")
        else:
            order = order[np.argsort(digit[order], kind="stable")]
    assert order is not None
    return order


def _compiled_loops(n: int, D: int) -> Any:
    """Return the compiled loops (:class:`quantize._native.Kernels`) for N points in D dims.

    None where the numpy form runs: D > 3, the loops unavailable, or not loaded yet for
    fewer than :data:`_KERNEL_LOAD_MIN_POINTS` points.
    """
    return None if D > _NATIVE_MAX_DIMS else _native.kernels_for(n, _KERNEL_LOAD_MIN_POINTS)


@dataclass
class _Level:
    first: np.ndarray  # (B,) first finest cell of each cell (all of them at the finest level)
    W: np.ndarray  # (B,) weights
    S: np.ndarray  # (B, D) weighted sums
    Q: np.ndarray  # (B,) weighted sums of squared norms


class CellTree:
    """Grid cells at the resolutions :data:`LEVELS` over weighted points.

    The finest cells come from the compiled loops (:mod:`quantize._cells_numba`, no sort)
    where they are available and D <= 3, else from a radix sort of the points' Morton codes;
    the two give the same cells in the same order.

    Parameters
    ----------
    X : ndarray of shape (N, D), float64
        Points (D <= 4), not modified.
    w : ndarray of shape (N,)
        Positive weights.
    """

    def __init__(self, X: np.ndarray, w: np.ndarray) -> None:
        n, D = X.shape
        if D > _MAX_DIMS:
            raise ValueError(f"a cell tree needs at most {_MAX_DIMS} dimensions, got {D}")
        self.n = n
        # column by column: numpy's axis-0 reductions of an (N, 3) array are slow
        lo = np.array([X[:, d].min() for d in range(D)])
        span = np.array([X[:, d].max() for d in range(D)]) - lo
        cells = 1 << _BITS
        h = np.where(span > 0, span / cells, 1.0)
        spread = _spread_bits(D, _BITS)
        self._cell: np.ndarray | None = None  # each point's finest cell, once known
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # (order, run starts)
        native = _compiled_loops(n, D)
        if native is not None:
            self._cell, cell_code, W, S, Q = native.cell_stats(
                np.ascontiguousarray(X, np.float64),
                np.ascontiguousarray(w, np.float64),
                lo,
                h,
                spread,
            )
        else:
            cell_code, W, S, Q = self._sorted_cells(X, w, lo, h, spread)
        level = _Level(np.arange(W.size), W, S, Q)
        self._levels: dict[int, _Level] = {_BITS: level}
        # coarser levels from the finer cells: Morton order keeps each coarse cell's run
        finer = _BITS
        for L in reversed(LEVELS[:-1]):
            parent = cell_code >> (D * (finer - L))  # the first L bits of each coordinate
            finer = L
            first = np.flatnonzero(np.r_[True, parent[1:] != parent[:-1]])
            level = _Level(
                level.first[first],
                np.add.reduceat(level.W, first),
                np.add.reduceat(level.S, first, axis=0),
                np.add.reduceat(level.Q, first),
            )
            self._levels[L] = level
            cell_code = parent[first]

    def _sorted_cells(
        self, X: np.ndarray, w: np.ndarray, lo: np.ndarray, h: np.ndarray, spread: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """Return the finest cells (codes, W, S, Q) by sorting the Morton codes (numpy)."""
        n, D = X.shape
        cells = 1 << _BITS
        code = np.zeros(n, dtype=np.intp)
        for d in range(D):
            t = X[:, d] - lo[d]  # >= 0 exactly: lo is the column's minimum
            t /= h[d]
            idx = t.astype(np.intp)
            np.minimum(idx, cells - 1, out=idx)  # the maximum lands on the last cell
            code |= np.take(spread << (D - 1 - d), idx)
        order = _radix_argsort(code, D * _BITS)
        # np.take: about three times faster than X[order] for this (N, D) gather
        code = np.take(code, order)
        Xs = np.take(X, order, axis=0)
        ws = np.take(w, order)
        new = np.r_[True, code[1:] != code[:-1]]
        start = np.flatnonzero(new)
        # column by column again: reduceat along axis 0 of an (N, D) array is slow
        S = np.empty((start.size, D))
        for d in range(D):
            S[:, d] = np.add.reduceat(ws * Xs[:, d], start)
        self._sorted = (order, start)
        W = np.add.reduceat(ws, start)
        return code[start], W, S, np.add.reduceat(ws * _sq_norms(Xs), start)

    def n_cells(self, bits: int) -> int:
        """Return the number of occupied cells of the grid with ``bits`` bits per axis."""
        return int(self._levels[bits].W.size)

    def cells(self, bits: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Cell means (B, D), cell weights (B,) and the total within-cell scatter."""
        lv = self._levels[bits]
        scatter = float(np.maximum(lv.Q - _sq_norms(lv.S) / lv.W, 0.0).sum())
        return np.ascontiguousarray(lv.S / lv.W[:, None]), lv.W, scatter

    def cell_of(self, bits: int) -> np.ndarray:
        """Cell index (into :meth:`cells`'s rows) of every point, shape (N,), input order."""
        if self._cell is None:
            assert self._sorted is not None
            order, start = self._sorted
            sizes = np.diff(np.r_[start, self.n])
            self._cell = np.empty(self.n, dtype=np.intp)
            self._cell[order] = np.repeat(np.arange(start.size), sizes)
        lv = self._levels[bits]
        of_finest = np.zeros(self._levels[_BITS].W.size, dtype=np.intp)
        of_finest[lv.first[1:]] = 1
        return np.cumsum(of_finest)[self._cell]
