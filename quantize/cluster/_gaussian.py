"""Gaussian densities of a mixture as one quadratic form per component.

For every covariance type ``log pi_k + log N(x | mu_k, Sigma_k)`` is a quadratic form in x,
so all K components are one product ``F(x) @ W`` of the quadratic features
``F(x) = [x_i x_j (i <= j), x_i, 1]`` with a (F, K) matrix built from the Cholesky factors
of the precisions.  :class:`GaussianParams` holds the parameters of one EM iteration and
builds that matrix; covariances that are not positive definite get growing diagonal
jitter (:func:`jittered_cholesky`).
"""

from __future__ import annotations

import numpy as np

from quantize._blas import matmul

__all__ = [
    "GaussianParams",
    "full_log_joint",
    "full_params",
    "jittered_cholesky",
    "log_resp_chunk",
    "quadratic_features",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


def quadratic_features(X: np.ndarray, iu: np.ndarray, ju: np.ndarray) -> np.ndarray:
    """Quadratic features [x_i x_j (i <= j), x_i, 1] of shape (n, F)."""
    n, D = X.shape
    F = np.empty((n, iu.size + D + 1))
    np.multiply(X[:, iu], X[:, ju], out=F[:, : iu.size])
    F[:, iu.size : iu.size + D] = X
    F[:, -1] = 1.0
    return F


def log_resp_chunk(F: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Responsibilities (n, K) and log p(x) (n,) from features, in the log domain."""
    L = matmul(F, W)
    m = L.max(axis=1)
    bad = ~np.isfinite(m)
    if bad.any():  # cannot happen for finite inputs; keep responsibilities defined anyway
        L[bad] = 0.0
        m[bad] = 0.0
    L -= m[:, None]
    np.exp(L, out=L)
    s = L.sum(axis=1)
    L /= s[:, None]
    log_p = m + np.log(s)
    if bad.any():
        log_p[bad] = -np.inf
    return L, log_p


class GaussianParams:
    """Means, covariances (in the estimator's storage form) and derived full precisions."""

    def __init__(
        self,
        means: np.ndarray,
        covariances: np.ndarray,
        weights: np.ndarray,
        cov_type: str,
        prec_chol: np.ndarray,
    ) -> None:
        self.means = means
        self.covariances = covariances
        self.weights = weights
        self.cov_type = cov_type
        self.prec_chol = prec_chol

    @property
    def K(self) -> int:
        return int(self.means.shape[0])

    def half_logdet(self) -> np.ndarray:
        """0.5 * log det of each precision matrix, shape (K,)."""
        K, D = self.means.shape
        pc = self.prec_chol
        if self.cov_type == "full":
            return np.log(np.diagonal(pc, axis1=1, axis2=2)).sum(axis=1)
        if self.cov_type == "tied":
            return np.full(K, np.log(np.diag(pc)).sum())
        if self.cov_type == "diag":
            return np.log(pc).sum(axis=1)
        return D * np.log(pc)

    def full_precisions(self) -> tuple[np.ndarray, np.ndarray]:
        """Precision matrices (K, D, D) and 0.5 * log det of each."""
        K, D = self.means.shape
        pc = self.prec_chol
        if self.cov_type == "full":
            P = pc @ np.swapaxes(pc, 1, 2)
        elif self.cov_type == "tied":
            P = np.broadcast_to(pc @ pc.T, (K, D, D)).copy()
        elif self.cov_type == "diag":
            P = np.zeros((K, D, D))
            idx = np.arange(D)
            P[:, idx, idx] = pc**2
        else:
            P = np.eye(D)[None, :, :] * (pc**2)[:, None, None]
        return P, self.half_logdet()

    def add_log_norm(self, quad: np.ndarray) -> np.ndarray:
        """Add ``log pi_k`` and the log of each Gaussian's normalising constant.

        ``log pi_k + log N(x | mu_k, Sigma_k) = add_log_norm(-0.5 * Mahalanobis^2)``.

        Parameters
        ----------
        quad : ndarray of shape (..., K)
            Quadratic (exponent) term per component.

        Returns
        -------
        log_joint : ndarray of shape (..., K)
        """
        with np.errstate(divide="ignore"):
            log_w = np.log(self.weights)
        return quad + self.half_logdet() - 0.5 * self.means.shape[1] * _LOG_2PI + log_w

    def log_joint(self, X: np.ndarray) -> np.ndarray:
        """``log pi_k + log N(x | mu_k, Sigma_k)`` from Mahalanobis distances, shape (n, K).

        The direct form of ``F(X) @ score_matrix()``: no quadratic feature expansion, so
        it stays exact far from the data's mean and for nearly singular covariances; for
        small point sets (e.g. a display sample) rather than the fit's chunked passes.
        """
        pc = self.prec_chol
        maha = np.empty((X.shape[0], self.K))  # squared Mahalanobis distances
        for k, mu in enumerate(self.means):
            diff = X - mu
            if self.cov_type == "full":
                y = diff @ pc[k]
            elif self.cov_type == "tied":
                y = diff @ pc
            else:  # diag: (D,) per component; spherical: a scalar per component
                y = diff * pc[k]
            maha[:, k] = np.einsum("ij,ij->i", y, y)
        return self.add_log_norm(-0.5 * maha)

    def full_covariances(self) -> np.ndarray:
        K, D = self.means.shape
        c = self.covariances
        if self.cov_type == "full":
            return c.copy()
        if self.cov_type == "tied":
            return np.broadcast_to(c, (K, D, D)).copy()
        if self.cov_type == "diag":
            out = np.zeros((K, D, D))
            idx = np.arange(D)
            out[:, idx, idx] = c
            return out
        return np.eye(D)[None, :, :] * c[:, None, None]

    def score_matrix(self, iu: np.ndarray, ju: np.ndarray) -> np.ndarray:
        """(F, K) matrix W with F(x) @ W = log pi_k + log N(x | mu_k, Sigma_k)."""
        K, D = self.means.shape
        P, _ = self.full_precisions()
        W = np.empty((iu.size + D + 1, K))
        quad = -P[:, iu, ju]  # (K, n_quad)
        quad[:, iu == ju] *= 0.5
        W[: iu.size] = quad.T
        Pm = np.einsum("kij,kj->ki", P, self.means)
        W[iu.size : iu.size + D] = Pm.T
        W[-1] = self.add_log_norm(-0.5 * np.einsum("ki,ki->k", self.means, Pm))
        return W


def jittered_cholesky(
    cov: np.ndarray, reg: float
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, float]]]:
    """Batched lower Cholesky factors; a matrix that is not positive definite gets jitter.

    The jitter starts at ``max(reg, 1e-12 * trace / D)`` and grows tenfold until the
    factorisation succeeds.

    Parameters
    ----------
    cov : ndarray of shape (K, D, D)
        Symmetric covariance matrices (not modified).
    reg : float
        Regularisation already on the diagonal (the first jitter tried).

    Returns
    -------
    cov : ndarray of shape (K, D, D)
        ``cov`` itself when every matrix factorised, else a copy with jitter added.
    chol : ndarray of shape (K, D, D)
        Lower Cholesky factors of the returned matrices.
    jittered : list of (int, float)
        Index and added jitter of every matrix that needed some.
    """
    try:
        return cov, np.linalg.cholesky(cov), []
    except np.linalg.LinAlgError:
        pass
    D = cov.shape[-1]
    out = cov.copy()
    chol = np.empty_like(cov)
    jittered: list[tuple[int, float]] = []
    for k in range(cov.shape[0]):
        scale = max(float(np.trace(cov[k])) / D, 1e-12)
        start = max(reg, 1e-12 * scale)
        jitter = start
        for _ in range(40):
            try:
                chol[k] = np.linalg.cholesky(out[k])
                break
            except np.linalg.LinAlgError:
                out[k] = cov[k] + jitter * np.eye(D)
                jitter *= 10.0
        else:  # pragma: no cover - only for absurd inputs
            out[k] = np.eye(D) * scale
            chol[k] = np.linalg.cholesky(out[k])
        if jitter > start:
            jittered.append((k, jitter / 10))
    return out, chol, jittered


def full_params(
    means: np.ndarray, covariances: np.ndarray, weights: np.ndarray, reg: float = 0.0
) -> tuple[GaussianParams, list[tuple[int, float]]]:
    """Parameters of a mixture with full covariances (e.g. those of an iteration record).

    Parameters
    ----------
    means : ndarray of shape (K, D)
    covariances : ndarray of shape (K, D, D)
        Made positive definite with :func:`jittered_cholesky` if needed.
    weights : ndarray of shape (K,)
    reg : float
        Regularisation already on the covariances' diagonal.

    Returns
    -------
    params : GaussianParams
        ``cov_type="full"``.
    jittered : list of (int, float)
        Components whose covariance needed jitter, as from :func:`jittered_cholesky`.
    """
    cov, chol, jittered = jittered_cholesky(np.asarray(covariances, dtype=np.float64), reg)
    prec_chol = np.swapaxes(np.linalg.inv(chol), 1, 2)
    params = GaussianParams(
        np.asarray(means, dtype=np.float64),
        cov,
        np.asarray(weights, dtype=np.float64),
        "full",
        prec_chol,
    )
    return params, jittered


def full_log_joint(
    X: np.ndarray, means: np.ndarray, covariances: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """``log pi_k + log N(x | mu_k, Sigma_k)`` under full-covariance mixture parameters.

    Parameters
    ----------
    X : ndarray of shape (S, D)
        Finite points.
    means : ndarray of shape (K, D)
    covariances : ndarray of shape (K, D, D)
        A matrix that is not positive definite gets growing diagonal jitter, as in the fit.
    weights : ndarray of shape (K,)
        Mixing weights (a zero weight gives ``-inf``).

    Returns
    -------
    log_joint : ndarray of shape (S, K)
    """
    params, _ = full_params(means, covariances, weights)
    return params.log_joint(np.asarray(X, dtype=np.float64))
