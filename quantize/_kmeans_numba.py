"""The K-means assignment step as compiled loops (numba), for three-dimensional points.

:func:`nearest_all` finds each point's nearest centre by measuring every centre;
:func:`bounded_update` is the E step of one Lloyd iteration with Hamerly's two bounds per
point (an upper bound on the distance to its centre, a lower bound on the distance to every
other centre) and, where a point's bounds no longer prove its centre, a search of the
centres sorted by their distance from its old centre (Newling and Fleuret's annular idea,
"Fast k-means with accurate bounds", ICML 2016): a centre ``c`` can only beat the best
distance ``b`` found so far if ``||c - c_old|| <= u + b``, where ``u`` is the point's distance
to its old centre, so the sorted search stops at the first centre farther than
``u + second best``, which also gives the new lower bound.

The rule is that of :mod:`quantize.cluster._nearest`: the exact float64 squared distance
``(x0 - c0)**2 + (x1 - c1)**2 + (x2 - c2)**2``, ties to the lowest index.  Every bound is
kept on the safe side of float64 rounding by ``eps`` (the caller's margin), and the pruning
tests are strict, so a pruned point has no centre as near as its own.

The loops allocate nothing and cannot raise; they are compiled once into C-callable
functions whose machine code :mod:`quantize._native` caches and loads with llvmlite alone.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import carray, types

__all__ = ["KERNELS", "bounded_update", "nearest_all"]

_JIT: dict[str, Any] = {"nogil": True, "error_model": "numpy", "cache": False}


@numba.njit(**_JIT)
def nearest_all(
    X: np.ndarray,
    C: np.ndarray,
    labels: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    second: np.ndarray,
    i0: int,
    i1: int,
) -> None:  # pragma: no cover - compiled; the tests compare it with the numpy search
    """Nearest centre of the points ``i0:i1`` by measuring all ``K`` centres.

    Writes ``labels[i]``, ``upper[i]`` (the distance to that centre), ``lower[i]`` (the
    distance to the second nearest, ``inf`` when ``K == 1``) and ``second[i]`` (the second
    nearest, -1 when ``K == 1``).  Ties go to the lower index.  X is (N, 3), C is (K, 3).
    """
    K = C.shape[0]
    for i in range(i0, i1):
        x0 = X[i, 0]
        x1 = X[i, 1]
        x2 = X[i, 2]
        best = 0
        runner = -1
        bd = np.inf
        sd = np.inf
        for j in range(K):
            a0 = x0 - C[j, 0]
            a1 = x1 - C[j, 1]
            a2 = x2 - C[j, 2]
            d = a0 * a0 + a1 * a1 + a2 * a2
            if d < bd:
                sd = bd
                runner = best if j > 0 else -1
                bd = d
                best = j
            elif d < sd:
                sd = d
                runner = j
        labels[i] = best
        upper[i] = np.sqrt(bd)
        lower[i] = np.sqrt(sd)
        second[i] = runner


@numba.njit(**_JIT)
def bounded_update(
    X: np.ndarray,
    C: np.ndarray,
    labels: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    shift: np.ndarray,
    half: np.ndarray,
    near_idx: np.ndarray,
    near_dist: np.ndarray,
    max_shift: float,
    max_shift_other: float,
    argmax_shift: int,
    eps: float,
    i0: int,
    i1: int,
    changed: np.ndarray,
    old: np.ndarray,
    counts: np.ndarray,
) -> None:  # pragma: no cover - compiled; the tests compare it with the numpy E step
    """E step of one Lloyd iteration for the points ``i0:i1`` (Hamerly bounds, sorted search).

    Parameters
    ----------
    X : (N, 3) float64; C : (K, 3) float64, the new centres
    labels : (N,) int32, the old labels, updated in place
    upper, lower : (N,) float64, the bounds before the centres moved, updated in place
    shift : (K,) float64, each centre's move plus ``eps``
    half : (K,) float64, half the distance from each centre to its nearest other, minus eps
    near_idx, near_dist : (K, K - 1) int32 and float64, the other centres of each centre in
        order of distance, and those distances (``near_dist`` minus ``eps``: never too large)
    max_shift, max_shift_other : the largest entry of ``shift`` and the largest other than
        the entry ``argmax_shift``
    eps : the margin of float64 rounding
    changed, old : (i1 - i0,) intp and int32, filled with the points that changed centre
        and their old labels; ``counts[0]`` receives how many, ``counts[1]`` how many points
        were searched.
    """
    n_near = near_idx.shape[1]
    n_changed = 0
    n_searched = 0
    for i in range(i0, i1):
        a = labels[i]
        u = upper[i] + shift[a]
        low = lower[i] - (max_shift_other if a == argmax_shift else max_shift)
        bound = max(low, half[a])
        if u < bound:
            upper[i] = u
            lower[i] = low
            continue
        x0 = X[i, 0]
        x1 = X[i, 1]
        x2 = X[i, 2]
        a0 = x0 - C[a, 0]
        a1 = x1 - C[a, 1]
        a2 = x2 - C[a, 2]
        best_sq = a0 * a0 + a1 * a1 + a2 * a2
        u = np.sqrt(best_sq)
        if u + eps < bound:
            upper[i] = u + eps
            lower[i] = low
            continue
        n_searched += 1
        u_old = u
        best = a
        best_d = u
        second = np.inf
        beyond = np.inf  # the distance from c_a of the first centre not measured
        for t in range(n_near):
            cc = near_dist[a, t]
            if cc > u_old + second + eps:
                beyond = cc
                break
            j = near_idx[a, t]
            a0 = x0 - C[j, 0]
            a1 = x1 - C[j, 1]
            a2 = x2 - C[j, 2]
            d = a0 * a0 + a1 * a1 + a2 * a2
            if d < best_sq or (d == best_sq and j < best):
                second = best_d
                best_sq = d
                best_d = np.sqrt(d)
                best = j
            else:
                dd = np.sqrt(d)
                if dd < second:
                    second = dd
        upper[i] = best_d + eps
        lower[i] = min(second, beyond - u_old) - eps
        if best != a:
            labels[i] = best
            changed[n_changed] = i
            old[n_changed] = a
            n_changed += 1
    counts[0] = n_changed
    counts[1] = n_searched


# ---------------------------------------------------------------- C-callable entry points
_f64, _i32, _n = types.CPointer(types.float64), types.CPointer(types.int32), types.intp
_np = types.CPointer(types.intp)


@numba.cfunc(types.void(_f64, _n, _f64, _n, _i32, _f64, _f64, _i32, _n, _n), error_model="numpy")
def c_nearest_all(x, n, c, k, labels, upper, lower, second, i0, i1):  # pragma: no cover
    """:func:`nearest_all` on raw buffers."""
    nearest_all(
        carray(x, (n, 3)),
        carray(c, (k, 3)),
        carray(labels, (n,)),
        carray(upper, (n,)),
        carray(lower, (n,)),
        carray(second, (n,)),
        i0,
        i1,
    )


@numba.cfunc(
    types.void(
        *(_f64, _n, _f64, _n, _i32, _f64, _f64, _f64, _f64, _i32, _f64),
        *(types.float64, types.float64, types.intp, types.float64, _n, _n, _np, _i32, _np),
    ),
    error_model="numpy",
)
def c_bounded_update(  # pragma: no cover
    x,
    n,
    c,
    k,
    labels,
    upper,
    lower,
    shift,
    half,
    near_idx,
    near_dist,
    max_shift,
    max_shift_other,
    argmax_shift,
    eps,
    i0,
    i1,
    changed,
    old,
    counts,
):
    """:func:`bounded_update` on raw buffers (``changed`` and ``old`` hold ``i1 - i0``)."""
    n_near = max(k - 1, 0)
    bounded_update(
        carray(x, (n, 3)),
        carray(c, (k, 3)),
        carray(labels, (n,)),
        carray(upper, (n,)),
        carray(lower, (n,)),
        carray(shift, (k,)),
        carray(half, (k,)),
        carray(near_idx, (k, n_near)),
        carray(near_dist, (k, n_near)),
        max_shift,
        max_shift_other,
        argmax_shift,
        eps,
        i0,
        i1,
        carray(changed, (i1 - i0,)),
        carray(old, (i1 - i0,)),
        carray(counts, (2,)),
    )


#: The entry points, by name.
KERNELS = {"nearest_all": c_nearest_all, "bounded_update": c_bounded_update}
