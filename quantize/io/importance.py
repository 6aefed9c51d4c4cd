"""Importance maps: a grey image that says how much each pixel counts in the fit.

0 (black) = ignore the pixel, 255 (white) = full weight, values between scale the pixel's
weight linearly (see :func:`quantize.pipeline.importance_weights`, which turns the map into
the weights of the distinct colours, exactly).  The map is read with the image loader's
care (allow-listed formats, size checked before decoding) and must be grey (one channel, or
R = G = B), without transparency, and of the image's size.
"""

from __future__ import annotations

import os

import numpy as np

from quantize.io.load import DEFAULT_MAX_PIXELS, LoadError, load_image

__all__ = ["read_importance_map"]


def read_importance_map(
    path: str | os.PathLike[str],
    shape: tuple[int, int],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Read an importance map for an image of ``shape``.

    Parameters
    ----------
    path : str or Path
        A grey image file (8-bit: 0 ignore ... 255 most important; a 16-bit map is scaled
        to the same range).
    shape : tuple of int
        ``(M, N)``: rows and columns of the image the map belongs to.
    max_pixels : int, optional
        Pixel cap of the loader.

    Returns
    -------
    importance : ndarray of shape (M, N), uint8 (8-bit maps) or float64 in [0, 1] (16-bit)

    Raises
    ------
    LoadError
        Unreadable or not an image (as :func:`quantize.io.load.load_image`), not grey,
        with transparency, not of the image's size, or 0 everywhere; the message names the
        file.
    """
    loaded = load_image(path, max_pixels=max_pixels)
    px = loaded.pixels
    if loaded.has_alpha:
        raise LoadError(path, "an importance map must be grey without transparency")
    if not ((px[..., 0] == px[..., 1]).all() and (px[..., 1] == px[..., 2]).all()):
        raise LoadError(
            path,
            f"an importance map must be grey (0 = ignore ... 255 = most important), "
            f"this is a colour image ({loaded.mode})",
        )
    rows, cols = int(shape[0]), int(shape[1])
    if px.shape[:2] != (rows, cols):
        raise LoadError(
            path,
            f"importance map is {loaded.width}x{loaded.height} pixels, the image "
            f"{cols}x{rows}: they must have the same size",
        )
    grey = px[..., 0]
    if not grey.any():
        raise LoadError(path, "the importance map is 0 (ignore) on every pixel: nothing to fit")
    if grey.dtype == np.uint8:
        return np.ascontiguousarray(grey)
    return grey.astype(np.float64) / 65535.0
