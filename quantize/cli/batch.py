"""``vq batch``: quantize many images in parallel worker processes."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from quantize.cli._common import (
    EPILOG,
    EXIT_OK,
    EXIT_OTHER,
    Err,
    SkippedLarger,
    UsageError,
    add_fit_options,
    add_output_mode,
    add_write_options,
    classify,
    create_dirs,
    fmt_float,
    methods_epilog,
    positive_int,
    progress_mode,
    remove_folders,
)
from quantize.cli._run import check_combination, quantize_one

__all__ = ["add_parser", "batch_task", "run"]

_IMAGE_SUFFIXES = {
    ".png",
    ".apng",
    ".jpg",
    ".jpeg",
    ".jpe",
    ".tif",
    ".tiff",
    ".webp",
    ".bmp",
    ".dib",
    ".gif",
    ".ppm",
    ".pgm",
    ".pbm",
    ".pnm",
}


def add_parser(sub: Any, formatter: type[argparse.HelpFormatter]) -> None:
    """Add the ``batch`` subcommand.

    Parameters
    ----------
    sub : argparse subparsers action
    formatter : type
        Help formatter class of the ``vq`` parsers.
    """
    from quantize.io.export import KINDS

    b = sub.add_parser(
        "batch",
        help="quantize many images in parallel",
        epilog=methods_epilog() + EPILOG,
        formatter_class=formatter,
        description="Quantize every INPUT into OUTDIR/<name>.png; bad files "
        "are reported and skipped.",
    )
    b.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="input images, or folders (their image files are taken)",
    )
    b.add_argument("-o", "--outdir", required=True, metavar="OUTDIR", help="output folder")
    b.add_argument(
        "-j",
        "--jobs",
        type=positive_int,
        default=min(4, os.cpu_count() or 1),
        help="parallel processes (default %(default)s)",
    )
    add_fit_options(b)
    b.add_argument(
        "--palette-format",
        choices=sorted(k.palette.suffixes[0] for k in KINDS.values() if k.palette),
        default=None,
        help="also write OUTDIR/<name><ext> palettes",
    )
    b.add_argument("--report", action="store_true", help="also write OUTDIR/<name>.json")
    add_write_options(b, "skip files whose indexed PNG would not be smaller than the input")
    add_output_mode(b)


def batch_task(task: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    """Quantize one file of a batch (runs in a worker process); never raises.

    Parameters
    ----------
    task : (str, str, dict)
        Input path, output stem and the options (``vars`` of the parsed arguments).

    Returns
    -------
    report : dict
        ``input``, ``ok``, ``code`` and the ``summary`` or the error ``message``.
    """
    from quantize.io.export import palette_kinds_by_suffix

    path_text, stem, options = task
    args = argparse.Namespace(**options)
    path = Path(path_text)
    try:
        out_dir = Path(args.outdir)
        targets: list[tuple[str, Path]] = [("indexed_png", out_dir / f"{stem}.png")]
        if args.palette_format:
            targets.append(
                (
                    palette_kinds_by_suffix()[args.palette_format],
                    out_dir / f"{stem}{args.palette_format}",
                )
            )
        if args.report:
            targets.append(("sidecar", out_dir / f"{stem}.json"))
        summary = quantize_one(
            path, args, show_progress=False, warn=lambda m: None, stem=stem, targets=targets
        )
        return {"input": path_text, "ok": True, "code": EXIT_OK, "summary": summary}
    except SkippedLarger as exc:
        return {
            "input": path_text,
            "ok": True,
            "skipped": True,
            "code": EXIT_OK,
            "message": str(exc),
        }
    except BaseException as exc:  # report, never crash the pool
        code, message = classify(exc)
        detail = traceback.format_exc() if args.debug else None
        return {
            "input": path_text,
            "ok": False,
            "code": code,
            "message": message,
            "traceback": detail,
        }


def _expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Replace each folder by the image files directly inside it (sorted)."""
    out: list[str] = []
    for text in inputs:
        p = Path(text)
        if p.is_dir():
            out.extend(
                str(c)
                for c in sorted(p.iterdir())
                if c.is_file() and c.suffix.lower() in _IMAGE_SUFFIXES
            )
        else:
            out.append(text)
    return out


def _batch_stems(inputs: Sequence[str]) -> list[str]:
    stems: list[str] = []
    seen: dict[str, int] = {}
    for text in inputs:
        stem = Path(text).stem or "image"
        n = seen.get(stem.lower(), 0)
        seen[stem.lower()] = n + 1
        stems.append(stem if n == 0 else f"{stem}-{n + 1}")
    return stems


def run(args: argparse.Namespace, err: Err) -> int:
    """Run ``vq batch``.

    Parameters
    ----------
    args : argparse.Namespace
    err : callable
        Prints a line on stderr.

    Returns
    -------
    code : int
        0, or the code all failures share, else 1.
    """
    check_combination(args)
    args.inputs = _expand_inputs(args.inputs)
    if not args.inputs:
        raise UsageError("no image files among the inputs")
    out_dir = Path(args.outdir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder")
    try:
        created = create_dirs([str(out_dir)])  # removed again if nothing gets written
    except OSError as exc:
        raise UsageError(f"{out_dir}: cannot create output folder ({exc.strerror})") from None
    options = {k: v for k, v in vars(args).items() if k != "func"}
    options.update(output=None, no_image=False, palette=[], masks=None, soft=None)
    tasks = [(p, s, options) for p, s in zip(args.inputs, _batch_stems(args.inputs), strict=True)]
    results: list[dict[str, Any]] = []
    bar = None
    mode = progress_mode(args)
    if mode is not False:
        from tqdm import tqdm

        bar = tqdm(
            total=len(tasks),
            desc="vq batch",
            unit="file",
            file=sys.stderr,
            disable=None if mode is None else False,
        )

    def record(res: dict[str, Any]) -> None:
        results.append(res)
        if not res["ok"] and not args.quiet:
            err(f"vq: {res['message']}")
            if res.get("traceback"):
                err(res["traceback"].rstrip())
        if bar is not None:
            bar.update(1)

    try:
        if args.jobs == 1 or len(tasks) == 1:
            for task in tasks:
                record(batch_task(task))
        else:
            # spawn, not fork: the parent may run threads (tqdm's monitor, BLAS)
            context = multiprocessing.get_context("spawn")
            workers = min(args.jobs, len(tasks))
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures = [pool.submit(batch_task, t) for t in tasks]
                for fut in as_completed(futures):
                    record(fut.result())
    finally:
        if bar is not None:
            bar.close()
    order = {p: i for i, p in enumerate(args.inputs)}
    results.sort(key=lambda r: order.get(r["input"], 0))
    failed = [r for r in results if not r["ok"]]
    skipped = [r for r in results if r.get("skipped")]
    n_ok = len(results) - len(failed) - len(skipped)
    if args.json:
        print(
            json.dumps(
                {"ok": n_ok, "skipped": len(skipped), "failed": len(failed), "files": results},
                indent=2,
                allow_nan=False,
            )
        )
    elif not args.quiet:
        for r in results:
            if r.get("skipped"):
                print(f"skip  {r['message']}")
            elif r["ok"]:
                s = r["summary"]
                psnr = fmt_float(s["metrics"]["psnr"], 2, " dB")
                outs = ", ".join(Path(o["path"]).name for o in s["outputs"])
                print(f"ok    {r['input']}: K={s['n_colors']}, PSNR {psnr} -> {outs}")
        more = f", {len(skipped)} skipped" if skipped else ""
        print(f"{n_ok} ok{more}, {len(failed)} failed, output in {out_dir}")
    remove_folders(created)  # only if still empty
    if not failed:
        return EXIT_OK
    codes = {r["code"] for r in failed}
    return codes.pop() if len(codes) == 1 else EXIT_OTHER
