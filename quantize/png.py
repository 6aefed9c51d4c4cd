"""Indexed PNG encoding (arrays in, bytes out): the smallest bit depth, one transparent entry.

A base module: the metrics measure the PNG size with it and the exports write its bytes.
No EXIF, GPS or text metadata is ever written.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["encode_indexed_png", "encode_png", "lightness_order"]


def encode_png(img: Image.Image, **params: Any) -> bytes:
    """Encode a Pillow image as PNG bytes with nothing but its pixels (no EXIF or text).

    Parameters
    ----------
    img : PIL.Image.Image
    **params
        Pillow PNG save options (e.g. ``transparency``).

    Returns
    -------
    png : bytes
    """
    buf = io.BytesIO()
    img.save(buf, "PNG", **params)  # no exif=, no pnginfo=: nothing but pixels
    return buf.getvalue()


def lightness_order(palette: np.ndarray) -> np.ndarray:
    """Order of palette entries from dark to light (Rec. 601 luma, ties by index).

    Parameters
    ----------
    palette : ndarray of shape (K, 3), uint8

    Returns
    -------
    order : ndarray of shape (K,), intp
        ``palette[order]`` runs from dark to light.
    """
    luma = np.asarray(palette, np.float64) @ np.array([299.0, 587.0, 114.0])
    return np.argsort(luma, kind="stable")


_zlib: ModuleType = zlib
try:  # zlib-ng: the same deflate format, 3-5 times faster at the same sizes (see below)
    from zlib_ng import zlib_ng

    _zlib = zlib_ng
except ImportError:  # pragma: no cover - a dependency; Python's zlib writes the same format
    pass
_ZLIB_NG = _zlib is not zlib

#: zlib levels of indexed PNGs, measured on 4-8 MP photos (benchmarks/README.md).  Python's
#: zlib: at 1-4 bits per pixel level 8 is 4-7 % smaller than 6 for about 0.15 s more per
#: 4 MP (9 gains 1-2 % more for twice that); at 8 bits level 7 is within 1 % of 9.
#: zlib-ng on the same data (dithered, K = 16 and 256): its level 8 is 0-0.5 % smaller than
#: zlib's 8 in 0.12 s instead of 0.33 s (kite, 4 MP), its level 6 within 0.8 % of zlib's 7
#: (smaller on summer_1am) in 0.06-0.07 s instead of 0.19-0.30 s.
_ZLIB_LEVEL_PACKED = 8
_ZLIB_LEVEL_BYTE = 6 if _ZLIB_NG else 7
#: Flat graphics (large areas of one colour) get level 9: 3-25 % smaller than 7 at 8 bits
#: (city K = 64: 53,275 -> 39,830 bytes) for a few hundredths of a second, because long runs
#: compress fast at any level.  They are told by the zlib level 1 ratio of up to 64 evenly
#: spaced scanlines (about 2 ms): 28-225 on two flat graphics at K = 16, 64 and 256 with and
#: without dithering (11.7 and 15.2 only for one of them dithered at K = 16 and 64), at most
#: 9.1 on photos (summer_1am K = 16 undithered), where level 9 gains 0-5 % for 2-6 times
#: the time (kite K = 64 undithered: 0.19 -> 1.0 s).  The share of pixels that repeat their
#: left neighbour does not separate them: 0.95 on that photo, 0.89 on that graphic.
_FLAT_RATIO = 20.0
_ZLIB_LEVEL_FLAT = 9
_RATIO_SAMPLE_ROWS = 64


def _sample_rows(m: int) -> np.ndarray:
    """Rows whose zlib ratio tells flat graphics (:data:`_FLAT_RATIO`): up to 64, evenly spaced."""
    return np.arange(0, m, max(1, m // _RATIO_SAMPLE_ROWS))[:_RATIO_SAMPLE_ROWS]


def _zlib_level(rows: np.ndarray, bits: int) -> int:
    """Return the zlib level for (M, B) packed scanlines (a sample) of ``bits`` bits per pixel."""
    if rows.shape[0] and rows.shape[1]:
        sample = np.ascontiguousarray(rows)
        if sample.size >= _FLAT_RATIO * len(_zlib.compress(sample.tobytes(), 1)):
            return _ZLIB_LEVEL_FLAT
    return _ZLIB_LEVEL_BYTE if bits == 8 else _ZLIB_LEVEL_PACKED


#: Scanline bytes per deflate block (whole scanlines, at least one): the image data is
#: compressed as independent blocks in parallel threads (zlib releases the interpreter lock),
#: joined into one zlib stream.  The blocks depend on the image's width and bit depth only,
#: so the bytes depend neither on the machine nor on how the rows arrive.
_DEFLATE_BLOCK = 1 << 20


def _deflate_block(data: bytes, level: int, last: bool) -> bytes:
    """Raw deflate of one block, ended by a sync flush (or, for the last, the final block).

    Concatenated, such blocks are one valid deflate stream (as pigz writes them).
    """
    z = _zlib.compressobj(level, _zlib.DEFLATED, -15)
    return z.compress(data) + z.flush(_zlib.Z_FINISH if last else _zlib.Z_SYNC_FLUSH)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", _zlib.crc32(kind + data))


def _pack_rows(idx: np.ndarray, bits: int) -> np.ndarray:
    """Pack (M, N) indices < 2**bits into PNG scanlines, shape (M, ceil(N * bits / 8))."""
    if bits == 8:
        return idx
    m, n = idx.shape
    per = 8 // bits
    width = -(-n // per)
    padded = np.zeros((m, width * per), np.uint8)
    padded[:, :n] = idx
    parts = padded.reshape(m, width, per)
    rows = np.zeros((m, width), np.uint8)
    for j in range(per):  # leftmost pixel in the high bits
        rows |= parts[:, :, j] << np.uint8(bits * (per - 1 - j))
    return rows


class IndexedPngStream:
    """An indexed PNG encoded as its rows arrive, top to bottom.

    Every :data:`_DEFLATE_BLOCK` bytes of whole scanlines are deflated in a worker thread as
    soon as they are complete, so that compressing the first rows overlaps computing the
    next ones (Floyd–Steinberg feeds its bands of rows as it finishes them).  The bytes
    depend only on the pixels, the palette, ``opaque``, ``sort`` and ``level_sample``, never
    on how the rows were split into calls of :meth:`feed`.

    Parameters
    ----------
    shape : (M, N)
        Rows and columns of the image.
    palette : ndarray of shape (K, 3), uint8
        At most 256 entries (255 with transparent pixels).
    opaque : ndarray of shape (M, N), bool, optional
        ``False`` where the pixel is fully transparent (its index is ignored).
    sort : bool, optional
        Store the palette from dark to light (see :func:`encode_indexed_png`).
    level_sample : ndarray of shape (M, N), integer
        Indices whose sample rows choose the zlib level (:func:`_zlib_level`): the image
        itself, or for a dithered image its undithered rendering, known before the rows.

    Raises
    ------
    ValueError
        When the palette (with the transparent entry) has more than 256 entries.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        palette: np.ndarray,
        opaque: np.ndarray | None = None,
        *,
        sort: bool = False,
        level_sample: np.ndarray,
    ) -> None:
        m, n = shape
        palette = np.asarray(palette, np.uint8).reshape(-1, 3)
        k = len(palette)
        self._rank: np.ndarray | None = None
        if sort and 1 < k <= 256:
            order = lightness_order(palette)
            self._rank = np.empty(k, np.uint8)
            self._rank[order] = np.arange(k, dtype=np.uint8)
            palette = palette[order]
        self._mask = None if opaque is None or bool(np.all(opaque)) else np.asarray(opaque, bool)
        n_entries = k + (self._mask is not None)
        if n_entries > 256:
            raise ValueError(f"{n_entries} palette entries do not fit an indexed PNG (at most 256)")
        self._entries = palette
        if self._mask is not None:
            self._entries = np.vstack([np.zeros((1, 3), np.uint8), palette])
        self._shape = (m, n)
        self._bits = next(b for b in (1, 2, 4, 8) if n_entries <= 1 << b)
        row_bytes = 1 + -(-n * self._bits // 8)
        self._block_rows = max(1, _DEFLATE_BLOCK // row_bytes)
        ys = _sample_rows(m)
        self._level = _zlib_level(
            self._scanlines(np.asarray(level_sample)[ys], ys)[:, 1:], self._bits
        )
        self._rows = 0  # rows fed so far
        self._pending: list[np.ndarray] = []  # scanlines of the block being filled
        self._pending_rows = 0
        self._adler = _zlib.adler32(b"")
        self._blocks: list[Any] = []  # deflated blocks (bytes) or futures of them, in order
        self._pool: Any = None
        self._workers = min(2, os.cpu_count() or 1)

    def _scanlines(self, indices: np.ndarray, ys: np.ndarray | slice) -> np.ndarray:
        """PNG scanlines (filter byte 0, then the packed row) of rows ``ys``, (R, 1 + B) uint8."""
        # np.take: about three times faster than self._rank[indices] on (R, N) indices
        idx = indices if self._rank is None else np.take(self._rank, indices)
        if self._mask is not None:
            idx = np.where(self._mask[ys], idx.astype(np.int64) + 1, 0)
        rows = _pack_rows(np.asarray(idx).astype(np.uint8, copy=False), self._bits)
        out = np.zeros((rows.shape[0], rows.shape[1] + 1), np.uint8)  # filter byte 0: none
        out[:, 1:] = rows
        return out

    def _submit(self, last: bool) -> None:
        data = b"".join(part.tobytes() for part in self._pending)
        self._pending, self._pending_rows = [], 0
        self._adler = _zlib.adler32(data, self._adler)
        if last and not self._blocks:
            self._blocks.append(_deflate_block(data, self._level, True))
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="vq-deflate")
        self._blocks.append(self._pool.submit(_deflate_block, data, self._level, last))

    def feed(self, rows: np.ndarray) -> None:
        """Add the next rows of palette indices, shape (R, N); full blocks start deflating.

        Parameters
        ----------
        rows : ndarray of shape (R, N), integer
            Indices into the palette as given (before ``sort``).
        """
        rows = np.asarray(rows)
        m, n = self._shape
        r = rows.shape[0]
        if rows.ndim != 2 or rows.shape[1] != n or self._rows + r > m:
            raise ValueError(f"rows of shape {rows.shape} do not continue a {m} x {n} image")
        y0 = self._rows
        self._rows += r
        while r:
            take = min(r, self._block_rows - self._pending_rows)
            self._pending.append(self._scanlines(rows[:take], slice(y0, y0 + take)))
            self._pending_rows += take
            rows, r, y0 = rows[take:], r - take, y0 + take
            if self._pending_rows == self._block_rows and (r or self._rows < m):
                self._submit(last=False)  # (the image's last block waits for finish)

    def close(self) -> None:
        """Stop the workers (the stream is not finished; call after an error)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def finish(self) -> bytes:
        """Return the whole PNG once every row has been fed.

        Returns
        -------
        png : bytes
        """
        m, n = self._shape
        if self._rows != m:
            self.close()
            raise ValueError(f"{self._rows} of {m} rows fed")
        try:
            self._submit(last=True)
            body = b"".join(b if isinstance(b, bytes) else b.result() for b in self._blocks)
        finally:
            self.close()
        idat = b"\x78\xda" + body + struct.pack(">I", self._adler)
        header = struct.pack(">IIBBBBB", n, m, self._bits, 3, 0, 0, 0)
        out = [
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"PLTE", self._entries.tobytes()),
        ]
        if self._mask is not None:
            out.append(_chunk(b"tRNS", b"\x00"))
        out.append(_chunk(b"IDAT", idat))
        out.append(_chunk(b"IEND", b""))
        return b"".join(out)


def encode_indexed_png(
    indices: np.ndarray,
    palette: np.ndarray,
    opaque: np.ndarray | None = None,
    *,
    sort: bool = False,
    level_sample: np.ndarray | None = None,
) -> bytes:
    """Encode palette indices as an indexed PNG at the smallest bit depth.

    With transparent pixels the palette gets one extra, fully transparent entry (index 0,
    a one-byte ``tRNS`` chunk) and the other entries move up by one.  More than 256 entries
    cannot be indexed: the image is then written as truecolour RGB(A).

    Scanlines use PNG filter type 0 (none), which the PNG specification recommends for
    palette images: on photos it gives 4-20 % smaller files than Pillow's adaptive filters
    (benchmarks/README.md), and the palette order then does not change the size.  With
    ``sort`` the PNG stores its palette from dark to light (:func:`lightness_order`) and
    the indices renumbered to match; the pixels' colours are the same either way.

    Parameters
    ----------
    indices : ndarray of shape (M, N), integer
        Palette index of each pixel.
    palette : ndarray of shape (K, 3), uint8
    opaque : ndarray of shape (M, N), bool, optional
        ``False`` where the pixel is fully transparent.
    sort : bool, optional
        Store the palette from dark to light (default: in the given order, for palettes
        whose order means something, e.g. a user's).
    level_sample : ndarray of shape (M, N), integer, optional
        Indices that choose the zlib level (see :class:`IndexedPngStream`); default
        ``indices``.

    Returns
    -------
    png : bytes
        Bit depth 1, 2, 4 or 8 for 2, 4, 16, 256 entries.
    """
    indices = np.asarray(indices)
    palette = np.asarray(palette, np.uint8).reshape(-1, 3)
    mask = None if opaque is None or bool(np.all(opaque)) else np.asarray(opaque, bool)
    if len(palette) + (mask is not None) > 256:
        rgb = palette[indices]
        if mask is not None:
            alpha = np.where(mask, 255, 0).astype(np.uint8)
            return encode_png(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"))
        return encode_png(Image.fromarray(rgb, "RGB"))
    stream = IndexedPngStream(
        indices.shape,
        palette,
        mask,
        sort=sort,
        level_sample=indices if level_sample is None else level_sample,
    )
    stream.feed(indices)
    return stream.finish()
