"""Replay a recorded fit: the E-step assignments under the parameters of one iteration.

An :class:`~quantize.protocol.IterationRecord` holds the centres (and, for a Gaussian mixture,
the covariances and weights) after its iteration.  :func:`record_labels` assigns points to
clusters under those parameters, exactly as the next E step would: nearest centre for K-means,
highest posterior ``pi_k N(x | mu_k, Sigma_k)`` for a mixture (computed by
:mod:`quantize.cluster.gmm`,
which also treats a covariance that is not positive definite as the fit does).  The GUI's
colour-space view uses it to show how points change cluster while the iteration slider moves.
"""

from __future__ import annotations

import numpy as np

from quantize._validation import check_points
from quantize.cluster._nearest import nearest_indices
from quantize.cluster.gmm import full_log_joint
from quantize.protocol import IterationRecord

__all__ = ["record_labels"]


def record_labels(points: np.ndarray, record: IterationRecord) -> np.ndarray:
    """Hard assignments of ``points`` under the parameters recorded in ``record``.

    Parameters
    ----------
    points : ndarray of shape (S, D)
        Points in the record's fitting space (a sample of an image's colours).
    record : IterationRecord
        One iteration of a fit; ``centers`` of shape (K, D), and for a mixture
        ``covariances`` (K, D, D) and ``weights`` (K,).

    Returns
    -------
    labels : ndarray of shape (S,), int64
        Index of the nearest centre (K-means) or of the component with the highest
        posterior probability (Gaussian mixture).

    Raises
    ------
    ValueError
        If the points are not finite or their dimension differs from the centres'.
    """
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64)
    X, _ = check_points(points, name="points")
    centers = np.asarray(record.centers, dtype=np.float64)
    if centers.ndim != 2 or X.shape[1] != centers.shape[1]:
        raise ValueError(f"points of shape {X.shape} do not match centres of shape {centers.shape}")
    if record.covariances is None or record.weights is None:
        return nearest_indices(X, centers)
    log_joint = full_log_joint(X, centers, record.covariances, record.weights)
    return np.argmax(log_joint, axis=1).astype(np.int64)
