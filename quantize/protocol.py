"""The stepping protocol shared by every estimator, the CLI, the GUI and the tests.

Every long computation in :mod:`quantize` is written as a generator that yields one small
:class:`IterationRecord` per iteration and *returns* its final value (the fitted estimator or
the :class:`~quantize.pipeline.QuantizeResult`) through ``StopIteration.value``.  A caller that
wants progress iterates; a caller that only wants the answer calls :func:`drain`.

Cancellation is cooperative: a generator receives a ``should_cancel`` callable and checks it
between iterations and between chunks of a long E-step; when it returns ``True`` the generator
raises :class:`Cancelled`.  Closing the generator (``gen.close()``) also stops it at the next
yield, which is what the GUI worker does.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np

__all__ = [
    "Cancelled",
    "ConvergenceWarning",
    "QuantizeWarning",
    "CancelCallback",
    "IterationRecord",
    "ObjectiveKind",
    "check_cancel",
    "drain",
]

ObjectiveKind = Literal["inertia", "log_likelihood"]
CancelCallback = Callable[[], bool]

T = TypeVar("T")


class QuantizeWarning(UserWarning):
    """Base class of the warnings the engine emits (and also records on its results)."""


class ConvergenceWarning(QuantizeWarning):
    """A fit stopped at ``max_iter`` before meeting its tolerance."""


class Cancelled(Exception):
    """Raised inside a fit generator when its ``should_cancel`` callable returned ``True``."""


@dataclass(frozen=True)
class IterationRecord:
    """What a fit generator yields after each iteration.

    Parameters
    ----------
    restart : int
        Index of the restart (``0 .. n_init - 1``) this iteration belongs to.
    iteration : int
        1-based iteration number within that restart.
    objective : float
        Inertia ``J`` (weighted sum of squared distances) for K-means, which never increases
        within a restart; mean log-likelihood per (weighted) point for a Gaussian mixture, which
        never decreases.
    kind : {"inertia", "log_likelihood"}
        Which quantity ``objective`` is.
    shift : float
        Largest Euclidean move of a centre during this iteration, in the fitting space.
    centers : ndarray of shape (K, D)
        Centres (K-means) or means (GMM) *after* this iteration, float64, in the fitting
        space (RGB 0-255, CIELAB or OKLab).  A copy: safe to keep.
    covariances : ndarray of shape (K, D, D) or None
        Full covariance matrices after this iteration (GMM only; diagonal, spherical and tied
        forms are expanded to full matrices), else ``None``.
    weights : ndarray of shape (K,) or None
        Mixture weights after this iteration (GMM only), else ``None``.
    n_changed : int or None
        Number of (unique, weighted-once) points whose hard assignment changed (K-means), or
        ``None`` where it is not tracked.
    stage : str
        A free label of where the record comes from, e.g. ``"kmeans"``, ``"gmm"``,
        ``"kmeans-init"`` (the K-means fit that initialises a GMM), ``"minibatch"``.
    extra : dict
        Method-specific values.  K-means: ``inertia_after_m`` (J after the M step),
        ``n_relocated`` (empty clusters moved) and ``n_points`` (how many points the
        iteration ran on: grid-cell means in a coarse-to-fine stage, else the points).
    """

    restart: int
    iteration: int
    objective: float
    kind: ObjectiveKind
    shift: float
    centers: np.ndarray
    covariances: np.ndarray | None = None
    weights: np.ndarray | None = None
    n_changed: int | None = None
    stage: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def check_cancel(should_cancel: CancelCallback | None) -> None:
    """Raise :class:`Cancelled` if ``should_cancel`` is given and returns ``True``.

    Parameters
    ----------
    should_cancel : callable or None
        Zero-argument callable polled between iterations and chunks.

    Raises
    ------
    Cancelled
        If a cancel was requested.
    """
    if should_cancel is not None and should_cancel():
        raise Cancelled("cancelled by request")


def drain(gen: Generator[Any, None, T]) -> T:
    """Run a fit generator to the end and return its return value.

    Parameters
    ----------
    gen : generator
        A generator following this module's protocol.

    Returns
    -------
    value
        Whatever the generator returned (fitted estimator or result).
    """
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
