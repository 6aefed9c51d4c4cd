"""Property-based tests (Hypothesis) of palette files and export names (issue 15, part A).

- every readable palette format round-trips any palette (K 1..256, any colours, any name);
- any bytes given to any reader give a valid (K, 3) uint8 palette or a PaletteError;
- any stem is refused with ExportError or every planned (and written) file lies in the folder;
- re-exporting masks with any sequence of K leaves exactly the last export's masks.

Sized to run in a few seconds together (``max_examples`` per test, no deadline, no database
written into the checkout).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from quantize.io.errors import ExportError
from quantize.io.export import export_all, plan_exports
from quantize.io.palettes import (
    FORMATS,
    MAX_COLORS,
    PaletteError,
    decode_palette,
    encode_palette,
    read_palette,
    write_palette,
)

READABLE = [name for name, fmt in FORMATS.items() if fmt.decode is not None]
BUILT_IN = ["gpl", "act", "json", "hex", "css", "png"]

FAST = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def few(n: int) -> settings:
    return settings(FAST, max_examples=n)


palettes_ = st.integers(1, 256).flatmap(
    lambda k: arrays(np.uint8, (k, 3), elements=st.integers(0, 255))
)
names = st.text(max_size=40) | st.sampled_from(["a\nb", "*/ #ff0000 /*", "x\r\n1 2 3", "\x85"])


# ------------------------------------------------------------------ round trips


def test_every_built_in_format_is_readable():
    assert set(BUILT_IN) <= set(READABLE)


@pytest.mark.parametrize("fmt", BUILT_IN)
@few(25)
@given(palette=palettes_, name=names, with_shares=st.booleans())
def test_any_palette_round_trips(fmt, palette, name, with_shares):
    shares = np.full(len(palette), 1.0 / len(palette)) if with_shares else None
    data = encode_palette(palette, shares, fmt, name=name)
    np.testing.assert_array_equal(decode_palette(data, fmt), palette)


@few(10)
@given(palette=palettes_, name=names, fmt=st.sampled_from(BUILT_IN))
def test_any_palette_round_trips_through_a_file(palette, name, fmt):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_palette(Path(tmp) / f"p{FORMATS[fmt].suffixes[0]}", palette, name=name)
        np.testing.assert_array_equal(read_palette(path), palette)


# ------------------------------------------------------------------ any bytes


def _valid_or_palette_error(data: bytes, fmt: str) -> None:
    try:
        palette = decode_palette(data, fmt, source="fuzz")
    except PaletteError as exc:
        assert str(exc).startswith("fuzz: ")
        return
    assert isinstance(palette, np.ndarray) and palette.dtype == np.uint8
    assert palette.ndim == 2 and palette.shape[1] == 3 and 1 <= len(palette) <= MAX_COLORS


channel_like = (
    st.integers(-300, 300)
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.none()
    | st.text(max_size=5)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)
json_palettes = st.builds(
    lambda entries, extra: {"colors": entries, **extra},
    st.lists(
        st.dictionaries(st.sampled_from(["rgb", "hex", "index"]), st.lists(channel_like)),
        max_size=4,
    )
    | json_values,
    st.dictionaries(st.text(max_size=5), json_values, max_size=2),
).map(lambda doc: json.dumps(doc).encode())
token = (
    st.integers(-5, 300).map(str)
    | st.sampled_from(["1.7", "1e3", "99999999999999999999", "0x10", "", "#", "Name:", "٣"])
    | st.text(max_size=4)
)
gpl_lines = st.lists(st.lists(token, max_size=5).map(" ".join), max_size=6).map(
    lambda lines: ("GIMP Palette\n" + "\n".join(lines)).encode("utf-8", "surrogatepass")
)
hex_text = st.lists(
    st.sampled_from(["#", "#0a0B0c", "ff", "/*", "*/", " ", "\n", "--x:", "#12345", "g"]),
    max_size=20,
).map(lambda parts: "".join(parts).encode())
png_like = st.binary(max_size=200).map(lambda b: b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + b)
any_bytes = (
    st.binary(max_size=1000)
    | json_palettes
    | gpl_lines
    | hex_text
    | png_like
    | st.binary(min_size=768, max_size=772)
    | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))
)


@pytest.mark.parametrize("fmt", BUILT_IN)
@few(60)
@given(data=any_bytes)
def test_any_bytes_give_a_palette_or_a_palette_error(fmt, data):
    _valid_or_palette_error(data, fmt)


@few(15)
@given(data=st.binary(max_size=300), fmt=st.sampled_from(BUILT_IN))
def test_any_file_gives_a_palette_or_a_palette_error(data, fmt):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"p{FORMATS[fmt].suffixes[0]}"
        path.write_bytes(data)
        try:
            palette = read_palette(path)
        except PaletteError as exc:
            assert str(exc).startswith(f"{path}: ")
        else:
            assert palette.dtype == np.uint8 and palette.shape[1] == 3 and len(palette) >= 1


# ------------------------------------------------------------------ names of exports


@dataclass(eq=False)
class Tiny:
    palette: np.ndarray
    labels: np.ndarray
    opaque: None = None

    @property
    def proportions(self) -> np.ndarray:
        return np.bincount(self.labels.ravel(), minlength=len(self.palette)) / self.labels.size


def tiny(k: int) -> Tiny:
    palette = (np.arange(3 * k).reshape(k, 3) * 7 % 256).astype(np.uint8)
    labels = (np.arange(4 * max(k, 4)) % k).reshape(4, -1).astype(np.uint8)
    return Tiny(palette, labels)


stems = (
    st.text(max_size=30)
    | st.text(alphabet=st.sampled_from(list("ab./\\\x00:C~ \n")), max_size=12)
    | st.sampled_from(["..", ".", "", "../x", "/abs", "C:x", "a/../b", "..\\x", "x\x00"])
)


def _inside(paths: list[Path], folder: Path) -> bool:
    root = os.path.abspath(folder)
    return all(os.path.dirname(os.path.abspath(p)) == root for p in paths)


@few(200)
@given(stem=stems)
def test_any_stem_is_refused_or_planned_inside_the_folder(stem):
    out = Path("some") / "folder"
    try:
        planned = plan_exports(tiny(3), out, stem, ["gpl", "binary_masks", "sidecar"])
    except ExportError:
        return
    assert _inside(planned, out)


@few(25)
@given(stem=stems)
def test_any_stem_is_refused_or_written_inside_the_folder(stem):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        try:
            written = export_all(tiny(2), out, stem, ["gpl", "binary_masks"])
        except ExportError:
            assert sorted(os.listdir(tmp)) == ["out"] and os.listdir(out) == []
            return
        assert _inside(written, out) and sorted(os.listdir(tmp)) == ["out"]
        assert sorted(os.listdir(out)) == sorted(p.name for p in written)


@few(8)
@given(ks=st.lists(st.integers(1, 110), min_size=1, max_size=3))
def test_re_exports_leave_exactly_the_last_set(ks):
    # 101 colours or more: three-digit indices, so the names change as well as the count
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(os, "fsync", lambda fd: None):
        for k in ks:
            written = export_all(tiny(k), tmp, "p", ["binary_masks"], overwrite=True)
        assert sorted(os.listdir(tmp)) == sorted(p.name for p in written)
        assert len(written) == ks[-1]
