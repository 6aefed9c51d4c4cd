"""Indexed PNG encoding (arrays in, bytes out): the smallest bit depth, one transparent entry.

A base module: the metrics measure the PNG size with it and the exports write its bytes.
No EXIF, GPS or text metadata is ever written.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
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


#: zlib levels of indexed PNGs, measured on 4-8 MP photos against levels 6-9 (benchmarks/
#: README.md): at 1-4 bits per pixel level 8 is 4-7 % smaller than 6 for about 0.15 s more
#: per 4 MP (9 gains 1-2 % more for twice that); at 8 bits level 7 is within 1 % of 9.
_ZLIB_LEVEL_PACKED = 8
_ZLIB_LEVEL_BYTE = 7
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


def _zlib_level(rows: np.ndarray, bits: int) -> int:
    """Return the zlib level for (M, B) packed scanlines of ``bits`` bits per pixel."""
    m = rows.shape[0]
    if m and rows.shape[1]:
        sample = np.ascontiguousarray(rows[:: max(1, m // _RATIO_SAMPLE_ROWS)][:_RATIO_SAMPLE_ROWS])
        if sample.size >= _FLAT_RATIO * len(zlib.compress(sample.tobytes(), 1)):
            return _ZLIB_LEVEL_FLAT
    return _ZLIB_LEVEL_BYTE if bits == 8 else _ZLIB_LEVEL_PACKED


#: Scanline bytes per deflate block: larger images are compressed as independent blocks in
#: parallel threads (zlib releases the interpreter lock), joined into one zlib stream.  The
#: blocks depend on the data size only, so the bytes do not depend on the machine.
_DEFLATE_BLOCK = 1 << 20


def _deflate(data: bytes, level: int) -> bytes:
    """Compress ``data`` to a zlib stream; blocks of ``_DEFLATE_BLOCK`` bytes deflated in parallel.

    Each block is raw deflate ended by a sync flush (the last by the final block), so the
    concatenation is one valid deflate stream (as pigz writes); the zlib header and the
    Adler-32 of the whole data wrap it.
    """
    n_blocks = -(-len(data) // _DEFLATE_BLOCK)
    if n_blocks <= 1:
        return zlib.compress(data, level)
    from concurrent.futures import ThreadPoolExecutor

    view = memoryview(data)

    def block(i: int) -> bytes:
        z = zlib.compressobj(level, zlib.DEFLATED, -15)
        part = z.compress(view[i * _DEFLATE_BLOCK : (i + 1) * _DEFLATE_BLOCK])
        return part + z.flush(zlib.Z_FINISH if i == n_blocks - 1 else zlib.Z_SYNC_FLUSH)

    with ThreadPoolExecutor(min(n_blocks, os.cpu_count() or 1, 4)) as pool:
        body = b"".join(pool.map(block, range(n_blocks)))
    return b"\x78\xda" + body + struct.pack(">I", zlib.adler32(data))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


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


def encode_indexed_png(
    indices: np.ndarray,
    palette: np.ndarray,
    opaque: np.ndarray | None = None,
    *,
    sort: bool = False,
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

    Returns
    -------
    png : bytes
        Bit depth 1, 2, 4 or 8 for 2, 4, 16, 256 entries.
    """
    indices = np.asarray(indices)
    palette = np.asarray(palette, np.uint8).reshape(-1, 3)
    k = len(palette)
    if sort and 1 < k <= 256:
        order = lightness_order(palette)
        rank = np.empty(k, np.uint8)
        rank[order] = np.arange(k, dtype=np.uint8)
        palette = palette[order]
        indices = rank[indices]
    mask = None if opaque is None or bool(np.all(opaque)) else np.asarray(opaque, bool)
    transparent = mask is not None
    n_entries = k + 1 if transparent else k
    if n_entries > 256:
        rgb = palette[indices]
        if mask is not None:
            alpha = np.where(mask, 255, 0).astype(np.uint8)
            return encode_png(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"))
        return encode_png(Image.fromarray(rgb, "RGB"))
    if mask is not None:
        idx = np.where(mask, indices.astype(np.int64) + 1, 0).astype(np.uint8)
        entries = np.vstack([np.zeros((1, 3), np.uint8), palette])
    else:
        idx = indices.astype(np.uint8)
        entries = palette
    bits = next(b for b in (1, 2, 4, 8) if n_entries <= 1 << b)
    m, n = idx.shape
    rows = _pack_rows(idx, bits)
    scanlines = np.zeros((m, rows.shape[1] + 1), np.uint8)  # filter byte 0: none
    scanlines[:, 1:] = rows
    level = _zlib_level(rows, bits)
    header = struct.pack(">IIBBBBB", n, m, bits, 3, 0, 0, 0)
    out = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header), _chunk(b"PLTE", entries.tobytes())]
    if transparent:
        out.append(_chunk(b"tRNS", b"\x00"))
    out.append(_chunk(b"IDAT", _deflate(scanlines.tobytes(), level)))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)
