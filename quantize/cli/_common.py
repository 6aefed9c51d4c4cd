"""What the ``vq`` subcommands share: exit codes, errors, option groups, progress bar.

The quantization options are built from the tables: ``--method`` from
:data:`quantize.cluster.registry.METHODS` (read when the parser is built, so a method
registered before appears), ``--space``, ``--covariance`` and ``--dither`` from
:mod:`quantize.options`, the palette extensions from :mod:`quantize.io.palettes`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import textwrap
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

from quantize.cluster.registry import METHODS
from quantize.options import COLOR_SPACES, COVARIANCE_TYPES, DEFAULTS, DITHERS

__all__ = [
    "EPILOG",
    "EXIT_CANCELLED",
    "EXIT_EXISTS",
    "EXIT_INPUT",
    "EXIT_LARGER",
    "EXIT_OK",
    "EXIT_OTHER",
    "EXIT_QUALITY",
    "EXIT_USAGE",
    "Err",
    "Progress",
    "QualityNotReached",
    "SkippedLarger",
    "UsageError",
    "add_fit_options",
    "add_output_mode",
    "add_segmentation_outputs",
    "add_smoothing_options",
    "add_write_options",
    "classify",
    "create_dirs",
    "drive",
    "fmt_float",
    "methods_epilog",
    "native_stderr_muted",
    "or_list",
    "positive_int",
    "progress_mode",
    "remove_folders",
    "written_words",
]

EXIT_OK = 0
EXIT_OTHER = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_QUALITY = 4
EXIT_EXISTS = 5
EXIT_LARGER = 6
EXIT_CANCELLED = 130

EPILOG = f"""\
exit codes:
  {EXIT_OK}  success
  {EXIT_OTHER}  other error (e.g. disk full or permission denied while writing)
  {EXIT_USAGE}  usage error (bad option or value)
  {EXIT_INPUT}  input image missing, unreadable or not a supported image
  {EXIT_QUALITY}  quality target (--quality / --max-delta-e) not reached, or no palette fits
      --max-size: nothing written
  {EXIT_EXISTS}  an output file already exists (use --force): nothing written
  {EXIT_LARGER}  --skip-if-larger: the indexed PNG would not be smaller than the input
  {EXIT_CANCELLED}  interrupted (Ctrl+C or SIGTERM): no partial file left
For `vq batch`, the code of the failures if they all share one, else {EXIT_OTHER}
(files skipped by --skip-if-larger are not failures there).
"""

#: prints one line on stderr
Err = Callable[[str], None]


class UsageError(Exception):
    """Invalid combination of options (exit code 2)."""


class SkippedLarger(Exception):
    """``--skip-if-larger`` and the result would not be smaller (exit code 6)."""


class QualityNotReached(Exception):
    """The quality target was not met even at the largest K (exit code 4)."""


# --------------------------------------------------------------------------------------
# argument types
# --------------------------------------------------------------------------------------


def _checked(
    convert: Callable[[str], Any], valid: Callable[[Any], bool], expected: str
) -> Callable[[str], Any]:
    """Make an argparse ``type``: ``convert`` the text, refuse it unless ``valid``."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not valid(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0")
_unit_float = _checked(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")
_non_negative_float = _checked(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")
_positive_float = _checked(float, lambda v: math.isfinite(v) and v > 0, "a positive number")
_power_float = _checked(float, lambda v: 1.0 <= v <= 2.0, "a number in [1, 2]")


def _k_value(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    value = positive_int(text)
    if value > 65536:
        raise argparse.ArgumentTypeError("at most 65536 colours")
    return value


# --------------------------------------------------------------------------------------
# option groups
# --------------------------------------------------------------------------------------


def or_list(words: Sequence[str], conjunction: str = "or") -> str:
    """Join words as a sentence does: ``"a, b or c"``.

    Parameters
    ----------
    words : sequence of str
    conjunction : str, optional

    Returns
    -------
    text : str
    """
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def progress_mode(args: argparse.Namespace) -> bool | None:
    """Return False (no bar), None (a bar if stderr is a terminal) or True (always).

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    mode : bool or None
    """
    if args.quiet or args.json:
        return False
    return True if getattr(args, "progress", False) else None


def add_output_mode(p: argparse.ArgumentParser) -> None:
    """Add ``--quiet``, ``--progress``, ``--json`` and ``--debug``.

    Parameters
    ----------
    p : argparse.ArgumentParser
    """
    g = p.add_argument_group("output mode")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    g.add_argument(
        "--progress",
        action="store_true",
        help="show the progress bar even when stderr is not a terminal",
    )
    g.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    g.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def add_write_options(g: Any, skip_help: str) -> None:
    """Add ``--skip-if-larger`` and ``--force`` to a group.

    Parameters
    ----------
    g : argparse argument group or parser
    skip_help : str
        Help of ``--skip-if-larger``.
    """
    g.add_argument("--skip-if-larger", action="store_true", help=skip_help)
    g.add_argument("-f", "--force", action="store_true", help="overwrite existing files")


def methods_epilog() -> str:
    """List the registered methods with their descriptions, for a subcommand's epilog.

    Returns
    -------
    text : str
        A ``methods:`` block (one method per line, wrapped at 79 columns) and a blank line.
    """
    width = max(len(name) for name in METHODS) + 2
    lines = ["methods (--method):"]
    for spec in METHODS.values():
        lines += textwrap.wrap(
            spec.description,
            79,
            initial_indent="  " + spec.name.ljust(width),
            subsequent_indent=" " * (2 + width),
        )
    return "\n".join(lines) + "\n\n"


def _escape(text: str) -> str:
    return text.replace("%", "%%")  # argparse %-formats help texts


def _init_help() -> str:
    """Write the help of ``--init``: the inits all methods offer, then each one's extras."""
    offered = [list(s.inits) for s in METHODS.values() if s.inits]
    common = [i for i in offered[0] if all(i in o for o in offered)] if offered else []
    extras = [
        f"{s.name} also {or_list([i for i in s.inits if i not in common])}"
        for s in METHODS.values()
        if s.inits and set(s.inits) - set(common)
    ]
    text = "initialisation: " + or_list(common)
    if extras:
        text += f" ({'; '.join(extras)})"
    own = [
        f"{s.name}: {next(iter(s.inits))}"
        for s in METHODS.values()
        if s.inits and next(iter(s.inits)) != DEFAULTS["init"]
    ]
    return f"{text}; default {DEFAULTS['init']}" + (f" ({'; '.join(own)})" if own else "")


def _size_value(text: str) -> int:
    from quantize.sweep import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_fit_options(p: argparse.ArgumentParser, *, choose_k: bool = True) -> None:
    """Add the quantization options, their choices and help built from the tables.

    Parameters
    ----------
    p : argparse.ArgumentParser
    choose_k : bool, optional
        Add the ways of choosing K and the palette (``-k``, ``--quality``,
        ``--max-delta-e``, ``--max-size``, ``--use-palette``, ``--init-palette``);
        ``vq sweep`` takes its K list instead.
    """
    from quantize.io.palettes import FORMATS

    d = DEFAULTS
    g = p.add_argument_group("quantization")

    def defaulted(flag: str, key: str, text: str, **kwargs: Any) -> None:
        """Add an option whose default is ``DEFAULTS[key]``, said in its help."""
        g.add_argument(flag, default=d[key], help=f"{text} (default %(default)s)", **kwargs)

    bic = "/".join(s.name for s in METHODS.values() if s.bic)
    if choose_k:
        _add_k_options(g, bic)
    g.add_argument(
        "--method",
        default=d["method"],
        choices=tuple(METHODS),
        help="clustering method, listed below (default %(default)s)",
    )
    defaulted("--space", "color_space", "colour space of the fit", choices=COLOR_SPACES.names)
    covariance = "/".join(s.name for s in METHODS.values() if s.uses_covariance)
    defaulted(
        "--covariance",
        "covariance_type",
        f"{covariance} covariance",
        choices=COVARIANCE_TYPES.names,
    )
    g.add_argument("--init", default=None, help=_escape(_init_help()))
    defaulted("--n-init", "n_init", "restarts, the best is kept", type=positive_int)
    defaulted("--max-iter", "max_iter", "iteration cap per restart", type=positive_int)
    own_tol = "; ".join(
        f"{s.name}: {s.tol_default():g}" for s in METHODS.values() if s.default_tol is not None
    )
    g.add_argument(
        "--tol",
        default=None,
        type=_positive_float,
        help=f"convergence tolerance (default {d['tol']:g}" + (f"; {own_tol})" if own_tol else ")"),
    )
    defaulted("--seed", "seed", "random seed", type=_non_negative_int)
    defaulted("--dither", "dither", "dithering of the output image", choices=DITHERS.names)
    defaulted("--strength", "dither_strength", "dithering strength in [0, 1]", type=_unit_float)
    readable = " ".join(f.suffixes[0] for f in FORMATS.values() if f.decode is not None)
    if choose_k:
        g.add_argument(
            "--use-palette",
            default=None,
            metavar="FILE",
            help=f"map onto this palette ({readable}) instead of fitting",
        )
        g.add_argument(
            "--init-palette",
            default=None,
            metavar="FILE",
            help="start the fit from this palette (K = its number of colours)",
        )
        lockable = "/".join(s.name for s in METHODS.values() if "locked" in s.options)
        g.add_argument(
            "--lock",
            default=None,
            metavar="COLOURS",
            help=f"keep these colours exactly, as the first palette entries ({lockable}); "
            "comma-separated hex codes, e.g. '#d52b1e,#f5f5f5'",
        )
        g.add_argument(
            "--lock-palette",
            default=None,
            metavar="FILE",
            help=f"keep every colour of this palette file ({readable}) exactly",
        )
    g.add_argument(
        "--no-keep-small-colors",
        dest="keep_small_colors",
        action="store_false",
        default=d["keep_small_colors"],
        help="do not give small distinct colour groups their own entry (by default a group "
        f"farther than {d['small_color_distance']:g} in OKLab from every palette entry and "
        f"covering at least {100 * d['small_color_share']:g}%% of the pixels gets one)",
    )
    defaulted(
        "--small-color-distance",
        "small_color_distance",
        "OKLab distance beyond which a colour group is far from the palette",
        type=_positive_float,
    )
    defaulted(
        "--small-color-share",
        "small_color_share",
        "least share of the pixels (0-1) of a far colour group that gets an entry",
        type=_unit_float,
    )
    g.add_argument(
        "--error-power",
        default=d["error_power"],
        type=_power_float,
        metavar="P",
        help="after a K-means fit, polish the palette for the least sum of distances to the "
        "power P in [1, 2]: below 2 an entry follows the many pixels it serves more than a "
        "few far ones; 2 leaves the K-means palette (default: 1.5 for K <= 32, else 2)",
    )
    defaulted("--max-pixels", "max_pixels", "refuse larger images", type=positive_int)
    if choose_k:  # vq quantize and vq batch (vq apply adds its own; vq sweep has none)
        add_smoothing_options(p)


def add_segmentation_outputs(g: Any) -> None:
    """Add ``--stats``, ``--overlay``, ``--overlay-opacity`` and ``--outlines`` to a group.

    Parameters
    ----------
    g : argparse argument group or parser
    """
    from quantize.io.overlay import DEFAULT_OPACITY

    g.add_argument(
        "--stats",
        default=None,
        metavar="FILE",
        help="region statistics per class and per connected region: pixels, share, mean "
        "colour, centroid, bounding box, regions per class (.csv or .json)",
    )
    g.add_argument(
        "--overlay",
        default=None,
        metavar="FILE.png",
        help="class colours over the photo (at --overlay-opacity), with outlines",
    )
    g.add_argument(
        "--overlay-opacity",
        type=_unit_float,
        default=DEFAULT_OPACITY,
        metavar="FRACTION",
        help="opacity of the class colours in the --overlay PNG, 0-1 (default %(default)s)",
    )
    g.add_argument(
        "--outlines", default=None, metavar="FILE.svg", help="class outlines as SVG polygons"
    )


def add_smoothing_options(p: argparse.ArgumentParser, *, model: bool = False) -> None:
    """Add ``--smooth [STRENGTH]`` and ``--min-region PIXELS`` (see :mod:`quantize.segment`).

    Parameters
    ----------
    p : argparse.ArgumentParser
    model : bool, optional
        For ``vq apply``: the defaults are the model's own settings.
    """
    from quantize.segment import DEFAULT_STRENGTH

    g = p.add_argument_group("spatial coherence (segmentation)")
    default = " (default: the model's setting)" if model else ""
    g.add_argument(
        "--smooth",
        nargs="?",
        const=DEFAULT_STRENGTH,
        default=None,
        type=_non_negative_float,
        metavar="STRENGTH",
        help="Potts prior on the labels and responsibilities, solved by mean field: STRENGTH "
        f"nats per agreeing neighbour (alone: {DEFAULT_STRENGTH:g}; 0: off){default}",
    )
    g.add_argument(
        "--min-region",
        type=_non_negative_int,
        default=None,
        metavar="PIXELS",
        help="merge connected regions smaller than PIXELS into their best neighbouring class"
        f" (0: off){default}",
    )


def _add_k_options(g: Any, bic: str) -> None:
    """Add ``-k``, ``--quality``, ``--max-delta-e`` and ``--max-size`` to a group."""
    d = DEFAULTS
    g.add_argument(
        "-k",
        "--colors",
        type=_k_value,
        default=None,
        metavar="K",
        help=f"number of colours, or 'auto' ({bic}: lowest BIC); default "
        f"{d['n_colors']}; with --quality/--max-delta-e the largest K tried",
    )
    g.add_argument(
        "--quality",
        type=_positive_float,
        default=None,
        metavar="PSNR",
        help="use the fewest colours whose PSNR reaches PSNR dB",
    )
    g.add_argument(
        "--max-delta-e",
        type=_positive_float,
        default=None,
        metavar="DE",
        help="use the fewest colours whose mean CIEDE2000 is at most DE",
    )
    g.add_argument(
        "--max-size",
        type=_size_value,
        default=None,
        metavar="SIZE",
        help="use the most colours (the best quality) whose indexed PNG fits SIZE bytes "
        "(300000, 300k = 300 kB, 300KiB, 1.5M); with -k the largest K tried",
    )


# --------------------------------------------------------------------------------------
# progress
# --------------------------------------------------------------------------------------


class Progress:
    """Feed IterationRecords to a tqdm bar on stderr.

    Parameters
    ----------
    enabled : bool or None
        False: no bar; None: a bar if stderr is a terminal; True: always.
    desc : str
        Text before the bar.
    """

    def __init__(self, enabled: bool | None, desc: str) -> None:
        self.bar = None
        if enabled is not False:
            from tqdm import tqdm

            self.bar = tqdm(
                desc=desc,
                unit="it",
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
                disable=None if enabled is None else False,
            )

    def update(self, rec: Any) -> None:
        """Show one record.

        Parameters
        ----------
        rec : IterationRecord
        """
        if self.bar is None:
            return
        if rec.stage == "auto-k":
            k = rec.extra.get("k")
            value = rec.extra.get("value")
            metric = rec.extra.get("metric", "")
            self.bar.set_description(f"auto K: K={k} {metric}={value:.4g}")
            return
        self.bar.update(1)
        self.bar.set_postfix_str(
            f"run {rec.restart + 1} it {rec.iteration} {rec.kind}={rec.objective:.6g}",
            refresh=False,
        )

    def close(self) -> None:
        """Draw the final state once (even after a very short fit) and remove the bar."""
        if self.bar is not None:
            self.bar.refresh()
            self.bar.close()


def drive(gen: Generator[Any, None, Any], progress: Progress) -> Any:
    """Run a generator of IterationRecords to its end, showing each; return its value.

    Parameters
    ----------
    gen : generator
    progress : Progress

    Returns
    -------
    value : object
        The generator's return value.
    """
    from quantize.distributed import cancel_requested
    from quantize.protocol import Cancelled

    try:
        while True:
            try:
                rec = next(gen)
            except StopIteration as stop:
                return stop.value
            progress.update(rec)
            if cancel_requested():  # a Dask task of a cancelled batch: stop between iterations
                gen.close()
                raise Cancelled("cancelled by request")
    finally:
        progress.close()


# --------------------------------------------------------------------------------------
# errors, folders, numbers
# --------------------------------------------------------------------------------------


def classify(exc: BaseException) -> tuple[int, str]:
    """Map an exception to the exit code and the one-line message the user reads.

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    code : int
    message : str
    """
    from quantize.io.errors import ExportError, OutputExistsError
    from quantize.io.load import LoadError
    from quantize.protocol import Cancelled

    if isinstance(exc, LoadError):
        return EXIT_INPUT, str(exc)
    if isinstance(exc, OutputExistsError):
        return EXIT_EXISTS, f"{exc} - nothing written"
    if isinstance(exc, ExportError):
        return EXIT_OTHER, f"{exc} - nothing written"
    if isinstance(exc, SkippedLarger):
        return EXIT_LARGER, str(exc)
    if isinstance(exc, QualityNotReached):
        return EXIT_QUALITY, str(exc)
    if isinstance(exc, UsageError):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, (KeyboardInterrupt, Cancelled)):
        return EXIT_CANCELLED, "interrupted"
    if isinstance(exc, ValueError):  # the engine validates parameters with ValueError
        return EXIT_USAGE, f"invalid parameters: {exc}"
    if isinstance(exc, MemoryError):
        from quantize.segment import SmoothingMemoryError

        if isinstance(exc, SmoothingMemoryError):  # refused before allocating: says why
            return EXIT_OTHER, f"{exc} - nothing written"
        return EXIT_OTHER, "out of memory (try a smaller image or fewer colours)"
    if isinstance(exc, OSError):
        name = getattr(exc, "filename", None)
        prefix = f"{name}: " if name else ""
        return EXIT_OTHER, f"{prefix}{exc.strerror or exc}"
    return EXIT_OTHER, f"{type(exc).__name__}: {exc}"


def written_words(paths: Sequence[str | Path], limit: int = 5) -> str:
    """Say which files were written, for the message of an interrupted command.

    Parameters
    ----------
    paths : sequence of str or Path
    limit : int, optional
        Name at most this many; the rest are counted.

    Returns
    -------
    text : str
        ``"nothing written"`` or ``"wrote a.png, a.json and 3 more"``.
    """
    if not paths:
        return "nothing written"
    names = [str(p) for p in paths[:limit]]
    if len(paths) > limit:
        names.append(f"{len(paths) - limit} more")
    return "wrote " + or_list(names, "and")


@contextlib.contextmanager
def native_stderr_muted(enabled: bool = True) -> Iterator[None]:
    """Send what native libraries print on file descriptor 2 to the null device, inside.

    libtiff (inside Pillow) prints its complaints about a damaged TIFF straight to the
    process's stderr ("Using code not yet in table."), next to the one-line error ``vq``
    prints, which already says what is wrong.  Python's own ``sys.stderr`` is flushed first.

    Parameters
    ----------
    enabled : bool, optional
        False: change nothing (``--debug`` shows everything).

    Yields
    ------
    None
    """
    saved = -1
    if enabled:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 2)
            finally:
                os.close(devnull)
        except (OSError, ValueError, AttributeError):  # no usable fd 2: nothing to mute
            if saved >= 0:
                os.close(saved)
            saved = -1
    try:
        yield
    finally:
        if saved >= 0:
            os.dup2(saved, 2)
            os.close(saved)


def create_dirs(folders: Sequence[str | None]) -> list[Path]:
    """Create missing folders (and parents); return the ones created (to undo on failure).

    Parameters
    ----------
    folders : sequence of str or None
        ``None`` and empty entries are skipped.

    Returns
    -------
    created : list of Path
        Outermost first.
    """
    created: list[Path] = []
    for folder in folders:
        if not folder:
            continue
        missing = []
        p = Path(folder).absolute()
        while not p.exists():
            missing.append(p)
            p = p.parent
        for m in reversed(missing):
            m.mkdir()
            created.append(m)
    return created


def remove_folders(created: list[Path]) -> None:
    """Remove folders made by :func:`create_dirs` that are still empty.

    Parameters
    ----------
    created : list of Path
    """
    for folder in reversed(created):
        try:
            folder.rmdir()  # only if still empty
        except OSError:
            pass


def fmt_float(value: Any, digits: int, unit: str = "", missing: str = "inf") -> str:
    """Format a number of the summary (``None`` means infinite or not defined).

    Parameters
    ----------
    value : float or None
    digits : int
    unit : str, optional
    missing : str, optional
        Text for ``None``.

    Returns
    -------
    text : str
    """
    if value is None:
        return missing + unit
    return f"{value:.{digits}f}{unit}"
