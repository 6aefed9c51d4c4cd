"""``vq batch``: quantize many images in parallel worker processes."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
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
from quantize.cli._interrupt import interrupts_ignored, remove_stray_files, start_task
from quantize.cli._run import check_combination, quantize_one
from quantize.distributed import default_workers

__all__ = [
    "REPORT_NAME",
    "add_parser",
    "batch_task",
    "output_targets",
    "palette_suffix",
    "run",
]

#: the batch's own report (``--report``), next to the outputs
REPORT_NAME = "vq-batch-report.json"

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
        help="quantize many images in parallel (local or Dask cluster)",
        epilog=methods_epilog() + EPILOG,
        formatter_class=formatter,
        description="Quantize every INPUT into OUTDIR/<name>.png on a Dask cluster: a "
        "local one (worker processes, one per core) unless --scheduler, "
        "DASK_SCHEDULER_ADDRESS or --scheduler-file names a running scheduler.  The "
        "outputs do not depend on where or on how many workers they were made.  Bad files "
        "are reported and skipped; a lost worker's files are done again elsewhere.  "
        "Ctrl-C stops the batch: queued files are not started, nothing partial is left, "
        "what was written is listed, exit 130.",
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
        default=default_workers(),
        help="worker processes of the local Dask cluster (default: one per core, "
        "%(default)s); 1 runs the files one after the other in this process, without Dask",
    )
    c = b.add_argument_group("cluster (the Dask conventions)")
    c.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="run on the Dask scheduler at ADDRESS (tcp://HOST:8786); default "
        "$DASK_SCHEDULER_ADDRESS, else a local cluster.  Workers must see the input and "
        "output folders under the same paths",
    )
    c.add_argument(
        "--scheduler-file",
        metavar="FILE",
        default=None,
        help="run on the scheduler described by FILE (dask scheduler --scheduler-file)",
    )
    add_fit_options(b)
    b.add_argument(
        "--palette-format",
        choices=sorted(k.palette.suffixes[0] for k in KINDS.values() if k.palette),
        default=None,
        help="also write OUTDIR/<name><ext> palettes (.png as <name>.swatch.png, and .json "
        "with --report as <name>.palette.json)",
    )
    b.add_argument(
        "--report",
        action="store_true",
        help=f"also write OUTDIR/<name>.json, and OUTDIR/{REPORT_NAME}: every input "
        "with its outcome (failures with their reason)",
    )
    b.add_argument(
        "--shared-palette",
        action="store_true",
        help="fit one palette for all inputs (their colour histograms summed) and map every "
        "file onto it; an animated GIF/APNG is written as one animated PNG with that palette",
    )
    b.add_argument(
        "--tiled-tiff",
        action="store_true",
        help="write TIFFs over --max-pixels (read, fitted and mapped in row strips, never "
        "whole) as tiled palette TIFFs OUTDIR/<name>.tif instead of PNGs written strip by strip",
    )
    b.add_argument(
        "--strip-mib",
        type=_positive_number,
        default=64,
        metavar="MIB",
        help="input MiB per strip of an image over --max-pixels: bounds the memory of a "
        "strip task (measured 0.6-0.8 GiB per process at 16-64 MiB, see docs/SCALING.md) "
        "(default %(default)s)",
    )
    b.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip inputs whose outputs all exist already (resumes an interrupted batch)",
    )
    add_write_options(b, "skip files whose indexed PNG would not be smaller than the input")
    add_output_mode(b)


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


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


def _report_outputs(report: dict[str, Any]) -> list[str]:
    """Return the paths of the files a successful report says were written."""
    if "summary" in report:
        return [o["path"] for o in report["summary"]["outputs"]]
    return list(report.get("outputs", []))  # written as the interrupt came: no summary


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

    Errors become the report; an interrupt (Ctrl-C in the parent's process) is not caught:
    it unwinds the task, whose all-or-nothing writes leave no file.  On a Dask worker, a
    cancelled batch stops the task between fit iterations and before it writes
    (:mod:`quantize.distributed`); a task that is already writing finishes its file.

    Parameters
    ----------
    task : (str, str, dict, bytes or None)
        Input path (``-``: standard input), output stem, the options (``vars`` of the
        parsed arguments; ``fixed_palette`` for a shared palette, ``animated`` for an
        animation written with it) and, for ``-``, the bytes read from standard input.
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
        if options.get("animated"):
            from quantize.cli._shared import write_animation

            summary = write_animation(path_text, args, output_targets(args, stem), written)
            return {"input": _label(path_text), "ok": True, "code": EXIT_OK, "summary": summary}
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
    # <stem>.json of an input never takes the name of the batch report
    seen: dict[str, int] = {Path(REPORT_NAME).stem.lower(): 1}
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
            _stop_if_asked()
            written = []
            report = batch_task(task, written)
            if not report["ok"] and report["code"] == EXIT_CANCELLED:
                raise KeyboardInterrupt  # the app's Cancel stopped the fit: as Ctrl-C
            record(index, report)
            written = []
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the running file unwound, nothing left
        if written:
            unreported[index] = written
        return True
    return False


def _asked_to_stop() -> bool:
    from quantize.distributed import cancel_requested

    return cancel_requested(fresh=True)


def _stop_if_asked() -> None:
    """Raise KeyboardInterrupt when the caller asked to stop (the app's Cancel button).

    The desktop app runs the batch on a thread inside a
    :func:`quantize.distributed.cancel_scope`; the command line has Ctrl-C.

    Raises
    ------
    KeyboardInterrupt
    """
    from quantize.distributed import cancel_requested

    if cancel_requested(fresh=True):
        raise KeyboardInterrupt


def _lost_worker(path_text: str, exc: BaseException) -> dict[str, Any]:
    """Report a task that failed on the cluster itself (not in our code)."""
    if type(exc).__name__ == "KilledWorker":
        message = (
            f"{_label(path_text)}: the worker processes running it died repeatedly "
            "(out of memory?) - nothing written"
        )
        return _failure(path_text, EXIT_OTHER, message)
    code, message = classify(exc)
    return _failure(path_text, code, f"{_label(path_text)}: {message}")


def _run_cluster(
    cluster: Any,
    fn: Callable[[Any], Any],
    jobs: Sequence[tuple[int, Any]],
    record: _Record,
    path_of: Callable[[int], str],
    name: str,
) -> bool:
    """Run ``fn`` on the items of ``jobs`` as Dask tasks; return whether interrupted.

    Every finished task's report goes to ``record``; on Ctrl-C queued tasks are cancelled
    at once and running ones stop (or finish the file they are writing), and their reports
    are recorded too.
    """
    futures = cluster.submit_all(fn, [task for _, task in jobs], name=name)
    recorded: set[int] = set()

    def take(outcome: Any) -> None:
        index = jobs[outcome.index][0]
        if outcome.cancelled or index in recorded:
            return
        if outcome.error is not None and classify(outcome.error)[0] == EXIT_CANCELLED:
            return  # stopped by the interrupt as it started: not processed
        if outcome.error is not None:
            report = _lost_worker(path_of(index), outcome.error)
        else:
            report = outcome.result
            if not report["ok"] and report["code"] == EXIT_CANCELLED:
                return  # stopped by the interrupt before writing: not processed
        recorded.add(index)
        record(index, report)

    try:
        for outcome in cluster.as_completed(futures, _asked_to_stop):
            take(outcome)
    except KeyboardInterrupt:
        with interrupts_ignored():  # a second Ctrl-C must not cut the cleanup short
            for outcome in cluster.cancel(futures):
                take(outcome)
        return True
    return False


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _clean_strays(
    done: Sequence[Path], unfinished: Sequence[Path], killed_pids: Sequence[int]
) -> None:
    """Remove what killed workers left next to the outputs.

    The temporary ``.part`` files of every output; the ``.bak`` copy a killed worker kept
    of a file it was replacing is deleted where the file was then written again (``done``),
    and put back where it was not (``unfinished``).
    """
    pids = {str(p) for p in killed_pids}
    for target in done:
        for stray in target.parent.glob(f".{_glob_escape(target.name)}.*"):
            parts = stray.name.split(".")
            if stray.name.endswith(".part") or (stray.name.endswith(".bak") and parts[-3] in pids):
                with contextlib.suppress(OSError):
                    stray.unlink()
    remove_stray_files(unfinished, killed_pids)


def _glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def _shared_palette(
    runner: _Runner, jobs: Sequence[_Job], options: dict[str, Any], record: _Record
) -> tuple[dict[str, Any] | None, bool, set[int]]:
    """Run steps 1 and 2 of ``--shared-palette``: histograms, their exact sum, one fit.

    Returns (the fit of :func:`quantize.cli._shared.fit_task` or None when no input could
    be read, whether interrupted, the indices of the animated inputs).
    """
    from quantize.cli import _shared
    from quantize.histograms import merge_histograms
    from quantize.protocol import Cancelled

    animated: set[int] = set()
    ok: list[int] = []

    def note(index: int, report: dict[str, Any]) -> None:
        if report["ok"]:
            ok.append(index)
            if report.get("frames", 1) > 1:
                animated.add(index)
        else:
            record(index, report)
        runner.tick()

    runner.start_bar(len(jobs), "histograms")
    if runner.cluster is None:
        hists = []
        try:
            for index, task in jobs:
                _stop_if_asked()
                report = _shared.histogram_task(task)
                hists.append(report.get("histogram"))
                note(index, _shared.without_histogram(report))
        except KeyboardInterrupt:
            return None, True, animated
        finally:
            runner.close_bar()
        total = merge_histograms(hists)
        if total is None:
            return None, False, animated
        try:
            return _shared.fit_task((total, options)), False, animated
        except (KeyboardInterrupt, Cancelled):
            return None, True, animated
    cluster = runner.cluster
    full = cluster.submit_all(_shared.histogram_task, [t for _, t in jobs], name="vq-histogram")
    small = cluster.submit_all(_shared.without_histogram, full, name="vq-histogram-report")
    try:
        for outcome in cluster.as_completed(small, _asked_to_stop):
            index = jobs[outcome.index][0]
            if outcome.error is not None and classify(outcome.error)[0] == EXIT_CANCELLED:
                raise KeyboardInterrupt  # the run was cancelled meanwhile
            if outcome.error is not None:
                note(index, _lost_worker(jobs[outcome.index][1][0], outcome.error))
            elif not outcome.cancelled:
                note(index, outcome.result)
        runner.close_bar()
        if not ok:
            return None, False, animated
        only = cluster.submit_all(_shared.histogram_only, full, name="vq-histogram-only")
        total = cluster.reduce_tree(_shared.merge_pair, only, name="vq-histogram-sum")
        fit = cluster.submit_all(_shared.fit_task, [(total, options)], name="vq-fit")
        outcome = next(iter(cluster.as_completed(fit, _asked_to_stop)))
    except KeyboardInterrupt:
        with interrupts_ignored():
            cluster.cancel(full + small)
        runner.close_bar()
        return None, True, animated
    if outcome.error is not None:
        raise outcome.error
    return outcome.result, False, animated


class _Runner:
    """Where the batch runs: this process (``cluster`` None) or a Dask cluster; its bar."""

    def __init__(self, cluster: Any, mode: bool | None) -> None:
        self.cluster = cluster
        self.mode = mode
        self.bar: Any = None

    def start_bar(self, total: int, desc: str) -> None:
        if self.mode is False:
            return
        from tqdm import tqdm

        self.bar = tqdm(
            total=total,
            desc=desc,
            unit="file",
            file=sys.stderr,
            disable=None if self.mode is None else False,
        )

    def tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _check_shared(args: argparse.Namespace) -> None:
    if not args.shared_palette:
        return
    for flag, given in (
        ("--use-palette", args.use_palette),
        ("--init-palette", args.init_palette),
        ("--quality", args.quality is not None),
        ("--max-delta-e", args.max_delta_e is not None),
        ("-k auto", args.colors == "auto"),
        ("--importance (a map of one image)", getattr(args, "importance", None)),
    ):
        if given:
            raise UsageError(f"--shared-palette fits one palette of K colours: not with {flag}")


def _cluster_choice(args: argparse.Namespace, n_jobs: int) -> Any:
    """Return the ClusterChoice of the options, or None to run in this process."""
    from quantize.distributed import SCHEDULER_ENV, choose_cluster

    remote = args.scheduler or args.scheduler_file or os.environ.get(SCHEDULER_ENV)
    if not remote and (args.jobs == 1 or n_jobs <= 1):
        return None
    try:
        return choose_cluster(args.scheduler, args.scheduler_file, min(args.jobs, max(1, n_jobs)))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run(
    args: argparse.Namespace,
    err: Err,
    *,
    on_report: Callable[[int, dict[str, Any]], None] | None = None,
    on_cluster: Callable[[str, str | None], None] | None = None,
) -> int:
    """Run ``vq batch``.

    The desktop app's Batch window calls this too, on a thread, inside a
    :func:`quantize.distributed.cancel_scope` (its Cancel button acts as Ctrl-C).

    Parameters
    ----------
    args : argparse.Namespace
    err : callable
        Prints a line on stderr.
    on_report : callable, optional
        ``on_report(index, report)`` as each input is done (failed, skipped); ``index``
        into ``args.inputs`` after folders were expanded.
    on_cluster : callable, optional
        ``on_cluster(where, dashboard_link)`` once the Dask cluster is up.

    Returns
    -------
    code : int
        0, or the code all failures share, else 1; 130 when interrupted.  Failures are
        reported on stderr even with ``--quiet`` (which silences progress and summary).
    """
    from quantize.cli._run import read_stdin
    from quantize.io.load import LoadError

    check_combination(args)
    _check_shared(args)
    args.inputs = _expand_inputs(args.inputs)
    if not args.inputs:
        raise UsageError("no image files among the inputs")
    if args.inputs.count(STDIN) > 1:
        raise UsageError("standard input ('-') can be read only once")
    if args.skip_existing and args.force:
        raise UsageError("use either --skip-existing or --force, not both")
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
    mode = progress_mode(args)
    runner = _Runner(None, mode)

    def record(index: int, res: dict[str, Any]) -> None:
        res["input"] = _label(args.inputs[index])  # as given (remote workers see it absolute)
        results[index] = res
        if on_report is not None:
            on_report(index, res)
        if not res["ok"]:  # errors are always said, --quiet or not
            err(f"vq: {res['message']}")
            if res.get("traceback"):
                err(res["traceback"].rstrip())

    def record_file(index: int, res: dict[str, Any]) -> None:
        record(index, res)
        runner.tick()

    huge: dict[int, Any] = {}  # TIFFs over the pixel cap: processed in strips

    def targets_of(index: int) -> list[Path]:
        if index in huge:
            from quantize.cli._huge import huge_targets

            base = output_targets(args, stems[index])
            return [path for _, path in huge_targets(args, stems[index], base)]
        return [path for _, path in output_targets(args, stems[index])]

    jobs: list[_Job] = []
    for index, (text, stem) in enumerate(zip(args.inputs, stems, strict=True)):
        if text != STDIN:
            from quantize.io.huge import tiff_info

            info = tiff_info(text)
            if info is not None and info.n_pixels > args.max_pixels:
                if info.problem:
                    message = f"{text}: {info.width}x{info.height} pixels is over the pixel "
                    record(index, _failure(text, 3, message + f"limit, and {info.problem}"))
                    continue
                huge[index] = info
        if args.skip_existing and all(p.exists() for p in targets_of(index)):
            names = ", ".join(str(p) for p in targets_of(index))
            skip = f"{_label(text)}: skipped, {names} already there (--skip-existing)"
            record(index, {"ok": True, "skipped": True, "code": EXIT_OK, "message": skip})
            continue
        data = None
        if text == STDIN:  # read here: worker processes have no standard input
            try:
                data = read_stdin(args.max_pixels)
            except LoadError as exc:
                record(index, _failure(text, *classify(exc)))
                continue
        if index not in huge:
            jobs.append((index, (text, stem, options, data)))
    huge_order = [i for i in huge if i not in results]

    choice = _cluster_choice(args, len(jobs) + 2 * len(huge_order))
    if choice is not None and choice.kind != "local":  # remote workers: another cwd
        options["outdir"] = os.path.abspath(args.outdir)
        jobs = [
            (i, (t[0] if t[0] == STDIN else os.path.abspath(t[0]), t[1], options, t[3]))
            for i, t in jobs
        ]
    before = {p: _stat_key(p) for i, _ in jobs for p in targets_of(i)}
    interrupted = False
    unreported: dict[int, list[Path]] = {}
    cluster = None
    pids_before: dict[str, int] = {}
    fit: dict[str, Any] | None = None
    try:
        if choice is not None and (jobs or huge_order):
            from quantize.distributed import Cluster

            try:
                cluster = Cluster(choice, quiet=not args.debug).__enter__()
            except (ConnectionError, OSError, TimeoutError) as exc:
                remove_folders(created)
                raise UsageError(f"{exc}") from None
            runner.cluster = cluster
            pids_before = cluster.worker_pids() if cluster.is_local else {}
            link = cluster.dashboard_link
            if on_cluster is not None:
                on_cluster(choice.describe(), link)
            if mode is not False:
                where = f"; dashboard {link}" if link else ""
                err(f"vq: running on a {choice.describe()}{where}")
        if args.shared_palette and jobs:
            fit, interrupted, animated = _shared_palette(runner, jobs, options, record)
            if fit is not None and not interrupted:
                for w in fit["warnings"]:
                    err(f"vq: warning: shared palette: {w}")
                shared = dict(options, fixed_palette=fit["palette"])
                readable = set(results)
                jobs = [
                    (i, (t[0], t[1], dict(shared, animated=i in animated), t[3]))
                    for i, t in jobs
                    if i not in readable
                ]
            elif not interrupted:
                jobs = []
        if not interrupted and (jobs or huge_order):
            runner.start_bar(len(jobs) + len(huge_order), "vq batch")
            if cluster is None:
                interrupted = _run_here(jobs, record_file, unreported)
            else:
                interrupted = _run_cluster(
                    cluster, batch_task, jobs, record_file, lambda i: args.inputs[i], "vq-file"
                )
        if not interrupted and huge_order:
            interrupted = _run_huge(args, stems, huge, huge_order, cluster, record_file)
    finally:
        runner.close_bar()
        killed: list[int] = []
        if cluster is not None:
            with interrupts_ignored():
                after = cluster.worker_pids() if cluster.is_local else {}
                cluster.close()  # a local cluster's workers are stopped (killed if need be)
                killed = [pid for pid in pids_before.values() if pid not in after.values()]
                if interrupted:
                    killed = list(pids_before.values()) + list(after.values())
                done = [p for i, r in results.items() if r["ok"] for p in targets_of(i)]
                rest = [
                    p
                    for i in [*(i for i, _ in jobs), *huge_order]
                    if i not in results
                    for p in targets_of(i)
                ]
                _clean_strays(done, rest, killed)
                if killed and not interrupted:
                    err(
                        f"vq: warning: {len(killed)} worker process(es) died during the batch; "
                        "their files were done again by the others"
                    )
    if interrupted:  # files a stopped task put in place before its report reached us
        for i, _ in jobs:
            if i not in results:
                changed = [p for p in targets_of(i) if _stat_key(p) != before.get(p)]
                if changed and all(_stat_key(p) is not None for p in changed):
                    unreported[i] = changed
        # what a task stopped after writing put in place is reported as done
        for i in sorted(unreported):
            if i not in results and unreported[i]:
                outputs = [str(p) for p in unreported[i]]
                record(i, {"ok": True, "written_without_summary": True, "outputs": outputs})
    return _finish(args, err, results, interrupted, created, fit)


def _run_huge(
    args: argparse.Namespace,
    stems: Sequence[str],
    huge: dict[int, Any],
    order: Sequence[int],
    cluster: Any,
    record: _Record,
) -> bool:
    """Quantize the TIFFs over the pixel cap one after the other, each in strips.

    Returns whether interrupted (the image being written is discarded whole).
    """
    from quantize.cli._huge import huge_targets, run_huge
    from quantize.protocol import Cancelled

    remote = cluster is not None and cluster.choice.kind != "local"
    if remote:
        args = argparse.Namespace(**{**vars(args), "outdir": os.path.abspath(args.outdir)})
    for index in order:
        text = args.inputs[index]
        path = os.path.abspath(text) if remote else text
        try:
            _stop_if_asked()
            stem = stems[index]
            targets = huge_targets(args, stem, output_targets(args, stem))
            report = run_huge(path, stem, args, huge[index], cluster, targets)
        except (KeyboardInterrupt, Cancelled):
            return True
        except Exception as exc:
            code, message = classify(exc)
            report = _failure(text, code, message)
        record(index, report)
    return False


def _finish(
    args: argparse.Namespace,
    err: Err,
    results: dict[int, dict[str, Any]],
    interrupted: bool,
    created: list[Path],
    fit: dict[str, Any] | None,
) -> int:
    """Print the summary, write the batch report, return the exit code."""
    out_dir = Path(args.outdir)
    reports = [results[i] for i in sorted(results)]
    failed = [r for r in reports if not r["ok"]]
    skipped = [r for r in reports if r.get("skipped")]
    n_ok = len(reports) - len(failed) - len(skipped)
    not_processed = [_label(t) for i, t in enumerate(args.inputs) if i not in results]
    doc: dict[str, Any] = {
        "ok": n_ok,
        "skipped": len(skipped),
        "failed": len(failed),
        "files": reports,
    }
    if fit is not None:
        doc["shared_palette"] = {k: v for k, v in fit.items() if k != "warnings"}
        doc["shared_palette"]["palette"] = [
            "#{:02x}{:02x}{:02x}".format(*map(int, c)) for c in fit["palette"]
        ]
    if interrupted:
        doc.update(interrupted=True, not_processed=not_processed)
    if args.json:
        print(json.dumps(doc, indent=2, allow_nan=False))
    elif not args.quiet:
        for r in reports:
            if r.get("skipped"):
                print(f"skip  {r['message']}")
            elif r["ok"]:
                outs = ", ".join(Path(o).name for o in _report_outputs(r))
                if r.get("written_without_summary"):
                    print(f"ok    {r['input']}: written as the interrupt came -> {outs}")
                    continue
                s = r["summary"]
                if s.get("frames", 1) > 1 and s.get("metrics") is None:
                    what = f"{s['frames']} frames, K={s['n_colors']}"
                else:
                    psnr = fmt_float((s["metrics"] or {}).get("psnr"), 2, " dB", "n/a")
                    what = f"K={s['n_colors']}, PSNR {psnr}"
                print(f"ok    {r['input']}: {what} -> {outs}")
        more = f", {len(skipped)} skipped" if skipped else ""
        stop = f", {len(not_processed)} not processed (interrupted)" if interrupted else ""
        shared = " (one shared palette)" if fit is not None else ""
        print(f"{n_ok} ok{more}, {len(failed)} failed{stop}, output in {out_dir}{shared}")
    if args.report and (n_ok or failed or interrupted) and out_dir.is_dir():
        from quantize.io._atomic import atomic_write_bytes

        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
        try:
            atomic_write_bytes(out_dir / REPORT_NAME, text.encode(), overwrite=True)
        except Exception as exc:  # the outputs are in place: say it, exit non-zero
            code, message = classify(exc)
            err(f"vq: {message}")
            failed.append({"ok": False, "code": code})
    remove_folders(created)  # only if still empty
    if interrupted:
        written = [path for r in reports if r["ok"] for path in _report_outputs(r)]
        err(
            f"vq: interrupted - {written_words(written)}; "
            f"{len(not_processed)} of {len(args.inputs)} files not processed"
        )
        return EXIT_CANCELLED
    if not failed:
        return EXIT_OK
    codes = {r["code"] for r in failed}
    return codes.pop() if len(codes) == 1 else EXIT_OTHER
