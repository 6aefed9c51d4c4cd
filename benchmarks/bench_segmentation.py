"""Segmentation of noisy synthetic scenes with known truth: ARI and regions per true region.

Six scenes (seeds 0-5), each 600 x 800 pixels with five colour classes:

- layout: a Voronoi diagram of 10 random sites, each cell given one of the five classes
  (every class used at least twice), so the true regions are convex cells (cells of one class
  that touch form one true region);
- texture: per-pixel Gaussian noise (sigma 24 on 0-255) plus a smooth random texture
  (Gaussian-filtered noise, sigma 6 pixels, standard deviation 6);
- shading: a multiplicative left-to-right and top-to-bottom gradient (+/- 3.6 % and 2.4 %);
- a JPEG round trip at quality 90 (Pillow, 4:2:0 chroma), which blurs the borders.

Without smoothing these give about what the issue measured on its scenes (median ARI
0.98-0.99, tens of connected regions per true region).

For each scene, ``vq quantize SCENE -k 5 --method gmm --masks DIR`` is run twice through the
CLI's own code path (:func:`quantize.cli.main`), without and with ``--smooth --min-region 64``,
and the label map it wrote (``DIR/<scene>.labels.png``) is compared with the truth: adjusted
Rand index (scikit-learn) and connected regions (4-connectivity) per connected true region.
Medians over the six scenes are printed, with the time of each run.

Run::

    PYTHONPATH=. /work/venv/bin/python benchmarks/bench_segmentation.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

CLASS_COLOURS = np.array(
    [[186, 60, 70], [70, 150, 80], [60, 90, 170], [210, 180, 90], [150, 110, 170]], float
)
STRUCTURE = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)


def make_scene(seed: int, height: int = 600, width: int = 800) -> tuple[np.ndarray, np.ndarray]:
    """(image (M, N, 3) uint8 after the JPEG round trip, truth (M, N) int) of one scene."""
    rng = np.random.default_rng(seed)
    n_sites = 10
    sites = rng.uniform([0, 0], [height, width], size=(n_sites, 2))
    classes = np.concatenate([np.arange(5), np.arange(5), rng.integers(0, 5, n_sites - 10)])
    rng.shuffle(classes)
    rows, cols = np.mgrid[0:height, 0:width]
    d2 = (rows[..., None] - sites[:, 0]) ** 2 + (cols[..., None] - sites[:, 1]) ** 2
    truth = classes[d2.argmin(axis=2)]
    img = CLASS_COLOURS[truth]
    texture = ndimage.gaussian_filter(rng.normal(size=(height, width, 3)), 6.0)
    texture *= 6.0 / max(texture.std(), 1e-9)
    img = img + texture + rng.normal(0.0, 24.0, size=img.shape)
    shade = 1.0 + 0.06 * (cols / width - 0.5) * 1.2 + 0.06 * (rows / height - 0.5) * 0.8
    img = img * shade[..., None]
    im = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")
    buf = BytesIO()
    im.save(buf, format="JPEG", quality=90)
    buf.seek(0)
    with Image.open(buf) as back:
        out = np.asarray(back.convert("RGB")).copy()
    return out, truth


def n_regions(labels: np.ndarray) -> int:
    """Connected regions (4-connectivity) of every class together."""
    return int(sum(ndimage.label(labels == c, structure=STRUCTURE)[1] for c in np.unique(labels)))


def evaluate(labels: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import adjusted_rand_score

    ari = float(adjusted_rand_score(truth.ravel(), labels.ravel()))
    return ari, n_regions(labels) / n_regions(truth)


def run_cli(scene_path: Path, out: Path, extra: list[str]) -> tuple[np.ndarray, float]:
    from quantize.cli import main

    t0 = time.perf_counter()
    args = [
        "quantize",
        str(scene_path),
        "-k",
        "5",
        "--method",
        "gmm",
        "--masks",
        str(out),
        "--no-image",
    ]
    code = main([*args, "-q", "--force", *extra])
    elapsed = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"vq quantize failed with exit code {code}")
    with Image.open(out / f"{scene_path.stem}.labels.png") as im:
        return np.asarray(im).astype(np.int64), elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--min-region", type=int, default=64)
    parser.add_argument("--smooth", default=None, help="strength (default: --smooth alone)")
    parser.add_argument("--save", default=None, help="folder to keep the scenes as PNG")
    args = parser.parse_args(argv)
    smooth = ["--smooth"] if args.smooth is None else ["--smooth", args.smooth]
    variants = {
        "colour only": [],
        "--smooth --min-region": [*smooth, "--min-region", str(args.min_region)],
    }
    rows: dict[str, list[tuple[float, float, float]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.save) if args.save else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for seed in range(args.scenes):
            img, truth = make_scene(seed)
            path = folder / f"scene{seed}.png"
            Image.fromarray(img).save(path)
            for name, extra in variants.items():
                labels, elapsed = run_cli(path, Path(tmp) / "masks", extra)
                ari, per_region = evaluate(labels, truth)
                rows[name].append((ari, per_region, elapsed))
                print(
                    f"scene {seed} {name:>22}: ARI {ari:.4f}, "
                    f"{per_region:6.2f} regions per true region, {elapsed:.2f} s"
                )
    print()
    for name, values in rows.items():
        aris, per, secs = zip(*values, strict=True)
        print(
            f"{name:>22}: median ARI {statistics.median(aris):.4f} (min {min(aris):.4f}), "
            f"median {statistics.median(per):.2f} regions per true region (max {max(per):.2f}), "
            f"median {statistics.median(secs):.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
