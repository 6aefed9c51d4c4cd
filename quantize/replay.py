"""Replay a recorded fit: the E-step assignments under the parameters of one iteration.

An :class:`~quantize.protocol.IterationRecord` holds the centres (and, for a Gaussian mixture,
the covariances and weights) after its iteration.  :func:`record_labels` assigns points to
clusters under those parameters, exactly as the next E step would: nearest centre for K-means,
highest posterior ``pi_k N(x | mu_k, Sigma_k)`` for a mixture.  The GUI's colour-space view
uses it to show how points change cluster while the iteration slider moves.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_points
from .protocol import IterationRecord

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
        raise ValueError(
            f"points of shape {X.shape} do not match centres of shape {centers.shape}"
        )
    if record.covariances is None or record.weights is None:
        d2 = (
            np.einsum("ij,ij->i", X, X)[:, None]
            - 2.0 * X @ centers.T
            + np.einsum("ij,ij->i", centers, centers)[None, :]
        )
        return np.argmin(d2, axis=1).astype(np.int64)
    return np.argmax(_log_joint(X, centers, record.covariances, record.weights), axis=1).astype(
        np.int64
    )


def _log_joint(
    X: np.ndarray, means: np.ndarray, covariances: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """``log pi_k + log N(x | mu_k, Sigma_k)`` for every point and component, shape (S, K)."""
    covs = np.asarray(covariances, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    S, D = X.shape
    out = np.empty((S, len(means)))
    with np.errstate(divide="ignore"):
        log_w = np.log(w)
    for k, (mu, cov) in enumerate(zip(means, covs, strict=True)):
        chol = _cholesky(cov)
        z = np.linalg.solve(chol, (X - mu).T)  # (D, S): L^-1 (x - mu)
        log_det = 2.0 * np.sum(np.log(np.diag(chol)))
        out[:, k] = log_w[k] - 0.5 * (D * np.log(2 * np.pi) + log_det + np.sum(z * z, axis=0))
    return out


def _cholesky(cov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor, with growing jitter for a (recorded) near-singular matrix."""
    scale = max(float(np.trace(cov)) / len(cov), 1e-12)
    jitter = 0.0
    for _ in range(8):
        try:
            return np.linalg.cholesky(cov + jitter * np.eye(len(cov)))
        except np.linalg.LinAlgError:
            jitter = scale * 1e-9 if jitter == 0.0 else jitter * 100.0
    return np.linalg.cholesky(np.diag(np.full(len(cov), scale)))
