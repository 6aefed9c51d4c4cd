"""Fixtures for the GUI tests: offscreen Qt, private settings, small images, leak checks."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from apphelpers import FAST, make_image  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6 import QtCore, QtWidgets  # noqa: E402


@pytest.fixture
def small_png(tmp_path: Path) -> Path:
    path = tmp_path / "small.png"
    Image.fromarray(make_image()).save(path)
    return path


@pytest.fixture
def qsettings(tmp_path: Path) -> QtCore.QSettings:
    """A private INI file per test, so tests never share remembered state."""
    return QtCore.QSettings(str(tmp_path / "vq-studio-test.ini"), QtCore.QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, qsettings):
    import sys

    from app.main_window import MainWindow

    switch_interval = sys.getswitchinterval()
    win = MainWindow(qsettings)
    win.set_auto_run(False)
    win.params.set_parameters(FAST)
    qtbot.addWidget(win)
    win.show()
    yield win
    assert win.shutdown(5000), "a worker thread did not stop"
    assert not win.is_running()
    assert sys.getswitchinterval() == switch_interval  # restored after the runs
    for thread in win.findChildren(QtCore.QThread):
        assert thread.isFinished() or not thread.isRunning()
    # close any error boxes so no top-level widget outlives the test
    for box in win.findChildren(QtWidgets.QMessageBox):
        box.close()


@pytest.fixture(autouse=True)
def _no_leaked_top_levels(qapp):
    """Every top-level widget created by a test must be gone after it."""
    before = {id(w) for w in QtWidgets.QApplication.topLevelWidgets()}
    yield
    for _ in range(3):
        QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)
        QtWidgets.QApplication.processEvents()
    leaked = [
        w for w in QtWidgets.QApplication.topLevelWidgets() if id(w) not in before and w.isVisible()
    ]
    assert not leaked, f"visible top-level widgets leaked: {leaked}"
