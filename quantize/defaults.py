"""Default run parameters shared by the ``vq`` command line and the desktop app.

One place, so that ``vq quantize photo.jpg`` and pressing *Run* in VQ Studio give the same
result for the same image.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

__all__ = ["DEFAULTS"]

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
