"""The distinct colours of an 8-bit RGB(A) image as compiled loops (numba).

:func:`codes_rgb8` packs each pixel's colour into the 24-bit code ``r << 16 | g << 8 | b``;
:func:`tally_codes` counts the codes in a table of 2**24 counters, :func:`count_present` and
:func:`rank_present` turn the counts into the sorted distinct codes, their counts and their
ranks (two threads, each half of the table), and :func:`rank_codes` looks every code up in
the table of ranks (the inverse index).  Numpy needs a histogram of the
ranks on top for the counts; on a 15-megapixel photo its five passes take about 0.4 s, these
three about half of it (benchmarks/README.md).  Counting and looking up are separate loops
from packing: a loop that read the pixels' bytes and updated the table at once ran at half
the speed, as did a count that also marked a presence table.

The loops allocate nothing and cannot raise; they are compiled once into C-callable
functions whose machine code :mod:`quantize._native` caches and loads with llvmlite alone.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import carray, types

__all__ = ["KERNELS", "codes_rgb8", "count_present", "rank_codes", "rank_present", "tally_codes"]

_JIT: dict[str, Any] = {"nogil": True, "error_model": "numpy", "cache": False}


@numba.njit(**_JIT)
def codes_rgb8(
    pixels: np.ndarray, stride: int, codes: np.ndarray, i0: int, i1: int
) -> None:  # pragma: no cover - compiled; the tests compare it with numpy
    """Write the 24-bit code of pixels ``i0:i1`` to ``codes`` (int32).

    ``pixels`` is the image's bytes, ``stride`` (3 or 4) bytes per pixel, red first.
    """
    for i in range(i0, i1):
        j = i * stride
        codes[i] = (
            (np.int32(pixels[j]) << 16) | (np.int32(pixels[j + 1]) << 8) | np.int32(pixels[j + 2])
        )


@numba.njit(**_JIT)
def tally_codes(
    codes: np.ndarray, counts: np.ndarray, i0: int, i1: int
) -> None:  # pragma: no cover - compiled; the tests compare it with numpy
    """Add one to ``counts[codes[i]]`` for ``i`` in ``i0:i1`` (int32 tables)."""
    for i in range(i0, i1):
        counts[codes[i]] += 1


@numba.njit(**_JIT)
def rank_codes(
    codes: np.ndarray, ranks: np.ndarray, inverse: np.ndarray, i0: int, i1: int
) -> None:  # pragma: no cover - compiled; the tests compare it with numpy
    """Write ``inverse[i] = ranks[codes[i]]`` for ``i`` in ``i0:i1`` (int32 arrays)."""
    for i in range(i0, i1):
        inverse[i] = ranks[codes[i]]


@numba.njit(**_JIT)
def count_present(
    counts: np.ndarray, i0: int, i1: int, out: np.ndarray
) -> None:  # pragma: no cover - compiled; the tests compare it with numpy
    """Write to ``out[0]`` how many of ``counts[i0:i1]`` are not zero (int32 table)."""
    n = 0
    for c in range(i0, i1):
        if counts[c]:
            n += 1
    out[0] = n


@numba.njit(**_JIT)
def rank_present(
    table: np.ndarray, i0: int, i1: int, first: int, uniq: np.ndarray, counts: np.ndarray
) -> None:  # pragma: no cover - compiled; the tests compare it with numpy
    """Rank the codes present in ``table[i0:i1]`` (their counts), from rank ``first`` on.

    For each code ``c`` in ``i0:i1`` with ``table[c] != 0``, in order, with ``r`` counting
    from ``first``: ``uniq[r] = c``, ``counts[r] = table[c]``, then ``table[c] = r``.
    """
    r = first
    n = uniq.shape[0]
    for c in range(i0, i1):
        v = table[c]
        if v:
            if r >= n:  # (never, when the caller counted them: a guard against overruns)
                return
            uniq[r] = c
            counts[r] = v
            table[c] = r
            r += 1


# ---------------------------------------------------------------- C-callable entry points
_u8, _i32, _n = types.CPointer(types.uint8), types.CPointer(types.int32), types.intp
_i64 = types.CPointer(types.int64)
_TABLE = 1 << 24


@numba.cfunc(types.void(_u8, _n, _n, _i32, _n, _n), error_model="numpy")
def c_codes_rgb8(pixels, n, stride, codes, i0, i1):  # pragma: no cover
    """:func:`codes_rgb8` on raw buffers (``n`` pixels)."""
    codes_rgb8(carray(pixels, (n * stride,)), stride, carray(codes, (n,)), i0, i1)


@numba.cfunc(types.void(_i32, _n, _i32, _n, _n), error_model="numpy")
def c_tally_codes(codes, n, counts, i0, i1):  # pragma: no cover
    """:func:`tally_codes` on raw buffers (``n`` codes, each below 2**24)."""
    tally_codes(carray(codes, (n,)), carray(counts, (_TABLE,)), i0, i1)


@numba.cfunc(types.void(_i32, _n, _i32, _i32, _n, _n), error_model="numpy")
def c_rank_codes(codes, n, ranks, inverse, i0, i1):  # pragma: no cover
    """:func:`rank_codes` on raw buffers (``n`` codes, each below 2**24)."""
    rank_codes(carray(codes, (n,)), carray(ranks, (_TABLE,)), carray(inverse, (n,)), i0, i1)


@numba.cfunc(types.void(_i32, _n, _n, _i64), error_model="numpy")
def c_count_present(counts, i0, i1, out):  # pragma: no cover
    """:func:`count_present` on raw buffers (a table of 2**24 counts)."""
    count_present(carray(counts, (_TABLE,)), i0, i1, carray(out, (1,)))


@numba.cfunc(types.void(_i32, _n, _n, _n, _n, _i32, _i64), error_model="numpy")
def c_rank_present(table, i0, i1, first, n, uniq, counts):  # pragma: no cover
    """:func:`rank_present` on raw buffers (``n`` codes present in all)."""
    rank_present(carray(table, (_TABLE,)), i0, i1, first, carray(uniq, (n,)), carray(counts, (n,)))


#: The entry points :mod:`quantize._native` compiles and caches.
KERNELS = {
    "codes_rgb8": c_codes_rgb8,
    "tally_codes": c_tally_codes,
    "rank_codes": c_rank_codes,
    "count_present": c_count_present,
    "rank_present": c_rank_present,
}
