"""The Batch window: quantize a folder of images on the machinery of ``vq batch``.

Folder in, folder out, a file pattern, the run parameters, a shared palette on or off, the
number of local worker processes or the address of a Dask scheduler.  The run is the very
function ``vq batch`` runs (:func:`quantize.cli.batch.run`, on a local Dask cluster or the
scheduler given), on a :class:`~app.workers.Worker` thread, so the outputs are the ones the
command line writes.  Each file's status appears as it is done; Cancel acts as Ctrl-C does
(queued files never start, nothing partial is left, what was written is said).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from app.workers import Worker
from quantize.cluster.registry import METHODS
from quantize.distributed import default_workers
from quantize.options import COLOR_SPACES, DEFAULTS, DITHERS

__all__ = ["DEFAULT_PATTERN", "BatchWindow", "matching_files"]

#: The file pattern offered first: the formats the loader reads.
DEFAULT_PATTERN = "*.png *.jpg *.jpeg *.tif *.tiff *.webp *.gif *.bmp"

_STATUS_COLORS = {
    "done": "#1b7f3b",
    "failed": "#b3261e",
    "skipped": "#7a5b00",
    "queued": "#555555",
    "not processed": "#555555",
}


def matching_files(folder: Path, pattern: str) -> list[Path]:
    """Return the files directly in ``folder`` whose name matches one of the patterns.

    Parameters
    ----------
    folder : Path
    pattern : str
        Glob patterns separated by spaces, commas or semicolons (``*.png *.jpg``),
        matched case-insensitively.

    Returns
    -------
    files : list of Path
        Sorted by name.
    """
    globs = [g for g in pattern.replace(",", " ").replace(";", " ").split() if g]
    if not folder.is_dir() or not globs:
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and any(fnmatch.fnmatch(p.name.lower(), g.lower()) for g in globs)
    )


class _Bridge(QtCore.QObject):
    """Carries the batch's callbacks from the worker thread to the window (queued)."""

    report = QtCore.Signal(int, object)
    cluster = QtCore.Signal(str, str)
    message = QtCore.Signal(str)


class BatchWindow(QtWidgets.QWidget):
    """A window that runs ``vq batch`` on a folder, with progress, status and cancel.

    Parameters
    ----------
    parent : QWidget, optional
        The main window (the batch window stays on top of it, not modal).
    """

    #: Emitted with the exit code (0 ok, 130 cancelled, else the failures' code) at the end.
    finished = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent, QtCore.Qt.WindowType.Window)
        self.setObjectName("batchWindow")
        self.setWindowTitle("Batch – VQ Studio")
        self.worker: Worker | None = None
        self.files: list[Path] = []
        self._bridge = _Bridge(self)
        self._bridge.report.connect(self._on_report)
        self._bridge.cluster.connect(self._on_cluster)
        self._bridge.message.connect(self._on_message)
        self._messages: list[str] = []
        self._build()
        self._update_files()
        self.resize(760, 620)

    # ------------------------------------------------------------------ layout

    def _folder_row(self, name: str, placeholder: str) -> tuple[QtWidgets.QLineEdit, Any]:
        edit = QtWidgets.QLineEdit(objectName=name, placeholderText=placeholder)
        browse = QtWidgets.QPushButton("Browse…", objectName=f"{name}Browse")
        row = QtWidgets.QHBoxLayout()
        row.addWidget(edit, 1)
        row.addWidget(browse)
        browse.clicked.connect(lambda: self._browse(edit))
        return edit, row

    def _build(self) -> None:
        form = QtWidgets.QFormLayout()
        self.in_edit, in_row = self._folder_row("inputFolder", "folder with the images")
        self.out_edit, out_row = self._folder_row("outputFolder", "folder for the results")
        self.pattern_edit = QtWidgets.QLineEdit(DEFAULT_PATTERN, objectName="pattern")
        self.pattern_edit.setToolTip("file name patterns, separated by spaces")
        form.addRow("Input folder", in_row)
        form.addRow("Output folder", out_row)
        form.addRow("Files", self.pattern_edit)

        self.k_spin = QtWidgets.QSpinBox(
            objectName="colors", minimum=2, maximum=256, value=int(DEFAULTS["n_colors"])
        )
        self.method_combo = QtWidgets.QComboBox(objectName="method")
        for spec in METHODS.values():
            self.method_combo.addItem(spec.label, spec.name)
            self.method_combo.setItemData(
                self.method_combo.count() - 1, spec.description, QtCore.Qt.ItemDataRole.ToolTipRole
            )
        self.method_combo.setCurrentIndex(max(0, self.method_combo.findData(DEFAULTS["method"])))
        self.space_combo = QtWidgets.QComboBox(objectName="colorSpace")
        for name, label in COLOR_SPACES.labels().items():
            self.space_combo.addItem(label, name)
        self.space_combo.setCurrentIndex(max(0, self.space_combo.findData(DEFAULTS["color_space"])))
        self.dither_combo = QtWidgets.QComboBox(objectName="dither")
        for name, label in DITHERS.labels().items():
            self.dither_combo.addItem(label, name)
        self.dither_combo.setCurrentIndex(max(0, self.dither_combo.findData(DEFAULTS["dither"])))
        self.seed_spin = QtWidgets.QSpinBox(
            objectName="seed", minimum=0, maximum=2**31 - 1, value=int(DEFAULTS["seed"])
        )
        params = QtWidgets.QGridLayout()
        for col, (label, widget) in enumerate(
            (
                ("Colours", self.k_spin),
                ("Method", self.method_combo),
                ("Space", self.space_combo),
                ("Dither", self.dither_combo),
                ("Seed", self.seed_spin),
            )
        ):
            params.addWidget(QtWidgets.QLabel(label), 0, col)
            params.addWidget(widget, 1, col)
        form.addRow("Parameters", params)

        self.shared_check = QtWidgets.QCheckBox(
            "One shared palette for all files (and the frames of animations)",
            objectName="sharedPalette",
        )
        self.existing_combo = QtWidgets.QComboBox(objectName="existing")
        self.existing_combo.addItem("Skip files already done", "skip")
        self.existing_combo.addItem("Overwrite existing results", "force")
        self.existing_combo.addItem("Stop at existing results", "refuse")
        options = QtWidgets.QHBoxLayout()
        options.addWidget(self.shared_check, 1)
        options.addWidget(QtWidgets.QLabel("Existing results"))
        options.addWidget(self.existing_combo)
        form.addRow("", options)

        self.workers_spin = QtWidgets.QSpinBox(
            objectName="workers", minimum=1, maximum=512, value=default_workers()
        )
        self.workers_spin.setToolTip("worker processes of the local cluster (1: no cluster)")
        self.scheduler_edit = QtWidgets.QLineEdit(
            objectName="scheduler", placeholderText="empty: a local cluster on this computer"
        )
        self.scheduler_edit.setToolTip(
            "address of a running Dask scheduler, e.g. tcp://host:8786; its workers must see "
            "the input and output folders under the same paths"
        )
        where = QtWidgets.QHBoxLayout()
        where.addWidget(QtWidgets.QLabel("Local workers"))
        where.addWidget(self.workers_spin)
        where.addSpacing(16)
        where.addWidget(QtWidgets.QLabel("or scheduler"))
        where.addWidget(self.scheduler_edit, 1)
        form.addRow("Run on", where)

        self.table = QtWidgets.QTableWidget(0, 3, objectName="files")
        self.table.setHorizontalHeaderLabels(["File", "Status", "Result"])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)

        self.progress = QtWidgets.QProgressBar(objectName="progress", minimum=0, maximum=1)
        self.progress.setValue(0)
        self.progress.setFormat("%v of %m files")
        self.status_label = QtWidgets.QLabel(objectName="status", wordWrap=True)
        self.status_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.status_label.setOpenExternalLinks(True)
        self.start_button = QtWidgets.QPushButton("Start", objectName="start", default=True)
        self.cancel_button = QtWidgets.QPushButton("Cancel", objectName="cancel", enabled=False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)

        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status_label)
        layout.addLayout(buttons)
        self.in_edit.textChanged.connect(self._update_files)
        self.pattern_edit.textChanged.connect(self._update_files)
        self.out_edit.textChanged.connect(self._update_start)

    def _browse(self, edit: QtWidgets.QLineEdit) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text())
        if folder:
            edit.setText(folder)

    # ------------------------------------------------------------------ state

    @property
    def running(self) -> bool:
        """Whether a batch runs now."""
        return self.worker is not None

    def _update_files(self) -> None:
        if self.running:
            return
        self.files = matching_files(Path(self.in_edit.text().strip()), self.pattern_edit.text())
        self.table.setRowCount(len(self.files))
        for row, path in enumerate(self.files):
            self._set_row(row, path.name, "queued", "")
        self.progress.setMaximum(max(1, len(self.files)))
        self.progress.setValue(0)
        folder = self.in_edit.text().strip()
        if folder and not Path(folder).is_dir():
            self.status_label.setText(f"{folder}: not a folder")
        elif folder:
            self.status_label.setText(f"{len(self.files)} matching files")
        else:
            self.status_label.setText("Choose a folder of images and a folder for the results.")
        self._update_start()

    def _update_start(self) -> None:
        self.start_button.setEnabled(
            not self.running and bool(self.files) and bool(self.out_edit.text().strip())
        )

    def _set_row(self, row: int, name: str, status: str, detail: str) -> None:
        items = [QtWidgets.QTableWidgetItem(t) for t in (name, status, detail)]
        items[1].setForeground(QtGui.QColor(_STATUS_COLORS.get(status, "#000000")))
        items[2].setToolTip(detail)
        for col, item in enumerate(items):
            self.table.setItem(row, col, item)

    def status_of(self, row: int) -> str:
        """Return the status shown for a file ("queued", "done", "failed", ...).

        Parameters
        ----------
        row : int

        Returns
        -------
        status : str
        """
        item = self.table.item(row, 1)
        return item.text() if item is not None else ""

    def argv(self) -> list[str]:
        """Return the ``vq batch`` arguments of the current settings.

        Returns
        -------
        argv : list of str
        """
        argv = ["batch", *(str(p) for p in self.files), "-o", self.out_edit.text().strip()]
        argv += ["-k", str(self.k_spin.value()), "--method", str(self.method_combo.currentData())]
        argv += ["--space", str(self.space_combo.currentData())]
        argv += ["--dither", str(self.dither_combo.currentData())]
        argv += ["--seed", str(self.seed_spin.value()), "--quiet"]
        scheduler = self.scheduler_edit.text().strip()
        if scheduler:
            argv += ["--scheduler", scheduler]
        else:
            argv += ["--jobs", str(self.workers_spin.value())]
        if self.shared_check.isChecked():
            argv.append("--shared-palette")
        existing = self.existing_combo.currentData()
        if existing == "skip":
            argv.append("--skip-existing")
        elif existing == "force":
            argv.append("--force")
        return argv

    # ------------------------------------------------------------------ run

    def start(self) -> None:
        """Start the batch (on a worker thread)."""
        if self.running or not self.files:
            return
        self._update_files()
        argv = self.argv()
        bridge = self._bridge
        self._messages = []

        def task(should_cancel: Callable[[], bool]) -> int:
            from quantize.cli import build_parser
            from quantize.cli.batch import run
            from quantize.distributed import cancel_scope

            args = build_parser().parse_args(argv)

            def stop(fresh: bool = False) -> bool:
                return should_cancel()

            with cancel_scope(stop):
                return run(
                    args,
                    bridge.message.emit,
                    on_report=bridge.report.emit,
                    on_cluster=lambda where, link: bridge.cluster.emit(where, link or ""),
                )

        self.worker = Worker(task, parent=self)
        self.worker.succeeded.connect(self._on_succeeded)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.finished.connect(self._on_thread_finished)
        self.progress.setValue(0)
        self.status_label.setText("Starting…")
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        for w in self._settings_widgets():
            w.setEnabled(False)
        self.worker.start()

    def cancel(self) -> None:
        """Stop the batch: queued files are not started, running ones stop or finish."""
        if self.worker is not None:
            self.worker.request_cancel()
            self.cancel_button.setEnabled(False)
            self.status_label.setText("Cancelling…")

    def _settings_widgets(self) -> list[QtWidgets.QWidget]:
        return [
            self.in_edit,
            self.out_edit,
            self.pattern_edit,
            self.k_spin,
            self.method_combo,
            self.space_combo,
            self.dither_combo,
            self.seed_spin,
            self.shared_check,
            self.existing_combo,
            self.workers_spin,
            self.scheduler_edit,
        ]

    def _on_report(self, row: int, report: dict[str, Any]) -> None:
        if not 0 <= row < len(self.files):
            return
        if report.get("skipped"):
            self._set_row(row, self.files[row].name, "skipped", str(report.get("message", "")))
        elif report.get("written_without_summary"):  # finished as the batch was cancelled
            outs = ", ".join(Path(o).name for o in report["outputs"])
            self._set_row(
                row, self.files[row].name, "done", f"written as it was cancelled → {outs}"
            )
        elif report["ok"]:
            s = report["summary"]
            outs = ", ".join(Path(o["path"]).name for o in s["outputs"])
            psnr = (s.get("metrics") or {}).get("psnr")
            quality = f", PSNR {psnr:.2f} dB" if isinstance(psnr, float) else ""
            frames = f", {s['frames']} frames" if s.get("frames", 1) > 1 else ""
            self._set_row(
                row, self.files[row].name, "done", f"K={s['n_colors']}{quality}{frames} → {outs}"
            )
        else:
            self._set_row(row, self.files[row].name, "failed", str(report.get("message", "")))
        self.progress.setValue(self.progress.value() + 1)

    def _on_cluster(self, where: str, link: str) -> None:
        text = f"Running on a {where}"
        if link:
            text += f' – <a href="{link}">Dask dashboard</a>'
        self.status_label.setText(text)

    def _on_message(self, text: str) -> None:
        self._messages.append(text)

    def _counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in range(self.table.rowCount()):
            counts[self.status_of(row)] = counts.get(self.status_of(row), 0) + 1
        return counts

    def _summary(self) -> str:
        c = self._counts()
        parts = [f"{c.get('done', 0)} done"]
        if c.get("skipped"):
            parts.append(f"{c['skipped']} skipped")
        parts.append(f"{c.get('failed', 0)} failed")
        return ", ".join(parts)

    def _on_succeeded(self, _key: int, code: int) -> None:
        self.status_label.setText(f"Finished: {self._summary()}. Results in {self.out_edit.text()}")
        failed = [
            (self.files[r].name, self.table.item(r, 2).text())
            for r in range(self.table.rowCount())
            if self.status_of(r) == "failed"
        ]
        self.finished.emit(int(code))
        if failed:
            lines = "\n".join(f"{name}: {why}" for name, why in failed[:12])
            more = f"\n… and {len(failed) - 12} more" if len(failed) > 12 else ""
            QtWidgets.QMessageBox.warning(
                self,
                "Batch",
                f"{len(failed)} of {len(self.files)} files could not be quantized; the others "
                f"were.\n\n{lines}{more}",
            )

    def _on_failed(self, _key: int, message: str, _details: str) -> None:
        self.status_label.setText(f"The batch did not run: {message}")
        self.finished.emit(1)
        QtWidgets.QMessageBox.critical(self, "Batch", f"The batch did not run:\n\n{message}")

    def _on_cancelled(self, _key: int) -> None:
        for row in range(self.table.rowCount()):
            if self.status_of(row) == "queued":
                self._set_row(row, self.files[row].name, "not processed", "cancelled")
        self.status_label.setText(f"Cancelled: {self._summary()}; nothing partial was left.")
        self.finished.emit(130)

    def _on_thread_finished(self) -> None:
        if self.worker is not None:
            self.worker.deleteLater()
        self.worker = None
        for w in self._settings_widgets():
            w.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self._update_start()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt override)
        """Cancel a running batch and wait for its thread before closing."""
        if self.worker is not None:
            self.worker.request_cancel()
            self.worker.wait(30_000)
        super().closeEvent(event)
