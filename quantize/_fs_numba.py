"""Floyd–Steinberg error diffusion as one compiled raster loop (numba), row band by row band.

The same arithmetic as :func:`quantize.render._diffuse` (the numpy wavefront form), in the
same float32 operations and the same order, so the two give the same indices to the bit
(the tests compare them on random images).  Imported only through
:func:`quantize.render.compiled_diffusion`; without numba the numpy form runs.

A pixel's pending error is kept in two row buffers: ``cur`` sums the 1/16 and 5/16 terms
from the row above and the 7/16 term from the left, ``cur3`` the 3/16 term from the row
above, added last (the order in which the wavefront form adds them).  Column ``x`` of the
image is entry ``x + 1`` of the buffers.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["candidate_lists", "diffuse_rows", "dither_map", "warm_up"]


@numba.njit(cache=True, nogil=True)
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


@numba.njit(cache=True, nogil=True)
def candidate_lists(pal64: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """For each cell of 8 x 8 x 8 integer colours, the entries that can be nearest to one.

    With ``m`` the cell's centre, ``r`` the largest distance from it to an integer colour
    of the cell and ``b`` the entry nearest to ``m``: every colour ``q`` of the cell has
    ``|q - b| <= |m - b| + r``, and an entry ``j`` with ``|m - j| - r > |m - b| + r`` is
    farther from every ``q`` than ``b``, so it is left out.  Every entry that can be
    nearest (ties included) stays, in index order; a small margin covers rounding.

    Returns
    -------
    offsets : ndarray of shape (32**3 + 1,), int32
    items : ndarray of shape (offsets[-1],), int32
        Entries of cell ``c``: ``items[offsets[c]:offsets[c + 1]]``.
    """
    k = pal64.shape[0]
    per = 1 << CELL_BITS
    side = 256 // per
    half = (side - 1) / 2.0
    r = np.sqrt(3.0) * half
    n_cells = per * per * per
    dist = np.empty(k)
    offsets = np.zeros(n_cells + 1, np.int32)
    for sweep in range(2):  # count, then fill
        if sweep == 1:
            for c in range(n_cells):
                offsets[c + 1] += offsets[c]
            items = np.empty(offsets[n_cells], np.int32)
        else:
            items = np.empty(0, np.int32)
        for c in range(n_cells):
            m0 = (c >> (2 * CELL_BITS)) * side + half
            m1 = ((c >> CELL_BITS) & (per - 1)) * side + half
            m2 = (c & (per - 1)) * side + half
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
                    if sweep == 1:
                        items[offsets[c] + n_in] = j
                    n_in += 1
            if sweep == 0:
                offsets[c + 1] = n_in
    return offsets, items


@numba.njit(cache=True, nogil=True)
def _cell(q0: float, q1: float, q2: float) -> int:  # pragma: no cover
    """Return the :func:`candidate_lists` cell of an integer colour."""
    return (
        (int(q0) >> (8 - CELL_BITS)) << (2 * CELL_BITS)
        | (int(q1) >> (8 - CELL_BITS)) << CELL_BITS
        | (int(q2) >> (8 - CELL_BITS))
    )


@numba.njit(cache=True, nogil=True)
def diffuse_rows(  # pragma: no cover - compiled; the tests compare it with the numpy form
    rgb: np.ndarray,
    take: np.ndarray,
    give: np.ndarray,
    pal64: np.ndarray,
    table: np.ndarray,
    offsets: np.ndarray,
    items: np.ndarray,
    direct: bool,
    limited: bool,
    cap_sq: np.float32,
    drop_sq: np.float32,
    lo: np.float32,
    hi: np.float32,
    cur: np.ndarray,
    cur3: np.ndarray,
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
    give : ndarray of shape (M, N) or (0, 0), float32
        Share of its own error each pixel passes on (transparent pixels: 0); (0, 0): all 1.
    pal64 : ndarray of shape (K, 3), float64
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
    cur, cur3 : ndarray of shape (N + 2, 3), float32
        Pending error of row ``y0`` (zeros before the first row), updated to row ``y1``'s.
    out : ndarray of shape (M, N), int32
        Receives the indices of rows ``y0:y1``.
    y0, y1 : int
    """
    n = rgb.shape[1]
    pal = pal64.astype(np.float32)
    has_give = give.shape[0] > 0
    nxt = np.zeros_like(cur)
    nxt3 = np.zeros_like(cur3)
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
                    s = np.float32(np.sqrt(np.float32(cap_sq / e_sq)))
                    e0 *= s
                    e1 *= s
                    e2 *= s
            v0 = min(max(np.float32(rgb[y, x, 0]) + e0, lo), hi)
            v1 = min(max(np.float32(rgb[y, x, 1]) + e1, lo), hi)
            v2 = min(max(np.float32(rgb[y, x, 2]) + e2, lo), hi)
            if direct:
                idx = _nearest(
                    np.float64(v0), np.float64(v1), np.float64(v2), pal64, items, 0, items.size
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
                        np.float64(q0),
                        np.float64(q1),
                        np.float64(q2),
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
        cur[:] = nxt
        cur3[:] = nxt3
        nxt[:] = zero
        nxt3[:] = zero


@numba.njit(cache=True, nogil=True)
def dither_map(  # pragma: no cover - compiled; the tests compare it with the numpy form
    image: np.ndarray,
    indices: np.ndarray,
    scale: np.float32,
    floor: np.float32,
    keep: np.float32,
    flat_min: np.float32,
    flat_step: np.float32,
) -> np.ndarray:
    """:func:`quantize.render.dither_map` in one pass per step (the same float32 values).

    ``scale`` is ``1 / (255 texture)``, ``keep`` is ``1 - floor``, ``flat_step`` is
    ``(1 - flat_min) / 8``, each rounded to float32 as the numpy form rounds them.  The
    second differences and their 5 x 5 sums are integers, exact in float32 in any order.
    """
    m, n = indices.shape
    busy = np.zeros((m, n), np.float32)
    for y in range(m):
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
            busy[y, x] = b
    # 5 x 5 sums with the edges repeated: rows, then columns (exact integers)
    rows = np.empty((m, n), np.float32)
    for y in range(m):
        for x in range(n):
            t = np.float32(0.0)
            for dx in range(-2, 3):
                t += busy[y, min(max(x + dx, 0), n - 1)]
            rows[y, x] = t
    out = np.empty((m, n), np.float32)
    fifth = np.float32(1.0 / 25.0)
    one = np.float32(1.0)
    for y in range(m):
        for x in range(n):
            t = np.float32(0.0)
            for dy in range(-2, 3):
                t += rows[min(max(y + dy, 0), m - 1), x]
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
    return out


def warm_up() -> None:
    """Load (or compile, the first time) the machine code, with the argument types of real calls."""
    candidate_lists(np.zeros((1, 3)))
    one = np.float32(1.0)
    dither_map(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.int32), one, one, one, one, one)
    rgb = np.zeros((2, 2, 3), np.uint8)
    weight = np.ones((2, 2), np.float32)
    pal = np.array([[0.0, 0.0, 0.0], [255.0, 255.0, 255.0]])
    cur = np.zeros((4, 3), np.float32)
    for table in (np.zeros(1, np.uint16),):  # (an int32 memo, K >= 65535, loads when used)
        diffuse_rows(
            rgb,
            weight,
            np.zeros((0, 0), np.float32),
            pal,
            table,
            np.zeros(2, np.int32),
            np.arange(2, dtype=np.int32),
            True,
            True,
            np.float32(1.0),
            np.float32(1.0),
            np.float32(0.0),
            np.float32(255.0),
            cur.copy(),
            cur.copy(),
            np.zeros((2, 2), np.int32),
            0,
            2,
        )
