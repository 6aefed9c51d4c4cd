"""One conversion of engine values to strict JSON (no NaN, no numpy types), for every writer."""

from __future__ import annotations

import math
from pathlib import PurePath
from typing import Any

import numpy as np

__all__ = ["json_safe"]


def json_safe(value: Any) -> Any:
    """Convert ``value`` to what :func:`json.dumps` writes with ``allow_nan=False``.

    Dict keys become strings, tuples and arrays lists, numpy scalars Python numbers,
    non-finite floats ``None``, paths strings and any other object its ``str``.

    Parameters
    ----------
    value : object

    Returns
    -------
    safe : dict, list, str, int, float, bool or None
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer | int):
        return int(value)
    if isinstance(value, np.floating | float):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)
