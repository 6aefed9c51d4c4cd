"""The ``vq`` command: exit codes, outputs, batch, info (mostly in-process via main(argv))."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quantize.cli import build_parser, main
from quantize.cli._common import EPILOG
from quantize.io.palettes import read_palette
from quantize.options import DEFAULTS

FAST = ["--n-init", "1", "--max-iter", "30"]


def make_image(path: Path, size: int = 24, n_colors: int = 5, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    centres = rng.integers(20, 236, (n_colors, 3))
    labels = rng.integers(0, n_colors, (size, size))
    img = np.clip(centres[labels] + rng.normal(0, 5, (size, size, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    # relative output paths of every test land in its own folder, never in the checkout
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def img(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return make_image(tmp_path / "photo.png")


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------ help and usage


def test_help_documents_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out
    for code in ("0  success", "2  usage", "3  input", "4  quality", "5  an output"):
        assert code in out
    assert main(["quantize", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--quality" in out and "--max-delta-e" in out and "exit codes:" in out
    assert "exit codes" in EPILOG


def test_defaults_come_from_one_place():
    args = build_parser().parse_args(["quantize"])
    assert args.method == DEFAULTS["method"] and args.space == DEFAULTS["color_space"]
    assert args.n_init == DEFAULTS["n_init"] and args.seed == DEFAULTS["seed"]
    assert args.dither == DEFAULTS["dither"] and args.tol is None  # each method's own default
    from quantize.cli._run import _estimator_options
    from quantize.cluster.registry import METHODS

    assert _estimator_options(args)["tol"] == DEFAULTS["tol"] == METHODS["kmeans"].tol_default()
    args = build_parser().parse_args(["quantize", "--method", "gmm"])
    assert _estimator_options(args)["tol"] == METHODS["gmm"].tol_default() == 1e-3
    assert _estimator_options(args)["init"] == "kmeans"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["quantize", "-k", "zero"],
        ["quantize", "-k", "0"],
        ["quantize", "--strength", "2"],
        ["quantize", "--method", "median-cut"],
        ["quantize", "-k", "auto"],  # needs --method gmm
        ["quantize", "--quality", "30", "--max-delta-e", "2"],
        ["quantize", "--palette", "p.doc"],
        ["quantize", "--init", "kmeans"],  # only valid for GMM
        ["batch", "x.png"],  # -o missing
    ],
)
def test_usage_errors_exit_2(argv, img, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()


# ------------------------------------------------------------------ quantize


def test_quantize_writes_indexed_png_and_summary(img, tmp_path, capsys):
    assert main(["quantize", str(img), "-k", "4", *FAST, "-o", "out.png"]) == 0
    out = capsys.readouterr().out
    assert "K=4" in out and "PSNR" in out and "wrote out.png" in out
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == "P" and len(im.getpalette()) == 12
    assert files(tmp_path) == ["out.png", "photo.png"]


def test_default_output_name_and_sample_image(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["quantize", "-k", "3", *FAST, "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert files(tmp_path) == ["sample-coffee-vq.png"]


def test_existing_output_exit_5_then_force(img, tmp_path, capsys):
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    assert main(["quantize", str(img), "-k", "3", *FAST, "-o", str(target)]) == 5
    line = one_error_line(capsys.readouterr().err)
    assert "out.png: already exists" in line and "--force" in line
    assert target.read_bytes() == b"precious"
    assert main(["quantize", str(img), "-k", "3", *FAST, "-o", str(target), "--force", "-q"]) == 0
    assert target.read_bytes().startswith(b"\x89PNG")


def test_existing_sibling_mask_blocks_all_outputs(img, tmp_path, capsys):
    args = ["quantize", str(img), "-k", "3", *FAST]
    # the same run once elsewhere names the masks (their names carry each colour)
    assert main([*args, "-o", "first.png", "--masks", "m0", "-q"]) == 0
    name = next(p.name for p in sorted((tmp_path / "m0").iterdir()) if ".mask-02-" in p.name)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / name).write_bytes(b"mine")
    argv = [*args, "-o", "o.png", "--masks", "m", "--report", "r.json"]
    assert main(argv) == 5
    assert f"{name}: already exists" in capsys.readouterr().err
    assert files(tmp_path / "m") == [name]
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "r.json").exists()
    # a mask named as before colours were in the names is a stale sibling: refused too
    (tmp_path / "m" / name).unlink()
    (tmp_path / "m" / "photo.mask-02.png").write_bytes(b"old")
    assert main(argv) == 5
    assert "photo.mask-02.png: left by an earlier export" in capsys.readouterr().err
    assert files(tmp_path / "m") == ["photo.mask-02.png"]


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"%PDF-1.7\n"])
def test_unreadable_input_exit_3(tmp_path, monkeypatch, capsys, content):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    assert main(["quantize", str(bad), "-o", "o.png"]) == 3
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("vq: ") and "bad.png" in line
    assert main(["quantize", str(tmp_path / "missing.jpg")]) == 3
    assert "no such file" in capsys.readouterr().err
    assert files(tmp_path) == ["bad.png"]


def test_debug_shows_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"xx")
    assert main(["quantize", str(bad), "--debug"]) == 3
    assert "Traceback" in capsys.readouterr().err


def test_every_output_kind(img, tmp_path, capsys):
    argv = [
        "quantize",
        str(img),
        "-k",
        "4",
        *FAST,
        "--method",
        "gmm",
        "-o",
        "o.png",
        "--palette",
        "p.gpl",
        "--palette",
        "p.act",
        "--palette",
        "p.json",
        "--palette",
        "p.css",
        "--palette",
        "p.txt",
        "--palette",
        "p.png",
        "--masks",
        "masks",
        "--soft",
        "soft",
        "--report",
        "r.json",
        "--dither",
        "fs",
        "--json",
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    written = {Path(o["path"]).as_posix() for o in summary["outputs"]}
    expected = {
        "o.png",
        "p.gpl",
        "p.act",
        "p.json",
        "p.css",
        "p.txt",
        "p.png",
        "r.json",
        "masks/photo.labels.png",
        "soft/photo.maps.npz",
    }
    hexes = [h[1:] for h in summary["palette"]]  # mask names carry each colour
    expected |= {f"masks/photo.mask-{i:02d}-{hexes[i]}.png" for i in range(4)}
    expected |= {f"soft/photo.soft-{i:02d}.png" for i in range(4)}
    assert written == expected
    assert set(files(tmp_path)) == expected | {"photo.png"}
    palette = np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in summary["palette"]])
    for name in ("p.gpl", "p.act", "p.json", "p.css", "p.txt", "p.png"):
        np.testing.assert_array_equal(read_palette(tmp_path / name), palette)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["parameters"]["method"] == "gmm" and report["render"]["dither"] == "fs"
    assert report["metrics"]["png_bytes"] == (tmp_path / "o.png").stat().st_size
    assert "o.png" in report["outputs"] and len(report["input"]["sha256"]) == 64
    assert report["input"]["sha256"] == hashlib.sha256(img.read_bytes()).hexdigest()


def test_one_rendering_per_run(img, tmp_path, monkeypatch, capsys):
    # the dithered rendering (and its PNG) serves the metrics, the PNG and the report
    import quantize.metrics
    import quantize.pipeline
    import quantize.render

    calls = []
    real = quantize.render.dither_indices

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    for module in (quantize.render, quantize.pipeline, quantize.metrics):
        monkeypatch.setattr(module, "dither_indices", counting)
    argv = [
        "quantize",
        str(img),
        "-k",
        "4",
        *FAST,
        "-o",
        "o.png",
        "--report",
        "r.json",
        "--dither",
        "fs",
        "--strength",
        "0.5",
        "-q",
    ]
    assert main(argv) == 0
    assert len(calls) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["metrics"]["png_bytes"] == (tmp_path / "o.png").stat().st_size


def test_disk_full_while_writing_exit_1_nothing_left(img, tmp_path, monkeypatch, capsys):
    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    argv = ["quantize", str(img), "-k", "3", *FAST, "-o", "o.png", "--palette", "p.gpl"]
    assert main(argv) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "disk full" in line and "nothing written" in line
    assert files(tmp_path) == ["photo.png"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_quality_target_not_reached_exit_4(img, tmp_path, capsys):
    assert main(["quantize", str(img), "--quality", "80", "-k", "4", *FAST, "-o", "o.png"]) == 4
    line = one_error_line(capsys.readouterr().err)
    assert "quality target not reached" in line and "K=4" in line
    assert files(tmp_path) == ["photo.png"]


def test_quality_target_picks_fewest_colours(img, capsys):
    assert main(["quantize", str(img), "--quality", "30", "-k", "16", *FAST, "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["auto"]["metric"] == "psnr" and s["metrics"]["psnr"] >= 30
    k = s["auto"]["k"]
    assert all(v < 30 for kk, v in s["auto"]["tried"].items() if int(kk) < k)
    assert (
        main(
            [
                "quantize",
                str(img),
                "--max-delta-e",
                "3",
                "-k",
                "16",
                *FAST,
                "--json",
                "-o",
                "de.png",
            ]
        )
        == 0
    )
    s = json.loads(capsys.readouterr().out)
    assert s["auto"]["metric"] == "delta_e" and s["metrics"]["delta_e_mean"] <= 3


def test_k_auto_gmm_by_bic(img, capsys):
    assert (
        main(
            [
                "quantize",
                str(img),
                "-k",
                "auto",
                "--method",
                "gmm",
                "--space",
                "rgb",
                *FAST,
                "--json",
            ]
        )
        == 0
    )
    s = json.loads(capsys.readouterr().out)
    assert s["auto"]["metric"] == "bic"
    tried = s["auto"]["tried"]
    assert tried[str(s["auto"]["k"])] == min(tried.values())


# ------------------------------------------------------------------ batch and info


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_batch_skips_bad_files(tmp_path, monkeypatch, capsys, jobs):
    monkeypatch.chdir(tmp_path)
    a = make_image(tmp_path / "a.png", seed=1)
    b = make_image(tmp_path / "b.png", seed=2)
    bad = tmp_path / "c.png"
    bad.write_text("hello")
    argv = [
        "batch",
        str(a),
        str(bad),
        str(b),
        "-o",
        "out",
        "-j",
        jobs,
        "-k",
        "3",
        *FAST,
        "--report",
        "--palette-format",
        ".gpl",
    ]
    assert main(argv) == 3
    captured = capsys.readouterr()
    assert "2 ok, 1 failed" in captured.out
    err = "\n".join(x for x in captured.err.splitlines() if not x.startswith("vq: running on"))
    assert one_error_line(err).startswith("vq: ") and "c.png" in err
    assert files(tmp_path / "out") == [
        "a.gpl",
        "a.json",
        "a.png",
        "b.gpl",
        "b.json",
        "b.png",
        "vq-batch-report.json",
    ]
    report = json.loads((tmp_path / "out" / "vq-batch-report.json").read_text())
    assert (report["ok"], report["failed"]) == (2, 1)
    assert [(f["input"], f["ok"], f["code"]) for f in report["files"]] == [
        (str(a), True, 0),
        (str(bad), False, 3),
        (str(b), True, 0),
    ]
    assert "c.png: not an image" in report["files"][1]["message"]
    # second run: everything exists -> 5, unless --force
    assert main(["batch", str(a), "-o", "out", "-q", "-k", "3", *FAST]) == 5
    assert main(["batch", str(a), "-o", "out", "-q", "-k", "3", *FAST, "--force"]) == 0


def test_batch_same_stem_and_json(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()
    a = make_image(tmp_path / "a.png", seed=1)
    a2 = make_image(tmp_path / "x" / "a.png", seed=2)
    assert main(["batch", str(a), str(a2), "-o", "out", "-j", "1", "-k", "2", *FAST, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] == 2 and doc["failed"] == 0
    assert files(tmp_path / "out") == ["a-2.png", "a.png"]


def test_info(tmp_path, capsys):
    p = tmp_path / "g.png"
    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[0, 0] = (9, 9, 9, 0)
    rgba[1, 1] = (200, 0, 0, 255)
    Image.fromarray(rgba, "RGBA").save(p)
    assert main(["info", str(p), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["width"] == 7 and doc["height"] == 5 and doc["alpha"] is True
    assert doc["unique_colors"] == 2 and doc["bit_depth"] == 8 and doc["frames"] == 1
    assert main(["info", str(p)]) == 0
    assert "7x5" in capsys.readouterr().out
    bad = tmp_path / "bad.gif"
    bad.write_bytes(b"GIF89a")
    assert main(["info", str(p), str(bad)]) == 3
    assert "bad.gif" in capsys.readouterr().err


# ------------------------------------------------------------------ as a program


def test_python_dash_m(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    run = subprocess.run(
        [sys.executable, "-m", "quantize", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert run.returncode == 0 and "exit codes:" in run.stdout
    argv = [sys.executable, "-m", "quantize", "quantize", str(tmp_path / "no.png")]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert run.returncode == 3
    assert run.stderr.strip().splitlines() == [f"vq: {tmp_path / 'no.png'}: no such file"]


# ------------------------------------------------------------------ degenerate inputs


def test_one_pixel_and_two_colours(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.array([[[10, 20, 30]]], np.uint8)).save("one.png")
    assert main(["quantize", "one.png", "-k", "8", "-o", "o1.png", "--json"]) == 0
    captured = capsys.readouterr()
    s = json.loads(captured.out)
    assert s["n_colors"] == 1 and s["metrics"]["ssim"] is None and s["metrics"]["psnr"] is None
    assert "K reduced to 1" in captured.err
    two = np.zeros((6, 6, 3), np.uint8)
    two[:3] = (250, 200, 0)
    Image.fromarray(two).save("two.png")
    assert main(["quantize", "two.png", "-k", "8", "-o", "o2.png", "--masks", "m"]) == 0
    out = capsys.readouterr().out
    assert "K=2 (asked 8)" in out and "PSNR inf dB" in out
    with Image.open("o2.png") as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), two)
    assert files(tmp_path / "m") == [
        "two.labels.png",
        "two.mask-00-000000.png",
        "two.mask-01-fac800.png",
    ]


def test_transparency_kept_and_fully_transparent_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = np.arange(8)[None, :] * 30
    rgba[..., 3] = 255
    rgba[:2, :, 3] = 0
    Image.fromarray(rgba, "RGBA").save("a.png")
    assert main(["quantize", "a.png", "-k", "3", *FAST, "-o", "o.png", "-q"]) == 0
    with Image.open("o.png") as im:
        assert im.mode == "P" and im.info["transparency"] == 0
        alpha = np.asarray(im.convert("RGBA"))[..., 3]
    np.testing.assert_array_equal(alpha, rgba[..., 3])
    Image.fromarray(np.zeros((4, 4, 4), np.uint8), "RGBA").save("clear.png")
    assert main(["quantize", "clear.png", "-o", "c.png"]) == 3
    assert "fully transparent" in one_error_line(capsys.readouterr().err)
    assert not Path("c.png").exists()


def test_16_bit_input(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    grey = (np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(grey).save("g16.png")
    assert main(["quantize", "g16.png", "-k", "4", "--method", "optimal1d", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["bit_depth"] == 16 and s["n_colors"] == 4 and s["metrics"]["unique_before"] == 64


def test_failed_run_leaves_no_new_folders(img, tmp_path, monkeypatch, capsys):
    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", full)
    argv = ["quantize", str(img), "-k", "2", *FAST, "--masks", "a/b", "--soft", "s", "-o", "o.png"]
    assert main(argv) == 1
    assert files(tmp_path) == ["photo.png"] and sorted(os.listdir(tmp_path)) == ["photo.png"]
    monkeypatch.setattr(os, "fsync", real_fsync)
    (tmp_path / "o.png").write_bytes(b"x")
    assert main(argv) == 5  # refused before the fit: no folder made either
    assert sorted(os.listdir(tmp_path)) == ["o.png", "photo.png"]
    capsys.readouterr()


def test_no_exif_or_gps_in_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPS IFD
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
        "gps.jpg", exif=exif, quality=90
    )
    with Image.open("gps.jpg") as im:
        assert im.getexif().get_ifd(0x8825)  # the input really has GPS data
    argv = [
        "quantize",
        "gps.jpg",
        "-k",
        "4",
        *FAST,
        "-o",
        "o.png",
        "--masks",
        "m",
        "-q",
        "--palette",
        "p.png",
    ]
    assert main(argv) == 0
    for path in [tmp_path / "o.png", tmp_path / "p.png", *sorted((tmp_path / "m").iterdir())]:
        data = path.read_bytes()
        assert b"eXIf" not in data and b"CameraMaker" not in data and b"tEXt" not in data
        with Image.open(path) as im:
            assert not im.getexif()


def test_progress_bar_fed_by_records(img, capsys):
    assert main(["quantize", str(img), "-k", "3", *FAST, "-o", "o.png", "--progress"]) == 0
    err = capsys.readouterr().err
    assert "kmeans (wrgb)" in err and "it" in err and "inertia=" in err
    assert (
        main(
            ["quantize", str(img), "-k", "3", *FAST, "-o", "p.png", "--quality", "18", "--progress"]
        )
        == 0
    )
    assert "auto K: K=" in capsys.readouterr().err
    assert main(["quantize", str(img), "-k", "3", *FAST, "-o", "q.png"]) == 0
    assert capsys.readouterr().err == ""  # not a terminal: no bar unless asked


def test_same_seed_same_bytes(img, tmp_path, capsys):
    for out in ("a", "b"):
        argv = [
            "quantize",
            str(img),
            "-k",
            "5",
            "--seed",
            "7",
            "-o",
            f"{out}.png",
            "--palette",
            f"{out}.gpl",
            "--soft",
            f"soft_{out}",
            "-q",
            "--dither",
            "ordered",
        ]
        assert main(argv) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.gpl").read_text().replace("Name: a", "") == (
        tmp_path / "b.gpl"
    ).read_text().replace("Name: b", "")
    for p in sorted((tmp_path / "soft_a").iterdir()):
        assert p.read_bytes() == (tmp_path / "soft_b" / p.name).read_bytes()


def test_use_palette_maps_without_fitting(img, tmp_path, capsys):
    pal = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0]], np.uint8)
    from quantize.io.palettes import write_palette

    write_palette(tmp_path / "mine.gpl", pal)
    argv = [
        "quantize",
        str(img),
        "--use-palette",
        "mine.gpl",
        "--space",
        "rgb",
        "-o",
        "o.png",
        "--palette",
        "out.act",
        "--json",
    ]
    assert main(argv) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["method"] == "palette" and s["n_iter"] == 0 and s["n_colors"] == 3
    assert s["palette"] == ["#000000", "#ffffff", "#ff0000"]  # order kept
    np.testing.assert_array_equal(read_palette(tmp_path / "out.act"), pal)
    with Image.open(tmp_path / "o.png") as im:
        idx = np.asarray(im)
    rgb = np.asarray(Image.open(img)).astype(float)
    d = ((rgb[:, :, None, :] - pal[None, None].astype(float)) ** 2).sum(-1)
    np.testing.assert_array_equal(idx, d.argmin(-1))
    assert main(["quantize", str(img), "--use-palette", "mine.gpl", "-o", "p.png"]) == 0
    assert "mapped onto the given palette of 3 colours" in capsys.readouterr().out


def test_init_palette_and_palette_errors(img, tmp_path, capsys):
    from quantize.io.palettes import write_palette

    write_palette(tmp_path / "start.txt", np.array([[10, 10, 10], [240, 240, 240]], np.uint8))
    assert main(["quantize", str(img), "--init-palette", "start.txt", *FAST, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_colors"] == 2
    assert main(["quantize", str(img), "--init-palette", "start.txt", "-k", "5", "-o", "a"]) == 2
    assert main(["quantize", str(img), "--use-palette", "start.txt", "--quality", "30"]) == 2
    capsys.readouterr()
    (tmp_path / "broken.gpl").write_text("not a palette")
    assert main(["quantize", str(img), "--use-palette", "broken.gpl", "-o", "b.png"]) == 3
    assert "broken.gpl" in one_error_line(capsys.readouterr().err)
    assert main(["quantize", str(img), "--use-palette", "missing.gpl", "-o", "c.png"]) == 3


def test_output_folder_and_wrong_extension(img, tmp_path, capsys):
    (tmp_path / "outdir").mkdir()
    assert main(["quantize", str(img), "-k", "2", *FAST, "-o", "outdir", "-q"]) == 0
    assert files(tmp_path / "outdir") == ["photo-vq.png"]
    assert main(["quantize", str(img), "-k", "2", *FAST, "-o", "x.jpg"]) == 2
    assert "ending in .png" in one_error_line(capsys.readouterr().err)


def test_skip_if_larger(tmp_path, capsys):
    # a tiny, well-compressed input: any indexed PNG with a palette is not smaller
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save("tiny.png", optimize=True)
    noisy = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noisy).save("noisy.png")
    assert main(["quantize", "tiny.png", "-k", "2", "-o", "t.png", "--skip-if-larger"]) == 6
    assert "skipped" in capsys.readouterr().err.splitlines()[-1]
    assert not Path("t.png").exists()
    assert (
        main(["quantize", "noisy.png", "-k", "4", *FAST, "-o", "n.png", "--skip-if-larger", "-q"])
        == 0
    )
    assert Path("n.png").exists()
    argv = [
        "batch",
        "tiny.png",
        "noisy.png",
        "-o",
        "out",
        "-j",
        "1",
        "-k",
        "4",
        *FAST,
        "--skip-if-larger",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 ok, 1 skipped, 0 failed" in out
    assert files(tmp_path / "out") == ["noisy.png"]


@pytest.mark.parametrize("method", ["kmeans", "gmm", "minibatch"])
@pytest.mark.parametrize("space", ["rgb", "lab", "oklab"])
def test_every_method_and_space(img, tmp_path, capsys, method, space):
    argv = [
        "quantize",
        str(img),
        "-k",
        "3",
        *FAST,
        "--method",
        method,
        "--space",
        space,
        "-o",
        "o.png",
        "--report",
        "r.json",
        "--json",
    ]
    assert main(argv) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["method"] == method and s["color_space"] == space and s["n_colors"] == 3
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["parameters"]["method"] == method
    assert report["parameters"]["color_space"] == space


def test_batch_folder_input(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    make_image(tmp_path / "in" / "x.png", seed=1)
    make_image(tmp_path / "in" / "y.png", seed=2)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    assert main(["batch", "in", "-o", "out", "-j", "1", "-k", "2", *FAST, "-q"]) == 0
    assert files(tmp_path / "out") == ["x.png", "y.png"]
    (tmp_path / "empty").mkdir()
    assert main(["batch", "empty", "-o", "out2"]) == 2
    assert "no image files" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()


def test_batch_all_failed_leaves_no_output_folder(tmp_path, capsys):
    (tmp_path / "bad.png").write_text("nope")
    assert main(["batch", "bad.png", "-o", "deep/out", "-j", "1"]) == 3
    assert not (tmp_path / "deep").exists()
    capsys.readouterr()


def test_image_from_stdin(img, tmp_path, monkeypatch, capsys):
    import io as _io

    class FakeStdin:
        buffer = _io.BytesIO(img.read_bytes())

    monkeypatch.setattr(sys, "stdin", FakeStdin)
    assert main(["quantize", "-", "-k", "3", *FAST, "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["input"] == "<stdin>" and s["outputs"][0]["path"] == "stdin-vq.png"
    FakeStdin.buffer = _io.BytesIO(b"garbage")
    assert main(["quantize", "-", "-o", "g.png"]) == 3
    assert "<stdin>: " in one_error_line(capsys.readouterr().err)


def test_more_than_256_colours(tmp_path, capsys):
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save("many.png")
    argv = [
        "quantize",
        "many.png",
        "-k",
        "300",
        "--n-init",
        "1",
        "--max-iter",
        "5",
        "-o",
        "m.png",
        "--masks",
        "masks",
        "--palette",
        "m.gpl",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "truecolour PNG" in captured.err
    with Image.open("m.png") as im:
        assert im.mode == "RGB"
    with Image.open("masks/many.labels.png") as im:
        assert im.mode == "I;16" and np.asarray(im).max() >= 256
    assert main(argv[:-2] + ["--palette", "m.act", "--force"]) == 1
    assert "at most 256" in captured.err + capsys.readouterr().err


# ------------------------------------------------------------------ built from the tables


@pytest.fixture
def toy_method():
    from quantize.cluster.kmeans import KMeans
    from quantize.cluster.registry import MethodSpec, register_method, unregister_method

    register_method(
        MethodSpec(
            name="toy",
            label="Toy",
            short_label="toy method",
            description="toy method for tests",
            factory=lambda k, seed, o: KMeans(k, seed=seed, **o),
            options=frozenset({"init", "n_init", "max_iter", "tol"}),
            inits={"k-means++": "k-means++"},
        )
    )
    register_method(
        MethodSpec(
            name="toy_once",
            label="Toy once",
            short_label="toy once",
            description="no iterations",
            factory=lambda k, seed, o: KMeans(k, seed=seed, n_init=1),
            options=frozenset(),
        )
    )
    yield "toy"
    unregister_method("toy")
    unregister_method("toy_once")


def test_a_registered_method_is_offered_and_runs(img, tmp_path, capsys, toy_method):
    assert main(["quantize", "--help"]) == 0
    out = capsys.readouterr().out
    assert "{kmeans,gmm,minibatch,optimal1d,toy,toy_once}" in out
    assert "toy method for tests" in out  # the methods block of the epilog
    assert main(["quantize", str(img), "--method", "toy", "-k", "4", *FAST, "-o", "out.png"]) == 0
    out = capsys.readouterr().out
    assert "toy method in wrgb: K=4" in out and "wrote out.png" in out  # its short label
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == "P" and len(im.getpalette()) == 12
    assert (
        main(["quantize", str(img), "--method", "toy", "-k", "3", *FAST, "--json", "-o", "o2.png"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["method"] == "toy"
    # its inits, BIC and iterations decide what is allowed
    assert main(["quantize", str(img), "--method", "toy", "--init", "random", "-o", "x.png"]) == 2
    assert "choose from k-means++" in capsys.readouterr().err
    assert main(["quantize", str(img), "--method", "toy", "-k", "auto", "-o", "x.png"]) == 2
    assert "needs --method gmm" in capsys.readouterr().err
    from quantize.io.palettes import write_palette

    write_palette(tmp_path / "start.gpl", np.array([[10, 10, 10], [240, 240, 240]], np.uint8))
    assert (
        main(
            [
                "quantize",
                str(img),
                "--method",
                "toy",
                "--init-palette",
                "start.gpl",
                *FAST,
                "--json",
                "-o",
                "o3.png",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["n_colors"] == 2
    assert (
        main(
            [
                "quantize",
                str(img),
                "--method",
                "toy_once",
                "--init-palette",
                "start.gpl",
                "-o",
                "x.png",
            ]
        )
        == 2
    )
    assert "--init-palette does not apply to --method toy_once" in capsys.readouterr().err
    assert (
        main(["quantize", str(img), "--method", "toy_once", "-k", "2", "-o", "o4.png", "-q"]) == 0
    )
    assert not (tmp_path / "x.png").exists()


def test_unregistered_method_is_gone_from_the_parser(toy_method):
    from quantize.cluster.registry import unregister_method

    unregister_method("toy")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["quantize", "--method", "toy"])


@pytest.fixture
def toy_export_kind():
    from quantize.io import export
    from quantize.io.palettes import PaletteFormat

    def encode(palette, shares, *, name, transparent_index):
        return "".join(f"{r};{g};{b}\n" for r, g, b in palette).encode()

    export.register_export_kind(
        export.ExportKind(
            name="toy_palette",
            label="Toy palette (.toy)",
            description="semicolon-separated RGB",
            suffix=".toy",
            palette=PaletteFormat("toy", (".toy",), encode),
        ),
        before="sidecar",
    )
    yield ".toy"
    export.unregister_export_kind("toy_palette")


def test_a_registered_palette_kind_is_offered_by_the_cli(img, tmp_path, capsys, toy_export_kind):
    assert main(["quantize", "--help"]) == 0
    out = capsys.readouterr().out
    assert ".css .png swatches or .toy (repeatable)" in " ".join(out.split())  # --palette
    assert main(["batch", "--help"]) == 0
    assert ".toy" in capsys.readouterr().out  # a --palette-format choice
    argv = [
        "quantize",
        str(img),
        "-k",
        "4",
        *FAST,
        "-o",
        "o.png",
        "--palette",
        "out.toy",
        "--palette",
        "out.gpl",
        "--json",
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    lines = (tmp_path / "out.toy").read_text().splitlines()
    assert ["#{:02x}{:02x}{:02x}".format(*map(int, line.split(";"))) for line in lines] == (
        summary["palette"]
    )
    assert {Path(o["path"]).name for o in summary["outputs"]} == {"o.png", "out.toy", "out.gpl"}
    assert main(["quantize", str(img), "--palette", "out.doc", "-o", "p.png"]) == 2
    assert ".toy" in capsys.readouterr().err  # listed among the known extensions
    argv = [
        "batch",
        str(img),
        "-o",
        "out",
        "-j",
        "1",
        "-k",
        "3",
        *FAST,
        "--palette-format",
        ".toy",
        "-q",
    ]
    assert main(argv) == 0
    assert files(tmp_path / "out") == ["photo.png", "photo.toy"]


def test_help_lists_the_table_choices(capsys):
    from quantize.cluster.registry import METHODS
    from quantize.options import COLOR_SPACES, COVARIANCE_TYPES, DITHERS

    assert main(["quantize", "--help"]) == 0
    out = capsys.readouterr().out
    for names in (tuple(METHODS), COLOR_SPACES.names, COVARIANCE_TYPES.names, DITHERS.names):
        assert "{" + ",".join(names) + "}" in out
    for spec in METHODS.values():
        assert spec.description.split()[0] in out
    flat = " ".join(out.split())
    assert "palette file: .gpl .act .json .txt .css or .png swatches (repeatable)" in flat
    init = "initialisation: k-means++ or random (gmm also kmeans); default k-means++ (gmm: kmeans)"
    assert init in flat


def test_k_auto_with_a_registered_bic_method(img, capsys):
    from quantize.cluster.gmm import GaussianMixture
    from quantize.cluster.registry import MethodSpec, register_method, unregister_method

    register_method(
        MethodSpec(
            name="toy_mixture",
            label="Toy mixture",
            short_label="toy mixture",
            description="a mixture under another name",
            factory=lambda k, seed, o: GaussianMixture(k, seed=seed, **o),
            options=frozenset({"init", "n_init", "max_iter", "tol"}),
            inits={"kmeans": "K-means"},
            objective="log_likelihood",
            soft=True,
            bic=True,
        )
    )
    try:
        assert main(["quantize", "--help"]) == 0
        assert "'auto' (gmm/toy_mixture: lowest BIC)" in " ".join(capsys.readouterr().out.split())
        argv = [
            "quantize",
            str(img),
            "-k",
            "auto",
            "--method",
            "toy_mixture",
            "--space",
            "rgb",
            *FAST,
            "-o",
            "o.png",
        ]
        assert main([*argv, "--json"]) == 0
        s = json.loads(capsys.readouterr().out)
        assert s["method"] == "toy_mixture" and s["auto"]["metric"] == "bic"
        assert main([*argv, "--force"]) == 0
        assert "toy mixture in rgb: K=" in capsys.readouterr().out
        assert main(["quantize", str(img), "-k", "auto", "-o", "x.png"]) == 2
        assert "needs --method gmm or --method toy_mixture" in capsys.readouterr().err
    finally:
        unregister_method("toy_mixture")


# ------------------------------------------------------------------ messages and exit codes


class FakeStdin:
    """``sys.stdin`` whose binary stream holds ``data``."""

    def __init__(self, data: bytes) -> None:
        import io as _io

        self.buffer = _io.BytesIO(data)


def test_one_file_named_for_two_outputs_is_a_usage_error(img, tmp_path, capsys):
    argv = ["quantize", str(img), "-k", "3", *FAST]
    assert main([*argv, "-o", "c.png", "--report", "c.png"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "c.png" in line and "-o" in line and "--report" in line
    assert main([*argv, "-o", "o.png", "--palette", "p.gpl", "--palette", "./p.gpl"]) == 2
    assert "p.gpl: named twice by --palette" in one_error_line(capsys.readouterr().err)
    # a per-colour file is known once K is: still a usage error, before anything is written
    assert main([*argv, "-o", "first.png", "--masks", "m0", "-q"]) == 0  # learn the names
    mask = next(p.name for p in sorted((tmp_path / "m0").iterdir()) if ".mask-01-" in p.name)
    before = files(tmp_path)
    (tmp_path / "m").mkdir()
    assert main([*argv, "-o", f"m/{mask}", "--masks", "m"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"m/{mask}: named by both -o and --masks" in line
    assert files(tmp_path) == before


def test_info_reads_standard_input(img, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", FakeStdin(img.read_bytes()))
    assert main(["info", "-", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["path"] == "<stdin>" and doc["width"] == 24 and doc["format"] == "PNG"
    assert doc["file_size"] == img.stat().st_size
    monkeypatch.setattr(sys, "stdin", FakeStdin(b"junk"))
    assert main(["info", "-"]) == 3
    assert one_error_line(capsys.readouterr().err).startswith("vq: <stdin>: ")
    assert main(["info", "-", "-"]) == 2
    assert "standard input ('-') can be read only once" in capsys.readouterr().err


def test_batch_reads_standard_input_once_and_names_it_stdin(img, tmp_path, monkeypatch, capsys):
    b = make_image(tmp_path / "b.png", seed=4)
    monkeypatch.setattr(sys, "stdin", FakeStdin(img.read_bytes()))
    assert main(["batch", "-", "-o", "one", "-k", "3", *FAST]) == 0
    assert "ok    <stdin>: K=3" in capsys.readouterr().out
    assert files(tmp_path / "one") == ["stdin.png"]
    # the workers have no standard input: the parent reads it and hands the bytes over
    monkeypatch.setattr(sys, "stdin", FakeStdin(img.read_bytes()))
    assert main(["batch", "-", str(b), "-o", "two", "-j", "2", "-k", "3", *FAST, "-q"]) == 0
    assert files(tmp_path / "two") == ["b.png", "stdin.png"]
    assert (tmp_path / "one" / "stdin.png").read_bytes() == (
        tmp_path / "two" / "stdin.png"
    ).read_bytes()
    capsys.readouterr()
    assert main(["batch", "-", "-", "-o", "three"]) == 2
    assert "standard input ('-') can be read only once" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "three").exists()


def test_quiet_batch_and_info_still_name_the_failed_files(tmp_path, capsys):
    a = make_image(tmp_path / "a.png", seed=1)
    (tmp_path / "bad.png").write_text("hello")
    assert main(["batch", "bad.png", str(a), "-o", "out", "-q", "-j", "1", "-k", "3", *FAST]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert one_error_line(captured.err) == "vq: bad.png: not an image (the file contains text)"
    assert main(["info", "bad.png", str(a), "-q"]) == 3
    captured = capsys.readouterr()
    assert captured.out == "" and "bad.png" in one_error_line(captured.err)


def test_batch_palette_files_never_collide_with_other_outputs(img, tmp_path, capsys):
    argv = ["batch", str(img), "-k", "3", *FAST, "-q"]
    assert main([*argv, "-o", "a", "--palette-format", ".png"]) == 0
    assert files(tmp_path / "a") == ["photo.png", "photo.swatch.png"]
    assert main([*argv, "-o", "b", "--palette-format", ".json", "--report"]) == 0
    assert files(tmp_path / "b") == [
        "photo.json",
        "photo.palette.json",
        "photo.png",
        "vq-batch-report.json",
    ]
    assert main([*argv, "-o", "c", "--palette-format", ".json"]) == 0
    assert files(tmp_path / "c") == ["photo.json", "photo.png"]
    assert read_palette(tmp_path / "c" / "photo.json").shape == (3, 3)
    assert capsys.readouterr().err == ""


def test_interrupted_batch_lists_what_was_written(tmp_path, monkeypatch, capsys):
    import quantize.cli.batch as batch_module

    inputs = [str(make_image(tmp_path / f"{n}.png", seed=i)) for i, n in enumerate("abc")]
    real = batch_module.quantize_one
    calls = []

    def interrupted_on_the_second(path, *args, **kwargs):
        calls.append(path.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(batch_module, "quantize_one", interrupted_on_the_second)
    assert main(["batch", *inputs, "-o", "out", "-j", "1", "-k", "3", *FAST]) == 130
    captured = capsys.readouterr()
    assert calls == ["a.png", "b.png"]  # the third was never started
    assert "1 ok, 0 failed, 2 not processed (interrupted)" in captured.out
    assert one_error_line(captured.err) == (
        "vq: interrupted - wrote out/a.png; 2 of 3 files not processed"
    )
    assert files(tmp_path / "out") == ["a.png"]
    calls.clear()
    assert main(["batch", *inputs, "-o", "out2", "-j", "1", "--json", "-k", "3", *FAST]) == 130
    doc = json.loads(capsys.readouterr().out)
    assert doc["interrupted"] is True and doc["ok"] == 1
    assert doc["not_processed"] == inputs[1:]


def test_extreme_float_tiff_is_quantized_not_black(tmp_path, capsys):
    import tifffile

    values = np.zeros((8, 8), np.float64)
    values[:, :4] = -1e308
    values[:, 4:] = 1e308
    tifffile.imwrite(tmp_path / "huge.tif", values)
    assert main(["quantize", "huge.tif", "-k", "2", *FAST, "-o", "h.png", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert sorted(s["palette"]) == ["#000000", "#ffffff"]
    assert any("rescaled to the full range" in w for w in s["warnings"])
    tifffile.imwrite(tmp_path / "flat.tif", np.full((8, 8), 7.0, np.float32))
    assert main(["quantize", "flat.tif", "-k", "2", *FAST, "-o", "f.png", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["palette"] == ["#808080"]
    assert any("constant float image" in w for w in s["warnings"])


def test_interrupt_right_after_a_file_was_written_still_lists_it(tmp_path, monkeypatch, capsys):
    import quantize.cli.batch as batch_module

    inputs = [str(make_image(tmp_path / f"{n}.png", seed=i)) for i, n in enumerate("ab")]
    real = batch_module.quantize_one

    def interrupted_once_written(path, *args, **kwargs):
        real(path, *args, **kwargs)  # the outputs are in place ...
        raise KeyboardInterrupt  # ... when Ctrl-C arrives, before the report is made

    monkeypatch.setattr(batch_module, "quantize_one", interrupted_once_written)
    argv = ["batch", *inputs, "-o", "out", "-j", "1", "--report", "-k", "3", *FAST, "-q"]
    assert main(argv) == 130
    assert one_error_line(capsys.readouterr().err) == (
        "vq: interrupted - wrote out/a.png and out/a.json; 1 of 2 files not processed"
    )
    # the batch report lists what was not processed (to resume with --skip-existing)
    assert files(tmp_path / "out") == ["a.json", "a.png", "vq-batch-report.json"]
    report = json.loads((tmp_path / "out" / "vq-batch-report.json").read_text())
    assert report["interrupted"] is True and report["not_processed"] == inputs[1:]
    outputs = [str(Path("out") / n) for n in ("a.png", "a.json")]
    assert report["ok"] == 1 and report["files"] == [
        {"ok": True, "written_without_summary": True, "outputs": outputs, "input": inputs[0]}
    ]
    # without -q the summary lists the file too, and counts it
    assert main([*argv[:-1], "-o", "out2"]) == 130
    out = capsys.readouterr().out
    assert f"ok    {inputs[0]}: written as the interrupt came -> a.png, a.json" in out
    assert "1 ok, 0 failed, 1 not processed (interrupted)" in out


def lzw_tiff_with_garbage_data(path: Path) -> Path:
    """An 8x8 grey TIFF whose LZW strip is garbage: libtiff prints on fd 2 as it fails."""
    body = bytes(range(200, 255)) * 2
    entries = [(256, 4, 8), (257, 4, 8), (258, 3, 8), (259, 3, 5), (262, 3, 1)]
    entries += [(273, 4, 8 + 2 + 12 * 9 + 4), (277, 3, 1), (278, 4, 8), (279, 4, len(body))]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, 1) + packed
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + b"\0\0\0\0" + body)
    return path


def test_decoder_noise_stays_off_stderr_the_error_is_one_line(tmp_path, capfd):
    bad = lzw_tiff_with_garbage_data(tmp_path / "lzw.tif")
    for argv in (["info", str(bad)], ["quantize", str(bad), "-o", "o.png"]):
        assert main(argv) == 3
        err = capfd.readouterr().err
        assert one_error_line(err) == f"vq: {bad}: corrupt or truncated image (decoder error -2)"
    assert main(["info", str(bad), "--debug"]) == 3  # --debug shows all there is
    assert "Using code not yet in table" in capfd.readouterr().err


def test_fs_and_kmeans_runs_load_the_compiled_loops_from_the_header(img, monkeypatch):
    # the load starts once the header is read, before the pixels are
    # decoded and fitted, when the size repays it; never for other dithering
    import quantize._native as native
    import quantize.cli._run as run
    import quantize.io.load as load
    import quantize.render as render

    events: list[str] = []
    monkeypatch.setattr(native, "prepare", lambda: events.append("load"))
    monkeypatch.setattr(render, "compiled_diffusion", lambda: None)  # numpy form either way
    monkeypatch.setattr(render, "_COMPILED_MIN_PIXELS", 24 * 24)  # img's size repays it
    real_finish, real_fit = load._finish, run._run_fit
    monkeypatch.setattr(load, "_finish", lambda *a: (events.append("decoded"), real_finish(*a))[1])
    monkeypatch.setattr(run, "_run_fit", lambda *a: (events.append("fit"), real_fit(*a))[1])
    assert main(["quantize", str(img), "-k", "3", *FAST, "--dither", "fs", "-o", "a.png"]) == 0
    assert events[:3] == ["load", "decoded", "fit"]
    for dither in ("none", "ordered"):
        events.clear()
        argv = ["quantize", str(img), "-k", "3", *FAST, "--dither", dither, "-o", f"{dither}.png"]
        assert main(argv) == 0
        assert "load" not in events and "fit" in events
    monkeypatch.setattr(render._Compiled, "module", None)  # as in a fresh process
    monkeypatch.setattr(render._Compiled, "loading", False)
    events.clear()
    monkeypatch.setattr(render, "_COMPILED_MIN_PIXELS", 24 * 24 + 1)  # one pixel too small
    assert main(["quantize", str(img), "-k", "3", *FAST, "--dither", "fs", "-o", "b.png"]) == 0
    assert "load" not in events and "fit" in events
    # K-means on an image large enough for its compiled E step: loaded from the header too
    monkeypatch.setattr(run, "_KMEANS_LOAD_MIN_PIXELS", 24 * 24)
    for method in ("kmeans", "minibatch"):
        events.clear()
        argv = ["quantize", str(img), "-k", "3", *FAST, "--method", method, "-o", f"{method}.png"]
        assert main([*argv, "--dither", "none"]) == 0
        if method == "kmeans":
            assert events[:3] == ["load", "decoded", "fit"]
        else:  # mini-batch K-means has no use for them
            assert "load" not in events
