"""Exports: round trips for every format, atomicity under injected disk-full/permission errors."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from quantize.io import _atomic, export, maps, palettes
from quantize.io._atomic import atomic_write_bytes
from quantize.io.errors import ExportError, OutputExistsError
from quantize.io.export import (
    EXPORT_KINDS,
    export_all,
    plan_exports,
    write_indexed_png,
    write_label_map,
    write_npz,
)
from quantize.io.palettes import read_palette, write_palette
from quantize.io.sidecar import sidecar_dict, write_sidecar
from quantize.pipeline import quantize_image
from quantize.png import encode_indexed_png
from quantize.render import dither_indices

RNG = np.random.default_rng(5)


@dataclass(eq=False)
class FakeResult:
    """Just the QuantizeResult surface the exporters use, with known soft maps."""

    image: np.ndarray
    palette: np.ndarray
    labels: np.ndarray
    opaque: np.ndarray | None
    soft: np.ndarray  # (K, M, N)
    history: np.ndarray = field(default_factory=lambda: np.array([3.0, 2.0, np.nan]))
    seed: int = 4
    warnings: list[str] = field(default_factory=lambda: ["a warning"])

    @property
    def proportions(self) -> np.ndarray:
        mask = np.ones(self.labels.shape, bool) if self.opaque is None else self.opaque
        counts = np.bincount(self.labels[mask].ravel(), minlength=len(self.palette))
        return counts / counts.sum()

    def indices(self, dither: str = "none", strength: float = 1.0) -> np.ndarray:
        if dither == "none":
            return self.labels
        return dither_indices(self.image, self.palette, dither, strength)

    def undithered_mse(self) -> float:
        return float("nan")  # unknown: Floyd-Steinberg measures it

    def responsibility_map(self, k: int) -> np.ndarray:
        return self.soft[k]

    def uncertainty_map(self) -> np.ndarray:
        return (1.0 - self.soft.max(axis=0)).astype(np.float32)

    def parameters(self) -> dict[str, Any]:
        return {
            "method": "gmm",
            "n_colors": len(self.palette),
            "seed": self.seed,
            "n_iter": 3,
            "converged": False,
            "fit_options": {"tol": float("nan")},
        }


def hex_code(colour) -> str:
    """The ``rrggbb`` part of a mask file name."""
    return "{:02x}{:02x}{:02x}".format(*(int(v) for v in colour[:3]))


def fake_result(k: int = 5, h: int = 9, w: int = 11, transparent: bool = False) -> FakeResult:
    palette = RNG.integers(0, 256, (k, 3), dtype=np.uint8)
    labels = RNG.integers(0, k, (h, w)).astype(np.uint8 if k <= 256 else np.uint16)
    labels.flat[:k] = np.arange(k)  # every label used
    soft = RNG.random((k, h, w)).astype(np.float32)
    soft /= soft.sum(axis=0, keepdims=True)
    opaque = None
    if transparent:
        opaque = np.ones((h, w), bool)
        opaque[-2:, :] = False
        labels[~opaque] = 0
    image = palette[labels]
    if transparent:
        image = np.dstack([image, np.where(opaque, 255, 0).astype(np.uint8)])
    return FakeResult(image, palette, labels, opaque, soft)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    pos = 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]))
        pos += 12 + n
    return out


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------ indexed PNG


@pytest.mark.parametrize(
    "k,depth", [(1, 1), (2, 1), (3, 2), (4, 2), (5, 4), (16, 4), (17, 8), (256, 8)]
)
def test_indexed_png_smallest_bit_depth_roundtrip(k, depth):
    r = fake_result(k, 20, 20)
    data = encode_indexed_png(r.labels, r.palette)
    chunks = png_chunks(data)
    assert [c for c, _ in chunks if c not in (b"IDAT",)] == [b"IHDR", b"PLTE", b"IEND"]
    assert chunks[0][1][8] == depth and chunks[0][1][9] == 3  # bit depth, colour type 3
    assert len(dict(chunks)[b"PLTE"]) == 3 * k
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), r.labels)
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), r.palette[r.labels])


@pytest.mark.parametrize("k,depth", [(1, 1), (3, 2), (15, 4), (16, 8), (255, 8)])
def test_indexed_png_transparency_one_trns_entry(k, depth):
    r = fake_result(k, 20, 20, transparent=True)
    data = encode_indexed_png(r.labels, r.palette, r.opaque)
    chunks = dict(png_chunks(data))
    assert chunks[b"tRNS"] == b"\x00"
    assert chunks[b"IHDR"][8] == depth
    with Image.open(io.BytesIO(data)) as im:
        rgba = np.asarray(im.convert("RGBA"))
    np.testing.assert_array_equal(rgba[:, :, 3], np.where(r.opaque, 255, 0))
    np.testing.assert_array_equal(rgba[r.opaque][:, :3], r.palette[r.labels][r.opaque])


def test_indexed_png_falls_back_to_truecolour():
    r = fake_result(256, 20, 20, transparent=True)  # 257 entries needed
    with Image.open(io.BytesIO(encode_indexed_png(r.labels, r.palette, r.opaque))) as im:
        assert im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im)[:, :, 3], np.where(r.opaque, 255, 0))
    r = fake_result(300, 20, 20)
    with Image.open(io.BytesIO(encode_indexed_png(r.labels, r.palette))) as im:
        assert im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), r.palette[r.labels])


def test_write_indexed_png_with_dither(tmp_path):
    r = fake_result(4)
    path = write_indexed_png(tmp_path / "o.png", r, dither="fs")
    with Image.open(path) as im:
        np.testing.assert_array_equal(np.asarray(im), dither_indices(r.image, r.palette, "fs"))
        assert "exif" not in im.info


# ------------------------------------------------------------------ palettes


@pytest.mark.parametrize("name", ["p.gpl", "p.act", "p.json", "p.txt", "p.hex", "p.css", "p.png"])
def test_palette_roundtrip(tmp_path, name):
    pal = RNG.integers(0, 256, (13, 3), dtype=np.uint8)
    share = RNG.random(13)
    share /= share.sum()
    path = write_palette(tmp_path / name, pal, share)
    np.testing.assert_array_equal(read_palette(path), pal)


def test_palette_formats_content(tmp_path):
    pal = np.array([[255, 0, 16], [1, 2, 3]], np.uint8)
    share = np.array([0.75, 0.25])
    act = write_palette(tmp_path / "a.act", pal, share).read_bytes()
    assert len(act) == 772 and act[:6] == bytes([255, 0, 16, 1, 2, 3])
    assert act[768:] == b"\x00\x02\xff\xff"
    gpl = write_palette(tmp_path / "a.gpl", pal, share).read_text()
    assert gpl.startswith("GIMP Palette\nName: a\n") and "255   0  16\t#ff0010 75.00%" in gpl
    doc = json.loads(write_palette(tmp_path / "a.json", pal, share).read_text())
    assert doc["colors"][0]["hex"] == "#ff0010" and doc["colors"][1]["share"] == 0.25
    assert doc["colors"][1]["rgb"] == [1, 2, 3]
    assert doc["colors"][0]["lab"][0] == pytest.approx(53.28, abs=0.05)
    css = write_palette(tmp_path / "a.css", pal, share).read_text()
    assert "--vq-color-00: #ff0010; /* 75.00% */" in css and css.rstrip().endswith("}")
    assert write_palette(tmp_path / "a.txt", pal).read_text() == "#ff0010\n#010203\n"
    with Image.open(write_palette(tmp_path / "s.png", pal)) as im:
        assert im.size == (64, 32)


def test_act_refuses_more_than_256(tmp_path):
    with pytest.raises(ExportError, match="at most 256"):
        write_palette(tmp_path / "a.act", np.zeros((257, 3), np.uint8))
    assert not (tmp_path / "a.act").exists() and leftovers(tmp_path) == []


def test_unknown_palette_extension(tmp_path):
    with pytest.raises(ExportError, match="unknown palette extension"):
        write_palette(tmp_path / "a.doc", np.zeros((2, 3), np.uint8))


# ------------------------------------------------------------------ maps


def test_label_map_8_and_16_bit(tmp_path):
    for k, mode in [(5, "L"), (300, "I;16")]:
        r = fake_result(k, 12, 14)
        path = write_label_map(tmp_path / f"l{k}.png", r)
        with Image.open(path) as im:
            assert im.mode == mode
            np.testing.assert_array_equal(np.asarray(im), r.labels)


def test_masks_soft_maps_and_npz(tmp_path):
    r = fake_result(3, 8, 10, transparent=True)
    paths = export_all(r, tmp_path, "x", ["binary_masks", "soft_maps", "npz"])
    masks = [f"x.mask-{k:02d}-{hex_code(r.palette[k])}.png" for k in range(3)]
    assert [p.name for p in paths] == [
        *masks,
        "x.soft-00.png",
        "x.soft-01.png",
        "x.soft-02.png",
        "x.maps.npz",
    ]
    for k in range(3):
        with Image.open(tmp_path / masks[k]) as im:
            assert im.mode == "L"
            mask = np.asarray(im)
        assert set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(mask == 255, (r.labels == k) & r.opaque)
        with Image.open(tmp_path / f"x.soft-{k:02d}.png") as im:
            assert im.mode == "I;16"
            soft = np.asarray(im)
        expected = np.where(r.opaque, np.rint(r.soft[k].astype(np.float64) * 65535), 0)
        np.testing.assert_array_equal(soft, expected)
    with np.load(tmp_path / "x.maps.npz", allow_pickle=False) as z:
        assert set(z.files) == {
            "labels",
            "palette",
            "proportions",
            "opaque",
            "uncertainty",
            "responsibilities",
        }
        np.testing.assert_array_equal(z["labels"], r.labels)
        np.testing.assert_array_equal(z["palette"], r.palette)
        np.testing.assert_array_equal(z["opaque"], r.opaque)
        np.testing.assert_allclose(z["proportions"], r.proportions)
        assert z["responsibilities"].dtype == np.float32
        np.testing.assert_array_equal(z["responsibilities"], r.soft)
        np.testing.assert_array_equal(z["uncertainty"], r.uncertainty_map())


# ------------------------------------------------------------------ sidecar


def test_sidecar_is_strict_json(tmp_path):
    r = fake_result(3)
    src = tmp_path / "in.bin"
    src.write_bytes(b"some input bytes")
    path = write_sidecar(
        tmp_path / "s.json",
        r,
        source_path=src,
        metrics={"psnr": float("inf")},
        outputs=[tmp_path / "o.png"],
    )
    text = path.read_text()
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert doc["input"]["sha256"] == hashlib.sha256(b"some input bytes").hexdigest()
    assert doc["input"]["bytes"] == 16
    assert doc["history"] == [3.0, 2.0, None]
    assert doc["metrics"] == {"psnr": None}
    assert doc["parameters"]["fit_options"] == {"tol": None}
    assert doc["seed"] == 4 and doc["converged"] is False and doc["iterations"] == 3
    assert set(doc["versions"]) >= {"numpy", "scipy", "pillow", "scikit-image", "vq-studio"}
    assert [p["hex"] for p in doc["palette"]] == [
        "#{:02x}{:02x}{:02x}".format(*c) for c in r.palette
    ]
    assert doc["outputs"] == ["o.png"] and doc["warnings"] == ["a warning"]


# ------------------------------------------------------------------ export_all, overwrite


def kinds_of_fake():
    """Every export kind but the colour model: a FakeResult has no fitted model to save."""
    return [k for k in EXPORT_KINDS if k != "colour_model"]


def test_plan_matches_export_all_every_kind(tmp_path):
    r = fake_result(4, transparent=True)
    planned = plan_exports(r, tmp_path, "photo", kinds_of_fake())
    written = export_all(r, tmp_path, "photo", kinds_of_fake(), source_path=None)
    assert written == planned
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in planned)
    doc = json.loads((tmp_path / "photo.json").read_text())
    assert "photo.png" in doc["outputs"] and "photo.json" not in doc["outputs"]


def test_existing_sibling_blocks_everything(tmp_path):
    r = fake_result(3)
    name = f"p.mask-02-{hex_code(r.palette[2])}.png"  # mask names carry the colour
    (tmp_path / name).write_bytes(b"mine")
    with pytest.raises(OutputExistsError, match=f"{name}: already exists") as exc:
        export_all(r, tmp_path, "p", ["indexed_png", "gpl", "binary_masks"])
    assert exc.value.paths == [tmp_path / name]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert (tmp_path / name).read_bytes() == b"mine"
    export_all(r, tmp_path, "p", ["indexed_png", "gpl", "binary_masks"], overwrite=True)
    assert (tmp_path / name).read_bytes() != b"mine"


def test_single_writer_refuses_existing(tmp_path):
    target = tmp_path / "a.txt"
    target.write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    atomic_write_bytes(target, b"new", overwrite=True)
    assert target.read_bytes() == b"new" and leftovers(tmp_path) == []


def test_missing_folder_and_unknown_kind(tmp_path):
    with pytest.raises(ExportError, match="folder does not exist"):
        atomic_write_bytes(tmp_path / "nope" / "a.txt", b"x")
    with pytest.raises(ExportError, match="unknown export kind"):
        plan_exports(fake_result(2), tmp_path, "s", ["jpeg"])


# ------------------------------------------------------------------ injected failures


def _existing_outputs(folder: Path, r: FakeResult, kinds: list[str]) -> dict[str, bytes]:
    export_all(r, folder, "p", kinds)
    return {p.name: p.read_bytes() for p in folder.iterdir()}


KINDS = ["indexed_png", "gpl", "binary_masks", "npz", "sidecar"]


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_during_write_keeps_previous_files(tmp_path, monkeypatch):
    before = _existing_outputs(tmp_path, fake_result(3), KINDS)
    calls = {"n": 0}
    real_write = os.write

    def flaky_write(fd, data):
        calls["n"] += 1
        if calls["n"] > 3:  # fail in the middle of the export
            _enospc()
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", flaky_write)
    with pytest.raises(ExportError, match="disk full"):
        export_all(fake_result(3), tmp_path, "p", KINDS, overwrite=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert leftovers(tmp_path) == []


def test_disk_full_at_fsync(tmp_path, monkeypatch):
    target = tmp_path / "p.gpl"
    target.write_bytes(b"previous")
    monkeypatch.setattr(os, "fsync", _enospc)
    with pytest.raises(ExportError, match=r"p.gpl: cannot write \(disk full"):
        write_palette(target, np.zeros((2, 3), np.uint8), overwrite=True)
    assert target.read_bytes() == b"previous" and leftovers(tmp_path) == []


def test_permission_denied_creating_temp(tmp_path, monkeypatch):
    def denied(*_a, **_k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(ExportError, match="permission denied"):
        write_npz(tmp_path / "m.npz", fake_result(2))
    assert list(tmp_path.iterdir()) == []


def test_permission_denied_on_rename_rolls_back_all(tmp_path, monkeypatch):
    r = fake_result(3)
    before = _existing_outputs(tmp_path, r, KINDS)
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src, dst):
        if str(src).endswith(".part"):
            calls["n"] += 1
            if calls["n"] == 3:
                raise PermissionError(errno.EACCES, "Permission denied")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(ExportError, match="permission denied"):
        export_all(fake_result(3), tmp_path, "p", KINDS, overwrite=True)
    assert calls["n"] == 3
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert leftovers(tmp_path) == []


def test_failure_creating_new_files_leaves_nothing(tmp_path, monkeypatch):
    real_link = os.link
    calls = {"n": 0}

    def flaky_link(src, dst):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(errno.EIO, "Input/output error")
        return real_link(src, dst)

    monkeypatch.setattr(os, "link", flaky_link)
    with pytest.raises(ExportError, match="Input/output error"):
        export_all(fake_result(3), tmp_path, "p", KINDS)
    assert list(tmp_path.iterdir()) == []


def test_failing_encoder_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(maps, "mask_png", lambda *_a: (_ for _ in ()).throw(MemoryError("boom")))
    with pytest.raises(ExportError, match=r"p.mask-00-[0-9a-f]{6}.png: cannot write \(boom\)"):
        export_all(fake_result(3), tmp_path, "p", KINDS)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ with the real engine


def test_real_result_exports(tmp_path):
    x = np.linspace(0, 255, 24)
    img = np.stack([*np.meshgrid(x, x), np.full((24, 24), 40.0)], 2).astype(np.uint8)
    img = np.dstack([img, np.full((24, 24), 255, np.uint8)])
    img[:3, :, 3] = 0  # transparent band
    result = quantize_image(img, 3, method="gmm", seed=1, max_iter=20)
    paths = export_all(result, tmp_path, "g", EXPORT_KINDS, dither="ordered")
    assert len(paths) == len(plan_exports(result, tmp_path, "g", EXPORT_KINDS))
    with np.load(tmp_path / "g.maps.npz", allow_pickle=False) as z:
        resp = z["responsibilities"]
        opaque = z["opaque"]
    np.testing.assert_allclose(resp.sum(axis=0)[opaque], 1.0, atol=1e-5)
    assert np.all(resp[:, ~opaque] == 0)
    with Image.open(tmp_path / "g.png") as im:
        assert (
            im.mode == "P"
            and dict(png_chunks((tmp_path / "g.png").read_bytes()))[b"tRNS"] == b"\x00"
        )
        assert np.all(np.asarray(im.convert("RGBA"))[:3, :, 3] == 0)
    doc = json.loads((tmp_path / "g.json").read_text())
    assert doc["parameters"]["method"] == "gmm" and doc["render"]["dither"] == "ordered"
    assert zlib.crc32((tmp_path / "g.gpl").read_bytes()) == zlib.crc32(
        palettes.encode_palette(result.palette, result.proportions, "gpl", name="g")
    )


def test_same_result_gives_byte_identical_files(tmp_path):
    r = fake_result(4, transparent=True)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = export_all(r, tmp_path / "a", "x", kinds_of_fake(), dither="fs")
    second = export_all(r, tmp_path / "b", "x", kinds_of_fake(), dither="fs")
    for p, q in zip(first, second, strict=True):
        assert p.read_bytes() == q.read_bytes(), p.name


def test_files_get_normal_permissions(tmp_path):
    # like open(): 0666 minus the umask (tempfile.mkstemp alone would give 0600)
    path = atomic_write_bytes(tmp_path / "a.txt", b"x")
    assert path.stat().st_mode & 0o777 == 0o666 & ~_atomic._UMASK
    os.chmod(path, 0o640)
    atomic_write_bytes(path, b"y", overwrite=True)  # an overwritten file keeps its mode
    assert path.stat().st_mode & 0o777 == 0o640


def test_target_that_is_a_folder(tmp_path):
    (tmp_path / "x.gpl").mkdir()
    with pytest.raises(ExportError, match="is a folder"):
        write_palette(tmp_path / "x.gpl", np.zeros((2, 3), np.uint8), overwrite=True)


def test_sidecar_computes_metrics_when_not_given(tmp_path):
    x = np.linspace(0, 255, 16)
    img = np.stack([*np.meshgrid(x, x), np.full((16, 16), 9.0)], 2).astype(np.uint8)
    result = quantize_image(img, 4, seed=0)
    src = tmp_path / "src.png"
    Image.fromarray(img).save(src)
    export_all(result, tmp_path, "s", ["sidecar"], source_path=src, dither="fs")
    doc = json.loads((tmp_path / "s.json").read_text())
    from quantize.metrics import compute_metrics

    expected = compute_metrics(result, dither="fs", original_bytes=src.stat().st_size).to_dict()
    assert doc["metrics"] == pytest.approx(expected)


def test_one_rendering_serves_png_and_sidecar_metrics(tmp_path, monkeypatch):
    from quantize import metrics

    x = np.linspace(0, 255, 16)
    img = np.stack([*np.meshgrid(x, x), np.full((16, 16), 9.0)], 2).astype(np.uint8)
    result = quantize_image(img, 4, seed=0)
    calls = []
    real = metrics.render_indexed

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(metrics, "render_indexed", counting)
    export_all(result, tmp_path, "s", ["indexed_png", "sidecar"], dither="fs", strength=0.6)
    assert len(calls) == 1
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["metrics"]["png_bytes"] == (tmp_path / "s.png").stat().st_size
    expected = encode_indexed_png(
        dither_indices(img, result.palette, "fs", 0.6), result.palette, sort=True
    )
    assert (tmp_path / "s.png").read_bytes() == expected


def test_sidecar_uses_a_known_source_hash(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"abc")
    doc = sidecar_dict(fake_result(2), source_path=src, metrics={}, source_sha256="0" * 64)
    assert doc["input"]["sha256"] == "0" * 64 and doc["input"]["bytes"] == 3


def test_read_palette_rejects_bad_values(tmp_path):
    (tmp_path / "bad.gpl").write_text("GIMP Palette\nName: x\n#\n300 0 0\tred\n")
    with pytest.raises(ExportError, match="line 4: .300. is not an integer from 0 to 255"):
        read_palette(tmp_path / "bad.gpl")
    (tmp_path / "bad.json").write_text('{"colors": [{"rgb": [1, 2]}]}')
    with pytest.raises(ExportError, match="not a valid json palette"):
        read_palette(tmp_path / "bad.json")
    (tmp_path / "short.act").write_bytes(b"\x00" * 10)
    with pytest.raises(ExportError, match="768 or 772"):
        read_palette(tmp_path / "short.act")
    gimp = "GIMP Palette\nName: mine\nColumns: 4\n# a comment 1 2 3\n 10  20  30\tUntitled\n0 0 0\n"
    (tmp_path / "gimp.gpl").write_text(gimp)
    np.testing.assert_array_equal(read_palette(tmp_path / "gimp.gpl"), [[10, 20, 30], [0, 0, 0]])


def test_hex_color():
    assert palettes.hex_color((255, 0, 16)) == "#ff0010"
    assert palettes.hex_color(np.array([1, 2, 3, 0], np.uint8)) == "#010203"  # alpha ignored
    for bad in ((1, 2), (0, 256, 0), (-1, 0, 0)):
        with pytest.raises(ValueError, match="0-255"):
            palettes.hex_color(bad)


# ------------------------------------------------------------------ the table of export kinds


def test_tables_are_built_from_the_export_kinds():
    assert list(EXPORT_KINDS) == list(export.KINDS)
    assert EXPORT_KINDS[-1] == "sidecar"  # last: it lists the other outputs
    assert set(EXPORT_KINDS) - set(export.SINGLE_FILE_KINDS) == {"binary_masks", "soft_maps"}
    assert dict(export.PALETTE_FORMATS) == {
        "gpl": ".gpl",
        "act": ".act",
        "json": ".palette.json",
        "hex": ".hex.txt",
        "css": ".css",
        "png": ".swatch.png",
    }
    assert export.palette_kinds_by_suffix() == {
        ".gpl": "gpl",
        ".act": "act",
        ".json": "palette_json",
        ".txt": "hex",
        ".hex": "hex",
        ".css": "css",
        ".png": "swatch_png",
    }
    for kind in export.KINDS.values():
        assert kind.label and kind.description and kind.suffix


def _toy_palette(palette, shares, *, name, transparent_index):
    return "".join(f"{r},{g},{b}\n" for r, g, b in palette).encode()


def _toy_read(data):
    rows = [line.split(",") for line in data.decode().split()]
    return np.array(rows, np.int64).reshape(-1, 3).astype(np.uint8)


@pytest.fixture
def toy_kind():
    from quantize.io.palettes import PaletteFormat

    kind = export.ExportKind(
        name="toy_palette",
        label="Toy palette (.toy)",
        description="comma-separated RGB",
        suffix=".toy.txt",
        palette=PaletteFormat("toy", (".toy",), _toy_palette, _toy_read),
    )
    export.register_export_kind(kind, before="sidecar")
    yield kind
    export.unregister_export_kind("toy_palette")


def test_a_registered_kind_is_planned_written_and_read(tmp_path, toy_kind):
    from quantize.io import palettes

    assert "toy_palette" in EXPORT_KINDS and "toy_palette" in export.SINGLE_FILE_KINDS
    assert EXPORT_KINDS[-2:] == ("toy_palette", "sidecar")
    assert export.PALETTE_FORMATS["toy"] == ".toy.txt"
    assert export.palette_kinds_by_suffix()[".toy"] == "toy_palette"
    r = fake_result(3)
    kinds = ["sidecar", "toy_palette", "gpl"]
    planned = plan_exports(r, tmp_path, "p", kinds)
    assert [p.name for p in planned] == ["p.gpl", "p.toy.txt", "p.json"]
    assert export_all(r, tmp_path, "p", kinds) == planned
    expected = "".join(f"{a},{b},{c}\n" for a, b, c in r.palette)
    assert (tmp_path / "p.toy.txt").read_text() == expected
    assert "p.toy.txt" in json.loads((tmp_path / "p.json").read_text())["outputs"]
    # the palette format is known to the palette functions while the kind is registered
    written = write_palette(tmp_path / "q.toy", r.palette)
    np.testing.assert_array_equal(read_palette(written), r.palette)
    export.unregister_export_kind("toy_palette")
    assert "toy_palette" not in EXPORT_KINDS and "toy" not in palettes.FORMATS
    with pytest.raises(ExportError, match="unknown export kind"):
        plan_exports(r, tmp_path, "p", ["toy_palette"])
    with pytest.raises(ExportError, match="unknown palette extension '.toy'"):
        read_palette(written)


def test_a_registered_per_entry_kind(tmp_path):
    kind = export.ExportKind(
        name="toy_rows",
        label="Rows",
        description="the rows of each entry",
        suffix=".rows-{index}.txt",
        per_entry=True,
        encode=lambda f: str(int((f.result.labels == f.index).sum())).encode(),
    )
    export.register_export_kind(kind)
    try:
        assert "toy_rows" not in export.SINGLE_FILE_KINDS
        r = fake_result(3)
        paths = export_all(r, tmp_path, "s", ["toy_rows"])
        assert [p.name for p in paths] == ["s.rows-00.txt", "s.rows-01.txt", "s.rows-02.txt"]
        assert paths[1].read_text() == str(int((r.labels == 1).sum()))
        folder = tmp_path / "sub"
        folder.mkdir()
        written = export.export_targets(r, [("toy_rows", folder / "t"), ("gpl", folder / "t.gpl")])
        assert sorted(p.name for p in written) == [
            "t.gpl",
            "t.rows-00.txt",
            "t.rows-01.txt",
            "t.rows-02.txt",
        ]
    finally:
        export.unregister_export_kind("toy_rows")


def test_bad_export_kinds_are_refused():
    from quantize.io.palettes import FORMATS

    with pytest.raises(ValueError, match="one of encode, write or palette"):
        export.ExportKind(name="x", label="X", description="x", suffix=".x")
    with pytest.raises(ValueError, match="'{index}'"):
        export.ExportKind(
            name="x", label="X", description="x", suffix=".x", per_entry=True, encode=lambda f: b""
        )
    with pytest.raises(ValueError, match="already writes 'gpl'"):
        export.register_export_kind(
            export.ExportKind(
                name="gpl2", label="X", description="x", suffix=".x.gpl", palette=FORMATS["gpl"]
            )
        )
    from quantize.io.palettes import PaletteFormat

    clash = PaletteFormat("gpl3", (".gpl",), _toy_palette)
    with pytest.raises(ValueError, match="already means the 'gpl' palette format"):
        export.register_export_kind(
            export.ExportKind(name="gpl3", label="X", description="x", suffix=".x", palette=clash)
        )
    assert "gpl2" not in EXPORT_KINDS and "gpl3" not in EXPORT_KINDS


def test_names_that_moved_are_still_importable_from_export():
    # app/model.py, app/views/palette.py and older callers import these from quantize.io.export
    from quantize.io import errors, sidecar

    moved = {
        "hex_color": palettes,
        "encode_palette": palettes,
        "read_palette": palettes,
        "write_palette": palettes,
        "palette_format_for": palettes,
        "atomic_write_bytes": _atomic,
        "ExportError": errors,
        "OutputExistsError": errors,
        "sidecar_dict": sidecar,
        "write_sidecar": sidecar,
    }
    for name, home in moved.items():
        assert getattr(export, name) is getattr(home, name), name
        assert name in export.__all__
