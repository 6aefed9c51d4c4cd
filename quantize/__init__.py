"""VQ Studio engine: colour vector quantization with weighted K-means and Gaussian mixtures.

Pure numpy/scipy/Pillow/scikit-image; never imports Qt or :mod:`app`.  Public names are
imported lazily so that ``import quantize`` (and the ``vq`` command's start-up) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # protocol
    "IterationRecord": "protocol",
    "Cancelled": "protocol",
    "QuantizeWarning": "protocol",
    "ConvergenceWarning": "protocol",
    "drain": "protocol",
    # estimators
    "KMeans": "kmeans",
    "MiniBatchKMeans": "kmeans",
    "kmeans_plusplus": "kmeans",
    "GaussianMixture": "gmm",
    "Optimal1D": "optimal1d",
    "optimal_1d": "optimal1d",
    # features / colour spaces
    "ColorTable": "features",
    "unique_colors": "features",
    "record_labels": "replay",
    # the pipeline
    "QuantizeResult": "result",
    "quantize_image": "result",
    "iter_quantize_image": "result",
    # images in, files out
    "LoadedImage": "io",
    "LoadError": "io",
    "load_image": "io",
    "Metrics": "metrics",
    "compute_metrics": "metrics",
    "ExportError": "export",
    "export_all": "export",
    "plan_exports": "export",
    # resources
    "sample_image_path": "resources",
    # defaults shared by the CLI and the app
    "DEFAULTS": "defaults",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'quantize' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"quantize.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
