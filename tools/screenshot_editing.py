"""Screenshot of the palette-editing workflow (README): marks kept, a lock, the brush.

Usage::

    python tools/screenshot_editing.py OUT.png [--size 1500x950]

Offscreen, private settings.  The bundled sample photo gets two small marks pasted in (a
red disc and a yellow square, about 0.1 % of the pixels each), K-means with 12 colours keeps
them (small distinct colours), the first swatch is locked, the marks' swatches selected, a
"protect" stroke is painted over the cup, and the palette is sorted by hue.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def marked_sample() -> np.ndarray:
    """Return the sample photo with a red disc and a yellow square pasted in."""
    from quantize.io.load import load_image
    from quantize.resources import sample_image_path

    img = np.array(load_image(sample_image_path()).pixels[..., :3], dtype=np.uint8)
    m, n = img.shape[:2]
    rows, cols = np.ogrid[:m, :n]
    r = max(3, int(np.sqrt(0.001 * m * n / np.pi)))
    disc = (rows - m // 5) ** 2 + (cols - n // 6) ** 2 <= r * r
    img[disc] = (213, 43, 30)
    side = max(3, int(np.sqrt(0.001 * m * n)))
    img[m - m // 4 : m - m // 4 + side, n - n // 5 : n - n // 5 + side] = (250, 215, 0)
    return img


def take(out: Path, size: tuple[int, int]) -> Path:
    """Run the workflow in an offscreen window and save its screenshot to ``out``."""
    from dataclasses import replace

    from PySide6 import QtCore, QtWidgets

    from app.main_window import MainWindow
    from app.model import RunParameters

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0]])
    with tempfile.TemporaryDirectory() as tmp:
        settings = QtCore.QSettings(str(Path(tmp) / "s.ini"), QtCore.QSettings.Format.IniFormat)
        window = MainWindow(settings)
        window.set_auto_run(False)
        window.params.set_parameters(replace(RunParameters(), n_colors=12))
        window.resize(*size)
        window.show()
        loop = QtCore.QEventLoop()
        window.run_finished.connect(lambda _o: loop.quit())
        window.run_failed.connect(lambda _m: loop.quit())
        window.open_array(marked_sample(), "sample with marks")
        window.start_run()
        loop.exec()
        editor = window.palette_view
        editor.select([0])
        editor.toggle_lock()
        editor.sort_combo.setCurrentIndex(editor.sort_combo.findData("hue"))
        loop.exec()
        result = window.controller.output().result
        editor.select(list(result.added))
        panel = window.importance_panel
        window.importance_dock.raise_()
        panel.mode.setCurrentIndex(panel.mode.findData("protect"))
        m, n = result.labels.shape
        panel.begin_stroke()
        last = None
        for t in np.linspace(0, 1, 40):
            here = (m * (0.45 + 0.1 * np.sin(6 * t)), n * (0.35 + 0.3 * t))
            panel.paint(*here, last=last)
            last = here
        panel.end_stroke()
        window.compare.fit()
        for _ in range(5):
            app.processEvents()
        out.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(out)):
            raise OSError(f"could not write {out}")
        window.shutdown(5000)
        window.close()
        window.deleteLater()
        app.processEvents()
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", default="1500x950")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    print(take(args.out, (width, height)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
