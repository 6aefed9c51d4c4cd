"""An image over the pixel cap: per-strip costs and peak memory of ``vq batch`` in strips.

A mosaic of the cached Debian photos (``benchmarks/photos.py``; 512 x 512 tiles cut from
them in turn, so the colours are a photo's) is written as a tiled, uncompressed 8-bit RGB
TIFF of ``--width`` x ``--height`` pixels without ever holding it whole.  Then:

1. per-strip costs, in this process: reading + histogram of one strip, the exact sum of all
   strip histograms, the one fit, mapping one strip, and PNG compression of one strip;
2. end-to-end ``vq batch big.tif -j 1 --max-pixels 1000000`` runs (the cap below the image:
   the strip path; everything in one process, the upper bound of a worker) at several
   ``--strip-mib``, each in a fresh process whose peak resident set size (``ru_maxrss``) is
   read when it ends; with ``--jobs 2`` also a 2-worker run (time only);
3. for comparison, the same image through the ordinary whole-image path (``--max-pixels``
   above it), when it fits the default cap.

Run::

    PYTHONPATH=. python benchmarks/bench_huge.py --width 12000 --height 8000 --strip-mib 16 64
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from photos import PHOTOS, png_path  # noqa: E402

TILE = 512


def write_mosaic(path: Path, width: int, height: int) -> None:
    import tifffile

    sources = [np.asarray(Image.open(png_path(p)).convert("RGB")) for p in PHOTOS]
    sources = [s for s in sources if s.shape[0] >= TILE and s.shape[1] >= TILE]
    rng = np.random.default_rng(0)

    def tiles():
        for ty in range(0, height, TILE):
            for tx in range(0, width, TILE):
                src = sources[(ty // TILE * 7 + tx // TILE) % len(sources)]
                y = int(rng.integers(0, src.shape[0] - TILE + 1))
                x = int(rng.integers(0, src.shape[1] - TILE + 1))
                yield src[y : y + TILE, x : x + TILE]

    tifffile.imwrite(
        path,
        tiles(),
        shape=(height, width, 3),
        dtype=np.uint8,
        tile=(TILE, TILE),
        photometric="rgb",
    )


def per_strip_costs(path: Path, strip_mib: int, k: int) -> dict:
    from quantize.cli import build_parser
    from quantize.cli._shared import fit_task
    from quantize.histograms import merge_histograms
    from quantize.io.huge import map_strip, palette_lut, plan_strips, strip_histogram, tiff_info

    info = tiff_info(path)
    strips = plan_strips(info, strip_mib << 20)
    t0 = time.perf_counter()
    hists = []
    per_hist = []
    for y0, y1 in strips:
        t = time.perf_counter()
        hists.append(strip_histogram(path, y0, y1))
        per_hist.append(time.perf_counter() - t)
    t = time.perf_counter()
    total = None
    for h in hists:
        total = merge_histograms([total, h])
    merge_s = time.perf_counter() - t
    del hists
    args = build_parser().parse_args(["batch", str(path), "-o", "x", "-k", str(k)])
    t = time.perf_counter()
    fit = fit_task((total, vars(args)))
    fit_s = time.perf_counter() - t
    palette = np.asarray(fit["palette"], np.uint8)
    t = time.perf_counter()
    lut = palette_lut(total, palette, args.space)
    lut_s = time.perf_counter() - t
    y0, y1 = strips[0]
    t = time.perf_counter()
    searched, _, _ = map_strip(path, y0, y1, palette, args.space)
    search_s = time.perf_counter() - t
    t = time.perf_counter()
    labels, _, _ = map_strip(path, y0, y1, palette, args.space, lut)
    map_s = time.perf_counter() - t
    assert np.array_equal(labels, searched)  # the table gives the searched labels
    t = time.perf_counter()
    raw = np.empty((labels.shape[0], labels.shape[1] + 1), np.uint8)
    raw[:, 0] = 0
    raw[:, 1:] = labels
    zlib.compressobj(6).compress(raw.tobytes())
    png_s = time.perf_counter() - t
    return {
        "strips": len(strips),
        "rows_per_strip": strips[0][1] - strips[0][0],
        "megapixels_per_strip": round((strips[0][1] - strips[0][0]) * info.width / 1e6, 2),
        "histogram_s_per_strip_median": round(float(np.median(per_hist)), 3),
        "sum_of_histograms_s": round(merge_s, 3),
        "distinct_colours": int(total.n_colors),
        "fit_s": round(fit_s, 2),
        "palette_table_s": round(lut_s, 3),
        "map_s_one_strip_searching_its_colours": round(search_s, 3),
        "map_s_one_strip": round(map_s, 3),
        "png_deflate_s_one_strip": round(png_s, 3),
        "all_in_s": round(time.perf_counter() - t0, 1),
    }


def run_cli(
    path: Path, out: Path, strip_mib: int, jobs: int, k: int, max_pixels: int = 1_000_000
) -> dict:
    code = (
        "import resource, sys, time\n"
        "from quantize.cli import main\n"
        "t = time.perf_counter()\n"
        "rc = main(sys.argv[1:])\n"
        "print(rc, time.perf_counter() - t, "
        "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    # the pixel cap below the image: the strip path, whatever the image's size
    argv = [str(path), "-o", str(out), "--strip-mib", str(strip_mib), "-j", str(jobs)]
    argv += ["--max-pixels", str(max_pixels)]
    argv += ["-k", str(k), "-q", "--force"]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    done = subprocess.run(
        [sys.executable, "-c", code, "batch", *argv],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    rc, elapsed, self_kib, children_kib = done.stdout.split()
    return {
        "strip_mib": strip_mib,
        "jobs": jobs,
        "exit": int(rc),
        "elapsed_s": round(float(elapsed), 1),
        "peak_rss_mib_main": round(int(self_kib) / 1024),
        "peak_rss_mib_largest_worker": round(int(children_kib) / 1024) if jobs > 1 else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=12000)
    parser.add_argument("--height", type=int, default=8000)
    parser.add_argument("--strip-mib", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--jobs", type=int, default=0, help="also one run on N workers")
    parser.add_argument("-k", type=int, default=16)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.tif"
        t = time.perf_counter()
        write_mosaic(path, args.width, args.height)
        doc: dict = {
            "width": args.width,
            "height": args.height,
            "megapixels": round(args.width * args.height / 1e6, 1),
            "tiff_mib": round(path.stat().st_size / 2**20),
            "write_mosaic_s": round(time.perf_counter() - t, 1),
            "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg()[0],
            "baseline_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
        doc["per_strip"] = per_strip_costs(path, max(args.strip_mib), args.k)
        doc["runs"] = [run_cli(path, Path(tmp) / f"out{m}", m, 1, args.k) for m in args.strip_mib]
        if args.jobs > 1:
            doc["runs"].append(
                run_cli(path, Path(tmp) / "outj", max(args.strip_mib), args.jobs, args.k)
            )
        whole = run_cli(path, Path(tmp) / "whole", 64, 1, args.k, max_pixels=10**10)
        doc["whole_image_path"] = whole
        print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
