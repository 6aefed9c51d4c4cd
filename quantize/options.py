"""Default run parameters shared by the ``vq`` command line and the desktop app.

One place, so that ``vq quantize photo.jpg`` and pressing *Run* in VQ Studio give the same
result for the same image.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

__all__ = ["DEFAULTS", "fit_options"]

#: Read-only mapping of default parameters.
DEFAULTS: MappingProxyType[str, Any] = MappingProxyType(
    {
        "method": "kmeans",
        "n_colors": 16,
        "color_space": "oklab",
        "covariance_type": "full",
        "init": "k-means++",
        "n_init": 3,
        "max_iter": 100,
        "tol": 1e-4,
        "seed": 0,
        "dither": "none",
        "dither_strength": 1.0,
        "target_psnr": 35.0,
        "k_max_quality": 256,
        "k_max_bic": 16,
        "max_pixels": 100_000_000,
    }
)


def fit_options(
    method: str,
    *,
    init: Any,
    n_init: int,
    max_iter: int,
    tol: float,
    covariance_type: str = DEFAULTS["covariance_type"],
) -> dict[str, Any]:
    """Estimator options of a run, as the ``vq`` command and the app pass them to the engine.

    Parameters
    ----------
    method : {"kmeans", "minibatch", "gmm", "optimal1d"}
        Fitting method.
    init : str or ndarray of shape (K, 3)
        Initialisation.
    n_init, max_iter : int
        Restarts and iteration cap per restart.
    tol : float
        Convergence tolerance.
    covariance_type : str, optional
        Used by ``"gmm"`` only.

    Returns
    -------
    options : dict
        ``**fit_options`` for :func:`quantize.pipeline.iter_quantize_image` (empty for the
        exact 1-D method, which has none).
    """
    if method == "optimal1d":
        return {}
    options: dict[str, Any] = {"init": init, "n_init": n_init, "max_iter": max_iter, "tol": tol}
    if method == "gmm":
        options["covariance_type"] = covariance_type
    return options
