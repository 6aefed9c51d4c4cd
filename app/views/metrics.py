"""Metrics panel: quality, size and run facts of the current result."""

from __future__ import annotations

import math
from typing import Any

from PySide6 import QtCore, QtWidgets

from app.model import auto_k_verdict, format_bytes, png_size_verdict

__all__ = ["MetricsView", "format_bytes"]


def _num(value: Any, fmt: str, suffix: str = "") -> str:
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isinf(v):
        return "∞" + suffix
    if math.isnan(v):
        return "–"
    return format(v, fmt) + suffix


class MetricsView(QtWidgets.QWidget):
    """Two-column table of metric names and values.

    Parameters
    ----------
    parent : QWidget, optional
        Parent widget.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("metricsView")
        self.table = QtWidgets.QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Metric", "Value"])
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
        self.stale_label = QtWidgets.QLabel("", objectName="metricsStale")
        self.stale_label.setWordWrap(True)
        self.stale_label.setStyleSheet("color: #b35c00; font-weight: bold;")
        self.stale_label.setVisible(False)
        self.size_label = QtWidgets.QLabel("", objectName="pngSizeLabel")
        self.size_label.setWordWrap(True)
        self.warnings = QtWidgets.QLabel("")
        self.warnings.setWordWrap(True)
        self.warnings.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.stale_label)
        layout.addWidget(self.size_label)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.warnings)
        self._values: dict[str, str] = {}
        self._larger = False

    def clear(self) -> None:
        """Remove all rows."""
        self.table.setRowCount(0)
        self.warnings.setText("")
        self.size_label.setText("")
        self.set_stale("")
        self._values = {}

    def set_stale(self, reason: str) -> None:
        """Say that the figures are from an earlier run (``""`` clears).

        Parameters
        ----------
        reason : str
            E.g. ``"previous run: K-means, 16 colours"``.
        """
        self.stale_label.setText(f"⚠ {reason}" if reason else "")
        self.stale_label.setVisible(bool(reason))

    def png_larger(self) -> bool:
        """Return whether the shown result's PNG is larger than the original file.

        Returns
        -------
        larger : bool
        """
        return self._larger

    def values(self) -> dict[str, str]:
        """Return the displayed rows.

        Returns
        -------
        rows : dict of str to str
            Metric name -> displayed value.
        """
        return dict(self._values)

    def set_output(self, output: Any) -> None:
        """Show the metrics and run facts of a finished run.

        Parameters
        ----------
        output : app.model.RunOutput
            The finished run.
        """
        result = output.result
        m = output.metrics
        rows: list[tuple[str, str]] = []
        if m is not None:
            rows += [
                ("PSNR", _num(m.psnr, ".2f", " dB")),
                ("SSIM", _num(m.ssim, ".4f")),
                ("ΔE mean (CIEDE2000)", _num(m.delta_e_mean, ".2f")),
                ("ΔE 95th percentile", _num(m.delta_e_p95, ".2f")),
                ("MSE", _num(m.mse, ".2f")),
                ("Colours in → out", f"{m.unique_before:,} → {m.unique_after:,}"),
                ("Bits per pixel", _num(m.bits_per_pixel, ".2f")),
                ("Indexed PNG", f"{format_bytes(m.png_bytes)} ({m.png_bytes:,} bytes)"),
                (
                    "Original file",
                    "–"
                    if not m.original_bytes
                    else f"{format_bytes(m.original_bytes)} ({m.original_bytes:,} bytes)",
                ),
                ("Original ÷ PNG size", _num(m.ratio, ".2f", "×")),
            ]
        elif getattr(output, "metrics_pending", False):
            rows.append(("Metrics", "computing…"))
        else:
            rows.append(("Metrics", f"unavailable ({output.metrics_error})"))
        rows += [
            ("Method", str(result.method)),
            ("K asked → got", f"{result.n_colors_requested} → {len(result.palette)}"),
            ("Colour space", str(result.color_space)),
            (
                "Palette fit",
                "K-means means"
                if getattr(result, "error_power", 2.0) >= 2.0
                else f"polished, power {result.error_power:g}",
            ),
            ("Iterations (kept run)", str(result.n_iter)),
            ("Converged", "yes" if result.converged else "no"),
            ("Seed", str(result.seed)),
            ("Fit time", _num(result.elapsed_s, ".2f", " s")),
            ("Run time (all)", _num(output.elapsed_s, ".2f", " s")),
        ]
        self.table.setRowCount(len(rows))
        for row, (name, value) in enumerate(rows):
            self.table.setItem(row, 0, QtWidgets.QTableWidgetItem(name))
            self.table.setItem(row, 1, QtWidgets.QTableWidgetItem(value))
        self._values = dict(rows)
        self.set_stale("")
        size, self._larger = png_size_verdict(output)
        self.size_label.setText(size)
        self.size_label.setStyleSheet(
            "color: #c62828; font-weight: bold;" if self._larger else "font-weight: bold;"
        )
        if self._larger:
            self.size_label.setToolTip(
                "The indexed PNG is larger than the original file: fewer colours or no "
                "dithering make it smaller (photos are often best kept as JPEG)"
            )
        notes = list(result.warnings)
        missed = auto_k_verdict(output)
        if missed:
            notes.insert(0, missed)
        if self._larger:
            notes.append("the indexed PNG is larger than the original file")
        self.warnings.setText("\n".join(f"⚠ {w}" for w in notes))
