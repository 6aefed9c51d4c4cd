"""Palette files: GIMP ``.gpl``, Photoshop ``.act``, JSON, hex list, CSS and PNG swatches.

Each format is a :class:`PaletteFormat` (name, file extensions, encoder, reader) in the
table :data:`FORMATS`; :func:`encode_palette`, :func:`palette_format_for`,
:func:`read_palette` and :func:`write_palette` work through it.  An export kind of
:mod:`quantize.io.export` that writes a palette refers to one of these formats (and
registering such a kind adds a new format here).
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

from quantize.io._atomic import bytes_fill, reason, run_jobs
from quantize.io.errors import ExportError
from quantize.png import encode_png

__all__ = [
    "FORMATS",
    "PaletteFormat",
    "encode_palette",
    "hex_color",
    "index_width",
    "palette_format_for",
    "read_palette",
    "register_palette_format",
    "shares",
    "unregister_palette_format",
    "write_palette",
]

_SWATCH = 32
_SWATCH_COLUMNS = 16


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


def _encode_gpl(
    palette: np.ndarray, shares: list[float | None], *, name: str, transparent_index: int | None
) -> bytes:
    k = len(palette)
    lines = ["GIMP Palette", f"Name: {name}", f"Columns: {min(k, 16)}", "#"]
    for c, s in zip(palette, shares, strict=True):
        label = hex_color(c) + (f" {100 * s:.2f}%" if s is not None else "")
        lines.append(f"{c[0]:3d} {c[1]:3d} {c[2]:3d}\t{label}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _decode_gpl(data: bytes) -> np.ndarray:
    text = data.decode("utf-8")
    if not text.startswith("GIMP Palette"):
        raise ValueError("missing 'GIMP Palette' header")
    rows = []
    for line in text.splitlines()[1:]:
        m = re.match(r"\s*(\d+)\s+(\d+)\s+(\d+)", line)
        if m and not line.lstrip().startswith("#"):
            rows.append([int(v) for v in m.groups()])
    return _rgb_rows(rows)


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
    return table[: min(k, 256)].copy()


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
    doc = {"name": name, "n_colors": k, "colors": colors}
    return (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode("utf-8")


def _decode_json(data: bytes) -> np.ndarray:
    doc = json.loads(data.decode("utf-8"))
    return _rgb_rows([c["rgb"] for c in doc["colors"]])


def _encode_hex(
    palette: np.ndarray, shares: list[float | None], *, name: str, transparent_index: int | None
) -> bytes:
    return "".join(hex_color(c) + "\n" for c in palette).encode("ascii")


def _decode_hex_codes(data: bytes) -> np.ndarray:
    """Every ``#rrggbb`` in the text, in order (hex lists and CSS)."""
    found = re.findall(r"#([0-9a-fA-F]{6})\b", data.decode("utf-8"))
    return np.array([[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in found], np.uint8).reshape(
        -1, 3
    )


def _encode_css(
    palette: np.ndarray, shares: list[float | None], *, name: str, transparent_index: int | None
) -> bytes:
    k = len(palette)
    width = index_width(k)
    lines = [f"/* {name}: {k} colours */", ":root {"]
    for i, (c, s) in enumerate(zip(palette, shares, strict=True)):
        note = f" /* {100 * s:.2f}% */" if s is not None else ""
        lines.append(f"  --vq-color-{i:0{width}d}: {hex_color(c)};{note}")
    lines.append("}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _encode_swatches(
    palette: np.ndarray, shares: list[float | None], *, name: str, transparent_index: int | None
) -> bytes:
    k = len(palette)
    cols = min(max(k, 1), _SWATCH_COLUMNS)
    rows = max(1, -(-k // cols))
    grid = np.zeros((rows, cols, 3), np.uint8)
    grid.reshape(-1, 3)[:k] = palette
    big = np.repeat(np.repeat(grid, _SWATCH, axis=0), _SWATCH, axis=1)
    return encode_png(Image.fromarray(big, "RGB"))


def _decode_swatches(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
        arr = np.asarray(im.convert("RGB"))
    centres = arr[_SWATCH // 2 :: _SWATCH, _SWATCH // 2 :: _SWATCH].reshape(-1, 3)
    return centres.copy()


def _rgb_rows(rows: Any) -> np.ndarray:
    arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError("colour values must be between 0 and 255")
    return arr.astype(np.uint8)


for _fmt in (
    PaletteFormat("gpl", (".gpl",), _encode_gpl, _decode_gpl),
    PaletteFormat("act", (".act",), _encode_act, _decode_act),
    PaletteFormat("json", (".json",), _encode_json, _decode_json),
    PaletteFormat("hex", (".txt", ".hex"), _encode_hex, _decode_hex_codes),
    PaletteFormat("css", (".css",), _encode_css, _decode_hex_codes),
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


def read_palette(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a palette written by :func:`write_palette` (or by GIMP/Photoshop).

    Parameters
    ----------
    path : str or Path
        ``.gpl``, ``.act``, ``.json``, ``.txt``/``.hex``, ``.css`` or a swatch ``.png``.

    Returns
    -------
    palette : ndarray of shape (K, 3), uint8

    Raises
    ------
    ExportError
        Unreadable or malformed file, or a format that cannot be read.
    """
    p = Path(path)
    fmt = palette_format_for(p)
    decode = _FORMATS[fmt].decode
    if decode is None:
        raise ExportError(f"{p}: {fmt} palettes can be written but not read", [p])
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ExportError(f"{p}: cannot read ({reason(exc)})", [p]) from exc
    try:
        return decode(data)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, OSError) as exc:
        raise ExportError(f"{p}: not a valid {fmt} palette ({exc})", [p]) from exc


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
