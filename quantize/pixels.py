"""Pixel arrays as the engine takes them: bit depth and channel layout conversions.

A base module (numpy only): the loader, rendering, metrics and the app all bring images to
the engine's layouts through these functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quantize.features import as_image_array

__all__ = ["as_rgb", "grey_to_rgb", "to_uint8"]


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Reduce 16-bit pixels to 8 bits (rounding), or return uint8 pixels unchanged.

    Parameters
    ----------
    pixels : ndarray of shape (..., C), dtype uint8 or uint16

    Returns
    -------
    pixels8 : ndarray of shape (..., C), dtype uint8
    """
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    raise TypeError(f"expected uint8 or uint16 pixels, got {pixels.dtype}")


def grey_to_rgb(arr: np.ndarray) -> np.ndarray:
    """Repeat the grey channel of a grey or grey+alpha image three times.

    Parameters
    ----------
    arr : ndarray of shape (M, N, C), C = 1, 2, 3 or 4
        Grey, grey+alpha, RGB or RGBA.

    Returns
    -------
    rgb : ndarray of shape (M, N, 3) or (M, N, 4)
        ``arr`` itself when it already has 3 or 4 channels.
    """
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if arr.shape[2] == 2:
        return np.concatenate([np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1:]], axis=2)
    return arr


def as_rgb(image: Any) -> np.ndarray:
    """Bring any image the engine accepts to RGB(A) with 3 or 4 channels.

    Parameters
    ----------
    image : array_like of shape (M, N), (M, N, 1), (M, N, 2), (M, N, 3) or (M, N, 4)
        Grey, grey+alpha, RGB or RGBA; uint8, uint16, bool or float in [0, 1].

    Returns
    -------
    rgb : ndarray of shape (M, N, 3) or (M, N, 4), uint8 or uint16
        The input itself when it already is RGB(A) uint8/uint16.

    Raises
    ------
    ValueError
        Unsupported shape or dtype, NaN or infinite values.
    """
    return grey_to_rgb(as_image_array(image))
