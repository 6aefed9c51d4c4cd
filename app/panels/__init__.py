"""Panels of VQ Studio's window: parameters and run controls, the compare area."""

from app.panels.compare_panel import ComparePanel
from app.panels.parameters import ParameterPanel
from app.panels.run_panel import RunPanel

__all__ = ["ComparePanel", "ParameterPanel", "RunPanel"]
