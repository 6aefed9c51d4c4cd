"""Whether a view can be seen: the views that draw a result only when it can."""

from __future__ import annotations

from PySide6 import QtWidgets

__all__ = ["on_screen"]


def on_screen(widget: QtWidgets.QWidget) -> bool:
    """Return whether any of ``widget`` can be seen.

    A dock widget in a tab behind another is still "visible" to Qt (``isVisible()``), but
    its visible region is empty.

    Parameters
    ----------
    widget : QWidget

    Returns
    -------
    shown : bool
    """
    return widget.isVisible() and not widget.visibleRegion().isEmpty()
