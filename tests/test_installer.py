"""Build the one-folder bundle and run its self-check (slow: a few minutes, runs in CI)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.mark.skipif(
    importlib.util.find_spec("PyInstaller") is None,
    reason="PyInstaller is not installed (pip install '.[installer]')",
)
def test_bundle_builds_and_self_test_passes(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "installer" / "build.py"),
            "--dist",
            str(tmp_path / "dist"),
            "--work",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    bundle = tmp_path / "dist" / "vq-studio"
    exe = bundle / ("vq-studio.exe" if sys.platform == "win32" else "vq-studio")
    assert exe.is_file()
    # resources travel with the bundle
    assert list(bundle.rglob("sample-coffee.png"))
    assert list(bundle.rglob("LICENSES.md"))
    assert "self-test passed" in proc.stdout
    # what the app never loads is left out: at most 250 MiB on disk (issue 14; 448 MiB before)
    spec = importlib.util.spec_from_file_location("vq_build", ROOT / "installer" / "build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    size = build.bundle_size(bundle)
    assert size <= 250 * 2**20, f"bundle is {size / 2**20:.0f} MiB"
    # what the self-test says is a real quantization summary, not just "ok"
    assert "PSNR" in proc.stdout and "K=" in proc.stdout
