"""``vq batch`` on a TIFF over the pixel cap: histogram, fit and map in row strips.

The image is never decoded whole (:mod:`quantize.io.huge`): strip tasks reduce their rows to
colour histograms, which are summed exactly (a tree of pairwise sums on a cluster); one fit
gives the palette; strip tasks map their rows onto it and this process writes the results
in row order as they arrive (a PNG streamed strip by strip, or a tiled palette TIFF), with
at most a few strips in flight per worker.
"""

from __future__ import annotations

import argparse
import json
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from quantize.cli._common import EXIT_OK

__all__ = ["hist_task", "huge_targets", "map_task", "run_huge"]


def _asked_to_stop() -> bool:
    from quantize.distributed import cancel_requested

    return cancel_requested(fresh=True)


def _stop_if_asked() -> None:
    if _asked_to_stop():
        raise KeyboardInterrupt


#: strips in flight per worker while mapping: enough to keep every worker busy while this
#: process writes, few enough that the parent holds only a handful of strips' labels
_IN_FLIGHT_PER_WORKER = 2


def hist_task(item: tuple[str, int, int]) -> Any:
    """Return the colour histogram of one strip (a worker task).

    Parameters
    ----------
    item : (str, int, int)
        Path, first row, end row.

    Returns
    -------
    histogram : ColorHistogram or None
    """
    from quantize.io.huge import strip_histogram

    path, y0, y1 = item
    return strip_histogram(path, y0, y1)


def map_task(item: tuple[str, int, int, list[list[int]], str, Any]) -> Any:
    """Map one strip onto the palette (a worker task).

    Parameters
    ----------
    item : (str, int, int, list, str, ndarray or None)
        Path, first row, end row, palette rows, colour space, the image's
        :func:`~quantize.io.huge.palette_lut` (None: search the strip's colours).

    Returns
    -------
    mapped : (labels, opaque, counts)
        See :func:`quantize.io.huge.map_strip`.
    """
    from quantize.io.huge import map_strip

    path, y0, y1, palette, space, lut = item
    return map_strip(path, y0, y1, np.asarray(palette, np.uint8), space, lut)


def _lut_task(item: tuple[Any, Any, str]) -> Any:
    """Tabulate the palette entry of every colour of the image (a worker task)."""
    from quantize.io.huge import palette_lut

    total, fit, space = item
    if total is None or fit is None:
        return None
    return palette_lut(total, np.asarray(fit["palette"], np.uint8), space)


def _fit_or_none(item: tuple[Any, dict[str, Any]]) -> dict[str, Any] | None:
    """Fit the palette to a strip sum (a worker task); None when no pixel was opaque."""
    from quantize.cli._shared import fit_task

    return None if item[0] is None else fit_task(item)


def huge_targets(
    args: argparse.Namespace, stem: str, targets: list[tuple[str, Path]]
) -> list[tuple[str, Path]]:
    """List the outputs of a huge input: the image (PNG or tiled TIFF) and the optional ones.

    Parameters
    ----------
    args : argparse.Namespace
    stem : str
    targets : list of (kind, Path)
        The batch's outputs of this input (``quantize.cli.batch.output_targets``).

    Returns
    -------
    targets : list of (kind, Path)
        With ``--tiled-tiff`` the indexed PNG replaced by ``OUTDIR/<stem>.tif``.
    """
    if getattr(args, "tiled_tiff", False):
        out_dir = Path(args.outdir)
        targets = [
            ("tiled_tiff", out_dir / f"{stem}.tif") if k == "indexed_png" else (k, p)
            for k, p in targets
        ]
    return targets


def _in_order(cluster: Any, items: list[Any]) -> Iterator[Any]:
    """Yield ``map_task(item)`` for every item in order, a bounded window on the cluster."""
    window = max(2, _IN_FLIGHT_PER_WORKER * cluster.n_workers())
    pending: deque[Any] = deque()
    submitted = 0
    try:
        while submitted < len(items) or pending:
            while submitted < len(items) and len(pending) < window:
                pending.extend(
                    cluster.submit_all(map_task, [items[submitted]], name="vq-strip-map")
                )
                submitted += 1
            fut = pending.popleft()
            outcome = cluster.outcome(fut, _asked_to_stop)
            if outcome.error is not None:
                raise outcome.error
            if outcome.cancelled:
                raise KeyboardInterrupt
            yield outcome.result
    finally:
        with_cancel = list(pending)
        if with_cancel:
            cluster.cancel(with_cancel, grace_s=0.0)


def run_huge(
    path_text: str,
    stem: str,
    args: argparse.Namespace,
    info: Any,
    cluster: Any,
    targets: list[tuple[str, Path]],
) -> dict[str, Any]:
    """Quantize one TIFF over the pixel cap in strips; return its report.

    Parameters
    ----------
    path_text : str
        The input (absolute when the workers are remote).
    stem : str
        Its outputs' stem.
    args : argparse.Namespace
        The batch's options.
    info : TiffInfo
        Its header.
    cluster : Cluster or None
        None: the strips are processed one after the other in this process.
    targets : list of (kind, Path)
        Its outputs, from :func:`huge_targets`.

    Returns
    -------
    report : dict
        ``ok`` with a ``summary``, as :func:`quantize.cli.batch.batch_task` returns.

    Raises
    ------
    KeyboardInterrupt
        Ctrl-C: nothing of this image was written.
    """
    from quantize.cli._interrupt import begin_writing
    from quantize.cli._shared import fit_task, merge_pair
    from quantize.histograms import merge_histograms
    from quantize.io._atomic import bytes_fill, check_targets, commit_jobs
    from quantize.io.huge import plan_strips, png_strip_fill, write_tiled_tiff
    from quantize.io.palettes import encode_palette, palette_format_for

    mib = getattr(args, "strip_mib", None)
    strips = plan_strips(info, None if mib is None else int(mib * (1 << 20)))
    options = vars(args)
    if cluster is None:
        total = None
        for y0, y1 in strips:
            _stop_if_asked()
            total = merge_histograms([total, hist_task((path_text, y0, y1))])
        fit = None if total is None else fit_task((total, options))
        lut = _lut_task((total, fit, args.space))
        del total
    else:  # the sum and the fit stay on the cluster: this process gets the palette only
        hists = cluster.submit_all(
            hist_task, [(path_text, y0, y1) for y0, y1 in strips], name="vq-strip-histogram"
        )
        total_future = cluster.reduce_tree(merge_pair, hists, name="vq-strip-sum")
        fit_future = cluster.submit_all(_fit_or_none, [(total_future, options)], name="vq-fit")
        outcome = cluster.outcome(fit_future[0], _asked_to_stop)
        if outcome.error is not None:
            raise outcome.error
        fit = outcome.result
        # built once on a worker; each worker fetches it once for its strips
        lut = cluster.submit_all(
            _lut_task, [(total_future, fit_future[0], args.space)], name="vq-palette-table"
        )[0]
    if fit is None:
        from quantize.io.load import LoadError

        raise LoadError(path_text, "no opaque pixel (alpha is 0 everywhere)")
    palette = np.asarray(fit["palette"], np.uint8)
    transparent = fit["n_pixels"] < info.n_pixels
    counts = np.zeros(len(palette), np.int64)
    check_targets([p for _, p in targets], args.force)
    items = [(path_text, y0, y1, fit["palette"], args.space, lut) for y0, y1 in strips]

    def mapped() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        source = (map_task(i) for i in items) if cluster is None else _in_order(cluster, items)
        for labels, opaque, strip_counts in source:
            _stop_if_asked()  # inside the atomic writer: a stop discards the whole file
            counts[:] += strip_counts
            yield labels, opaque

    begin_writing()
    image_kind, image_path = targets[0]
    written: list[Path] = []
    if image_kind == "tiled_tiff":
        written.append(
            write_tiled_tiff(
                image_path, info.width, info.height, palette, mapped(), overwrite=args.force
            )
        )
    else:
        fill = png_strip_fill(info.width, info.height, palette, transparent, mapped())
        written += commit_jobs([(image_path, fill)], args.force)
    proportions = counts / max(1, int(counts.sum()))
    summary: dict[str, Any] = {
        "input": path_text,
        "width": info.width,
        "height": info.height,
        "frames": 1,
        "method": args.method,
        "color_space": args.space,
        "n_colors": int(len(palette)),
        "palette": ["#{:02x}{:02x}{:02x}".format(*map(int, c)) for c in palette],
        "proportions": [round(float(p), 6) for p in proportions],
        "n_iter": fit["n_iter"],
        "converged": fit["converged"],
        "strips": len(strips),
        "distinct_colors": fit["n_colors"],
        "metrics": None,
        "warnings": list(fit["warnings"])
        + ([] if args.dither == "none" else ["dithering is not applied to images read in strips"]),
    }
    jobs: list[tuple[Path, Any]] = []
    for kind, path in targets[1:]:
        if kind == "sidecar":
            outs = [str(p) for p in written] + [str(p) for p, _ in jobs]
            doc = json.dumps({**summary, "outputs": outs}, indent=2, allow_nan=False) + "\n"
            jobs.append((path, bytes_fill(doc.encode())))
        else:
            data = encode_palette(palette, proportions, palette_format_for(path), name=path.stem)
            jobs.append((path, bytes_fill(data)))
    if jobs:
        try:
            written += commit_jobs(jobs, args.force)
        except BaseException:
            for p in written:  # all or nothing for this input
                p.unlink(missing_ok=True)
            raise
    summary["outputs"] = [{"path": str(p), "bytes": p.stat().st_size} for p in written]
    return {"input": path_text, "ok": True, "code": EXIT_OK, "summary": summary}
