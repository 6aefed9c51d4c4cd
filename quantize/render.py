"""Map an image onto a palette: nearest colour, Floyd–Steinberg or ordered (Bayer) dithering.

Floyd–Steinberg at full strength with at most 256 colours uses Pillow's C implementation
through ``Image.quantize(palette=...)`` (a palette image is required, see Pillow#5836).  Other
strengths, larger palettes and images with transparent pixels use a vectorised error
diffusion that walks the image along the wavefront ``x + 2 y = t``: every pixel on one
wavefront has received all its error, so a whole wavefront is quantized in one numpy step
(the pending error of the next three wavefronts is kept in a small ring of rows).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from quantize.cluster._nearest import NearestCentre, nearest_indices
from quantize.features import unique_colors
from quantize.options import DITHERS
from quantize.pixels import as_rgb, to_uint8
from quantize.protocol import CancelCallback, check_cancel

__all__ = ["BAYER_8", "DITHER_METHODS", "dither_indices", "index_dtype"]

DITHER_METHODS: tuple[str, ...] = DITHERS.names


def _bayer(n: int) -> np.ndarray:
    m = np.zeros((1, 1), np.int64)
    while m.shape[0] < n:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return m


#: 8x8 Bayer threshold matrix with values 0..63.
BAYER_8: np.ndarray = _bayer(8)
_CHUNK = 1 << 16


def _validate(image: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = as_rgb(image)
    palette = np.asarray(palette)
    if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) == 0:
        raise ValueError(f"palette must have shape (K, 3) with K >= 1, got {palette.shape}")
    if len(palette) > 65536:
        raise ValueError("at most 65536 palette colours are supported")
    return to_uint8(image), palette.astype(np.float64)


def index_dtype(k: int) -> type[np.unsignedinteger]:
    """Smallest unsigned dtype for palette indices of ``k`` colours (uint8 up to 256)."""
    return np.uint8 if k <= 256 else np.uint16


def _nearest_image(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    table = unique_colors(rgb)  # nearest colour once per distinct colour
    return table.gather(nearest_indices(table.colors, palette))


def _palette_spread(palette: np.ndarray) -> float:
    """Typical per-channel step between neighbouring palette colours (for ordered dither)."""
    k = len(palette)
    if k < 2:
        return 0.0
    sample = palette[:: max(1, k // 2048)]  # every colour up to 2048 colours
    d = np.sqrt(((sample[:, None, :] - sample[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(axis=1))) / np.sqrt(3.0)


def _ordered(
    rgb: np.ndarray, palette: np.ndarray, strength: float, should_cancel: CancelCallback | None
) -> np.ndarray:
    m, n = rgb.shape[:2]
    threshold = (BAYER_8 + 0.5) / 64.0 - 0.5  # in (-0.5, 0.5)
    offset = strength * _palette_spread(palette) * threshold
    tiles = np.tile(offset, (-(-m // 8), -(-n // 8)))[:m, :n]
    out = np.empty((m, n), np.int64)
    rows = max(1, _CHUNK // max(n, 1))
    for r in range(0, m, rows):
        check_cancel(should_cancel)
        block = rgb[r : r + rows].astype(np.float64) + tiles[r : r + rows, :, None]
        out[r : r + rows] = nearest_indices(block.reshape(-1, 3), palette).reshape(-1, n)
    return out


def _fs_pillow(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    pal_img = Image.new("P", (1, 1))
    flat = np.zeros(768, np.uint8)
    flat[: 3 * len(palette)] = np.clip(np.rint(palette), 0, 255).astype(np.uint8).ravel()
    # unused entries repeat colour 0 so they can never be nearer than a real entry
    flat[3 * len(palette) :] = np.tile(flat[:3], 256 - len(palette))
    pal_img.putpalette(flat.tobytes())
    out = Image.fromarray(rgb, "RGB").quantize(palette=pal_img, dither=Image.Dither.FLOYDSTEINBERG)
    idx = np.asarray(out).astype(np.int64)
    # map duplicate padding entries (and duplicated real colours) to their first index
    first = nearest_indices(flat.reshape(256, 3).astype(np.float64), palette)
    return first[idx]


def _fs_numpy(
    rgb: np.ndarray,
    palette: np.ndarray,
    strength: float,
    opaque: np.ndarray | None,
    should_cancel: CancelCallback | None,
) -> np.ndarray:
    """Floyd–Steinberg along the wavefronts ``t = x + 2 y``, one numpy step per wavefront.

    Pixel (y, x) passes its error to (y, x+1) and (y+1, x-1) on wavefront t+1, to (y+1, x)
    on t+2 and to (y+1, x+1) on t+3, so only four wavefronts ever hold pending error.  They
    live in a ring of four contiguous rows indexed by y (a wavefront is one slice of a row,
    and each of the four error shares is one slice added to another row), instead of
    scattering into a whole-image buffer.  The additions happen in the same order as in a
    pixel-by-pixel loop over whole-image buffers, so the result is the same to the bit.
    """
    m, n = rgb.shape[:2]
    w = n + 2
    # with a spare column each side, pixel (y, x = t - 2y) is at flat index y*w + x + 1 =
    # y*n + t + 1: a wavefront is the slice [y0*n + t + 1 : y1*n + t + 2 : n]
    src = np.zeros((m, w, 3), np.uint8)
    src[:, 1 : n + 1] = rgb
    src = src.reshape(-1, 3)
    out = np.zeros(m * w, np.intp)
    ok = None
    if opaque is not None:
        ok = np.zeros((m, w), bool)
        ok[:, 1 : n + 1] = opaque
        ok = ok.reshape(-1)
    ring = np.zeros((4, m + 1, 3), np.float64)  # wavefront t is row t % 4; index y (+1 spare)
    n_t = n + 2 * (m - 1)

    def rows(t: int) -> tuple[int, int]:
        """First and last y on wavefront t (empty when first > last)."""
        return max(0, (t - n + 2) // 2), min(m - 1, t // 2)

    def start(t: int) -> None:
        """Put the pixels of wavefront t into its (recycled) ring row."""
        row = ring[t % 4]
        row.fill(0.0)
        y0, y1 = rows(t)
        if t < n_t and y0 <= y1:
            row[y0 : y1 + 1] = src[y0 * n + t + 1 : y1 * n + t + 2 : n]

    for t in range(3):
        start(t)
    nearest = NearestCentre(palette, points_sq_max=3 * 255.0**2)  # values are clipped
    for t in range(n_t):
        if t % 64 == 0:
            check_cancel(should_cancel)
        start(t + 3)
        y0, y1 = rows(t)
        if y0 > y1:
            continue
        value = np.clip(ring[t % 4][y0 : y1 + 1], 0.0, 255.0)
        idx = nearest(value)
        wave = slice(y0 * n + t + 1, y1 * n + t + 2, n)
        out[wave] = idx
        err = (value - palette[idx]) * strength
        if ok is not None:
            err[~ok[wave]] = 0.0
        next1 = ring[(t + 1) % 4]
        next1[y0 : y1 + 1] += err * (7.0 / 16.0)
        next1[y0 + 1 : y1 + 2] += err * (3.0 / 16.0)
        ring[(t + 2) % 4][y0 + 1 : y1 + 2] += err * (5.0 / 16.0)
        ring[(t + 3) % 4][y0 + 1 : y1 + 2] += err * (1.0 / 16.0)
    return out.reshape(m, w)[:, 1 : n + 1]


def dither_indices(
    image: np.ndarray,
    palette: np.ndarray,
    method: str = "fs",
    strength: float = 1.0,
    *,
    opaque: np.ndarray | None = None,
    should_cancel: CancelCallback | None = None,
) -> np.ndarray:
    """Map every pixel to a palette index, optionally with dithering.

    Parameters
    ----------
    image : ndarray of shape (M, N, 3) or (M, N, 4), uint8 or uint16
        The image (grey, grey+alpha and float images are accepted as by :func:`as_rgb`);
        16-bit input is first rounded to 8 bits, alpha is ignored except that
        fully transparent pixels (alpha 0) diffuse no error and get index 0.
    palette : ndarray of shape (K, 3)
        sRGB palette, 0-255.
    method : {"fs", "ordered", "none"}, optional (see :data:`quantize.options.DITHERS`)
        Floyd–Steinberg error diffusion, 8x8 Bayer ordered dithering, or nearest colour.
    strength : float, optional
        0 gives the nearest colour, 1 full dithering (the error fraction diffused, or the
        amplitude of the Bayer offsets relative to the palette's colour spacing).
    opaque : ndarray of shape (M, N), bool, optional
        Which pixels count; default: derived from the alpha channel, if any.
    should_cancel : callable, optional
        Polled between blocks of work (the numpy error diffusion and ordered dithering);
        returning True raises :class:`~quantize.protocol.Cancelled`.

    Returns
    -------
    indices : ndarray of shape (M, N), uint8 if K <= 256 else uint16

    Raises
    ------
    ValueError
        Bad shapes, dtypes, method or strength.
    Cancelled
        When ``should_cancel`` returned True.
    """
    if method not in DITHER_METHODS:
        raise ValueError(f"method must be one of {DITHER_METHODS}, got {method!r}")
    strength = float(strength)
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    img8, pal = _validate(image, palette)
    if opaque is None and img8.shape[2] == 4:
        opaque = img8[:, :, 3] > 0
    if opaque is not None and bool(np.all(opaque)):
        opaque = None
    rgb = np.ascontiguousarray(img8[:, :, :3])
    k = len(pal)
    if method == "none" or strength == 0.0 or k == 1:
        idx = _nearest_image(rgb, pal)
    elif method == "ordered":
        idx = _ordered(rgb, pal, strength, should_cancel)
    elif strength == 1.0 and k <= 256 and opaque is None:
        idx = _fs_pillow(rgb, pal)
    else:
        idx = _fs_numpy(rgb, pal, strength, opaque, should_cancel)
    if opaque is not None:
        idx[~opaque] = 0
    return idx.astype(index_dtype(k))
