"""``vq quantize --lock/--lock-palette/--importance/--no-keep-small-colors`` and --use-palette."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quantize.cli import main
from quantize.io.palettes import read_palette

LOCKS = {(0xD5, 0x2B, 0x1E), (0xF5, 0xF5, 0xF5)}


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def photo(path: Path, size: int = 64, mark: bool = False) -> Path:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    img = np.stack([40 + 80 * x, 90 + 100 * y, 150 - 60 * x * y], axis=2)
    img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).round().astype(np.uint8)
    if mark:
        img[10:16, 10:16] = (213, 43, 30)
    Image.fromarray(img).save(path)
    return path


def png_palette(path: Path) -> set[tuple[int, int, int]]:
    with Image.open(path) as im:
        assert im.mode == "P"
        flat = im.getpalette()
        used = {int(i) for i in np.unique(np.asarray(im))}
    return {tuple(flat[3 * i : 3 * i + 3]) for i in used}


def test_lock_keeps_colours_exactly_in_the_png_and_every_palette(tmp_path, capsys):
    src = photo(tmp_path / "p.png")
    pals = [tmp_path / f"out.{ext}" for ext in ("gpl", "act", "json", "txt", "css")]
    argv = ["quantize", str(src), "-k", "8", "--lock", "#d52b1e,#f5f5f5", "-o", "out.png"]
    for p in pals:
        argv += ["--palette", str(p)]
    assert main([*argv, "--report", "side.json", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["palette"][:2] == ["#d52b1e", "#f5f5f5"]
    assert summary["locked"] == ["#d52b1e", "#f5f5f5"]
    with Image.open(tmp_path / "out.png") as im:
        flat = im.getpalette()
    entries = {tuple(flat[i : i + 3]) for i in range(0, len(flat), 3)}
    assert LOCKS <= entries
    for p in pals:
        pal = read_palette(p)
        assert pal.shape == (8, 3)
        assert [tuple(c) for c in pal[:2]] == [(0xD5, 0x2B, 0x1E), (0xF5, 0xF5, 0xF5)], p
    side = json.loads((tmp_path / "side.json").read_text())
    assert side["parameters"]["locked"] == ["#d52b1e", "#f5f5f5"]


@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_lock_palette_file(tmp_path, capsys, method):
    src = photo(tmp_path / "p.png", size=32)
    (tmp_path / "brand.gpl").write_text(
        "GIMP Palette\nName: brand\n#\n213  43  30\tred\n245 245 245\twhite\n"
    )
    argv = ["quantize", str(src), "-k", "5", "--method", method, "--lock-palette", "brand.gpl"]
    assert main([*argv, "-o", "o.png", "--palette", "o.json", "-q"]) == 0
    pal = read_palette(tmp_path / "o.json")
    assert {tuple(c) for c in pal[:2]} == LOCKS


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lock", "#d52b1e,red"], "'red' is not a hex colour"),
        (["--lock", ","], "no colour given"),
        (["--lock", "#000000,#111111,#222222", "-k", "2"], "3 locked colours do not fit"),
        (["--lock", "#000000", "--method", "minibatch"], "need --method kmeans or --method gmm"),
        (["--lock", "#000000", "--use-palette", "x.gpl"], "--use-palette keeps every colour"),
    ],
)
def test_lock_usage_errors_exit_2(tmp_path, capsys, argv, message):
    src = photo(tmp_path / "p.png", size=16)
    assert main(["quantize", str(src), *argv, "-o", "o.png"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not (tmp_path / "o.png").exists()


def test_lock_palette_unreadable_exit_3(tmp_path, capsys):
    src = photo(tmp_path / "p.png", size=16)
    (tmp_path / "bad.gpl").write_text("GIMP Palette\n300 0 0\n")
    assert main(["quantize", str(src), "--lock-palette", "bad.gpl", "-o", "o.png"]) == 3
    assert "bad.gpl" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_use_palette_hits_white_exactly(tmp_path, capsys):
    # Pillow's quantize(palette=...) maps pure white onto #fcfcfc; vq keeps the user's colours
    img = np.zeros((8, 8, 3), np.uint8)
    img[:4] = 255
    img[4:, :4] = (0xD5, 0x2B, 0x1E)
    Image.fromarray(img).save(tmp_path / "w.png")
    (tmp_path / "pal.txt").write_text("#ffffff\n#000000\n#d52b1e\n#808080\n")
    assert main(["quantize", "w.png", "--use-palette", "pal.txt", "-o", "o.png", "-q"]) == 0
    assert png_palette(tmp_path / "o.png") == {(255, 255, 255), (0, 0, 0), (0xD5, 0x2B, 0x1E)}
    with Image.open(tmp_path / "o.png") as im:
        out = np.asarray(im.convert("RGB"))
    assert np.array_equal(out, img)


def test_small_colours_reported_and_switch(tmp_path, capsys):
    src = photo(tmp_path / "m.png", size=120, mark=True)
    # in OKLab, where K-means alone loses this mark (in sRGB it keeps it by itself)
    k8 = ["-k", "8", "--space", "oklab"]
    assert main(["quantize", str(src), *k8, "-o", "a.png", "--json"]) == 0
    kept = json.loads(capsys.readouterr().out)
    assert [e["hex"] for e in kept["added_small_colors"]] == ["#d52b1e"]
    assert (0xD5, 0x2B, 0x1E) in png_palette(tmp_path / "a.png")
    assert main(["quantize", str(src), *k8, "-o", "c.png", "--no-keep-small-colors"]) == 0
    out = capsys.readouterr().out
    assert "small distinct colours kept" not in out
    assert (0xD5, 0x2B, 0x1E) not in png_palette(tmp_path / "c.png")


def test_small_colours_summary_in_words(tmp_path, capsys):
    src = photo(tmp_path / "m.png", size=120, mark=True)
    assert main(["quantize", str(src), "-k", "8", "--space", "oklab", "-o", "a.png"]) == 0
    assert "small distinct colours kept: #d52b1e (0.25%)" in capsys.readouterr().out


def test_importance_map(tmp_path, capsys):
    src = photo(tmp_path / "p.png", size=32)
    imp = np.zeros((32, 32), np.uint8)
    imp[:, :16] = 255  # only the left half counts
    Image.fromarray(imp).save(tmp_path / "imp.png")
    argv = ["quantize", str(src), "-k", "4", "--importance", "imp.png", "-o", "o.png"]
    assert main([*argv, "--report", "r.json", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["importance_map"] == "imp.png"
    assert json.loads((tmp_path / "r.json").read_text())["parameters"]["importance_map"]
    # every entry lies within the colours of the left half (weighted means of them)
    left = np.asarray(Image.open(src))[:, :16].reshape(-1, 3)
    pal = np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in summary["palette"]])
    assert (pal[:, 0] <= left[:, 0].max() + 1).all()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: Image.fromarray(np.zeros((10, 32), np.uint8)).save(p), "same size"),
        (
            lambda p: Image.fromarray((np.zeros((32, 32, 3)) + [1, 2, 3]).astype(np.uint8)).save(p),
            "grey",
        ),
        (lambda p: p.write_bytes(b"not an image"), "imp.png"),
        (lambda p: Image.fromarray(np.zeros((32, 32), np.uint8)).save(p), "every pixel"),
    ],
)
def test_importance_errors_name_the_file(tmp_path, capsys, make, message):
    src = photo(tmp_path / "p.png", size=32)
    make(tmp_path / "imp.png")
    code = main(["quantize", str(src), "--importance", "imp.png", "-o", "o.png"])
    err = capsys.readouterr().err
    assert code == 3  # an unusable input
    assert "imp.png" in err and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_lock_with_a_quality_target_starts_at_the_locked_count(tmp_path, capsys):
    src = photo(tmp_path / "p.png", size=32)
    argv = ["quantize", str(src), "--quality", "20", "--lock", "#d52b1e,#f5f5f5,#000000"]
    assert main([*argv, "-o", "q.png", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["palette"][:3] == ["#d52b1e", "#f5f5f5", "#000000"]
    assert min(int(k) for k in summary["auto"]["tried"]) >= 3
