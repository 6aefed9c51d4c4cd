"""How far a run is, for the progress bar: a percentage that only grows, in small steps.

Nothing in a fit says in advance how many iterations it will take (K-means usually stops far
below its limit, a search for K does not know how many K it will try), so the percentage
shown is an estimate that moves smoothly towards a target:

* the fit is the first 80 %: restart ``r`` at iteration ``i`` targets
  ``(r + 1 - exp(-i / tau)) / n_init`` of it (``tau`` a quarter of the iteration limit);
* an automatic choice of K counts the K tried against the tries it expects (a bisection up
  to the largest K, or every K for BIC), the current fit adding part of one try;
* each stage after the fit (rendering, soft maps, metrics) moves the target 5 % further.

Each report moves the shown value a third of the way to its target, by at most
:data:`MAX_STEP` points, so the bar never jumps; the time left is extrapolated from the
time so far once the run has lasted :data:`ETA_AFTER_S`.  No Qt here: the controller calls
:meth:`RunProgress.tick` from its timer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

__all__ = ["ETA_AFTER_S", "MAX_STEP", "RunProgress", "format_eta"]

#: share of the bar for the fit; the stages after it share the rest
FIT_SHARE = 0.80
STAGE_SHARE = 0.05
#: most percentage points the bar moves per report (200 ms)
MAX_STEP = 6.0
#: share of the distance to the target covered per report
EASE = 0.35
#: no time estimate before this many seconds (the first iterations say little)
ETA_AFTER_S = 1.5


def format_eta(seconds: float) -> str:
    """Say roughly how long is left.

    Parameters
    ----------
    seconds : float

    Returns
    -------
    text : str
        ``"about 8 s left"``, ``"about 2 min left"``.
    """
    if seconds < 60:
        return f"about {max(1, int(round(seconds)))} s left"
    return f"about {int(round(seconds / 60))} min left"


class RunProgress:
    """The progress estimate of one run.

    Parameters
    ----------
    params : RunParameters
        The run's parameters (restarts, iteration limit, automatic K and its range).
    iterative : bool, optional
        Whether the method iterates (else each record counts as a tenth of the fit).
    clock : callable, optional
        Seconds, monotonic (tests pass a fake one).
    """

    def __init__(
        self,
        params: Any,
        iterative: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._t0 = clock()
        self._n_init = max(1, int(getattr(params, "n_init", 1) or 1))
        self._tau = max(8.0, float(getattr(params, "max_iter", 100) or 100) / 4.0)
        self._iterative = iterative
        self._auto = str(getattr(params, "auto", "off") or "off")
        k_max = max(2, int(getattr(params, "n_colors", 16) or 16))
        if self._auto == "bic":
            self._expected_tries = float(k_max)  # every K from 1 (patience may stop sooner)
        else:  # doubling up to K, then bisecting the last gap, then one refit
            self._expected_tries = 2.0 * math.log2(k_max) + 1.0
        self._tries = 0
        self._records = 0
        self._fit = 0.0  # of the current fit (or try), in [0, 1)
        self._stages = 0
        self._target = 0.0
        self._shown = 0.0
        self._eta: float | None = None

    @property
    def target(self) -> float:
        """Return the fraction the bar is moving towards, in [0, 1]."""
        return self._target

    def record(self, rec: Any) -> None:
        """Take one :class:`~quantize.protocol.IterationRecord` of the run.

        Parameters
        ----------
        rec : IterationRecord
        """
        self._records += 1
        if getattr(rec, "stage", "") == "auto-k":
            self._tries += 1
            self._fit = 0.0
        elif self._iterative:
            self._fit = 1.0 - math.exp(-float(rec.iteration) / self._tau)
        else:
            self._fit = 1.0 - math.exp(-self._records / 10.0)
        if self._auto != "off":
            done = (self._tries + 0.8 * self._fit) / self._expected_tries
        else:
            done = (int(getattr(rec, "restart", 0)) + self._fit) / self._n_init
        self._raise(FIT_SHARE * min(done, 0.98))

    def stage(self) -> None:
        """Take the start of a stage after the fit (rendering, soft maps, metrics)."""
        self._stages += 1
        self._raise(min(0.99, FIT_SHARE + STAGE_SHARE * self._stages))

    def _raise(self, target: float) -> None:
        self._target = max(self._target, target)

    def tick(self) -> tuple[int, str]:
        """Move the shown value towards the target; return it and the time left.

        Returns
        -------
        percent : int
            0-99, never less than the previous call's.
        eta : str
            ``"about 12 s left"``, or ``""`` while there is no estimate.
        """
        gap = 100.0 * self._target - self._shown
        if gap > 0:
            self._shown = min(99.0, self._shown + min(MAX_STEP, max(EASE * gap, 0.5)))
        elapsed = self._clock() - self._t0
        text = ""
        if elapsed >= ETA_AFTER_S and self._shown >= 3.0:
            left = elapsed * (100.0 - self._shown) / self._shown
            self._eta = left if self._eta is None else 0.7 * self._eta + 0.3 * left
            text = format_eta(self._eta)
        return int(self._shown), text
