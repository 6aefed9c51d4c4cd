"""The JSON sidecar: everything needed to reproduce and judge a result.

Input file (path, SHA-256, size), parameters, rendering, seed, library versions, iterations,
metrics, palette with shares and the names of the files written alongside, as strict JSON
(no NaN or infinity: :func:`quantize._json.json_safe`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from quantize._json import json_safe
from quantize.io._atomic import bytes_fill, open_regular_file, reason, run_jobs
from quantize.io.palettes import hex_color, shares

if TYPE_CHECKING:  # pragma: no cover
    from quantize.metrics import Metrics
    from quantize.pipeline import QuantizeResult

__all__ = ["sidecar_bytes", "sidecar_dict", "write_sidecar"]


def _versions() -> dict[str, str]:
    import PIL
    import scipy
    import skimage

    import quantize

    return {
        "vq-studio": quantize.__version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pillow": PIL.__version__,
        "scikit-image": skimage.__version__,  # type: ignore[attr-defined]
    }


def _not_hashable(path: str | os.PathLike[str], problem: str) -> OSError:
    return OSError(problem)  # recorded as the input's "error"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    # a regular file only: a FIFO or a device given as the source cannot hang the export
    with open_regular_file(path, "source file", _not_hashable) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sidecar_dict(
    result: QuantizeResult,
    *,
    source_path: str | os.PathLike[str] | None = None,
    metrics: Metrics | dict[str, Any] | None = None,
    dither: str = "none",
    strength: float = 1.0,
    outputs: Iterable[str | os.PathLike[str]] = (),
    source_sha256: str | None = None,
    rendering: tuple[np.ndarray, bytes] | None = None,
) -> dict[str, Any]:
    """Everything needed to reproduce and judge a result, as strict-JSON-safe data.

    Parameters
    ----------
    result : QuantizeResult
    source_path : str or Path, optional
        Input file; its SHA-256 and size are recorded.
    metrics : Metrics or dict, optional
        Computed for the given rendering when not supplied.
    dither, strength : optional
        Rendering used for the image outputs.
    outputs : iterable of str or Path, optional
        Names of the files written alongside.
    source_sha256 : str, optional
        SHA-256 of the source's bytes when already known (e.g.
        ``LoadedImage.info["sha256"]``): the file is then not read again.
    rendering : (indices, png), optional
        :func:`quantize.metrics.render_indexed` of this rendering, used when the metrics
        have to be computed.

    Returns
    -------
    doc : dict
    """
    palette = np.asarray(result.palette, np.uint8)
    values = shares(palette, getattr(result, "proportions", None))
    params = dict(result.parameters()) if hasattr(result, "parameters") else {}
    image = np.asarray(result.image)
    source: dict[str, Any] | None = None
    if source_path is not None:
        sp = Path(source_path)
        source = {"path": str(sp.resolve()), "name": sp.name}
        try:
            source["sha256"] = source_sha256 or _sha256(sp)
            source["bytes"] = sp.stat().st_size
        except OSError as exc:
            source["error"] = reason(exc)
    history = np.asarray(getattr(result, "history", np.zeros(0)), np.float64)
    metrics_error = None
    if metrics is None:  # the sidecar promises metrics: measure the rendering now
        from quantize.metrics import compute_metrics

        original = source.get("bytes") if source else None
        try:
            metrics = compute_metrics(
                result,
                dither=dither,
                strength=strength,
                original_bytes=original,
                rendering=rendering,
            )
        except (ValueError, TypeError, AttributeError, MemoryError) as exc:
            metrics_error = f"{type(exc).__name__}: {exc}"
    if metrics is not None and hasattr(metrics, "to_dict"):
        metrics = metrics.to_dict()
    doc = {
        "format": "vq-studio sidecar 1",
        "input": source,
        "image": {
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "channels": int(image.shape[2]) if image.ndim == 3 else 1,
            "dtype": str(image.dtype),
        },
        "parameters": params,
        "render": {"dither": dither, "strength": float(strength)},
        "seed": getattr(result, "seed", params.get("seed")),
        "versions": _versions(),
        "iterations": params.get("n_iter", int(history.size)),
        "converged": params.get("converged"),
        "history": history,
        "warnings": list(getattr(result, "warnings", []) or []),
        "metrics": metrics,
        **({"metrics_error": metrics_error} if metrics_error else {}),
        "palette": [
            {"index": i, "hex": hex_color(c), "rgb": [int(v) for v in c], "share": s}
            for i, (c, s) in enumerate(zip(palette, values, strict=True))
        ],
        "outputs": [Path(p).name for p in outputs],
    }
    return json_safe(doc)


def sidecar_bytes(doc: dict[str, Any]) -> bytes:
    """Encode a :func:`sidecar_dict` as the sidecar file's bytes (strict JSON, UTF-8).

    Parameters
    ----------
    doc : dict

    Returns
    -------
    data : bytes
    """
    return (json.dumps(doc, indent=2, allow_nan=False, sort_keys=False) + "\n").encode("utf-8")


def write_sidecar(
    path: str | os.PathLike[str],
    result: QuantizeResult,
    *,
    source_path: str | os.PathLike[str] | None = None,
    metrics: Metrics | dict[str, Any] | None = None,
    dither: str = "none",
    strength: float = 1.0,
    outputs: Iterable[str | os.PathLike[str]] = (),
    overwrite: bool = False,
) -> Path:
    """Write the JSON sidecar (strict JSON: no NaN or infinity).

    Parameters
    ----------
    path : str or Path
    result : QuantizeResult
    source_path, metrics, dither, strength, outputs : optional
        See :func:`sidecar_dict`.
    overwrite : bool, optional

    Returns
    -------
    path : Path
    """
    doc = sidecar_dict(
        result,
        source_path=source_path,
        metrics=metrics,
        dither=dither,
        strength=strength,
        outputs=outputs,
    )
    return run_jobs([(Path(path), bytes_fill(sidecar_bytes(doc)))], overwrite)[0]
