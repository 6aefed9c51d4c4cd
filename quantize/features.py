"""Images to weighted points: unique colours, pixel counts and the inverse index.

A photo of millions of pixels usually has a few hundred thousand distinct colours.  Fitting
on the distinct colours weighted by their pixel counts gives exactly the same K-means or
Gaussian-mixture fit as fitting on every pixel, at a fraction of the cost; the inverse index
maps the fitted labels back to the pixels.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantize import _native

__all__ = ["ColorTable", "as_image_array", "unique_colors"]

# below this many opaque pixels a sort is cheaper than allocating the 2**24-entry tables
_BINCOUNT_MIN_PIXELS = 1 << 19
# ... but once the shared tables exist they beat the sort from about this many pixels
_WARM_TABLE_MIN_PIXELS = 1 << 16


@dataclass(frozen=True, eq=False)
class ColorTable:
    """Distinct colours of an image with their pixel counts and an inverse index.

    Parameters
    ----------
    colors : ndarray of shape (U, C), uint8 or uint16
        Distinct colours (C = 3 for RGB(A) images, C = 1 for grey), sorted by value
        (lexicographically by channel).
    counts : ndarray of shape (U,), int64
        Number of opaque pixels with each colour.
    inverse : ndarray of shape (M * N,), int32
        Row-major index into ``colors`` for every pixel; -1 for fully transparent pixels.
    shape : tuple of int
        ``(M, N)``: rows and columns of the image.
    opaque : ndarray of shape (M, N), bool, or None
        ``alpha > 0`` for images with an alpha channel, ``None`` for images without one.
    """

    colors: np.ndarray
    counts: np.ndarray
    inverse: np.ndarray
    shape: tuple[int, int]
    opaque: np.ndarray | None
    #: values derived from the colours, computed once per table (e.g. the colours in a
    #: fitting space, :func:`quantize.pipeline.table_points`); read-only arrays
    derived: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def n_colors(self) -> int:
        """Number of distinct colours ``U``."""
        return int(self.colors.shape[0])

    @property
    def n_pixels(self) -> int:
        """Number of opaque pixels (sum of ``counts``)."""
        return int(self.counts.sum())

    @property
    def n_channels(self) -> int:
        """Colour channels ``C`` (3 or 1)."""
        return int(self.colors.shape[1])

    @property
    def max_value(self) -> int:
        """255 for 8-bit colours, 65535 for 16-bit colours."""
        return 255 if self.colors.dtype == np.uint8 else 65535

    def gather(self, values: np.ndarray, fill: Any = 0) -> np.ndarray:
        """Map per-colour values back to the pixel grid.

        Parameters
        ----------
        values : ndarray of shape (U,) or (U, P)
            One value (or row of values) per distinct colour.
        fill : scalar
            Value given to fully transparent pixels.

        Returns
        -------
        image : ndarray of shape (M, N) or (M, N, P)
            Same dtype as ``values``.
        """
        values = np.asarray(values)
        # np.take is cheaper than fancy indexing; mode "clip" reads index -1 (transparent
        # pixels) as row 0, overwritten with ``fill`` just below.  In chunks: numpy copies an
        # int32 index to intp first, which for a whole 4.5 MP image is a fresh 36 MB array
        # (see _counts)
        out = np.empty((self.inverse.size, *values.shape[1:]), values.dtype)
        for start in range(0, self.inverse.size, _COUNT_CHUNK):
            stop = start + _COUNT_CHUNK
            np.take(values, self.inverse[start:stop], axis=0, out=out[start:stop], mode="clip")
        if self.opaque is not None:
            out[self.inverse < 0] = fill
        return out.reshape(self.shape + values.shape[1:])


def as_image_array(image: Any) -> np.ndarray:
    """Validate an image array and bring it to uint8/uint16 with a channel axis.

    Parameters
    ----------
    image : array_like of shape (M, N), (M, N, 1), (M, N, 2), (M, N, 3) or (M, N, 4)
        Grey, grey+alpha, RGB or RGBA; uint8 or uint16, or float in [0, 1] (converted to
        uint16 by rounding ``value * 65535``; values outside [0, 1] are clipped).

    Returns
    -------
    image : ndarray of shape (M, N, C)
        uint8 or uint16; the input itself (a view) when no conversion was needed.

    Raises
    ------
    ValueError
        Wrong dimensions, empty image, unsupported dtype, NaN or infinite values.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"image must have shape (M, N), (M, N, 1|2|3|4); got {np.shape(image)}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"image is empty: shape {arr.shape}")
    if arr.dtype in (np.uint8, np.uint16):
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError("image contains NaN or infinite values")
        return np.rint(np.clip(arr, 0.0, 1.0) * 65535.0).astype(np.uint16)
    raise ValueError(f"image dtype must be uint8, uint16 or float, got {arr.dtype}")


class _Scratch:
    """Reusable 2**24-entry tables for the 8-bit RGB path.

    Allocating (and page-faulting) 80 MiB of tables for every photo costs more than the
    counting itself; one set is kept after first use and lent to one caller at a time.
    Once it exists, mid-size images (from ``_WARM_TABLE_MIN_PIXELS``) use it too.
    """

    lock = threading.Lock()
    present: np.ndarray | None = None
    lut: np.ndarray | None = None
    #: whether ``lut`` is all zeros (the compiled path counts in it, then clears it again)
    lut_zero = False


def _tables(n_bins: int, reuse: bool) -> tuple[np.ndarray, np.ndarray]:
    if reuse:
        if _Scratch.present is None or _Scratch.lut is None:
            _Scratch.present = np.zeros(n_bins, dtype=np.bool_)
            _Scratch.lut = np.empty(n_bins, dtype=np.int32)
            _Scratch.lut_zero = False
        return _Scratch.present, _Scratch.lut
    return np.zeros(n_bins, dtype=np.bool_), np.empty(n_bins, dtype=np.int32)


#: Pixels from which :func:`unique_colors` loads the compiled loops if this process has not
#: loaded them yet (0.03 s from their cache file); below it they serve only if loaded.
_KERNEL_LOAD_MIN_PIXELS = 1 << 22


def _compiled_rgb8(flat: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """Sorted unique codes, counts and inverse of 8-bit RGB(A) pixels, compiled; or None.

    None (the numpy path runs) for small or non-contiguous pixel arrays, when the compiled
    loops are unavailable, or when another thread holds the shared tables.
    """
    n = flat.shape[0]
    if n < _BINCOUNT_MIN_PIXELS or n >= 1 << 31 or not flat.flags.c_contiguous:
        return None
    native = _native.kernels_for(n, _KERNEL_LOAD_MIN_PIXELS)
    if native is None or not _Scratch.lock.acquire(blocking=False):
        return None
    try:
        _, lut = _tables(1 << 24, True)
        if not _Scratch.lut_zero:
            lut.fill(0)
        _Scratch.lut_zero = False  # (until cleared below, whatever happens)
        codes = np.empty(n, dtype=np.int32)
        inverse = np.empty(n, dtype=np.int32)
        cuts = [(0, n // 2), (n // 2, n)]  # two threads where they can share the work
        with ThreadPoolExecutor(2, thread_name_prefix="vq-colours") as pool:
            for f in [pool.submit(native.codes_rgb8, flat, codes, a, b) for a, b in cuts]:
                f.result()
            native.tally_codes(codes, lut, 0, n)  # lut: the count of each code
            # the codes present, their counts and ranks: each half of the table on a thread
            # (np.flatnonzero of the table alone took 0.06 s)
            halves = [(0, 1 << 23), (1 << 23, 1 << 24)]
            present = [pool.submit(native.count_present, lut, a, b) for a, b in halves]
            n_low, n_high = (f.result() for f in present)
            uniq = np.empty(n_low + n_high, dtype=np.int32)
            counts = np.empty(n_low + n_high, dtype=np.int64)
            ranked = [  # lut: now the rank of each code present
                pool.submit(native.rank_present, lut, a, b, first, uniq, counts)
                for (a, b), first in zip(halves, (0, n_low), strict=True)
            ]
            for f in ranked:
                f.result()
            for f in [pool.submit(native.rank_codes, codes, lut, inverse, a, b) for a, b in cuts]:
                f.result()
        lut[uniq] = 0
        _Scratch.lut_zero = True
        return uniq.astype(np.intp), counts, inverse
    finally:
        _Scratch.lock.release()


def _rgb8_codes(flat: np.ndarray) -> np.ndarray:
    """24-bit codes ``r << 16 | g << 8 | b`` of 8-bit RGB(A) pixels, as intp.

    Parameters
    ----------
    flat : ndarray of shape (P, 3) or (P, 4), uint8
        One row per pixel; a fourth (alpha) column is ignored.

    Returns
    -------
    codes : ndarray of shape (P,), intp
        intp because numpy converts any other index dtype to intp (a full copy, and a
        slower scatter/gather) each time the codes index a table.
    """
    n_pix, channels = flat.shape
    if flat.flags.c_contiguous and n_pix > 1:
        # each pixel's bytes (r, g, b, <next byte>) read as a big-endian uint32, shifted
        # right by 8: one pass over the image, no packing buffer.  With 3 channels the
        # last pixel has no byte after it and is packed on its own.
        n_words = n_pix if channels == 4 else n_pix - 1
        codes = np.empty(n_pix, dtype=np.intp)
        words = np.ndarray((n_words,), dtype=">u4", buffer=flat, strides=(channels,))
        np.right_shift(words, 8, out=codes[:n_words], casting="unsafe")
        if n_words < n_pix:
            r, g, b = (int(v) for v in flat[-1, :3])
            codes[-1] = r << 16 | g << 8 | b
        return codes
    # not one contiguous block: bytes (b, g, r, 0, 0, 0, 0, 0) read as little-endian int64
    packed = np.zeros((n_pix, 8), dtype=np.uint8)
    packed[:, 0] = flat[:, 2]
    packed[:, 1] = flat[:, 1]
    packed[:, 2] = flat[:, 0]
    return packed.view("<i8").reshape(-1).astype(np.intp, copy=False)


#: Pixels per ``bincount`` call in :func:`_counts`: its int32 -> intp copy stays a few MB
_COUNT_CHUNK = 1 << 19


def _counts(inverse: np.ndarray, n: int) -> np.ndarray:
    """Occurrences of each of ``0 .. n - 1`` in ``inverse`` (int32), shape (n,), int64.

    ``np.bincount`` copies an int32 index to intp first: on a 4.5 MP image a fresh 36 MB
    array, which costs 0.08 s where fresh memory is slow to come by (a new process on a
    VM); in chunks the copies are small, reused and cache-resident (0.010 -> 0.006 s warm).
    """
    out = np.zeros(n, dtype=np.int64)
    for start in range(0, inverse.size, _COUNT_CHUNK):
        out += np.bincount(inverse[start : start + _COUNT_CHUNK], minlength=n)
    return out


def _unique_codes(codes: np.ndarray, n_bins: int | None) -> tuple[np.ndarray, ...]:
    """Sorted unique codes, counts and the inverse index (int32)."""
    reuse = (
        n_bins == 1 << 24
        and codes.size >= _WARM_TABLE_MIN_PIXELS
        and _Scratch.lock.acquire(blocking=False)
    )
    if reuse and _Scratch.present is None and codes.size < _BINCOUNT_MIN_PIXELS:
        _Scratch.lock.release()  # not worth allocating the shared tables for
        reuse = False
    if n_bins is not None and (reuse or n_bins <= 1 << 16 or codes.size >= _BINCOUNT_MIN_PIXELS):
        # a presence table (1 byte per possible code) is far cheaper than a 2**24-bin
        # int64 histogram; counts then come from the small inverse-index histogram
        try:
            present, lut = _tables(n_bins, reuse)
            present[codes] = True
            uniq = np.flatnonzero(present)
            lut[uniq] = np.arange(uniq.size, dtype=np.int32)
            if reuse:
                _Scratch.lut_zero = False
            inverse = np.take(lut, codes)
            present[uniq] = False  # leave the shared table clean
        finally:
            if reuse:
                _Scratch.lock.release()
        return uniq, _counts(inverse, uniq.size), inverse
    if n_bins is not None:
        codes = codes.astype(np.uint32)  # sorts faster than intp
    uniq, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    return uniq, counts.astype(np.int64), inverse.astype(np.int32).reshape(-1)


def unique_colors(image: Any) -> ColorTable:
    """Find the distinct colours of an image's opaque pixels.

    For 8-bit RGB the three channels are packed into a 24-bit code, marked in a 2**24-entry
    presence table and ranked through a lookup table (both kept and reused; small images
    are sorted instead); other depths pack into a 48-bit code and use ``np.unique``.
    Pixels with alpha == 0 are left out (inverse index -1).  The image is not modified.

    Parameters
    ----------
    image : array_like of shape (M, N), (M, N, 1|2|3|4)
        Grey, grey+alpha, RGB or RGBA image, uint8/uint16 (or float in [0, 1]).

    Returns
    -------
    table : ColorTable

    Raises
    ------
    ValueError
        For invalid images or an image without any opaque pixel.
    """
    img = as_image_array(image)
    rows, cols, channels = img.shape
    has_alpha = channels in (2, 4)
    n_color = 1 if channels <= 2 else 3
    flat = img.reshape(-1, channels)
    opaque_flat = None
    if has_alpha:
        opaque_flat = flat[:, -1] > 0
        if not opaque_flat.any():
            raise ValueError("image has no opaque pixels (alpha is 0 everywhere)")
    dtype = img.dtype
    bits = 8 if dtype == np.uint8 else 16
    if n_color == 1:
        codes = flat[:, 0].astype(np.intp)
        n_bins: int | None = 1 << bits
    elif bits == 8:
        if opaque_flat is None or opaque_flat.all():
            found = _compiled_rgb8(flat)
            if found is not None:
                return _table(found, dtype, bits, n_color, rows, cols, opaque_flat)
        codes = _rgb8_codes(flat)
        n_bins = 1 << 24
    else:
        codes = flat[:, 0].astype(np.int64) << 32
        codes |= flat[:, 1].astype(np.int64) << 16
        codes |= flat[:, 2]
        n_bins = None
    if opaque_flat is not None and not opaque_flat.all():
        uniq, counts, inv_opaque = _unique_codes(codes[opaque_flat], n_bins)
        inverse = np.full(rows * cols, -1, dtype=np.int32)
        inverse[opaque_flat] = inv_opaque
    else:
        uniq, counts, inverse = _unique_codes(codes, n_bins)
    return _table((uniq, counts, inverse), dtype, bits, n_color, rows, cols, opaque_flat)


def _table(
    found: tuple[np.ndarray, ...],
    dtype: Any,
    bits: int,
    n_color: int,
    rows: int,
    cols: int,
    opaque_flat: np.ndarray | None,
) -> ColorTable:
    """Make the :class:`ColorTable` of sorted unique codes, their counts and inverse index."""
    uniq, counts, inverse = found
    mask = (1 << bits) - 1
    if n_color == 1:
        colors = uniq.astype(dtype)[:, None]
    else:
        colors = np.empty((uniq.size, 3), dtype=dtype)
        colors[:, 0] = (uniq >> (2 * bits)) & mask
        colors[:, 1] = (uniq >> bits) & mask
        colors[:, 2] = uniq & mask
    opaque = opaque_flat.reshape(rows, cols) if opaque_flat is not None else None
    return ColorTable(
        colors=colors, counts=counts, inverse=inverse, shape=(rows, cols), opaque=opaque
    )
