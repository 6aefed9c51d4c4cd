"""Start VQ Studio: ``vq-studio [IMAGE]`` or ``python -m app [IMAGE]``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import cast

__all__ = ["main", "self_test"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vq-studio",
        description=(
            "VQ Studio: colour vector quantization with K-means and Gaussian mixtures. "
            "Opens IMAGE (or the bundled sample photo) in the desktop app."
        ),
    )
    parser.add_argument("image", nargs="?", metavar="IMAGE", help="image file to open")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="quantize the bundled sample without a window, print a summary and exit "
        "(0 = ok); works without a display",
    )
    return parser


def self_test() -> int:
    """Load the sample, quantize it through the app's pipeline, check the result.

    No widget is created, so this runs without a display.

    Returns
    -------
    code : int
        0 if every check passed, 1 otherwise.
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import numpy as np

    from app.model import RunJob, RunParameters
    from app.tasks import run_pipeline
    from quantize.io.load import load_image
    from quantize.protocol import drain
    from quantize.resources import sample_image_path

    start = time.perf_counter()
    path = sample_image_path()
    loaded = load_image(path)
    params = RunParameters(n_colors=8, n_init=1)
    output = drain(run_pipeline(RunJob(loaded.pixels, params, loaded.file_size), lambda: False))
    result = output.result
    problems = []
    if result.palette.shape != (8, 3) or result.palette.dtype != np.uint8:
        problems.append(f"palette {result.palette.shape} {result.palette.dtype}")
    if result.labels.shape != loaded.pixels.shape[:2]:
        problems.append(f"labels shape {result.labels.shape}")
    if not np.isclose(float(np.sum(result.proportions)), 1.0):
        problems.append("proportions do not sum to 1")
    if output.quantized.shape[:2] != loaded.pixels.shape[:2]:
        problems.append("palette image has the wrong shape")
    if len(result.history) == 0:
        problems.append("no convergence history")
    psnr = getattr(output.metrics, "psnr", float("nan"))
    if problems:
        print("vq-studio self-test FAILED: " + "; ".join(problems))
        return 1
    from app.explore import thumbnail
    from app.selftest import deep_checks

    # what a bundle missing a module would fail: mixture, exports, sweep, the window itself
    also = deep_checks(thumbnail(loaded.pixels, 96)[:, :, :3].copy())
    elapsed = time.perf_counter() - start
    print(
        f"vq-studio self-test ok: {path.name} {loaded.width}x{loaded.height}, "
        f"{result.method} K={len(result.palette)} in {result.color_space}, "
        f"{len(result.history)} iterations, PSNR {psnr:.2f} dB; {', '.join(also)}; "
        f"{elapsed:.2f} s"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the application.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    code : int
        Process exit status.
    """
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.self_test:
        try:
            return self_test()
        except Exception as exc:  # the installer check needs a clear one-line verdict
            print(f"vq-studio self-test FAILED: {type(exc).__name__}: {exc}")
            return 1

    from app.platform_check import check_display_libraries

    hint = check_display_libraries()  # Qt's own message names neither library nor package
    if hint:
        print(hint, file=sys.stderr)
        return 1

    from PySide6 import QtGui, QtWidgets

    from app.main_window import MainWindow
    from app.settings import APPLICATION, ORGANIZATION

    # (the window's warm-up limits BLAS to one thread, once SciPy's BLAS is loaded too)
    # instance() is typed QCoreApplication; the application of this process is a QApplication
    app = cast(
        QtWidgets.QApplication,
        QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0]]),
    )
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    try:
        from quantize.resources import icon_path

        app.setWindowIcon(QtGui.QIcon(str(icon_path())))
    except Exception:  # an icon is cosmetic; never fail start-up over it
        pass
    window = MainWindow()
    window.show()
    if args.image:
        window.open_image(args.image, wait=False)
    else:
        window.open_sample()
    return int(app.exec())


if __name__ == "__main__":
    import multiprocessing

    multiprocessing.freeze_support()  # a bundled app spawns Dask workers from itself
    sys.exit(main())
