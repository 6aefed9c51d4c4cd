"""``vq batch`` on a real Dask cluster: two worker processes, a corrupt file, a killed worker.

One LocalCluster (2 processes, 1 thread each) serves the module; the batches reach it with
``--scheduler``, ``DASK_SCHEDULER_ADDRESS`` or ``--scheduler-file`` (the path of an existing
cluster).  The default path (``vq batch -j 2`` starting its own LocalCluster) is run by
tests/quantize/test_cli.py and the Ctrl-C tests of test_cli_interrupt.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quantize.cli import main
from quantize.options import DEFAULTS

pytestmark = pytest.mark.slow

FAST = ["--n-init", "1", "--max-iter", "30"]
DEFAULT_SPACE = DEFAULTS["color_space"]


def photo_like(path: Path, seed: int, size: int = 48) -> Path:
    """Smooth gradients plus noise: many colours, a fit of a few iterations."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([x, y, 1 - x * y], -1) * rng.uniform(120, 250, 3)
    img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


def noise(path: Path, seed: int, size: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def visible_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def hidden_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=50,
        ) as lc,
        Client(lc, set_as_default=False) as client,
    ):
        yield lc, client


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)


def test_cluster_run_equals_one_process_and_isolates_a_corrupt_file(tmp_path, cluster, capsys):
    lc, _ = cluster
    inputs = [str(photo_like(tmp_path / f"p{i}.png", i)) for i in range(5)]
    (tmp_path / "broken.png").write_bytes(Path(inputs[0]).read_bytes()[:200])  # truncated
    inputs.insert(2, str(tmp_path / "broken.png"))
    argv = ["batch", *inputs, "-k", "6", *FAST, "--palette-format", ".gpl"]
    assert main([*argv, "-o", "one", "-j", "1", "-q"]) == 3
    capsys.readouterr()
    code = main([*argv, "-o", "many", "--scheduler", lc.scheduler_address, "--report"])
    captured = capsys.readouterr()
    assert code == 3, captured.err  # every failure is an unreadable input
    assert "broken.png" in captured.err and "5 ok, 1 failed" in captured.out
    assert f"Dask scheduler at {lc.scheduler_address}" in captured.err
    names = [f"p{i}.{ext}" for i in range(5) for ext in ("png", "gpl")]
    assert visible_files(tmp_path / "one") == sorted(names)
    sidecars = [f"p{i}.json" for i in range(5)]
    assert visible_files(tmp_path / "many") == sorted([*names, *sidecars, "vq-batch-report.json"])
    for name in names:  # byte-identical whatever ran them
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "many" / name).read_bytes()
    report = json.loads((tmp_path / "many" / "vq-batch-report.json").read_text())
    bad = [f for f in report["files"] if not f["ok"]]
    assert [(f["input"], f["code"]) for f in bad] == [(str(tmp_path / "broken.png"), 3)]
    assert "broken.png" in bad[0]["message"]
    assert hidden_files(tmp_path / "many") == []


def test_environment_variable_and_scheduler_file(tmp_path, cluster, monkeypatch, capsys):
    lc, client = cluster
    a = str(photo_like(tmp_path / "a.png", 7))
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", lc.scheduler_address)
    assert main(["batch", a, "-o", "env", "-k", "4", *FAST, "-j", "1"]) == 0
    assert lc.scheduler_address in capsys.readouterr().err  # -j 1 does not override it
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
    # what `dask scheduler --scheduler-file` writes (the address is what clients read)
    info = {"type": "Scheduler", "address": lc.scheduler_address, "id": "test"}
    (tmp_path / "sched.json").write_text(json.dumps(info))
    assert main(["batch", a, "-o", "file", "-k", "4", *FAST, "--scheduler-file", "sched.json"]) == 0
    assert "Dask scheduler of sched.json" in capsys.readouterr().err
    assert (tmp_path / "env" / "a.png").read_bytes() == (tmp_path / "file" / "a.png").read_bytes()
    monkeypatch.setattr("quantize.distributed.CONNECT_TIMEOUT_S", 1.0)
    assert main(["batch", a, "-o", "x", "--scheduler", "tcp://127.0.0.1:9", "-q"]) == 2
    assert "cannot connect to the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_killed_worker_loses_nothing(tmp_path, cluster, capsys):
    """SIGKILL a worker while it quantizes: its task runs again, outputs identical."""
    lc, client = cluster
    inputs = [str(noise(tmp_path / f"n{i}.png", i, 90)) for i in range(6)]
    argv = ["batch", *inputs, "-k", "24", "--n-init", "2", "--max-iter", "40", "-q"]
    pids = {addr: pid for addr, pid in client.run(os.getpid).items()}
    killed: list[int] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = [w for w, keys in client.processing().items() if keys and w in pids]
            if busy:
                time.sleep(0.05)  # into the fit
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(pids[busy[0]])
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    code = main([*argv, "-o", "cluster", "--scheduler", lc.scheduler_address])
    killer.join()
    err = capsys.readouterr().err
    assert code == 0, err
    assert len(killed) == 1
    assert main([*argv, "-o", "here", "-j", "1"]) == 0
    names = [f"n{i}.png" for i in range(6)]
    assert visible_files(tmp_path / "cluster") == names
    for name in names:
        assert (tmp_path / "cluster" / name).read_bytes() == (tmp_path / "here" / name).read_bytes()
    assert hidden_files(tmp_path / "cluster") == []  # no temporary file of the killed writer
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it (for the next tests)


def test_shared_palette_one_fit_for_all_and_an_animation(tmp_path, cluster, capsys):
    lc, _ = cluster
    stills = [str(photo_like(tmp_path / f"s{i}.png", 10 + i)) for i in range(3)]
    frames = []
    for i in range(4):  # a moving yellow square over a drifting background
        a = np.zeros((30, 40, 3), np.uint8)
        a[:] = (40 * i, 90, 200 - 30 * i)
        a[8:20, 4 + 6 * i : 16 + 6 * i] = (250, 240, 10)
        frames.append(Image.fromarray(a))
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=70)
    (tmp_path / "bad.gif").write_text("GIF89a but not really")
    inputs = [*stills, "anim.gif", "bad.gif"]
    argv = ["batch", *inputs, "-k", "8", *FAST, "--shared-palette", "--json"]
    assert main([*argv, "-o", "one", "-j", "1"]) == 3
    doc_one = json.loads(capsys.readouterr().out)
    assert main([*argv, "-o", "many", "--scheduler", lc.scheduler_address]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] == 4 and doc["failed"] == 1
    assert doc["shared_palette"] == doc_one["shared_palette"]
    palette = doc["shared_palette"]["palette"]
    assert len(palette) == 8
    outs = ["s0.png", "s1.png", "s2.png", "anim.png"]
    assert visible_files(tmp_path / "many") == sorted(outs)
    for name in outs:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "many" / name).read_bytes()
        with Image.open(tmp_path / "many" / name) as im:
            entries = np.asarray(im.getpalette()).reshape(-1, 3)
            used = {"#{:02x}{:02x}{:02x}".format(*entries[i]) for i in np.unique(np.asarray(im))}
            assert used <= set(palette), name  # every file is drawn with the one palette
    with Image.open(tmp_path / "many" / "anim.png") as im:
        assert im.n_frames == 4 and im.mode == "P"
        first = np.asarray(im.getpalette()).copy()
        for i in range(4):
            im.seek(i)
            assert np.array_equal(np.asarray(im.getpalette()), first)  # no per-frame palette
            rgb = np.asarray(im.convert("RGB")).astype(int)
            square = rgb[8:20, 4 + 6 * i : 16 + 6 * i]
            assert np.abs(square - (250, 240, 10)).max() < 40  # the square moved with the frame
    # the fit equals a fit of one image holding every pixel of the set
    from quantize.histograms import fit_histogram, histogram_of_image, merge_histograms
    from quantize.io.animation import load_animation
    from quantize.pipeline import quantize_image

    pixels = [np.asarray(Image.open(p).convert("RGB")) for p in stills]
    pixels += [f[..., :3] for f in load_animation("anim.gif", max_pixels=10**6).frames]
    column = np.concatenate([p.reshape(-1, 1, 3) for p in pixels])
    same = dict(
        color_space=DEFAULTS["color_space"],
        seed=DEFAULTS["seed"],
        init=DEFAULTS["init"],
        tol=DEFAULTS["tol"],
        n_init=1,
        max_iter=30,
        keep_small_colors=DEFAULTS["keep_small_colors"],
        small_color_distance=DEFAULTS["small_color_distance"],
        small_color_share=DEFAULTS["small_color_share"],
    )
    total = merge_histograms(histogram_of_image(p) for p in pixels)
    assert total.n_pixels == column.shape[0]  # exact sum
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=30, as the batch: not converged
        whole = quantize_image(column, 8, **same)
        gen = fit_histogram(total, 8, **same)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                shared = stop.value
                break
    assert np.array_equal(shared.palette, whole.palette)
    as_hex = ["#{:02x}{:02x}{:02x}".format(*c) for c in shared.palette]
    assert as_hex == palette


def test_skip_existing_resumes(tmp_path, cluster, capsys):
    lc, _ = cluster
    inputs = [str(photo_like(tmp_path / f"r{i}.png", 20 + i)) for i in range(3)]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "r1.png").write_bytes(b"kept")
    argv = ["batch", *inputs, "-o", "out", "-k", "4", *FAST, "--scheduler", lc.scheduler_address]
    assert main([*argv, "--skip-existing", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["ok"], doc["skipped"]) == (2, 1)
    assert (tmp_path / "out" / "r1.png").read_bytes() == b"kept"
    assert visible_files(tmp_path / "out") == ["r0.png", "r1.png", "r2.png"]
    assert main([*argv, "--skip-existing", "--json"]) == 0  # all done: nothing to do
    doc = json.loads(capsys.readouterr().out)
    assert (doc["ok"], doc["skipped"]) == (0, 3)
    assert main([*argv, "-q"]) == 5  # without it: the outputs exist
    assert main([*argv, "--skip-existing", "--force"]) == 2


def test_a_method_registered_at_run_time_reaches_the_workers(tmp_path, cluster, capsys):
    from quantize.cluster.kmeans import KMeans
    from quantize.cluster.registry import MethodSpec, register_method, unregister_method

    lc, _ = cluster
    register_method(
        MethodSpec(
            name="plugin_kmeans",
            label="Plug-in K-means",
            short_label="plug-in K-means",
            description="registered by a test",
            factory=lambda k, seed, o: KMeans(k, seed=seed, **o),
            options=frozenset({"init", "n_init", "max_iter", "tol"}),
            inits={"k-means++": "k-means++"},
        )
    )
    try:
        a = str(photo_like(tmp_path / "a.png", 3))
        argv = ["batch", a, "-k", "4", *FAST, "--method", "plugin_kmeans", "--json"]
        assert main([*argv, "-o", "out", "--scheduler", lc.scheduler_address]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["files"][0]["summary"]["method"] == "plugin_kmeans"
    finally:
        unregister_method("plugin_kmeans")


def test_vq_quantize_never_imports_dask():
    code = "import sys, quantize.cli, quantize.cli.batch; print(sorted(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "'dask'" not in out and "'distributed'" not in out


def big_tiff(path: Path, rows: int = 600, cols: int = 300) -> np.ndarray:
    """A tiled RGBA TIFF with smooth colours, noise and a fully transparent corner."""
    import tifffile

    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:rows, 0:cols]
    rgb = np.stack([x * 255 // cols, y * 255 // rows, (x + y) * 255 // (rows + cols)], -1)
    rgb = np.clip(rgb + rng.integers(-2, 3, rgb.shape), 0, 255)
    alpha = np.full((rows, cols, 1), 255)
    alpha[:40, :30] = 0
    img = np.concatenate([rgb, alpha], -1).astype(np.uint8)
    tifffile.imwrite(path, img, tile=(64, 64), compression="zlib", extrasamples=[2])
    return img


def test_an_image_over_the_pixel_cap_is_done_in_strips(tmp_path, cluster, capsys):
    import tifffile

    from quantize.pipeline import map_to_palette

    lc, _ = cluster
    img = big_tiff(tmp_path / "scan.tif")
    argv = ["batch", "scan.tif", "-k", "12", *FAST, "--max-pixels", "100000", "--strip-mib", ".2"]
    assert main([*argv, "-o", "here", "-j", "1", "--json"]) == 0
    here = json.loads(capsys.readouterr().out)["files"][0]["summary"]
    # 0.2 MiB = 174 rows of 300 RGBA pixels, cut at the 64-row tiles: 128 rows per strip
    assert here["strips"] == 5 and (here["width"], here["height"]) == (300, 600)
    assert main([*argv, "-o", "there", "--scheduler", lc.scheduler_address, "-q"]) == 0
    png = (tmp_path / "here" / "scan.png").read_bytes()
    assert png == (tmp_path / "there" / "scan.png").read_bytes()
    palette = np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in here["palette"]])
    whole = map_to_palette(img, palette.astype(np.uint8), color_space=DEFAULT_SPACE)
    with Image.open(tmp_path / "here" / "scan.png") as im:
        assert im.mode == "P" and im.size == (300, 600)
        idx = np.asarray(im)
        entries = np.asarray(im.getpalette()).reshape(-1, 3)
        assert im.info["transparency"] == 12  # the extra entry is the transparent one
    opaque = img[..., 3] > 0
    assert np.array_equal(idx[opaque], whole.labels[opaque])  # strips = the whole image
    assert (idx[~opaque] == 12).all()
    assert np.array_equal(entries[:12], palette)
    # the same as a tiled palette TIFF
    assert main([*argv, "-o", "tiff", "-j", "1", "-q", "--tiled-tiff"]) == 0
    with tifffile.TiffFile(tmp_path / "tiff" / "scan.tif") as tf:
        page = tf.pages[0]
        assert page.is_tiled and page.photometric == tifffile.PHOTOMETRIC.PALETTE
        labels = page.asarray()
        cmap = page.colormap
    assert np.array_equal(labels[opaque], whole.labels[opaque])
    assert np.array_equal(cmap[:, :12].T // 257, palette)
    assert hidden_files(tmp_path / "tiff") == [] and hidden_files(tmp_path / "there") == []
