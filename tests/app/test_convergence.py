"""The convergence plot marks the coarse-to-fine stages of the kept K-means run."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore

from app.views.convergence import ConvergencePlot
from quantize.protocol import IterationRecord


def record(restart, iteration, objective, n_points):
    return IterationRecord(
        restart=restart,
        iteration=iteration,
        objective=objective,
        kind="inertia",
        shift=0.0,
        centers=np.zeros((2, 3)),
        stage="kmeans",
        extra={"n_points": n_points},
    )


def test_stage_boundaries_of_the_kept_run_are_marked(qtbot):
    plot = ConvergencePlot()
    qtbot.addWidget(plot)
    plot.clear("inertia", n_runs=2)
    # run 0: 3 iterations on 500 cells, 2 on 2000 cells, 2 on the 9000 points
    sizes = [500] * 3 + [2000] * 2 + [9000] * 2
    for i, n in enumerate(sizes, start=1):
        plot.add_record(record(0, i, 100.0 - i, n))
    for i in range(1, 5):  # run 1: points only
        plot.add_record(record(1, i, 120.0 - i, 9000))
    plot.set_chosen(0, len(sizes), converged=True)
    assert plot.stage_lines() == [3.5, 5.5]
    text = plot.summary.text()
    assert "500 cells → 2,000 cells → 9,000 colours" in text
    # a kept run on the points only has no boundary; a new run clears the old marks
    plot.set_chosen(1, 4, converged=True)
    assert plot.stage_lines() == []
    assert "cells" not in plot.summary.text()
    plot.set_chosen(0, len(sizes), converged=True)
    plot.clear("inertia", n_runs=1)
    assert plot.stage_lines() == []


def _legend_names(plot):
    legend = plot.plot.getPlotItem().legend
    return [label.text for _sample, label in legend.items]


def test_a_new_run_keeps_one_fresh_curve_per_restart(qtbot):
    plot = ConvergencePlot()
    qtbot.addWidget(plot)
    plot.clear("inertia", n_runs=3)
    for restart in range(3):
        for i in range(1, 4):
            plot.add_record(record(restart, i, 50.0 - i - restart, 900))
    plot.set_chosen(2, 3, converged=True)
    assert _legend_names(plot) == ["run 1", "run 2", "run 3 (kept)"]
    kept_curve = plot._curves[0]

    plot.clear("inertia", n_runs=2)  # fewer restarts: the extra curve and its entry go
    assert plot.curve_count() == 2
    assert _legend_names(plot) == ["run 1", "run 2"]
    assert plot._curves[0] is kept_curve  # reused, not made anew
    for restart in range(2):
        assert plot.curve_data(restart) == ([], [])
        xs, _ys = plot._curves[restart].getData()
        assert xs is None or len(xs) == 0  # nothing of the last run is drawn
        pen = plot._curves[restart].opts["pen"]
        assert pen.widthF() == 1.5 and pen.style() == QtCore.Qt.PenStyle.SolidLine
        assert plot._curves[restart].zValue() == 0
    plot.add_record(record(1, 1, 10.0, 900))
    plot.set_chosen(1, 1, converged=True)
    assert _legend_names(plot) == ["run 1", "run 2 (kept)"]
    assert plot.curve_data(1) == ([1], [10.0])

    plot.clear("inertia", auto_metric="psnr")  # a search over K draws no per-restart curves
    assert plot.curve_count() == 0
