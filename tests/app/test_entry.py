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
    import quantize.result

    def broken(*args, **kwargs):
        raise RuntimeError("engine missing")

    monkeypatch.setattr(quantize.result, "iter_quantize_image", broken)
    assert main(["--self-test"]) == 1
    assert "FAILED" in capsys.readouterr().out
