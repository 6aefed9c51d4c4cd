"""Live convergence plot: one curve per restart, the kept run highlighted."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from quantize.protocol import IterationRecord

__all__ = ["ConvergencePlot"]

_LABELS = {
    "inertia": "Inertia J",
    "log_likelihood": "Mean log-likelihood",
}
_AUTO_LABELS = {
    "psnr": "PSNR (dB)",
    "delta_e": "Mean ΔE (CIEDE2000)",
    "bic": "BIC (lower is better)",
    "png_bytes": "Indexed PNG (bytes)",
}
_COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7"]


class ConvergencePlot(QtWidgets.QWidget):
    """Objective against iteration, updated live from :class:`IterationRecord` objects.

    Records are buffered by :meth:`add_record` and drawn at most every 150 ms, so a fast fit
    does not flood the event loop.  Only records of the run's objective kind are plotted (a
    Gaussian mixture's K-means initialisation is counted but not drawn on the
    log-likelihood axis).

    Parameters
    ----------
    parent : QWidget, optional
        Parent widget.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("convergencePlot")
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("bottom", "Iteration")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setToolTip(
            "J: weighted sum of squared distances (K-means, never increases); "
            "mean log-likelihood per pixel (Gaussian mixture, never decreases)"
        )
        self.plot.addLegend(offset=(-10, 10), labelTextColor="k")
        self.plot.getPlotItem().setMenuEnabled(False)
        self.summary = QtWidgets.QLabel("No run yet")
        self.summary.setWordWrap(True)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.summary)

        self._kind: str | None = None
        self._series: dict[int, tuple[list[int], list[float]]] = {}
        self._curves: dict[int, pg.PlotDataItem] = {}
        self._labels: dict[int, pg.LabelItem] = {}
        self._drawn: dict[int, tuple[int, int | None]] = {}
        self._pending = False
        self._skipped = 0
        self._chosen: int | None = None
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)  # repaint at most ~7 times a second during a run
        self._timer.timeout.connect(self._redraw)
        self._auto: str | None = None
        self._auto_points: dict[int, float] = {}
        self._auto_curve: pg.PlotDataItem | None = None
        self._auto_marker: pg.ScatterPlotItem | None = None
        # K-means coarse-to-fine stages: (first iteration, points or cells) per restart
        self._stages: dict[int, list[tuple[int, int]]] = {}
        self._stage_lines: list[pg.InfiniteLine] = []

    def clear(
        self, kind: str | None = None, auto_metric: str | None = None, n_runs: int = 0
    ) -> None:
        """Forget all curves; ``kind`` fixes which objective is plotted.

        Parameters
        ----------
        kind : {"inertia", "log_likelihood"}, optional
            Objective of the coming run.
        auto_metric : {"psnr", "delta_e", "bic"}, optional
            For an automatic choice of K: plot this score against K instead of the
            per-iteration objective.
        n_runs : int, optional
            Restarts the coming run will make.  Their (empty) curves are made now, before
            the worker starts: building plot items is the costliest GUI work of a run, and
            doing it while the engine's threads compete for the interpreter lock would
            stall the event loop.
        """
        self._timer.stop()
        self._auto = auto_metric
        self._auto_points = {}
        if self._auto_curve is not None:
            self.plot.removeItem(self._auto_curve)
            self._auto_curve = None
        if self._auto_marker is not None:
            self.plot.removeItem(self._auto_marker)
            self._auto_marker = None
        # the curves of the coming run's restarts are kept (emptied) rather than made anew:
        # a new curve with its legend entry costs the GUI thread 3-7 ms
        keep = range(n_runs) if auto_metric is None else range(0)
        for restart in [r for r in self._curves if r not in keep]:
            self.plot.removeItem(self._curves.pop(restart))  # (and its legend entry)
            self._labels.pop(restart, None)
        self._clear_stage_lines()
        self._stages.clear()
        self._drawn.clear()
        self._series.clear()
        self._skipped = 0
        self._chosen = None
        self._kind = kind
        if auto_metric is not None:
            self.plot.setLabel("left", _AUTO_LABELS.get(auto_metric, auto_metric))
            self.plot.setLabel("bottom", "Number of colours K")
            self.summary.setText("Searching K…")
            return
        self.plot.setLabel("bottom", "Iteration")
        self.plot.setLabel("left", _LABELS.get(kind or "", "Objective"))
        self._place_legend(kind)
        self.summary.setText("Running…" if kind else "No run yet")
        for restart in range(n_runs):
            self._series[restart] = ([], [])
            self._restyle(self._curve(restart), restart)
            self._curves[restart].setData([], [])

    def add_record(self, record: IterationRecord) -> None:
        """Buffer one record; the plot redraws shortly after.

        Parameters
        ----------
        record : IterationRecord
            A record from the running fit.
        """
        if self._auto is not None:
            self._add_auto(record)
            return
        if self._kind is None:
            self.clear(record.kind)
        if record.kind != self._kind:
            self._skipped += 1
            return
        xs, ys = self._series.setdefault(record.restart, ([], []))
        xs.append(record.iteration)
        ys.append(float(record.objective))
        n_points = record.extra.get("n_points") if isinstance(record.extra, dict) else None
        if n_points is not None:
            stages = self._stages.setdefault(record.restart, [])
            if not stages or stages[-1][1] != n_points:
                stages.append((record.iteration, int(n_points)))
        if not self._timer.isActive():
            self._timer.start()

    def set_chosen(self, restart: int, n_iter: int, converged: bool) -> None:
        """Highlight the kept restart and summarise the run.

        Parameters
        ----------
        restart : int
            Index of the kept restart.
        n_iter : int
            Iterations of the kept run.
        converged : bool
            Whether it met its tolerance.
        """
        self._chosen = restart
        self._redraw()
        best = self._series.get(restart)
        value = f"{best[1][-1]:.6g}" if best and best[1] else "n/a"
        status = "converged" if converged else "stopped at max iterations"
        extra = f"; {self._skipped} initialisation steps not shown" if self._skipped else ""
        stages = self._show_stages(restart)
        counts = self.stage_iterations(restart)
        if len(counts) > 1:  # the iteration limit applies to each stage, not to the total
            iterations = (
                f"{n_iter} iterations in {len(counts)} stages "
                f"({' + '.join(map(str, counts))}; the limit applies to each stage)"
            )
        else:
            iterations = f"{n_iter} iterations"
        self.summary.setText(
            f"{len(self._series)} run(s); kept run {restart + 1}: {iterations}, "
            f"{status}, final {value}{stages}{extra}"
        )

    def stage_iterations(self, restart: int) -> list[int]:
        """Return the iterations of each coarse-to-fine stage of a restart.

        Parameters
        ----------
        restart : int

        Returns
        -------
        counts : list of int
            One per stage (one entry when the fit had no stages).
        """
        xs, _ = self._series.get(restart, ([], []))
        stages = self._stages.get(restart, [])
        if len(stages) < 2 or not xs:
            return [len(xs)]
        firsts = [first for first, _ in stages] + [max(xs) + 1]
        return [b - a for a, b in zip(firsts[:-1], firsts[1:], strict=True)]

    def _place_legend(self, kind: str | None) -> None:
        """Put the legend in the corner the curves leave free.

        J falls from the top left, so its legend goes bottom left (the stage labels sit at
        the top); a log-likelihood rises from the bottom left, so its legend goes top left.
        """
        legend = self.plot.getPlotItem().legend
        if legend is not None:
            legend.setOffset((10, -10) if kind == "inertia" else (10, 10))

    def set_cancelled(self) -> None:
        """Say that the run was cancelled (the curves stay as far as they got)."""
        self._timer.stop()
        self._redraw()
        done = sum(len(xs) for xs, _ in self._series.values()) + len(self._auto_points)
        self.summary.setText(
            f"Cancelled after {done} iteration(s); the curves show the fit up to the cancel"
            if done
            else "Cancelled before the first iteration"
        )

    def stage_lines(self) -> list[float]:
        """Return the x positions of the drawn stage boundaries of the kept run.

        Returns
        -------
        positions : list of float
            One per change of stage (coarse grid cells to finer cells to the points).
        """
        return [float(line.value()) for line in self._stage_lines]

    def _clear_stage_lines(self) -> None:
        for line in self._stage_lines:
            self.plot.removeItem(line)
        self._stage_lines = []

    def _show_stages(self, restart: int) -> str:
        """Mark where the kept run went from coarser to finer points; return a summary."""
        self._clear_stage_lines()
        stages = self._stages.get(restart, [])
        if len(stages) < 2:
            return ""
        names = [f"{n:,} cells" for _, n in stages[:-1]] + [f"{stages[-1][1]:,} colours"]
        xs = self._series.get(restart, ([], []))[0]
        last = max(xs) if xs else 1
        for i, ((first, _), name) in enumerate(zip(stages[1:], names[1:], strict=True)):
            # a label near the right edge goes on the left of its line (not cut off), and
            # each label a step lower than the one before (lines can be close together)
            anchor = (1, 0) if first > 0.8 * last else (0, 0)
            height = 0.92 - 0.12 * (i % 3)
            line = pg.InfiniteLine(
                pos=first - 0.5,
                angle=90,
                pen=pg.mkPen("#9a9a9a", width=1, style=QtCore.Qt.PenStyle.DashLine),
                label=name,
                labelOpts={"position": height, "color": "#555555", "anchors": [anchor, anchor]},
            )
            line.setToolTip(f"from here on the fit runs on {name}")
            self.plot.addItem(line)
            self._stage_lines.append(line)
        return "; coarse to fine on " + " → ".join(names)

    def set_auto_choice(self, k: int, reached: bool, value: float) -> None:
        """Mark the K chosen by an automatic search.

        Parameters
        ----------
        k : int
            Chosen number of colours.
        reached : bool
            Whether the target was met.
        value : float
            Score of the chosen K.
        """
        self._redraw()
        self._auto_marker = pg.ScatterPlotItem(
            [k], [value], size=16, symbol="star", brush="#e15759", pen=pg.mkPen("k")
        )
        self.plot.addItem(self._auto_marker)
        what = _AUTO_LABELS.get(self._auto or "", "score")
        verdict = "target reached" if reached else "target NOT reached even at the largest K"
        self.summary.setText(
            f"Tried {len(self._auto_points)} values of K; chose K={k} ({what} {value:.4g}, "
            f"{verdict if self._auto != 'bic' else 'lowest BIC'})"
        )

    def auto_points(self) -> dict[int, float]:
        """Return the score of every K tried by an automatic search.

        Returns
        -------
        scores : dict of int to float
            K -> score.
        """
        return dict(self._auto_points)

    def _add_auto(self, record: IterationRecord) -> None:
        if record.stage != "auto-k" or "k" not in record.extra:
            self._skipped += 1
            return
        value = record.extra.get("value", record.objective)
        self._auto_points[int(record.extra["k"])] = float(value)
        if not self._timer.isActive():
            self._timer.start()

    def curve_count(self) -> int:
        """Return the number of curves drawn.

        Returns
        -------
        n : int
            One per restart seen so far.
        """
        return len(self._curves)

    def curve_data(self, restart: int) -> tuple[list[int], list[float]]:
        """Return the (iterations, objectives) recorded for ``restart``.

        Parameters
        ----------
        restart : int
            Restart index.

        Returns
        -------
        data : tuple of lists
            Iteration numbers and objective values.
        """
        xs, ys = self._series.get(restart, ([], []))
        return list(xs), list(ys)

    def chosen(self) -> int | None:
        """Return the highlighted restart, if any.

        Returns
        -------
        restart : int or None
            Highlighted restart index.
        """
        return self._chosen

    def _redraw(self) -> None:
        if self._auto is not None:
            ks = sorted(self._auto_points)
            ys = [self._auto_points[k] for k in ks]
            if self._auto_curve is None:
                self._auto_curve = self.plot.plot(
                    ks,
                    ys,
                    pen=pg.mkPen("#4e79a7", width=2),
                    symbol="o",
                    symbolSize=7,
                    symbolBrush="#4e79a7",
                    name=_AUTO_LABELS.get(self._auto, self._auto),
                )
            else:
                self._auto_curve.setData(ks, ys)
            return
        for restart, (xs, ys) in sorted(self._series.items()):
            state = (len(xs), self._chosen)
            if self._drawn.get(restart) == state:
                continue  # nothing new for this restart: skip the costly setData
            self._drawn[restart] = state
            curve = self._curve(restart)
            curve.setData(xs, ys)
            self._restyle(curve, restart)

    def _restyle(self, curve: pg.PlotDataItem, restart: int) -> None:
        """Give ``restart``'s curve and legend entry the pen and name its state calls for."""
        color = _COLORS[restart % len(_COLORS)]
        chosen = self._chosen == restart
        dimmed = self._chosen is not None and not chosen
        pen = pg.mkPen(color, width=3.0 if chosen else 1.5)
        if dimmed:
            pen.setStyle(QtCore.Qt.PenStyle.DashLine)
        name = f"run {restart + 1}" + (" (kept)" if chosen else "")
        curve.setPen(pen)
        label = self._labels.get(restart)
        if label is not None and label.text != name:
            label.setText(name)
        curve.setZValue(10 if chosen else 0)

    def _curve(self, restart: int) -> pg.PlotDataItem:
        """Return the curve of ``restart``, made (with its legend entry) on first use."""
        curve = self._curves.get(restart)
        if curve is None:
            color = _COLORS[restart % len(_COLORS)]
            curve = self.plot.plot(
                [],
                [],
                pen=pg.mkPen(color, width=1.5),
                symbol="o",
                symbolSize=4,
                symbolBrush=color,
                symbolPen=None,
                name=f"run {restart + 1}",
            )
            self._curves[restart] = curve
            legend = self.plot.getPlotItem().legend
            for sample, label in legend.items if legend is not None else []:
                if sample.item is curve:
                    self._labels[restart] = label
        return curve
