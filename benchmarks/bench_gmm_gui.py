"""The app's default Gaussian-mixture run on 1-megapixel photos, against scikit-learn.

Each photo of ``photos.py`` (the Debian wallpapers cached as PNG) is scaled to about one
megapixel (bilinear).  VQ Studio runs what the app runs when the method is switched to
"Gaussian mixture" and nothing else is touched: ``RunParameters(method="gmm")`` with the
method's own init and tolerance (K = 16, OKLab, full covariances, one run, K-means
initialisation, tol 1e-3), through ``quantize_image`` (the distinct colours included).
scikit-learn's ``GaussianMixture(16, covariance_type="full", tol=1e-3)`` (K-means init,
one run) is fitted on every pixel in the same OKLab coordinates, which is what a
scikit-learn user does.  Both report the final mean log-likelihood per pixel.

``--before`` also times the configuration of the issue (three restarts, tol 1e-4,
k-means++ seeds, EM on the points only).

Run::

    PYTHONPATH=. /work/venv/bin/python benchmarks/bench_gmm_gui.py [--runs 3] [--sklearn]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import photos  # noqa: E402


def one_megapixel(name: str) -> np.ndarray:
    photo = next(p for p in photos.PHOTOS if p.name == name)
    with Image.open(photos.png_path(photo)) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = (1_000_000 / (w * h)) ** 0.5
        return np.asarray(im.resize((round(w * s), round(h * s)), Image.BILINEAR))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sklearn", action="store_true", help="also fit scikit-learn")
    parser.add_argument("--before", action="store_true", help="also the issue's configuration")
    parser.add_argument("--space", default=None, help="colour space (default: the app's)")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args(argv)

    from app.model import RunParameters
    from quantize import quantize_image
    from quantize.cluster.gmm import GaussianMixture
    from quantize.cluster.registry import METHODS

    spec = METHODS["gmm"]
    params = RunParameters(method="gmm", init=next(iter(spec.inits)), tol=spec.tol_default())
    if args.space:
        params = replace(params, color_space=args.space)
    options = params.fit_options()
    print(f"app defaults for the mixture: K={params.n_colors}, {params.color_space}, {options}")
    names = args.names or [p.name for p in photos.PHOTOS]
    ours, ratios = [], []
    for name in names:
        img = one_megapixel(name)
        times, lls = [], []
        for seed in range(args.runs):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = quantize_image(
                    img,
                    params.n_colors,
                    method="gmm",
                    color_space=params.color_space,
                    seed=seed,
                    **options,
                )
            times.append(time.perf_counter() - t0)
            lls.append(r.model.lower_bound_)
        med = statistics.median(times)
        ours.append(med)
        line = (
            f"{name:13s} {img.shape[1]}x{img.shape[0]} U={len(r.table.counts):7d}: "
            f"median {med:5.2f} s (runs {', '.join(f'{t:.2f}' for t in times)}), "
            f"{r.n_iter} iterations, log-likelihood {statistics.median(lls):.4f}"
        )
        if args.before:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = GaussianMixture(
                    16, init="k-means++", n_init=3, tol=1e-4, seed=0, grid_cells=False
                )
                from quantize.pipeline import table_points

                model.fit(table_points(r.table, params.color_space), r.table.counts)
            line += f"; before: {time.perf_counter() - t0:.2f} s, ll {model.lower_bound_:.4f}"
        if args.sklearn:
            from sklearn.mixture import GaussianMixture as SkGMM

            from quantize.colorspace import rgb_to_space

            t0 = time.perf_counter()
            pts = rgb_to_space(img.reshape(-1, 3), params.color_space)
            sk = SkGMM(16, covariance_type="full", tol=1e-3, random_state=0).fit(pts)
            t_sk = time.perf_counter() - t0
            ratios.append(t_sk / med)
            line += (
                f"; scikit-learn {t_sk:.2f} s ({sk.n_iter_} it, ll {sk.score(pts):.4f}): "
                f"{t_sk / med:.1f}x"
            )
        print(line, flush=True)
    print(
        f"median over {len(names)} photos: {statistics.median(ours):.2f} s, max {max(ours):.2f} s"
    )
    if ratios:
        print(f"median speed-up against scikit-learn: {statistics.median(ratios):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
