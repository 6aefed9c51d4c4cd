"""Gaussian mixture (full covariances): VQ Studio vs scikit-learn, same photo, same run.

Photo: ``resources/sample-coffee.png`` upscaled to 2560 x 1600 (bicubic, see ``_photo.py``).
scikit-learn's ``GaussianMixture(covariance_type="full")`` is fitted on all pixels (float64
RGB 0-255); VQ Studio's ``quantize_image(method="gmm")`` on the image (weighted unique
colours), both with their defaults (K-means initialisation, tol 1e-3, reg_covar 1e-6).

Per-iteration time: for VQ Studio the median gap between consecutive EM records of the fit;
for scikit-learn the median time of one ``_e_step`` + ``_m_step`` pair on all pixels (its own
EM iteration, timed from its fitted state so that its K-means initialisation is excluded).
Final quality: mean log-likelihood per pixel (ours: ``model.lower_bound_``; scikit-learn:
``score(pixels)``), both in the same RGB 0-255 units.

Run::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_gmm.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _photo import benchmark_photo, environment_note, median, timed  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--sklearn-iterations", type=int, default=3, help="timed scikit-learn EM iterations"
    )
    parser.add_argument("--width", type=int, default=2560)
    parser.add_argument("--height", type=int, default=1600)
    args = parser.parse_args(argv)

    from sklearn.mixture import GaussianMixture as SkGMM

    from quantize import iter_quantize_image

    print(environment_note())
    img = benchmark_photo(args.width, args.height)
    pixels = img.reshape(-1, 3).astype(np.float64)
    K = args.k
    print(f"photo: {img.shape[1]}x{img.shape[0]} = {pixels.shape[0]} pixels, K={K}, full")

    per_iter, totals, lls = [], [], []
    for seed in range(args.runs):
        gen = iter_quantize_image(img, K, method="gmm", seed=seed)
        stamps = []
        t0 = time.perf_counter()
        while True:
            try:
                rec = next(gen)
            except StopIteration as stop:
                res = stop.value
                break
            if rec.stage == "gmm":
                stamps.append(time.perf_counter())
        totals.append(time.perf_counter() - t0)
        gaps = np.diff(stamps)
        per_iter.append(float(np.median(gaps)) if gaps.size else float("nan"))
        lls.append(res.model.lower_bound_)
        print(
            f"  ours seed={seed}: total {totals[-1]:.3f} s, {res.model.n_iter_} EM it, "
            f"{per_iter[-1] * 1e3:.1f} ms/it, mean log-lik {lls[-1]:.5f}",
            flush=True,
        )

    t_fit, sk = timed(lambda: SkGMM(K, covariance_type="full", random_state=0).fit(pixels))
    sk_ll = float(sk.score(pixels))
    print(
        f"  sklearn fit: {t_fit:.1f} s, {sk.n_iter_} EM it, converged={sk.converged_}, "
        f"mean log-lik {sk_ll:.5f}",
        flush=True,
    )
    sk_iter = []
    for _ in range(args.sklearn_iterations):
        t0 = time.perf_counter()
        _, log_resp = sk._e_step(pixels)
        sk._m_step(pixels, log_resp)
        sk_iter.append(time.perf_counter() - t0)
        print(f"  sklearn EM iteration: {sk_iter[-1]:.3f} s", flush=True)

    ours_it, sk_it = median(per_iter), median(sk_iter)
    print()
    print(
        f"per EM iteration: ours {ours_it * 1e3:.1f} ms, sklearn {sk_it * 1e3:.0f} ms "
        f"-> speed-up {sk_it / ours_it:.0f}x (target 50x)"
    )
    print(
        f"whole fit incl. init: ours {median(totals):.2f} s, sklearn {t_fit:.1f} s "
        f"-> {t_fit / median(totals):.0f}x"
    )
    print(
        f"final mean log-likelihood: ours {median(lls):.5f}, sklearn {sk_ll:.5f}, "
        f"difference {median(lls) - sk_ll:+.5f} nat (target >= -0.01)"
    )
    print(
        f"(medians of {args.runs} runs of ours, {args.sklearn_iterations} sklearn "
        "iterations, 1 sklearn fit)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
