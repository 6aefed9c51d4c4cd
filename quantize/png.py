"""Indexed PNG encoding (arrays in, bytes out): the smallest bit depth, one transparent entry.

A base module: the metrics measure the PNG size with it and the exports write its bytes.
No EXIF, GPS or text metadata is ever written.
"""

from __future__ import annotations

import io
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

    With ``sort`` the PNG stores its palette from dark to light (:func:`lightness_order`)
    and the indices renumbered to match, so that neighbouring pixels of similar colour get
    similar index values, which the PNG row filters turn into small numbers: on photos at
    K = 16 the file is about 10 % smaller.  The pixels' colours are the same either way.

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
    img = Image.frombytes("P", (idx.shape[1], idx.shape[0]), np.ascontiguousarray(idx).tobytes())
    # exactly n_entries colours: Pillow then picks bit depth 1/2/4/8 from the palette size
    img.putpalette(entries.tobytes(), rawmode="RGB")
    params: dict[str, Any] = {}
    if transparent:
        params["transparency"] = 0
    return encode_png(img, **params)
