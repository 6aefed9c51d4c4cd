"""K-means: VQ Studio vs scikit-learn on the same photo, in the same run.

Photo: ``resources/sample-coffee.png`` (600 x 400, CC0) upscaled to 2560 x 1600 with Pillow's
bicubic filter (see ``_photo.py``; no noise added).  scikit-learn's ``KMeans(n_init=1)`` is
fitted on all 4 096 000 pixels (float64 RGB, what a scikit-learn user does); VQ Studio's
``quantize_image(method="kmeans")`` gets the image (its time includes finding the unique
colours).  Both run to convergence with scikit-learn's default tolerance (1e-4 relative to
the data variance; ``quantize_image``'s own default is the product's 1e-3 since 30 Nov 2026,
so it is passed here) and default k-means++ initialisation, seeds 0, 1, 2, ...  PSNR is
measured on the reconstructed image with each palette rounded to uint8.

Run (unset the OpenBLAS overrides together, for both sides)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_kmeans.py

Options: ``--ks 16 64 256``, ``--runs 3`` (ours and scikit-learn at K <= 64),
``--sklearn-runs-large 1`` (scikit-learn at K > 64 takes over a minute per run),
``--warmup 1`` (untimed calls of each engine on the photo before anything is timed: the
first call in a process pays one-time costs, e.g. page-faulting VQ Studio's 80 MB colour
tables, about 0.3 s on this machine, or starting thread pools; 0 times the cold start too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import time  # noqa: E402

from _photo import benchmark_photo, environment_note, median, psnr  # noqa: E402


def timed(fn):
    """Wall and CPU (all threads of this process) seconds of fn(), and its result."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


TARGETS = {16: 15.0, 64: 20.0, 256: 30.0}
TOL = 1e-4  # scikit-learn's default, for both sides


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sklearn-runs-large", type=int, default=1)
    parser.add_argument("--width", type=int, default=2560)
    parser.add_argument("--height", type=int, default=1600)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args(argv)

    from sklearn.cluster import KMeans as SkKMeans

    from quantize import quantize_image

    print(environment_note())
    img = benchmark_photo(args.width, args.height)
    pixels = img.reshape(-1, 3).astype(np.float64)
    print(f"photo: {img.shape[1]}x{img.shape[0]} = {pixels.shape[0]} pixels")
    for _ in range(args.warmup):  # one-time costs of the first call, on both sides
        t_ours, _, _ = timed(lambda: quantize_image(img, 8, method="kmeans", seed=0, tol=TOL))
        t_sk, _, _ = timed(lambda: SkKMeans(8, n_init=1, random_state=0, max_iter=5).fit(pixels))
        print(f"warm-up (untimed): ours {t_ours:.3f} s, sklearn 5 iterations {t_sk:.3f} s")
    rows = []
    for K in args.ks:
        ours_t, ours_p, sk_t, sk_p, ours_c, sk_c = [], [], [], [], [], []
        sk_runs = args.runs if K <= 64 else args.sklearn_runs_large
        for seed in range(args.runs):
            t, c, res = timed(
                lambda s=seed, k=K: quantize_image(img, k, method="kmeans", seed=s, tol=TOL)
            )
            ours_t.append(t)
            ours_c.append(c)
            ours_p.append(psnr(res.to_image(), img))
            state = "converged" if res.converged else "NOT converged"
            print(
                f"  K={K} ours   seed={seed}: {t:7.3f} s (cpu {c:6.2f})  {res.n_iter:3d} it  "
                f"PSNR {ours_p[-1]:.3f} dB  {state}",
                flush=True,
            )
        for seed in range(sk_runs):
            t, c, km = timed(lambda s=seed, k=K: SkKMeans(k, n_init=1, random_state=s).fit(pixels))
            sk_c.append(c)
            pal = np.clip(np.rint(km.cluster_centers_), 0, 255).astype(np.uint8)
            sk_t.append(t)
            sk_p.append(psnr(pal[km.labels_].reshape(img.shape), img))
            state = "converged" if km.n_iter_ < km.max_iter else "NOT converged"
            print(
                f"  K={K} sklearn seed={seed}: {t:7.3f} s (cpu {c:6.2f})  {km.n_iter_:3d} it  "
                f"PSNR {sk_p[-1]:.3f} dB  {state}",
                flush=True,
            )
        rows.append(
            (
                K,
                median(ours_t),
                median(sk_t),
                median(ours_p),
                median(sk_p),
                len(ours_t),
                len(sk_t),
                median(ours_c),
                median(sk_c),
            )
        )
    print()
    print(
        f"{'K':>4} {'ours s':>8} {'sklearn s':>10} {'speed-up':>9} {'target':>7} "
        f"{'PSNR ours':>10} {'PSNR sk':>8} {'dPSNR':>7}  runs(ours/sk)  cpu-s ratio"
    )
    for K, ot, st, op, sp, no, ns, oc, sc in rows:
        print(
            f"{K:>4} {ot:8.3f} {st:10.3f} {st / ot:8.1f}x {TARGETS.get(K, 0):6.0f}x "
            f"{op:10.3f} {sp:8.3f} {op - sp:+7.3f}  {no}/{ns}  {sc / oc:10.1f}x"
        )
    print("(medians; speed-up = sklearn wall time / our wall time in this same run; the last")
    print(" column compares process CPU seconds, which other load on the machine affects less)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
