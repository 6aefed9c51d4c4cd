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
    "KMeans": "cluster.kmeans",
    "MiniBatchKMeans": "cluster.minibatch",
    "kmeans_plusplus": "cluster.kmeans",
    "GaussianMixture": "cluster.gmm",
    "Optimal1D": "cluster.optimal1d",
    "optimal_1d": "cluster.optimal1d",
    # features / colour spaces
    "ColorTable": "features",
    "unique_colors": "features",
    "record_labels": "cluster.replay",
    # the pipeline
    "QuantizeResult": "pipeline",
    "quantize_image": "pipeline",
    "iter_quantize_image": "pipeline",
    # images in, files out
    "LoadedImage": "io.load",
    "LoadError": "io.load",
    "load_image": "io.load",
    "Metrics": "metrics",
    "compute_metrics": "metrics",
    "ExportError": "io.errors",
    "export_all": "io.export",
    "plan_exports": "io.export",
    # resources
    "sample_image_path": "resources",
    # defaults shared by the CLI and the app
    "DEFAULTS": "options",
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
