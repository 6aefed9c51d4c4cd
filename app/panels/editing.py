"""Wiring of the palette editor and the importance brush into the main window.

Kept out of :mod:`app.main_window` (layout only): :func:`install_editing` adds the
*Importance* dock, the mouse tools on the compare view, and connects the editor's edits,
re-runs, order and eyedropper to the run controller.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from PySide6 import QtCore

from app.panels.importance_brush import ImageTools, ImportancePanel
from quantize.cluster.registry import METHODS
from quantize.pixels import to_uint8

__all__ = ["install_editing"]


def install_editing(window: Any) -> tuple[ImportancePanel, ImageTools]:
    """Connect the palette editor and add the importance brush to ``window``.

    Parameters
    ----------
    window : MainWindow
        With ``palette_view`` (a :class:`~app.panels.palette_edit.PaletteEditor`),
        ``compare``, ``controller``, ``params``, ``metrics_dock``.

    Returns
    -------
    panel, tools : ImportancePanel, ImageTools
    """
    editor = window.palette_view
    controller = window.controller
    panel = ImportancePanel()
    window.importance_panel = panel
    window.importance_dock = window._dock(
        "Importance",
        "importanceDock",
        panel,
        QtCore.Qt.DockWidgetArea.RightDockWidgetArea,
    )
    window.tabifyDockWidget(window.metrics_dock, window.importance_dock)
    window.metrics_dock.raise_()

    def pick(row: int, col: int) -> None:
        opened = controller.opened()
        if opened is None:
            return
        pixels = opened.loaded.pixels
        if not (0 <= row < pixels.shape[0] and 0 <= col < pixels.shape[1]):
            window.progress_label.setText("Click inside the image to pick a colour")
            editor.add_button.setChecked(False)
            return
        rgb = to_uint8(np.asarray(pixels[row : row + 1, col : col + 1, :3]))[0, 0]
        editor.add_colour(rgb)

    tools = ImageTools(window.compare, panel, pick)
    window.image_tools = tools

    def rerun(init: np.ndarray, locked: np.ndarray) -> None:
        params = window.params.parameters()
        spec = METHODS[params.method]
        if len(locked) and "locked" not in spec.options:
            able = " or ".join(s.label for s in METHODS.values() if "locked" in s.options)
            window.show_error(
                "Cannot keep locked colours",
                f"{spec.label} cannot keep colours fixed: choose {able}, or unlock them.",
            )
            return
        if not spec.iterative:
            window.show_error(
                "Cannot start from a palette", f"{spec.label} does not start from a palette."
            )
            return
        if not 2 <= len(init) <= 256:
            window.show_error(
                "Cannot re-run", f"A fit needs 2 to 256 colours; the palette has {len(init)}."
            )
            return
        params = replace(params, n_colors=len(init), auto="off")
        window.params.set_parameters(params)
        overrides: dict[str, Any] = {"init": init}
        if len(locked):
            overrides["locked"] = locked
        controller.start(params, overrides=overrides)

    def order(key: str) -> None:
        window.params.set_palette_order(key)  # remembered with the parameters
        if controller.output() is not None:
            controller.start()  # only the order changed: re-rendered, no refit

    def image_set(opened: Any, _context: Any) -> None:
        panel.set_shape(tuple(opened.loaded.pixels.shape[:2]))

    editor.edited.connect(lambda result: controller.start(result=result))
    editor.rerun_requested.connect(rerun)
    editor.order_changed.connect(order)
    editor.eyedropper_toggled.connect(tools.set_eyedropper)
    editor.set_order(window.params.parameters().palette_order)
    panel.changed.connect(lambda: controller.set_importance(panel.importance()))
    panel.rerun_requested.connect(window.start_run)
    controller.image_set.connect(image_set)
    opened = controller.opened()
    if opened is not None:
        panel.set_shape(tuple(opened.loaded.pixels.shape[:2]))
    return panel, tools
