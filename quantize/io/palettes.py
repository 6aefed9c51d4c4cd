"""Palette files: GIMP ``.gpl``, Photoshop ``.act``, JSON, hex list, CSS and PNG swatches.

Each format is a :class:`PaletteFormat` (name, file extensions, encoder, reader) in the
table :data:`FORMATS`; :func:`encode_palette`, :func:`palette_format_for`,
:func:`read_palette` and :func:`write_palette` work through it.  An export kind of
:mod:`quantize.io.export` that writes a palette refers to one of these formats (and
registering such a kind adds a new format here).

Palette files are read as untrusted input, like images: regular files only, at most
:data:`MAX_PALETTE_BYTES` bytes (:func:`quantize.io._atomic.read_regular_file`); every
channel an integer from 0 to 255 (a negative, fractional, boolean, huge or non-finite value
is refused, naming the line or entry and the value); 1 to :data:`MAX_COLORS` colours; JSON
nested at most :data:`MAX_JSON_DEPTH` deep; swatch PNGs at most :data:`MAX_SWATCH_PIXELS`
pixels, checked before decoding.  Every failure is a :class:`PaletteError` (a
:class:`~quantize.io.load.LoadError`, so ``vq`` exits with 3) naming the file.  Names
written inside palette files are sanitised (:func:`safe_name`) so that they cannot add
lines, colours or CSS.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from quantize.io._atomic import bytes_fill, read_regular_file, run_jobs
from quantize.io.errors import ExportError
from quantize.io.load import LoadError
from quantize.png import encode_png

__all__ = [
    "FORMATS",
    "MAX_COLORS",
    "MAX_JSON_DEPTH",
    "MAX_PALETTE_BYTES",
    "MAX_SWATCH_PIXELS",
    "PaletteError",
    "PaletteFormat",
    "decode_palette",
    "encode_palette",
    "hex_color",
    "index_width",
    "palette_format_for",
    "read_palette",
    "register_palette_format",
    "safe_name",
    "shares",
    "unregister_palette_format",
    "write_palette",
]

_SWATCH = 32
_SWATCH_COLUMNS = 16

#: Most colours a palette file may hold (the engine's limit for a given palette).
MAX_COLORS = 65536
#: Largest palette file read, in bytes (a JSON palette of MAX_COLORS colours is ~20 MB).
MAX_PALETTE_BYTES = 64 << 20
#: Deepest nesting of arrays and objects accepted in a JSON palette (ours needs 4).
MAX_JSON_DEPTH = 64
#: Largest swatch PNG decoded, in pixels: what :func:`write_palette` makes for MAX_COLORS.
MAX_SWATCH_PIXELS = (_SWATCH_COLUMNS * _SWATCH) * (MAX_COLORS // _SWATCH_COLUMNS * _SWATCH)


class PaletteError(LoadError, ExportError):
    """A palette file cannot be read; the message reads ``"<file>: <problem>"``.

    A :class:`~quantize.io.load.LoadError` (the input is unreadable: ``vq`` exits with 3)
    and, for callers written before it existed, an
    :class:`~quantize.io.errors.ExportError`.

    Parameters
    ----------
    path : str or Path or None
        The palette file.
    problem : str
        What is wrong (with the line or entry and the value where there is one).
    """

    def __init__(self, path: str | os.PathLike[str] | None, problem: str) -> None:
        LoadError.__init__(self, path, problem)
        self.paths = [] if path is None else [Path(path)]

    def __reduce__(self) -> tuple[Any, ...]:
        # picklable (a vq batch worker may hand it to its parent): rebuilt from both arguments
        return (type(self), (self.path, self.problem))


class PaletteEncoder(Protocol):
    """``encode(palette, shares, *, name, transparent_index) -> bytes``."""

    def __call__(
        self,
        palette: np.ndarray,
        shares: list[float | None],
        *,
        name: str,
        transparent_index: int | None,
    ) -> bytes: ...  # noqa: D102


@dataclass(frozen=True)
class PaletteFormat:
    """One palette file format.

    Parameters
    ----------
    name : str
        Format name for :func:`encode_palette` (``"gpl"``, ``"json"``...).
    suffixes : tuple of str
        Lower-case file extensions that mean this format, the usual one first
        (``(".txt", ".hex")``).
    encode : callable
        ``encode(palette, shares, *, name, transparent_index) -> bytes`` with ``palette``
        of shape (K, 3) uint8 and ``shares`` a list of K floats or ``None`` (unknown).
        Raises :class:`~quantize.io.errors.ExportError` for a palette it cannot hold.
    decode : callable, optional
        ``decode(data) -> ndarray of shape (K, 3), uint8``; raises ValueError (or KeyError,
        TypeError, UnicodeDecodeError) for a malformed file.  None: write-only format.
    """

    name: str
    suffixes: tuple[str, ...]
    encode: PaletteEncoder
    decode: Callable[[bytes], np.ndarray] | None = None


_FORMATS: dict[str, PaletteFormat] = {}
#: The palette formats by name, in registration order (a live, read-only view).
FORMATS: Mapping[str, PaletteFormat] = _FORMATS


def register_palette_format(fmt: PaletteFormat) -> None:
    """Add a palette format (or replace the one of the same name).

    Parameters
    ----------
    fmt : PaletteFormat

    Raises
    ------
    ValueError
        An empty name, no suffix, a suffix without its dot or not in lower case, or a
        suffix that already means another format.
    """
    if not fmt.name or not fmt.suffixes:
        raise ValueError(f"a palette format needs a name and suffixes, got {fmt!r}")
    for suffix in fmt.suffixes:
        if not suffix.startswith(".") or suffix != suffix.lower():
            raise ValueError(f"palette suffix must be like '.gpl', got {suffix!r}")
        owner = _suffix_table().get(suffix)
        if owner is not None and owner != fmt.name:
            raise ValueError(f"suffix {suffix!r} already means the {owner!r} palette format")
    _FORMATS[fmt.name] = fmt


def unregister_palette_format(name: str) -> None:
    """Remove a palette format added by :func:`register_palette_format`.

    Parameters
    ----------
    name : str
    """
    _FORMATS.pop(name, None)


def _suffix_table() -> dict[str, str]:
    return {s: f.name for f in _FORMATS.values() for s in f.suffixes}


# --------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------


def hex_color(rgb: Sequence[int] | np.ndarray) -> str:
    """Format one 8-bit sRGB colour as ``#rrggbb``.

    Parameters
    ----------
    rgb : sequence of int or ndarray of shape (3,) or (4,)
        Red, green and blue on 0-255 (a fourth, alpha, value is ignored).

    Returns
    -------
    text : str
        Lower-case hex code, e.g. ``"#ff0010"``.

    Raises
    ------
    ValueError
        Fewer than three values, or a value outside 0-255.
    """
    values = [int(v) for v in list(rgb)[:3]]
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise ValueError(f"expected three values on 0-255, got {rgb!r}")
    return "#{:02x}{:02x}{:02x}".format(*values)


def shares(palette: np.ndarray, proportions: np.ndarray | None) -> list[float | None]:
    """Each colour's share of the pixels, ``None`` where unknown or not finite.

    Parameters
    ----------
    palette : ndarray of shape (K, 3)
    proportions : ndarray of shape (K,) or None

    Returns
    -------
    shares : list of float or None
        K values (all ``None`` without proportions).

    Raises
    ------
    ValueError
        ``proportions`` does not have K values.
    """
    if proportions is None:
        return [None] * len(palette)
    p = np.asarray(proportions, np.float64).reshape(-1)
    if p.shape[0] != len(palette):
        raise ValueError(f"{len(palette)} colours but {p.shape[0]} proportions")
    return [float(v) if math.isfinite(v) else None for v in p]


def index_width(k: int) -> int:
    """Digits of a zero-padded palette index (at least 2): ``mask-07``, ``mask-123``.

    Parameters
    ----------
    k : int
        Number of palette entries.

    Returns
    -------
    width : int
    """
    return max(2, len(str(max(k - 1, 0))))


# --------------------------------------------------------------------------------------
# the formats (pure: arrays in, bytes out)
# --------------------------------------------------------------------------------------


def safe_name(name: str) -> str:
    """Make a name fit to write inside a palette file: one line of printable text.

    Every character that is not printable (line breaks of any kind, tabs, NUL and other
    control characters, lone surrogates) becomes a space; surrounding spaces are dropped.

    Parameters
    ----------
    name : str

    Returns
    -------
    name : str
    """
    return "".join(c if c.isprintable() else " " for c in str(name)).strip()


def _show(value: Any) -> str:
    """Quote a value from a file for a message, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "...'"


def _channel(value: Any, where: str) -> int:
    """One colour channel: a true integer (not a bool or a float) from 0 to 255."""
    if type(value) is int and 0 <= value <= 255:
        return value
    raise ValueError(f"{where}: {_show(value)} is not an integer from 0 to 255")


def _count(n: int) -> None:
    if n > MAX_COLORS:
        raise ValueError(f"more than {MAX_COLORS:,} colours")


def _rows_array(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, np.uint8).reshape(-1, 3)


def _encode_gpl(
    palette: np.ndarray, shares: list[float | None], *, name: str, transparent_index: int | None
) -> bytes:
    k = len(palette)
    lines = ["GIMP Palette", f"Name: {safe_name(name)}", f"Columns: {min(k, 16)}", "#"]
    for c, s in zip(palette, shares, strict=True):
        label = hex_color(c) + (f" {100 * s:.2f}%" if s is not None else "")
        lines.append(f"{c[0]:3d} {c[1]:3d} {c[2]:3d}\t{label}")
    return ("\n".join(lines) + "\n").encode("utf-8")


_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_GPL_KEY = re.compile(r"(Name|Columns)\s*:")
_GPL_VALUE = re.compile(r"0*([0-9]{1,3})")


def _decode_gpl(data: bytes) -> np.ndarray:
    # only the numbers matter: names in another encoding than UTF-8 are tolerated
    lines = _LINE_BREAK.split(data.decode("utf-8-sig", errors="replace"))
    if lines[0].strip() != "GIMP Palette":
        raise ValueError("the first line is not 'GIMP Palette'")
    rows: list[list[int]] = []
    for number, line in enumerate(lines[1:], start=2):
        text = line.strip()
        if not text or text.startswith("#") or _GPL_KEY.match(text):
            continue
        fields = text.split(None, 3)
        if len(fields) < 3:
            raise ValueError(
                f"line {number}: expected three values from 0 to 255, got {_show(text)}"
            )
        row = []
        for field in fields[:3]:
            m = _GPL_VALUE.fullmatch(field)
            if m is None or int(m.group(1)) > 255:
                raise ValueError(f"line {number}: {_show(field)} is not an integer from 0 to 255")
            row.append(int(m.group(1)))
        rows.append(row)
        _count(len(rows))
    return _rows_array(rows)


def _encode_act(
    palette: np.ndarray, shares: list[float | None], *, name: str, transparent_index: int | None
) -> bytes:
    k = len(palette)
    if k > 256:
        raise ExportError(f"a Photoshop .act palette holds at most 256 colours, not {k}")
    table = np.zeros((256, 3), np.uint8)
    table[:k] = palette
    trans = 0xFFFF if transparent_index is None else int(transparent_index)
    return table.tobytes() + struct.pack(">HH", k, trans)


def _decode_act(data: bytes) -> np.ndarray:
    if len(data) not in (768, 772):
        raise ValueError(f"{len(data)} bytes, expected 768 or 772")
    table = np.frombuffer(data[:768], np.uint8).reshape(256, 3)
    k = struct.unpack(">H", data[768:770])[0] if len(data) == 772 else 256
    if k == 0:
        raise ValueError("the trailer declares no colours")
    if k > 256:
        raise ValueError(f"the trailer declares {k} colours (at most 256)")
    return table[:k].copy()


def _encode_json(
    palette: np.ndarray, shares: list[float | None], *, name: str, transparent_index: int | None
) -> bytes:
    from quantize.metrics import srgb8_to_lab

    k = len(palette)
    lab = srgb8_to_lab(palette) if k else np.zeros((0, 3))
    colors = []
    for i, (c, s) in enumerate(zip(palette, shares, strict=True)):
        entry: dict[str, Any] = {
            "index": i,
            "hex": hex_color(c),
            "rgb": [int(v) for v in c],
            "lab": [round(float(v), 4) for v in lab[i]],
        }
        if s is not None:
            entry["share"] = s
        colors.append(entry)
    doc = {"name": name, "n_colors": k, "colors": colors}  # json.dumps escapes the name
    return (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode("utf-8")


# a JSON string (to skip when counting brackets): bytes, as UTF-8 never hides '"' or '\\'
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _json_depth(data: bytes) -> int:
    """Deepest nesting of arrays and objects in JSON text (an over-estimate if malformed)."""
    if b"[" not in data and b"{" not in data:
        return 0
    b = np.frombuffer(_JSON_STRING.sub(b"", data), np.uint8)
    step = ((b == ord("[")) | (b == ord("{"))).astype(np.int64)
    step -= (b == ord("]")) | (b == ord("}"))
    return int(np.cumsum(step).max(initial=0))


def _json_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > 100:
        raise ValueError(f"a number with {digits:,} digits")
    return int(text)


def _json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _decode_json(data: bytes) -> np.ndarray:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start:,})") from None
    depth = _json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"arrays and objects nested {depth:,} deep (at most {MAX_JSON_DEPTH})")
    try:
        doc = json.loads(text, parse_int=_json_int, parse_constant=_json_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    colors = doc.get("colors") if isinstance(doc, dict) else None
    if not isinstance(colors, list):
        raise ValueError("expected a JSON object with a 'colors' list")
    _count(len(colors))
    rows = []
    for i, entry in enumerate(colors):
        where = f"colors[{i}]"
        rgb = entry.get("rgb") if isinstance(entry, dict) else None
        if not isinstance(rgb, list) or len(rgb) != 3:
            raise ValueError(f"{where}: 'rgb' is not three integers from 0 to 255: {_show(rgb)}")
        rows.append([_channel(v, where) for v in rgb])
    return _rows_array(rows)


def _encode_hex(
    palette: np.ndarray, shares: list[float | None], *, name: str, transparent_index: int | None
) -> bytes:
    return "".join(hex_color(c) + "\n" for c in palette).encode("ascii")


_HEX_CODE = re.compile(r"#([0-9a-fA-F]{6})\b")
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.DOTALL)  # an unclosed one runs to the end


def _hex_codes(text: str) -> np.ndarray:
    """Every ``#rrggbb`` in the text, in order."""
    codes = []
    for n, m in enumerate(_HEX_CODE.finditer(text), start=1):
        _count(n)
        codes.append(bytes.fromhex(m.group(1)))
    return np.frombuffer(b"".join(codes), np.uint8).reshape(-1, 3).copy()


def _decode_hex_codes(data: bytes) -> np.ndarray:
    """Every ``#rrggbb`` in the text, in order (hex lists)."""
    return _hex_codes(data.decode("utf-8-sig", errors="replace"))


def _encode_css(
    palette: np.ndarray, shares: list[float | None], *, name: str, transparent_index: int | None
) -> bytes:
    k = len(palette)
    width = index_width(k)
    title = safe_name(name).replace("*/", "* /")  # cannot close its comment
    lines = [f"/* {title}: {k} colours */", ":root {"]
    for i, (c, s) in enumerate(zip(palette, shares, strict=True)):
        note = f" /* {100 * s:.2f}% */" if s is not None else ""
        lines.append(f"  --vq-color-{i:0{width}d}: {hex_color(c)};{note}")
    lines.append("}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _decode_css(data: bytes) -> np.ndarray:
    """Every ``#rrggbb`` outside comments, in order."""
    return _hex_codes(_CSS_COMMENT.sub(" ", data.decode("utf-8-sig", errors="replace")))


def _encode_swatches(
    palette: np.ndarray, shares: list[float | None], *, name: str, transparent_index: int | None
) -> bytes:
    k = len(palette)
    cols = min(max(k, 1), _SWATCH_COLUMNS)
    rows = max(1, -(-k // cols))
    if rows * cols == k:
        grid = np.zeros((rows, cols, 3), np.uint8)
        grid.reshape(-1, 3)[:k] = palette
    else:  # cells after the last colour are transparent, so that reading gives K colours
        grid = np.zeros((rows, cols, 4), np.uint8)
        grid.reshape(-1, 4)[:k] = np.column_stack([palette, np.full(k, 255, np.uint8)])
    big = np.repeat(np.repeat(grid, _SWATCH, axis=0), _SWATCH, axis=1)
    return encode_png(Image.fromarray(big, "RGB" if grid.shape[2] == 3 else "RGBA"))


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _decode_swatches(data: bytes) -> np.ndarray:
    """Read the colour at the centre of each 32-pixel cell (fully transparent ones skipped)."""
    if len(data) < 33 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    width, height = struct.unpack(">II", data[16:24])
    if width * height > MAX_SWATCH_PIXELS:
        raise ValueError(
            f"{width:,} x {height:,} pixels, more than a swatch image can have "
            f"({MAX_SWATCH_PIXELS:,} pixels)"
        )
    half = _SWATCH // 2
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            im.load()
            rows = [
                np.asarray(im.crop((0, y, im.width, y + 1)).convert("RGBA"))[0, half::_SWATCH]
                for y in range(half, im.height, _SWATCH)
            ]
    except Exception as exc:  # Pillow raises many kinds (OSError, SyntaxError, struct.error...)
        text = str(exc)
        if not text or "BytesIO" in text:
            text = type(exc).__name__
        raise ValueError(f"not a readable PNG image ({text})") from exc
    cells = np.concatenate(rows).reshape(-1, 4) if rows else np.zeros((0, 4), np.uint8)
    return cells[cells[:, 3] != 0, :3].copy()


for _fmt in (
    PaletteFormat("gpl", (".gpl",), _encode_gpl, _decode_gpl),
    PaletteFormat("act", (".act",), _encode_act, _decode_act),
    PaletteFormat("json", (".json",), _encode_json, _decode_json),
    PaletteFormat("hex", (".txt", ".hex"), _encode_hex, _decode_hex_codes),
    PaletteFormat("css", (".css",), _encode_css, _decode_css),
    PaletteFormat("png", (".png",), _encode_swatches, _decode_swatches),
):
    register_palette_format(_fmt)
del _fmt


# --------------------------------------------------------------------------------------
# encoding, reading and writing by format name or file name
# --------------------------------------------------------------------------------------


def encode_palette(
    palette: np.ndarray,
    proportions: np.ndarray | None = None,
    fmt: str = "gpl",
    *,
    name: str = "VQ Studio palette",
    transparent_index: int | None = None,
) -> bytes:
    """Encode a palette in one of the :data:`FORMATS`.

    Parameters
    ----------
    palette : ndarray of shape (K, 3), uint8
    proportions : ndarray of shape (K,), optional
        Share of pixels of each colour (written where the format has room for it).
    fmt : {"gpl", "act", "json", "hex", "css", "png"} or a registered format
        GIMP palette, Photoshop colour table (772 bytes, K <= 256), JSON (hex, rgb, CIELAB,
        share), one ``#rrggbb`` per line, CSS custom properties, PNG swatch strip.
    name : str, optional
        Palette name (GIMP, JSON, CSS comment).
    transparent_index : int, optional
        Transparent entry to record in the ``.act`` trailer.

    Returns
    -------
    data : bytes

    Raises
    ------
    ExportError
        ``.act`` with more than 256 colours, or an unknown format.
    """
    palette = np.asarray(palette, np.uint8).reshape(-1, 3)
    values = shares(palette, proportions)
    codec = _FORMATS.get(fmt)
    if codec is None:
        raise ExportError(f"unknown palette format {fmt!r} (choose from {sorted(_FORMATS)})")
    return codec.encode(palette, values, name=name, transparent_index=transparent_index)


def palette_format_for(path: str | os.PathLike[str]) -> str:
    """Guess the palette format from a file name.

    Parameters
    ----------
    path : str or Path
        ``.gpl``, ``.act``, ``.json``, ``.txt``/``.hex``, ``.css``, ``.png`` or the suffix
        of a registered format.

    Returns
    -------
    fmt : str

    Raises
    ------
    ExportError
        Unknown extension.
    """
    suffix = Path(path).suffix.lower()
    table = _suffix_table()
    fmt = table.get(suffix)
    if fmt is None:
        known = ", ".join(sorted(table))
        raise ExportError(f"{path}: unknown palette extension {suffix!r} (use one of {known})")
    return fmt


def _checked(raw: Any) -> np.ndarray:
    """Check a decoder's output: a (K, 3) uint8 palette with 1 <= K <= MAX_COLORS."""
    arr = np.asarray(raw)
    if arr.ndim != 2 or arr.shape[1] != 3 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"the decoder gave {arr.dtype} values of shape {arr.shape}, not (K, 3)")
    if len(arr) == 0:
        raise ValueError("no colours")
    if len(arr) > MAX_COLORS:
        raise ValueError(f"{len(arr):,} colours (at most {MAX_COLORS:,})")
    if arr.min() < 0 or arr.max() > 255:
        raise ValueError("colour values outside 0-255")
    return arr.astype(np.uint8)


def decode_palette(
    data: bytes, fmt: str, *, source: str | os.PathLike[str] = "<palette>"
) -> np.ndarray:
    """Decode the bytes of a palette file, strictly.

    Parameters
    ----------
    data : bytes
        The file's content.
    fmt : str
        A readable format of :data:`FORMATS` (``"gpl"``, ``"act"``, ``"json"``...).
    source : str or Path, optional
        The file, named by the error message.

    Returns
    -------
    palette : ndarray of shape (K, 3), uint8
        1 <= K <= :data:`MAX_COLORS`.

    Raises
    ------
    PaletteError
        Unknown or write-only format, or malformed content: the message names ``source``,
        the problem and, where there is one, the line or entry and the value.
    """
    codec = _FORMATS.get(fmt)
    if codec is None:
        raise PaletteError(source, f"unknown palette format {fmt!r}")
    if codec.decode is None:
        raise PaletteError(source, f"{fmt} palettes can be written but not read")
    try:
        return _checked(codec.decode(bytes(data)))
    except PaletteError:
        raise
    except MemoryError:
        raise PaletteError(source, f"not enough memory to read this {fmt} palette") from None
    except Exception as exc:  # any decoder failure, a registered format's too: one error type
        problem = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        raise PaletteError(source, f"not a valid {fmt} palette ({problem})") from exc


def read_palette(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a palette written by :func:`write_palette` (or by GIMP/Photoshop).

    The file is read as untrusted input: a regular file (no FIFO, device or folder) of at
    most :data:`MAX_PALETTE_BYTES` bytes, decoded strictly by :func:`decode_palette`.

    Parameters
    ----------
    path : str or Path
        ``.gpl``, ``.act``, ``.json``, ``.txt``/``.hex``, ``.css`` or a swatch ``.png``.

    Returns
    -------
    palette : ndarray of shape (K, 3), uint8
        1 <= K <= :data:`MAX_COLORS`.

    Raises
    ------
    PaletteError
        Unknown extension, unreadable, not a regular file, too large, malformed, out of
        range values, no colours or too many (the message names the file).
    """
    try:  # messages name the file as the caller did ("./p.gpl" stays "./p.gpl")
        fmt = palette_format_for(path)
    except ExportError as exc:
        raise PaletteError(path, str(exc).removeprefix(f"{path}: ")) from None
    if _FORMATS[fmt].decode is None:
        raise PaletteError(path, f"{fmt} palettes can be written but not read")
    data = read_regular_file(path, MAX_PALETTE_BYTES, "palette file", PaletteError)
    return decode_palette(data, fmt, source=path)


def write_palette(
    path: str | os.PathLike[str],
    palette: np.ndarray,
    proportions: np.ndarray | None = None,
    fmt: str | None = None,
    *,
    overwrite: bool = False,
    name: str | None = None,
) -> Path:
    """Write a palette file atomically; the format follows the extension unless given.

    Parameters
    ----------
    path : str or Path
    palette : ndarray of shape (K, 3), uint8
    proportions : ndarray of shape (K,), optional
    fmt : {"gpl", "act", "json", "hex", "css", "png"}, optional
    overwrite : bool, optional
    name : str, optional
        Palette name; default the file stem.

    Returns
    -------
    path : Path
    """
    p = Path(path)
    fmt = fmt or palette_format_for(p)
    data = encode_palette(palette, proportions, fmt, name=name or p.stem)
    return run_jobs([(p, bytes_fill(data))], overwrite)[0]
