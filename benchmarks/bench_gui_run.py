"""The GUI's default run on a 15-megapixel photo, as a user sees it (issue 10, target 6).

The main window runs offscreen (``QT_QPA_PLATFORM=offscreen``) with its default parameters
on a photo of ``photos.py`` upscaled with Lanczos to about 15 megapixels (none of the cached
wallpapers has 15 MP; ``--photo`` picks one, default ``life``; ``--megapixels`` the size).
For each run it times, from the click on Run:

- **shown**: the window's ``result_shown`` signal, when the palette image, the palette,
  the soft maps and the PNG size are on screen (the metrics are still being computed);
- **finished**: ``run_finished``, when the quality metrics are in the metrics table too.

The first run warms up (imports, first-use allocations) and is not counted.  Then, ``--runs``
times, two runs are timed:

- **first run**: the photo is opened again (a new image, as after File > Open), then run:
  the run finds the image's distinct colours;
- **re-run**: the colour count changes to K + 1 and the image is run again,
  as when a user tries another palette size: the run reuses the distinct colours the
  previous run of the image found, and re-fits (no result is reused).

The medians of both are printed.  ``--dither fs`` times Floyd–Steinberg runs instead of the
default (no dithering).

Run::

    QT_QPA_PLATFORM=offscreen PYTHONPATH=. python benchmarks/bench_gui_run.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import photos  # noqa: E402
from PIL import Image  # noqa: E402


def upscaled(name: str, megapixels: float, folder: Path) -> Path:
    photo = next(p for p in photos.PHOTOS if p.name == name)
    out = folder / f"{name}-{megapixels:g}mp.png"
    with Image.open(photos.png_path(photo)) as im:
        w, h = im.size
        s = (megapixels * 1e6 / (w * h)) ** 0.5
        im.convert("RGB").resize((round(w * s), round(h * s)), Image.LANCZOS).save(
            out, compress_level=1
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--photo", default="life")
    parser.add_argument("--megapixels", type=float, default=15.0)
    parser.add_argument(
        "--dither",
        choices=["none", "fs", "ordered"],
        help="the dithering of the runs (default: the app's); VQ_NUMBA=0 in the environment "
        "times Floyd-Steinberg's numpy form",
    )
    args = parser.parse_args(argv)

    from PySide6 import QtCore, QtWidgets

    from app.main_window import MainWindow
    from quantize._blas import limit_blas_threads

    limit_blas_threads()  # as the app's entry point does
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        path = upscaled(args.photo, args.megapixels, Path(tmp))
        settings = QtCore.QSettings(str(Path(tmp) / "bench.ini"), QtCore.QSettings.Format.IniFormat)
        window = MainWindow(settings)
        window.set_auto_run(False)
        window.resize(1400, 900)
        window.show()
        if not window.open_image(path):
            print(f"could not open {path}", file=sys.stderr)
            return 1
        opened = window.controller.opened()
        h, w = opened.loaded.pixels.shape[:2]
        base = window.params.parameters()
        if args.dither:
            base = replace(base, dither=args.dither)
        print(
            f"{args.photo} upscaled to {w} x {h} ({w * h / 1e6:.1f} MP); default run: "
            f"{base.method}, K = {base.n_colors}, {base.color_space}, dither {base.dither}"
        )

        def timed(params):
            stamps: dict[str, float] = {}
            loop = QtCore.QEventLoop()
            window.result_shown.connect(
                lambda _o, s=stamps: s.setdefault("shown", time.perf_counter())
            )

            def done(output, s=stamps, lp=loop):
                s["finished"] = time.perf_counter()
                s["png"] = len(output.rendering[1]) if output.rendering else 0
                lp.quit()

            window.run_finished.connect(done)
            window.run_failed.connect(lambda _m, lp=loop: lp.quit())
            window.params.set_parameters(params)
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            window.start_run()
            loop.exec()
            cpu = time.process_time() - cpu0
            window.result_shown.disconnect()
            window.run_finished.disconnect(done)
            window.run_failed.disconnect()
            if "finished" not in stamps:
                return None
            return stamps["shown"] - t0, stamps["finished"] - t0, cpu, stamps["png"]

        series: dict[str, list[tuple[float, float, float]]] = {"first run": [], "re-run": []}
        for i in range(args.runs + 1):
            todo = [("warm-up", base)] if i == 0 else []
            if i:
                if not window.open_image(path):  # a new image: its colours are found again
                    print(f"could not open {path}", file=sys.stderr)
                    return 1
                # K, then K + 1: the re-run re-fits (no result is reused)
                todo = [("first run", base), ("re-run", replace(base, n_colors=base.n_colors + 1))]
            for label, params in todo:
                got = timed(params)
                if got is None:
                    print("the run failed", file=sys.stderr)
                    return 1
                shown, finished, cpu, png = got
                print(
                    f"{label if i == 0 else f'{label} {i}':>12}: K = {params.n_colors}, "
                    f"shown {shown:5.2f} s, finished {finished:5.2f} s, CPU {cpu:5.2f} s, "
                    f"PNG {png:,} bytes"
                )
                if i:
                    series[label].append((shown, finished, cpu))
        for label, rows in series.items():
            med = [statistics.median(c) for c in zip(*rows, strict=True)]
            print(
                f"{label}, median of {len(rows)}: shown {med[0]:.2f} s, finished {med[1]:.2f} s, "
                f"CPU {med[2]:.2f} s (target: shown within 3 s)"
            )
        window.shutdown(10_000)
        window.close()
        app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
