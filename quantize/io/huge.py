"""Images larger than memory: TIFFs read, histogrammed and mapped in row strips.

A TIFF over the pixel cap is never decoded whole.  Its rows are cut into strips of a
bounded size (:func:`plan_strips`); each strip is read on its own through tifffile's zarr
store (only the TIFF tiles or strips it overlaps are decoded), reduced to a weighted colour
histogram (:func:`strip_histogram`), and, once one palette is fitted to the exact sum of the
strips' histograms, mapped onto that palette (:func:`map_strip`: the same nearest-colour rule
as :func:`quantize.pipeline.map_to_palette`).  The palette indices are written as they come,
strip after strip: a PNG whose compressed rows are streamed (:func:`png_strip_fill`), or a
tiled palette TIFF (:func:`write_tiled_tiff`).

Memory: a strip task holds the strip's pixels, its distinct colours and their labels: about
``8 * rows * width * channels`` bytes for 8-bit input at most (the strip budget is in
:data:`STRIP_BYTES`); the writer holds the strips in flight.  Nothing is proportional to the
whole image.  Dithering needs the neighbours' errors across strips and is not applied.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from quantize.histograms import ColorHistogram, histogram_of_image
from quantize.io.load import LoadError

__all__ = [
    "STRIP_BYTES",
    "TiffInfo",
    "map_strip",
    "palette_lut",
    "plan_strips",
    "png_strip_fill",
    "read_strip",
    "strip_histogram",
    "tiff_info",
    "write_tiled_tiff",
]

#: Input bytes per strip: 64 MiB keeps a strip task under ~0.5 GiB (pixels, colour codes,
#: distinct colours, labels) and makes a few hundred tasks of a 50-gigapixel scan per GiB.
STRIP_BYTES = 64 << 20
_TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class TiffInfo:
    """What a TIFF header says (nothing decoded).

    Attributes
    ----------
    height, width : int
    channels : int
        1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
    dtype : str
        ``"uint8"`` or ``"uint16"``.
    rows_per_chunk : int
        Rows of one TIFF tile or strip (strips are cut at multiples of it).
    tiled : bool
    problem : str or None
        Why the image cannot be read in strips (float samples, planar layout...), if so.
    """

    height: int
    width: int
    channels: int
    dtype: str
    rows_per_chunk: int
    tiled: bool
    problem: str | None = None

    @property
    def n_pixels(self) -> int:
        """``height * width``."""
        return self.height * self.width


def tiff_info(path: str | os.PathLike[str]) -> TiffInfo | None:
    """Read a TIFF's size and layout from its header; None if the file is not a TIFF.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    info : TiffInfo or None
        None also for a header tifffile cannot read (the ordinary loader then says why).
    """
    p = Path(path)
    if p.suffix.lower() not in _TIFF_SUFFIXES or not p.is_file():
        return None
    import tifffile

    try:
        with tifffile.TiffFile(p) as tf:
            series = tf.series[0]
            page: Any = tf.pages[0]
            shape, axes, dtype = tuple(series.shape), series.axes, np.dtype(series.dtype)
            tiled = bool(page.is_tiled)
            rows = int(page.tilelength if tiled else page.rowsperstrip) or 1
            height, width = int(page.imagelength), int(page.imagewidth)
    except Exception:  # not a TIFF after all, or a damaged header
        return None
    problem = None
    channels = 3
    if dtype not in (np.uint8, np.uint16):
        problem = f"{dtype} samples (only 8- and 16-bit images are read in strips)"
    if axes == "YX":
        channels = 1
    elif axes == "YXS" and shape[2] in (2, 3, 4):
        channels = int(shape[2])
    else:
        problem = f"axes {axes} {shape} (only YX or YXS images are read in strips)"
    return TiffInfo(height, width, channels, str(dtype), min(rows, height), tiled, problem)


def plan_strips(info: TiffInfo, budget: int | None = None) -> list[tuple[int, int]]:
    """Cut the rows into strips of at most ``budget`` input bytes, at TIFF chunk borders.

    Parameters
    ----------
    info : TiffInfo
    budget : int, optional
        Input bytes per strip (default :data:`STRIP_BYTES`).

    Returns
    -------
    strips : list of (int, int)
        ``(first_row, end_row)``, covering every row once, in order.
    """
    budget = STRIP_BYTES if budget is None else int(budget)
    row_bytes = info.width * info.channels * np.dtype(info.dtype).itemsize
    rows = max(1, budget // max(1, row_bytes))
    step = info.rows_per_chunk
    rows = max(step, rows - rows % step)
    return [(y, min(y + rows, info.height)) for y in range(0, info.height, rows)]


def read_strip(path: str | os.PathLike[str], y0: int, y1: int) -> np.ndarray:
    """Read rows ``y0:y1`` of a TIFF, decoding only the tiles or strips they overlap.

    Parameters
    ----------
    path : str or Path
    y0, y1 : int

    Returns
    -------
    pixels : ndarray of shape (y1 - y0, N, 3) or (y1 - y0, N, 4), uint8 or uint16
        Grey is returned as R = G = B.

    Raises
    ------
    LoadError
        Damaged data.
    """
    import tifffile
    import zarr

    try:
        store = tifffile.imread(path, aszarr=True)
        try:
            arr = np.asarray(zarr.open_array(store, mode="r")[y0:y1])
        finally:
            store.close()
    except Exception as exc:
        raise LoadError(path, f"cannot read rows {y0}-{y1} ({exc})") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] <= 2:  # grey (+ alpha) is mapped as R = G = B, as the loader does
        arr = np.concatenate([np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1:]], axis=2)
    return arr


def strip_histogram(path: str | os.PathLike[str], y0: int, y1: int) -> ColorHistogram | None:
    """Return the weighted colour histogram of rows ``y0:y1`` (None if all transparent).

    Parameters
    ----------
    path : str or Path
    y0, y1 : int

    Returns
    -------
    histogram : ColorHistogram or None
    """
    pixels = read_strip(path, y0, y1)
    if pixels.shape[2] in (2, 4) and not (pixels[..., -1] > 0).any():
        return None
    return histogram_of_image(pixels)


def palette_lut(
    histogram: ColorHistogram, palette: np.ndarray, color_space: str
) -> np.ndarray | None:
    """Tabulate the nearest palette entry of every colour of an 8-bit image, by 24-bit code.

    The entries are those :func:`quantize.pipeline.map_to_palette` gives (the same
    rule, :func:`quantize.pipeline.palette_labels`, which does not depend on which other
    colours are searched with them), computed once for the distinct colours of the whole
    image; a strip is then mapped by one table look-up per pixel.

    Parameters
    ----------
    histogram : ColorHistogram
        The image's summed histogram (8-bit colours).
    palette : ndarray of shape (K, 3), uint8
    color_space : str

    Returns
    -------
    lut : ndarray of shape (2**24,), uint8 (K <= 256) or uint16, or None
        ``lut[(r << 16) | (g << 8) | b]``; None for a 16-bit histogram.
    """
    from quantize.colorspace import check_space
    from quantize.features import ColorTable
    from quantize.pipeline import palette_labels

    colors = histogram.colors
    if colors.dtype != np.uint8:
        return None
    space = check_space(color_space)
    table = ColorTable(
        colors=colors,
        counts=histogram.counts,
        inverse=np.arange(len(colors), dtype=np.int32),
        shape=(len(colors), 1),
        opaque=None,
    )
    pal = np.ascontiguousarray(np.asarray(palette, np.uint8))
    labels = palette_labels(table, pal, space)
    lut = np.zeros(1 << 24, np.uint8 if len(pal) <= 256 else np.uint16)
    c = colors.astype(np.int32)
    lut[(c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]] = labels
    return lut


def map_strip(
    path: str | os.PathLike[str],
    y0: int,
    y1: int,
    palette: np.ndarray,
    color_space: str,
    lut: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Map rows ``y0:y1`` onto ``palette`` (nearest entry in ``color_space``).

    Parameters
    ----------
    path : str or Path
    y0, y1 : int
    palette : ndarray of shape (K, 3), uint8
    color_space : str
    lut : ndarray of shape (2**24,), optional
        :func:`palette_lut` of the whole image (8-bit images): one look-up per pixel
        instead of finding the strip's distinct colours and their nearest entries.

    Returns
    -------
    labels : ndarray of shape (y1 - y0, N), uint8 (K <= 256) or uint16
    opaque : ndarray of shape (y1 - y0, N), bool, or None
        None when every pixel of the strip is opaque.
    counts : ndarray of shape (K,), int64
        Opaque pixels per palette entry.
    """
    from quantize.pipeline import map_to_palette

    pixels = read_strip(path, y0, y1)
    k = len(palette)
    if pixels.shape[2] in (2, 4) and not (pixels[..., -1] > 0).any():
        shape = pixels.shape[:2]
        return np.zeros(shape, np.uint8), np.zeros(shape, bool), np.zeros(k, np.int64)
    if lut is not None and pixels.dtype == np.uint8:
        rgb = pixels[..., :3]
        codes = rgb[..., 0].astype(np.int32) << 16
        codes |= rgb[..., 1].astype(np.int32) << 8
        codes |= rgb[..., 2]
        labels = np.take(lut, codes)
        opaque = pixels[..., 3] > 0 if pixels.shape[2] == 4 else None
        if opaque is not None:
            labels[~opaque] = 0  # as map_to_palette: transparent pixels get label 0
    else:
        result = map_to_palette(pixels, palette, color_space=color_space)
        labels = result.labels
        opaque = result.opaque
    if opaque is not None and bool(opaque.all()):
        opaque = None
    chosen = labels if opaque is None else labels[opaque]
    counts = np.bincount(chosen.ravel(), minlength=k)[:k].astype(np.int64)
    return labels, opaque, counts


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_strip_fill(
    width: int,
    height: int,
    palette: np.ndarray,
    transparent: bool,
    strips: Iterable[tuple[np.ndarray, np.ndarray | None]],
    level: int = 6,
) -> Callable[[IO[bytes]], None]:
    """Make a fill (for :mod:`quantize.io._atomic`) that streams an indexed PNG strip by strip.

    Parameters
    ----------
    width, height : int
    palette : ndarray of shape (K, 3), uint8
        K <= 256 (255 with transparency: entry K is then the transparent one).
    transparent : bool
        Whether some pixel is fully transparent (known from the histograms).
    strips : iterable of (labels, opaque)
        In row order, together ``height`` rows of ``width`` labels.
    level : int, optional
        zlib compression level.

    Returns
    -------
    fill : callable
        Writes the PNG into the file object it is given.

    Raises
    ------
    ValueError
        Too many palette entries for an indexed PNG.
    """
    palette = np.asarray(palette, np.uint8).reshape(-1, 3)
    k = len(palette)
    entries = k + (1 if transparent else 0)
    if entries > 256:
        raise ValueError(f"{entries} palette entries do not fit an indexed PNG (at most 256)")
    plte = palette.tobytes() + (b"\0\0\0" if transparent else b"")

    def fill(f: IO[bytes]) -> None:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)))
        f.write(_chunk(b"PLTE", plte))
        if transparent:
            f.write(_chunk(b"tRNS", b"\xff" * k + b"\0"))
        z = zlib.compressobj(level)
        rows_done = 0
        for labels, opaque in strips:
            idx = labels.astype(np.uint8)
            if opaque is not None:
                idx = np.where(opaque, idx, np.uint8(k))
            raw = np.empty((idx.shape[0], width + 1), np.uint8)
            raw[:, 0] = 0  # filter type None: the strips compress independently of order
            raw[:, 1:] = idx
            data = z.compress(raw.tobytes())
            if data:
                f.write(_chunk(b"IDAT", data))
            rows_done += idx.shape[0]
        if rows_done != height:
            raise ValueError(f"{rows_done} rows written for an image of {height}")
        f.write(_chunk(b"IDAT", z.flush()))
        f.write(_chunk(b"IEND", b""))

    return fill


def write_tiled_tiff(
    path: str | os.PathLike[str],
    width: int,
    height: int,
    palette: np.ndarray,
    strips: Iterable[tuple[np.ndarray, np.ndarray | None]],
    *,
    tile: int = 256,
    overwrite: bool = False,
) -> Path:
    """Write palette indices strip by strip into a tiled, deflate-compressed palette TIFF.

    Written to a hidden temporary file in the same folder, moved into place when complete
    (removed on any failure): no partial file ever has the output's name.  Transparent
    pixels get index 0 (TIFF palettes have no transparency).

    Parameters
    ----------
    path : str or Path
    width, height : int
    palette : ndarray of shape (K, 3), uint8
        K <= 256.
    strips : iterable of (labels, opaque)
        In row order; each strip's height a multiple of ``tile`` except the last.
    tile : int, optional
        Tile edge (a multiple of 16).
    overwrite : bool, optional

    Returns
    -------
    path : Path

    Raises
    ------
    OutputExistsError
        ``path`` exists and not ``overwrite``.
    """
    import tifffile

    from quantize.io.errors import OutputExistsError

    final = Path(path)
    if not overwrite and (final.exists() or final.is_symlink()):
        raise OutputExistsError(f"{final}: already exists (use --force)", [final])
    k = len(palette)
    colormap = np.zeros((3, 256), np.uint16)
    colormap[:, :k] = np.asarray(palette, np.uint16).T * 257

    def tiles() -> Iterator[np.ndarray]:
        pending = np.zeros((0, width), np.uint8)
        for labels, _opaque in strips:
            pending = np.concatenate([pending, labels.astype(np.uint8)])
            while len(pending) >= tile:
                yield from _row_of_tiles(pending[:tile], tile)
                pending = pending[tile:]
        if len(pending):
            yield from _row_of_tiles(pending, tile)

    tmp = final.with_name(f".{final.name}.{os.getpid()}.part")
    try:
        tifffile.imwrite(
            tmp,
            tiles(),
            shape=(height, width),
            dtype=np.uint8,
            tile=(tile, tile),
            photometric="palette",
            colormap=colormap,
            compression="zlib",
        )
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return final


def _row_of_tiles(rows: np.ndarray, tile: int) -> Iterator[np.ndarray]:
    """Cut ``rows`` (at most ``tile`` of them) into tiles, padded with zeros."""
    h, w = rows.shape
    for x in range(0, w, tile):
        t = np.zeros((tile, tile), np.uint8)
        part = rows[:, x : x + tile]
        t[:h, : part.shape[1]] = part
        yield t
