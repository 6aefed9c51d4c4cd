"""Overlay of the classes on the photo (PNG) and the class outlines as SVG polygons.

Arrays in, bytes out; :mod:`quantize.io.export` registers both as export kinds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from quantize.png import encode_png

__all__ = [
    "DEFAULT_OPACITY",
    "class_contours",
    "outline_mask",
    "outlines_svg",
    "overlay_image",
    "overlay_png",
]

#: class colours at half opacity: the photo stays readable under them
DEFAULT_OPACITY = 0.5


def _rgb8(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.dtype == np.uint16:
        arr = ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif arr.dtype.kind == "f":
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    rgb = arr[:, :, :3] if arr.shape[2] >= 3 else np.repeat(arr[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def outline_mask(labels: np.ndarray, opaque: np.ndarray | None = None) -> np.ndarray:
    """Pixels on a border between two classes (or between a class and transparency).

    A pixel is on the outline when its right or lower neighbour has another class (so each
    border is one pixel wide).

    Parameters
    ----------
    labels : ndarray of shape (M, N), integer
    opaque : ndarray of shape (M, N), bool, optional

    Returns
    -------
    outline : ndarray of shape (M, N), bool
    """
    lab = np.asarray(labels).astype(np.int64)
    if opaque is not None:
        lab = np.where(opaque, lab, -1)
    out = np.zeros(lab.shape, bool)
    out[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    out[:-1, :] |= lab[:-1, :] != lab[1:, :]
    if opaque is not None:
        out &= opaque
    return out


def overlay_image(
    image: np.ndarray,
    labels: np.ndarray,
    palette: np.ndarray,
    *,
    opacity: float = DEFAULT_OPACITY,
    outlines: bool = True,
    opaque: np.ndarray | None = None,
) -> np.ndarray:
    """Blend the class colours over the photo, optionally with the class outlines.

    Parameters
    ----------
    image : ndarray of shape (M, N, C) or (M, N)
        The photo (uint8, uint16 or float in [0, 1]).
    labels : ndarray of shape (M, N), integer
    palette : ndarray of shape (K, 3), uint8
    opacity : float
        Weight of the class colour, in [0, 1] (0: the photo, 1: the class colours).
    outlines : bool
        Draw the borders between classes, black on light and white on dark pixels.
    opaque : ndarray of shape (M, N), bool, optional
        Transparent pixels stay transparent (the result then has an alpha channel).

    Returns
    -------
    overlay : ndarray of shape (M, N, 3) or (M, N, 4), uint8
    """
    if not 0.0 <= float(opacity) <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity!r}")
    photo = _rgb8(image).astype(np.float32)
    colours = np.asarray(palette, np.uint8)[np.asarray(labels, np.intp)].astype(np.float32)
    out = photo * (1.0 - float(opacity)) + colours * float(opacity)
    if outlines:
        edge = outline_mask(labels, opaque)
        lum = out[..., 0] * 0.299 + out[..., 1] * 0.587 + out[..., 2] * 0.114
        ink = np.where(lum > 128, 0.0, 255.0)
        out[edge] = ink[edge][:, None]
    rgb = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if opaque is not None and not bool(np.all(opaque)):
        alpha = np.where(opaque, 255, 0).astype(np.uint8)
        return np.dstack([rgb, alpha])
    return rgb


def overlay_png(result: Any, *, opacity: float = DEFAULT_OPACITY, outlines: bool = True) -> bytes:
    """Encode :func:`overlay_image` of a result as PNG.

    Parameters
    ----------
    result : QuantizeResult
    opacity : float
    outlines : bool

    Returns
    -------
    png : bytes
    """
    arr = overlay_image(
        result.image,
        result.labels,
        result.palette,
        opacity=opacity,
        outlines=outlines,
        opaque=result.opaque,
    )
    return encode_png(Image.fromarray(arr, "RGBA" if arr.shape[2] == 4 else "RGB"))


def class_contours(
    labels: np.ndarray, k: int, opaque: np.ndarray | None = None
) -> list[np.ndarray]:
    """Trace closed contours around the pixels of class ``k`` (outer borders and holes).

    Traced with :func:`skimage.measure.find_contours` at level 0.5 on the class mask padded
    by one pixel, so every contour is closed; coordinates are in image pixel units with
    the pixel ``(r, c)`` covering ``[c, c + 1] x [r, r + 1]``.

    Parameters
    ----------
    labels : ndarray of shape (M, N), integer
    k : int
        Class.
    opaque : ndarray of shape (M, N), bool, optional

    Returns
    -------
    contours : list of ndarray of shape (P, 2)
        ``(x, y)`` vertices, first == last.
    """
    from skimage.measure import find_contours

    mask = np.asarray(labels) == k
    if opaque is not None:
        mask &= opaque
    if not mask.any():
        return []
    padded = np.pad(mask, 1).astype(np.float64)
    out = []
    for c in find_contours(padded, 0.5):
        # padded (row, col) -> image: -1 for the padding, +0.5 for pixel centres
        xy = np.column_stack([c[:, 1] - 0.5, c[:, 0] - 0.5])
        out.append(xy)
    return out


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def outlines_svg(result: Any, *, name: str = "outlines") -> bytes:
    """Draw the class outlines of a result as an SVG document of polygons.

    One ``<path>`` per class (``id="class-NN"``, stroked in the class colour, not filled,
    ``fill-rule="evenodd"`` so holes stay holes when a viewer fills it), each closed
    contour of :func:`class_contours` one ``M ... Z`` subpath.  Width and height are the
    image's, one unit per pixel.

    Parameters
    ----------
    result : QuantizeResult
    name : str
        Title of the document.

    Returns
    -------
    svg : bytes
        UTF-8.
    """
    labels = np.asarray(result.labels)
    m, n = labels.shape
    palette = np.asarray(result.palette, np.uint8)
    width = max(2, len(str(len(palette) - 1)))
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{n}" height="{m}" viewBox="0 0 {n} {m}">',
        f"<title>{_escape(name)}</title>",
    ]
    for k in range(len(palette)):
        contours = class_contours(labels, k, result.opaque)
        if not contours:
            continue
        colour = "#{:02x}{:02x}{:02x}".format(*(int(v) for v in palette[k]))
        parts = []
        for c in contours:
            pts = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in c[:-1])
            parts.append(f"M {pts} Z")
        lines.append(
            f'<path id="class-{k:0{width}d}" fill="none" fill-rule="evenodd" '
            f'stroke="{colour}" stroke-width="1" d="{" ".join(parts)}"/>'
        )
    lines.append("</svg>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
