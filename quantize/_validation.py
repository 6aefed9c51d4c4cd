"""Input validation shared by the estimators.

Public entry points validate once (finite values, shapes, dtypes, seeds) and hand clean
float64 arrays to private kernels, which assume valid input and do not check again.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from quantize.protocol import QuantizeWarning

__all__ = [
    "check_points",
    "check_positive_float",
    "check_positive_int",
    "check_seed",
    "warn_and_record",
]


def check_points(
    X: Any, weights: Any = None, *, name: str = "X", min_points: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Validate weighted points.

    Parameters
    ----------
    X : array_like of shape (N, D) or (N,)
        Points; a 1-D array is read as ``N`` one-dimensional points.
    weights : array_like of shape (N,) or None
        Non-negative finite weights (pixel counts); ``None`` means all ones.
    name : str
        Name used in error messages.
    min_points : int
        Minimum number of points.

    Returns
    -------
    X : ndarray of shape (N, D), float64, C-contiguous
        A new array when a conversion was needed; the caller's array is never modified.
    weights : ndarray of shape (N,), float64

    Raises
    ------
    ValueError
        On wrong shapes, NaN or infinite values, negative weights or a zero total weight.
    """
    arr = np.asarray(X)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real, got complex values")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {arr.shape}")
    if arr.shape[0] < min_points:
        raise ValueError(f"{name} needs at least {min_points} point(s), got {arr.shape[0]}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} needs at least one feature, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if weights is None:
        w = np.ones(arr.shape[0], dtype=np.float64)
    else:
        w = np.asarray(weights)
        if not (np.issubdtype(w.dtype, np.number) or w.dtype == np.bool_) or np.iscomplexobj(w):
            raise ValueError(f"weights must be real numbers, got dtype {w.dtype}")
        w = np.ascontiguousarray(w, dtype=np.float64).reshape(-1)
        if w.shape[0] != arr.shape[0]:
            raise ValueError(
                f"weights has {w.shape[0]} entries but {name} has {arr.shape[0]} points"
            )
        if not np.isfinite(w).all():
            raise ValueError("weights contain NaN or infinite values")
        if (w < 0).any():
            raise ValueError("weights must be non-negative")
    if not w.sum() > 0:
        raise ValueError("the total weight must be positive")
    return arr, w


def check_seed(seed: Any) -> np.random.Generator:
    """Turn ``seed`` into a :class:`numpy.random.Generator`.

    Parameters
    ----------
    seed : int, numpy.random.Generator or None
        An integer seed, an existing generator (used as is) or ``None`` (seed 0, so that
        results stay reproducible by default).

    Returns
    -------
    rng : numpy.random.Generator
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        seed = 0
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer or a numpy Generator, got {seed!r}")
    if int(seed) < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return np.random.default_rng(int(seed))


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Validate an integer parameter.

    Parameters
    ----------
    value : int
        The value to check.
    name : str
        Parameter name for the error message.
    minimum : int
        Smallest allowed value.

    Returns
    -------
    value : int
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive_float(value: Any, name: str, *, allow_zero: bool = True) -> float:
    """Validate a finite non-negative (or positive) float parameter.

    Parameters
    ----------
    value : float
        The value to check.
    name : str
        Parameter name for the error message.
    allow_zero : bool
        Whether zero is allowed.

    Returns
    -------
    value : float
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>=' if allow_zero else '>'} 0, got {value!r}")
    return v


def warn_and_record(
    store: list[str], message: str, category: type[Warning] = QuantizeWarning
) -> None:
    """Emit ``message`` as a warning and append it to ``store``.

    Parameters
    ----------
    store : list of str
        The estimator's ``warnings_`` list.
    message : str
        What happened, in words a user understands.
    category : type
        Warning class (a :class:`~quantize.protocol.QuantizeWarning` subclass).
    """
    store.append(message)
    warnings.warn(message, category, stacklevel=3)
