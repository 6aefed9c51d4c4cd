"""Palette editing: select swatches; lock, delete, merge, recolour, add; undo/redo; sort.

:class:`PaletteEditor` is the palette list of :class:`~app.views.palette.PaletteView` with
a tool bar.  The swatches appear in the palette's own order, which is the order every
export writes (the run sorts the result by the chosen key, see
:func:`quantize.edit.sort_order`).  Edits are computed by :mod:`quantize.edit` (no refit)
and handed to the window with :attr:`PaletteEditor.edited`, which shows the new result;
*Re-run* asks for a fit that starts from the shown palette with the locked colours kept
exactly (:attr:`PaletteEditor.rerun_requested`).  Locks are kept by colour, so they
survive re-runs (a locked colour is exactly in the new palette) and reordering.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.views.palette import PaletteView
from quantize.edit import (
    SORT_KEYS,
    add_entry,
    delete_entries,
    merge_entries,
    recolour_entry,
)
from quantize.io.palettes import hex_color

__all__ = ["PaletteEditor"]

_INDEX_ROLE = QtCore.Qt.ItemDataRole.UserRole
_MAX_UNDO = 50
Colour = tuple[int, int, int]


def _key(rgb: Any) -> Colour:
    return (int(rgb[0]), int(rgb[1]), int(rgb[2]))


def _marked_icon(rgb: Any, marks: list[str], size: int = 28) -> QtGui.QIcon:
    """Draw a swatch with a padlock (locked) and/or a star (small colour kept) on it."""
    pixmap = QtGui.QPixmap(size, size)
    pixmap.fill(QtGui.QColor(*_key(rgb)))
    p = QtGui.QPainter(pixmap)
    p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
    p.setPen(QtGui.QColor(0, 0, 0, 90))
    p.drawRect(0, 0, size - 1, size - 1)
    outline = QtGui.QPen(QtGui.QColor(0, 0, 0), 1.5)
    if "locked" in marks:  # a white padlock, outlined, in the lower left
        p.setPen(QtGui.QPen(QtGui.QColor(255, 255, 255), 3))
        p.drawArc(QtCore.QRectF(4, 6, 9, 10), 0, 180 * 16)
        p.setPen(QtGui.QPen(QtGui.QColor(0, 0, 0), 1))
        p.drawArc(QtCore.QRectF(4, 6, 9, 10), 0, 180 * 16)
        p.setPen(outline)
        p.setBrush(QtGui.QColor(255, 255, 255))
        p.drawRect(QtCore.QRectF(2.5, 11.5, 12, 9))
    if "small colour kept" in marks:  # a yellow star in the upper right
        star = QtGui.QPolygonF()
        cx, cy, outer, inner = size - 8.0, 8.0, 7.0, 3.0
        for i in range(10):
            r = outer if i % 2 == 0 else inner
            a = np.pi / 2 + i * np.pi / 5
            star.append(QtCore.QPointF(cx + r * np.cos(a), cy - r * np.sin(a)))
        p.setPen(outline)
        p.setBrush(QtGui.QColor(255, 214, 0))
        p.drawPolygon(star)
    p.end()
    icon = QtGui.QIcon(pixmap)
    icon.addPixmap(pixmap, QtGui.QIcon.Mode.Selected)
    return icon


class PaletteEditor(PaletteView):
    """Palette swatches with editing tools.

    Signals
    -------
    edited(result)
        The user changed the palette: show this result (no refit).
    rerun_requested(init, locked)
        Fit again from ``init`` (K, 3) uint8, with ``locked`` (L, 3) uint8 kept exactly
        (they are the first L rows of ``init``).
    order_changed(key)
        The user chose another order (:data:`quantize.edit.SORT_KEYS`).
    eyedropper_toggled(on)
        The eyedropper is armed: the next click on the image adds its colour.

    Parameters
    ----------
    parent : QWidget, optional
    """

    edited = QtCore.Signal(object)
    rerun_requested = QtCore.Signal(object, object)
    order_changed = QtCore.Signal(str)
    eyedropper_toggled = QtCore.Signal(bool)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)  # keeps the object name "paletteView"
        self.list.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.itemSelectionChanged.connect(self._update_actions)
        self._result: Any = None
        self._locks: set[Colour] = set()
        self._undo: list[tuple[Any, frozenset[Colour]]] = []
        self._redo: list[tuple[Any, frozenset[Colour]]] = []

        def button(text: str, name: str, tip: str, slot: Any, shortcut: str = "") -> Any:
            b = QtWidgets.QToolButton(objectName=name)
            b.setText(text)
            b.setToolTip(tip + (f" ({shortcut})" if shortcut else ""))
            b.setAutoRaise(False)
            b.clicked.connect(slot)
            if shortcut:
                action = QtGui.QAction(self)
                action.setShortcut(QtGui.QKeySequence(shortcut))
                action.setShortcutContext(QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut)
                action.triggered.connect(slot)
                self.addAction(action)
            return b

        self.lock_button = button(
            "Lock",
            "lockButton",
            "Lock or unlock the selected colours: re-runs keep them",
            self.toggle_lock,
            "L",
        )
        self.delete_button = button(
            "Delete",
            "deleteButton",
            "Delete the selected colours; their pixels go to the nearest remaining colour",
            self.delete_selected,
            "Del",
        )
        self.merge_button = button(
            "Merge",
            "mergeButton",
            "Merge the selected colours into their weighted mean",
            self.merge_selected,
            "M",
        )
        self.recolour_button = button(
            "Recolour…",
            "recolourButton",
            "Choose another colour for the selected entry",
            self.recolour_selected,
        )
        self.add_button = button(
            "Add",
            "addButton",
            "Eyedropper: click the image to add the colour under the mouse",
            self._toggle_eyedropper,
        )
        self.add_button.setCheckable(True)
        self.undo_button = button(
            "Undo", "paletteUndo", "Undo the last palette edit", self.undo, "Ctrl+Z"
        )
        self.redo_button = button(
            "Redo", "paletteRedo", "Redo the edit undone", self.redo, "Ctrl+Shift+Z"
        )
        self.rerun_button = button(
            "Re-run from palette",
            "rerunFromPalette",
            "Fit again starting from this palette, keeping the locked colours exactly",
            self.request_rerun,
        )
        self.sort_combo = QtWidgets.QComboBox(objectName="paletteSort")
        for key, label in SORT_KEYS.items():
            self.sort_combo.addItem(label, key)
        self.sort_combo.setToolTip("Order of the swatches, which every export follows")
        self.sort_combo.currentIndexChanged.connect(self._on_sort)

        tools = QtWidgets.QGridLayout()
        tools.setContentsMargins(0, 0, 0, 0)
        tools.setSpacing(3)
        for i, b in enumerate(
            (self.lock_button, self.delete_button, self.merge_button, self.recolour_button)
        ):
            tools.addWidget(b, 0, i)
        tools.addWidget(self.add_button, 1, 0)
        tools.addWidget(self.undo_button, 1, 1)
        tools.addWidget(self.redo_button, 1, 2)
        sort_row = QtWidgets.QHBoxLayout()
        sort_row.addWidget(QtWidgets.QLabel("Order:"))
        sort_row.addWidget(self.sort_combo, 1)
        layout = self.layout()
        assert isinstance(layout, QtWidgets.QVBoxLayout)
        layout.insertLayout(1, tools)
        layout.insertLayout(2, sort_row)
        layout.addWidget(self.rerun_button)
        self._update_actions()

    # ------------------------------------------------------------------ state
    @property
    def result(self) -> Any:
        """The result shown (None before the first run)."""
        return self._result

    def locked_colours(self) -> list[Colour]:
        """Return the locked colours in palette order.

        Returns
        -------
        colours : list of (r, g, b)
        """
        if self._result is None:
            return []
        return [_key(c) for c in self._result.palette if _key(c) in self._locks]

    def set_result(self, result: Any) -> None:
        """Show a run's result (a fit, or the render of an edit).

        Parameters
        ----------
        result : QuantizeResult or None
        """
        if result is None or (self._result is not None and result.image is not self._result.image):
            self._undo.clear()  # another image: its edits do not apply
            self._redo.clear()
            self._locks.clear()
        self._result = result
        if result is not None:
            # the engine keeps locked colours exactly; a colour no longer there is unlocked
            present = {_key(c) for c in result.palette}
            self._locks &= present
        self._refresh()

    def set_order(self, key: str) -> None:
        """Show ``key`` in the order box (does not emit ``order_changed``).

        Parameters
        ----------
        key : str
        """
        index = self.sort_combo.findData(key)
        if index >= 0:
            self.sort_combo.blockSignals(True)
            self.sort_combo.setCurrentIndex(index)
            self.sort_combo.blockSignals(False)

    def selected_indices(self) -> list[int]:
        """Return the palette indices of the selected swatches, in palette order.

        Returns
        -------
        indices : list of int
        """
        return sorted(int(item.data(_INDEX_ROLE)) for item in self.list.selectedItems())

    def select(self, indices: list[int]) -> None:
        """Select the swatches of these palette indices (for keyboard users and tests).

        Parameters
        ----------
        indices : list of int
        """
        wanted = set(indices)
        self.list.clearSelection()
        for row in range(self.list.count()):
            item = self.list.item(row)
            if int(item.data(_INDEX_ROLE)) in wanted:
                item.setSelected(True)
                self.list.scrollToItem(item)

    # ------------------------------------------------------------------ edits
    def toggle_lock(self) -> None:
        """Lock the selected colours, or unlock them when they are all locked."""
        idx = self.selected_indices()
        if self._result is None or not idx:
            return
        colours = {_key(self._result.palette[i]) for i in idx}
        self._push()
        if colours <= self._locks:
            self._locks -= colours
        else:
            self._locks |= colours
        self._refresh(keep_selection=idx)

    def delete_selected(self) -> None:
        """Delete the selected colours (their pixels go to the nearest remaining one)."""
        idx = self.selected_indices()
        if self._result is None or not idx:
            return
        if len(idx) >= self._result.n_colors:
            self._status("At least one colour must remain")
            return
        self._apply(delete_entries(self._result, idx))

    def merge_selected(self) -> None:
        """Merge the selected colours into their pixel-weighted mean."""
        idx = self.selected_indices()
        if self._result is None or len(idx) < 2:
            self._status("Select two colours or more to merge them")
            return
        locked = any(_key(self._result.palette[i]) in self._locks for i in idx)
        merged = merge_entries(self._result, idx)
        self._apply(merged, lock=_key(merged.palette[idx[0]]) if locked else None)

    def recolour_selected(self, colour: QtGui.QColor | None = None) -> None:
        """Give the selected entry another colour (a colour dialog when none is given).

        Parameters
        ----------
        colour : QColor, optional
            The new colour (tests and scripts); otherwise the user picks it.
        """
        idx = self.selected_indices()
        if self._result is None or len(idx) != 1:
            self._status("Select one colour to recolour it")
            return
        (k,) = idx
        old = _key(self._result.palette[k])
        if colour is None:
            colour = QtWidgets.QColorDialog.getColor(QtGui.QColor(*old), self, "Recolour")
            if not colour.isValid():
                return
        new = (colour.red(), colour.green(), colour.blue())
        if new == old:
            return
        if any(_key(c) == new for c in self._result.palette):
            self._status(f"{hex_color(new)} is already in the palette")
            return
        lock = new if old in self._locks else None
        self._apply(recolour_entry(self._result, k, new), lock=lock, unlock=old)

    def add_colour(self, rgb: Any) -> None:
        """Add a colour (the eyedropper calls this with the colour under the mouse).

        Parameters
        ----------
        rgb : sequence of 3 ints
        """
        self.add_button.setChecked(False)
        self.eyedropper_toggled.emit(False)
        if self._result is None:
            return
        colour = _key(rgb)
        if any(_key(c) == colour for c in self._result.palette):
            self._status(f"{hex_color(colour)} is already in the palette")
            return
        self._apply(add_entry(self._result, np.asarray(colour)))

    def undo(self) -> None:
        """Go back to the palette before the last edit (or re-run)."""
        if not self._undo:
            return
        self._redo.append((self._result, frozenset(self._locks)))
        result, locks = self._undo.pop()
        self._show(result, locks)

    def redo(self) -> None:
        """Redo the edit undone last."""
        if not self._redo:
            return
        self._undo.append((self._result, frozenset(self._locks)))
        result, locks = self._redo.pop()
        self._show(result, locks)

    def request_rerun(self) -> None:
        """Ask for a fit from the shown palette, the locked colours kept exactly."""
        if self._result is None:
            return
        palette = np.asarray(self._result.palette, dtype=np.uint8)
        locked_rows = [i for i, c in enumerate(palette) if _key(c) in self._locks]
        free_rows = [i for i in range(len(palette)) if i not in set(locked_rows)]
        init = np.ascontiguousarray(palette[locked_rows + free_rows])
        self._push()
        self.rerun_requested.emit(init, np.ascontiguousarray(palette[locked_rows]))

    def can_undo(self) -> bool:
        """Return whether there is an edit to undo."""
        return bool(self._undo)

    def can_redo(self) -> bool:
        """Return whether there is an undone edit to redo."""
        return bool(self._redo)

    # ------------------------------------------------------------------ internals
    def _push(self) -> None:
        self._undo.append((self._result, frozenset(self._locks)))
        del self._undo[:-_MAX_UNDO]
        self._redo.clear()

    def _apply(self, result: Any, lock: Colour | None = None, unlock: Colour | None = None) -> None:
        self._push()
        if unlock is not None:
            self._locks.discard(unlock)
        if lock is not None:
            self._locks.add(lock)
        self._show(result, frozenset(self._locks))

    def _show(self, result: Any, locks: frozenset[Colour]) -> None:
        self._locks = set(locks)
        self._result = result
        self._refresh()
        self.edited.emit(result)

    def _status(self, text: str) -> None:
        self.header.setText(text)

    def _toggle_eyedropper(self) -> None:
        self.eyedropper_toggled.emit(self.add_button.isChecked())

    def _on_sort(self) -> None:
        self.order_changed.emit(self.sort_combo.currentData())

    def _refresh(self, keep_selection: list[int] | None = None) -> None:
        result = self._result
        if result is None:
            self.set_palette(None, None)
        else:
            self.set_palette(result.palette, result.proportions)
            for row in range(self.list.count()):
                item = self.list.item(row)
                marks = self.swatch_marks(row)
                if marks:
                    k = int(item.data(_INDEX_ROLE))
                    item.setIcon(_marked_icon(result.palette[k], marks))
                    item.setToolTip(f"{item.toolTip()}; {', '.join(marks)}")
                    font = item.font()
                    font.setBold("locked" in marks)
                    font.setItalic("small colour kept" in marks)
                    item.setFont(font)
            n_locked = len(self._locks)
            edits = len(result.edits)
            self.header.setText(
                f"{result.n_colors} colours"
                + (f", {n_locked} locked" if n_locked else "")
                + (f", {edits} edit{'s' * (edits != 1)}" if edits else "")
                + " — select, then edit; exports follow this order"
                + (" (padlock: locked" if n_locked else "")
                + (
                    ("; " if n_locked else " (") + "star: small colour kept)"
                    if result.added
                    else (")" if n_locked else "")
                )
            )
        if keep_selection:
            self.select(keep_selection)
        self._update_actions()

    def swatch_marks(self, row: int) -> list[str]:
        """Return what the swatch in ``row`` is marked with.

        Parameters
        ----------
        row : int

        Returns
        -------
        marks : list of str
            ``"locked"`` and/or ``"small colour kept"`` (an entry the fit added for a
            small distinct colour group).
        """
        if self._result is None:
            return []
        k = int(self.list.item(row).data(_INDEX_ROLE))
        marks = []
        if _key(self._result.palette[k]) in self._locks:
            marks.append("locked")
        if k in set(self._result.added):
            marks.append("small colour kept")
        return marks

    def set_palette(self, palette: np.ndarray | None, proportions: np.ndarray | None) -> None:
        """Show a palette in its own order (the order exports write).

        Parameters
        ----------
        palette : ndarray of shape (K, 3), uint8, or None
        proportions : ndarray of shape (K,), or None
        """
        super().set_palette(palette, proportions)
        if palette is None or proportions is None:
            return
        # PaletteView lists by share; the editor lists in palette order
        items = [self.list.takeItem(0) for _ in range(self.list.count())]
        for item in sorted(items, key=lambda it: int(it.data(_INDEX_ROLE))):
            self.list.addItem(item)

    def _update_actions(self) -> None:
        n = len(self.list.selectedItems())
        has = self._result is not None
        self.lock_button.setEnabled(has and n > 0)
        self.delete_button.setEnabled(has and 0 < n < (self._result.n_colors if has else 0))
        self.merge_button.setEnabled(has and n >= 2)
        self.recolour_button.setEnabled(has and n == 1)
        self.add_button.setEnabled(has)
        self.rerun_button.setEnabled(has)
        self.undo_button.setEnabled(bool(self._undo))
        self.redo_button.setEnabled(bool(self._redo))
        if has and n:
            idx = [int(it.data(_INDEX_ROLE)) for it in self.list.selectedItems()]
            locked = all(
                i < self._result.n_colors and _key(self._result.palette[i]) in self._locks
                for i in idx
            )
            self.lock_button.setText("Unlock" if locked else "Lock")
