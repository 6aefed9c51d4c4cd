"""Open images off the GUI thread: decode, then prepare the display array."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtCore

import app._compat  # noqa: F401  (PySide6 6.12 emit refcount bug, see module)
from app.imaging import display_array

__all__ = ["OpenedImage", "LoadWorker", "open_file", "prepare"]

_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "La"}


@dataclass
class OpenedImage:
    """A decoded image plus what the GUI shows of it.

    Parameters
    ----------
    loaded : LoadedImage
        From :mod:`quantize.io.load`.
    display : ndarray of shape (M, N, 3) or (M, N, 4), uint8
        C-contiguous display pixels.
    grey : bool
        Whether every pixel is grey (R == G == B), which allows the exact 1-D method.
    name : str
        Name shown in the title bar.
    """

    loaded: Any
    display: np.ndarray
    grey: bool
    name: str


def is_grey(loaded: Any) -> bool:
    """Return whether an image is grey (by its mode, else by comparing channels).

    Parameters
    ----------
    loaded : LoadedImage
        The image.

    Returns
    -------
    grey : bool
        ``True`` when R == G == B everywhere.
    """
    if loaded.mode in _GREY_MODES:
        return True
    pixels = loaded.pixels
    return bool(
        np.array_equal(pixels[..., 0], pixels[..., 1])
        and np.array_equal(pixels[..., 1], pixels[..., 2])
    )


def prepare(loaded: Any, name: str) -> OpenedImage:
    """Build the display data of a loaded image.

    Parameters
    ----------
    loaded : LoadedImage
        The image.
    name : str
        Name shown in the title bar.

    Returns
    -------
    opened : OpenedImage
        Image, display pixels and grey flag.
    """
    return OpenedImage(loaded, display_array(loaded.pixels), is_grey(loaded), name)


def open_file(path: str | Path) -> OpenedImage:
    """Load and prepare an image file.

    Parameters
    ----------
    path : str or Path
        Image file.

    Returns
    -------
    opened : OpenedImage
        The prepared image.

    Raises
    ------
    quantize.io.load.LoadError
        When the file cannot be opened (the message names the file and the problem).
    """
    from quantize.io.load import load_image

    path = Path(path)
    return prepare(load_image(path), path.name)


class LoadWorker(QtCore.QThread):
    """Opens one file on a worker thread.

    Parameters
    ----------
    path : Path
        Image file.
    ticket : int
        The GUI's open counter; superseded opens are ignored.
    parent : QObject, optional
        Parent object.
    """

    opened = QtCore.Signal(int, object)  # ticket, OpenedImage
    failed = QtCore.Signal(int, str, str)  # ticket, message naming the file, details

    def __init__(self, path: Path, ticket: int, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path)
        self.ticket = ticket

    def run(self) -> None:  # noqa: D102 (QThread override, runs on the worker thread)
        from quantize.io.load import LoadError

        try:
            opened = open_file(self.path)
        except LoadError as exc:
            self.failed.emit(self.ticket, str(exc), "")
        except BaseException as exc:  # an unexpected decoder failure must reach the GUI
            self.failed.emit(
                self.ticket,
                f"{self.path.name}: {type(exc).__name__}: {exc}",
                traceback.format_exc(),
            )
        else:
            self.opened.emit(self.ticket, opened)
