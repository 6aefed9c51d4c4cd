"""``vq sweep`` and ``vq quantize --max-size``: tables, JSON, CSV, chart, budget, exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quantize.cli import main


def photo(path: Path, size: int = 48, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    img = np.stack([yy * 4, xx * 5, (xx + yy) * 2], axis=2) + rng.normal(0, 8, (size, size, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def img(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return photo(tmp_path / "photo.png")


def test_sweep_json_has_every_k_and_grows(img, capsys):
    assert main(["sweep", str(img), "--ks", "2-32:5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ks = [p["k"] for p in out["points"]]
    assert ks == [2, 4, 8, 16, 32]
    assert out["original_bytes"] == img.stat().st_size
    assert out["warm_start"] is True and out["method"] == "kmeans"
    sizes = [p["png_bytes"] for p in out["points"]]
    assert sizes[0] < sizes[-1]
    psnr = [p["psnr"] for p in out["points"]]
    assert psnr == sorted(psnr)
    for p in out["points"]:
        assert set(p) >= {"ssim", "delta_e_mean", "objective", "bic", "n_iter", "total_s"}
        assert p["bic"] is None and p["objective_kind"] == "inertia"


def test_sweep_table_streams_rows(img, capsys):
    assert main(["sweep", str(img), "--ks", "3,6"]) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(out) if "PNG bytes" in line)
    assert "PSNR" in out[header] and "SSIM" in out[header] and "J" in out[header]
    assert out[header + 1].split()[0] == "3" and out[header + 2].split()[0] == "6"
    assert out[-1].startswith("2 K in ")


def test_sweep_csv_and_mixture_columns(img, capsys):
    argv = ["sweep", str(img), "--ks", "1,2,3", "--method", "gmm", "--max-iter", "20", "--csv"]
    assert main(argv) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["k"]) for r in rows] == [1, 2, 3]
    assert all(r["objective_kind"] == "log_likelihood" and float(r["bic"]) for r in rows)


def test_sweep_plot_written_and_not_overwritten(img, tmp_path, capsys):
    chart = tmp_path / "k.png"
    assert main(["sweep", str(img), "--ks", "2,4,8", "--plot", str(chart), "-q"]) == 0
    with Image.open(chart) as im:
        assert im.format == "PNG" and im.width == 960 and im.height > 500
        pixels = np.asarray(im.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10  # lines, text, not blank
    before = chart.read_bytes()
    assert main(["sweep", str(img), "--ks", "2,4", "--plot", str(chart), "-q"]) == 5
    assert chart.read_bytes() == before
    assert main(["sweep", str(img), "--ks", "2,4", "--plot", str(chart), "-q", "-f"]) == 0
    assert chart.read_bytes() != before


@pytest.mark.parametrize(
    "argv",
    [
        ["--ks", "8-2"],
        ["--ks", "x"],
        ["--json", "--csv"],
        ["--plot", "chart.jpg"],
        ["--plot", "missing/chart.png"],
        ["-k", "4"],  # K comes from --ks
    ],
)
def test_sweep_usage_errors(img, argv, capsys):
    assert main(["sweep", str(img), *argv]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_sweep_unreadable_input_exit_3(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert main(["sweep", str(bad)]) == 3
    assert "bad.png" in capsys.readouterr().err


def test_max_size_writes_the_largest_k_that_fits(img, tmp_path, capsys):
    sizes = {}
    for k in (4, 5, 16):
        out = tmp_path / f"k{k}.png"
        assert main(["quantize", str(img), "-k", str(k), "-o", str(out), "-q"]) == 0
        sizes[k] = out.stat().st_size
    budget = sizes[4] + (sizes[5] - sizes[4]) // 2 if sizes[5] > sizes[4] else sizes[4]
    out = tmp_path / "fit.png"
    assert main(["quantize", str(img), "--max-size", str(budget), "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert out.stat().st_size <= budget
    assert summary["auto"]["metric"] == "png_bytes"
    k = summary["auto"]["k"]
    assert summary["n_colors"] == k and k >= 4
    tried = {int(t): v for t, v in summary["auto"]["tried"].items()}
    assert all(v > budget for t, v in tried.items() if t > k)


def test_max_size_in_kilobytes_and_summary(img, capsys):
    assert main(["quantize", str(img), "--max-size", "3k", "-o", "o.png"]) == 0
    out = capsys.readouterr().out
    assert "K by PNG size (at most 3,000 bytes)" in out
    assert Path("o.png").stat().st_size <= 3000


def test_max_size_none_fits_exit_4_nothing_written(img, tmp_path, capsys):
    assert main(["quantize", str(img), "--max-size", "100", "-o", "none.png"]) == 4
    err = capsys.readouterr().err
    assert "no palette fits 100 bytes" in err and "nothing written" in err
    assert not (tmp_path / "none.png").exists()


@pytest.mark.parametrize(
    "extra",
    [
        ["--quality", "30"],
        ["--max-delta-e", "3"],
        ["-k", "auto", "--method", "gmm"],
        ["--max-size", "0"],
    ],
)
def test_max_size_conflicts(img, extra, capsys):
    argv = ["quantize", str(img), "-o", "x.png", *extra]
    if "--max-size" not in extra:
        argv += ["--max-size", "10k"]
    assert main(argv) == 2
    assert not Path("x.png").exists()
