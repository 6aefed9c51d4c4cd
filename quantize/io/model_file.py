"""Colour models saved to JSON and applied to other images without refitting.

A *colour model* is what a fit learned about the colours, independent of the image: the
fitting space, the method, the palette (sRGB) and the class centres in the fitting space,
for a Gaussian mixture its covariances and weights, for the hard methods the shared variance
that turns distances into soft assignments (:mod:`quantize.segment`), and the smoothing
settings.  Applying it labels every pixel with the class it is most probable under (mixture)
or nearest to (hard methods), so class ``k`` means the same colour class on every image.

File format (``"format": "vq-colour-model"``, ``"version": 1``), strict JSON::

    {"format": "vq-colour-model", "version": 1, "software": "vq 0.1.0",
     "method": "gmm", "color_space": "oklab", "dimensions": 3, "n_colors": 5,
     "palette": ["#ba3c46", ...], "means": [[...], ...],
     "covariance_type": "full", "covariances": [...], "weights": [...],
     "variance": null, "smoothing": {"strength": 1.0, "min_region": 64, ...} or null}

A file of a newer format version, or one that is not valid, is refused with
:class:`ModelError` naming the file and the problem.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantize._json import json_safe
from quantize.io.load import LoadError

__all__ = [
    "FORMAT",
    "VERSION",
    "ColourModel",
    "ModelError",
    "apply_model",
    "load_model",
    "model_bytes",
    "model_dict",
    "parse_model",
]

FORMAT = "vq-colour-model"
VERSION = 1
#: files larger than this are not colour models (K <= 65536 with full 3-D covariances is ~20 MB)
_MAX_BYTES = 64 * 2**20


class ModelError(LoadError):
    """A colour-model file cannot be used; the message reads ``"<file>: <problem>"``."""


@dataclass(frozen=True, eq=False)
class ColourModel:
    """A colour model read from a file (or taken from a result).

    Attributes
    ----------
    method : str
    color_space : str
    palette : ndarray of shape (K, 3), uint8
    means : ndarray of shape (K, D), float64
        Class centres in the fitting space (D = 3, or 1 for a one-channel fit).
    covariance_type : str or None
        For a mixture.
    covariances : ndarray or None
    weights : ndarray of shape (K,) or None
    variance : float or None
        Shared variance of the hard methods' soft assignments.
    smoothing : SmoothingSettings or None
    source : str
        The file it was read from (for messages).
    """

    method: str
    color_space: str
    palette: np.ndarray
    means: np.ndarray
    covariance_type: str | None
    covariances: np.ndarray | None
    weights: np.ndarray | None
    variance: float | None
    smoothing: Any
    source: str = "<model>"

    @property
    def n_colors(self) -> int:
        """Number of classes K."""
        return int(self.palette.shape[0])

    @property
    def is_mixture(self) -> bool:
        """Whether the model has covariances (a Gaussian mixture)."""
        return self.covariances is not None


def _hex(c: np.ndarray) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in c))


def model_dict(result: Any) -> dict[str, Any]:
    """Describe a result's colour model as a JSON-safe dict (the file's content).

    Parameters
    ----------
    result : QuantizeResult
        Fitted, applied or smoothed (its smoothing settings are saved).

    Returns
    -------
    doc : dict

    Raises
    ------
    ValueError
        The result has no class centres to save.
    """
    import quantize
    from quantize.segment import hard_variance

    base = result.unsmoothed()
    model = base.model
    palette = np.asarray(base.palette, np.uint8)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "software": f"vq {quantize.__version__}",
        "method": base.method,
        "color_space": base.color_space,
        "n_colors": int(len(palette)),
        "palette": [_hex(c) for c in palette],
    }
    if hasattr(model, "covariances_") and hasattr(model, "weights_"):
        means = np.asarray(model.means_, np.float64)
        doc.update(
            dimensions=int(means.shape[1]),
            means=means,
            covariance_type=model.covariance_type,
            covariances=np.asarray(model.covariances_, np.float64),
            weights=np.asarray(model.weights_, np.float64),
            variance=None,
        )
    else:
        centers = getattr(model, "cluster_centers_", None)
        if centers is None:
            raise ValueError("this result has no class centres to save as a colour model")
        centers = np.asarray(centers, np.float64)
        variance = getattr(model, "variance_", None)
        if variance is None:
            variance = hard_variance(base)
        doc.update(
            dimensions=int(centers.shape[1]),
            means=centers,
            covariance_type=None,
            covariances=None,
            weights=None,
            variance=float(variance),
        )
    seg = getattr(result, "segmentation", None)
    doc["smoothing"] = None if seg is None else seg.settings.to_dict()
    return json_safe(doc)


def model_bytes(result: Any) -> bytes:
    """Encode :func:`model_dict` as UTF-8 JSON (strict: no NaN).

    Parameters
    ----------
    result : QuantizeResult

    Returns
    -------
    data : bytes
    """
    text = json.dumps(model_dict(result), indent=1, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _array(doc: dict[str, Any], key: str, source: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(doc[key], dtype=np.float64)
    except KeyError:
        raise ModelError(source, f"missing {key!r}") from None
    except (TypeError, ValueError):
        raise ModelError(source, f"{key!r} is not an array of numbers") from None
    if arr.shape != shape:
        raise ModelError(source, f"{key!r} must have shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ModelError(source, f"{key!r} holds a value that is not a finite number")
    return arr


def parse_model(doc: Any, source: str = "<model>") -> ColourModel:
    """Validate the content of a colour-model file.

    Parameters
    ----------
    doc : object
        Parsed JSON.
    source : str
        Name of the file, for messages.

    Returns
    -------
    model : ColourModel

    Raises
    ------
    ModelError
        Not a colour model, a newer format version, or invalid content.
    """
    from quantize.cluster.registry import METHODS
    from quantize.options import COLOR_SPACES, COVARIANCE_TYPES
    from quantize.segment import SmoothingSettings

    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelError(source, f'not a VQ Studio colour model (no "format": "{FORMAT}")')
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelError(source, f"invalid model format version {version!r}")
    if version > VERSION:
        raise ModelError(
            source,
            f"written by a newer VQ Studio (model format version {version}; this version reads "
            f"up to {VERSION}): update VQ Studio to use it",
        )
    method = doc.get("method")
    if method not in METHODS and method != "palette":
        raise ModelError(source, f"unknown method {method!r}")
    space = doc.get("color_space")
    if space not in COLOR_SPACES:
        raise ModelError(source, f"unknown colour space {space!r}")
    palette_hex = doc.get("palette")
    if not isinstance(palette_hex, list) or not 1 <= len(palette_hex) <= 65536:
        raise ModelError(source, "'palette' must be a list of 1 to 65536 colours")
    try:
        palette = np.array(
            [[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in palette_hex], dtype=np.uint8
        )
        if not all(isinstance(h, str) and len(h) == 7 and h[0] == "#" for h in palette_hex):
            raise ValueError
    except (TypeError, ValueError, IndexError):
        raise ModelError(source, "'palette' must hold colours written #rrggbb") from None
    k = len(palette)
    if doc.get("n_colors", k) != k:
        raise ModelError(source, f"'n_colors' is {doc.get('n_colors')!r} but the palette has {k}")
    d = doc.get("dimensions")
    if d not in (1, 3):
        raise ModelError(source, f"'dimensions' must be 1 or 3, got {d!r}")
    means = _array(doc, "means", source, (k, d))
    cov_type = doc.get("covariance_type")
    covariances = weights = None
    variance = None
    if doc.get("covariances") is not None:
        if not isinstance(cov_type, str) or cov_type not in COVARIANCE_TYPES:
            raise ModelError(source, f"unknown covariance type {cov_type!r}")
        shape = {"full": (k, d, d), "diag": (k, d), "spherical": (k,), "tied": (d, d)}[cov_type]
        covariances = _array(doc, "covariances", source, shape)
        weights = _array(doc, "weights", source, (k,))
        from quantize.cluster.gmm import GaussianMixture

        try:
            GaussianMixture.from_parameters(means, covariances, weights, covariance_type=cov_type)
        except ValueError as exc:
            raise ModelError(source, f"invalid mixture: {exc}") from None
    else:
        cov_type = None
        v = doc.get("variance")
        if v is not None:
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not np.isfinite(v)
                or v <= 0
            ):
                raise ModelError(source, f"'variance' must be a positive number, got {v!r}")
            variance = float(v)
    smoothing = None
    if doc.get("smoothing") is not None:
        try:
            smoothing = SmoothingSettings.from_dict(doc["smoothing"])
        except (TypeError, ValueError) as exc:
            raise ModelError(source, f"invalid smoothing settings: {exc}") from None
    return ColourModel(
        method=str(method),
        color_space=str(space),
        palette=palette,
        means=means,
        covariance_type=cov_type,
        covariances=covariances,
        weights=weights,
        variance=variance,
        smoothing=smoothing,
        source=source,
    )


def load_model(path: str | os.PathLike[str]) -> ColourModel:
    """Read and validate a colour-model file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    model : ColourModel

    Raises
    ------
    ModelError
        Missing, unreadable, not JSON, not a colour model, newer version, invalid content.
    """
    p = Path(path)
    source = str(p)
    try:
        size = p.stat().st_size
        if size > _MAX_BYTES:
            raise ModelError(source, f"too large for a colour model ({size:,} bytes)")
        data = p.read_bytes()
    except FileNotFoundError:
        raise ModelError(source, "no such file") from None
    except IsADirectoryError:
        raise ModelError(source, "is a folder, not a colour model file") from None
    except OSError as exc:
        raise ModelError(source, f"cannot read ({exc.strerror or exc})") from None
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelError(source, "not a colour model (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise ModelError(
            source, f"not a valid colour model (broken JSON at line {exc.lineno}: {exc.msg})"
        ) from None
    return parse_model(doc, source)


class _HardModel:
    """Stand-in fitted model of a hard method applied from a file."""

    n_iter_ = 0
    converged_ = True

    def __init__(self, centers: np.ndarray, labels: np.ndarray, variance: float | None) -> None:
        self.cluster_centers_ = centers
        self.labels_ = labels
        self.variance_ = variance
        self.n_colors_ = int(len(centers))
        self.history_ = np.zeros(0)
        self.warnings_: list[str] = []


def apply_model(image: Any, model: ColourModel, *, table: Any = None) -> Any:
    """Label an image with a colour model, without fitting.

    Parameters
    ----------
    image : ndarray of shape (M, N, C)
        uint8/uint16 RGB(A) or grey(+alpha); fully transparent pixels are left out.
    model : ColourModel
    table : ColorTable, optional
        The image's distinct colours if already computed.

    Returns
    -------
    result : QuantizeResult
        With the model's palette, in its order; ``method`` is the model's method (a
        mixture's result has its soft responsibilities), ``fit_options`` records
        ``{"model": <file>}``.  Not yet smoothed: see :func:`quantize.segment.segment_result`
        (the model's ``smoothing``).

    Raises
    ------
    ValueError
        A one-channel model applied to an image that is not grey.
    """
    from quantize.cluster._nearest import nearest_indices
    from quantize.cluster.gmm import GaussianMixture
    from quantize.colorspace import SRGB_SPACES
    from quantize.features import unique_colors
    from quantize.pipeline import QuantizeResult, palette_labels, table_points

    t0 = time.perf_counter()
    arr = np.asarray(image)
    if table is None:
        table = unique_colors(arr)
    one_channel = model.means.shape[1] == 1
    if one_channel:
        c = table.colors
        grey = c.shape[1] == 1 or bool((c[:, 0] == c[:, 1]).all() and (c[:, 1] == c[:, 2]).all())
        if not grey:
            raise ValueError(f"{model.source}: a one-channel (grey) model needs a grey image")
    points = table_points(table, model.color_space, one_channel=one_channel)
    est: Any
    if model.is_mixture:
        assert model.covariance_type is not None
        est = GaussianMixture.from_parameters(
            model.means, model.covariances, model.weights, covariance_type=model.covariance_type
        )
        labels = est.predict(points) if len(points) else np.zeros(0, np.int32)
        est.labels_ = labels
    else:
        if not len(points):
            labels = np.zeros(0, np.int64)
        elif one_channel or model.color_space not in SRGB_SPACES:
            labels = nearest_indices(points, model.means)
        else:  # as the fit labelled its colours: the entry each is shown with
            labels = palette_labels(table, model.palette, model.color_space)
        est = _HardModel(model.means, labels, model.variance)
    return QuantizeResult.from_labels(
        arr,
        table,
        points,
        labels,
        model.palette.copy(),
        history=np.zeros(0),
        records=[],
        model=est,
        method=model.method,
        color_space=model.color_space,
        n_colors_requested=model.n_colors,
        seed=0,
        fit_options={"model": model.source},
        warnings=[],
        elapsed_s=time.perf_counter() - t0,
    )
