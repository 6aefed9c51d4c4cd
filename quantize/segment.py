"""Spatially coherent segmentation: a Potts prior solved by mean field, and a small-region merge.

A colour clustering labels every pixel on its colour alone, so noise and texture leave specks.
Two steps make the labels coherent without refitting the colour model:

**Potts prior, mean-field inference** (``strength`` > 0).  The fitted model gives each pixel
``i`` and class ``k`` a log-likelihood ``L_ik`` (for the Gaussian mixture ``log pi_k +
log N(x_i | mu_k, Sigma_k)``, the quantity its E step turns into responsibilities).  A Potts
Markov random field ``p(z) ∝ exp(beta * sum_<ij> [z_i = z_j])`` over the 4-neighbourhood
rewards neighbours with the same class; ``beta`` is ``strength``, in nats per agreeing
neighbour.  The exact posterior of that field is intractable, so it is approximated by a
factorised ``q(z) = prod_i q_i(z_i)`` minimising the mean-field free energy

    F(q) = - sum_ik q_ik L_ik - beta sum_<ij> sum_k q_ik q_jk + sum_ik q_ik log q_ik ,

whose minimiser over one site, the others fixed, is ``q_i = softmax_k(L_ik + beta sum_{j~i}
q_jk)``.  This is the EM picture of the mixture kept intact: with ``beta = 0`` it is exactly
the E step's responsibilities, and with ``beta > 0`` the responsibilities become the
posterior under the model *and* the prior, still a distribution per pixel (they sum to 1).
The sites are updated in a checkerboard order: no two sites of one colour are neighbours, so
updating all of one colour at once is an exact block-coordinate step and ``F`` never
increases (the tests check it per sweep); a plain simultaneous update can oscillate.
Alternatives weighed: graph cuts give a hard MAP labelling only (no soft maps) and need a
compiled dependency; ICM is hard too and gets stuck sooner; a bilateral/median filter of the
labels has no probabilistic meaning and cannot say how sure a pixel is.

For the hard methods (K-means, mini-batch, 1-D, a given palette) there are no
responsibilities, so the soft assignments are derived from the distances, as in the limit
K-means comes from: an isotropic Gaussian per centre with one shared variance and equal
weights, ``L_ik = -||x_i - c_k||^2 / (2 sigma^2)``, with ``sigma^2`` the pooled
within-cluster variance per dimension of the fit (``J / (n D)``, J the inertia).  The scale
therefore comes from the data: a pixel twice as far from a centre as the typical member is
``e^2`` times less likely.

**Small-region merge** (``min_region`` = N > 0).  Connected regions (4-connectivity, see
:mod:`quantize.regions`) of fewer than N pixels are given the class of their best neighbour:
the neighbouring class with the highest total responsibility over the region's pixels (the
smoothed ones when the prior ran), ties broken by the longer shared border.  Smaller
regions go first: a region only merges into a larger neighbour (by pixels, then id), and
never into one that changes class in the same pass, so each pass removes at least one region
and the loop ends.  A region with no neighbour (alone in a transparent area) is kept.  Its
pixels' responsibilities become 1 for the new class (the merge is a hard decision; the
labels, masks and soft maps agree).

Memory: the prior keeps ``(M, N, K)`` float32 responsibilities (``4 K`` bytes per pixel;
64 MiB for one megapixel at K = 16), which the smoothed result keeps for its soft maps; the
temporaries of a sweep are bounded by a working-memory budget.  :func:`smoothing_bytes`
estimates the whole, and :func:`segment_result` refuses a job above ``max_memory_mib``
(default :data:`MAX_MEMORY_MIB`) with :class:`SmoothingMemoryError` before allocating any of
it, naming the size and what to change (the small-region merge alone needs no per-pixel
responsibilities).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from quantize._chunks import DEFAULT_WORKING_MEMORY_MIB, chunk_size, iter_chunks
from quantize.protocol import CancelCallback, check_cancel
from quantize.regions import label_regions, region_adjacency

if TYPE_CHECKING:  # pragma: no cover
    from quantize.features import ColorTable
    from quantize.pipeline import QuantizeResult

__all__ = [
    "DEFAULT_STRENGTH",
    "MAX_MEMORY_MIB",
    "SmoothingMemoryError",
    "smoothing_bytes",
    "Segmentation",
    "SmoothingSettings",
    "class_log_likelihoods",
    "free_energy",
    "mean_field",
    "merge_small_regions",
    "hard_variance",
    "pooled_variance",
    "segment_result",
    "soft_assignments",
    "assignment_uncertainty",
]

#: ``--smooth`` without a value: 1 nat per agreeing neighbour.  On the six noisy scenes of
#: benchmarks/bench_segmentation.py this lifts the median ARI from 0.98 to above 0.995
#: (see benchmarks/README.md) while thin regions a few pixels wide survive.
DEFAULT_STRENGTH = 1.0
#: log-likelihoods more than this many nats below a pixel's best class are clipped: their
#: probability (< 1e-35) is zero in float32 anyway, and the sweeps stay finite
_LOG_FLOOR = -80.0
#: the mean field stops when at most this fraction of the sites moved by more than ``tol``
_STILL_FRACTION = 1e-3
#: largest estimate of :func:`smoothing_bytes` (MiB) that :func:`segment_result` goes ahead
#: with by default (a 12-megapixel photo needs about 2 GiB at K = 32 and 3.3 to 4.1 GiB at
#: K = 64, by its number of distinct colours; 100 megapixels at K = 16 about 8 GiB)
MAX_MEMORY_MIB = 4096.0


class SmoothingMemoryError(MemoryError):
    """A smoothing job would need more memory than allowed; raised before allocating it."""


def smoothing_bytes(
    shape: tuple[int, int],
    n_distinct: int,
    k: int,
    prior: bool,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
) -> int:
    """Estimate the memory a smoothing job holds at its peak (bytes).

    The prior's padded ``(M + 2, N + 2, K)`` float32 responsibilities (kept by the
    result), about 48 bytes per pixel of masks, indices, region ids and labels, the
    ``(U, K)`` float32 log-likelihoods of the distinct colours (and their posteriors for the
    merge without the prior), and the temporaries of one chunk (``working_memory_mib``).
    The small-region merge alone needs no per-pixel responsibilities; its region tables
    grow with the number of regions, more than this on a label map of mostly one-pixel
    regions.

    Parameters
    ----------
    shape : (M, N)
        Image size.
    n_distinct : int
        Number of distinct colours ``U``.
    k : int
        Number of classes.
    prior : bool
        Whether the Potts prior runs (``strength > 0``).
    working_memory_mib : float, optional
        Budget of one band's temporaries in the sweeps.

    Returns
    -------
    nbytes : int
    """
    m, n = (int(v) for v in shape)
    total = 48 * m * n + 4 * int(n_distinct) * int(k) + int(working_memory_mib * 2**20)
    if prior:
        total += 4 * (m + 2) * (n + 2) * int(k)
    else:  # the merge takes the colours' posteriors instead of the responsibilities
        total += 4 * int(n_distinct) * int(k)
    return total


def _size(nbytes: float) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.0f} MiB"


def _check_memory(
    shape: tuple[int, int],
    n_distinct: int,
    k: int,
    prior: bool,
    limit_mib: float | None,
    working_memory_mib: float,
) -> None:
    if limit_mib is None:
        limit_mib = MAX_MEMORY_MIB  # read now: a caller (or a test) may have changed it
    need = smoothing_bytes(shape, n_distinct, k, prior, working_memory_mib)
    if need <= float(limit_mib) * 2**20:
        return
    m, n = shape
    raise SmoothingMemoryError(
        f"smoothing a {n}x{m} image with K = {k} would need about {_size(need)} "
        f"(4 K = {4 * k} bytes per pixel for the responsibilities), more than the "
        f"{_size(float(limit_mib) * 2**20)} allowed: use fewer colours or a smaller image"
        + (", or the small-region merge alone (strength 0)" if prior else "")
    )


@dataclass(frozen=True)
class SmoothingSettings:
    """How a result was made spatially coherent.

    Parameters
    ----------
    strength : float
        Potts coupling ``beta`` in nats per agreeing neighbour (0: no prior).
    min_region : int
        Regions smaller than this many pixels are merged into a neighbour (0 or 1: none).
    max_sweeps : int
        Cap on mean-field sweeps.
    tol : float
        Stop when no responsibility moved by more than this in a sweep (or at most one
        site in 1 000 did).
    """

    strength: float = 0.0
    min_region: int = 0
    max_sweeps: int = 30
    tol: float = 1e-2

    def __post_init__(self) -> None:
        s = float(self.strength)
        if not np.isfinite(s) or s < 0:
            raise ValueError(f"smoothing strength must be a finite number >= 0, got {s!r}")
        if isinstance(self.min_region, bool) or int(self.min_region) != self.min_region:
            raise ValueError(f"min_region must be an integer >= 0, got {self.min_region!r}")
        if self.min_region < 0:
            raise ValueError(f"min_region must be an integer >= 0, got {self.min_region!r}")
        if int(self.max_sweeps) < 1:
            raise ValueError(f"max_sweeps must be >= 1, got {self.max_sweeps!r}")
        if not float(self.tol) > 0:
            raise ValueError(f"tol must be > 0, got {self.tol!r}")
        object.__setattr__(self, "strength", s)
        object.__setattr__(self, "min_region", int(self.min_region))

    @property
    def active(self) -> bool:
        """Whether these settings change anything."""
        return self.strength > 0 or self.min_region > 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (the sidecar and model files record it).

        Returns
        -------
        settings : dict
        """
        return {
            "strength": self.strength,
            "min_region": self.min_region,
            "max_sweeps": int(self.max_sweeps),
            "tol": float(self.tol),
        }

    @classmethod
    def from_dict(cls, data: Any) -> SmoothingSettings:
        """Read :meth:`to_dict` output.

        Parameters
        ----------
        data : dict

        Returns
        -------
        settings : SmoothingSettings

        Raises
        ------
        ValueError
            Not a mapping, or a value out of range.
        """
        if not isinstance(data, dict):
            raise ValueError("smoothing settings must be an object")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(eq=False)
class Segmentation:
    """What the smoothing did to a result (kept on :attr:`QuantizeResult.segmentation`).

    Attributes
    ----------
    settings : SmoothingSettings
    responsibilities : ndarray of shape (M, N, K), float32, or None
        Mean-field responsibilities (each opaque pixel's sum to 1, transparent pixels 0);
        ``None`` when ``strength`` is 0 (the model's own responsibilities apply).
    reassigned : ndarray of shape (M, N), bool, or None
        Pixels whose class the small-region merge changed (their responsibility is 1 for
        the new class).
    energies : ndarray of shape (n_sweeps + 1,), float64
        Free energy before the first sweep and after each (empty unless tracked).
    n_sweeps : int
    converged : bool
    n_merged : int
        Regions merged away.
    elapsed_s : float
    """

    settings: SmoothingSettings
    responsibilities: np.ndarray | None
    reassigned: np.ndarray | None
    energies: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_sweeps: int = 0
    converged: bool = True
    n_merged: int = 0
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (settings, sweeps, merged regions).

        Returns
        -------
        summary : dict
        """
        return {
            **self.settings.to_dict(),
            "n_sweeps": int(self.n_sweeps),
            "converged": bool(self.converged),
            "n_merged_regions": int(self.n_merged),
        }


# --------------------------------------------------------------------------------------
# the per-colour log-likelihoods
# --------------------------------------------------------------------------------------


def pooled_variance(
    points: np.ndarray, weights: np.ndarray, centers: np.ndarray, labels: np.ndarray
) -> float:
    """Pooled within-cluster variance per dimension, ``J / (n D)``.

    Parameters
    ----------
    points : ndarray of shape (U, D)
    weights : ndarray of shape (U,)
        Pixel counts.
    centers : ndarray of shape (K, D)
    labels : ndarray of shape (U,), integer

    Returns
    -------
    sigma2 : float
        At least a tiny floor (an image of at most K colours has J = 0).
    """
    pts = np.asarray(points, np.float64)
    w = np.asarray(weights, np.float64)
    diff = pts - np.asarray(centers, np.float64)[np.asarray(labels, np.intp)]
    inertia = float(w @ np.einsum("ij,ij->i", diff, diff))
    total = max(float(w.sum()), 1.0)
    scale = float(np.abs(pts).max()) if pts.size else 1.0
    return max(inertia / (total * pts.shape[1]), 1e-6 * max(scale, 1e-3) ** 2)


def hard_variance(result: QuantizeResult) -> float:
    """Return the shared variance ``sigma^2`` of a hard fit's soft assignments, ``J / (n D)``.

    From the estimator's ``inertia_`` when it has one (no pass over the colours), else
    :func:`pooled_variance`.

    Parameters
    ----------
    result : QuantizeResult
        Unsmoothed.

    Returns
    -------
    sigma2 : float
    """
    model = result.model
    centers = np.asarray(model.cluster_centers_, np.float64)
    points = result.points
    floor = 1e-6 * max(float(np.abs(centers).max()) if centers.size else 1.0, 1e-3) ** 2
    inertia = getattr(model, "inertia_", None)
    if inertia is not None and np.isfinite(inertia) and inertia >= 0:
        total = max(float(result.table.counts.sum()), 1.0)
        return max(float(inertia) / (total * points.shape[1]), floor)
    return pooled_variance(points, result.table.counts, centers, result.unique_labels)


def class_log_likelihoods(
    result: QuantizeResult,
    *,
    variance: float | None = None,
    subset: np.ndarray | None = None,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
) -> tuple[np.ndarray, float | None]:
    """Log-likelihood of every distinct colour under every class, relative to its best.

    Parameters
    ----------
    result : QuantizeResult
        A fitted (or applied) result.
    variance : float, optional
        For the hard methods, the shared variance ``sigma^2`` (a saved model's); default
        the pooled within-cluster variance of this result (:func:`pooled_variance`).
    subset : ndarray of int, optional
        Only these distinct colours.
    working_memory_mib : float, optional
        Budget of the float64 temporaries (computed in chunks of colours).

    Returns
    -------
    log_lik : ndarray of shape (U, K), float32
        ``L_uk - max_k L_uk``, clipped below at -80.
    variance : float or None
        The ``sigma^2`` used (None for a mixture).
    """
    model = result.model
    points = result.points if subset is None else result.points[np.asarray(subset, np.intp)]
    soft = result.is_soft and hasattr(model, "log_joint")
    used = None
    if not soft:
        centers = np.asarray(
            getattr(model, "cluster_centers_", None)
            if hasattr(model, "cluster_centers_")
            else model.means_,
            np.float64,
        )
        used = float(variance) if variance is not None else hard_variance(result)
        denom = -2.0 * used  # L = -d2 / (2 sigma^2)
        c2 = np.einsum("ij,ij->i", centers, centers)[None, :]
    k = result.n_colors
    out = np.empty((points.shape[0], k), np.float32)
    rows = chunk_size(points.shape[0], 3 * 8 * k, working_memory_mib)
    for sl in iter_chunks(points.shape[0], rows):
        p = points[sl]
        if soft:
            L = np.asarray(model.log_joint(p, dtype=np.float64), np.float64)
        else:
            d2 = np.einsum("ij,ij->i", p, p)[:, None] - 2.0 * p @ centers.T + c2
            np.maximum(d2, 0.0, out=d2)
            L = d2
            L /= denom
        L -= L.max(axis=1, keepdims=True)
        np.maximum(L, _LOG_FLOOR, out=L)
        out[sl] = L
    return out, used


def soft_assignments(result: QuantizeResult, index: np.ndarray) -> np.ndarray:
    """Responsibilities of some distinct colours under the result's model, without a prior.

    The mixture's own responsibilities, or for the hard methods the soft assignments
    derived from the distances (see the module docstring), e.g. for display.

    Parameters
    ----------
    result : QuantizeResult
    index : ndarray of any shape, integer
        Distinct-colour indices (``table.inverse`` values); -1 (transparent) gives zeros.

    Returns
    -------
    resp : ndarray of shape index.shape + (K,), float32
        Each row sums to 1 (0 for -1).
    """
    idx = np.asarray(index)
    flat = idx.ravel()
    used, inverse = np.unique(flat[flat >= 0], return_inverse=True)
    post = np.zeros((used.size, result.n_colors), np.float32)
    base = result.unsmoothed()
    variance = getattr(base.model, "variance_", None)
    if variance is None and not base.is_soft:
        variance = hard_variance(base)
    # in chunks: the app calls this on a worker thread, and short numpy calls let the GUI
    # thread take the GIL in between
    for sl in iter_chunks(used.size, 16384):
        L, _ = class_log_likelihoods(base, variance=variance, subset=used[sl])
        post[sl] = _softmax_last(L)
    out = np.zeros((flat.size, result.n_colors), np.float32)
    opaque = flat >= 0
    out[opaque] = post[inverse.ravel()]
    return out.reshape(idx.shape + (result.n_colors,))


def assignment_uncertainty(result: QuantizeResult, colours: np.ndarray) -> np.ndarray:
    """Return ``1 - max_k`` of the soft assignments of some distinct colours.

    The soft assignments of :func:`soft_assignments`, not formed:
    ``1 - 1 / sum_k exp(L_k - max L)``.

    Parameters
    ----------
    result : QuantizeResult
    colours : ndarray of shape (P,), integer
        Distinct-colour indices, each ``>= 0``.

    Returns
    -------
    uncertainty : ndarray of shape (P,), float32
        0 where one class takes all, up to ``1 - 1 / K``.
    """
    colours = np.asarray(colours, np.intp).ravel()
    out = np.empty(colours.size, np.float32)
    base = result.unsmoothed()
    variance = getattr(base.model, "variance_", None)
    if variance is None and not base.is_soft:
        variance = hard_variance(base)
    for sl in iter_chunks(colours.size, 16384):  # short calls: the GUI thread gets the GIL
        L, _ = class_log_likelihoods(base, variance=variance, subset=colours[sl])
        np.exp(L, out=L)  # L is relative to each row's best: its largest term is exp(0) = 1
        out[sl] = 1.0 - 1.0 / L.sum(axis=-1)
    return out


def _softmax_last(A: np.ndarray) -> np.ndarray:
    A -= A.max(axis=-1, keepdims=True)
    np.exp(A, out=A)
    A /= A.sum(axis=-1, keepdims=True)
    return A


# --------------------------------------------------------------------------------------
# mean field
# --------------------------------------------------------------------------------------


def free_energy(q: np.ndarray, log_lik: np.ndarray, inverse: np.ndarray, beta: float) -> float:
    """Mean-field free energy ``F(q)`` (see the module docstring), in float64.

    Parameters
    ----------
    q : ndarray of shape (M, N, K)
        Responsibilities (0 on transparent pixels).
    log_lik : ndarray of shape (U, K)
        Per-colour log-likelihoods.
    inverse : ndarray of shape (M, N), integer
        Distinct-colour index of each pixel, -1 for transparent pixels.
    beta : float
        Potts coupling.

    Returns
    -------
    energy : float
    """
    q64 = np.asarray(q, np.float64)
    inv = np.asarray(inverse)
    L = np.take(np.asarray(log_lik, np.float64), inv, axis=0)
    L[inv < 0] = 0.0
    unary = float((q64 * L).sum())
    pair = float((q64[:, :-1] * q64[:, 1:]).sum() + (q64[:-1] * q64[1:]).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = np.where(q64 > 0, q64 * np.log(q64), 0.0)
    return -unary - beta * pair + float(ent.sum())


def mean_field(
    log_lik: np.ndarray,
    inverse: np.ndarray,
    beta: float,
    *,
    max_sweeps: int = 30,
    tol: float = 1e-2,
    should_cancel: CancelCallback | None = None,
    on_sweep: Callable[[int, float], None] | None = None,
    track_energy: bool = False,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Mean-field responsibilities of a Potts field with per-colour likelihoods.

    Parameters
    ----------
    log_lik : ndarray of shape (U, K)
        Log-likelihood of each distinct colour under each class (any per-colour offset).
    inverse : ndarray of shape (M, N), integer
        Distinct-colour index of each pixel; -1 marks a transparent pixel (no site).
    beta : float
        Potts coupling (nats per agreeing 4-neighbour), >= 0.
    max_sweeps : int
        Cap on sweeps (one sweep updates both checkerboard colours).
    tol : float
        Stop when no responsibility changed by more than ``tol`` in a sweep, or at most
        one site in 1 000 did.
    should_cancel : callable, optional
        Polled between half-sweeps; raises :class:`~quantize.protocol.Cancelled`.
    on_sweep : callable, optional
        ``on_sweep(sweep, largest_change)`` after each sweep (progress).
    track_energy : bool
        Record :func:`free_energy` before the first sweep and after each (costs about a
        sweep each; for tests and diagnostics).
    working_memory_mib : float
        Budget of one band's temporaries.

    Returns
    -------
    q : ndarray of shape (M, N, K), float32
        Responsibilities; each opaque pixel's sum to 1, transparent pixels are 0.  The
        interior of the padded working buffer (a view, not C-contiguous).
    info : dict
        ``n_sweeps``, ``converged``, ``energies`` (ndarray, empty unless tracked).
    """
    L = np.ascontiguousarray(log_lik, dtype=np.float32)
    inv = np.asarray(inverse)
    if inv.ndim != 2:
        raise ValueError(f"inverse must have shape (M, N), got {inv.shape}")
    m, n = inv.shape
    k = L.shape[1]
    beta = float(beta)
    # padded by one pixel of zeros: the border sites simply have fewer neighbours
    Q = np.zeros((m + 2, n + 2, k), dtype=np.float32)
    core = Q[1:-1, 1:-1]
    rows = chunk_size(m, max(1, n * k * 4), working_memory_mib)
    for sl in iter_chunks(m, rows):  # the posteriors in bands: no (M, N, K) or (U, K) copy
        core[sl] = _softmax_last(np.take(L, inv[sl], axis=0))
    transparent = inv < 0
    if transparent.any():
        core[transparent] = 0.0
    energies: list[float] = []
    if track_energy:
        energies.append(free_energy(core, L, inv, beta))
    converged = False
    sweeps = 0
    if beta == 0.0:
        converged = True
    band = chunk_size(max(m // 2, 1), max(1, (n // 2 + 1) * k * 4 * 8), working_memory_mib)
    n_sites = max(int(np.count_nonzero(inv >= 0)), 1)
    # a site's update depends on its neighbours only: after the first sweeps, update only the
    # sites next to one that moved by more than ``eps`` (same result up to eps, a fraction of
    # the work once most of the image has settled)
    eps = 0.1 * float(tol)
    checker = np.zeros((m, n), bool)  # (row + column) odd
    checker[0::2, 1::2] = True
    checker[1::2, 0::2] = True
    dirty = np.zeros((m + 2, n + 2), bool)  # padded like Q
    dirty[1:-1, 1:-1] = inv >= 0
    sites = np.zeros((m + 2, n + 2), bool)
    sites[1:-1, 1:-1] = inv >= 0
    for sweep in range(1, int(max_sweeps) + 1 if beta > 0 else 1):
        change = 0.0
        moving = 0
        for parity in (0, 1):
            check_cancel(should_cancel)
            todo = dirty[1:-1, 1:-1] & (checker == bool(parity))
            n_todo = int(np.count_nonzero(todo))
            if n_todo == 0:
                continue
            moved = np.zeros((m + 2, n + 2), bool)
            if n_todo > 0.25 * n_sites / 2:  # dense: every site of this colour, in bands
                for r0, c0 in ((0, parity), (1, 1 - parity)):
                    ni = len(range(r0, m, 2))
                    nj = len(range(c0, n, 2))
                    if ni == 0 or nj == 0:
                        continue
                    for sl in iter_chunks(ni, band):
                        a, b = r0 + 2 * sl.start, r0 + 2 * sl.stop  # image rows a, a+2, .. < b
                        cols = slice(c0 + 1, c0 + 1 + 2 * nj, 2)
                        centre = Q[a + 1 : b + 1 : 2, cols]
                        S = Q[a:b:2, cols] + Q[a + 2 : b + 2 : 2, cols]
                        S += Q[a + 1 : b + 1 : 2, c0 : c0 + 2 * nj : 2]
                        S += Q[a + 1 : b + 1 : 2, c0 + 2 : c0 + 2 + 2 * nj : 2]
                        idx = inv[a:b:2, c0::2]
                        S *= beta
                        S += np.take(L, idx, axis=0)
                        new = _softmax_last(S)
                        hole = idx < 0
                        if hole.any():
                            new[hole] = 0.0
                        delta = np.abs(new - centre).max(axis=-1)
                        change = max(change, float(delta.max()))
                        moving += int(np.count_nonzero(delta > tol))
                        moved[a + 1 : b + 1 : 2, cols] = delta > eps
                        centre[...] = new
            else:  # sparse: only the sites next to one that moved
                r, c = np.nonzero(todo)
                r1, c1 = r + 1, c + 1
                S = Q[r1 - 1, c1] + Q[r1 + 1, c1]
                S += Q[r1, c1 - 1]
                S += Q[r1, c1 + 1]
                S *= beta
                S += np.take(L, inv[r, c], axis=0)
                new = _softmax_last(S)
                delta = np.abs(new - Q[r1, c1]).max(axis=-1)
                change = max(change, float(delta.max()))
                moving += int(np.count_nonzero(delta > tol))
                Q[r1, c1] = new
                moved[r1, c1] = delta > eps
            dirty[1:-1, 1:-1] &= ~todo
            # the neighbours of the sites that moved (the other colour) must be updated
            dirty[:-2, 1:-1] |= moved[1:-1, 1:-1]
            dirty[2:, 1:-1] |= moved[1:-1, 1:-1]
            dirty[1:-1, :-2] |= moved[1:-1, 1:-1]
            dirty[1:-1, 2:] |= moved[1:-1, 1:-1]
            dirty &= sites
        sweeps = sweep
        if track_energy:
            energies.append(free_energy(core, L, inv, beta))
        if on_sweep is not None:
            on_sweep(sweep, change)
        # converged when (almost) no site moves: a few ambiguous pixels on flat photo
        # areas can drift for hundreds of sweeps without changing any label
        if change < tol or moving <= _STILL_FRACTION * n_sites:
            converged = True
            break
    # the interior of the padded buffer, not a copy: a copy would double the peak memory
    return core, {"n_sweeps": sweeps, "converged": converged, "energies": np.asarray(energies)}


# --------------------------------------------------------------------------------------
# small regions
# --------------------------------------------------------------------------------------


def merge_small_regions(
    labels: np.ndarray,
    min_region: int,
    *,
    n_classes: int | None = None,
    opaque: np.ndarray | None = None,
    scores: Callable[[np.ndarray], np.ndarray] | None = None,
    should_cancel: CancelCallback | None = None,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
) -> tuple[np.ndarray, int]:
    """Give every connected region smaller than ``min_region`` its best neighbour's class.

    Parameters
    ----------
    labels : ndarray of shape (M, N), integer
        Class of each pixel (not modified).
    min_region : int
        Regions of fewer pixels are merged.
    n_classes : int, optional
        K (default ``labels.max() + 1``).
    opaque : ndarray of shape (M, N), bool, optional
        Pixels that take part (transparent ones keep their label and separate regions).
    scores : callable, optional
        ``scores(flat_pixel_indices) -> (P, K)`` responsibilities of those pixels; the
        neighbouring class with the highest total over a region wins.  Without it the
        longest shared border wins.
    should_cancel : callable, optional
        Polled between passes.
    working_memory_mib : float, optional
        Budget of the temporaries of one chunk of pixels (their scores, float64).

    Returns
    -------
    labels : ndarray of shape (M, N)
        A new array of ``labels``' dtype; every region with a neighbour has at least
        ``min_region`` pixels.
    n_merged : int
        Regions merged away.
    """
    out = np.array(labels, copy=True)
    if out.size == 0 or min_region <= 1:
        return out, 0
    k = int(n_classes) if n_classes is not None else int(out.max()) + 1
    merged = 0
    while True:
        check_cancel(should_cancel)
        reg = label_regions(out, k, opaque)
        small = reg.sizes < min_region
        if not small.any():
            break
        a, b, length = region_adjacency(reg.ids)
        sizes = reg.sizes
        # a region merges only into a larger neighbour (ties by id): no cycles
        ok = small[a - 1] & (
            (sizes[b - 1] > sizes[a - 1]) | ((sizes[b - 1] == sizes[a - 1]) & (b > a))
        )
        a, b, length = a[ok], b[ok], length[ok]
        if a.size == 0:
            break
        target_class = reg.region_class[b - 1]
        if scores is not None:
            movers = np.unique(a)
            pos = np.full(reg.n_regions + 1, -1, np.intp)
            pos[movers] = np.arange(movers.size)
            score = _region_scores(
                reg.ids.ravel(), pos, movers.size, pos[a], target_class, k, scores,
                working_memory_mib,
            )  # fmt: skip
        else:
            score = np.zeros(a.size)
        # best candidate per region: highest score, then longest border, then lowest class
        order = np.lexsort((target_class, -length, -score, a))
        first = np.unique(a[order], return_index=True)[1]
        chosen = order[first]
        src, dst = a[chosen], b[chosen]
        moving = np.zeros(reg.n_regions + 1, bool)
        moving[src] = True
        keep = ~moving[dst]  # the target itself stays this pass: the merge is real
        src, dst = src[keep], dst[keep]
        if src.size == 0:  # pragma: no cover - the last mover of a chain always qualifies
            break
        new_class = np.concatenate([[0], reg.region_class]).astype(out.dtype)
        new_class[src] = reg.region_class[dst - 1]
        changed = np.zeros(reg.n_regions + 1, bool)
        changed[src] = True
        where = changed[reg.ids]
        out[where] = new_class[reg.ids[where]]
        merged += int(src.size)
    return out, merged


def _region_scores(
    flat_ids: np.ndarray,
    pos: np.ndarray,
    n_movers: int,
    mover: np.ndarray,
    target: np.ndarray,
    k: int,
    scores: Callable[[np.ndarray], np.ndarray],
    working_memory_mib: float,
) -> np.ndarray:
    """Total responsibility of each candidate's class over its small region's pixels.

    The small regions can hold most pixels and be as many: the per-region totals
    ``(regions, K)`` and the pixels' scores are made a chunk at a time (pixels sorted by
    region, stably, so every total adds its pixels in image order as one pass would).
    Returns the score of candidate ``i``: the sum over region ``mover[i]``'s pixels of the
    responsibility of class ``target[i]``.
    """
    pix = np.flatnonzero(pos[flat_ids] >= 0)
    group = pos[flat_ids[pix]]
    order = np.argsort(group, kind="stable")
    pix, group = pix[order], group[order]
    del order
    starts = np.searchsorted(group, np.arange(n_movers + 1))
    score = np.zeros(mover.size)
    per = chunk_size(n_movers, 8 * k, working_memory_mib)
    for m0 in range(0, n_movers, per):
        m1 = min(m0 + per, n_movers)
        p0, p1 = int(starts[m0]), int(starts[m1])
        total = np.zeros((m1 - m0, k))
        for sl in iter_chunks(p1 - p0, chunk_size(p1 - p0, 16 * k, working_memory_mib)):
            part = slice(p0 + sl.start, p0 + sl.stop)
            np.add.at(total, group[part] - m0, np.asarray(scores(pix[part]), np.float64))
        sel = (mover >= m0) & (mover < m1)
        score[sel] = total[mover[sel] - m0, target[sel]]
    return score


# --------------------------------------------------------------------------------------
# a result made coherent
# --------------------------------------------------------------------------------------


def _inverse_2d(table: ColorTable) -> np.ndarray:
    return np.asarray(table.inverse).reshape(table.shape)


def segment_result(
    result: QuantizeResult,
    strength: float = DEFAULT_STRENGTH,
    min_region: int = 0,
    *,
    max_sweeps: int = 30,
    tol: float = 1e-2,
    variance: float | None = None,
    should_cancel: CancelCallback | None = None,
    on_sweep: Callable[[int, float], None] | None = None,
    track_energy: bool = False,
    max_memory_mib: float | None = None,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
) -> QuantizeResult:
    """Return ``result`` with spatially coherent labels and responsibilities (no refit).

    Parameters
    ----------
    result : QuantizeResult
        A fitted or applied result; if it is already smoothed, the smoothing is redone
        from its model (settings do not accumulate).
    strength : float
        Potts coupling ``beta`` (0: no prior).
    min_region : int
        Merge connected regions of fewer pixels (0: none).
    max_sweeps, tol : optional
        Mean-field stopping rule (see :class:`SmoothingSettings`).
    variance : float, optional
        Shared variance of the hard methods' soft assignments (default: the model's
        ``variance_`` if it has one, as a model read from a file does, else this fit's
        pooled within-cluster variance).
    should_cancel : callable, optional
        Polled between half-sweeps and merge passes.
    on_sweep : callable, optional
        Progress of the mean field, ``on_sweep(sweep, largest_change)``.
    track_energy : bool
        Record the free energy per sweep in ``segmentation.energies``.
    max_memory_mib : float, optional
        Refuse a job whose :func:`smoothing_bytes` exceed this many MiB (default
        :data:`MAX_MEMORY_MIB`; ``math.inf``: no limit).
    working_memory_mib : float, optional
        Budget of the temporaries of one band of a sweep.

    Returns
    -------
    result : QuantizeResult
        A new result sharing the model, palette and image: ``labels``, ``proportions``
        and ``segmentation`` changed; ``responsibility_map``, ``uncertainty_map``, masks,
        soft maps and the PNG follow the new labels.  With nothing to do (``strength`` 0
        and ``min_region`` <= 1) the unsmoothed result.

    Raises
    ------
    SmoothingMemoryError
        The job needs more than ``max_memory_mib``; raised before the large arrays are
        allocated.
    """
    from quantize.pipeline import QuantizeResult

    settings = SmoothingSettings(strength, min_region, max_sweeps, tol)
    base = result.unsmoothed() if isinstance(result, QuantizeResult) else result
    if not settings.active:
        return base
    t0 = time.perf_counter()
    table = base.table
    inv = _inverse_2d(table)
    k = base.n_colors
    prior = settings.strength > 0
    _check_memory(inv.shape, len(table.counts), k, prior, max_memory_mib, working_memory_mib)
    if variance is None:  # a saved model's variance keeps class k the same on every image
        variance = getattr(base.model, "variance_", None)
    log_lik, _ = class_log_likelihoods(
        base, variance=variance, working_memory_mib=working_memory_mib
    )
    q: np.ndarray | None = None
    info: dict[str, Any] = {"n_sweeps": 0, "converged": True, "energies": np.zeros(0)}
    if settings.strength > 0:
        q, info = mean_field(
            log_lik,
            inv,
            settings.strength,
            max_sweeps=settings.max_sweeps,
            tol=settings.tol,
            should_cancel=should_cancel,
            on_sweep=on_sweep,
            track_energy=track_energy,
            working_memory_mib=working_memory_mib,
        )
        labels = np.empty(q.shape[:2], dtype=base.labels.dtype)
        rows = chunk_size(q.shape[0], max(1, q.shape[1] * k * 4), working_memory_mib)
        for sl in iter_chunks(q.shape[0], rows):  # argmax copies a view it reduces: in bands
            labels[sl] = q[sl].argmax(axis=2)
        if table.opaque is not None:
            labels[~table.opaque] = 0
    else:
        labels = np.array(base.labels, copy=True)
    reassigned = None
    merged = 0
    if settings.min_region > 1:
        post = None if q is not None else _softmax_last(log_lik.astype(np.float32, copy=True))

        def scores(pix: np.ndarray) -> np.ndarray:
            if q is not None:  # (a view: reshaping it would copy every pixel)
                rows, cols = np.divmod(pix, labels.shape[1])
                return q[rows, cols]
            assert post is not None
            return post[inv.ravel()[pix]]

        new_labels, merged = merge_small_regions(
            labels,
            settings.min_region,
            n_classes=k,
            opaque=table.opaque,
            scores=scores,
            should_cancel=should_cancel,
            working_memory_mib=working_memory_mib,
        )
        changed = new_labels != labels
        if changed.any():
            reassigned = changed
            if q is not None:
                q[changed] = 0.0
                q[changed, new_labels[changed].astype(np.intp)] = 1.0
        labels = new_labels
    weights_mask = np.ones(labels.shape, bool) if table.opaque is None else table.opaque
    counts = np.bincount(labels[weights_mask].astype(np.intp), minlength=k)[:k]
    proportions = counts / max(int(counts.sum()), 1)
    seg = Segmentation(
        settings=settings,
        responsibilities=q,
        reassigned=reassigned,
        energies=np.asarray(info["energies"], np.float64),
        n_sweeps=int(info["n_sweeps"]),
        converged=bool(info["converged"]),
        n_merged=merged,
        elapsed_s=time.perf_counter() - t0,
    )
    return base.with_segmentation(labels, proportions.astype(np.float64), seg)
