"""Display plumbing: numpy arrays to QImage (zero copy) and a QImage graphics item.

Nothing here computes anything about colours; it only changes the memory layout of pixel
arrays so that Qt can paint them.  Building these arrays is done on the worker thread for
results, so the GUI thread only wraps and paints them.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

__all__ = ["QImageItem", "display_array", "qimage_from_array", "alpha_qimage"]


def display_array(pixels: np.ndarray) -> np.ndarray:
    """Return a C-contiguous 8-bit RGB(A) array for display.

    Parameters
    ----------
    pixels : ndarray of shape (M, N, 3) or (M, N, 4)
        uint8 or uint16 pixels, e.g. ``LoadedImage.pixels`` (16-bit values are rounded to
        8 bits).

    Returns
    -------
    display : ndarray of shape (M, N, 3) or (M, N, 4), uint8
        Contiguous array suitable for :func:`qimage_from_array`.
    """
    arr = np.asarray(pixels)
    if arr.dtype == np.uint16:
        from quantize.pixels import to_uint8

        arr = to_uint8(arr)
    elif arr.dtype != np.uint8:
        raise TypeError(f"cannot display pixels of dtype {arr.dtype}")
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"cannot display an array of shape {arr.shape}")
    return np.ascontiguousarray(arr)


def qimage_from_array(rgb: np.ndarray) -> QtGui.QImage:
    """Wrap an (M, N, 3|4) uint8 contiguous array in a QImage without copying.

    The returned image keeps a reference to the array (as ``image._array``), so the buffer
    lives as long as the image object.

    Parameters
    ----------
    rgb : ndarray of shape (M, N, 3) or (M, N, 4), uint8, C-contiguous
        Pixels (RGB or straight-alpha RGBA).

    Returns
    -------
    image : QImage
        ``Format_RGB888`` or ``Format_RGBA8888`` image sharing ``rgb``'s memory.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or not rgb.flags.c_contiguous:
        raise ValueError("expected a C-contiguous (M, N, 3|4) uint8 array")
    height, width, channels = rgb.shape
    fmt = (
        QtGui.QImage.Format.Format_RGB888 if channels == 3 else QtGui.QImage.Format.Format_RGBA8888
    )
    image = QtGui.QImage(rgb.data, width, height, width * channels, fmt)
    image._array = rgb  # keep the buffer alive
    return image


def alpha_qimage(alpha: np.ndarray) -> QtGui.QImage:
    """Wrap an (M, N) uint8 opacity array as a black veil QImage without copying.

    ``Format_Alpha8`` stores only opacity and paints as black, so a mask of 1 byte per
    pixel is drawn directly (no conversion of the whole image to 32-bit ARGB first).

    Parameters
    ----------
    alpha : ndarray of shape (M, N), uint8, C-contiguous
        Opacity of each pixel (0 transparent, 255 opaque black).

    Returns
    -------
    image : QImage
        ``Format_Alpha8`` image sharing ``alpha``'s memory.
    """
    if alpha.dtype != np.uint8 or alpha.ndim != 2 or not alpha.flags.c_contiguous:
        raise ValueError("expected a C-contiguous (M, N) uint8 array")
    height, width = alpha.shape
    image = QtGui.QImage(alpha.data, width, height, width, QtGui.QImage.Format.Format_Alpha8)
    image._array = alpha
    return image


class QImageItem(QtWidgets.QGraphicsObject):
    """A graphics item painting a QImage at 1 scene unit per pixel (row 0 at the top).

    Pixels are drawn nearest-neighbour when zoomed in (one image pixel covers more than one
    screen pixel) and smoothly when zoomed out.
    """

    def __init__(self, parent: QtWidgets.QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._image: QtGui.QImage | None = None

    def set_image(self, image: QtGui.QImage | None) -> None:
        """Show ``image`` (or nothing for ``None``).

        Parameters
        ----------
        image : QImage or None
            The image to paint.
        """
        if (image is None) != (self._image is None) or (
            image is not None and self._image is not None and image.size() != self._image.size()
        ):
            self.prepareGeometryChange()
        self._image = image
        self.update()

    def image(self) -> QtGui.QImage | None:
        """Return the image shown, or ``None``.

        Returns
        -------
        image : QImage or None
            The current image.
        """
        return self._image

    def boundingRect(self) -> QtCore.QRectF:  # noqa: D102 (Qt override)
        if self._image is None:
            return QtCore.QRectF()
        return QtCore.QRectF(0.0, 0.0, float(self._image.width()), float(self._image.height()))

    def paint(self, painter: QtGui.QPainter, option: object, widget: object = None) -> None:  # noqa: D102
        if self._image is None:
            return
        transform = painter.worldTransform()
        scale = max(abs(transform.m11()), abs(transform.m22()))
        painter.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, scale < 1.0)
        painter.drawImage(self.boundingRect(), self._image)
