"""How good is a quantized image: MSE, PSNR, SSIM, CIEDE2000, colours, bits and bytes.

All measures compare the 8-bit sRGB original (16-bit inputs are rounded to 8 bits) with the
rendered palette image over the *opaque* pixels only.  Memory stays bounded: CIEDE2000 is
computed once per distinct (original, quantized) colour pair, SSIM in overlapping strips.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from quantize.colorspace import search_weights
from quantize.features import unique_colors
from quantize.pixels import as_rgb, to_uint8
from quantize.png import IndexedPngStream, encode_indexed_png
from quantize.protocol import CancelCallback, check_cancel
from quantize.render import dither_indices

if TYPE_CHECKING:  # pragma: no cover
    from quantize.pipeline import QuantizeResult

__all__ = [
    "Metrics",
    "SsimReference",
    "compute_metrics",
    "delta_e_stats",
    "image_metrics",
    "mse_psnr",
    "psnr_from_mse",
    "render_indexed",
    "srgb8_to_lab",
    "ssim",
    "unique_color_count",
]

_SSIM_STRIP_ROWS = 512


@dataclass(frozen=True)
class Metrics:
    """Quality and size of one quantized rendering.

    Attributes
    ----------
    mse : float
        Mean squared error per channel over opaque pixels, 0-255 scale.
    psnr : float
        Peak signal-to-noise ratio in dB; ``inf`` for a lossless result.
    ssim : float or None
        Mean structural similarity (7x7 windows, per channel); ``None`` for images smaller
        than 3x3.
    delta_e_mean, delta_e_p95 : float
        Mean and 95th percentile CIEDE2000 colour difference over opaque pixels.
    unique_before, unique_after : int
        Distinct opaque colours in the original and in the rendering.
    bits_per_pixel : float
        Size of the indexed PNG in bits per pixel.
    png_bytes : int
        Size of the indexed PNG (encoded in memory, as :mod:`quantize.io.export` writes it).
    original_bytes : int or None
        Size of the original file, if known.
    ratio : float or None
        ``original_bytes / png_bytes``.
    """

    mse: float
    psnr: float
    ssim: float | None
    delta_e_mean: float
    delta_e_p95: float
    unique_before: int
    unique_after: int
    bits_per_pixel: float
    png_bytes: int
    original_bytes: int | None
    ratio: float | None

    def to_dict(self) -> dict[str, Any]:
        """Return a strict-JSON-safe dict (non-finite floats become ``None``).

        Returns
        -------
        values : dict
            Field name -> int, float or None.
        """
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            out[key] = value
        return out


def _opaque_or_all(opaque: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if opaque is None:
        return None
    opaque = np.asarray(opaque, bool)
    if opaque.shape != shape:
        raise ValueError(f"opaque must have shape {shape}, got {opaque.shape}")
    return None if bool(opaque.all()) else opaque


def mse_psnr(
    original: np.ndarray, quantized: np.ndarray, opaque: np.ndarray | None = None
) -> tuple[float, float]:
    """Mean squared error and PSNR over opaque pixels.

    Parameters
    ----------
    original, quantized : ndarray of shape (M, N, 3), uint8
    opaque : ndarray of shape (M, N), bool, optional

    Returns
    -------
    mse : float
        0-255 scale; 0.0 when there is no opaque pixel.
    psnr : float
        dB, ``inf`` when ``mse == 0``.
    """
    opaque = _opaque_or_all(opaque, original.shape[:2])
    total = 0.0
    count = 0
    rows = max(1, (1 << 20) // max(original.shape[1], 1))
    for r in range(0, original.shape[0], rows):
        d = original[r : r + rows, :, :3].astype(np.int32) - quantized[r : r + rows, :, :3]
        sq = (d * d).sum(axis=2)
        if opaque is not None:
            sq = sq[opaque[r : r + rows]]
        total += float(sq.sum(dtype=np.float64))
        count += sq.size * 3
    mse = total / count if count else 0.0
    return mse, psnr_from_mse(mse)


def psnr_from_mse(mse: float) -> float:
    """PSNR of an 8-bit image from its mean squared error.

    Parameters
    ----------
    mse : float
        Mean squared error per channel, 0-255 scale.

    Returns
    -------
    psnr : float
        dB, ``inf`` when ``mse == 0``.
    """
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0**2 / mse)


def srgb8_to_lab(colors: np.ndarray) -> np.ndarray:
    """Convert 8-bit sRGB colours to CIELAB (D65), as scikit-image does.

    Parameters
    ----------
    colors : ndarray of shape (P, 3), uint8 (or any 0-255 numeric)

    Returns
    -------
    lab : ndarray of shape (P, 3), float64
    """
    from skimage.color import rgb2lab

    return rgb2lab(np.asarray(colors)[:, None, :].astype(np.float64) / 255.0)[:, 0]


_SSIM_THREADS = 2  # numpy and scipy.ndimage's 1-D filters release the interpreter lock


def _ssim_strip(a: np.ndarray, b: np.ndarray, win: int) -> float:
    """Sum of the SSIM map over the rows of a strip whose windows lie inside it.

    The formulas of :func:`skimage.metrics.structural_similarity` (uniform ``win`` x
    ``win`` windows, sample covariances, K1 = 0.01, K2 = 0.03, data range 255) in float32
    on values shifted by -128 (variances and covariance do not change; the means get the
    128 back), which halves the memory traffic of scikit-image's float64 maps.
    """
    from scipy.ndimage import uniform_filter1d

    pad = (win - 1) // 2
    cov_norm = np.float32(win * win / (win * win - 1.0))
    c1 = np.float32((0.01 * 255) ** 2)
    c2 = np.float32((0.03 * 255) ** 2)

    def window_mean(z: np.ndarray) -> np.ndarray:
        z = uniform_filter1d(z, win, axis=0, mode="reflect")
        z = uniform_filter1d(z, win, axis=1, mode="reflect")
        return z[pad : z.shape[0] - pad, pad : z.shape[1] - pad]

    total = 0.0
    for c in range(a.shape[2]):
        x = a[:, :, c].astype(np.float32)
        x -= 128.0
        y = b[:, :, c].astype(np.float32)
        y -= 128.0
        ux, uy = window_mean(x), window_mean(y)
        vx = window_mean(x * x)
        vx -= ux * ux
        vy = window_mean(y * y)
        vy -= uy * uy
        vxy = window_mean(x * y)
        vxy -= ux * uy
        ux += 128.0
        uy += 128.0
        num = (2.0 * ux * uy + c1) * (2.0 * cov_norm * vxy + c2)
        den = (ux * ux + uy * uy + c1) * (cov_norm * (vx + vy) + c2)
        total += float((num / den).sum(dtype=np.float64))
    return total


def ssim(
    original: np.ndarray,
    quantized: np.ndarray,
    opaque: np.ndarray | None = None,
    *,
    strip_rows: int = _SSIM_STRIP_ROWS,
) -> float | None:
    """Mean SSIM (as scikit-image: 7x7 uniform windows, per channel).

    An 8-bit image of at least 7x7 and at most ``_SSIM_REFERENCE_MAX_PIXELS`` pixels is
    measured with exact integer window sums (:class:`SsimReference`, about half the time);
    any other with float32 window statistics in row strips (:func:`_ssim_in_strips`).  Both
    equal :func:`skimage.metrics.structural_similarity` to about 1e-6.

    Parameters
    ----------
    original, quantized : ndarray of shape (M, N, 3), uint8
    opaque : ndarray of shape (M, N), bool, optional
    strip_rows : int, optional
        Rows per strip of the float32 path (memory bound).

    Returns
    -------
    ssim : float or None
        ``None`` if the image is smaller than 3x3.
    """
    if _integer_ssim_applies(original):
        return SsimReference(original, opaque)(quantized)
    return _ssim_in_strips(original, quantized, opaque, strip_rows=strip_rows)


def _integer_ssim_applies(original: np.ndarray) -> bool:
    """Whether :class:`SsimReference` measures ``original`` with integer window sums."""
    m, n = original.shape[:2]
    return original.dtype == np.uint8 and min(m, n) >= 7 and m * n <= _SSIM_REFERENCE_MAX_PIXELS


def _ssim_in_strips(
    original: np.ndarray,
    quantized: np.ndarray,
    opaque: np.ndarray | None = None,
    *,
    strip_rows: int = _SSIM_STRIP_ROWS,
) -> float | None:
    """Mean SSIM (as scikit-image: 7x7 uniform windows, per channel), in row strips.

    Transparent pixels are given the original colour in both images so they add no
    difference.  The strips overlap by the window radius, so the result equals one
    whole-image call of :func:`skimage.metrics.structural_similarity` (to about 1e-7: the
    window statistics are float32), and two threads measure the strips.

    Parameters
    ----------
    original, quantized : ndarray of shape (M, N, 3), uint8
    opaque : ndarray of shape (M, N), bool, optional
    strip_rows : int, optional
        Rows per strip (memory bound).

    Returns
    -------
    ssim : float or None
        ``None`` if the image is smaller than 3x3.
    """
    from concurrent.futures import ThreadPoolExecutor

    m, n = original.shape[:2]
    win = min(7, m, n)
    if win % 2 == 0:
        win -= 1
    if win < 3:
        return None
    a = original[:, :, :3]
    b = quantized[:, :, :3]
    opaque = _opaque_or_all(opaque, (m, n))
    if opaque is not None:
        b = np.where(opaque[:, :, None], b, a)
    pad = (win - 1) // 2
    strip_rows = max(int(strip_rows), 1)
    strips = [(r0, min(r0 + strip_rows, m - pad)) for r0 in range(pad, m - pad, strip_rows)]

    def measure(rows: tuple[int, int]) -> float:
        return _ssim_strip(a[rows[0] - pad : rows[1] + pad], b[rows[0] - pad : rows[1] + pad], win)

    if len(strips) > 1:
        with ThreadPoolExecutor(_SSIM_THREADS) as pool:
            total = sum(pool.map(measure, strips))
    else:
        total = sum(map(measure, strips))
    count = (m - 2 * pad) * (n - 2 * pad) * a.shape[2]
    return total / count if count else None


#: Above this many pixels :class:`SsimReference` keeps nothing (its planes take 24 bytes a
#: pixel, 240 MB at 10 MP) and calls :func:`ssim` each time.
_SSIM_REFERENCE_MAX_PIXELS = 10_000_000
#: output rows per strip of :class:`SsimReference` (a strip's arrays stay within ~1 MB)
_SSIM_REFERENCE_STRIP_ROWS = 48


def _box7(a: np.ndarray) -> np.ndarray:
    """Sum every 7x7 window of an integer image: shape (M - 6, N - 6), same dtype.

    Fourteen shifted additions (exact in integers; the caller picks a dtype wide enough
    for 49 values) are 2-5 times faster than a float box filter.
    """
    m, n = a.shape
    rows = a[:, : n - 6].copy()
    for i in range(1, 7):
        rows += a[:, i : n - 6 + i]
    out = rows[: m - 6].copy()
    for i in range(1, 7):
        out += rows[i : m - 6 + i]
    return out


class SsimReference:
    """The original's half of :func:`ssim`, computed once for many renderings of one image.

    SSIM compares local means, variances and the covariance in every 7x7 window of each
    channel.  Here the window sums are exact integers (8-bit values, shifted additions),
    those of the original are kept, and only the final ratio is taken in floating point:
    the result equals :func:`ssim` (scikit-image's defaults: 7x7 windows, sample
    covariance, ``K1=0.01``, ``K2=0.03``) to about 1e-6, at about a third of its cost per
    rendering (``vq sweep`` measures a dozen renderings of one photo).

    Parameters
    ----------
    original : ndarray of shape (M, N, 3), uint8
    opaque : ndarray of shape (M, N), bool, optional
        Pixels that count; transparent ones take the original colour in both images.
    """

    # SSIM's constants scaled to window sums: C1 * 49**2 and C2 * 49 * 48
    _C1 = (0.01 * 255) ** 2 * 49 * 49
    _C2 = (0.03 * 255) ** 2 * 49 * 48

    def __init__(self, original: np.ndarray, opaque: np.ndarray | None = None) -> None:
        self.original = np.asarray(original)[:, :, :3]
        m, n = self.original.shape[:2]
        self.opaque = _opaque_or_all(opaque, (m, n))
        self._planes: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        if _integer_ssim_applies(self.original):
            self._planes = []
            for c in range(3):
                xc = self.original[:, :, c].astype(np.int16)
                xc -= 128  # centred: squared window sums stay below 2**31
                sx = _box7(xc)  # |sum| <= 6272
                x32 = xc.astype(np.int32)
                scatter = _box7(x32 * x32) * 49 - sx.astype(np.int32) ** 2  # 49*48*var
                self._planes.append((xc, sx, scatter))

    def __call__(self, quantized: np.ndarray) -> float | None:
        """Mean SSIM of ``quantized`` against the original, as :func:`ssim` computes it.

        Parameters
        ----------
        quantized : ndarray of shape (M, N, 3), uint8

        Returns
        -------
        ssim : float or None
            ``None`` if the image is smaller than 3x3.
        """
        b = np.asarray(quantized)[:, :, :3]
        if self._planes is None:
            return _ssim_in_strips(self.original, b, self.opaque)
        if self.opaque is not None:
            b = np.where(self.opaque[:, :, None], b, self.original)
        m, n = b.shape[:2]
        rows = m - 6
        c1, c2 = np.float32(self._C1), np.float32(self._C2)
        total = 0.0
        for c, (xc, sx_all, scatter_all) in enumerate(self._planes):
            channel = b[:, :, c]
            # strips of rows small enough for the CPU cache: the dozen passes over each
            # strip then cost a third of what whole-image passes cost (memory-bound)
            for r0 in range(0, rows, _SSIM_REFERENCE_STRIP_ROWS):
                r1 = min(r0 + _SSIM_REFERENCE_STRIP_ROWS, rows)
                yc = channel[r0 : r1 + 6].astype(np.int16)
                yc -= 128
                sy = _box7(yc)
                y32 = yc.astype(np.int32)
                sx = sx_all[r0:r1].astype(np.int32)
                scatter_y = _box7(y32 * y32) * 49 - sy.astype(np.int32) ** 2
                cov = _box7(xc[r0 : r1 + 6].astype(np.int32) * y32) * 49 - sx * sy
                # the factors are exact integers below 2**31; their ratio in float32
                # (relative error 1e-7) is summed in float64
                mx = sx.astype(np.float32) + np.float32(6272.0)
                my = sy.astype(np.float32) + np.float32(6272.0)
                top = (np.float32(2.0) * mx * my + c1) * (np.float32(2.0) * cov + c2)
                bottom = (mx * mx + my * my + c1) * (
                    (scatter_all[r0:r1] + scatter_y).astype(np.float32) + c2
                )
                top /= bottom
                total += float(top.sum(dtype=np.float64))
        return total / (3.0 * rows * (n - 6))


#: Pixels packed per step.  Strided casts hold the interpreter lock for the whole call, so a
#: 12-MP image packed in one go would stall other threads (the GUI) for tens of ms.
_PACK_ROWS = 1 << 19


def _pack(rgb: np.ndarray, second: np.ndarray | None = None) -> np.ndarray:
    """Pack (N, 3) uint8 colours into 24-bit codes, or two such arrays into 48-bit pairs."""
    rgb = rgb.reshape(-1, 3)
    other = None if second is None else second.reshape(-1, 3)
    out = np.empty(len(rgb), dtype=np.uint64)
    for start in range(0, len(rgb), _PACK_ROWS):
        part = slice(start, start + _PACK_ROWS)
        code = _code24(rgb[part])
        if other is not None:
            code = (code << np.uint64(24)) | _code24(other[part])
        out[part] = code
    return out


def _code24(rgb: np.ndarray) -> np.ndarray:
    return (
        (rgb[:, 0].astype(np.uint64) << np.uint64(16))
        | (rgb[:, 1].astype(np.uint64) << np.uint64(8))
        | rgb[:, 2].astype(np.uint64)
    )


def _unpack(packed: np.ndarray) -> np.ndarray:
    packed = packed.astype(np.uint64)
    return np.stack(
        [
            (packed >> np.uint64(16)) & np.uint64(255),
            (packed >> np.uint64(8)) & np.uint64(255),
            packed & np.uint64(255),
        ],
        axis=1,
    ).astype(np.uint8)


def delta_e_stats(
    original: np.ndarray, quantized: np.ndarray, opaque: np.ndarray | None = None
) -> tuple[float, float]:
    """Mean and 95th percentile CIEDE2000 over opaque pixels.

    Computed once per distinct (original colour, rendered colour) pair and weighted by its
    pixel count, so memory grows with the number of pairs, not pixels x anything.

    Parameters
    ----------
    original, quantized : ndarray of shape (M, N, 3), uint8
    opaque : ndarray of shape (M, N), bool, optional

    Returns
    -------
    mean, p95 : float
        0.0 when there is no opaque pixel.
    """
    from skimage.color import deltaE_ciede2000

    opaque = _opaque_or_all(opaque, original.shape[:2])
    pairs = _pack(original[:, :, :3], quantized[:, :, :3])
    if opaque is not None:
        pairs = pairs[opaque.reshape(-1)]
    if pairs.size == 0:
        return 0.0, 0.0
    uniq, counts = np.unique(pairs, return_counts=True)
    src = _unpack(uniq >> np.uint64(24))
    dst = _unpack(uniq & np.uint64((1 << 24) - 1))
    de = deltaE_ciede2000(srgb8_to_lab(src), srgb8_to_lab(dst))
    return _weighted_mean_p95(de, counts.astype(np.float64))


def unique_color_count(rgb: np.ndarray, opaque: np.ndarray | None = None) -> int:
    """Count the distinct colours among opaque pixels.

    Parameters
    ----------
    rgb : ndarray of shape (M, N, C), uint8 or uint16; C >= 3 (alpha ignored)
    opaque : ndarray of shape (M, N), bool, optional

    Returns
    -------
    count : int
    """
    flat = rgb[:, :, :3].reshape(-1, 3)
    if opaque is not None:
        flat = flat[np.asarray(opaque, bool).reshape(-1)]
    if flat.size == 0:
        return 0
    return unique_colors(flat[None]).n_colors


def _used_color_count(indices: np.ndarray, palette: np.ndarray, opaque: np.ndarray | None) -> int:
    """Distinct colours of a rendering, from the palette entries its opaque pixels use.

    Same count as :func:`unique_color_count` of ``palette[indices]``, without packing and
    sorting every pixel.
    """
    idx = indices if opaque is None else indices[opaque]
    used = np.flatnonzero(np.bincount(idx.reshape(-1), minlength=len(palette)))
    return unique_color_count(palette[used][None])


def _colour_pair_stats(
    src: np.ndarray, palette: np.ndarray, labels: np.ndarray, counts: np.ndarray
) -> tuple[float, float, float]:
    """MSE and CIEDE2000 mean and 95th percentile of colours rendered by palette entries.

    For a rendering without dithering every pixel of one distinct colour ``src[i]`` gets
    the palette colour ``palette[labels[i]]``, so the per-pixel measures are sums over the
    distinct colours weighted by their pixel ``counts`` (and the palette's CIELAB values
    are computed once per entry).
    """
    from skimage.color import deltaE_ciede2000

    weights = counts.astype(np.float64)
    total = weights.sum()
    if total == 0:
        return 0.0, 0.0, 0.0
    diff = src.astype(np.float64) - palette[labels]
    mse = float((np.einsum("ij,ij->i", diff, diff) @ weights) / (3.0 * total))
    de = deltaE_ciede2000(srgb8_to_lab(src), srgb8_to_lab(palette)[labels])
    mean, p95 = _weighted_mean_p95(de, weights)
    return mse, mean, p95


def _weighted_mean_p95(de: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Weighted mean and 95th percentile of per-pair colour differences (weights > 0)."""
    mean = float((de * weights).sum() / weights.sum())
    order = np.argsort(de, kind="stable")
    cum = np.cumsum(weights[order])
    return mean, float(de[order][np.searchsorted(cum, 0.95 * cum[-1])])


def _quality(
    a: np.ndarray,
    b: np.ndarray,
    opaque: np.ndarray | None,
    should_cancel: CancelCallback | None = None,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """MSE, PSNR, SSIM and CIEDE2000 of two (M, N, 3) uint8 images, cancellable between.

    ``pairs`` (source colours, palette, their labels, pixel counts) gives MSE and
    CIEDE2000 without visiting the pixels, when each source colour has one rendered colour.
    """
    check_cancel(should_cancel)
    if pairs is not None:
        mse, de_mean, de_p95 = _colour_pair_stats(*pairs)
        psnr = psnr_from_mse(mse)
    else:
        mse, psnr = mse_psnr(a, b, opaque)
    check_cancel(should_cancel)
    ssim_value = ssim(a, b, opaque)
    check_cancel(should_cancel)
    if pairs is None:
        de_mean, de_p95 = delta_e_stats(a, b, opaque)
    check_cancel(should_cancel)
    return {
        "mse": mse,
        "psnr": psnr,
        "ssim": ssim_value,
        "delta_e_mean": de_mean,
        "delta_e_p95": de_p95,
    }


def image_metrics(
    original: np.ndarray, quantized: np.ndarray, opaque: np.ndarray | None = None
) -> dict[str, Any]:
    """MSE, PSNR, SSIM and CIEDE2000 statistics of two images.

    Parameters
    ----------
    original : ndarray of shape (M, N, 3) or (M, N, 4), uint8 or uint16
        16-bit input is rounded to 8 bits first; alpha is ignored (pass ``opaque``).
    quantized : ndarray of shape (M, N, 3), uint8
    opaque : ndarray of shape (M, N), bool, optional
        Pixels that count; default: all.

    Returns
    -------
    metrics : dict
        ``mse``, ``psnr``, ``ssim``, ``delta_e_mean``, ``delta_e_p95``.
    """
    a = to_uint8(as_rgb(original))[:, :, :3]
    b = to_uint8(as_rgb(quantized))[:, :, :3]
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return _quality(a, b, opaque)


def render_indexed(
    result: QuantizeResult,
    *,
    dither: str = "none",
    strength: float = 1.0,
    should_cancel: CancelCallback | None = None,
    on_indices: Callable[[np.ndarray], None] | None = None,
) -> tuple[np.ndarray, bytes]:
    """Palette indices of a rendering and its indexed PNG, computed once for both uses.

    Pass the pair to :func:`compute_metrics` and to :mod:`quantize.io.export` (``rendering=``)
    so that one run dithers and encodes the image only once.

    Parameters
    ----------
    result : QuantizeResult
    dither : {"none", "fs", "ordered"}, optional
    strength : float, optional
        Dither strength in [0, 1].
    should_cancel : callable, optional
        Polled during dithering; returning True raises :class:`~quantize.protocol.Cancelled`.
    on_indices : callable, optional
        Called with the indices as soon as they are all known, before the PNG is finished
        (e.g. to show the image while the PNG is compressed on another thread).

    Returns
    -------
    indices : ndarray of shape (M, N), uint8 or uint16
    png : bytes
        The indexed PNG, as :func:`quantize.png.encode_indexed_png` writes it.
    """
    palette = np.asarray(result.palette, np.uint8)
    lossless = bool(getattr(result, "exact", False))
    # a fitted palette has no meaningful order: store it dark to light (smaller files);
    # a palette the user gave keeps its order
    sort = getattr(result, "method", None) != "palette"
    opaque = result.opaque
    transparent = opaque is not None and not bool(np.all(opaque))
    # each value's nearest entry by the fit's own distance, as its labels were found
    weights = search_weights(getattr(result, "color_space", "rgb"))
    if (
        dither == "fs"
        and strength != 0
        and not lossless
        and getattr(result, "segmentation", None) is None
        and len(palette) + transparent <= 256
    ):
        # the PNG is compressed band by band while the diffusion goes on; its zlib level
        # follows the undithered rendering (known before the first band)
        stream = IndexedPngStream(
            result.labels.shape, palette, opaque, sort=sort, level_sample=result.labels
        )
        try:
            indices = dither_indices(
                result.image,
                palette,
                dither,
                strength,
                opaque=opaque,
                nearest=result.labels,
                mse=result.undithered_mse(),
                should_cancel=should_cancel,
                channel_weights=weights,
                on_rows=stream.feed,
            )
            if on_indices is not None:
                on_indices(indices)
        except BaseException:
            stream.close()
            raise
        return indices, stream.finish()
    if should_cancel is not None and dither != "none" and strength != 0 and not lossless:
        indices = dither_indices(
            result.image,
            palette,
            dither,
            strength,
            opaque=result.opaque,
            nearest=result.labels,
            mse=result.undithered_mse(),
            should_cancel=should_cancel,
            channel_weights=weights,
        )
    else:
        indices = np.asarray(result.indices(dither=dither, strength=strength))
    if on_indices is not None:
        on_indices(indices)
    return indices, encode_indexed_png(indices, palette, opaque, sort=sort)


def compute_metrics(
    result: QuantizeResult,
    *,
    dither: str = "none",
    strength: float = 1.0,
    original_bytes: int | None = None,
    should_cancel: CancelCallback | None = None,
    rendering: tuple[np.ndarray, bytes] | None = None,
) -> Metrics:
    """Measure a quantization result as it would be exported.

    Parameters
    ----------
    result : QuantizeResult
        Uses ``image`` (M, N, 3|4), ``palette`` (K, 3), ``opaque`` and ``indices()``.
    dither : {"none", "fs", "ordered"}, optional
        Rendering to measure (the indexed PNG is encoded with the same indices).
    strength : float, optional
        Dither strength in [0, 1].
    original_bytes : int, optional
        Size of the source file, for the compression ratio.
    should_cancel : callable, optional
        Polled between the measures (and during dithering); returning True raises
        :class:`~quantize.protocol.Cancelled`.
    rendering : (indices, png), optional
        :func:`render_indexed` of this result with the same ``dither`` and ``strength``,
        when the caller already has it (not computed again).

    Returns
    -------
    metrics : Metrics
    """
    image = as_rgb(result.image)
    palette = np.asarray(result.palette, np.uint8)
    opaque = result.opaque
    check_cancel(should_cancel)
    if rendering is None:
        rendering = render_indexed(
            result, dither=dither, strength=strength, should_cancel=should_cancel
        )
    indices, png = rendering
    rendered = np.take(palette, indices, axis=0)  # 3-4x faster than palette[indices]
    table = getattr(result, "table", None)
    pairs = None
    undithered = dither in (None, "none") or strength == 0 or bool(getattr(result, "exact", False))
    unique_labels = getattr(result, "unique_labels", None)
    if (
        undithered
        and table is not None
        and unique_labels is not None
        and np.asarray(table.colors).ndim == 2
        and np.asarray(table.colors).shape[1] == 3
        and len(unique_labels) == len(table.colors)
    ):
        # every pixel of a distinct colour has that colour's label: measure per colour
        pairs = (
            to_uint8(np.asarray(table.colors)).reshape(-1, 3),
            palette,
            np.asarray(unique_labels, np.intp),
            np.asarray(table.counts),
        )
    values = _quality(to_uint8(image)[:, :, :3], rendered, opaque, should_cancel, pairs)
    mask = None if opaque is None else np.asarray(opaque, bool)
    if table is not None and getattr(table, "colors", None) is not None:
        unique_before = int(table.colors.shape[0])
    else:
        unique_before = unique_color_count(image, mask)
    png_bytes = len(png)
    n_pixels = int(indices.size)
    return Metrics(
        mse=float(values["mse"]),
        psnr=float(values["psnr"]),
        ssim=None if values["ssim"] is None else float(values["ssim"]),
        delta_e_mean=float(values["delta_e_mean"]),
        delta_e_p95=float(values["delta_e_p95"]),
        unique_before=unique_before,
        unique_after=_used_color_count(indices, palette, mask),
        bits_per_pixel=8.0 * png_bytes / n_pixels if n_pixels else 0.0,
        png_bytes=png_bytes,
        original_bytes=None if original_bytes is None else int(original_bytes),
        ratio=float(original_bytes) / png_bytes if original_bytes else None,
    )
