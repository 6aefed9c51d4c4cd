"""Palette polish: move a fitted palette towards the least sum of distances to the power p.

K-means minimises the weighted sum of *squared* distances, which lets a few far colours (a
sky's long gradient, a bright rim) pull an entry away from the many pixels it serves.  For a
small palette, measured on eleven camera photos (benchmarks/README.md, issue 10), entries that
minimise the sum of distances to the power 1.5 give a lower mean CIEDE2000 after a 1-px blur,
dithered or not, at the same SSIM; at K = 64 and above they do not, so the pipeline's default
polishes only small palettes (:data:`quantize.options.DEFAULTS`, ``error_power``).

The polish is a majorise-minimise (iteratively reweighted least squares) loop started from
the K-means result: with labels fixed, each entry moves to the mean of its colours weighted
by ``w * max(d, eps) ** (p - 2)``; then each colour is given its nearest entry again.  The
objective it decreases is ``sum w * phi(d)`` with ``phi(d) = d ** p`` for ``d >= eps`` and
``phi(d) = (p / 2) * eps ** (p - 2) * d ** 2 + (1 - p / 2) * eps ** p`` below (the same value
and slope at ``eps``): ``phi`` is concave in ``d ** 2``, so each weighted mean lowers the
objective, and so does each reassignment.  ``eps`` keeps the weights finite for colours
sitting on an entry.  Inputs are validated by the caller.

A photo has up to a few million distinct colours; :func:`polish_palette` runs the rounds on
the weighted means of the colours in cells of 4 x 4 x 4 sRGB levels (tens of thousands of
cells), whose distances to entries tens of levels away differ from their colours' by a level
or two, and then gives every colour its nearest polished entry.
"""

from __future__ import annotations

import numpy as np

from quantize.cluster._annular import nearest_labels
from quantize.cluster._nearest import exact_sq_dist, nearest_indices
from quantize.protocol import CancelCallback, check_cancel

__all__ = ["polish_objective", "polish_palette", "power_polish"]

#: Bits kept of each 8-bit channel for the cells of :func:`polish_palette`.
_CELL_BITS = 6
#: Fewer distinct colours than this are polished one by one.
_CELLS_FROM = 50_000


def polish_objective(
    points: np.ndarray,
    weights: np.ndarray,
    centers: np.ndarray,
    labels: np.ndarray,
    power: float,
    eps: float,
) -> float:
    """Return the smoothed power objective ``sum w * phi(||x - c_label||)``.

    Parameters
    ----------
    points : ndarray of shape (U, D)
    weights : ndarray of shape (U,)
    centers : ndarray of shape (K, D)
    labels : ndarray of shape (U,), integer
    power : float
        ``p`` in [1, 2].
    eps : float
        Distance below which ``phi`` is quadratic.

    Returns
    -------
    objective : float
    """
    d = np.sqrt(exact_sq_dist(points, centers, labels))
    phi = np.where(
        d >= eps,
        d**power,
        0.5 * power * eps ** (power - 2.0) * d * d + (1.0 - 0.5 * power) * eps**power,
    )
    return float(np.asarray(weights, dtype=np.float64) @ phi)


def power_polish(
    points: np.ndarray,
    weights: np.ndarray,
    centers: np.ndarray,
    labels: np.ndarray,
    *,
    power: float,
    n_fixed: int = 0,
    n_iter: int = 5,
    eps: float = 1.0,
    should_cancel: CancelCallback | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Polish centres for the least weighted sum of distances to the power ``power``.

    Parameters
    ----------
    points : ndarray of shape (U, D), float
        Distinct colours in the fitting space.
    weights : ndarray of shape (U,), float
        Their pixel counts (or importance-weighted counts).
    centers : ndarray of shape (K, D), float
        The fitted centres (not modified).
    labels : ndarray of shape (U,), integer
        Each point's centre (normally the nearest).
    power : float
        ``p`` in [1, 2); 2 returns the input unchanged (K-means' own objective).
    n_fixed : int
        The first ``n_fixed`` centres (locked and added colours) do not move.
    n_iter : int
        Reweighting rounds; each one lowers the objective, most of the gain is in the first
        three.
    eps : float
        Distance (in the fitting space's units) below which the weight stops growing.
    should_cancel : callable or None
        Polled before each round.

    Returns
    -------
    centers : ndarray of shape (K, D), float64
    labels : ndarray of shape (U,), int64
        The nearest polished centre of each point.
    """
    centers = np.array(centers, dtype=np.float64, copy=True)
    labels = np.asarray(labels, dtype=np.int64)
    if power >= 2.0 or n_iter <= 0 or n_fixed >= len(centers):
        return centers, labels
    pts = np.asarray(points, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    k, dim = centers.shape
    for _ in range(n_iter):
        check_cancel(should_cancel)
        d = np.sqrt(exact_sq_dist(pts, centers, labels))
        omega = w * np.maximum(d, eps) ** (power - 2.0)
        total = np.bincount(labels, weights=omega, minlength=k)
        sums = np.stack(
            [np.bincount(labels, weights=omega * pts[:, j], minlength=k) for j in range(dim)],
            axis=1,
        )
        move = total > 0
        move[:n_fixed] = False  # locked and added entries stay exactly where they are
        centers[move] = sums[move] / total[move, None]
        labels = nearest_indices(pts, centers)
    return centers, labels


def polish_palette(
    points: np.ndarray,
    weights: np.ndarray,
    rgb8: np.ndarray,
    centers: np.ndarray,
    *,
    power: float,
    n_fixed: int = 0,
    should_cancel: CancelCallback | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Polish a fitted palette on the distinct colours of an image (see the module).

    Parameters
    ----------
    points : ndarray of shape (U, D), float
        Distinct colours in the fitting space.
    weights : ndarray of shape (U,), float
        Their (importance-weighted) pixel counts.
    rgb8 : ndarray of shape (U, 3), uint8
        The same colours as 8-bit sRGB (they choose the cells).
    centers : ndarray of shape (K, D), float
        The fitted centres.
    power : float
        ``p`` in [1, 2).
    n_fixed : int
        The first ``n_fixed`` centres do not move.
    should_cancel : callable or None

    Returns
    -------
    centers : ndarray of shape (K, D), float64
    labels : ndarray of shape (U,), int64
        The nearest polished centre of each distinct colour.
    """
    pts = np.asarray(points, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if len(pts) < _CELLS_FROM:
        labels = nearest_labels(pts, centers)
        return power_polish(
            pts, w, centers, labels, power=power, n_fixed=n_fixed, should_cancel=should_cancel
        )
    shift = 8 - _CELL_BITS
    c = (np.asarray(rgb8, dtype=np.int64) >> shift).T
    key = (c[0] << (2 * _CELL_BITS)) | (c[1] << _CELL_BITS) | c[2]
    size = 1 << (3 * _CELL_BITS)
    cell_w = np.bincount(key, weights=w, minlength=size)
    used = np.flatnonzero(cell_w > 0)
    means = (
        np.stack(
            [
                np.bincount(key, weights=w * pts[:, j], minlength=size)[used]
                for j in range(pts.shape[1])
            ],
            axis=1,
        )
        / cell_w[used, None]
    )
    cell_w = cell_w[used]
    centers, _ = power_polish(
        means,
        cell_w,
        centers,
        nearest_indices(means, centers),
        power=power,
        n_fixed=n_fixed,
        should_cancel=should_cancel,
    )
    check_cancel(should_cancel)
    return centers, nearest_labels(pts, centers)
