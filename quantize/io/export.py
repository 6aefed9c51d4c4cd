"""Exports: the table of export kinds, planning file names and writing them all or nothing.

Every output a result can be exported to (indexed PNG, palette files, label map, masks,
soft maps, ``.npz``, JSON sidecar) is one :class:`ExportKind` in a table: its name, the
label of the desktop app's export dialog, a description, how its files are named (one file
with a suffix, or one file per palette entry), its encoder and, for palettes, its
:class:`~quantize.io.palettes.PaletteFormat`.  :data:`EXPORT_KINDS`,
:data:`SINGLE_FILE_KINDS`, :data:`PALETTE_FORMATS`, :func:`plan_exports`,
:func:`export_all`, :func:`export_targets`, the ``vq`` command's ``--palette`` extensions
and the export dialog are all built from it, so a new kind is one
:func:`register_export_kind` call.

Writing goes through :mod:`quantize.io._atomic`: every target is checked before anything
is written, all files are staged as temporaries and then moved into place, so a failure
leaves the folder as it was.  No EXIF, GPS or text metadata is ever copied into an output.

A stem is a plain file-name stem (no folder, ``..``, absolute path or NUL): every file of
:func:`export_all` lies in its folder.  Files of a kind with one file per palette entry left
by an earlier export of the same stem with other colours (``photo.mask-05.png`` when there
are now 3 colours) are removed in the same transaction with ``overwrite``, and make the
export refuse without it (:func:`stale_exports`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from quantize.io import maps, model_file, overlay, stats_file
from quantize.io._atomic import (
    Fill,
    Job,
    atomic_write_bytes,
    check_targets,
    commit_jobs,
    lazy_fill,
)
from quantize.io.errors import ExportError, OutputExistsError
from quantize.io.palettes import (
    FORMATS,
    PaletteError,
    PaletteFormat,
    encode_palette,
    hex_color,
    index_width,
    palette_format_for,
    read_palette,
    register_palette_format,
    shares,
    unregister_palette_format,
    write_palette,
)
from quantize.io.sidecar import sidecar_bytes, sidecar_dict, write_sidecar

if TYPE_CHECKING:  # pragma: no cover
    from quantize.metrics import Metrics
    from quantize.pipeline import QuantizeResult

# besides its own names, this module re-exports the atomic writer, the errors, the palette
# functions and the sidecar, which used to live here (callers import them from here)
__all__ = [
    "EXPORT_KINDS",
    "KINDS",
    "PALETTE_FORMATS",
    "SINGLE_FILE_KINDS",
    "ExportError",
    "ExportFile",
    "ExportKind",
    "OutputExistsError",
    "PaletteError",
    "atomic_write_bytes",
    "check_stem",
    "encode_palette",
    "export_all",
    "export_targets",
    "get_export_kind",
    "hex_color",
    "palette_format_for",
    "palette_kinds_by_suffix",
    "plan_exports",
    "read_palette",
    "register_export_kind",
    "sidecar_dict",
    "stale_exports",
    "unregister_export_kind",
    "write_binary_masks",
    "write_indexed_png",
    "write_label_map",
    "write_npz",
    "write_palette",
    "write_sidecar",
    "write_soft_maps",
]


# --------------------------------------------------------------------------------------
# the table of export kinds
# --------------------------------------------------------------------------------------


class ExportRun:
    """What the files of one export share: the result, every file, the rendering, sources.

    Parameters
    ----------
    result : QuantizeResult
    files : list of Path
        Every file the export writes (the sidecar lists them).
    dither, strength : optional
        Rendering of the indexed PNG.
    rendering : (indices, png), optional
        That rendering if the caller has it; otherwise computed at most once.
    source_path, source_sha256, metrics : optional
        For the sidecar (see :func:`~quantize.io.sidecar.sidecar_dict`).
    overlay_opacity : float, optional
        Opacity in [0, 1] of the class colours in the overlay PNG (what the app's overlay
        view shows, or ``vq --overlay-opacity``).
    overlay_outlines : bool, optional
        Whether the overlay PNG draws the class outlines.

    Raises
    ------
    ValueError
        ``overlay_opacity`` outside [0, 1] (before any file is written).
    """

    def __init__(
        self,
        result: QuantizeResult,
        files: list[Path],
        *,
        dither: str = "none",
        strength: float = 1.0,
        rendering: tuple[np.ndarray, bytes] | None = None,
        source_path: str | os.PathLike[str] | None = None,
        source_sha256: str | None = None,
        metrics: Metrics | dict[str, Any] | None = None,
        overlay_opacity: float = overlay.DEFAULT_OPACITY,
        overlay_outlines: bool = True,
    ) -> None:
        if not 0.0 <= float(overlay_opacity) <= 1.0:
            raise ValueError(f"overlay opacity must be in [0, 1], got {overlay_opacity!r}")
        self.result = result
        self.files = files
        self.dither, self.strength = dither, strength
        self._rendering = rendering
        self.source_path, self.source_sha256, self.metrics = source_path, source_sha256, metrics
        self.overlay_opacity = float(overlay_opacity)
        self.overlay_outlines = bool(overlay_outlines)
        self._stats: Any = None

    def stats(self) -> Any:
        """Return the region statistics of the result, computed once (CSV and JSON share them).

        Returns
        -------
        stats : RegionStats
        """
        if self._stats is None:
            self._stats = stats_file.result_stats(self.result)
        return self._stats

    def rendering(self) -> tuple[np.ndarray, bytes]:
        """Return the indexed PNG's rendering, computed once (metrics and PNG share it).

        Returns
        -------
        rendering : (ndarray of shape (M, N), bytes)
            Palette indices and the encoded PNG.
        """
        if self._rendering is None:
            from quantize.metrics import render_indexed

            self._rendering = render_indexed(
                self.result, dither=self.dither, strength=self.strength
            )
        return self._rendering


@dataclass(frozen=True)
class ExportFile:
    """One file of an export, as an :class:`ExportKind`'s encoder sees it.

    Parameters
    ----------
    run : ExportRun
        What all files of the export share (``run.result``, ``run.rendering()``...).
    path : Path
        Where the file goes.
    name : str
        Name to write inside the file (a palette's name): the stem.
    index : int or None
        The palette entry, for kinds with one file per entry.
    """

    run: ExportRun
    path: Path
    name: str
    index: int | None = None

    @property
    def result(self) -> QuantizeResult:
        """The result being exported."""
        return self.run.result


@dataclass(frozen=True)
class ExportKind:
    """One kind of export.

    Parameters
    ----------
    name : str
        Name used by :func:`export_all` and the sidecar (an identifier, e.g. ``"gpl"``).
    label : str
        Text of the export dialog's check box.
    description : str
        One line of help (the dialog's tooltip).
    suffix : str
        Appended to the stem to name the file: ``".gpl"`` gives ``photo.gpl``.  With
        ``per_entry`` it holds ``{index}``, the zero-padded palette index, and may hold
        ``{hex}``, the entry's colour (``rrggbb``): ``".mask-{index}-{hex}.png"`` gives
        ``photo.mask-00-d52b1e.png``, ``photo.mask-01-f5f5f5.png`` ...
    encode : callable, optional
        ``encode(file: ExportFile) -> bytes``.
    write : callable, optional
        ``write(file: ExportFile, f)``: stream the content to the binary file ``f``
        (instead of ``encode``, for large files).
    per_entry : bool, optional
        One file per palette entry instead of one file.
    palette : PaletteFormat, optional
        The kind writes a palette in this format (then no encoder is needed); its suffixes
        are what ``vq quantize --palette FILE`` recognises.
    short_label : str, optional
        Words for a sentence of ``vq --help``; default the palette's usual suffix.
    """

    name: str
    label: str
    description: str
    suffix: str
    encode: Callable[[ExportFile], bytes] | None = None
    write: Callable[[ExportFile, IO[bytes]], None] | None = None
    per_entry: bool = False
    palette: PaletteFormat | None = None
    short_label: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"export kind name must be an identifier, got {self.name!r}")
        if sum(x is not None for x in (self.encode, self.write, self.palette)) != 1:
            raise ValueError(f"export kind {self.name!r}: give one of encode, write or palette")
        if not self.suffix or self.per_entry != ("{index}" in self.suffix):
            raise ValueError(
                f"export kind {self.name!r}: suffix {self.suffix!r} must contain "
                "'{index}' exactly when there is one file per entry"
            )
        if "{hex}" in self.suffix and not self.per_entry:
            raise ValueError(f"export kind {self.name!r}: '{{hex}}' needs one file per entry")
        if any(c in self.suffix for c in "/\\\0"):
            raise ValueError(f"export kind {self.name!r}: suffix {self.suffix!r} names a folder")
        if self.palette is not None and not self.short_label:
            object.__setattr__(self, "short_label", self.palette.suffixes[0])

    def paths(
        self, folder: Path, stem: str, k: int, palette: np.ndarray | None = None
    ) -> list[Path]:
        """Name the files of this kind.

        Parameters
        ----------
        folder : Path
        stem : str
        k : int
            Number of palette entries.
        palette : ndarray of shape (K, 3), uint8, optional
            The palette, for a suffix with ``{hex}`` (required then).

        Returns
        -------
        paths : list of Path
            One path, or ``k`` for a kind with one file per entry.
        """
        if not self.per_entry:
            return [folder / f"{stem}{self.suffix}"]
        width = index_width(k)
        if "{hex}" in self.suffix:
            if palette is None or len(palette) != k:
                raise ValueError(f"export kind {self.name!r} names its files by colour")
            hexes = [hex_color(c)[1:] for c in palette]
        else:
            hexes = [""] * k
        return [
            folder / (stem + self.suffix.format(index=f"{i:0{width}d}", hex=hexes[i]))
            for i in range(k)
        ]

    def entry_pattern(self, stem: str) -> re.Pattern[str] | None:
        """Match the file names this kind gives ``stem``'s entries, whatever their number.

        Parameters
        ----------
        stem : str

        Returns
        -------
        pattern : re.Pattern or None
            ``photo.mask-00-d52b1e.png``, ``photo.soft-123.png`` ... for a kind with one file
            per palette entry (two digits or more; with ``{hex}``, names without the colour
            too); ``None`` for a single-file kind.
        """
        if not self.per_entry:
            return None
        before, after = self.suffix.split("{index}", 1)
        if "{hex}" not in after:
            return re.compile(re.escape(stem + before) + r"[0-9]{2,}" + re.escape(after))
        # with the colour, and without it (the names of exports before colours were added)
        head, tail = after.split("{hex}", 1)
        named = re.escape(head) + "[0-9a-f]{6}" + re.escape(tail)
        plain = re.escape(head.rstrip("-_.") + tail)
        return re.compile(re.escape(stem + before) + r"[0-9]{2,}(?:" + named + "|" + plain + ")")

    def fill(self, file: ExportFile) -> Fill:
        """Make the job that writes ``file`` (nothing is computed before it runs).

        Parameters
        ----------
        file : ExportFile

        Returns
        -------
        fill : callable
            ``fill(f)`` writes the content to ``f``.
        """
        if self.write is not None:
            write = self.write
            return lambda f: write(file, f)
        fmt = self.palette
        if fmt is not None:
            return lazy_fill(lambda: _palette_bytes(fmt, file))
        encode = self.encode
        assert encode is not None
        return lazy_fill(lambda: encode(file))


_KINDS: dict[str, ExportKind] = {}
_OWN_FORMATS: set[str] = set()  # palette formats added by register_export_kind
#: The export kinds by name, in order (a live, read-only view; see register_export_kind).
KINDS: Mapping[str, ExportKind] = MappingProxyType(_KINDS)


def register_export_kind(kind: ExportKind, *, before: str | None = None) -> None:
    """Add an export kind (or replace the one of the same name, in its place).

    A kind with a palette format not yet known to :mod:`quantize.io.palettes` adds it
    there too, so that :func:`read_palette` and ``vq --palette`` know its suffixes.

    Parameters
    ----------
    kind : ExportKind
    before : str, optional
        Place it before this kind (e.g. ``"sidecar"``); default at the end.

    Raises
    ------
    ValueError
        Another kind already writes that palette format, or ``before`` is unknown.
    """
    if before is not None and before not in _KINDS:
        raise ValueError(f"no export kind {before!r} to insert before")
    fmt = kind.palette
    if fmt is not None:
        for other in _KINDS.values():
            if other.name != kind.name and other.palette and other.palette.name == fmt.name:
                raise ValueError(f"export kind {other.name!r} already writes {fmt.name!r} palettes")
        if FORMATS.get(fmt.name) is not fmt:
            register_palette_format(fmt)
            _OWN_FORMATS.add(fmt.name)
    if kind.name in _KINDS or before is None:
        _KINDS[kind.name] = kind
        return
    items = list(_KINDS.items())
    at = [name for name, _ in items].index(before)
    items.insert(at, (kind.name, kind))
    _KINDS.clear()
    _KINDS.update(items)


def unregister_export_kind(name: str) -> None:
    """Remove an export kind added by :func:`register_export_kind` (tests, plug-ins).

    Parameters
    ----------
    name : str
    """
    kind = _KINDS.pop(name, None)
    if kind is not None and kind.palette is not None and kind.palette.name in _OWN_FORMATS:
        _OWN_FORMATS.discard(kind.palette.name)
        unregister_palette_format(kind.palette.name)


def get_export_kind(name: str) -> ExportKind:
    """Return the export kind called ``name``.

    Parameters
    ----------
    name : str

    Returns
    -------
    kind : ExportKind

    Raises
    ------
    ExportError
        Unknown kind (the message lists the kinds).
    """
    _check_kinds([name])
    return _KINDS[name]


def palette_kinds_by_suffix() -> dict[str, str]:
    """Map each palette file extension to the export kind that writes it.

    Returns
    -------
    table : dict of str to str
        E.g. ``{".gpl": "gpl", ".json": "palette_json", ".txt": "hex", ".hex": "hex"}``.
    """
    return {s: k.name for k in _KINDS.values() if k.palette for s in k.palette.suffixes}


class _LiveNames(Sequence[str]):
    """A read-only tuple of kind names that follows the table."""

    def __init__(self, select: Callable[[], tuple[str, ...]]) -> None:
        self._select = select

    def __getitem__(self, i: Any) -> Any:
        return self._select()[i]

    def __len__(self) -> int:
        return len(self._select())

    def __iter__(self) -> Iterator[str]:
        return iter(self._select())

    def __contains__(self, value: object) -> bool:
        return value in self._select()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._select())


class _LiveSuffixes(Mapping[str, str]):
    """Palette format -> suffix of the kind that writes it, following the table."""

    def _table(self) -> dict[str, str]:
        return {k.palette.name: k.suffix for k in _KINDS.values() if k.palette}

    def __getitem__(self, fmt: str) -> str:
        return self._table()[fmt]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return repr(self._table())


#: Names of the export kinds, in order (live: follows register_export_kind).
EXPORT_KINDS: Sequence[str] = _LiveNames(lambda: tuple(_KINDS))
#: Kinds that write exactly one file (the others write one file per palette entry).
SINGLE_FILE_KINDS: Sequence[str] = _LiveNames(
    lambda: tuple(n for n, k in _KINDS.items() if not k.per_entry)
)
#: Palette format -> file suffix used by :func:`plan_exports` (live).
PALETTE_FORMATS: Mapping[str, str] = _LiveSuffixes()


# --------------------------------------------------------------------------------------
# the built-in kinds (per-pixel maps are encoded by quantize.io.maps)
# --------------------------------------------------------------------------------------


def _palette_bytes(fmt: PaletteFormat, file: ExportFile) -> bytes:
    palette = np.asarray(file.result.palette, np.uint8).reshape(-1, 3)
    values = shares(palette, getattr(file.result, "proportions", None))
    return fmt.encode(palette, values, name=file.name, transparent_index=None)


def _entry(file: ExportFile) -> int:
    assert file.index is not None  # a kind with one file per palette entry
    return file.index


def _sidecar(file: ExportFile) -> bytes:
    """Encode the sidecar: it lists every other file of the export, measures the rendering."""
    run = file.run
    rendering = None
    if run.metrics is None:  # the sidecar measures the rendering: share it with the PNG
        try:
            rendering = run.rendering()
        except (ValueError, TypeError, AttributeError, MemoryError):
            rendering = None  # sidecar_dict records why the metrics are missing
    doc = sidecar_dict(
        file.result,
        source_path=run.source_path,
        metrics=run.metrics,
        dither=run.dither,
        strength=run.strength,
        outputs=[p for p in run.files if p != file.path],
        source_sha256=run.source_sha256,
        rendering=rendering,
    )
    return sidecar_bytes(doc)


for _kind in (
    ExportKind(
        "indexed_png",
        "Indexed PNG (palette image)",
        "the image with its palette: smallest bit depth, tRNS for transparency",
        ".png",
        encode=lambda f: f.run.rendering()[1],
    ),
    ExportKind(
        "gpl",
        "GIMP palette (.gpl)",
        "GIMP palette, each colour with its share",
        ".gpl",
        palette=FORMATS["gpl"],
    ),
    ExportKind(
        "act",
        "Photoshop palette (.act)",
        "Photoshop colour table (at most 256 colours)",
        ".act",
        palette=FORMATS["act"],
    ),
    ExportKind(
        "palette_json",
        "Palette JSON",
        "hex, RGB, CIELAB and share of every colour",
        ".palette.json",
        palette=FORMATS["json"],
    ),
    ExportKind(
        "hex", "Hex colour list (.txt)", "one #rrggbb per line", ".hex.txt", palette=FORMATS["hex"]
    ),
    ExportKind(
        "css",
        "CSS variables (.css)",
        "one CSS custom property per colour",
        ".css",
        palette=FORMATS["css"],
    ),
    ExportKind(
        "swatch_png",
        "Swatch strip (PNG)",
        "a PNG of colour swatches, 16 per row",
        ".swatch.png",
        palette=FORMATS["png"],
        short_label=".png swatches",
    ),
    ExportKind(
        "label_map",
        "Label map (8/16-bit PNG)",
        "each pixel's palette index as a grey PNG (16-bit when K > 256)",
        ".labels.png",
        encode=lambda f: maps.gray_png(maps.label_array(f.result)),
    ),
    ExportKind(
        "binary_masks",
        "Binary mask per cluster (PNG, 0/255)",
        "one 0/255 PNG per palette colour",
        ".mask-{index}-{hex}.png",
        per_entry=True,
        encode=lambda f: maps.mask_png(f.result, _entry(f)),
    ),
    ExportKind(
        "soft_maps",
        "Soft maps (16-bit PNG per component)",
        "each component's responsibility as a 16-bit PNG (0..65535)",
        ".soft-{index}.png",
        per_entry=True,
        encode=lambda f: maps.gray_png(maps.soft_map(f.result, _entry(f))),
    ),
    ExportKind(
        "npz",
        "All maps in one .npz",
        "labels, palette, proportions, opacity, uncertainty and responsibilities",
        ".maps.npz",
        write=lambda f, out: maps.write_npz_to(f.result, out),
    ),
    ExportKind(
        "stats_csv",
        "Region statistics (CSV)",
        "pixels, share, mean colour, centroid and bounding box per class and per region",
        ".stats.csv",
        encode=lambda f: stats_file.stats_csv(f.run.stats()),
    ),
    ExportKind(
        "stats_json",
        "Region statistics (JSON)",
        "the same statistics as JSON",
        ".stats.json",
        encode=lambda f: stats_file.stats_json(f.run.stats()),
    ),
    ExportKind(
        "overlay_png",
        "Overlay on the photo (PNG)",
        "class colours over the photo (the overlay view's opacity), with the class outlines",
        ".overlay.png",
        encode=lambda f: overlay.overlay_png(
            f.result, opacity=f.run.overlay_opacity, outlines=f.run.overlay_outlines
        ),
    ),
    ExportKind(
        "outlines_svg",
        "Class outlines (SVG polygons)",
        "the borders of every class as closed SVG polygons, one path per class",
        ".outlines.svg",
        encode=lambda f: overlay.outlines_svg(f.result, name=f.name),
    ),
    ExportKind(
        "colour_model",
        "Colour model (JSON, for vq apply)",
        "the fitted colour classes, to label other images the same way",
        ".model.json",
        encode=lambda f: model_file.model_bytes(f.result),
    ),
    ExportKind(
        "sidecar",
        "JSON sidecar (parameters, metrics)",
        "input hash, parameters, versions, metrics, palette and the files written",
        ".json",
        encode=_sidecar,
    ),
):
    register_export_kind(_kind)
del _kind


# --------------------------------------------------------------------------------------
# planning and writing
# --------------------------------------------------------------------------------------


def plan_exports(
    result: QuantizeResult,
    out_dir: str | os.PathLike[str],
    stem: str,
    kinds: Iterable[str],
) -> list[Path]:
    """List every file :func:`export_all` would write, in order.

    Parameters
    ----------
    result : QuantizeResult
        Only ``palette`` is used (the number of mask files depends on K).
    out_dir : str or Path
    stem : str
        Base name, e.g. ``"photo"`` -> ``photo.png``, ``photo.gpl``, ``photo.mask-03.png``.
    kinds : iterable of str
        Subset of :data:`EXPORT_KINDS`.

    Returns
    -------
    paths : list of Path

    Raises
    ------
    ExportError
        Unknown kind, or ``stem`` is not a plain file-name stem (see :func:`check_stem`).
    """
    out = Path(out_dir)
    check_stem(stem)
    k = len(result.palette)
    planned = [
        p
        for kind in _check_kinds(kinds)
        for p in _KINDS[kind].paths(out, stem, k, np.asarray(result.palette))
    ]
    outside = [p for p in planned if p.parent != out]
    if outside:  # cannot happen with a checked stem and suffix: the last line of defence
        raise ExportError(f"{outside[0]}: outside the output folder {out}", outside)
    return planned


def check_stem(stem: str) -> None:
    r"""Refuse a stem that is not a plain file-name stem.

    Parameters
    ----------
    stem : str
        Base file name of an export (``"photo"``).

    Raises
    ------
    ExportError
        Empty, ``.`` or ``..``, or containing a path separator (``/`` or ``\``, on every
        system), a drive (``C:``) or a NUL character: such a stem could name a file outside
        the output folder.
    """
    if not isinstance(stem, str):
        raise ExportError(f"{stem!r}: not a file-name stem (a stem is a string)")
    bad = (
        stem in ("", ".", "..")
        or any(c in stem for c in "/\\\0")
        or (os.sep in stem)
        or bool(os.altsep and os.altsep in stem)
        or re.match(r"[A-Za-z]:", stem) is not None
    )
    if bad:
        raise ExportError(
            f"{stem!r}: not a file-name stem (no folder, '..', drive, absolute path or NUL "
            "character; choose the folder separately)"
        )


def stale_exports(
    result: QuantizeResult,
    out_dir: str | os.PathLike[str],
    stem: str,
    kinds: Iterable[str],
) -> list[Path]:
    """List the files an export would leave behind from an earlier one of the same stem.

    For each kind with one file per palette entry, the files of that kind and stem that the
    new export does not write (``photo.mask-05.png`` when there are now 3 colours, or
    ``photo.mask-000.png`` written when there were over 100).  :func:`export_all` removes
    them in its transaction with ``overwrite`` and refuses without it; an app asking before
    overwriting should list them with the files that exist.

    Parameters
    ----------
    result : QuantizeResult
        Only ``palette`` is used.
    out_dir : str or Path
    stem : str
    kinds : iterable of str

    Returns
    -------
    paths : list of Path
        Sorted by kind, then name.

    Raises
    ------
    ExportError
        As :func:`plan_exports`.
    """
    kinds = _check_kinds(kinds)
    planned = plan_exports(result, out_dir, stem, kinds)
    return _stale(Path(out_dir), [(_KINDS[kind], stem) for kind in kinds], planned)


def _stale(folder: Path, entries: list[tuple[ExportKind, str]], planned: list[Path]) -> list[Path]:
    """Files in ``folder`` matching a (per-entry kind, stem) pair, other than ``planned``."""
    patterns = [p for kind, stem in entries if (p := kind.entry_pattern(stem)) is not None]
    if not patterns:
        return []
    keep = {os.path.abspath(p) for p in planned}
    try:
        with os.scandir(folder) as it:
            names = sorted(e.name for e in it if not e.is_dir(follow_symlinks=False))
    except OSError:
        return []  # a missing folder is reported by the write
    found = []
    for pattern in patterns:
        for name in names:
            path = folder / name
            if pattern.fullmatch(name) and os.path.abspath(path) not in keep:
                found.append(path)
    return found


def _refuse_stale(stale: list[Path], overwrite: bool) -> None:
    if stale and not overwrite:
        more = f" (and {len(stale) - 1} more)" if len(stale) > 1 else ""
        raise OutputExistsError(
            f"{stale[0]}: left by an earlier export with other colours{more};"
            " use overwrite/--force to replace that set (nothing written)",
            stale,
        )


def _check_kinds(kinds: Iterable[str]) -> list[str]:
    kinds = list(dict.fromkeys(kinds))
    unknown = [k for k in kinds if k not in _KINDS]
    if unknown:
        raise ExportError(f"unknown export kind(s) {unknown}; choose from {list(_KINDS)}")
    # in table order: the sidecar last, it lists the other outputs
    order = list(_KINDS)
    return sorted(kinds, key=order.index)


def _jobs(run: ExportRun, kinds: list[str], planned: list[Path], name: str) -> list[Job]:
    """One job per planned file (``planned`` as :func:`plan_exports` lists it for ``kinds``).

    ``name`` is the name written into palette files.
    """
    k = len(run.result.palette)
    jobs: list[Job] = []
    cursor = iter(planned)
    for kind in (_KINDS[n] for n in kinds):
        for index in range(k) if kind.per_entry else [None]:
            path = next(cursor)
            jobs.append((path, kind.fill(ExportFile(run, path, name, index))))
    return jobs


def export_all(
    result: QuantizeResult,
    out_dir: str | os.PathLike[str],
    stem: str,
    kinds: Iterable[str],
    *,
    overwrite: bool = False,
    dither: str = "none",
    strength: float = 1.0,
    source_path: str | os.PathLike[str] | None = None,
    metrics: Metrics | dict[str, Any] | None = None,
    source_sha256: str | None = None,
    rendering: tuple[np.ndarray, bytes] | None = None,
    overlay_opacity: float = overlay.DEFAULT_OPACITY,
    overlay_outlines: bool = True,
) -> list[Path]:
    """Write several exports at once, all or nothing.

    Every target is checked before anything is written; all files are staged as temporary
    files, then moved into place.

    Parameters
    ----------
    result : QuantizeResult
    out_dir : str or Path
        Existing folder.
    stem : str
        Base file name (see :func:`plan_exports`).
    kinds : iterable of str
        Subset of :data:`EXPORT_KINDS`.
    overwrite : bool, optional
        Replace existing files; otherwise :class:`OutputExistsError` before writing any.
    dither : {"none", "fs", "ordered"}, optional
        Rendering of the indexed PNG.
    strength : float, optional
    source_path : str or Path, optional
        Input file recorded in the sidecar (with its SHA-256).
    metrics : Metrics or dict, optional
        Recorded in the sidecar (computed for the chosen rendering when not given).
    source_sha256 : str, optional
        SHA-256 of the input's bytes, if known (see :func:`sidecar_dict`).
    rendering : (indices, png), optional
        :func:`quantize.metrics.render_indexed` for ``dither``/``strength`` if the caller
        has it; otherwise the rendering is computed once for the PNG and the metrics.
    overlay_opacity, overlay_outlines : optional
        Opacity in [0, 1] and outlines of the overlay PNG (see :class:`ExportRun`).

    Returns
    -------
    paths : list of Path
        Files written, in :func:`plan_exports` order.

    Raises
    ------
    ExportError
        Nothing was changed.
    """
    kinds = _check_kinds(kinds)
    planned = plan_exports(result, out_dir, stem, kinds)
    check_targets(planned, overwrite)
    stale = _stale(Path(out_dir), [(_KINDS[kind], stem) for kind in kinds], planned)
    _refuse_stale(stale, overwrite)
    run = ExportRun(
        result,
        planned,
        dither=dither,
        strength=strength,
        rendering=rendering,
        source_path=source_path,
        source_sha256=source_sha256,
        metrics=metrics,
        overlay_opacity=overlay_opacity,
        overlay_outlines=overlay_outlines,
    )
    return commit_jobs(_jobs(run, kinds, planned, stem), overwrite, remove=stale)


def export_targets(
    result: QuantizeResult,
    targets: Sequence[tuple[str, str | os.PathLike[str]]],
    *,
    overwrite: bool = False,
    dither: str = "none",
    strength: float = 1.0,
    source_path: str | os.PathLike[str] | None = None,
    metrics: Metrics | dict[str, Any] | None = None,
    source_sha256: str | None = None,
    rendering: tuple[np.ndarray, bytes] | None = None,
    overlay_opacity: float = overlay.DEFAULT_OPACITY,
    overlay_outlines: bool = True,
) -> list[Path]:
    """Write exports to explicit paths, all or nothing (what the ``vq`` command uses).

    Parameters
    ----------
    result : QuantizeResult
    targets : sequence of (kind, path)
        For single-file kinds ``path`` is the file itself; for kinds with one file per
        palette entry (``"binary_masks"``, ``"soft_maps"``) it is ``folder/stem`` (files
        ``stem.mask-NN-rrggbb.png`` ...).  A ``"sidecar"`` lists every other target as its outputs.
    overwrite, dither, strength, source_path, metrics, source_sha256, rendering : optional
        As for :func:`export_all`.
    overlay_opacity, overlay_outlines : optional
        As for :func:`export_all`.

    Returns
    -------
    paths : list of Path
        Every file written.

    Raises
    ------
    ExportError
        Nothing was changed.
    """
    k = len(result.palette)
    planned: list[tuple[str, Path, list[Path]]] = []
    for kind, target in targets:
        path = Path(target)
        spec = get_export_kind(kind)
        files = (
            spec.paths(path.parent, path.name, k, np.asarray(result.palette))
            if spec.per_entry
            else [path]
        )
        planned.append((kind, path, files))
    every = [f for _, _, files in planned for f in files]
    check_targets(every, overwrite)
    stale: list[Path] = []
    for kind, path, _ in planned:
        for old in _stale(path.parent, [(get_export_kind(kind), path.name)], every):
            if old not in stale:
                stale.append(old)
    _refuse_stale(stale, overwrite)
    run = ExportRun(
        result,
        every,
        dither=dither,
        strength=strength,
        rendering=rendering,
        source_path=source_path,
        source_sha256=source_sha256,
        metrics=metrics,
        overlay_opacity=overlay_opacity,
        overlay_outlines=overlay_outlines,
    )
    jobs: list[Job] = []
    for kind, path, files in planned:
        jobs.extend(_jobs(run, [kind], files, path.name))
    return commit_jobs(jobs, overwrite, remove=stale)


def write_indexed_png(
    path: str | os.PathLike[str],
    result: QuantizeResult,
    *,
    dither: str = "none",
    strength: float = 1.0,
    overwrite: bool = False,
) -> Path:
    """Write the result as an indexed PNG (smallest bit depth, tRNS for transparency).

    Parameters
    ----------
    path : str or Path
    result : QuantizeResult
    dither : {"none", "fs", "ordered"}, optional
    strength : float, optional
    overwrite : bool, optional

    Returns
    -------
    path : Path
    """
    return export_targets(
        result, [("indexed_png", path)], overwrite=overwrite, dither=dither, strength=strength
    )[0]


def write_label_map(
    path: str | os.PathLike[str], result: QuantizeResult, *, overwrite: bool = False
) -> Path:
    """Write the labels as an 8-bit greyscale PNG (16-bit when K > 256).

    Parameters
    ----------
    path : str or Path
    result : QuantizeResult
    overwrite : bool, optional

    Returns
    -------
    path : Path
    """
    return export_targets(result, [("label_map", path)], overwrite=overwrite)[0]


def write_binary_masks(
    out_dir: str | os.PathLike[str], stem: str, result: QuantizeResult, *, overwrite: bool = False
) -> list[Path]:
    """Write one 0/255 PNG per cluster (``<stem>.mask-NN-rrggbb.png``), all or nothing.

    Parameters
    ----------
    out_dir : str or Path
    stem : str
    result : QuantizeResult
    overwrite : bool, optional

    Returns
    -------
    paths : list of Path
    """
    return export_all(result, out_dir, stem, ["binary_masks"], overwrite=overwrite)


def write_soft_maps(
    out_dir: str | os.PathLike[str], stem: str, result: QuantizeResult, *, overwrite: bool = False
) -> list[Path]:
    """Write each component's responsibility as a 16-bit PNG (0..65535), all or nothing.

    Parameters
    ----------
    out_dir : str or Path
    stem : str
    result : QuantizeResult
    overwrite : bool, optional

    Returns
    -------
    paths : list of Path
    """
    return export_all(result, out_dir, stem, ["soft_maps"], overwrite=overwrite)


def write_npz(
    path: str | os.PathLike[str], result: QuantizeResult, *, overwrite: bool = False
) -> Path:
    """Write all maps to one compressed ``.npz`` (loadable with ``allow_pickle=False``).

    Arrays: ``labels`` (M, N), ``palette`` (K, 3) uint8, ``proportions`` (K,), ``opaque``
    (M, N) bool, ``uncertainty`` (M, N) float32, ``responsibilities`` (K, M, N) float32.

    Parameters
    ----------
    path : str or Path
    result : QuantizeResult
    overwrite : bool, optional

    Returns
    -------
    path : Path
    """
    return export_targets(result, [("npz", path)], overwrite=overwrite)[0]
