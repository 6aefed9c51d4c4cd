"""Layering rules of the code base, checked on the real modules."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import quantize

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("PySide6", "shiboken6", "pyqtgraph", "superqt", "qtpy", "app")


def _engine_modules() -> list[str]:
    names = (m.name for m in pkgutil.walk_packages(quantize.__path__, "quantize."))
    return sorted(name for name in names if not name.endswith("__main__"))


def test_engine_has_modules_to_check():
    # guards the test below against silently checking nothing
    mods = _engine_modules()
    assert "quantize.protocol" in mods
    assert "quantize.cluster.kmeans" in mods  # subpackages are walked too
    assert len(mods) >= 5


def test_engine_never_imports_qt_or_app():
    """Import every quantize module in a fresh interpreter; no Qt or app module may load."""
    mods = _engine_modules()
    code = (
        "import importlib, json, sys\n"
        f"for m in {mods!r}:\n"
        "    importlib.import_module(m)\n"
        "import quantize\n"
        "[getattr(quantize, n) for n in quantize.__all__ if n != '__version__']\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert bad == [], f"quantize pulled in GUI modules: {bad}"


def test_every_public_name_resolves():
    for name in quantize.__all__:
        assert getattr(quantize, name) is not None, name


def test_bundled_resources_present_and_licensed():
    from quantize.resources import icon_path, resources_dir, sample_image_path

    sample = sample_image_path()
    assert sample.is_file()
    assert sample.stat().st_size < 2 * 1024 * 1024
    assert icon_path().is_file()
    licences = (resources_dir() / "LICENSES.md").read_text(encoding="utf-8")
    assert sample.name in licences and "CC0" in licences
    desktop = (resources_dir() / "vq-studio.desktop").read_text(encoding="utf-8")
    assert "Exec=vq-studio" in desktop
