"""Yinyang bounds for the K-means E step: skip the points whose nearest centre cannot change.

The centres are split into groups (:func:`centre_groups`); each point keeps an upper bound on
the distance to its centre and one lower bound per group.  After the centres move, only the
groups whose bound falls below the point's upper bound are searched, with exact float64
distances and the lowest-index rule of :mod:`quantize.cluster._nearest`.
(Yinyang K-means: Ding et al., ICML 2015; with one group it is Hamerly's algorithm.)
"""

from __future__ import annotations

import numpy as np

from quantize._chunks import chunk_size, iter_chunks
from quantize.cluster._nearest import find_group_starts, group_min
from quantize.protocol import CancelCallback, check_cancel

__all__ = [
    "centre_groups",
    "direct_update",
    "group_layout",
    "half_min_center_dist",
    "yinyang_update",
]

_GROUP_SIZE = 10
_GROUP_SIZE_SMALL_K = 4  # tighter bounds pay off when K is small


def half_min_center_dist(centers: np.ndarray) -> np.ndarray:
    """Half the distance from each centre to its nearest other centre, shape (K,)."""
    K = centers.shape[0]
    if K == 1:
        return np.full(1, np.inf)
    diff = centers[:, None, :] - centers[None, :, :]
    dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    np.fill_diagonal(dist, np.inf)
    return 0.5 * dist.min(axis=1)


def centre_groups(centers: np.ndarray, n_points: int, working_memory_mib: float) -> np.ndarray:
    """Partition the centres into G groups (Yinyang K-means) by a few Lloyd steps on them.

    Returns ``group_of`` (K,) with values 0..G-1.  G is about K / 10 (K / 4 for K <= 32),
    capped so that the (G, N) lower bounds fit in four times the working memory.
    """
    K = centers.shape[0]
    group_size = _GROUP_SIZE_SMALL_K if K <= 32 else _GROUP_SIZE
    G = max(1, min(int(np.ceil(K / group_size)), K))
    cap = int(4 * working_memory_mib * 2**20 // (8 * max(n_points, 1)))
    G = max(1, min(G, cap))
    if G == 1:
        return np.zeros(K, dtype=np.intp)
    # farthest-point seeds then Lloyd on the K centres (deterministic)
    seeds = [0]
    dmin = ((centers - centers[0]) ** 2).sum(axis=1)
    for _ in range(1, G):
        nxt = int(np.argmax(dmin))
        seeds.append(nxt)
        dmin = np.minimum(dmin, ((centers - centers[nxt]) ** 2).sum(axis=1))
    g_centers = centers[seeds].copy()
    group_of = np.zeros(K, dtype=np.intp)
    for _ in range(5):
        diff = centers[:, None, :] - g_centers[None, :, :]
        group_of = np.einsum("ijk,ijk->ij", diff, diff).argmin(axis=1)
        for g in range(G):
            members = group_of == g
            if members.any():
                g_centers[g] = centers[members].mean(axis=0)
    # renumber so that group ids are 0..G'-1 with no empty group
    _, group_of = np.unique(group_of, return_inverse=True)
    return group_of.reshape(-1)


def group_layout(
    centers: np.ndarray, group_of: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres padded per group: (G, gmax, D) coordinates, (G, gmax) index (-1 = pad)."""
    K, D = centers.shape
    starts = find_group_starts(group_of)
    G = starts.size
    sizes = np.diff(np.append(starts, K))
    gmax = int(sizes.max())
    index = np.full((G, gmax), -1, dtype=np.intp)
    pos = np.arange(K) - starts[group_of]
    index[group_of, pos] = np.arange(K)
    coords = np.zeros((G, gmax, D))
    coords[group_of, pos] = centers
    return coords, index, index >= 0


def direct_update(
    X: np.ndarray,
    cand: np.ndarray,
    labels: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    centers: np.ndarray,
    group_starts: np.ndarray,
    should_cancel: CancelCallback | None,
    working_memory_mib: float,
    eps: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Reassign candidates like :func:`yinyang_update`, measuring every centre for each.

    With few centres this costs less than choosing groups point by point, and it leaves
    exact bounds for every group.  A point moves only to a strictly closer centre (the
    lowest index among equals), as in :func:`yinyang_update`.
    """
    K, D = centers.shape
    rows = chunk_size(cand.size, 8 * K * (D + 3), working_memory_mib)
    changed_parts: list[np.ndarray] = []
    old_parts: list[np.ndarray] = []
    for sl in iter_chunks(cand.size, rows):
        check_cancel(should_cancel)
        pts = cand[sl]
        diff = X[pts][:, None, :] - centers[None, :, :]
        d = np.einsum("pkd,pkd->pk", diff, diff)
        r = np.arange(pts.size)
        old = labels[pts]
        best = d.argmin(axis=1)
        move = d[r, best] < d[r, old]
        new = np.where(move, best, old)
        upper[pts] = np.sqrt(d[r, new])
        d[r, new] = np.inf
        lower[:, pts] = (np.sqrt(group_min(d, group_starts)) - eps).T
        if move.any():
            labels[pts[move]] = new[move]
            changed_parts.append(pts[move])
            old_parts.append(old[move])
    if changed_parts:
        return np.concatenate(changed_parts), np.concatenate(old_parts)
    return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int32)


def yinyang_update(
    X: np.ndarray,
    cand: np.ndarray,
    labels: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    layout: tuple[np.ndarray, np.ndarray, np.ndarray],
    group_of: np.ndarray,
    should_cancel: CancelCallback | None,
    working_memory_mib: float,
    eps: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Reassign the candidate points, searching only the groups their bounds cannot rule out.

    ``upper[cand]`` must be exact distances to the current centres; ``lower`` is (G, N).
    Every centre of a group with ``lower[g, n] < upper[n]`` is measured exactly (float64);
    the other groups
    cannot hold a closer centre.  Labels, upper and lower bounds are updated in place.
    Returns the points whose label changed and their previous labels.
    """
    coords, index, valid = layout
    n_groups = coords.shape[0]
    sizes = valid.sum(axis=1)
    # groups are processed one at a time: the largest temporary per row is one group's
    # (size, D) block of differences plus the (G,) bound row
    per_point = (coords.shape[1] * (coords.shape[2] + 1) + coords.shape[0]) * 8 * 3
    rows_per_chunk = int(min(65536, max(1024, working_memory_mib * 2**20 // per_point)))
    changed_parts: list[np.ndarray] = []
    old_parts: list[np.ndarray] = []
    for sl in iter_chunks(cand.size, rows_per_chunk):
        check_cancel(should_cancel)
        pts = cand[sl]
        up = upper[pts]
        need = lower[:, pts].T < up[:, None]
        pi, gi = np.nonzero(need)
        if pi.size == 0:
            continue
        # exact distances, one group at a time (no padded (pairs, gmax, D) gather)
        b1 = np.empty(pi.size)
        b2 = np.full(pi.size, np.inf)
        cand_lab = np.empty(pi.size, dtype=np.intp)
        order = np.argsort(gi, kind="stable")
        cuts = np.searchsorted(gi[order], np.arange(n_groups + 1))
        Xp = X[pts[pi]]
        for g in range(n_groups):
            if cuts[g] == cuts[g + 1]:
                continue
            sel = order[cuts[g] : cuts[g + 1]]
            diff = Xp[sel][:, None, :] - coords[g, : sizes[g]][None, :, :]
            dd = np.einsum("pjk,pjk->pj", diff, diff)
            j = dd.argmin(axis=1)
            rr = np.arange(sel.size)
            b1[sel] = dd[rr, j]
            cand_lab[sel] = index[g, j]
            if sizes[g] > 1:
                dd[rr, j] = np.inf
                b2[sel] = dd.min(axis=1)
        # best pair per point (pairs come sorted by point)
        starts = np.r_[True, pi[1:] != pi[:-1]]
        first = np.flatnonzero(starts)
        seg_of_pair = np.cumsum(starts) - 1
        best_val = np.minimum.reduceat(b1, first)
        owner = pi[first]
        # first pair reaching the minimum, per point (hits come in segment order)
        hit = np.flatnonzero(b1 == best_val[seg_of_pair])
        hit_seg = seg_of_pair[hit]
        best_pair = hit[np.r_[True, hit_seg[1:] != hit_seg[:-1]]]
        up_sq = up[owner] ** 2
        rows_all = pts[owner]
        old = labels[rows_all]
        # the current centre may be among the examined ones: moving needs another centre
        move = (best_val < up_sq) & (cand_lab[best_pair] != old)
        new = np.where(move, cand_lab[best_pair], old)
        # exact lower bounds of the examined groups (excluding the final label)
        final_of_pair = new[seg_of_pair]
        excl = np.where(cand_lab == final_of_pair, b2, b1)
        lower[gi, pts[pi]] = np.sqrt(excl) - eps
        moved_rows = rows_all[move]
        if moved_rows.size:
            old_m = old[move]
            g_old = group_of[old_m]
            # the old centre joins its group's bound where that group was not examined
            lower[g_old, moved_rows] = np.minimum(lower[g_old, moved_rows], up[owner][move] - eps)
            labels[moved_rows] = new[move]
            upper[moved_rows] = np.sqrt(best_val[move])
            changed_parts.append(moved_rows)
            old_parts.append(old_m)
    if changed_parts:
        return np.concatenate(changed_parts), np.concatenate(old_parts)
    return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int32)
