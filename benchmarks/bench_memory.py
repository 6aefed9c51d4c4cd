"""Peak memory of a Gaussian-mixture fit (K=16) on a 24-megapixel photo.

The sample photo is upscaled (bicubic) to 6000 x 4000 and quantized with
``quantize_image(method="gmm", n_colors=16)`` in a fresh subprocess; the parent reads the
child's peak resident set size (``ru_maxrss``) and compares it with the 2 GiB target.  The
child also reports the size of the image itself and of the unique-colour table.

Run::

    .venv/bin/python benchmarks/bench_memory.py
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from _photo import benchmark_photo
from quantize import quantize_image
img = benchmark_photo(int(sys.argv[2]), int(sys.argv[3]))
rss_image = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
res = quantize_image(img, int(sys.argv[4]), method=sys.argv[5])
elapsed = time.perf_counter() - t0
soft = res.responsibility_map(0)
unc = res.uncertainty_map()
print(json.dumps({"pixels": img.shape[0] * img.shape[1], "unique": res.table.n_colors,
                  "rss_after_image_kib": rss_image, "elapsed_s": elapsed,
                  "n_iter": res.n_iter, "map_dtype": str(soft.dtype)}))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--method", default="gmm")
    args = parser.parse_args(argv)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(HERE),
            str(args.width),
            str(args.height),
            str(args.k),
            args.method,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    info = json.loads(out.stdout.strip().splitlines()[-1])
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    peak_gib = peak_kib / 2**20
    print(
        f"photo {args.width}x{args.height} ({info['pixels'] / 1e6:.1f} MP), "
        f"{info['unique']} unique colours, method={args.method}, K={args.k}"
    )
    print(
        f"fit {info['elapsed_s']:.1f} s, {info['n_iter']} iterations; soft maps {info['map_dtype']}"
    )
    print(f"peak RSS after building the photo: {info['rss_after_image_kib'] / 2**20:.3f} GiB")
    print(
        f"peak RSS of the whole run: {peak_gib:.3f} GiB (target < 2 GiB) -> "
        f"{'OK' if peak_gib < 2 else 'OVER'}"
    )
    print(json.dumps({"peak_rss_gib": round(peak_gib, 3), **info}))
    return 0 if peak_gib < 2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
