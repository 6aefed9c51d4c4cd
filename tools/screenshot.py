"""Save a screenshot of VQ Studio after a run on the bundled sample photo.

Usage::

    python tools/screenshot.py OUT.png [--method kmeans|gmm] [--colors 16] [--tab convergence]
                                       [--split] [--size 1400x900] [--step N] [--ks 2-256]

``--tab explore`` sweeps the K of ``--ks`` in the "Explore K" view and previews ``--colors``.

Runs offscreen (no display needed), with private settings, so it never changes the user's
remembered layout or parameters.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TABS = ("convergence", "softmaps", "colorspace", "explore", "segmentation")


def take_screenshot(
    out: Path,
    *,
    method: str = "kmeans",
    n_colors: int = 16,
    tab: str = "convergence",
    split: bool = False,
    size: tuple[int, int] = (1400, 900),
    step: int | None = None,
    ks: str = "2-256",
    smooth: float = 0.0,
    min_region: int = 0,
    image: Path | None = None,
) -> Path:
    """Run the sample through the app and save a window screenshot.

    Parameters
    ----------
    out : Path
        PNG file to write.
    method : {"kmeans", "gmm"}, optional
        Estimator.
    n_colors : int, optional
        Palette size.
    tab : {"convergence", "softmaps", "colorspace"}, optional
        Which bottom tab is shown.
    split : bool, optional
        Show the compare view in split-slider mode.
    size : tuple of int, optional
        Window (width, height) in pixels.
    step : int, optional
        Replay the colour-space view at this iteration (0-based) instead of the last.
    ks : str, optional
        The K swept by the "explore" tab.
    smooth, min_region : optional
        Settings of the segmentation panel (shown after its smoothing finished).
    image : Path, optional
        The photo to open instead of the bundled sample.

    Returns
    -------
    out : Path
        The written file.
    """
    from dataclasses import replace

    from PySide6 import QtCore, QtWidgets

    from app.main_window import MainWindow
    from app.model import RunParameters

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0]])
    with tempfile.TemporaryDirectory() as tmp:
        settings = QtCore.QSettings(
            str(Path(tmp) / "settings.ini"), QtCore.QSettings.Format.IniFormat
        )
        window = MainWindow(settings)
        window.set_auto_run(False)
        params = RunParameters()
        if method == "gmm":
            from quantize.cluster.registry import METHODS

            tol = METHODS["gmm"].tol_default()  # what switching the method in the app gives
            params = replace(params, method="gmm", init="kmeans", n_init=1, tol=tol)
        window.params.set_parameters(replace(params, n_colors=n_colors))
        window.resize(*size)
        window.show()
        opened = window.open_sample() if image is None else window.open_image(image)
        if not opened:
            raise RuntimeError(f"could not open {image or 'the sample photo'}: {window.last_error}")
        window.segmentation.set_settings(smooth, min_region)
        if tab == "segmentation":
            window.segmentation_dock.raise_()
        loop = QtCore.QEventLoop()
        outcome: list[str] = []
        segmented = smooth > 0 or min_region > 1 or tab == "segmentation"
        if segmented:  # the run is complete for the screenshot once the panel segmented it
            window.segmentation.smoothed.connect(lambda _v: (outcome.append("ok"), loop.quit()))
            window.segmentation.failed.connect(lambda m, _d: (outcome.append(m), loop.quit()))
        else:
            window.run_finished.connect(lambda _out: (outcome.append("ok"), loop.quit()))
        window.run_failed.connect(lambda msg: (outcome.append(msg), loop.quit()))
        window.start_run()
        loop.exec()
        if outcome != ["ok"]:
            raise RuntimeError(f"the run failed: {outcome}")
        if split:
            window.set_compare_mode("split")
        if step is not None:
            window.color_space.set_step(step)
        dock = {
            "convergence": window.convergence_dock,
            "softmaps": window.soft_maps_dock,
            "colorspace": window.color_space_dock,
            "explore": window.explorer_dock,
            "segmentation": window.segmentation_dock,
        }[tab]
        dock.raise_()
        if tab in ("softmaps", "segmentation"):  # these views need height to be read
            window.resizeDocks([dock], [int(size[1] * 0.55)], QtCore.Qt.Orientation.Vertical)
        if tab == "explore":
            window.resizeDocks([dock], [size[1] * 2 // 5], QtCore.Qt.Orientation.Vertical)
            window.explorer.ks_edit.setText(ks)
            window.explorer.sweep_finished.connect(loop.quit)
            if not window.explorer.start_sweep():
                raise RuntimeError(window.explorer.status.text())
            loop.exec()
            for _ in range(5):
                app.processEvents()
            shown = min(window.explorer.points(), key=lambda p: abs(p.k - n_colors))
            window.explorer.show_preview(shown.k)
        for _ in range(5):
            app.processEvents()
        window.compare.fit()
        app.processEvents()
        out.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(out)):
            raise OSError(f"could not write {out}")
        window.close()
        window.deleteLater()
        app.processEvents()
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    code : int
        0 on success.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--method", choices=("kmeans", "gmm"), default="kmeans")
    parser.add_argument("--colors", type=int, default=16)
    parser.add_argument("--tab", choices=TABS, default="convergence")
    parser.add_argument("--split", action="store_true", help="split-slider compare mode")
    parser.add_argument("--size", default="1400x900", help="window size WIDTHxHEIGHT")
    parser.add_argument("--step", type=int, help="colour-space replay iteration (0-based)")
    parser.add_argument("--ks", default="2-256", help="K values swept by --tab explore")
    parser.add_argument("--smooth", type=float, default=0.0, help="segmentation smoothing")
    parser.add_argument("--min-region", type=int, default=0, help="segmentation min region")
    parser.add_argument("--image", type=Path, help="photo to open instead of the sample")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    path = take_screenshot(
        args.out,
        method=args.method,
        n_colors=args.colors,
        tab=args.tab,
        split=args.split,
        size=(width, height),
        step=args.step,
        ks=args.ks,
        smooth=args.smooth,
        min_region=args.min_region,
        image=args.image,
    )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
