"""VQ Studio desktop application (PySide6 + pyqtgraph), built on :mod:`quantize`."""

from __future__ import annotations

from typing import Any

__all__ = ["MainWindow"]


def __getattr__(name: str) -> Any:
    if name == "MainWindow":
        from app.main_window import MainWindow

        return MainWindow
    raise AttributeError(f"module 'app' has no attribute {name!r}")
