"""Hardening, round two: palette files read like untrusted input, names inside files,
stale per-entry files, stems confined to the output folder (issue 15, part A)."""

from __future__ import annotations

import errno
import os
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quantize.cli import main
from quantize.io import _atomic, palettes
from quantize.io.errors import ExportError, OutputExistsError
from quantize.io.export import export_all, export_targets, plan_exports, stale_exports
from quantize.io.load import LoadError
from quantize.io.palettes import PaletteError, read_palette, write_palette

PAL = np.array([[10, 20, 30], [200, 100, 0], [0, 0, 0]], np.uint8)


@dataclass(eq=False)
class MapsResult:
    """The surface the label map, mask, palette and .npz exporters use."""

    palette: np.ndarray
    labels: np.ndarray
    opaque: np.ndarray | None = None

    @property
    def proportions(self) -> np.ndarray:
        counts = np.bincount(self.labels.ravel(), minlength=len(self.palette))
        return counts / counts.sum()

    def responsibility_map(self, k: int) -> np.ndarray:
        return (self.labels == k).astype(np.float32)

    def uncertainty_map(self) -> np.ndarray:
        return np.zeros(self.labels.shape, np.float32)


def maps_result(k: int, seed: int = 0) -> MapsResult:
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (k, 3), dtype=np.uint8)
    labels = rng.integers(0, k, (6, max(k, 6))).astype(np.uint8 if k <= 256 else np.uint16)
    labels.flat[:k] = np.arange(k)
    return MapsResult(palette, labels)


def png_bytes(width: int, height: int, body: bytes = b"") -> bytes:
    """A PNG whose header declares ``width`` x ``height`` (RGB, 8 bits), with ``body`` as IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(body))
        + chunk(b"IEND", b"")
    )


def error_of(path: Path) -> PaletteError:
    with pytest.raises(PaletteError) as info:
        read_palette(path)
    err = info.value
    assert str(err).startswith(f"{path}: "), str(err)
    assert isinstance(err, LoadError) and isinstance(err, ExportError)  # exit 3 in the CLI
    return err


# ------------------------------------------------------------------ the reader policy


@pytest.mark.timeout(20)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.gpl"
    os.mkfifo(fifo)
    assert "FIFO" in str(error_of(fifo))


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_device_is_refused_before_reading(tmp_path):
    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")
    assert "device" in str(error_of(link))


def test_palette_error_survives_pickling(tmp_path):
    err = pickle.loads(pickle.dumps(PaletteError(tmp_path / "p.gpl", "line 2: bad")))
    assert isinstance(err, PaletteError) and str(err) == f"{tmp_path / 'p.gpl'}: line 2: bad"
    assert err.problem == "line 2: bad" and err.paths == [tmp_path / "p.gpl"]


def test_a_folder_and_a_missing_file_are_refused(tmp_path):
    (tmp_path / "dir.gpl").mkdir()
    assert "folder" in str(error_of(tmp_path / "dir.gpl"))
    assert "no such file" in str(error_of(tmp_path / "missing.gpl"))


def test_size_cap_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(palettes, "MAX_PALETTE_BYTES", 1000)
    path = tmp_path / "big.txt"
    path.write_text("#102030\n" * 200)  # 1600 bytes
    assert "larger than" in str(error_of(path))
    path.write_text("#102030\n" * 100)
    assert len(read_palette(path)) == 100


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="no /proc")
def test_read_regular_file_trusts_no_size(tmp_path):
    # /proc files are regular files of size 0 with content: the cap holds while reading
    def make(p: str | os.PathLike[str], problem: str) -> Exception:
        return LoadError(p, problem)

    with pytest.raises(LoadError, match="larger than 100 bytes"):
        _atomic.read_regular_file("/proc/self/maps", 100, "test file", make)
    path = tmp_path / "ten.bin"
    path.write_bytes(b"x" * 10)
    assert _atomic.read_regular_file(path, 10, "test file", make) == b"x" * 10
    with pytest.raises(LoadError, match="test file is larger than 9 bytes"):
        _atomic.read_regular_file(path, 9, "test file", make)


@pytest.mark.parametrize(
    "name,text,words",
    [
        ("neg.gpl", "GIMP Palette\n#\n1 2 3\n-5 0 0\tred\n", ["line 4", "'-5'"]),
        ("frac.gpl", "GIMP Palette\n1.7 2 3\n", ["line 2", "'1.7'"]),
        ("huge.gpl", "GIMP Palette\n" + "9" * 5000 + " 0 0\n", ["line 2", "999"]),
        ("big.gpl", "GIMP Palette\n256 0 0\n", ["line 2", "'256'"]),
        ("short.gpl", "GIMP Palette\n1 2\n", ["line 2", "three values"]),
        ("junk.gpl", "GIMP Palette\n1 2 3\nhello world\n", ["line 3", "hello"]),
        ("head.gpl", "GIMP palette?\n1 2 3\n", ["GIMP Palette"]),
        (
            "float.json",
            '{"colors": [{"rgb": [1, 2, 3]}, {"rgb": [1.7, 2, 3]}]}',
            ["colors[1]", "1.7"],
        ),
        ("bool.json", '{"colors": [{"rgb": [true, 2, 3]}]}', ["colors[0]", "True"]),
        ("neg.json", '{"colors": [{"rgb": [-1, 2, 3]}]}', ["colors[0]", "-1"]),
        (
            "bigint.json",
            '{"colors": [{"rgb": [1000000000000000000000000000000, 2, 3]}]}',
            ["colors[0]", "1000000000000000000000000000000"],
        ),
        ("longint.json", '{"colors": [{"rgb": [' + "7" * 5000 + ", 2, 3]}]}", ["digits"]),
        ("inf.json", '{"colors": [{"rgb": [1e400, 2, 3]}]}', ["colors[0]", "inf"]),
        ("nan.json", '{"colors": [{"rgb": [NaN, 2, 3]}]}', ["NaN"]),
        ("infinity.json", '{"colors": [{"rgb": [-Infinity, 2, 3]}]}', ["Infinity"]),
        ("two.json", '{"colors": [{"rgb": [1, 2]}]}', ["colors[0]", "three"]),
        ("deep.json", "[" * 200_000 + "]" * 200_000, ["nested"]),
        ("deep2.json", '{"colors": ' + "[" * 200_000, ["nested"]),
        ("list.json", "[1, 2, 3]", ["colors"]),
        ("none.json", '{"colors": []}', ["no colours"]),
        ("bad.json", '{"colors": [', ["JSON"]),
        ("latin.json", b'{"name": "\xe9"}'.decode("latin-1"), ["UTF-8"]),
    ],
)
def test_strict_values_name_the_file_entry_and_value(tmp_path, name, text, words):
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1" if name == "latin.json" else "utf-8"))
    message = str(error_of(path))
    for word in words:
        assert word in message, message


def test_act_count_out_of_range(tmp_path):
    table = bytes(768)
    (tmp_path / "zero.act").write_bytes(table + struct.pack(">HH", 0, 0xFFFF))
    assert "no colours" in str(error_of(tmp_path / "zero.act"))
    (tmp_path / "many.act").write_bytes(table + struct.pack(">HH", 300, 0xFFFF))
    assert "300" in str(error_of(tmp_path / "many.act"))


def test_more_than_65536_colours_names_the_file(tmp_path):
    path = tmp_path / "many.txt"
    path.write_text("#000000\n" * 65537)
    assert "65,536" in str(error_of(path))


def test_swatch_pixel_cap_before_decoding(tmp_path):
    # 9000 x 9000 is below Pillow's own bomb limit: only our cap stops the decoder
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(9000, 9000))
    assert "pixels" in str(error_of(path))
    path.write_bytes(png_bytes(100_000, 100_000))  # above Pillow's limit: still ours
    assert "pixels" in str(error_of(path))


def test_a_non_image_swatch_names_the_file(tmp_path):
    path = tmp_path / "text.png"
    path.write_text("not a picture")
    message = str(error_of(path))
    assert "BytesIO" not in message and "PNG" in message
    path.write_bytes(png_bytes(64, 64, b"\x00" * 10))  # truncated pixel data
    assert "BytesIO" not in str(error_of(path))


def test_cli_maps_every_bad_palette_to_exit_3(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save("in.png")
    cases = {
        "deep.json": "[" * 200_000,
        "huge.json": '{"colors": [{"rgb": [1e400, 2, 3]}]}',
        "bigint.json": '{"colors": [{"rgb": [100000000000000000000000, 2, 3]}]}',
        "many.txt": "#000000\n" * 65537,
    }
    for name, text in cases.items():
        Path(name).write_text(text)
        code = main(["quantize", "in.png", "--use-palette", name, "-o", "out.png"])
        err = capsys.readouterr().err
        assert code == 3, (name, err)
        assert name in err and "Traceback" not in err
        assert not Path("out.png").exists()


def test_round_trip_still_reads_gimp_files(tmp_path):
    gimp = (
        "\ufeffGIMP Palette\r\nName: mine\r\nColumns: 4\r\n# comment 1 2 3\r\n\r\n"
        " 10  20  30\tUntitled\r\n0 0 0\r\n255\t255\t255 white\r\n"
    )
    (tmp_path / "gimp.gpl").write_text(gimp, newline="")
    np.testing.assert_array_equal(
        read_palette(tmp_path / "gimp.gpl"), [[10, 20, 30], [0, 0, 0], [255, 255, 255]]
    )


# ------------------------------------------------------------------ names inside files


@pytest.mark.parametrize("fmt", ["gpl", "json", "css", "hex", "act", "png"])
@pytest.mark.parametrize(
    "name", ["a\nb", "x\n10 20 30", "x\r\n1 2 3", "a\u2028b\x85c", "*/ #ff0000 /*", "a\x00b"]
)
def test_names_cannot_change_a_palette(tmp_path, fmt, name):
    suffix = palettes.FORMATS[fmt].suffixes[0]
    path = write_palette(tmp_path / f"p{suffix}", PAL, name=name)
    np.testing.assert_array_equal(read_palette(path), PAL)


def test_a_stem_with_a_newline_writes_one_name_line(tmp_path):
    stem = "photo\n10 20 30"
    written = export_all(maps_result(3), tmp_path, stem, ["gpl", "css"])
    gpl = written[0].read_text()
    assert gpl.count("\n") == 4 + 3 and "Name: photo 10 20 30\n" in gpl
    np.testing.assert_array_equal(read_palette(written[0]), maps_result(3).palette)
    np.testing.assert_array_equal(read_palette(written[1]), maps_result(3).palette)


def test_css_name_cannot_close_its_comment(tmp_path):
    path = write_palette(tmp_path / "p.css", PAL, name="x */ body { color: #ff0000 } /*")
    first = path.read_text().splitlines()[0]
    assert first.startswith("/* x") and first.endswith("*/") and first.count("*/") == 1
    np.testing.assert_array_equal(read_palette(path), PAL)


# ------------------------------------------------------------------ stale per-entry files


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def mask_name(result, stem: str, i: int) -> str:
    """A binary mask's file name: the index and the colour (rrggbb)."""
    width = max(2, len(str(len(result.palette) - 1)))
    code = "{:02x}{:02x}{:02x}".format(*(int(v) for v in result.palette[i]))
    return f"{stem}.mask-{i:0{width}d}-{code}.png"


def test_fewer_masks_with_overwrite_removes_the_old_ones(tmp_path):
    kinds = ["label_map", "binary_masks", "soft_maps"]
    export_all(maps_result(6), tmp_path, "photo", kinds)
    other = export_all(maps_result(2), tmp_path, "other", ["binary_masks"])  # another stem
    assert len(names(tmp_path)) == 1 + 6 + 6 + 2
    six = maps_result(6)
    assert stale_exports(maps_result(3), tmp_path, "photo", kinds) == [
        tmp_path / mask_name(six, "photo", i) for i in (3, 4, 5)
    ] + [tmp_path / f"photo.soft-{i:02d}.png" for i in (3, 4, 5)]
    export_all(maps_result(3), tmp_path, "photo", kinds, overwrite=True)
    expected = ["photo.labels.png"] + [mask_name(six, "photo", i) for i in range(3)]
    expected += [f"photo.soft-0{i}.png" for i in range(3)]
    assert names(tmp_path) == sorted(expected + [p.name for p in other])


def test_stale_masks_without_overwrite_are_refused(tmp_path):
    # 101 colours: three-digit indices, so none of the new names exists yet
    export_all(maps_result(101), tmp_path, "photo", ["binary_masks"])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(OutputExistsError, match="earlier export") as info:
        export_all(maps_result(3), tmp_path, "photo", ["binary_masks"])
    assert mask_name(maps_result(101), "photo", 0) in str(info.value)
    assert "100 more" in str(info.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    export_all(maps_result(3), tmp_path, "photo", ["binary_masks"], overwrite=True)
    assert names(tmp_path) == [mask_name(maps_result(3), "photo", i) for i in range(3)]


def test_stale_removal_is_undone_when_the_export_fails(tmp_path, monkeypatch):
    export_all(maps_result(5), tmp_path, "photo", ["label_map", "binary_masks"])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_rename = os.rename
    calls = []

    def failing_rename(src, dst):
        calls.append(src)
        if len(calls) == 2:  # the second stale file cannot be moved away
            raise OSError(errno.EACCES, "Permission denied", str(src))
        return real_rename(src, dst)

    monkeypatch.setattr(_atomic.os, "rename", failing_rename)
    with pytest.raises(ExportError, match="cannot remove"):
        export_all(maps_result(2), tmp_path, "photo", ["label_map", "binary_masks"], overwrite=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files either


def test_export_targets_removes_stale_entries_too(tmp_path):
    export_targets(maps_result(4), [("binary_masks", tmp_path / "s")])
    with pytest.raises(OutputExistsError):
        export_targets(
            maps_result(2), [("binary_masks", tmp_path / "t"), ("binary_masks", tmp_path / "s")]
        )
    assert len(names(tmp_path)) == 4
    export_targets(maps_result(2), [("binary_masks", tmp_path / "s")], overwrite=True)
    assert names(tmp_path) == [mask_name(maps_result(2), "s", i) for i in range(2)]


def test_cli_fewer_masks_with_force(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save("in.png")
    base = ["quantize", "in.png", "--no-image", "--masks", "m", "--n-init", "1", "--seed", "1"]
    assert main([*base, "-k", "6"]) == 0
    assert len(names(tmp_path / "m")) == 7
    assert main([*base, "-k", "3"]) == 5  # masks 00-02 exist: refused, nothing written
    assert main([*base, "-k", "3", "-f"]) == 0
    masks = names(tmp_path / "m")[1:]
    assert names(tmp_path / "m")[0] == "in.labels.png"
    assert [m[: len("in.mask-00")] for m in masks] == [f"in.mask-0{i}" for i in range(3)]
    capsys.readouterr()


# ------------------------------------------------------------------ stems


@pytest.mark.parametrize(
    "stem", ["../../x", "../x", "..", ".", "", "a/b", "a\\b", "<abs>", "x\x00y", "C:evil"]
)
def test_stems_are_plain_file_names(tmp_path, stem):
    out = tmp_path / "out"
    out.mkdir()
    stem = stem.replace("<abs>", str(tmp_path / "abs"))  # absolute, inside tmp_path
    with pytest.raises(ExportError, match="file-name stem"):
        export_all(maps_result(2), out, stem, ["gpl", "binary_masks"])
    with pytest.raises(ExportError, match="file-name stem"):
        plan_exports(maps_result(2), out, stem, ["gpl"])
    assert names(tmp_path) == ["out"] and names(out) == []


def test_ordinary_stems_still_work(tmp_path):
    for stem in ["photo", "my photo.v2", "..hidden", "ünïcode ✓", "a\nb"]:
        written = export_all(maps_result(2), tmp_path, stem, ["gpl"])
        assert written == [tmp_path / f"{stem}.gpl"]


@pytest.mark.timeout(20)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_sidecar_does_not_hash_a_fifo(tmp_path):
    from quantize.io.sidecar import sidecar_dict

    fifo = tmp_path / "source.png"
    os.mkfifo(fifo)
    result = maps_result(2)
    result.image = result.palette[result.labels]  # type: ignore[attr-defined]
    doc = sidecar_dict(result, source_path=fifo, metrics={})  # type: ignore[arg-type]
    assert "FIFO" in doc["input"]["error"] and "sha256" not in doc["input"]
