"""Floyd–Steinberg error diffusion as one compiled raster loop (numba), row band by row band.

The same arithmetic as :func:`quantize.render._diffuse` (the numpy wavefront form), in the
same float32 operations and the same order, so the two give the same indices to the bit
(the tests compare them on random images).  Imported only through
:func:`quantize.render.compiled_diffusion`; without numba the numpy form runs.

A pixel's pending error is kept in two row buffers: ``cur`` sums the 1/16 and 5/16 terms
from the row above and the 7/16 term from the left, ``cur3`` the 3/16 term from the row
above, added last (the order in which the wavefront form adds them).  Column ``x`` of the
image is entry ``x + 1`` of the buffers.

The loops allocate nothing and cannot raise (numpy's error model, no bounds checks): they
are compiled once into C-callable functions (:data:`KERNELS`) whose machine code
:mod:`quantize._native` keeps and later loads with llvmlite alone.  Importing this
module imports numba and compiles them (a few seconds); a run that finds the machine code
cached never imports it.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import carray, types

__all__ = ["KERNELS"]

#: Options of every loop: no interpreter lock, numpy's error model (no ZeroDivisionError
#: path); compiled into the object code only, so numba's own cache is not used.
_JIT: dict[str, Any] = {"nogil": True, "error_model": "numpy", "cache": False}


@numba.njit(**_JIT)
def _nearest(
    v0: float, v1: float, v2: float, pal: np.ndarray, items: np.ndarray, lo: int, hi: int
) -> int:  # pragma: no cover
    """Return the exact nearest of the entries ``items[lo:hi]`` (ascending).

    Float64 distances, ties to the lowest index: the rule of :mod:`quantize.cluster._nearest`.
    """
    best = 0
    best_d = np.inf
    for i in range(lo, hi):
        j = items[i]
        a = v0 - pal[j, 0]
        b = v1 - pal[j, 1]
        c = v2 - pal[j, 2]
        d = a * a + b * b + c * c
        if d < best_d:
            best_d = d
            best = j
    return best


#: Bits per channel of the grid of candidate lists (32 cells of 8 levels per channel).
CELL_BITS = 5


@numba.njit(**_JIT)
def candidate_lists(  # pragma: no cover
    pal64: np.ndarray,
    dist: np.ndarray,
    offsets: np.ndarray,
    items: np.ndarray,
    fill: bool,
    s0: float,
    s1: float,
    s2: float,
) -> None:
    """For each cell of 8 x 8 x 8 integer colours, the entries that can be nearest to one.

    Distances are those of the search, ``|x - p| = |s * (x - p)|`` with the channel scales
    ``s = (s0, s1, s2)``; ``pal64`` holds the scaled entries ``s * p``.  With ``m`` the
    cell's centre, ``r`` the largest distance from it to an integer colour of the cell and
    ``b`` the entry nearest to ``m``: every colour ``q`` of the cell has
    ``|q - b| <= |m - b| + r`` (a norm's triangle inequality), and an entry ``j`` with
    ``|m - j| - r > |m - b| + r`` is farther from every ``q`` than ``b``, so it is left
    out.  Every entry that can be nearest (ties included) stays, in index order; a small
    margin covers rounding.

    Called twice: without ``fill`` it writes each cell's count to ``offsets[c + 1]``; the
    caller turns the counts into offsets (a cumulative sum) and sizes ``items``, which the
    call with ``fill`` fills.

    Parameters
    ----------
    pal64 : ndarray of shape (K, 3), float64
        The palette times the channel scales.
    dist : ndarray of shape (K,), float64
        Scratch.
    offsets : ndarray of shape (32**3 + 1,), int32
        Entries of cell ``c``: ``items[offsets[c]:offsets[c + 1]]``.
    items : ndarray of shape (offsets[-1],), int32
        (Any size without ``fill``.)
    fill : bool
    s0, s1, s2 : float
        Channel scales of the distance (all 1: plain sRGB distance).
    """
    k = pal64.shape[0]
    per = 1 << CELL_BITS
    side = 256 // per
    half = (side - 1) / 2.0
    r = half * np.sqrt(s0 * s0 + s1 * s1 + s2 * s2)
    for c in range(per * per * per):
        m0 = ((c >> (2 * CELL_BITS)) * side + half) * s0
        m1 = (((c >> CELL_BITS) & (per - 1)) * side + half) * s1
        m2 = ((c & (per - 1)) * side + half) * s2
        best = np.inf
        for j in range(k):
            a = m0 - pal64[j, 0]
            b = m1 - pal64[j, 1]
            d = m2 - pal64[j, 2]
            dist[j] = np.sqrt(a * a + b * b + d * d)
            best = min(best, dist[j])
        limit = best + 2.0 * r + 1e-6 * (best + 2.0 * r + 1.0)
        n_in = 0
        for j in range(k):
            if dist[j] <= limit:
                if fill:
                    items[offsets[c] + n_in] = j
                n_in += 1
        if not fill:
            offsets[c + 1] = n_in


@numba.njit(**_JIT)
def _cell(q0: float, q1: float, q2: float) -> int:  # pragma: no cover
    """Return the :func:`candidate_lists` cell of an integer colour."""
    return (
        (int(q0) >> (8 - CELL_BITS)) << (2 * CELL_BITS)
        | (int(q1) >> (8 - CELL_BITS)) << CELL_BITS
        | (int(q2) >> (8 - CELL_BITS))
    )


@numba.njit(**_JIT)
def diffuse_rows(  # pragma: no cover - compiled; the tests compare it with the numpy form
    rgb: np.ndarray,
    take: np.ndarray,
    give: np.ndarray,
    pal64: np.ndarray,
    pal: np.ndarray,
    table: np.ndarray,
    offsets: np.ndarray,
    items: np.ndarray,
    has_give: bool,
    direct: bool,
    limited: bool,
    cap_sq: np.float32,
    drop_sq: np.float32,
    lo: np.float32,
    hi: np.float32,
    s0: float,
    s1: float,
    s2: float,
    cur: np.ndarray,
    cur3: np.ndarray,
    nxt: np.ndarray,
    nxt3: np.ndarray,
    out: np.ndarray,
    y0: int,
    y1: int,
) -> None:
    """Diffuse rows ``y0:y1``, carrying the pending error of the next row in ``cur``/``cur3``.

    Parameters
    ----------
    rgb : ndarray of shape (M, N, 3), uint8
    take : ndarray of shape (M, N), float32
        Share of its pending error each pixel takes (zero where transparent).
    give : ndarray of shape (M, N), float32
        Share of its own error each pixel passes on (transparent pixels: 0), read when
        ``has_give`` (otherwise all 1).
    pal64 : ndarray of shape (K, 3), float64
        The palette times the channel scales ``(s0, s1, s2)``: the nearest entry of a value
        ``v`` minimises ``|s * v - pal64[j]|`` (exact float64, ties to the lowest index).
    pal : ndarray of shape (K, 3), float32
        The palette itself in float32 (the error is measured in sRGB).
    table : ndarray of shape (2**24,), uint16 or int32
        Memo of nearest index + 1 per rounded colour (0: not searched yet), updated.
    offsets, items : ndarray, int32
        :func:`candidate_lists` of the palette; when ``direct``, every entry (``items`` is
        ``arange(K)``; ``offsets`` unused).
    direct : bool
        Search the palette for the value itself instead of its rounded colour (small K).
    limited : bool
        Apply the error cap ``cap_sq`` and the drop threshold ``drop_sq`` (squared norms).
    lo, hi : float32
        Clipping range of a pixel's colour plus its error.
    s0, s1, s2 : float
        Channel scales of the nearest-entry distance (all 1: plain sRGB distance).
    has_give : bool
    cur, cur3 : ndarray of shape (N + 2, 3), float32
        Pending error of row ``y0`` (zeros before the first row), updated to row ``y1``'s.
    nxt, nxt3 : ndarray of shape (N + 2, 3), float32
        Scratch, zeros on entry and on return.
    out : ndarray of shape (M, N), int32
        Receives the indices of rows ``y0:y1``.
    y0, y1 : int
    """
    n = rgb.shape[1]
    c7 = np.float32(7.0 / 16.0)
    c3 = np.float32(3.0 / 16.0)
    c5 = np.float32(5.0 / 16.0)
    c1 = np.float32(1.0 / 16.0)
    zero = np.float32(0.0)
    for y in range(y0, y1):
        for x in range(n):
            w = take[y, x]
            e0 = (cur[x + 1, 0] + cur3[x + 1, 0]) * w
            e1 = (cur[x + 1, 1] + cur3[x + 1, 1]) * w
            e2 = (cur[x + 1, 2] + cur3[x + 1, 2]) * w
            if limited:
                e_sq = e0 * e0 + e1 * e1 + e2 * e2
                if not e_sq >= drop_sq:
                    e0 = zero
                    e1 = zero
                    e2 = zero
                elif e_sq > cap_sq:
                    # the float64 root of a float32, rounded to float32, is float32's own
                    # correctly rounded root (no libm call in the machine code)
                    s = np.float32(np.sqrt(np.float64(np.float32(cap_sq / e_sq))))
                    e0 *= s
                    e1 *= s
                    e2 *= s
            v0 = min(max(np.float32(rgb[y, x, 0]) + e0, lo), hi)
            v1 = min(max(np.float32(rgb[y, x, 1]) + e1, lo), hi)
            v2 = min(max(np.float32(rgb[y, x, 2]) + e2, lo), hi)
            if direct:
                idx = _nearest(
                    np.float64(v0) * s0,
                    np.float64(v1) * s1,
                    np.float64(v2) * s2,
                    pal64,
                    items,
                    0,
                    items.size,
                )
            else:
                q0 = min(max(np.rint(v0), zero), np.float32(255.0))
                q1 = min(max(np.rint(v1), zero), np.float32(255.0))
                q2 = min(max(np.rint(v2), zero), np.float32(255.0))
                code = (int(q0) << 16) | (int(q1) << 8) | int(q2)
                t = int(table[code])
                if t == 0:
                    c = _cell(q0, q1, q2)
                    t = 1 + _nearest(
                        np.float64(q0) * s0,
                        np.float64(q1) * s1,
                        np.float64(q2) * s2,
                        pal64,
                        items,
                        offsets[c],
                        offsets[c + 1],
                    )
                    table[code] = t
                idx = t - 1
            out[y, x] = idx
            r0 = v0 - pal[idx, 0]
            r1 = v1 - pal[idx, 1]
            r2 = v2 - pal[idx, 2]
            if has_give:
                g = give[y, x]
                r0 *= g
                r1 *= g
                r2 *= g
            cur[x + 2, 0] += r0 * c7
            cur[x + 2, 1] += r1 * c7
            cur[x + 2, 2] += r2 * c7
            nxt3[x, 0] = r0 * c3
            nxt3[x, 1] = r1 * c3
            nxt3[x, 2] = r2 * c3
            nxt[x + 1, 0] += r0 * c5
            nxt[x + 1, 1] += r1 * c5
            nxt[x + 1, 2] += r2 * c5
            nxt[x + 2, 0] += r0 * c1
            nxt[x + 2, 1] += r1 * c1
            nxt[x + 2, 2] += r2 * c1
        for i in range(n + 2):  # (element loops: a slice copy may allocate)
            for c in range(3):
                cur[i, c] = nxt[i, c]
                cur3[i, c] = nxt3[i, c]
                nxt[i, c] = zero
                nxt3[i, c] = zero


@numba.njit(**_JIT)
def dither_map(  # pragma: no cover - compiled; the tests compare it with the numpy form
    image: np.ndarray,
    indices: np.ndarray,
    busy: np.ndarray,
    rows: np.ndarray,
    out: np.ndarray,
    scale: np.float32,
    floor: np.float32,
    keep: np.float32,
    flat_min: np.float32,
    flat_step: np.float32,
    y0: int,
    y1: int,
) -> None:
    """:func:`quantize.render.dither_map`'s rows ``y0:y1``, one pass per step (the same values).

    ``scale`` is ``1 / (255 texture)``, ``keep`` is ``1 - floor``, ``flat_step`` is
    ``(1 - flat_min) / 8``, each rounded to float32 as the numpy form rounds them.  The
    second differences and their 5 x 5 sums are integers, exact in float32 in any order.
    ``busy`` and ``rows``, float32 of shape (yb - ya, N) with ``ya = max(0, y0 - 2)`` and
    ``yb = min(M, y1 + 2)``, are scratch for image rows ``ya:yb``; ``out`` (M, N) float32
    receives rows ``y0:y1`` of the map.  Bands of rows can be computed in parallel.
    """
    m, n = indices.shape
    ya = max(0, y0 - 2)
    yb = min(m, y1 + 2)
    for y in range(ya, yb):
        for x in range(n):
            b = np.float32(0.0)
            for c in range(3):
                f = np.float32(image[y, x, c])
                if n > 2 and 0 < x < n - 1:
                    d = abs(
                        np.float32(image[y, x - 1, c])
                        + np.float32(image[y, x + 1, c])
                        - np.float32(2.0) * f
                    )
                    b = max(b, d)
                if m > 2 and 0 < y < m - 1:
                    d = abs(
                        np.float32(image[y - 1, x, c])
                        + np.float32(image[y + 1, x, c])
                        - np.float32(2.0) * f
                    )
                    b = max(b, d)
            busy[y - ya, x] = b
    # 5 x 5 sums with the edges repeated: rows, then columns (exact integers)
    for y in range(ya, yb):
        for x in range(n):
            t = np.float32(0.0)
            for dx in range(-2, 3):
                t += busy[y - ya, min(max(x + dx, 0), n - 1)]
            rows[y - ya, x] = t
    fifth = np.float32(1.0 / 25.0)
    one = np.float32(1.0)
    for y in range(y0, y1):
        for x in range(n):
            t = np.float32(0.0)
            for dy in range(-2, 3):
                t += rows[min(max(y + dy, 0), m - 1) - ya, x]
            v = t * fifth
            v *= scale
            v = v * v
            v += one
            w = one / v
            w *= keep
            w += floor
            own = indices[y, x]
            same = np.float32(0.0)
            for dy in range(-1, 2):
                yy = min(max(y + dy, 0), m - 1)
                for dx in range(-1, 2):
                    if dy != 0 or dx != 0:
                        if indices[yy, min(max(x + dx, 0), n - 1)] == own:
                            same += one
            same *= flat_step
            same += flat_min
            out[y, x] = w * same


# ---------------------------------------------------------------- C-callable entry points
# Raw pointers and sizes in, nothing returned: what quantize._native calls through ctypes.
# Flag bits of c_diffuse_rows.
HAS_GIVE, DIRECT, LIMITED, WIDE_TABLE = 1, 2, 4, 8
#: Entries of the memo table of rounded colours.
TABLE_SIZE = 1 << 24

_u8, _i32, _u16 = (
    types.CPointer(types.uint8),
    types.CPointer(types.int32),
    types.CPointer(types.uint16),
)
_f32, _f64 = types.CPointer(types.float32), types.CPointer(types.float64)
_n, _f, _flag, _d = types.intp, types.float32, types.int32, types.float64


@numba.cfunc(types.void(_f64, _n, _f64, _i32, _i32, _n, _flag, _d, _d, _d), error_model="numpy")
def c_candidate_lists(  # pragma: no cover
    pal64, k, dist, offsets, items, n_items, fill, s0, s1, s2
):
    """:func:`candidate_lists` on raw buffers (``offsets`` has 32**3 + 1 entries)."""
    n_cells = 1 << (3 * CELL_BITS)
    candidate_lists(
        carray(pal64, (k, 3)),
        carray(dist, (k,)),
        carray(offsets, (n_cells + 1,)),
        carray(items, (n_items,)),
        fill != 0,
        s0,
        s1,
        s2,
    )


@numba.cfunc(
    types.void(
        _u8,
        _f32,
        _f32,
        _f64,
        _f32,
        _u16,
        _i32,
        _i32,
        _i32,
        _f32,
        _f32,
        _f32,
        _f32,
        _i32,
        _n,
        _n,
        _n,
        _n,
        _flag,
        _f,
        _f,
        _f,
        _f,
        _d,
        _d,
        _d,
        _n,
        _n,
    ),
    error_model="numpy",
)
def c_diffuse_rows(  # pragma: no cover
    rgb,
    take,
    give,
    pal64,
    pal,
    table16,
    table32,
    offsets,
    items,
    cur,
    cur3,
    nxt,
    nxt3,
    out,
    m,
    n,
    k,
    n_items,
    flags,
    cap_sq,
    drop_sq,
    lo,
    hi,
    s0,
    s1,
    s2,
    y0,
    y1,
):
    """:func:`diffuse_rows` on raw buffers; the memo is ``table32`` with ``WIDE_TABLE``."""
    n_cells = 1 << (3 * CELL_BITS)
    args = (
        carray(rgb, (m, n, 3)),
        carray(take, (m, n)),
        carray(give, (m, n)),
        carray(pal64, (k, 3)),
        carray(pal, (k, 3)),
    )
    rest = (
        carray(offsets, (n_cells + 1,)),
        carray(items, (n_items,)),
        (flags & HAS_GIVE) != 0,
        (flags & DIRECT) != 0,
        (flags & LIMITED) != 0,
        cap_sq,
        drop_sq,
        lo,
        hi,
        s0,
        s1,
        s2,
        carray(cur, (n + 2, 3)),
        carray(cur3, (n + 2, 3)),
        carray(nxt, (n + 2, 3)),
        carray(nxt3, (n + 2, 3)),
        carray(out, (m, n)),
        y0,
        y1,
    )
    if flags & WIDE_TABLE:
        diffuse_rows(*args, carray(table32, (TABLE_SIZE,)), *rest)
    else:
        diffuse_rows(*args, carray(table16, (TABLE_SIZE,)), *rest)


@numba.cfunc(
    types.void(_u8, _i32, _f32, _f32, _f32, _n, _n, _f, _f, _f, _f, _f, _n, _n),
    error_model="numpy",
)
def c_dither_map(  # pragma: no cover
    image, indices, busy, rows, out, m, n, scale, floor, keep, flat_min, flat_step, y0, y1
):
    """:func:`dither_map` on raw buffers (``busy`` and ``rows`` hold the band's rows)."""
    band = min(m, y1 + 2) - max(0, y0 - 2)
    dither_map(
        carray(image, (m, n, 3)),
        carray(indices, (m, n)),
        carray(busy, (band, n)),
        carray(rows, (band, n)),
        carray(out, (m, n)),
        scale,
        floor,
        keep,
        flat_min,
        flat_step,
        y0,
        y1,
    )


#: The entry points by the name :mod:`quantize._native` calls them.
KERNELS: dict[str, Any] = {
    "candidate_lists": c_candidate_lists,
    "diffuse_rows": c_diffuse_rows,
    "dither_map": c_dither_map,
}
