"""``vq batch --shared-palette``: one palette for a whole set of images.

Three steps, each a set of independent tasks (run in this process or as Dask tasks):

1. :func:`histogram_task` reduces each input (every frame of an animation) to its weighted
   colour histogram (:mod:`quantize.histograms`);
2. the histograms are summed exactly (:func:`~quantize.histograms.merge_histograms`, a tree
   of pairwise sums on a cluster) and :func:`fit_task` fits one palette to the sum;
3. every input is mapped onto that palette by the batch's usual per-file task, an animated
   GIF/APNG by :func:`write_animation` into one animated PNG with that palette.
"""

from __future__ import annotations

import argparse
import json
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from quantize.cli._common import classify, native_stderr_muted
from quantize.cli._interrupt import begin_writing, start_task

__all__ = ["fit_task", "histogram_task", "merge_pair", "write_animation"]

#: container formats whose extra frames are an animation (a multi-page TIFF is pages)
ANIMATED_FORMATS = frozenset({"GIF", "PNG", "WEBP"})


def _label(path_text: str) -> str:
    return "<stdin>" if path_text == "-" else path_text


def histogram_task(task: tuple[str, str, dict[str, Any], bytes | None]) -> dict[str, Any]:
    """Reduce one input to its weighted colour histogram (runs in a worker).

    Parameters
    ----------
    task : (str, str, dict, bytes or None)
        As for :func:`quantize.cli.batch.batch_task`.

    Returns
    -------
    report : dict
        ``input``, ``ok``; when ok ``histogram`` (:class:`ColorHistogram`) and ``frames``
        (frames that went into it: > 1 for an animation); otherwise ``code`` and ``message``.
    """
    from quantize.histograms import histogram_of_image, merge_histograms
    from quantize.io.animation import load_animation
    from quantize.io.load import LoadError, load_image, load_image_bytes, require_visible_pixels

    start_task()
    path_text, _stem, options, data = task
    args = argparse.Namespace(**options)
    try:
        with native_stderr_muted(not args.debug):
            if data is not None:
                loaded = load_image_bytes(data, name="<stdin>", max_pixels=args.max_pixels)
            else:
                loaded = load_image(Path(path_text), max_pixels=args.max_pixels)
        require_visible_pixels(loaded, _label(path_text))
        frames = 1
        if data is None and loaded.n_frames > 1 and loaded.format in ANIMATED_FORMATS:
            with native_stderr_muted(not args.debug):
                anim = load_animation(path_text, max_pixels=args.max_pixels)
            parts = [histogram_of_image(f) for f in anim.frames if bool((f[..., 3] > 0).any())]
            if not parts:
                raise LoadError(path_text, "every frame is fully transparent")
            histogram = merge_histograms(parts)
            frames = anim.n_frames
        else:
            histogram = histogram_of_image(loaded.pixels)
        return {"input": _label(path_text), "ok": True, "histogram": histogram, "frames": frames}
    except Exception as exc:  # reported by name, the others go on
        code, message = classify(exc)
        return {
            "input": _label(path_text),
            "ok": False,
            "code": code,
            "message": message,
            "traceback": traceback.format_exc() if args.debug else None,
        }


def merge_pair(a: Any, b: Any) -> Any:
    """Sum two histograms (either may be None: a failed input).

    Parameters
    ----------
    a, b : ColorHistogram or None

    Returns
    -------
    total : ColorHistogram or None
    """
    from quantize.histograms import merge_histograms

    return merge_histograms([a, b])


def histogram_only(report: dict[str, Any]) -> Any:
    """Return the histogram of a :func:`histogram_task` report (None for a failure).

    Parameters
    ----------
    report : dict

    Returns
    -------
    histogram : ColorHistogram or None
    """
    return report.get("histogram") if report.get("ok") else None


def without_histogram(report: dict[str, Any]) -> dict[str, Any]:
    """Return a :func:`histogram_task` report without its (large) histogram.

    Parameters
    ----------
    report : dict

    Returns
    -------
    report : dict
        ``n_colors`` and ``n_pixels`` instead of the histogram.
    """
    out = {k: v for k, v in report.items() if k != "histogram"}
    hist = report.get("histogram")
    if hist is not None:
        out.update(n_colors=hist.n_colors, n_pixels=hist.n_pixels)
    return out


def fit_task(item: tuple[Any, dict[str, Any]]) -> dict[str, Any]:
    """Fit the shared palette to the summed histogram (one task).

    Parameters
    ----------
    item : (ColorHistogram, dict)
        The sum and the batch's options.

    Returns
    -------
    fit : dict
        ``palette`` (list of [r, g, b]), ``n_iter``, ``converged``, ``warnings``,
        ``n_colors`` (distinct colours of the set) and ``n_pixels``.
    """
    from quantize.cli._run import _estimator_options, pipeline_options
    from quantize.histograms import fit_histogram
    from quantize.options import DEFAULTS
    from quantize.protocol import Cancelled

    histogram, options = item
    args = argparse.Namespace(**options)
    k = args.colors if isinstance(args.colors, int) else DEFAULTS["n_colors"]
    fit_options = _estimator_options(args)  # locked colours included
    fit_options.update(pipeline_options(args))  # as vq quantize fits one image
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gen = fit_histogram(
            histogram, k, method=args.method, color_space=args.space, seed=args.seed, **fit_options
        )
        from quantize.distributed import cancel_requested

        try:
            while True:
                next(gen)
                if cancel_requested():
                    gen.close()
                    raise Cancelled("cancelled by request")
        except StopIteration as stop:
            result = stop.value
    params = result.parameters()
    return {
        "palette": np.asarray(result.palette, np.uint8).tolist(),
        "n_iter": params.get("n_iter"),
        "converged": params.get("converged"),
        "warnings": list(dict.fromkeys([*result.warnings, *(str(w.message) for w in caught)])),
        "n_colors": histogram.n_colors,
        "n_pixels": histogram.n_pixels,
    }


def write_animation(
    path_text: str,
    args: argparse.Namespace,
    targets: list[tuple[str, Path]],
    written: list[Path] | None,
) -> dict[str, Any]:
    """Map every frame of an animation onto the shared palette; write one animated PNG.

    Parameters
    ----------
    path_text : str
        The animated input.
    args : argparse.Namespace
        The batch's options with ``fixed_palette``.
    targets : list of (kind, Path)
        The input's outputs (``indexed_png``, a palette file, the ``sidecar``).
    written : list of Path or None
        Receives the files once in place.

    Returns
    -------
    summary : dict
        As :func:`quantize.cli._run.quantize_one` returns (``frames`` > 1).
    """
    from quantize.io._atomic import bytes_fill, run_jobs
    from quantize.io.animation import encode_animation, load_animation
    from quantize.io.palettes import encode_palette, palette_format_for
    from quantize.pipeline import map_to_palette

    palette = np.asarray(args.fixed_palette, np.uint8)
    with native_stderr_muted(not args.debug):
        anim = load_animation(path_text, max_pixels=args.max_pixels)
    counts = np.zeros(len(palette), np.int64)
    indices, opaque = [], []
    for frame in anim.frames:
        visible = frame[..., 3] > 0
        if not visible.any():
            indices.append(np.zeros(visible.shape, np.uint8))
            opaque.append(visible)
            continue
        result = map_to_palette(frame, palette, color_space=args.space)
        idx = result.indices(dither=args.dither, strength=args.strength)
        indices.append(idx)
        opaque.append(visible)
        counts += np.bincount(idx[visible].ravel(), minlength=len(palette))[: len(palette)]
    proportions = counts / max(1, int(counts.sum()))
    png = encode_animation(indices, palette, opaque, anim.durations, anim.loop)
    summary: dict[str, Any] = {
        "input": path_text,
        "width": int(anim.frames[0].shape[1]),
        "height": int(anim.frames[0].shape[0]),
        "frames": anim.n_frames,
        "method": "palette",
        "color_space": args.space,
        "n_colors": int(len(palette)),
        "palette": ["#{:02x}{:02x}{:02x}".format(*map(int, c)) for c in palette],
        "proportions": [round(float(p), 6) for p in proportions],
        "metrics": None,
        "warnings": [],
        "outputs": [],
    }
    jobs: list[tuple[Path, Callable[[Any], None]]] = []
    for kind, path in targets:
        if kind == "indexed_png":
            jobs.append((path, bytes_fill(png)))
        elif kind == "sidecar":
            continue  # written last: it lists the others
        else:
            data = encode_palette(palette, proportions, palette_format_for(path), name=path.stem)
            jobs.append((path, bytes_fill(data)))
    summary["outputs"] = [{"path": str(p), "bytes": None} for p, _ in jobs]
    sidecar = [p for kind, p in targets if kind == "sidecar"]
    if sidecar:
        doc = json.dumps({**summary, "shared_palette": True}, indent=2, allow_nan=False)
        jobs.append((sidecar[0], bytes_fill(doc.encode() + b"\n")))
    begin_writing()
    paths = run_jobs(jobs, overwrite=args.force)
    if written is not None:
        written.extend(paths)
    summary["outputs"] = [{"path": str(p), "bytes": p.stat().st_size} for p in paths]
    return summary
