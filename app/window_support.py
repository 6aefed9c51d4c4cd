"""Window behaviour that is not layout: shortcuts over text fields, help, stale results, exports.

Kept out of :mod:`app.main_window` (layout and wiring only), which calls these with itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from app.export_dialog import DEFAULT_KINDS

#: the main window (typed loosely: importing app.main_window here would make a cycle)
MainWindow = Any

__all__ = [
    "ShortcutGuard",
    "export_folder",
    "export_kinds",
    "export_when_ready",
    "install_explorer",
    "mark_cancelled",
    "remember_export",
    "shortcut_rows",
    "show_about",
    "show_shortcuts",
]

_EXPORT_KINDS_KEY = "export/kinds"


class ShortcutGuard(QtCore.QObject):
    """Let some window shortcuts win over the key bindings of a focused text field.

    A line edit or spin box claims Ctrl+E (end of line, on Linux) before the window's
    shortcut sees it, so "change K, then Ctrl+E to export" did nothing.  For the guarded
    actions' keys this filter tells Qt that the field does not want the key
    (``ShortcutOverride`` left unaccepted), so the shortcut fires; every other key (Ctrl+A,
    Ctrl+V, arrows...) still edits the field.

    Parameters
    ----------
    window : QWidget
        The window whose fields are guarded.
    actions : list of QAction
        Actions whose shortcuts must work from a text field.
    """

    def __init__(self, window: QtWidgets.QWidget, actions: list[QtGui.QAction]) -> None:
        super().__init__(window)
        self._window = window
        self._actions = actions
        self._filtering = False

    def attach(self, application: QtWidgets.QApplication) -> None:
        """Filter the application's events while one of the window's fields has the focus.

        An application-wide filter written in Python runs for every event of every widget (a
        paint, a timer, a worker's signal), each time waiting for the interpreter lock that
        the engine's threads share: during a 12 MP run that cost 10 % of the run's time and
        lengthened the event loop's pauses.  So the filter is installed only while a text
        field of the window has the focus, the only time it has anything to do.

        Parameters
        ----------
        application : QApplication
            The application whose focus changes are followed.
        """
        application.focusChanged.connect(self._on_focus_changed)
        self._on_focus_changed(None, application.focusWidget())

    def is_filtering(self) -> bool:
        """Return whether the application-wide filter is installed (a field has the focus).

        Returns
        -------
        filtering : bool
        """
        return self._filtering

    def _on_focus_changed(self, _old: object, new: QtWidgets.QWidget | None) -> None:
        application = QtWidgets.QApplication.instance()
        if application is None:
            return
        wanted = (
            isinstance(new, QtWidgets.QLineEdit | QtWidgets.QAbstractSpinBox)
            and new.window() is self._window
        )
        if wanted and not self._filtering:
            application.installEventFilter(self)
        elif self._filtering and not wanted:
            application.removeEventFilter(self)
        self._filtering = wanted

    def _guarded(self, event: QtGui.QKeyEvent) -> bool:
        pressed = QtGui.QKeySequence(event.keyCombination())
        return any(
            sequence.matches(pressed) == QtGui.QKeySequence.SequenceMatch.ExactMatch
            for action in self._actions
            if action.isEnabled()
            for sequence in action.shortcuts()
        )

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: D102
        if (
            event.type() == QtCore.QEvent.Type.ShortcutOverride
            and isinstance(watched, QtWidgets.QLineEdit | QtWidgets.QAbstractSpinBox)
            and watched.window() is self._window
            and isinstance(event, QtGui.QKeyEvent)
            and self._guarded(event)
        ):
            event.ignore()  # the field does not claim the key: the shortcut gets it
            return True
        return super().eventFilter(watched, event)


def shortcut_rows(window: QtWidgets.QWidget) -> list[tuple[str, str]]:
    """List the window's actions that have shortcuts, with their keys (for Help).

    Parameters
    ----------
    window : QWidget

    Returns
    -------
    rows : list of (action, keys)
        E.g. ``("Export…", "Ctrl+E")``, in menu order, plus the keys that are not actions.
    """
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for menu in window.findChildren(QtWidgets.QMenu):
        for action in menu.actions():
            keys = [
                s.toString(QtGui.QKeySequence.SequenceFormat.NativeText) for s in action.shortcuts()
            ]
            name = action.text().replace("&", "")
            if keys and name not in seen:
                seen.add(name)
                rows.append((name, " or ".join(keys)))
    rows += [
        ("Show the original (hold)", "Space over the image"),
        ("Zoom", "Mouse wheel over the image"),
        ("Highlight a colour's pixels", "Click its swatch (again to clear)"),
        ("Copy a colour's hex code", "Double-click its swatch"),
    ]
    return rows


def show_shortcuts(window: QtWidgets.QWidget) -> QtWidgets.QDialog:
    """Show the keyboard shortcuts in a small dialog (Help → Keyboard Shortcuts).

    Parameters
    ----------
    window : QWidget

    Returns
    -------
    dialog : QDialog
        Non-modal, deleted on close.
    """
    dialog = QtWidgets.QDialog(window, objectName="shortcutsDialog")
    dialog.setWindowTitle("Keyboard Shortcuts")
    rows = shortcut_rows(window)
    table = QtWidgets.QTableWidget(len(rows), 2, objectName="shortcutsTable")
    table.setHorizontalHeaderLabels(["Action", "Keys"])
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
    for row, (name, keys) in enumerate(rows):
        table.setItem(row, 0, QtWidgets.QTableWidgetItem(name))
        table.setItem(row, 1, QtWidgets.QTableWidgetItem(keys))
    table.resizeColumnsToContents()
    table.horizontalHeader().setStretchLastSection(True)
    buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.close)
    layout = QtWidgets.QVBoxLayout(dialog)
    layout.addWidget(table)
    layout.addWidget(buttons)
    dialog.resize(520, 520)
    dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog


def show_about(window: QtWidgets.QWidget) -> None:
    """Show Help → About.

    Parameters
    ----------
    window : QWidget
    """
    from quantize import __version__

    QtWidgets.QMessageBox.about(
        window,
        "About VQ Studio",
        f"<b>VQ Studio {__version__}</b><p>Colour vector quantization with K-means and "
        "Gaussian mixtures: palettes, soft segmentation maps, exports.</p>"
        "<p>K-means suits palettes and small indexed images; the Gaussian mixture suits "
        "segmentation (soft maps). View → Explore K shows what each number of colours "
        "costs and buys. Keyboard shortcuts: Help → Keyboard Shortcuts (F1).</p>",
    )


def mark_cancelled(window: MainWindow) -> None:
    """After a cancel: say so under the plot, and mark an earlier result that no longer fits.

    The image, palette and metrics still show the last finished run; when its parameters
    differ from the current ones, each says so (until the next result replaces it).

    Parameters
    ----------
    window : MainWindow
    """
    window.convergence.set_cancelled()
    output = window.controller.output()
    if output is None:
        return
    shown = output.params
    if shown == window.params.parameters():
        return
    from quantize.cluster.registry import METHODS

    spec = METHODS.get(shown.method)
    method = spec.short_label if spec is not None else shown.method
    colours = f"{len(output.result.palette)} colours"
    reason = f"previous run ({method}, {colours}), not the current parameters"
    window.compare.set_stale(reason)
    window.palette_view.set_stale(reason)
    window.metrics_view.set_stale(reason)
    window.progress_label.setText(f"Cancelled — still showing the {reason}")


def export_kinds(settings: Any) -> list[str]:
    """Return the export kinds ticked last time (the defaults the first time).

    Parameters
    ----------
    settings : AppSettings

    Returns
    -------
    kinds : list of str
        Only kinds that are still registered.
    """
    from quantize.io.export import KINDS

    saved = settings.value(_EXPORT_KINDS_KEY)
    if isinstance(saved, str):
        saved = [k for k in saved.split(",") if k]
    if not isinstance(saved, list):
        return list(DEFAULT_KINDS)
    kept = [str(k) for k in saved if str(k) in KINDS]
    return kept or list(DEFAULT_KINDS)


def remember_export(settings: Any, kinds: list[str], folder: Path) -> None:
    """Remember what was exported and where, for the next export.

    Parameters
    ----------
    settings : AppSettings
    kinds : list of str
    folder : Path
    """
    settings.set_value(_EXPORT_KINDS_KEY, ",".join(kinds))
    settings.set_last_folder(folder, "export")


def export_folder(window: MainWindow) -> str:
    """Return the folder the export dialog starts in: the image's, else the last export's.

    Parameters
    ----------
    window : MainWindow

    Returns
    -------
    folder : str
    """
    opened = window.controller.opened()
    path = opened.loaded.path if opened is not None else None
    if path is not None and Path(path).parent.is_dir():
        return str(Path(path).resolve().parent)
    return window.settings.last_folder("export")


def install_explorer(window: MainWindow) -> Any:
    """Add the "Explore K" dock (tabbed with the bottom views) and wire it to the window.

    The explorer follows the current image and parameters; a click on a K sets K (and
    runs), and its auto-K mode, quality target and size budget edit the run parameters.

    Parameters
    ----------
    window : MainWindow

    Returns
    -------
    explorer : KExplorer
    """
    from dataclasses import replace

    from app.views.k_explorer import KExplorer

    explorer = KExplorer()
    explorer.set_parameter_source(window.params.parameters)
    dock = QtWidgets.QDockWidget("Explore K", window, objectName="exploreDock")
    dock.setWidget(explorer)
    window.addDockWidget(QtCore.Qt.DockWidgetArea.BottomDockWidgetArea, dock)
    window.tabifyDockWidget(window.color_space_dock, dock)
    window.convergence_dock.raise_()
    window.explorer_dock = dock
    for action in window.menuBar().actions():
        if action.menu() is not None and action.text() == "&View":
            action.menu().addAction(dock.toggleViewAction())

    def on_image(opened: Any, _context: Any) -> None:
        explorer.set_image(opened.loaded.pixels, opened.loaded.file_size)

    def use_k(k: int) -> None:
        params = replace(window.params.parameters(), n_colors=int(k), auto="off")
        window.params.set_parameters(params)
        window.params.changed.emit()  # remembered, and re-run if automatic runs are on
        if not window.auto_run_check.isChecked():
            window.start_run()

    def use_targets(auto: str, psnr: float, size_kb: float) -> None:
        params = replace(
            window.params.parameters(), auto=auto, target_psnr=psnr, max_size_kb=size_kb
        )
        window.params.set_parameters(params)
        window.params.changed.emit()

    window.controller.image_set.connect(on_image)
    window.params.changed.connect(lambda: explorer.sync_parameters(window.params.parameters()))
    window.run_finished.connect(lambda output: explorer.set_current_k(len(output.result.palette)))
    explorer.k_chosen.connect(use_k)
    explorer.targets_edited.connect(use_targets)
    explorer.sync_parameters(window.params.parameters())
    return explorer


def export_when_ready(window: MainWindow) -> bool:
    """Open the export dialog after the run that is coming, when one is (change K, Ctrl+E).

    With automatic runs, a parameter change starts a run after a short pause; exporting at
    once would write the previous result.  Instead the dialog opens when that run finishes
    (once), and the status bar says so.

    Parameters
    ----------
    window : MainWindow

    Returns
    -------
    deferred : bool
        ``True`` when the dialog will open later; ``False`` when it may open now.
    """
    controller = window.controller
    if getattr(window, "_export_waiting", False):
        return True  # already waiting: one dialog
    if not (controller.is_active() or controller.run_pending()):
        return False

    def forget(*_args: Any) -> None:
        window._export_waiting = False
        window.run_finished.disconnect(open_now)
        window.run_failed.disconnect(forget)
        window.run_cancelled.disconnect(forget)

    def open_now(_output: Any) -> None:
        forget()
        window.export_dialog()

    window._export_waiting = True
    window.run_finished.connect(open_now)
    window.run_failed.connect(forget)
    window.run_cancelled.connect(forget)
    window.progress_label.setText("Export opens when the run with the new parameters finishes…")
    return True
