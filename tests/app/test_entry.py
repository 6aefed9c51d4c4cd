"""``python -m app``: --help, --self-test without a display."""

from __future__ import annotations

import os
import subprocess
import sys

from app.__main__ import main


def test_help_lists_options(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "--self-test" in out and "IMAGE" in out


def test_self_test_runs_headless_in_a_fresh_process():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)  # the self-test must not need a display or this variable
    proc = subprocess.run(
        [sys.executable, "-m", "app", "--self-test"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vq-studio self-test ok:")
    assert "K=8" in lines[0] and "PSNR" in lines[0]


def test_self_test_reports_failure(monkeypatch, capsys):
    import quantize.pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("engine missing")

    monkeypatch.setattr(quantize.pipeline, "iter_quantize_image", broken)
    assert main(["--self-test"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_main_opens_the_given_image_and_runs(qapp, tmp_path, small_png):
    from PySide6 import QtCore, QtWidgets

    from app.main_window import MainWindow

    # keep the real user settings untouched: the app's INI file goes to tmp_path
    QtCore.QSettings.setPath(
        QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope, str(tmp_path)
    )
    seen = {}

    def poll():
        windows = [w for w in QtWidgets.QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        if windows and windows[0].output() is not None:
            seen["title"] = windows[0].windowTitle()
            seen["k"] = len(windows[0].output().result.palette)
            windows[0].close()
            windows[0].deleteLater()
            timer.stop()

    timer = QtCore.QTimer()
    timer.timeout.connect(poll)
    timer.start(50)
    safety = QtCore.QTimer()  # never hang the suite if the run does not finish
    safety.setSingleShot(True)
    safety.timeout.connect(QtWidgets.QApplication.closeAllWindows)
    safety.start(60_000)
    try:
        assert main([str(small_png)]) == 0
    finally:
        timer.stop()
        safety.stop()
    assert seen["title"].startswith("small.png")
    assert seen["k"] == 16  # the shared defaults, run automatically on opening
    assert list(tmp_path.rglob("*.ini"))  # settings were written to the redirected place


def test_signal_emits_keep_singleton_refcounts():
    """The installed binding must not eat references to True/None on emits and void calls.

    PySide6 6.12.0 on CPython < 3.12 does (the interpreter then aborts); pyproject.toml keeps
    it out, and this fails if an affected build is installed all the same.
    """
    import sys

    from PySide6 import QtCore

    import app._compat  # noqa: F401

    class Probe(QtCore.QObject):
        ping = QtCore.Signal()

    probe, timer = Probe(), QtCore.QTimer()
    before_true, before_none = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(5000):
        probe.ping.emit()
        timer.setInterval(5)
    assert sys.getrefcount(True) >= before_true - 100
    assert sys.getrefcount(None) >= before_none - 100
