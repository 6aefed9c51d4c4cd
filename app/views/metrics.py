"""Metrics panel: quality, size and run facts of the current result."""

from __future__ import annotations

import math
from typing import Any

from PySide6 import QtCore, QtWidgets

from app.model import format_bytes

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
        self.warnings = QtWidgets.QLabel("")
        self.warnings.setWordWrap(True)
        self.warnings.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.warnings)
        self._values: dict[str, str] = {}

    def clear(self) -> None:
        """Remove all rows."""
        self.table.setRowCount(0)
        self.warnings.setText("")
        self._values = {}

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
                ("Indexed PNG (estimate)", format_bytes(m.png_bytes)),
                ("Original file", format_bytes(m.original_bytes)),
                ("Original ÷ PNG size", _num(m.ratio, ".2f", "×")),
            ]
        else:
            rows.append(("Metrics", f"unavailable ({output.metrics_error})"))
        rows += [
            ("Method", str(result.method)),
            ("K asked → got", f"{result.n_colors_requested} → {len(result.palette)}"),
            ("Colour space", str(result.color_space)),
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
        self.warnings.setText("\n".join(f"⚠ {w}" for w in result.warnings))
