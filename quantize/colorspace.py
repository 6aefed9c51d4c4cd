"""Colour-space conversions between sRGB and the spaces the engine fits in.

Fitting spaces (``SPACES``):

- ``"rgb"``: sRGB values on a 0-255 scale (float64; 16-bit inputs are scaled by 255/65535).
- ``"wrgb"``: the same values with the eye's channel weights, R x 0.8, G x 1, B x 0.7 (the
  product's default: an error in green shows more than the same error in red, and that
  more than in blue).  On eleven camera photos its palettes have a lower mean CIEDE2000
  after a 1-px blur than plain sRGB ones at nearly the same SSIM and PSNR
  (benchmarks/README.md, issue 10).
- ``"lab"``: CIELAB, D65 white point, 2-degree observer (the same formulas and constants as
  :func:`skimage.color.rgb2lab`), L in [0, 100].
- ``"oklab"``: Björn Ottosson's OKLab, L in [0, 1].

The engine converts only the *unique* colours of an image, so these functions are written
for (N, 3) point arrays; any leading shape (..., 3) works too.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from quantize._blas import matmul
from quantize.options import COLOR_SPACES

__all__ = [
    "SPACES",
    "WRGB_WEIGHTS",
    "check_space",
    "grey_axis",
    "rgb_to_space",
    "SRGB_SPACES",
    "search_weights",
    "space_to_rgb",
    "space_to_rgb_float",
    "srgb_to_linear",
    "linear_to_srgb",
]

SPACES: tuple[str, ...] = COLOR_SPACES.names

#: Channel weights of the ``"wrgb"`` space (R, G, B).  Tuned on eleven camera photos at
#: K = 256 against pngquant (whose own weights are 0.5, 1, 0.45 on a gamma-adjusted scale):
#: 0.8/1/0.7 lowered the median blurred CIEDE2000 by 0.06 at the same SSIM; 0.7/1/0.6 and
#: 0.85/1/0.6 lowered it less (benchmarks/README.md).
WRGB_WEIGHTS = np.array([0.8, 1.0, 0.7])
WRGB_WEIGHTS.setflags(write=False)

# sRGB (D65) -> CIE XYZ, as in skimage.color.colorconv
_RGB_TO_XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])

# OKLab (https://bottosson.github.io/posts/oklab/)
_LIN_TO_LMS = np.array(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ]
)
_LMS_TO_OKLAB = np.array(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ]
)
_LMS_TO_LIN = np.linalg.inv(_LIN_TO_LMS)
_OKLAB_TO_LMS = np.linalg.inv(_LMS_TO_OKLAB)


def check_space(space: str) -> str:
    """Validate a colour-space name.

    Parameters
    ----------
    space : str
        One of :data:`SPACES` (case-insensitive).

    Returns
    -------
    space : str
        The lower-case name.
    """
    if not isinstance(space, str) or space.lower() not in SPACES:
        raise ValueError(f"color_space must be one of {SPACES}, got {space!r}")
    return space.lower()


def _to_unit_rgb(rgb: Any) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.shape[-1:] != (3,):
        raise ValueError(f"colours must have shape (..., 3), got {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float64) / 65535.0
    if np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"integer colours must be uint8 or uint16, got {arr.dtype}")
    out = np.asarray(arr, dtype=np.float64)
    if not np.isfinite(out).all():
        raise ValueError("colours contain NaN or infinite values")
    return out


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """Undo the sRGB transfer curve.

    Parameters
    ----------
    c : ndarray of shape (..., 3)
        sRGB values in [0, 1].

    Returns
    -------
    linear : ndarray of shape (..., 3), float64
    """
    c = np.asarray(c, dtype=np.float64)
    return np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """Apply the sRGB transfer curve.

    Parameters
    ----------
    c : ndarray of shape (..., 3)
        Linear RGB values (negative values are clipped to 0 first).

    Returns
    -------
    srgb : ndarray of shape (..., 3), float64
    """
    c = np.maximum(np.asarray(c, dtype=np.float64), 0.0)
    return np.where(c > 0.0031308, 1.055 * np.power(c, 1 / 2.4) - 0.055, 12.92 * c)


def _lab_f(t: np.ndarray) -> np.ndarray:
    return np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16.0 / 116.0)


def _lab_finv(t: np.ndarray) -> np.ndarray:
    return np.where(t > 0.2068966, t**3, (t - 16.0 / 116.0) / 7.787)


@cache
def _linear_table(itemsize: int) -> np.ndarray:
    """:func:`srgb_to_linear` of every 8-bit (``itemsize`` 1) or 16-bit (2) channel value."""
    values = np.arange(1 << (8 * itemsize), dtype=np.uint16 if itemsize == 2 else np.uint8)
    table = srgb_to_linear(_to_unit_rgb(np.repeat(values[:, None], 3, axis=1)))[:, 0]
    table.setflags(write=False)
    return table


def rgb_to_space(rgb: Any, space: str) -> np.ndarray:
    """Convert sRGB colours to a fitting space.

    Parameters
    ----------
    rgb : array_like of shape (N, 3)
        uint8 (0-255), uint16 (0-65535) or float in [0, 1] sRGB colours.
    space : {"rgb", "wrgb", "lab", "oklab"}
        Target space.

    Returns
    -------
    points : ndarray of shape (N, 3), float64
        For ``"rgb"`` the sRGB values on a 0-255 scale.
    """
    space = check_space(space)
    arr = np.asarray(rgb)
    if space in ("lab", "oklab") and arr.dtype in (np.uint8, np.uint16) and arr.shape[-1:] == (3,):
        # the transfer curve of every possible value, looked up: the same float64 values as
        # computing it per channel (1.3 M colours: 0.10 -> 0.04 s to OKLab)
        lin = np.take(_linear_table(arr.dtype.itemsize), arr)
    else:
        unit = _to_unit_rgb(arr)
        if space == "rgb":
            return unit * 255.0
        if space == "wrgb":
            return unit * (255.0 * WRGB_WEIGHTS)
        lin = srgb_to_linear(unit)
    if space == "lab":
        xyz = matmul(lin, _RGB_TO_XYZ.T) / _WHITE_D65
        f = _lab_f(xyz)
        L = 116.0 * f[..., 1] - 16.0
        a = 500.0 * (f[..., 0] - f[..., 1])
        b = 200.0 * (f[..., 1] - f[..., 2])
        return np.stack([L, a, b], axis=-1)
    lms = np.cbrt(matmul(lin, _LIN_TO_LMS.T))
    return matmul(lms, _LMS_TO_OKLAB.T)


def space_to_rgb_float(points: Any, space: str) -> np.ndarray:
    """Convert points of a fitting space back to sRGB on a 0-255 scale, unclipped.

    Parameters
    ----------
    points : array_like of shape (N, 3)
        Points in ``space``.
    space : {"rgb", "wrgb", "lab", "oklab"}
        Source space.

    Returns
    -------
    rgb : ndarray of shape (N, 3), float64
        sRGB on a 0-255 scale; may lie outside [0, 255] for out-of-gamut points.
    """
    space = check_space(space)
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-1:] != (3,):
        raise ValueError(f"points must have shape (..., 3), got {p.shape}")
    if space == "rgb":
        return p.copy()
    if space == "wrgb":
        return p / WRGB_WEIGHTS
    if space == "lab":
        fy = (p[..., 0] + 16.0) / 116.0
        fx = p[..., 1] / 500.0 + fy
        fz = np.maximum(fy - p[..., 2] / 200.0, 0.0)
        xyz = _lab_finv(np.stack([fx, fy, fz], axis=-1)) * _WHITE_D65
        lin = matmul(xyz, _XYZ_TO_RGB.T)
    else:
        lms = matmul(p, _OKLAB_TO_LMS.T) ** 3
        lin = matmul(lms, _LMS_TO_LIN.T)
    return linear_to_srgb(lin) * 255.0


#: The fitting spaces whose distance is a scaling of sRGB distance (:func:`search_weights`).
SRGB_SPACES: tuple[str, ...] = ("rgb", "wrgb")


def search_weights(space: str) -> np.ndarray:
    """Channel scales under which sRGB distance is a fitting space's own distance, if any.

    The renderings pick each pixel's (or dithered value's) nearest palette entry by these
    (:func:`quantize.render.dither_indices`), so that error diffusion decides as the fit's
    labels do.  ``"wrgb"``: its weights; ``"rgb"``: ones.  CIELAB and OKLab distances are
    not a scaling of sRGB: ones (plain sRGB distance) for them too.

    Parameters
    ----------
    space : {"rgb", "wrgb", "lab", "oklab"}

    Returns
    -------
    weights : ndarray of shape (3,), float64
        Positive; entry ``j`` is nearest to ``x`` when it minimises
        ``sum_c (weights_c (x_c - p_c))**2``.
    """
    space = check_space(space)
    return np.array(WRGB_WEIGHTS) if space == "wrgb" else np.ones(3)


def grey_axis(space: str) -> np.ndarray:
    """Where the greys lie in a fitting space, per unit of its first coordinate.

    A grey's point is its first coordinate times this vector: one-channel (grey) fits keep
    only that coordinate, and this gives the whole point back.

    Parameters
    ----------
    space : {"rgb", "wrgb", "lab", "oklab"}

    Returns
    -------
    axis : ndarray of shape (3,), float64
    """
    space = check_space(space)
    if space == "rgb":
        return np.ones(3)
    if space == "wrgb":
        return WRGB_WEIGHTS / WRGB_WEIGHTS[0]
    return np.array([1.0, 0.0, 0.0])


def space_to_rgb(points: Any, space: str) -> np.ndarray:
    """Convert points of a fitting space to clipped, rounded sRGB bytes.

    Parameters
    ----------
    points : array_like of shape (N, 3)
        Points in ``space``.
    space : {"rgb", "wrgb", "lab", "oklab"}
        Source space.

    Returns
    -------
    rgb : ndarray of shape (N, 3), uint8
    """
    rgb = space_to_rgb_float(points, space)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
