"""The checks of ``vq-studio --self-test`` beyond one quantization (run without a display).

They exercise what a bundle might lack when a module was left out of it: the Gaussian
mixture, every export kind, a sweep of K, the image and palette readers, and the main window
itself (built on Qt's offscreen platform, one run through it, the "Explore K" view present).
Each returns a short word for the one-line summary, or raises.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["check_exports", "check_mixture", "check_sweep", "check_window", "deep_checks"]


def check_mixture(pixels: np.ndarray) -> str:
    """Fit 3 soft clusters (the registry's first soft method) and check the responsibilities."""
    from quantize.cluster.registry import METHODS
    from quantize.pipeline import quantize_image

    soft = next((name for name, spec in METHODS.items() if spec.soft), None)
    if soft is None:
        return "no soft method"
    result = quantize_image(pixels, 3, method=soft, max_iter=30, color_space="lab")
    maps = np.stack([result.responsibility_map(k) for k in range(result.n_colors)])
    if not np.allclose(maps.sum(axis=0), 1.0, atol=1e-3):
        raise AssertionError(f"{soft} responsibilities do not sum to 1")
    return soft


def check_exports(pixels: np.ndarray) -> str:
    """Write every export kind, read the PNG and a palette back."""
    from quantize.io.export import KINDS, export_all
    from quantize.io.load import load_image
    from quantize.io.palettes import read_palette
    from quantize.pipeline import quantize_image

    result = quantize_image(pixels, 5, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        written = export_all(result, tmp, "check", list(KINDS))
        back = load_image(Path(tmp) / "check.png")
        if back.pixels.shape[:2] != pixels.shape[:2]:
            raise AssertionError("the exported PNG has the wrong size")
        if len(read_palette(Path(tmp) / "check.gpl")) != result.n_colors:
            raise AssertionError("the exported palette has the wrong size")
    return f"{len(written)} exports"


def check_sweep(pixels: np.ndarray) -> str:
    """Sweep two K and check the size grows with K."""
    from quantize.protocol import drain
    from quantize.sweep import iter_sweep

    sweep = drain(iter_sweep(pixels, [2, 6]))
    if [p.k for p in sweep.points] != [2, 6] or sweep.points[0].psnr > sweep.points[1].psnr:
        raise AssertionError("the sweep of K = 2, 6 is wrong")
    return "sweep"


def check_window(pixels: np.ndarray, timeout_ms: int = 120_000) -> str:
    """Build the main window offscreen, run one quantization through it, close it."""
    from PySide6 import QtCore, QtWidgets

    from app.main_window import MainWindow
    from app.model import RunParameters

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["vq-studio"])
    with tempfile.TemporaryDirectory() as tmp:
        settings = QtCore.QSettings(str(Path(tmp) / "check.ini"), QtCore.QSettings.Format.IniFormat)
        window: Any = MainWindow(settings)
        try:
            window.set_auto_run(False)
            window.params.set_parameters(RunParameters(n_colors=4, n_init=1))
            loop = QtCore.QEventLoop()
            outcome: list[str] = []

            def done(what: str) -> None:
                outcome.append(what)
                loop.quit()

            window.run_finished.connect(lambda _out: done("ok"))
            window.run_failed.connect(done)
            QtCore.QTimer.singleShot(timeout_ms, loop.quit)
            if not window.open_array(pixels, "check.png") or not window.start_run():
                raise AssertionError("the window did not start a run")
            loop.exec()
            if outcome != ["ok"]:
                raise AssertionError(f"the window's run did not finish: {outcome}")
            if window.palette_view.count() != 4 or window.explorer is None:
                raise AssertionError("the window's views are incomplete")
        finally:
            window.shutdown()
            window.close()
            window.deleteLater()
            app.processEvents()
    return "window"


def deep_checks(pixels: np.ndarray) -> list[str]:
    """Run every check on a small image; return their words.

    Parameters
    ----------
    pixels : ndarray of shape (M, N, 3), uint8
        A small image (a thumbnail of the sample).

    Returns
    -------
    words : list of str
    """
    return [check(pixels) for check in (check_mixture, check_exports, check_sweep, check_window)]
