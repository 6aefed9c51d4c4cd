"""``vq batch``: quantize many images in parallel worker processes."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from quantize.cli._common import (
    EPILOG,
    EXIT_CANCELLED,
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
    written_words,
)
from quantize.cli._interrupt import (
    GRACE_S,
    init_worker,
    interrupts_ignored,
    remove_stray_files,
    start_task,
    stop_workers,
)
from quantize.cli._run import check_combination, quantize_one

__all__ = ["add_parser", "batch_task", "output_targets", "palette_suffix", "run"]

#: the input that reads standard input, its name in messages and its outputs' stem
STDIN = "-"
STDIN_LABEL = "<stdin>"
STDIN_STEM = "stdin"

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
        "are reported and skipped.  Ctrl-C stops the batch: queued files are not "
        "started, files being written are left as they were, exit 130.",
    )
    b.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="input images, or folders (their image files are taken); '-' reads standard "
        "input (outputs named stdin.*)",
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
        help="also write OUTDIR/<name><ext> palettes (.png as <name>.swatch.png, and .json "
        "with --report as <name>.palette.json)",
    )
    b.add_argument("--report", action="store_true", help="also write OUTDIR/<name>.json")
    add_write_options(b, "skip files whose indexed PNG would not be smaller than the input")
    add_output_mode(b)


def palette_suffix(args: argparse.Namespace) -> str:
    """Return the ending of the palette files of ``--palette-format``.

    The format's extension, unless another output of the batch already ends so: a
    ``.png`` palette (swatches) then ends ``.swatch.png`` and a ``.json`` palette next to
    ``--report`` ends ``.palette.json`` (the format's own longer suffix).

    Parameters
    ----------
    args : argparse.Namespace
        With ``palette_format`` set.

    Returns
    -------
    suffix : str
    """
    from quantize.io.export import get_export_kind, palette_kinds_by_suffix

    ext = str(args.palette_format)
    taken = {".png"} | ({".json"} if args.report else set())
    if ext.lower() in taken:
        return get_export_kind(palette_kinds_by_suffix()[ext]).suffix
    return ext


def output_targets(args: argparse.Namespace, stem: str) -> list[tuple[str, Path]]:
    """List the outputs of one input: ``OUTDIR/<stem>.png`` and the optional ones.

    Parameters
    ----------
    args : argparse.Namespace
        The options of ``vq batch``.
    stem : str
        Base name of the input's outputs.

    Returns
    -------
    targets : list of (kind, Path)
    """
    from quantize.io.export import palette_kinds_by_suffix

    out_dir = Path(args.outdir)
    targets: list[tuple[str, Path]] = [("indexed_png", out_dir / f"{stem}.png")]
    if args.palette_format:
        kind = palette_kinds_by_suffix()[args.palette_format]
        targets.append((kind, out_dir / f"{stem}{palette_suffix(args)}"))
    if args.report:
        targets.append(("sidecar", out_dir / f"{stem}.json"))
    return targets


def _label(path_text: str) -> str:
    return STDIN_LABEL if path_text == STDIN else path_text


def _failure(path_text: str, code: int, message: str, detail: str | None = None) -> dict[str, Any]:
    return {
        "input": _label(path_text),
        "ok": False,
        "code": code,
        "message": message,
        "traceback": detail,
    }


def batch_task(
    task: tuple[str, str, dict[str, Any], bytes | None], written: list[Path] | None = None
) -> dict[str, Any]:
    """Quantize one file of a batch (runs in a worker process).

    Errors become the report; an interrupt (Ctrl-C in the parent's process, SIGTERM in a
    worker) is not caught: it unwinds the task, whose all-or-nothing writes leave no file
    (a worker that is already writing finishes the file first, see
    :mod:`quantize.cli._interrupt`).

    Parameters
    ----------
    task : (str, str, dict, bytes or None)
        Input path (``-``: standard input), output stem, the options (``vars`` of the
        parsed arguments) and, for ``-``, the bytes read from standard input.
    written : list of Path, optional
        Receives the files written as soon as they are in place (an interrupt right after
        that still knows them).

    Returns
    -------
    report : dict
        ``input``, ``ok``, ``code`` and the ``summary`` or the error ``message``.

    Raises
    ------
    SystemExit
        In a worker told to stop (see :func:`quantize.cli._interrupt.init_worker`).
    """
    start_task()  # a worker told to stop starts no further file
    path_text, stem, options, data = task
    args = argparse.Namespace(**options)
    try:
        summary = quantize_one(
            Path(path_text),
            args,
            show_progress=False,
            warn=lambda m: None,
            stem=stem,
            targets=output_targets(args, stem),
            data=data,
            written=written,
        )
        return {"input": _label(path_text), "ok": True, "code": EXIT_OK, "summary": summary}
    except SkippedLarger as exc:
        return {
            "input": _label(path_text),
            "ok": True,
            "skipped": True,
            "code": EXIT_OK,
            "message": str(exc),
        }
    except Exception as exc:  # report, never crash the pool
        code, message = classify(exc)
        return _failure(path_text, code, message, traceback.format_exc() if args.debug else None)


def _expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Replace each folder by the image files directly inside it (sorted)."""
    out: list[str] = []
    for text in inputs:
        p = Path(text)
        if text != STDIN and p.is_dir():
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
        stem = STDIN_STEM if text == STDIN else (Path(text).stem or "image")
        n = seen.get(stem.lower(), 0)
        seen[stem.lower()] = n + 1
        stems.append(stem if n == 0 else f"{stem}-{n + 1}")
    return stems


#: (index of the input, task of :func:`batch_task`)
_Job = tuple[int, tuple[str, str, dict[str, Any], bytes | None]]
#: receives (index of the input, report of :func:`batch_task`)
_Record = Callable[[int, dict[str, Any]], None]


def _run_here(jobs: Sequence[_Job], record: _Record, unreported: dict[int, list[Path]]) -> bool:
    """Run the jobs one after the other in this process; return whether interrupted.

    ``unreported`` receives, by input index, the files of a task interrupted after its
    outputs were in place but before its report was recorded.
    """
    index = -1
    written: list[Path] = []
    try:
        for index, task in jobs:
            written = []
            record(index, batch_task(task, written))
            written = []
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the running file unwound, nothing left
        if written:
            unreported[index] = written
        return True
    return False


def _outcome(fut: Future[dict[str, Any]], path_text: str, stopping: bool) -> dict[str, Any] | None:
    """Return the report of a finished future, or None if its file was never processed."""
    if fut.cancelled():
        return None
    exc = fut.exception()
    if exc is None:
        return fut.result()
    if isinstance(exc, SystemExit) or (stopping and isinstance(exc, BrokenProcessPool)):
        return None  # stopped by the interrupt: its writes were undone
    if isinstance(exc, BrokenProcessPool):
        return _failure(
            path_text, EXIT_OTHER, f"{_label(path_text)}: the worker process died (out of memory?)"
        )
    code, message = classify(exc)
    return _failure(path_text, code, message)


def _pool_processes(pool: ProcessPoolExecutor) -> dict[int, Any]:
    """Return the pool's worker processes by pid (shutdown forgets them: take them before)."""
    return dict(getattr(pool, "_processes", None) or {})


def _run_pool(
    jobs: Sequence[_Job],
    workers: int,
    record: _Record,
    targets_of: Callable[[int], list[Path]],
) -> bool:
    """Run the jobs in worker processes; return whether interrupted.

    On Ctrl-C or SIGTERM: queued files are cancelled, the workers are stopped (killed after
    a grace period; then what they left is removed), the reports of files finished meanwhile
    are recorded.
    """
    # spawn, not fork: the parent may run threads (tqdm's monitor, BLAS)
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_worker)
    futures: dict[Future[dict[str, Any]], int] = {}
    inputs = {index: task[0] for index, task in jobs}
    recorded: set[int] = set()
    processes: dict[int, Any] = {}
    try:
        with interrupts_ignored():  # workers start with SIGINT ignored (the parent decides)
            for index, task in jobs:
                futures[pool.submit(batch_task, task)] = index
        processes.update(_pool_processes(pool))
        for fut in as_completed(futures):
            index = futures[fut]
            report = _outcome(fut, inputs[index], stopping=False)
            if report is not None:
                record(index, report)
                recorded.add(index)
    except KeyboardInterrupt:
        with interrupts_ignored():  # a second Ctrl-C must not cut the cleanup short
            processes.update(_pool_processes(pool))
            manager = getattr(pool, "_executor_manager_thread", None)  # shutdown forgets it
            pool.shutdown(wait=False, cancel_futures=True)
            killed = stop_workers(processes.values())
            if manager is not None:  # it hands over the reports the workers sent last
                manager.join(GRACE_S)
            for fut, index in futures.items():
                if index in recorded or not fut.done():
                    continue
                report = _outcome(fut, inputs[index], stopping=True)
                if report is not None:
                    record(index, report)
                    recorded.add(index)
            unfinished = [i for i in futures.values() if i not in recorded]
            remove_stray_files([t for i in unfinished for t in targets_of(i)], killed)
        return True
    pool.shutdown()
    return False


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
        0, or the code all failures share, else 1; 130 when interrupted.  Failures are
        reported on stderr even with ``--quiet`` (which silences progress and summary).
    """
    from quantize.cli._run import read_stdin
    from quantize.io.load import LoadError

    check_combination(args)
    args.inputs = _expand_inputs(args.inputs)
    if not args.inputs:
        raise UsageError("no image files among the inputs")
    if args.inputs.count(STDIN) > 1:
        raise UsageError("standard input ('-') can be read only once")
    out_dir = Path(args.outdir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder")
    try:
        created = create_dirs([str(out_dir)])  # removed again if nothing gets written
    except OSError as exc:
        raise UsageError(f"{out_dir}: cannot create output folder ({exc.strerror})") from None
    options = {k: v for k, v in vars(args).items() if k != "func"}
    options.update(output=None, no_image=False, palette=[], masks=None, soft=None)
    stems = _batch_stems(args.inputs)
    results: dict[int, dict[str, Any]] = {}
    bar = None
    mode = progress_mode(args)
    if mode is not False:
        from tqdm import tqdm

        bar = tqdm(
            total=len(args.inputs),
            desc="vq batch",
            unit="file",
            file=sys.stderr,
            disable=None if mode is None else False,
        )

    def record(index: int, res: dict[str, Any]) -> None:
        results[index] = res
        if not res["ok"]:  # errors are always said, --quiet or not
            err(f"vq: {res['message']}")
            if res.get("traceback"):
                err(res["traceback"].rstrip())
        if bar is not None:
            bar.update(1)

    jobs: list[_Job] = []
    for index, (text, stem) in enumerate(zip(args.inputs, stems, strict=True)):
        data = None
        if text == STDIN:  # read here: worker processes have no standard input
            try:
                data = read_stdin(args.max_pixels)
            except LoadError as exc:
                record(index, _failure(text, *classify(exc)))
                continue
        jobs.append((index, (text, stem, options, data)))

    def targets_of(index: int) -> list[Path]:
        return [path for _, path in output_targets(args, stems[index])]

    interrupted = False
    unreported: dict[int, list[Path]] = {}
    try:
        if args.jobs == 1 or len(jobs) <= 1:
            interrupted = _run_here(jobs, record, unreported)
        else:
            interrupted = _run_pool(jobs, min(args.jobs, len(jobs)), record, targets_of)
    finally:
        if bar is not None:
            bar.close()
    reports = [results[i] for i in sorted(results)]
    failed = [r for r in reports if not r["ok"]]
    skipped = [r for r in reports if r.get("skipped")]
    n_ok = len(reports) - len(failed) - len(skipped)
    done = set(results) | set(unreported)
    not_processed = [_label(t) for i, t in enumerate(args.inputs) if i not in done]
    if args.json:
        doc: dict[str, Any] = {
            "ok": n_ok,
            "skipped": len(skipped),
            "failed": len(failed),
            "files": reports,
        }
        if interrupted:
            doc.update(interrupted=True, not_processed=not_processed)
        print(json.dumps(doc, indent=2, allow_nan=False))
    elif not args.quiet:
        for r in reports:
            if r.get("skipped"):
                print(f"skip  {r['message']}")
            elif r["ok"]:
                s = r["summary"]
                psnr = fmt_float(s["metrics"]["psnr"], 2, " dB")
                outs = ", ".join(Path(o["path"]).name for o in s["outputs"])
                print(f"ok    {r['input']}: K={s['n_colors']}, PSNR {psnr} -> {outs}")
        more = f", {len(skipped)} skipped" if skipped else ""
        stop = f", {len(not_processed)} not processed (interrupted)" if interrupted else ""
        print(f"{n_ok} ok{more}, {len(failed)} failed{stop}, output in {out_dir}")
    remove_folders(created)  # only if still empty
    if interrupted:
        written = [
            o["path"]
            for r in reports
            if r["ok"] and "summary" in r
            for o in r["summary"]["outputs"]
        ] + [str(p) for i in sorted(unreported) for p in unreported[i]]
        err(
            f"vq: interrupted - {written_words(written)}; "
            f"{len(not_processed)} of {len(args.inputs)} files not processed"
        )
        return EXIT_CANCELLED
    if not failed:
        return EXIT_OK
    codes = {r["code"] for r in failed}
    return codes.pop() if len(codes) == 1 else EXIT_OTHER
