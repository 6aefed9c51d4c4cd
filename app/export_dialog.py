"""Export dialog: choose outputs, folder and file-name stem; confirm before overwriting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

import app._compat  # noqa: F401  (PySide6 6.12 emit refcount bug, see module)
from app.workers import Worker

__all__ = ["ExportDialog", "DEFAULT_KINDS", "describe_export_error"]

#: Exports checked when the dialog opens (the choices come from quantize.io.export.KINDS).
DEFAULT_KINDS = ("indexed_png", "gpl", "palette_json", "sidecar")


def describe_export_error(exc: BaseException, folder: Path) -> str:
    """Say why an export failed in words, naming the file or folder (no ``[Errno 20]``).

    Parameters
    ----------
    exc : BaseException
        What the export raised.
    folder : Path
        The export folder the user chose.

    Returns
    -------
    message : str
    """
    import errno

    from quantize.io._atomic import reason

    if isinstance(exc, OSError) and not _is_export_error(exc):
        if exc.errno in (errno.ENOTDIR, errno.EEXIST):
            blocker = _file_in_the_way(folder)
            if blocker is not None:
                return (
                    f"Cannot export into {folder}: {blocker} is a file, not a folder. "
                    "Choose another folder."
                )
        name = exc.filename or folder
        return f"Cannot export to {name}: {reason(exc)}."
    return str(exc) or type(exc).__name__


def _file_in_the_way(folder: Path) -> Path | None:
    """Return the file (not a folder) at ``folder`` or one of its parents, if any."""
    return next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)


def _is_export_error(exc: BaseException) -> bool:
    from quantize.io.errors import ExportError

    return isinstance(exc, ExportError)


def _overlay_options(overlay: tuple[float, bool] | None) -> dict[str, Any]:
    """Keyword arguments of :func:`quantize.io.export.export_all` for an overlay setting.

    Parameters
    ----------
    overlay : (opacity, outlines) or None
        ``None``: the engine's defaults.

    Returns
    -------
    options : dict
    """
    if overlay is None:
        return {}
    opacity, outlines = overlay
    return {"overlay_opacity": float(opacity), "overlay_outlines": bool(outlines)}


def _run_export(job: dict[str, Any]) -> tuple[list[Path] | None, str]:
    """Create the folder and write the exports; return (written, "") or (None, error)."""
    from quantize.io.errors import ExportError
    from quantize.io.export import export_all

    folder = Path(job["folder"])
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        written = export_all(
            job["result"],
            job["folder"],
            job["stem"],
            job["kinds"],
            overwrite=job["overwrite"],
            dither=job["dither"],
            strength=job["strength"],
            source_path=job["source_path"],
            source_sha256=job["source_sha256"],
            metrics=job["metrics"],
            rendering=job["rendering"],
            **_overlay_options(job.get("overlay")),
        )
    except Exception as exc:  # any failure must reach the user as a message
        _remove_empty(created)  # leave nothing behind, not even new empty folders
        if isinstance(exc, ExportError | OSError | ValueError):
            return None, describe_export_error(exc, folder)
        return None, f"{type(exc).__name__}: {exc}"
    return [Path(p) for p in written], ""


def _remove_empty(folders: list[Path]) -> None:
    """Remove folders this export created (deepest first) if they are still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break


class ExportDialog(QtWidgets.QDialog):
    """Choose what to export and where; :meth:`export` does the work.

    Parameters
    ----------
    result : QuantizeResult
        The result to export.
    stem : str
        Proposed file-name stem.
    folder : str
        Proposed output folder.
    dither : str, optional
        Dithering of the indexed PNG (as shown in the app).
    strength : float, optional
        Dithering strength.
    source_path : Path or None, optional
        Source image (recorded in the sidecar).
    source_sha256 : str or None, optional
        SHA-256 of the source file as it was decoded (saves reading it again).
    metrics : Metrics or None, optional
        Metrics for the sidecar.
    rendering : (indices, png) or None, optional
        :func:`quantize.metrics.render_indexed` of ``result`` with ``dither`` and
        ``strength``, so the export does not dither and encode again.
    overlay : (float, bool), optional
        Opacity (0-1) and outlines of the overlay PNG: what the segmentation panel's
        overlay view shows.
    kinds : sequence of str, optional
        Initially checked exports.
    parent : QWidget, optional
        Parent widget.
    """

    export_finished = QtCore.Signal(list)

    def __init__(
        self,
        result: Any,
        stem: str,
        folder: str,
        *,
        dither: str = "none",
        strength: float = 1.0,
        source_path: Path | None = None,
        source_sha256: str | None = None,
        metrics: Any = None,
        rendering: tuple[Any, bytes] | None = None,
        overlay: tuple[float, bool] | None = None,
        kinds: tuple[str, ...] | list[str] = DEFAULT_KINDS,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        from quantize.io.export import KINDS

        self.setWindowTitle("Export")
        self.setObjectName("exportDialog")
        self.quantize_result = result
        self.dither = dither
        self.strength = strength
        self.source_path = source_path
        self.source_sha256 = source_sha256
        self.metrics = metrics
        self.rendering = rendering
        self.overlay = overlay
        self.written: list[Path] = []
        self.last_error = ""
        self._worker: Worker | None = None
        self.status = QtWidgets.QLabel("")

        self.checks: dict[str, QtWidgets.QCheckBox] = {}
        box = QtWidgets.QGroupBox("Export")
        grid = QtWidgets.QGridLayout(box)
        for i, spec in enumerate(KINDS.values()):  # one check box per registered export kind
            check = QtWidgets.QCheckBox(spec.label)
            check.setObjectName(f"export_{spec.name}")
            check.setToolTip(spec.description)
            check.setChecked(spec.name in kinds)
            check.toggled.connect(self._update_preview)
            self.checks[spec.name] = check
            grid.addWidget(check, i // 2, i % 2)

        self.folder = QtWidgets.QLineEdit(folder, objectName="folderEdit")
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder_row = QtWidgets.QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        self.stem = QtWidgets.QLineEdit(stem, objectName="stemEdit")
        self.stem.setValidator(
            QtGui.QRegularExpressionValidator(
                QtCore.QRegularExpression(r"[^/\\:*?\"<>|]+"), self.stem
            )
        )
        form = QtWidgets.QFormLayout()
        folder_label = QtWidgets.QLabel("&Folder")
        folder_label.setBuddy(self.folder)  # a layout cannot be a buddy: point at the edit
        form.addRow(folder_label, folder_row)
        form.addRow("File-name &stem", self.stem)
        dither_text = "none" if dither == "none" else f"{dither}, strength {strength:.2f}"
        form.addRow("Dithering", QtWidgets.QLabel(f"{dither_text} (as in the parameters)"))

        self.preview = QtWidgets.QPlainTextEdit(objectName="exportPreview")
        self.preview.setReadOnly(True)
        self.preview.setMaximumHeight(120)

        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        self.export_button = buttons.addButton(
            "Export", QtWidgets.QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.export_button.setObjectName("exportButton")
        buttons.accepted.connect(self._on_accept)
        buttons.rejected.connect(self.reject)

        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(box)
        layout.addLayout(form)
        layout.addWidget(QtWidgets.QLabel("Files that will be written:"))
        layout.addWidget(self.preview)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.folder.textChanged.connect(self._update_preview)
        self.stem.textChanged.connect(self._update_preview)
        self._update_preview()

    def selected_kinds(self) -> list[str]:
        """Return the checked exports, in the canonical order.

        Returns
        -------
        kinds : list of str
            Names from :data:`quantize.io.export.KINDS`.
        """
        return [kind for kind, check in self.checks.items() if check.isChecked()]

    def planned_files(self) -> list[Path]:
        """Return every file the export would write.

        Returns
        -------
        paths : list of Path
            From :func:`quantize.io.export.plan_exports`.
        """
        from quantize.io.export import plan_exports

        kinds = self.selected_kinds()
        if not kinds or not self.stem.text().strip():
            return []
        return list(
            plan_exports(self.quantize_result, self._folder(), self.stem.text().strip(), kinds)
        )

    def confirm_overwrite(self, existing: list[Path]) -> bool:
        """Ask whether existing files may be replaced.

        Parameters
        ----------
        existing : list of Path
            Files that exist already.

        Returns
        -------
        ok : bool
            ``True`` if the user agreed.
        """
        names = "\n".join(p.name for p in existing[:15])
        more = f"\n… and {len(existing) - 15} more" if len(existing) > 15 else ""
        answer = QtWidgets.QMessageBox.question(
            self,
            "Replace existing files?",
            f"{len(existing)} file(s) already exist in {existing[0].parent}:\n\n{names}{more}\n\n"
            "Replace them? (Masks or maps of an earlier export with more colours are removed.)",
            QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
            QtWidgets.QMessageBox.StandardButton.No,
        )
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    def report_error(self, message: str) -> None:
        """Show an export error.

        Parameters
        ----------
        message : str
            What went wrong.
        """
        QtWidgets.QMessageBox.critical(self, "Export failed", message)

    def export(self) -> list[Path] | None:
        """Write the selected exports now, on this thread (asking before overwriting).

        Returns
        -------
        written : list of Path or None
            Files written, or ``None`` if nothing was written (cancelled or failed; the
            error is in :attr:`last_error`).
        """
        job = self._prepare()
        if job is None:
            return None
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
        try:
            written, error = _run_export(job)
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        return self._finish(written, error)

    def start_export(self) -> bool:
        """Write the selected exports on a worker thread; ``export_finished`` follows.

        Returns
        -------
        started : bool
            ``False`` if validation failed or the user declined to overwrite.
        """
        job = self._prepare()
        if job is None:
            return False
        worker = Worker(lambda _should_cancel: _run_export(job), parent=self)
        worker.succeeded.connect(self._on_worker_done)
        worker.failed.connect(self._on_worker_failed)
        self._worker = worker
        self._set_busy(True)
        worker.start()
        return True

    def is_exporting(self) -> bool:
        """Return whether an export thread is running.

        Returns
        -------
        running : bool
            ``True`` while files are being written.
        """
        return self._worker is not None and self._worker.isRunning()

    # ------------------------------------------------------------------ internals
    def _folder(self) -> Path:
        """Return the output folder as typed (trimmed; empty means the current folder)."""
        return Path(self.folder.text().strip() or ".")

    def _prepare(self) -> dict[str, Any] | None:
        from quantize.io.errors import ExportError
        from quantize.io.export import stale_exports

        self.last_error = ""
        kinds = self.selected_kinds()
        stem = self.stem.text().strip()
        if not kinds:
            self._fail("Choose at least one thing to export.")
            return None
        if not stem:
            self._fail("Enter a file-name stem.")
            return None
        folder = self._folder()
        blocker = next(
            (p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None
        )
        if blocker is not None:
            self._fail(
                f"Cannot export into {folder}: {blocker} is a file, not a folder. "
                "Choose another folder."
            )
            return None
        try:
            planned = self.planned_files()
            # per-entry files of an earlier export of this stem that this one would not
            # rewrite (mask-05 when there are now 3 colours): replaced means removed too
            stale = stale_exports(self.quantize_result, folder, stem, kinds)
        except (ExportError, OSError, ValueError) as exc:
            self._fail(describe_export_error(exc, folder))
            return None
        existing = [p for p in planned if p.exists()] + stale
        if existing and not self.confirm_overwrite(existing):
            return None
        return {
            "result": self.quantize_result,
            "folder": self._folder(),
            "stem": stem,
            "kinds": kinds,
            "overwrite": bool(existing),
            "dither": self.dither,
            "strength": self.strength,
            "source_path": self.source_path,
            "source_sha256": self.source_sha256,
            "metrics": self.metrics,
            "rendering": self.rendering,
            "overlay": self.overlay,
        }

    def _finish(self, written: list[Path] | None, error: str) -> list[Path] | None:
        if written is None:
            self._fail(error)
            return None
        self.written = [Path(p) for p in written]
        self.export_finished.emit(self.written)
        return self.written

    def _on_worker_done(self, _key: int, outcome: tuple[list[Path] | None, str]) -> None:
        self._set_busy(False)
        if self._finish(*outcome) is not None:
            self.accept()

    def _on_worker_failed(self, _key: int, message: str, _details: str) -> None:
        self._set_busy(False)  # _run_export reports errors itself; this is the unforeseen
        self._fail(message)

    def _set_busy(self, busy: bool) -> None:
        self.export_button.setEnabled(not busy)
        self.status.setText("Writing files…" if busy else "")
        for widget in (*self.checks.values(), self.folder, self.stem):
            widget.setEnabled(not busy)

    def _fail(self, message: str) -> None:
        self.last_error = message
        self.report_error(message)

    def _on_accept(self) -> None:
        self.start_export()

    def reject(self) -> None:  # noqa: D102 (wait for a running export: files stay consistent)
        if self._worker is not None and self._worker.isRunning():
            self.status.setText("Finishing the export before closing…")
            self._worker.wait()
        super().reject()

    def _browse(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Export folder", self.folder.text()
        )
        if folder:
            self.folder.setText(folder)

    def _update_preview(self) -> None:
        try:
            paths = self.planned_files()
        except Exception as exc:  # a preview must never break the dialog
            self.preview.setPlainText(f"(cannot list the files: {exc})")
            self.export_button.setEnabled(False)
            return
        lines = [p.name + ("   (exists — will ask)" if p.exists() else "") for p in paths]
        self.preview.setPlainText("\n".join(lines) if lines else "(nothing selected)")
        self.export_button.setEnabled(bool(paths))
