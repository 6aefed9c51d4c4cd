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
