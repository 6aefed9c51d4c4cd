"""The distinct colours of an 8-bit RGB(A) image as compiled loops (numba).

:func:`codes_rgb8` packs each pixel's colour into the 24-bit code ``r << 16 | g << 8 | b``;
:func:`tally_codes` counts the codes in a table of 2**24 counters, and :func:`rank_codes`
looks every code up in a table of ranks (the inverse index).  Numpy needs a histogram of the
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

__all__ = ["KERNELS", "codes_rgb8", "rank_codes", "tally_codes"]

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


# ---------------------------------------------------------------- C-callable entry points
_u8, _i32, _n = types.CPointer(types.uint8), types.CPointer(types.int32), types.intp
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


#: The entry points :mod:`quantize._native` compiles and caches.
KERNELS = {"codes_rgb8": c_codes_rgb8, "tally_codes": c_tally_codes, "rank_codes": c_rank_codes}
