"""Small distinct colours: find the colour groups a fitted palette left far away.

The rule (documented in the README): after a fit, a distinct colour is *far* when its
distance to the nearest palette entry exceeds ``distance`` in OKLab (Euclidean, the
perceptual space of the default fit; 0.05 is a clearly visible difference, about 5 CIEDE2000
units, roughly).  Far colours are grouped around the heaviest cell of a grid of side
``distance / 2``: a group is every far colour within ``distance / 2`` of that cell's
weighted mean (re-centred on the group's own mean).  A group that holds at least
``min_share`` of the total weight, whose mean is still farther than ``distance`` from
every entry (and every group kept before), and that stands apart (the image's colours
between ``distance / 2`` and ``distance`` from its mean weigh no more than the group) is
*kept*: it gets a palette entry at its mean, and the far colours within ``distance`` of
that entry are then served by it.  Of the groups
kept, the ``max_groups`` farthest from the palette are returned: a saturated mark far from
every entry comes before a photo's own colour just past the threshold.

To make room in a palette of fixed size, :func:`cheapest_entries` picks the entries whose
points can move to the nearest other entry at the least increase of the objective; an
entry that is itself farther than ``distance`` from every other entry (a kept colour) is
never the one dropped.
Inputs are validated by the caller.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from quantize._blas import matmul
from quantize.cluster._annular import nearest_labels
from quantize.cluster._cells import _radix_argsort
from quantize.cluster._nearest import exact_sq_dist, sq_norms

__all__ = ["cheapest_entries", "find_small_groups"]

_MAX_ROUNDS = 8  # heaviest cells tried, per group that may be kept, before giving up
_MIN_ROUNDS = 32  # (at least this many: a photo's own far colours can come first)
_RADIUS_DIVISOR = 2  # a group: the far colours within distance / 2 of its mean
# a group is kept only when the colours around it (from distance / 2 to distance of its
# mean, far or not) weigh no more than the group: a mark stands apart, a photo's own colour
# continues into its neighbours.  On six photos with three marks each this keeps 18 of 18
# marks at a median -0.12 dB; without it, distance 0.1 was needed (17 of 18, -0.97 dB worst)
_ISOLATION = 1.0


def find_small_groups(
    points: np.ndarray,
    weights: np.ndarray,
    centers: np.ndarray,
    *,
    distance: float,
    min_share: float,
    max_groups: int,
    labels: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Find the groups of far colours that deserve their own palette entry.

    Parameters
    ----------
    points : ndarray of shape (U, D), float64
        Distinct colours in the perceptual space (OKLab).
    weights : ndarray of shape (U,)
        Their weights (pixel counts, or importance-weighted counts).
    centers : ndarray of shape (K, D)
        The palette in the same space.
    distance : float
        A colour farther than this from every entry is far.
    min_share : float
        Least share of the total weight a group needs.
    max_groups : int
        Most groups returned.
    labels : ndarray of shape (U,), integer, optional
        An entry of each point (e.g. the fit's labels), any one: a point within
        ``distance`` of it is not far, so only the others are searched over every entry
        (at K = 256 on a photo with 362,000 colours that search was most of the time).

    Returns
    -------
    groups : list of ndarray of int
        Indices into ``points`` of each group's members, the farthest group first.
    """
    total = float(weights.sum())
    D = points.shape[1]
    if max_groups <= 0 or not total > 0:
        return []
    if labels is None:
        candidates = np.arange(points.shape[0])
    else:  # the distance to any entry bounds the distance to the nearest from above
        own = exact_sq_dist(points, centers, np.asarray(labels))
        candidates = np.flatnonzero(own > distance**2)
    far = np.zeros(points.shape[0], bool)
    if candidates.size:
        pts = points[candidates]
        d_sq = exact_sq_dist(pts, centers, nearest_labels(pts, centers))
        far[candidates[d_sq > distance**2]] = True
    far &= weights > 0
    need = min_share * total
    if not far.any() or float(weights[far].sum()) < need:  # no group could hold enough
        return []
    radius = distance / _RADIUS_DIVISOR
    # every colour's cell: halves of side radius / 2 (the fine weights), grid cells of side
    # radius (two halves: x / (radius / 2) is exactly twice x / radius).  Column by column:
    # on an (N, 3) array the same steps took three times as long (1.3 M colours: 0.1 s)
    halves = [np.floor(points[:, d] / (radius / 2)).astype(np.intp) for d in range(D)]
    h_low = np.array([h.min() for h in halves])
    h_high = np.array([h.max() for h in halves])
    low = h_low >> 1
    shape = tuple(int(v) for v in (h_high >> 1) - low + 1)
    key = _flat_index([h >> 1 for h in halves], low, shape)
    # the search works on the far colours alone (on a photo at K = 16, 40 % of 1.3 M): their
    # grid has the same cells, in the same order, as a grid of every colour
    far_of = np.flatnonzero(far)  # global index of each far colour
    f_points, f_weights = points[far_of], weights[far_of]
    grid = _Grid(key[far_of], low, shape, radius)
    alive = np.ones(far_of.size, bool)  # the far colours not yet grouped
    # every colour, for the isolation test alone, built on its first use
    everything = cache(lambda: _Grid(key, low, shape, radius))
    fine_weights = cache(lambda: _FineWeights.build(halves, h_low, h_high, weights, radius))
    cell_w = np.bincount(grid.cell_of, weights=f_weights, minlength=grid.n_cells)
    cell_n = np.bincount(grid.cell_of, minlength=grid.n_cells)  # alive colours per cell
    left = float(cell_w.sum())
    groups: list[np.ndarray] = []
    how_far: list[float] = []
    entries = centers

    def drop(*parts: np.ndarray) -> float:
        """Group the alive colours of ``parts`` (each without repeats); return their weight."""
        dropped = 0.0
        for members in parts:
            members = members[alive[members]]
            alive[members] = False
            cells, weight = grid.cell_of[members], f_weights[members]
            cell_w[:] -= np.bincount(cells, weights=weight, minlength=grid.n_cells)
            cell_n[:] -= np.bincount(cells, minlength=grid.n_cells)
            dropped += float(weight.sum())
        cell_w[cell_n == 0] = 0.0  # an emptied cell weighs nothing, whatever the rounding
        return dropped

    for _ in range(max(_MIN_ROUNDS, _MAX_ROUNDS * max_groups)):
        if left < need:
            break
        heavy = int(np.argmax(cell_w))
        if not cell_w[heavy] > 0:
            break
        in_cell = grid.members(heavy)
        in_cell = in_cell[alive[in_cell]]
        centre = (f_weights[in_cell] @ f_points[in_cell]) / float(f_weights[in_cell].sum())
        for _ in range(2):  # re-centre on the group's own mean
            near = _near(grid, f_points, alive, centre, radius)
            if not near.size:
                break
            centre = (f_weights[near] @ f_points[near]) / float(f_weights[near].sum())
        near = _near(grid, f_points, alive, centre, radius)
        weight = float(f_weights[near].sum())
        apart = float(np.sqrt(sq_norms(entries - centre).min()))
        isolated = False
        if weight >= need and apart > distance:  # the colours just around it weigh less
            # most candidates are a photo's own colours, which continue into their
            # neighbours: the fine cells wholly inside the shell often outweigh the group
            fine = fine_weights()
            if fine is None or fine.shell_at_least(centre, radius) <= _ISOLATION * weight:
                ring = everything().around(centre, 2)
                d_ring = sq_norms(points[ring] - centre)
                inside = (d_ring > radius**2) & (d_ring <= (2 * radius) ** 2)
                shell = float(weights[ring[inside]].sum())
                isolated = shell <= _ISOLATION * weight
        if isolated:
            groups.append(far_of[near])
            how_far.append(apart)
            entries = np.concatenate([entries, centre[None]])
            ring = grid.around(centre, 2)  # the far colours it serves
            served = ring[sq_norms(f_points[ring] - centre) <= distance**2]
            left -= drop(near, served)
        else:
            left -= drop(near, in_cell)
    order = np.argsort(-np.asarray(how_far), kind="stable")[:max_groups]
    return [groups[i] for i in order]


def _near(
    grid: _Grid, points: np.ndarray, alive: np.ndarray, centre: np.ndarray, radius: float
) -> np.ndarray:
    """Return the alive points within ``radius`` of ``centre`` (the grid's side)."""
    around = grid.around(centre, 1)
    around = around[alive[around]]
    return around[sq_norms(points[around] - centre) <= radius**2]


def _flat_index(cells: list[np.ndarray], first: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Flat (C-order) index in ``shape`` of cell coordinates ``cells`` (one (N,) per axis).

    ``np.ravel_multi_index`` of ``cells - first``, without its (N, D) temporaries.
    """
    key = cells[0] - first[0]
    for d in range(1, len(cells)):
        key *= shape[d]
        key += cells[d]
        key -= first[d]
    return key


class _Grid:
    """Points binned into cubic cells of side ``side``, with the points of each cell."""

    def __init__(
        self, key: np.ndarray, low: np.ndarray, shape: tuple[int, ...], side: float
    ) -> None:
        """Bin points given the flat index ``key`` (N,) of each one's cell in ``shape``.

        Cell ``i`` along an axis spans ``[(low + i) side, (low + i + 1) side)``.
        """
        self._side = side
        self._low = low
        self._shape = shape
        n_bits = max(1, (int(np.prod(np.asarray(self._shape, float))) - 1).bit_length())
        self._order = _radix_argsort(key, n_bits)  # stable, like argsort(kind="stable")
        ordered = key[self._order]
        new = np.empty(ordered.size, bool)  # one sort: np.unique would sort again
        new[:1] = True
        np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
        first = np.flatnonzero(new)
        self._keys = ordered[first]
        self.cell_of = np.empty(key.size, np.intp)
        self.cell_of[self._order] = np.cumsum(new) - 1
        self._starts = np.append(first, ordered.size)
        self.n_cells = int(first.size)
        self._dims = len(shape)
        self._offsets: dict[int, np.ndarray] = {}

    def members(self, cell: int) -> np.ndarray:
        """Return the indices of the points in cell number ``cell`` (of ``cell_of``)."""
        return self._order[self._starts[cell] : self._starts[cell + 1]]

    def around(self, centre: np.ndarray, reach: int) -> np.ndarray:
        """Return the indices of the points in the cells within ``reach`` of ``centre``'s."""
        home = np.floor(centre / self._side).astype(np.int64) - self._low
        offsets = self._offsets.get(reach)
        if offsets is None:
            offsets = np.stack(
                np.meshgrid(*[np.arange(-reach, reach + 1)] * self._dims, indexing="ij"), axis=-1
            ).reshape(-1, self._dims)
            self._offsets[reach] = offsets
        cells = home + offsets
        inside = ((cells >= 0) & (cells < np.asarray(self._shape))).all(axis=1)
        if not inside.any():
            return np.zeros(0, dtype=np.intp)
        keys = np.ravel_multi_index(cells[inside].T, self._shape)
        pos = np.searchsorted(self._keys, keys)
        ok = pos < self._keys.size
        ok[ok] = self._keys[pos[ok]] == keys[ok]
        found = [self._order[self._starts[i] : self._starts[i + 1]] for i in pos[ok]]
        return np.concatenate(found) if found else np.zeros(0, dtype=np.intp)


class _FineWeights:
    """Total weight of the points in cubic cells of side ``radius / 2`` (a dense array).

    Used only to prove cheaply that a group is not isolated: the cells wholly inside its
    shell (from ``radius`` to ``2 radius`` of its mean) hold at least their whole weight.
    """

    _MAX_CELLS = 1 << 22  # dense array cap (32 MiB); beyond it the exact test runs alone

    def __init__(self, low: np.ndarray, side: float, weights: np.ndarray) -> None:
        self._low = low
        self._side = side
        self._w = weights

    @classmethod
    def build(
        cls,
        halves: list[np.ndarray],
        first: np.ndarray,
        last: np.ndarray,
        weights: np.ndarray,
        radius: float,
    ) -> _FineWeights | None:
        """Sum the weights per cell, given each point's cell ``floor(x / (radius / 2))``.

        ``halves`` holds the cell coordinates of the N points along each of the D axes.

        ``first`` and ``last`` are the least and greatest cell along each axis.  None when
        there would be more than ``_MAX_CELLS`` cells.
        """
        side = radius / 2
        shape = tuple(int(v) + 1 for v in last - first)
        if float(np.prod(np.asarray(shape, float))) > cls._MAX_CELLS:
            return None
        low = first * side  # cell i spans [low + i side, low + (i + 1) side) (up to rounding)
        flat = _flat_index(halves, first, shape)
        total = np.bincount(flat, weights=weights, minlength=int(np.prod(shape)))
        return cls(low, side, total.reshape(shape))

    def shell_at_least(self, centre: np.ndarray, radius: float) -> float:
        """Return a lower bound on the weight with ``radius < |x - centre| <= 2 radius``."""
        lo_sq, hi_sq = radius**2 * (1 + 1e-9), (2 * radius) ** 2 * (1 - 1e-9)  # margins
        d_min_sq = d_max_sq = np.zeros(1)
        block: list[slice] = []
        for d, n in enumerate(self._w.shape):
            a = max(0, int(np.floor((centre[d] - 2 * radius - self._low[d]) / self._side)))
            b = min(n - 1, int(np.floor((centre[d] + 2 * radius - self._low[d]) / self._side)))
            if a > b:
                return 0.0
            block.append(slice(a, b + 1))
            lower = self._low[d] + np.arange(a, b + 1) * self._side - centre[d]
            upper = lower + self._side
            near = np.maximum(np.maximum(lower, -upper), 0.0)  # nearest point of the cell
            far = np.maximum(np.abs(lower), np.abs(upper))
            shape = [1] * self._w.ndim
            shape[d] = b - a + 1
            d_min_sq = d_min_sq + (near**2).reshape(shape)
            d_max_sq = d_max_sq + (far**2).reshape(shape)
        inside = (d_min_sq > lo_sq) & (d_max_sq <= hi_sq)
        return float(self._w[tuple(block)][inside].sum())


def cheapest_entries(
    points: np.ndarray,
    weights: np.ndarray,
    labels: np.ndarray,
    centers: np.ndarray,
    n_drop: int,
    protected: np.ndarray,
) -> np.ndarray:
    """Entries whose points move to another entry at the least cost.

    The cost of dropping entry k is ``W_k ||c_k - c_j||^2 + (within-cluster term, which
    does not depend on j)`` with j the nearest remaining entry: the increase of the weighted
    squared error if all of k's points moved to j.  Entries are dropped greedily.

    Parameters
    ----------
    points : ndarray of shape (U, D)
        Points in the fitting space.
    weights : ndarray of shape (U,)
    labels : ndarray of shape (U,)
        Entry of each point.
    centers : ndarray of shape (K, D)
    n_drop : int
        How many entries to drop, at most.
    protected : ndarray of shape (K,), bool
        Entries never dropped: locked ones, and those that are themselves far from every
        other entry (their points would become a far group again).

    Returns
    -------
    dropped : ndarray of shape (n_dropped,), intp
        ``n_dropped < n_drop`` when fewer entries may go.
    """
    K = centers.shape[0]
    W = np.bincount(labels, weights=weights, minlength=K)
    alive = np.ones(K, dtype=bool)
    dropped: list[int] = []
    for _ in range(n_drop):
        idx = np.flatnonzero(alive)
        C = centers[idx]
        dist = sq_norms(C)[:, None] - 2.0 * matmul(C, C.T) + sq_norms(C)[None, :]
        np.fill_diagonal(dist, np.inf)
        cost = W[idx] * np.maximum(dist.min(axis=1), 0.0)
        cost[protected[idx]] = np.inf
        if not np.isfinite(cost).any():
            break
        k = int(idx[int(np.argmin(cost))])
        j = int(idx[int(np.argmin(np.where(idx == k, np.inf, dist[idx == k][0])))])
        W[j] += W[k]  # its points go to the nearest remaining entry
        alive[k] = False
        dropped.append(k)
    return np.asarray(dropped, dtype=np.intp)
