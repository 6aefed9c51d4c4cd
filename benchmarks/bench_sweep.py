"""``vq sweep`` over K = 2-256 (12 values) against one ``vq quantize -k 256`` run (issue 14).

The requirement: a sweep over 2-256 (about 12 values) on a 4 MP photo takes at most 3x one
K = 256 run.  Both are whole processes with their defaults (K-means in OKLab, no dithering),
timed alternately (the machine is shared and noisy), ``--repeats`` times per photo:

* one run:  ``vq quantize PHOTO -k 256 -o OUT --force`` (it prints its summary, so it
  measures PSNR, SSIM and CIEDE2000 once, as a user sees them);
* the sweep: ``vq sweep PHOTO --ks 2-256 --json`` (every K fitted, rendered, encoded and
  measured; warm starts), and ``--cold`` (every K from scratch) for comparison.

Wall time is the median of the repeats; CPU time (user + system of the process) is given
too, since on a loaded machine the wall time of the two-threaded sweep depends on what else
runs.  Photos: ``benchmarks/photos.py`` (4 MP ones by default)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_sweep.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from photos import png_path, select  # noqa: E402

FOUR_MP = ["summer_1am", "kite", "evening_glow"]


def timed(argv: list[str]) -> tuple[float, float, str]:
    """Run a process; return (wall s, CPU s of the child, stdout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", nargs="*", default=FOUR_MP)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ks", default="2-256")
    parser.add_argument("--no-cold", action="store_true", help="skip the --cold sweeps")
    args = parser.parse_args()
    vq = [sys.executable, "-m", "quantize"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.png")
        for photo in select(args.photos):
            path = str(png_path(photo))
            runs: dict[str, list[tuple[float, float]]] = {"one": [], "sweep": [], "cold": []}
            last = None
            for _ in range(args.repeats):
                w, c, _ = timed([*vq, "quantize", path, "-k", "256", "-o", out, "--force"])
                runs["one"].append((w, c))
                w, c, text = timed([*vq, "sweep", path, "--ks", args.ks, "--json"])
                runs["sweep"].append((w, c))
                last = json.loads(text)
                if not args.no_cold:
                    w, c, _ = timed([*vq, "sweep", path, "--ks", args.ks, "--json", "--cold"])
                    runs["cold"].append((w, c))
            med = {
                k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
                for k, v in runs.items()
                if v
            }
            assert last is not None
            ks = [p["k"] for p in last["points"]]
            row = {
                "photo": photo.name,
                "pixels": last["width"] * last["height"],
                "ks": ks,
                "one_wall": med["one"][0],
                "one_cpu": med["one"][1],
                "sweep_wall": med["sweep"][0],
                "sweep_cpu": med["sweep"][1],
                "cold_wall": med.get("cold", (float("nan"),))[0],
                "wall_ratio": med["sweep"][0] / med["one"][0],
                "cpu_ratio": med["sweep"][1] / med["one"][1],
            }
            rows.append(row)
            print(
                f"{photo.name}: {row['pixels'] / 1e6:.1f} MP, {len(ks)} K ({ks[0]}-{ks[-1]}); "
                f"one K=256 run {row['one_wall']:.2f} s wall / {row['one_cpu']:.2f} s CPU; "
                f"sweep {row['sweep_wall']:.2f} s / {row['sweep_cpu']:.2f} s "
                f"(x{row['wall_ratio']:.2f} wall, x{row['cpu_ratio']:.2f} CPU); "
                f"cold sweep {row['cold_wall']:.2f} s wall",
                flush=True,
            )
    print(
        "median over photos: sweep / one run = "
        f"x{statistics.median(r['wall_ratio'] for r in rows):.2f} wall, "
        f"x{statistics.median(r['cpu_ratio'] for r in rows):.2f} CPU"
    )


if __name__ == "__main__":
    main()
