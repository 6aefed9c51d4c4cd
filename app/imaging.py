"""Display plumbing: numpy arrays to QImage (zero copy) and back, a QImage graphics item.

Nothing here computes anything about colours; it only changes the memory layout of pixel
arrays so that Qt can paint them.  The arrays are built on the worker threads (results,
and :func:`app.tasks.display_array` for opened images), so the GUI thread only wraps and
paints them.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

__all__ = ["ArrayQImage", "QImageItem", "qimage_from_array", "qimage_to_array", "alpha_qimage"]


class ArrayQImage(QtGui.QImage):
    """A QImage painting the memory of a numpy array, which it keeps alive.

    Qt does not own the pixels of an image built on a buffer: the array is kept as
    ``image._array``, so the buffer lives as long as the image object.

    Parameters
    ----------
    array : ndarray, uint8, C-contiguous
        Pixels in the layout ``fmt`` describes.
    width, height : int
        Image size in pixels.
    bytes_per_line : int
        Length of a row of ``array`` in bytes.
    fmt : QImage.Format
        Pixel format of ``array``.
    """

    def __init__(
        self,
        array: np.ndarray,
        width: int,
        height: int,
        bytes_per_line: int,
        fmt: QtGui.QImage.Format,
    ) -> None:
        super().__init__(array.data, width, height, bytes_per_line, fmt)
        self._array = array  # keep the buffer alive


def qimage_from_array(rgb: np.ndarray) -> ArrayQImage:
    """Wrap an (M, N, 3|4) uint8 contiguous array in a QImage without copying.

    The returned image keeps a reference to the array (as ``image._array``), so the buffer
    lives as long as the image object.

    Parameters
    ----------
    rgb : ndarray of shape (M, N, 3) or (M, N, 4), uint8, C-contiguous
        Pixels (RGB or straight-alpha RGBA).

    Returns
    -------
    image : ArrayQImage
        ``Format_RGB888`` or ``Format_RGBA8888`` image sharing ``rgb``'s memory.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or not rgb.flags.c_contiguous:
        raise ValueError("expected a C-contiguous (M, N, 3|4) uint8 array")
    height, width, channels = rgb.shape
    fmt = (
        QtGui.QImage.Format.Format_RGB888 if channels == 3 else QtGui.QImage.Format.Format_RGBA8888
    )
    return ArrayQImage(rgb, width, height, width * channels, fmt)


def qimage_to_array(image: QtGui.QImage) -> np.ndarray:
    """Copy a QImage into an (M, N, 4) uint8 RGBA array (or (M, N, 3) if fully opaque).

    Parameters
    ----------
    image : QImage
        Any format (e.g. from the clipboard).

    Returns
    -------
    pixels : ndarray of shape (M, N, 3) or (M, N, 4), uint8
        Straight-alpha pixels.
    """
    rgba = image.convertToFormat(QtGui.QImage.Format.Format_RGBA8888)
    height, width = rgba.height(), rgba.width()
    buffer = np.frombuffer(rgba.constBits(), dtype=np.uint8, count=rgba.sizeInBytes())
    pixels = buffer.reshape(height, rgba.bytesPerLine())[:, : width * 4].reshape(height, width, 4)
    pixels = pixels.copy()
    if np.all(pixels[..., 3] == 255):
        return np.ascontiguousarray(pixels[..., :3])
    return pixels


def alpha_qimage(alpha: np.ndarray) -> ArrayQImage:
    """Wrap an (M, N) uint8 opacity array as a black veil QImage without copying.

    ``Format_Alpha8`` stores only opacity and paints as black, so a mask of 1 byte per
    pixel is drawn directly (no conversion of the whole image to 32-bit ARGB first).

    Parameters
    ----------
    alpha : ndarray of shape (M, N), uint8, C-contiguous
        Opacity of each pixel (0 transparent, 255 opaque black).

    Returns
    -------
    image : ArrayQImage
        ``Format_Alpha8`` image sharing ``alpha``'s memory (kept as ``image._array``).
    """
    if alpha.dtype != np.uint8 or alpha.ndim != 2 or not alpha.flags.c_contiguous:
        raise ValueError("expected a C-contiguous (M, N) uint8 array")
    height, width = alpha.shape
    return ArrayQImage(alpha, width, height, width, QtGui.QImage.Format.Format_Alpha8)


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
