"""``vq batch``: speed-up from 1 to N workers on a batch of real photos, and per-photo cost.

The inputs are made from the cached Debian wallpapers (``benchmarks/photos.py``, 11 photos,
4-8.7 MP): each photo gives two inputs, its left and its right half (distinct pixels, so no
result can be shared between the two), 22 files of 2-4.4 MP in a temporary folder.

Configurations, each a fresh ``python -m quantize batch`` process:

* ``N workers``: a Dask LocalCluster of N single-threaded worker processes, started by this
  script (its start-up time is reported apart) and reached with ``--scheduler``;
* ``vq batch -j N``: the command as a user runs it, its own LocalCluster included;
* ``in-process``: ``-j 1``, the files one after the other in the command's process, no Dask
  (the K-means E step then uses threads on every core).

Runs are interleaved (the machine's load hits every configuration alike) and the outputs of
every run are compared byte for byte with those of the first.

Run::

    PYTHONPATH=. python benchmarks/bench_batch.py --repeat 3 --workers 1 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from photos import PHOTOS, png_path  # noqa: E402


def make_inputs(folder: Path, limit: int | None) -> list[Path]:
    """Write the left and right half of every cached photo; return the files."""
    paths = []
    for photo in PHOTOS:
        src = png_path(photo)
        if not src.is_file():
            continue
        rgb = np.asarray(Image.open(src).convert("RGB"))
        half = rgb.shape[1] // 2
        for side, crop in (("left", rgb[:, :half]), ("right", rgb[:, half:])):
            path = folder / f"{photo.name}-{side}.png"
            Image.fromarray(np.ascontiguousarray(crop)).save(path, compress_level=1)
            paths.append(path)
    return paths[:limit] if limit else paths


def digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
        for p in sorted(folder.iterdir())
        if p.suffix == ".png"
    }


def run(
    inputs: list[Path], out: Path, where: list[str], extra: list[str], client: object = None
) -> tuple[float, float | None]:
    """Run one batch; return (wall seconds, summed task compute seconds on ``client``'s cluster)."""
    argv = [sys.executable, "-m", "quantize", "batch", *map(str, inputs), "-o", str(out)]
    argv += [*where, "-q", "--force", *extra]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    if client is None:
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, env=env)
        return time.perf_counter() - t0, None
    from distributed import get_task_stream

    with get_task_stream(client=client) as stream:
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, env=env)
        elapsed = time.perf_counter() - t0
    compute = sum(
        s["stop"] - s["start"]
        for d in stream.data
        if str(d["key"]).startswith("vq-file")
        for s in d["startstops"]
        if s["action"] == "compute"
    )
    return elapsed, compute


def start_cluster(n: int) -> tuple[object, float]:
    from distributed import LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=50,
        env={"VQ_NUM_THREADS": "1"},
    )
    return cluster, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N inputs")
    parser.add_argument("-k", "--colors", default="16")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    extra = ["-k", args.colors]
    from distributed import Client

    clusters = {}
    clients = {}
    start_s = {}
    for n in args.workers:
        clusters[n], start_s[n] = start_cluster(n)
        clients[n] = Client(clusters[n], set_as_default=False)
    client_of = {f"{n} worker{'s' if n > 1 else ''}": clients[n] for n in args.workers}
    configs: dict[str, list[str]] = {
        f"{n} worker{'s' if n > 1 else ''}": ["--scheduler", clusters[n].scheduler_address]
        for n in args.workers
    }
    top = max(args.workers)
    configs[f"vq batch -j {top}"] = ["-j", str(top)]
    configs["in-process (-j 1)"] = ["-j", "1"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "in").mkdir()
            inputs = make_inputs(root / "in", args.limit)
            if len(inputs) < 2:
                print("no cached photos: run benchmarks/bench_vs_pngquant.py --fetch first")
                return 1
            total_mp = sum(w * h for w, h in (Image.open(p).size for p in inputs)) / 1e6
            reference = None
            times: dict[str, list[float]] = {c: [] for c in configs}
            compute: dict[str, list[float]] = {c: [] for c in client_of}
            identical = True
            for rep in range(args.repeat):
                for name, where in configs.items():
                    out = root / f"out-{len(times[name])}-{name.replace(' ', '_')}"
                    elapsed, busy = run(inputs, out, where, extra, client_of.get(name))
                    times[name].append(elapsed)
                    if busy is not None:
                        compute[name].append(busy)
                    d = digest(out)
                    reference = reference or d
                    identical &= d == reference
                    print(f"run {rep + 1}: {name}: {elapsed:.1f} s", file=sys.stderr)
    finally:
        for cl in clients.values():
            cl.close()
        for c in clusters.values():
            c.close()
    medians = {c: statistics.median(t) for c, t in times.items()}
    base = medians[next(iter(configs))]
    doc = {
        "inputs": len(inputs),
        "megapixels": round(total_mp, 1),
        "k": args.colors,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "cluster_start_s": {str(n): round(t, 2) for n, t in start_s.items()},
        "runs_s": {c: [round(t, 2) for t in ts] for c, ts in times.items()},
        "median_s": {c: round(m, 2) for c, m in medians.items()},
        "per_photo_s": {c: round(m / len(inputs), 3) for c, m in medians.items()},
        "speedup_vs_first": {c: round(base / m, 2) for c, m in medians.items()},
        # seconds the workers spent computing per photo (the cost a cluster multiplies)
        "task_compute_s_per_photo": {
            c: round(statistics.median(t) / len(inputs), 3) for c, t in compute.items() if t
        },
        "outputs_identical": identical,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"{len(inputs)} inputs, {total_mp:.1f} MP in all, K = {args.colors}")
        for c in configs:
            m = medians[c]
            print(
                f"  {c:>20}: median {m:.1f} s ({m / len(inputs):.2f} s per photo), "
                f"speed-up {base / m:.2f}x, runs {times[c]}"
            )
        for c, t in compute.items():
            print(f"  {c:>20}: task compute {statistics.median(t) / len(inputs):.2f} s per photo")
        print(f"  outputs byte-identical across all runs: {identical}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
