"""Images with nothing to quantize are refused when they open, as the ``vq`` command does."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6 import QtWidgets


def visible_error_boxes(window) -> list[QtWidgets.QMessageBox]:
    return [b for b in window.findChildren(QtWidgets.QMessageBox) if b.isVisible()]


def test_fully_transparent_image_is_refused_at_open(qtbot, window, tmp_path, small_png):
    window.open_image(small_png)
    before = window.image()
    clear = tmp_path / "clear.png"
    Image.fromarray(np.zeros((6, 9, 4), np.uint8), "RGBA").save(clear)
    expected = f"{clear}: image is fully transparent: nothing to quantize"
    # opened on the GUI thread (scripting) ...
    with qtbot.waitSignal(window.error_shown, timeout=10_000) as blocker:
        assert not window.open_image(clear)
    assert blocker.args == ["Cannot open image", expected]
    assert visible_error_boxes(window)[0].text() == expected
    assert window.image() is before
    for box in visible_error_boxes(window):
        box.close()
    # ... and on a worker thread (menus, drag and drop): the same message, at open
    with qtbot.waitSignal(window.error_shown, timeout=10_000) as blocker:
        window.open_image(clear, wait=False)
    assert blocker.args == ["Cannot open image", expected]
    assert window.image() is before
    assert str(clear.resolve()) not in window.settings.recent_files()
    # the image that stayed still runs
    assert window.start_run()
    qtbot.waitUntil(lambda: not window.is_running(), timeout=30_000)
    assert window.output() is not None


def test_fully_transparent_paste_is_refused(qtbot, window):
    with qtbot.waitSignal(window.error_shown, timeout=10_000) as blocker:
        assert not window.open_array(np.zeros((4, 4, 4), np.uint8), "pasted image")
    assert blocker.args[1] == "pasted image: image is fully transparent: nothing to quantize"
    assert window.image() is None or window.image().shape[2] != 4
    # one visible pixel is enough
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[1, 2] = (200, 10, 10, 255)
    assert window.open_array(rgba, "pasted image")
    assert window.image().shape == (4, 4, 4)
