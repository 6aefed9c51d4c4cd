"""Colour-space view: sampled pixels on two axes, centres, 2σ ellipses, iteration replay."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.views.onscreen import on_screen
from quantize.cluster.replay import record_labels
from quantize.colorspace import WRGB_WEIGHTS, space_to_rgb
from quantize.protocol import IterationRecord

__all__ = ["ColorSpaceView", "AXIS_NAMES", "ellipse_outline"]

AXIS_NAMES: dict[str, tuple[str, ...]] = {
    "rgb": ("R", "G", "B"),
    "wrgb": tuple(f"{w:g} {c}" if w != 1 else c for w, c in zip(WRGB_WEIGHTS, "RGB", strict=True)),
    "lab": ("L*", "a*", "b*"),
    "oklab": ("L (OKLab)", "a (OKLab)", "b (OKLab)"),
    "grey": ("grey level",),
}
_ELLIPSE_STEPS = 48


def ellipse_outline(mean: np.ndarray, cov: np.ndarray, n_sigma: float = 2.0) -> np.ndarray:
    """Return points on the ``n_sigma`` contour of a 2-D Gaussian, for drawing.

    Parameters
    ----------
    mean : ndarray of shape (2,)
        Centre.
    cov : ndarray of shape (2, 2)
        Covariance (projected onto the two shown axes).
    n_sigma : float, optional
        Contour radius in standard deviations.

    Returns
    -------
    outline : ndarray of shape (49, 2)
        Closed polyline.
    """
    values, vectors = np.linalg.eigh(0.5 * (cov + cov.T))
    radii = n_sigma * np.sqrt(np.clip(values, 0.0, None))
    t = np.linspace(0.0, 2.0 * np.pi, _ELLIPSE_STEPS + 1)
    circle = np.stack([np.cos(t), np.sin(t)], axis=1)
    return mean + (circle * radii) @ vectors.T


def _joined(paths: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Join polylines with NaN gaps so one curve item draws them all."""
    if not paths:
        return np.zeros(0), np.zeros(0)
    parts = []
    for path in paths:
        parts.append(path)
        parts.append(np.full((1, 2), np.nan))
    joined = np.concatenate(parts)
    return joined[:, 0], joined[:, 1]


class ColorSpaceView(QtWidgets.QWidget):
    """Scatter of a pixel sample in the fitting space, coloured by cluster, with a replay.

    Parameters
    ----------
    parent : QWidget, optional
        Parent widget.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("colorSpaceView")
        self.x_axis = QtWidgets.QComboBox(objectName="xAxisCombo")
        self.y_axis = QtWidgets.QComboBox(objectName="yAxisCombo")
        self.slider = QtWidgets.QSlider(
            QtCore.Qt.Orientation.Horizontal, objectName="iterationSlider"
        )
        self.slider.setEnabled(False)
        self.step_label = QtWidgets.QLabel("no run yet")
        self.step_label.setMinimumWidth(220)
        self.show_ellipses = QtWidgets.QCheckBox("2σ ellipses")
        self.show_ellipses.setChecked(True)
        self.show_trails = QtWidgets.QCheckBox("paths")
        self.show_trails.setChecked(True)

        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("x"))
        top.addWidget(self.x_axis)
        top.addWidget(QtWidgets.QLabel("y"))
        top.addWidget(self.y_axis)
        top.addWidget(self.show_ellipses)
        top.addWidget(self.show_trails)
        top.addStretch(1)
        bottom = QtWidgets.QHBoxLayout()
        bottom.addWidget(QtWidgets.QLabel("Iteration"))
        bottom.addWidget(self.slider, 1)
        bottom.addWidget(self.step_label)

        self.plot = pg.PlotWidget(background="w")
        self.plot.getPlotItem().setMenuEnabled(False)
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.points = pg.ScatterPlotItem(size=4, pen=None)
        self.trails = pg.PlotCurveItem(pen=pg.mkPen("#333333", width=1), connect="finite")
        self.ellipses = pg.PlotCurveItem(pen=pg.mkPen("#000000", width=1.5), connect="finite")
        self.centers = pg.ScatterPlotItem(size=14, pen=pg.mkPen("k", width=2), symbol="o")
        for item in (self.points, self.trails, self.ellipses, self.centers):
            self.plot.addItem(item)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)
        layout.addLayout(bottom)

        self._space = "rgb"
        self._sample_points: np.ndarray | None = None
        self._sample_labels: np.ndarray | None = None
        self._point_labels: np.ndarray | None = None
        self._point_xy: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))
        self._palette: np.ndarray | None = None
        self._steps: list[IterationRecord] = []
        self._jitter: np.ndarray | None = None
        self._stale = False  # a run given while hidden, not drawn yet
        self._set_axes("rgb", 3)

        self.x_axis.currentIndexChanged.connect(self._redraw_all)
        self.y_axis.currentIndexChanged.connect(self._redraw_all)
        self.slider.valueChanged.connect(self._redraw_step)
        self.show_ellipses.toggled.connect(self._redraw_step)
        self.show_trails.toggled.connect(self._redraw_step)

    # ------------------------------------------------------------------ public API
    def clear(self) -> None:
        """Remove the data."""
        self._stale = False
        self._sample_points = None
        self._sample_labels = None
        self._steps = []
        for item in (self.points, self.centers):
            item.setData([], [])
        self.trails.setData([], [])
        self.ellipses.setData([], [])
        self.slider.setEnabled(False)
        self.step_label.setText("no run yet")

    def set_data(
        self,
        space: str,
        points: np.ndarray,
        labels: np.ndarray,
        palette: np.ndarray,
        steps: list[IterationRecord],
    ) -> None:
        """Show a run.

        Parameters
        ----------
        space : {"rgb", "lab", "oklab", "grey"}
            Space of ``points`` and of the records' centres.
        points : ndarray of shape (S, D)
            Sampled colours.
        labels : ndarray of shape (S,)
            Cluster of each sample.
        palette : ndarray of shape (K, 3), uint8
            Final sRGB palette (point colours).
        steps : list of IterationRecord
            Records of the kept run, in order (the replay), with centres of shape (K, D).

        Notes
        -----
        While the view is hidden (its tab behind another, as it is by default) the run is
        only kept, and drawn when the view is shown or asked what it shows: drawing 2,500
        points with their cluster colours costs the GUI thread 15-30 ms.
        """
        dims = points.shape[1]
        self._set_axes(space, dims)
        self._space = space
        self._sample_points = np.asarray(points, dtype=np.float64)
        self._sample_labels = np.asarray(labels, dtype=np.int64)
        self._palette = np.asarray(palette, dtype=np.uint8)
        self._steps = list(steps)
        self._jitter = (
            np.random.default_rng(0).uniform(0.0, 1.0, len(points)) if dims == 1 else None
        )
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, len(self._steps) - 1))
        self.slider.setValue(max(0, len(self._steps) - 1))
        self.slider.blockSignals(False)
        self.slider.setEnabled(len(self._steps) > 1)
        self._stale = True
        if on_screen(self):
            self._redraw_all()

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: D102, N802
        super().showEvent(event)
        self.draw_pending()

    def draw_pending(self) -> None:
        """Draw the run given while the view was hidden.

        The window calls this when the view's tab comes to the front.
        """
        if self._stale:
            self._redraw_all()

    def step_count(self) -> int:
        """Return the number of replayable iterations.

        Returns
        -------
        n : int
            Length of the iteration slider.
        """
        return len(self._steps)

    def point_count(self) -> int:
        """Return the number of plotted sample points.

        Returns
        -------
        n : int
            Points in the scatter.
        """
        return 0 if self._sample_points is None else len(self._sample_points)

    def set_step(self, index: int) -> None:
        """Replay up to iteration ``index`` (0-based into the kept run's records).

        Parameters
        ----------
        index : int
            Slider position.
        """
        self.slider.setValue(index)

    def shown_centers(self) -> np.ndarray:
        """Return the centre positions currently drawn (on the two shown axes).

        Returns
        -------
        centers : ndarray of shape (K, 2)
            Drawn centres.
        """
        self.draw_pending()
        x, y = self.centers.getData()
        return np.stack([np.asarray(x), np.asarray(y)], axis=1)

    # ------------------------------------------------------------------ drawing
    def _set_axes(self, space: str, dims: int) -> None:
        names = AXIS_NAMES["grey"] if dims == 1 else AXIS_NAMES.get(space, ("0", "1", "2"))
        if [self.x_axis.itemText(i) for i in range(self.x_axis.count())] == list(names):
            return
        for combo, default in (
            (self.x_axis, 1 if dims > 1 else 0),
            (self.y_axis, 2 if dims > 2 else 0),
        ):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(list(names))
            combo.setCurrentIndex(min(default, len(names) - 1))
            combo.blockSignals(False)
        self.y_axis.setEnabled(dims > 1)

    def _axes(self) -> tuple[int, int | None]:
        dims = 0 if self._sample_points is None else self._sample_points.shape[1]
        x = self.x_axis.currentIndex()
        y = self.y_axis.currentIndex() if dims > 1 else None
        return x, y

    def _project(
        self, values: np.ndarray, jitter: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._axes()
        xs = values[:, x]
        ys = (
            values[:, y]
            if y is not None
            else (jitter if jitter is not None else np.full(len(values), 0.5))
        )
        return xs, ys

    def _redraw_all(self) -> None:
        self._stale = False
        if self._sample_points is None or self._palette is None:
            return
        x, y = self._axes()
        self.plot.setLabel("bottom", self.x_axis.currentText())
        self.plot.setLabel(
            "left", self.y_axis.currentText() if y is not None else "(random jitter)"
        )
        self._point_xy = self._project(self._sample_points, self._jitter)
        self._point_labels = None  # positions changed: the next step re-sets the points
        self._redraw_step()
        self._fix_range()

    def _fix_range(self) -> None:
        """One view for the whole replay: the sample and every centre of every step fit.

        The axes stay put while the slider moves (an autoscaled replay jumps every frame)
        and, when both axes are colour coordinates, have the same scale (distances look as
        the fit measures them).
        """
        assert self._sample_points is not None
        xs, ys = self._point_xy
        if self._steps:
            path = np.concatenate([np.asarray(s.centers, np.float64) for s in self._steps])
            cx, cy = self._project(path, None)
            xs, ys = np.concatenate([xs, cx]), np.concatenate([ys, cy])
        box = self.plot.getPlotItem().getViewBox()
        box.disableAutoRange()
        _, y = self._axes()
        box.setAspectLocked(y is not None, ratio=1.0)
        if len(xs) == 0:
            return
        x0, x1 = float(np.min(xs)), float(np.max(xs))
        y0, y1 = float(np.min(ys)), float(np.max(ys))
        pad_x = 0.05 * (x1 - x0) or 1.0
        pad_y = 0.05 * (y1 - y0) or 1.0
        box.setRange(xRange=(x0 - pad_x, x1 + pad_x), yRange=(y0 - pad_y, y1 + pad_y), padding=0)

    def view_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Return the shown (x, y) ranges.

        Returns
        -------
        ranges : ((x0, x1), (y0, y1))
        """
        self.draw_pending()
        (x0, x1), (y0, y1) = self.plot.getPlotItem().getViewBox().viewRange()
        return (float(x0), float(x1)), (float(y0), float(y1))

    def equal_axes(self) -> bool:
        """Return whether one unit is as long on the x axis as on the y axis.

        Returns
        -------
        equal : bool
        """
        self.draw_pending()
        return self.plot.getPlotItem().getViewBox().state["aspectLocked"] == 1.0

    def _redraw_step(self) -> None:
        if self._stale:  # a new run not drawn yet: its projection first, then this step
            self._redraw_all()
            return
        if self._sample_points is None:
            return
        assert self._palette is not None, "set_data sets the palette with the sample points"
        x, y = self._axes()
        index = self.slider.value()
        if not self._steps:
            return
        step = self._steps[min(index, len(self._steps) - 1)]
        centers = np.asarray(step.centers, dtype=np.float64)
        covariances = step.covariances
        self.step_label.setText(
            f"{index + 1} / {len(self._steps)} (run {step.restart + 1}, {step.stage or step.kind})"
        )
        cx, cy = self._project(centers, None)
        if centers.shape[1] == 3:
            colors = space_to_rgb(centers, self._space)
        else:  # 1-D (grey) fits: colour each centre with its palette entry
            colors = self._palette[: len(centers)]
        self.centers.setData(cx, cy, brush=[pg.mkBrush(*(int(v) for v in c)) for c in colors])
        self._color_points(step, colors)

        trails: list[np.ndarray] = []
        if self.show_trails.isChecked() and y is not None:
            upto = self._steps[: index + 1]
            path = np.stack([np.asarray(s.centers, dtype=np.float64) for s in upto])  # (T, K, D)
            for k in range(path.shape[1]):
                trails.append(np.stack([path[:, k, x], path[:, k, y]], axis=1))
        self.trails.setData(*_joined(trails), connect="finite")

        outlines: list[np.ndarray] = []
        if self.show_ellipses.isChecked() and covariances is not None and y is not None:
            covariances = np.asarray(covariances, dtype=np.float64)
            for k in range(len(centers)):
                sub = covariances[k][np.ix_([x, y], [x, y])]
                outlines.append(ellipse_outline(np.array([cx[k], cy[k]]), sub))
        self.ellipses.setData(*_joined(outlines), connect="finite")

    def _color_points(self, step: IterationRecord, colors: np.ndarray) -> None:
        """Colour each sample point with its cluster's colour at the shown iteration.

        The replayed assignment is the E step under that iteration's parameters
        (:func:`quantize.cluster.replay.record_labels`), so moving the slider shows points changing
        cluster as well as the centres moving.
        """
        points, sample_labels = self._sample_points, self._sample_labels
        assert points is not None and sample_labels is not None, "drawn only while a run is shown"
        if len(self._steps) <= 1:
            labels = sample_labels
        else:
            labels = record_labels(points, step)
        labels = np.clip(labels, 0, len(colors) - 1)
        if self._point_labels is not None and np.array_equal(labels, self._point_labels):
            return
        self._point_labels = labels
        brushes = [pg.mkBrush(int(c[0]), int(c[1]), int(c[2]), 200) for c in colors]
        # one setData with the brushes: pyqtgraph rebuilds its per-point style keys on every
        # setData/setBrush call, the costliest part of showing a result
        xs, ys = self._point_xy
        self.points.setData(xs, ys, brush=[brushes[k] for k in labels])

    def shown_point_labels(self) -> np.ndarray | None:
        """Return the cluster each plotted point is coloured by at the shown iteration.

        Returns
        -------
        labels : ndarray of shape (S,) or None
            ``None`` before any run.
        """
        self.draw_pending()
        return self._point_labels
