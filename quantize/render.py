"""Map an image onto a palette: nearest colour, Floyd–Steinberg or ordered (Bayer) dithering.

Floyd–Steinberg is adaptive by default: each pixel takes a share of the pending error from a
dither map (:func:`dither_map`: full in smooth areas whose undithered rendering shows bands,
less on texture and edges), pending error is capped relative to the palette's RMS error and
dropped when negligible.  The error diffusion walks the image along the wavefront
``x + 2 y = t``: every pixel on one wavefront has received all its error, so a whole
wavefront is quantized in one numpy step (the pending error of the next three wavefronts is
kept in a small ring of rows).  The nearest colour of each rounded value is memoised in a
2**24 table.

With numba installed the same diffusion runs as one compiled raster loop
(:mod:`quantize._fs_numba`, the same indices to the bit, 2-6 times faster), whose machine
code is cached and loaded with llvmlite alone (:mod:`quantize._native`); a process that
will dither can load it in the background first (:func:`prepare_dithering`, the app does
when Floyd–Steinberg is chosen); images of a quarter megapixel or more use it in any case.
``VQ_NUMBA=0`` in the environment keeps the numpy form.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import astuple, dataclass, replace
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from quantize import _native
from quantize.cluster._annular import nearest_two
from quantize.cluster._nearest import NearestCentre, nearest_indices
from quantize.colorspace import rgb_to_space
from quantize.features import unique_colors
from quantize.options import DITHERS
from quantize.pixels import as_rgb, to_uint8
from quantize.protocol import CancelCallback, check_cancel

__all__ = [
    "BAYER_8",
    "DITHER_METHODS",
    "compiled_diffusion",
    "compiled_diffusion_pays",
    "dither_indices",
    "dither_map",
    "TIE_RATIO",
    "index_dtype",
    "nearest_entries",
    "prepare_dithering",
]

DITHER_METHODS: tuple[str, ...] = DITHERS.names


def _bayer(n: int) -> np.ndarray:
    m = np.zeros((1, 1), np.int64)
    while m.shape[0] < n:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return m


#: Distance ratio within which two palette entries count as tied for a colour in an
#: undithered rendering (:func:`nearest_entries`): OKLab then decides.  On eleven photos at
#: K = 64 (benchmarks/README.md, fourteenth steps) 1.02-1.05 all tie pngquant's blurred
#: CIEDE2000 at the median; up to 1.03 the files stay 0.9 % smaller than pngquant's, from
#: 1.04 one night photo's file grows by 1 % and the median with it.
TIE_RATIO = 1.03
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


def _scaled(colors: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    """Colours (float64) in the space of the nearest-entry search: times the channel scales."""
    out = np.asarray(colors, np.float64)
    return out if scale is None else out * scale


def nearest_entries(
    colors: ArrayLike,
    palette: ArrayLike,
    scale: ArrayLike | None = None,
) -> np.ndarray:
    """Palette entry of each colour in an undithered rendering.

    The nearest entry by the (channel-scaled) sRGB distance, except where the second nearest
    is nearly as near (distance at most :data:`TIE_RATIO` times the nearest's): of those two,
    the one nearer in OKLab.  Weighted sRGB, the fits' default distance, is a coarse stand-in
    for how far apart colours look; between two entries it cannot tell apart, OKLab chooses
    better: on eleven photos it took the undithered rendering's blurred CIEDE2000 at 64
    colours from 0.0017 above pngquant's to a tie at the median, and at 256 colours from
    0.007 to 0.015 below it (benchmarks/README.md, the thirteenth and fourteenth steps).
    A colour that is itself an entry keeps it.

    Parameters
    ----------
    colors : array_like of shape (U, 3)
        sRGB colours, 0-255 (whole numbers: the distinct colours of an image).
    palette : array_like of shape (K, 3)
        sRGB palette, 0-255.
    scale : array_like of shape (3,), optional
        Channel scales of the distance (:func:`quantize.colorspace.search_weights`);
        default: plain sRGB distance.

    Returns
    -------
    entries : ndarray of shape (U,), int64
    """
    colors = np.asarray(colors, np.float64).reshape(-1, 3)
    palette = np.asarray(palette, np.float64).reshape(-1, 3)
    scale = None if scale is None else np.asarray(scale, np.float64)
    X, P = _scaled(colors, scale), _scaled(palette, scale)
    k = len(P)
    if k < 2 or len(X) == 0:
        return nearest_indices(X, P)
    first, second, d1, d2 = nearest_two(X, P)
    tied = np.flatnonzero(d2 <= TIE_RATIO**2 * d1)
    if tied.size:
        ok = rgb_to_space(colors[tied] / 255.0, "oklab")
        ok_pal = rgb_to_space(np.clip(palette, 0, 255) / 255.0, "oklab")
        a, b = first[tied], second[tied]
        da = ((ok - ok_pal[a]) ** 2).sum(1)
        db = ((ok - ok_pal[b]) ** 2).sum(1)
        first[tied] = np.where(db < da, b, a)
    return first


def _nearest_image(rgb: np.ndarray, palette: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    table = unique_colors(rgb)  # the entry once per distinct colour
    return table.gather(nearest_entries(table.colors, palette, scale))


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
    rgb: np.ndarray,
    palette: np.ndarray,
    strength: float,
    should_cancel: CancelCallback | None,
    scale: np.ndarray | None,
) -> np.ndarray:
    m, n = rgb.shape[:2]
    threshold = (BAYER_8 + 0.5) / 64.0 - 0.5  # in (-0.5, 0.5)
    offset = strength * _palette_spread(palette) * threshold
    tiles = np.tile(offset, (-(-m // 8), -(-n // 8)))[:m, :n]
    out = np.empty((m, n), np.int64)
    rows = max(1, _CHUNK // max(n, 1))
    centres = _scaled(palette, scale)
    for r in range(0, m, rows):
        check_cancel(should_cancel)
        block = rgb[r : r + rows].astype(np.float64) + tiles[r : r + rows, :, None]
        block = _scaled(block.reshape(-1, 3), scale)
        out[r : r + rows] = nearest_indices(block, centres).reshape(-1, n)
    return out


#: How far pending error may push a value outside [0, 255] (levels) before it is clipped.
#: A little overshoot keeps dithering alive next to black and white, where clipping every
#: channel at the gamut's edge would leave undithered bands.
_OVERSHOOT = 16.0


@dataclass(frozen=True)
class _Adaptive:
    """Settings of adaptive Floyd–Steinberg.

    Parameters
    ----------
    texture : float
        Texture scale of the dither map (mean absolute second difference, 0-1 scale): where
        the image is this busy, a pixel takes half the error it takes in a smooth area.
    floor : float
        The least share of error a pixel takes, in the busiest texture or on an edge.
    flat_min : float
        The share of error a pixel takes when none of its neighbours share its undithered
        colour.
    cap_rms : float
        Pending error is capped at this multiple of the RMS error of the undithered
        rendering (and at least ``_CAP_MIN`` levels): larger errors come from colours the
        palette lacks, and spreading them in full paints streaks of a wrong colour.
    drop_sq : float
        Pending error whose squared norm is below this (levels**2) is dropped: it can hardly
        change the chosen colour and only sprinkles noise (and PNG bytes) over flat areas.
    """

    texture: float
    floor: float
    flat_min: float
    cap_rms: float
    drop_sq: float


#: Settings for a coarse palette (K <= 16) and a fine one (K >= 64), interpolated on log2 K in
#: between.  Tuned on whole camera photos against pngquant's dithering, with palettes of the
#: default weighted sRGB space (benchmarks/README.md): more error everywhere lowers the
#: blurred colour error and SSIM together.  On eleven photos the medians of both stay on
#: pngquant's side of SSIM with as much error as that allows: at K = 16 every pixel takes at
#: least 90 % of its pending error (texture no longer lowers it: its dither noise cost less
#: SSIM than the colour it kept), at K = 64 and 256 at least 72 %.  The fine palette's error
#: cap was 4 while the diffusion chose entries by plain sRGB distance; choosing them by the
#: fit's weights lowered the K = 256 blurred colour error by 0.011 and took SSIM to a tie,
#: and 3.4 shares the gain: -0.007 and +0.0014 against pngquant in whole runs of `vq`
#: (benchmarks/README.md, thirteenth steps).  A coarse palette drops pending error under 2
#: levels (it was 1.41): a flat graphic whose large areas sit one level off their palette
#: colour in one or two channels was sprinkled with dither noise (city, K = 16: 3.9 times
#: pngquant's bytes, 1.00 times after, SSIM above pngquant's, blurred colour error below it;
#: the ten photos change by less than 0.001 in either).
_COARSE = _Adaptive(texture=0.08, floor=1.0, flat_min=0.9, cap_rms=2.5, drop_sq=4.0)
_FINE = _Adaptive(texture=0.12, floor=0.9, flat_min=0.8, cap_rms=3.4, drop_sq=0.5)
_CAP_MIN = 12.0


#: The error cap at K = 64, between the coarse and fine palettes' (interpolated on log2 K from
#: K = 16 to 64 and from 64 to 256).  At K = 64 a cap of 4 held the dithered mean colour error
#: (CIEDE2000 after a 1-px blur) 0.023 above pngquant's on eleven photos; 5 halves that with
#: SSIM still above pngquant's, 6 and more cost SSIM (benchmarks/README.md, issue 10).
_CAP_RMS_64 = 5.0


def _fineness(n_colors: int) -> float:
    """How far a palette of ``n_colors`` is from coarse (0, K <= 16) to fine (1, K >= 64)."""
    return float(np.clip((np.log2(max(n_colors, 1)) - 4.0) / 2.0, 0.0, 1.0))


def _adaptive_settings(n_colors: int) -> _Adaptive:
    log_k = np.log2(max(n_colors, 1))
    t = _fineness(n_colors)
    settings = _Adaptive(
        *(a + t * (b - a) for a, b in zip(astuple(_COARSE), astuple(_FINE), strict=True))
    )
    cap = np.interp(log_k, [4.0, 6.0, 8.0], [_COARSE.cap_rms, _CAP_RMS_64, _FINE.cap_rms])
    return replace(settings, cap_rms=float(cap))


#: Channel scales of the nearest-entry search in adaptive Floyd–Steinberg with a fine palette
#: (K >= 64; from K = 16 to 64 they run from the caller's scales to these, on log2 K).  With
#: many entries near every value, a search that weighs green most and blue least picks entries
#: that keep the lightness and leave the dither noise in chroma, where it shows least; the
#: diffused error stays the sRGB difference.  On eleven camera photos in whole runs of `vq`,
#: against the fit's own scales (0.8, 1, 0.7), the medians against pngquant moved: blurred
#: CIEDE2000 +0.00001 -> -0.0024 (K = 64) and -0.007 -> -0.022 (K = 256), SSIM +0.0013 ->
#: +0.0009 and +0.0014 -> +0.0005 (still above pngquant's).  libimagequant's 0.5, 1, 0.45
#: went further but cost SSIM at K = 256, and at K = 16 it raised the colour error (its
#: entries are too far apart to trade lightness for hue), so a coarse palette keeps the
#: caller's scales (benchmarks/README.md, issue 10).
_FINE_SEARCH = np.array([0.65, 1.0, 0.57])


def _diffusion_scale(scale: np.ndarray | None, n_colors: int) -> np.ndarray | None:
    """Channel scales of adaptive Floyd–Steinberg's search for a palette of ``n_colors``.

    Parameters
    ----------
    scale : ndarray of shape (3,), optional
        The caller's scales (None: plain sRGB distance).
    n_colors : int

    Returns
    -------
    scale : ndarray of shape (3,) or None
        ``scale`` for K <= 16, :data:`_FINE_SEARCH` for K >= 64, linear in log2 K between.
    """
    t = _fineness(n_colors)
    if t == 0.0:
        return scale
    base = np.ones(3) if scale is None else np.asarray(scale, np.float64)
    return base + t * (_FINE_SEARCH - base)


#: Palettes up to this size are searched directly in error diffusion (no memo table).  The
#: memo is faster from K = 8 on (4 MP photos, K = 8/16/32: 0.62/0.59/0.59 s against
#: 0.73/0.77/0.79 s direct; 8.7 MP: 1.02/1.01/1.06 against 1.23/1.30/1.41 s).
_DIRECT_MAX = 4


def _box_sum(a: np.ndarray, r: int) -> np.ndarray:
    """Sum over the (2r+1) x (2r+1) window around each element (edges repeated), a's dtype."""
    m, n = a.shape
    p = np.pad(a, r, mode="edge")
    rows = p[:, :n].copy()
    for d in range(1, 2 * r + 1):  # shifted adds: cheaper than cumulative sums
        rows += p[:, d : d + n]
    out = rows[:m].copy()
    for d in range(1, 2 * r + 1):
        out += rows[d : d + m]
    return out


def dither_map(image: np.ndarray, indices: np.ndarray, n_colors: int | None = None) -> np.ndarray:
    """How much pending error each pixel takes in adaptive Floyd–Steinberg, in [0, 1].

    Dithering pays where an undithered rendering shows bands: smooth gradients that the
    palette cuts into flat runs of one colour.  It costs where the image is already busy
    (texture, noise, edges): there the original's own detail hides the quantization error,
    and diffused error only adds noise, blurs edges and costs PNG bytes.  The map is the
    product of two factors:

    - *calm*, from the image: the mean absolute second difference (largest over the
      channels, along rows and columns, 0-1 scale) in a 5 x 5 window, ``b``, gives
      ``calm = 1 / (1 + (b / texture) ** 2)``, mapped to ``[floor, 1]``;
    - *flat*, from the undithered rendering: the share ``s`` of a pixel's eight neighbours
      with the same palette index gives ``flat_min + (1 - flat_min) * s`` (1 inside a band,
      lower where the rendering already changes from pixel to pixel).

    ``texture``, ``floor`` and ``flat_min`` are 0.08, 1.0 and 0.9 for K <= 16 colours (so
    texture plays no part) and 0.12, 0.9 and 0.8 for K >= 64, interpolated on log2 K in
    between.

    The constants were tuned on eleven whole camera photos at K = 16, 64 and 256 against
    pngquant's dithering (SSIM and mean CIEDE2000 after a 1-pixel blur, see
    benchmarks/README.md): more error everywhere lowers the blurred colour error and SSIM
    together, less raises both; these values keep the median SSIM above pngquant's with the
    lowest blurred colour error that allows.

    Parameters
    ----------
    image : ndarray of shape (M, N, 3), uint8
        The image.
    indices : ndarray of shape (M, N), integer
        Its undithered rendering (nearest palette index of every pixel).
    n_colors : int, optional
        Palette size K (default: the largest index + 1).

    Returns
    -------
    weight : ndarray of shape (M, N), float32
    """
    m, n = indices.shape
    if n_colors is None:
        n_colors = int(indices.max(initial=0)) + 1
    settings = _adaptive_settings(n_colors)
    if settings.floor < 1.0:
        # second differences and their 5 x 5 sums are integers: int16 holds them (at most
        # 25 * 510) with half the memory traffic of float32, and the same values
        busy = np.zeros((m, n), np.int16)
        for c in range(3):  # channel planes: reductions over a length-3 axis are slow
            f = image[:, :, c].astype(np.int16)
            if n > 2:
                d = f[:, :-2] + f[:, 2:]
                d -= f[:, 1:-1]
                d -= f[:, 1:-1]
                np.abs(d, out=d)
                np.maximum(busy[:, 1:-1], d, out=busy[:, 1:-1])
            if m > 2:
                d = f[:-2] + f[2:]
                d -= f[1:-1]
                d -= f[1:-1]
                np.abs(d, out=d)
                np.maximum(busy[1:-1], d, out=busy[1:-1])
        weight = _box_sum(busy, 2).astype(np.float32)
        weight *= np.float32(1.0 / 25.0)
        weight *= np.float32(1.0 / (255.0 * settings.texture))
        np.square(weight, out=weight)
        weight += 1.0
        np.reciprocal(weight, out=weight)  # calm, in (0, 1]
        weight *= 1.0 - settings.floor
        weight += settings.floor
    else:  # the floor is 1: texture plays no part
        weight = np.ones((m, n), np.float32)
    indices = indices.astype(np.int16 if indices.max(initial=0) < 32767 else np.int32)
    padded = np.pad(indices, 1, mode="edge")
    count = np.zeros((m, n), np.uint8)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                count += padded[dy : dy + m, dx : dx + n] == indices
    same = count.astype(np.float32)
    same *= np.float32((1.0 - settings.flat_min) / 8.0)
    same += settings.flat_min
    weight *= same
    return weight


class _PaletteLookup:
    """Nearest palette index of values in error diffusion (the one exact search).

    Up to ``_DIRECT_MAX`` colours every value is searched directly
    (:class:`~quantize.cluster._nearest.NearestCentre`, one call per wavefront).  Larger
    palettes round each value to an integer colour and memoise the nearest index of every
    integer colour met in a 2**24 table, so that a repeat costs one gather; each new integer
    colour is searched once (an integer palette, as every rendering has: by exact integer
    distances in float64, no margin needed).

    With channel scales ``scale`` (3,) the nearest entry is the one nearest in the scaled
    space: values and palette are multiplied by ``scale`` in float64 before the search (the
    products the compiled loop computes).
    """

    def __init__(self, palette: np.ndarray, scale: np.ndarray | None = None) -> None:
        self.direct = len(palette) <= _DIRECT_MAX
        self.scale = scale
        reach = (255.0 + _OVERSHOOT) * (1.0 if scale is None else float(np.max(scale)))
        self.search = NearestCentre(_scaled(palette, scale), points_sq_max=3 * reach * reach)
        if not self.direct:  # index + 1, 0 = not searched yet: zeroed pages cost nothing
            dtype = np.uint16 if len(palette) < np.iinfo(np.uint16).max else np.int32
            self.table = np.zeros(1 << 24, dtype)

    #: r * 65536 + g * 256 + b as one float32 product: every partial sum is an integer
    #: below 2**24, so it is exact in float32 whatever the summation order
    _CODE_WEIGHTS = np.array([65536.0, 256.0, 1.0], np.float32)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Nearest index + 1 of ``values`` (shape (P, 3), float32), shape (P,).

        One-based, as the memo table stores them (0 = not searched yet); the error diffusion
        keeps them so and subtracts 1 from its whole result once.
        """
        if self.direct:
            idx = self.search(_scaled(values, self.scale))
            idx += 1
            return idx
        q = np.rint(values)
        np.clip(q, 0.0, 255.0, out=q)
        code = (q @ self._CODE_WEIGHTS).astype(np.int32)
        idx = self.table[code]
        if not idx.all():
            missing = np.flatnonzero(idx == 0)
            # rounded colours: against an integer palette (every rendering's) no margin
            search = self.search.of_integers if self.search.integral else self.search
            found = search(_scaled(q[missing], self.scale))
            found += 1
            self.table[code[missing]] = found
            idx[missing] = found
        return idx


#: This process's load of the compiled loops (:class:`quantize._native._Loaded`).
_Compiled = _native._Loaded


def compiled_diffusion() -> Any:
    """Return the compiled error diffusion (a :class:`quantize._native.Kernels`), or None.

    :func:`quantize._native.kernels`: the first call loads the machine code (a few
    hundredths of a second; compiling it the first time after an install takes several
    seconds).  None when numba/llvmlite is not installed, fails, or ``VQ_NUMBA=0``; the
    reason is in ``compiled_diffusion_error()``.
    """
    return _native.kernels()


def compiled_diffusion_error() -> str:
    """Why the compiled error diffusion is not used ("" when it is, or was never tried)."""
    return _native.kernels_error()


def prepare_dithering() -> None:
    """Start loading the compiled error diffusion in a background thread, if not loaded yet.

    The app calls this when Floyd–Steinberg is chosen, so that the first dithered run does
    not wait for numba; Floyd–Steinberg calls it for a large image before computing the
    dither map, which then overlaps the load.
    """
    _native.prepare()


def _dither_map_compiled(
    kernel: Any, image: np.ndarray, indices: np.ndarray, n_colors: int
) -> np.ndarray:
    """:func:`dither_map` compiled (the same float32 values), shape (M, N)."""
    st = _adaptive_settings(n_colors)
    m, n = indices.shape[:2]
    return kernel.dither_map(
        np.ascontiguousarray(image, np.uint8),
        np.ascontiguousarray(indices, np.int32),
        np.float32(1.0 / (255.0 * st.texture)),
        np.float32(st.floor),
        np.float32(1.0 - st.floor),
        np.float32(st.flat_min),
        np.float32((1.0 - st.flat_min) / 8.0),
        bands=min(2, os.cpu_count() or 1) if m * n >= _MAP_PARALLEL_MIN_PIXELS else 1,
    )


#: Images from this size on compute the compiled dither map in two bands of rows in parallel
#: (about 0.01 s per megapixel each).
_MAP_PARALLEL_MIN_PIXELS = 1 << 19


#: Images from this size on use the compiled diffusion even when nothing asked to load it.
#: Loading it from its cache takes about 0.03 s (llvmlite, benchmarks/README.md); at a
#: quarter of a megapixel numpy's diffusion takes 0.08 s at K = 16 and 0.18 s at K = 256, the
#: compiled loop 0.045 s and 0.145 s (with its candidate lists), both with the load.
_COMPILED_MIN_PIXELS = 250_000


def compiled_diffusion_pays(n_pixels: int) -> bool:
    """Whether Floyd–Steinberg of this size repays loading the compiled loop.

    A caller that knows the size early (``vq`` once the image header is read) calls
    :func:`prepare_dithering` when this holds, so that the load overlaps decoding and the
    fit; Floyd–Steinberg itself loads it for such images in any case.

    Parameters
    ----------
    n_pixels : int
        ``width * height`` of the image.

    Returns
    -------
    pays : bool
    """
    return n_pixels >= _COMPILED_MIN_PIXELS


#: Rows per call of the compiled diffusion (about a megapixel): cancellation is polled
#: between calls.
_COMPILED_BAND_PIXELS = 1 << 20


def _diffuse_compiled(
    kernel: Any,
    rgb: np.ndarray,
    palette: np.ndarray,
    weight: np.ndarray,
    lookup: _PaletteLookup,
    *,
    cap: float,
    drop_sq: float,
    overshoot: float,
    opaque: np.ndarray | None,
    should_cancel: CancelCallback | None,
    on_rows: Callable[[np.ndarray], None] | None = None,
    candidates: Future[tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """:func:`_diffuse` as one compiled raster loop per band of rows (the same indices).

    ``on_rows`` receives each band's indices as soon as it is done; ``candidates`` is the
    kernel's ``candidate_lists`` of the palette when already under way.
    """
    m, n = rgb.shape[:2]
    rgb = np.ascontiguousarray(rgb, np.uint8)
    take = np.ascontiguousarray(weight, np.float32)
    give = np.zeros((0, 0), np.float32)
    if opaque is not None:
        give = np.ascontiguousarray(opaque, np.float32)
        take = take * give
    pal64 = np.ascontiguousarray(palette, np.float64)
    table: np.ndarray
    if lookup.direct:
        table = np.zeros(1, np.uint16)
        offsets, items = np.zeros(2, np.int32), np.arange(len(pal64), dtype=np.int32)
    else:
        table = lookup.table
        if candidates is not None:
            offsets, items = candidates.result()
        else:
            offsets, items = kernel.candidate_lists(pal64, lookup.scale)
    cap_sq = cap * cap
    limited = bool(cap_sq < np.inf or drop_sq > 0.0)
    cur = np.zeros((n + 2, 3), np.float32)
    cur3 = np.zeros((n + 2, 3), np.float32)
    out = np.empty((m, n), np.int32)
    rows = max(1, _COMPILED_BAND_PIXELS // max(n, 1))
    for y0 in range(0, m, rows):
        check_cancel(should_cancel)
        kernel.diffuse_rows(
            rgb,
            take,
            give,
            pal64,
            table,
            offsets,
            items,
            lookup.direct,
            limited,
            np.float32(cap_sq),
            np.float32(drop_sq),
            np.float32(-overshoot),
            np.float32(255.0 + overshoot),
            cur,
            cur3,
            out,
            y0,
            min(m, y0 + rows),
            lookup.scale,
        )
        if on_rows is not None:
            on_rows(out[y0 : y0 + rows])
    check_cancel(should_cancel)
    return out


def _diffuse(
    rgb: np.ndarray,
    palette: np.ndarray,
    weight: np.ndarray,
    lookup: _PaletteLookup,
    *,
    cap: float,
    drop_sq: float,
    overshoot: float,
    opaque: np.ndarray | None,
    should_cancel: CancelCallback | None,
) -> np.ndarray:
    """Floyd–Steinberg along the wavefronts ``t = x + 2 y``, one numpy step per wavefront.

    Pixel (y, x) receives its pending error ``e`` from the pixels before it, takes
    ``w = weight[y, x] * e`` (shortened to length ``cap``, dropped when ``|w|**2 < drop_sq``),
    adds it to its colour, clips the sum to ``[-overshoot, 255 + overshoot]``, picks the
    nearest palette colour of the rounded sum and passes the whole difference on:
    7/16 to (y, x+1), 3/16 to (y+1, x-1), 5/16 to (y+1, x), 1/16 to (y+1, x+1).

    Those targets lie on wavefronts t+1, t+1, t+2 and t+3, so every pixel of wavefront t has
    received all its error and a whole wavefront is one vectorised step.  The image, the
    weights and the result are kept in wavefront order (one gather before, one scatter
    after), so each step reads and writes contiguous runs.  Only four wavefronts ever hold
    pending error; they live in a ring of four rows indexed by y (a wavefront is one slice
    of a row).  A pixel's pending error sums its four terms in
    wavefront order (1/16, 5/16, then 7/16 before 3/16: a raster loop would add the 3/16
    from the row above before the 7/16 from the left, which rounds differently in float32
    and, on a 4 MP photo at K = 16, changes 1.4 % of the indices after the first divergence);
    the plain whole-image form of this order is the tests' reference, matched to the bit.
    """
    m, n = rgb.shape[:2]
    # wavefront-major order: the pixels of wavefront t, (y, t - 2y) for y = y0(t)..y1(t),
    # are stored one after another, so that every step reads and writes contiguous runs
    # (a wavefront strided through the image touched a new cache line and memory page per
    # pixel in every array)
    n_t = n + 2 * (m - 1)
    ts = np.arange(n_t)
    y0s = np.maximum(0, (ts - n + 2) // 2)
    y1s = np.minimum(m - 1, ts // 2)
    lengths = y1s - y0s + 1
    starts = np.zeros(n_t + 1, np.intp)
    np.cumsum(lengths, out=starts[1:])
    ys = np.arange(starts[-1]) - np.repeat(starts[:-1] - y0s, lengths)
    order = ys * (n - 2) + np.repeat(ts, lengths)  # flat index y * n + x, x = t - 2y
    src = rgb.reshape(-1, 3)[order].astype(np.float32)
    take = weight.reshape(-1)[order].astype(np.float32)[:, None]
    give = None
    if opaque is not None:  # transparent pixels take and give no error
        give = opaque.reshape(-1)[order].astype(np.float32)[:, None]
        take = take * give
    pal = np.zeros((len(palette) + 1, 3), np.float32)  # row i + 1: entry i (one-based)
    pal[1:] = palette
    out_w = np.empty(starts[-1], np.intp)
    ring = np.zeros((4, m + 1, 3), np.float32)  # wavefront t is row t % 4; index y
    lo, hi = -overshoot, 255.0 + overshoot
    cap_sq = cap * cap
    limited = cap_sq < np.inf or drop_sq > 0.0
    for t in range(n_t):
        if t % 64 == 0:
            check_cancel(should_cancel)
        y0, y1 = int(y0s[t]), int(y1s[t])
        row = ring[t % 4]
        wave = slice(int(starts[t]), int(starts[t + 1]))
        e = row[y0 : y1 + 1]
        e *= take[wave]
        if limited:
            e_sq = np.einsum("ij,ij->i", e, e)
            if drop_sq > 0.0:
                e *= (e_sq >= drop_sq)[:, None]
            if e_sq.max(initial=0.0) > cap_sq:
                big = e_sq > cap_sq
                e[big] *= np.sqrt(cap_sq / e_sq[big])[:, None]
        value = src[wave] + e
        row.fill(0.0)
        np.clip(value, lo, hi, out=value)
        idx = lookup(value)
        out_w[wave] = idx
        err = value - pal[idx]
        if give is not None:
            err *= give[wave]
        next1 = ring[(t + 1) % 4]
        next1[y0 : y1 + 1] += err * np.float32(7.0 / 16.0)
        next1[y0 + 1 : y1 + 2] += err * np.float32(3.0 / 16.0)
        ring[(t + 2) % 4][y0 + 1 : y1 + 2] += err * np.float32(5.0 / 16.0)
        ring[(t + 3) % 4][y0 + 1 : y1 + 2] += err * np.float32(1.0 / 16.0)
    out = np.empty(m * n, np.intp)
    out[order] = out_w
    out -= 1  # one-based indices (see _PaletteLookup)
    return out.reshape(m, n)


def _floyd_steinberg(
    rgb: np.ndarray,
    palette: np.ndarray,
    strength: float,
    adaptive: bool,
    opaque: np.ndarray | None,
    nearest: np.ndarray | None,
    should_cancel: CancelCallback | None,
    mse: float | None = None,
    on_rows: Callable[[np.ndarray], None] | None = None,
    scale: np.ndarray | None = None,
) -> np.ndarray:
    if nearest is None:
        nearest = _nearest_image(rgb, palette, scale)
    if mse is None or not np.isfinite(mse):
        mse = _mean_sq_error(rgb, palette, nearest, opaque)
    if mse == 0.0:  # every pixel is a palette colour: nothing to diffuse
        return nearest
    if adaptive:
        scale = _diffusion_scale(scale, len(palette))
    lookup = _PaletteLookup(palette, scale)
    # the compiled loop once it is loaded or loading (the app asks for it when Floyd-Steinberg
    # is chosen), and for images large enough to repay loading it
    use_compiled = (
        _Compiled.module is not None
        or _Compiled.loading
        or compiled_diffusion_pays(rgb.shape[0] * rgb.shape[1])
    )
    if use_compiled:
        prepare_dithering()  # loads meanwhile, unless loaded
    kernel = _Compiled.module if _Compiled.module else None
    candidates = None
    if kernel is not None and not lookup.direct:
        # the candidate lists (0.03 s at K = 256) in parallel with the dither map
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(1, thread_name_prefix="vq-candidates")
        candidates = pool.submit(
            kernel.candidate_lists, np.ascontiguousarray(palette, np.float64), scale
        )
        pool.shutdown(wait=False)
    if adaptive:
        k = len(palette)
        # (numpy's map while the compiled code loads: its large array steps free the lock)
        make_map = dither_map if kernel is None else partial(_dither_map_compiled, kernel)
        if opaque is None:
            weight = make_map(rgb, nearest, k)
        else:  # what lies under transparent pixels must not steer the visible ones
            weight = make_map(
                np.where(opaque[:, :, None], rgb, 0), np.where(opaque, nearest, -1), k
            )
        settings = _adaptive_settings(k)
        weight *= np.float32(strength)
        cap = max(_CAP_MIN, settings.cap_rms * float(np.sqrt(mse)))
        drop_sq, overshoot = settings.drop_sq, _OVERSHOOT
    else:
        weight = np.full(rgb.shape[:2], strength, np.float32)
        cap, drop_sq, overshoot = np.inf, 0.0, 0.0
    kernel = compiled_diffusion() if use_compiled else None
    diffuse = (
        _diffuse
        if kernel is None
        else partial(_diffuse_compiled, kernel, on_rows=on_rows, candidates=candidates)
    )
    return diffuse(
        rgb,
        palette,
        weight,
        lookup,
        cap=cap,
        drop_sq=drop_sq,
        overshoot=overshoot,
        opaque=opaque,
        should_cancel=should_cancel,
    )


def _mean_sq_error(
    rgb: np.ndarray, palette: np.ndarray, nearest: np.ndarray, opaque: np.ndarray | None
) -> float:
    """Mean squared colour error of the undithered rendering over the opaque pixels."""
    total = 0.0
    count = 0
    rows = max(1, _CHUNK // max(rgb.shape[1], 1))
    pal = palette.astype(np.float32)
    for r in range(0, rgb.shape[0], rows):
        diff = rgb[r : r + rows].astype(np.float32) - pal[nearest[r : r + rows]]
        sq = np.einsum("ijk,ijk->ij", diff, diff)
        if opaque is not None:
            sq = sq[opaque[r : r + rows]]
        total += float(sq.sum(dtype=np.float64))
        count += sq.size
    return total / max(count, 1)


def dither_indices(
    image: np.ndarray,
    palette: np.ndarray,
    method: str = "fs",
    strength: float = 1.0,
    *,
    opaque: np.ndarray | None = None,
    adaptive: bool = True,
    nearest: np.ndarray | None = None,
    should_cancel: CancelCallback | None = None,
    mse: float | None = None,
    on_rows: Callable[[np.ndarray], None] | None = None,
    channel_weights: ArrayLike | None = None,
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
        0 gives the nearest colour, 1 full dithering (a factor on the share of pending error
        each pixel takes, or the amplitude of the Bayer offsets relative to the palette's
        colour spacing).
    opaque : ndarray of shape (M, N), bool, optional
        Which pixels count; default: derived from the alpha channel, if any.
    adaptive : bool, optional
        Floyd–Steinberg only.  True (default): the share of error each pixel takes follows
        :func:`dither_map`, large pending errors are capped and negligible ones dropped.
        False: classic error diffusion, every pixel takes ``strength`` of its pending error.
        An image whose pixels are all palette colours is returned unchanged either way.
    nearest : ndarray of shape (M, N), integer, optional
        The undithered rendering (e.g. a fit's labels), if known: Floyd–Steinberg then
        skips finding it.  It steers only the dither map and the error cap.
    mse : float, optional
        Mean squared error of that undithered rendering over the opaque pixels (e.g.
        :meth:`~quantize.pipeline.QuantizeResult.undithered_mse`, computed per distinct
        colour), if known: Floyd–Steinberg then skips measuring it on every pixel.  It sets
        the error cap; 0 means every pixel is a palette colour.
    should_cancel : callable, optional
        Polled between blocks of work (the numpy error diffusion and ordered dithering);
        returning True raises :class:`~quantize.protocol.Cancelled`.
    on_rows : callable, optional
        Receives the result's rows as they are final, in consecutive bands from the top,
        each an (R, N) integer array (indices of transparent pixels not yet set to 0): the
        compiled Floyd–Steinberg hands over each band it finishes (a PNG encoder then
        compresses it meanwhile, :class:`quantize.png.IndexedPngStream`), the other
        renderings all rows at the end.
    channel_weights : array_like of shape (3,), optional
        Positive scales ``w`` of the distance in which a value's nearest palette entry is
        chosen, by every method: entry ``j`` minimises ``sum_c (w_c (x_c - p_c))**2``.
        Default: plain sRGB distance.  A fit's own distance keeps the dithered rendering
        consistent with its labels (:func:`quantize.colorspace.search_weights` of its
        colour space); the error that is diffused stays an sRGB difference.  Adaptive
        Floyd–Steinberg with more than 16 colours moves these scales towards its own for
        fine palettes (:data:`_FINE_SEARCH`, all of the way at K >= 64).

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
    scale = None
    if channel_weights is not None:
        scale = np.asarray(channel_weights, np.float64)
        if scale.shape != (3,) or not bool(np.all(np.isfinite(scale) & (scale > 0))):
            raise ValueError(f"channel_weights must be 3 positive numbers, got {channel_weights!r}")
        if bool(np.all(scale == 1.0)):
            scale = None  # plain sRGB distance (the integer-palette fast path)
    done = [0]  # rows handed to on_rows

    def hand_over(rows: np.ndarray) -> None:
        done[0] += rows.shape[0]
        if on_rows is not None:
            on_rows(rows)

    if method == "none" or strength == 0.0 or k == 1:
        idx = _nearest_image(rgb, pal, scale)
    elif method == "ordered":
        idx = _ordered(rgb, pal, strength, should_cancel, scale)
    else:
        idx = _floyd_steinberg(
            rgb, pal, strength, adaptive, opaque, nearest, should_cancel, mse, hand_over, scale
        )
    if opaque is not None:
        idx[~opaque] = 0
    if on_rows is not None and done[0] < idx.shape[0]:
        on_rows(idx[done[0] :])
    return idx.astype(index_dtype(k))
