"""The wheel must ship every package of the source tree (pyproject lists them by hand)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


def test_every_source_package_is_listed():
    listed = set(_config()["tool"]["setuptools"]["packages"])
    found = set()
    for top in ("quantize", "app"):
        for init in (ROOT / top).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            found.add(".".join(init.parent.relative_to(ROOT).parts))
    missing = found - listed
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"
    assert "vq_resources" in listed


def test_entry_points_target_existing_functions():
    import importlib

    cfg = _config()["project"]
    targets = list(cfg["scripts"].values()) + list(cfg["gui-scripts"].values())
    assert targets
    for target in targets:
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), target


def test_entry_points_limit_blas_to_one_thread():
    """`vq` runs its engine with one BLAS thread (threadpoolctl), in a fresh process."""
    import subprocess
    import sys

    code = (
        "import numpy, threadpoolctl\n"
        "from quantize.cli import main\n"
        "from quantize.resources import sample_image_path\n"
        "assert main(['info', str(sample_image_path())]) == 0\n"
        "print(max(i['num_threads'] for i in threadpoolctl.threadpool_info()"
        " if i['user_api'] == 'blas'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "1"
