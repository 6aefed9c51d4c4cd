"""Small distinct colours: do three small saturated marks survive ``vq quantize -k 16``?

Pastes a red disc, a green bar and a yellow square (0.05-0.2 % of the pixels each, with a
little noise, as a photographed sign would have) into real photos (``benchmarks/photos.py``,
the cached PNGs), then runs whole processes with their defaults:

- ``vq quantize IMG -k 16`` of this worktree (small colours kept, the default),
- the same with ``--no-keep-small-colors`` (today's fit),
- ``vq quantize`` of another checkout (``--baseline /work/main``: run with that PYTHONPATH),
- ``pngquant 16`` (``/usr/bin/pngquant``, its defaults: dithered).

For each mark: the mean CIEDE2000 between the marked photo and the output over the mark's
pixels; for each image: PSNR (dB) over all pixels.  ``--plain`` also runs the unmarked
photos, to show what the rule costs where there is nothing to keep.

    python benchmarks/bench_small_colours.py [--photos 6] [--baseline /work/main] [--plain]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos import PHOTOS, png_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MARKS = (
    ("red disc", (213, 43, 30)),
    ("green bar", (20, 170, 60)),
    ("yellow square", (250, 215, 0)),
)
SHARES = (0.0005, 0.001, 0.002)  # share of the pixels of each mark, rotated per photo
NOISE = 2.0  # standard deviation of the noise added to each mark (8-bit levels)


def _mark_masks(shape: tuple[int, int], rng: np.random.Generator, shares) -> list[np.ndarray]:
    """Boolean masks of a disc, a bar (5:1) and a square, placed without overlap."""
    m, n = shape
    total = m * n
    masks: list[np.ndarray] = []
    taken = np.zeros(shape, dtype=bool)
    rows, cols = np.ogrid[:m, :n]
    for kind, share in zip(("disc", "bar", "square"), shares, strict=True):
        area = share * total
        for _ in range(100):
            if kind == "disc":
                r = np.sqrt(area / np.pi)
                h = w = int(2 * r) + 1
            elif kind == "bar":
                h = max(1, int(round(np.sqrt(area / 5))))
                w = int(round(area / h))
            else:
                h = w = int(round(np.sqrt(area)))
            top = int(rng.integers(0, m - h))
            left = int(rng.integers(0, n - w))
            if kind == "disc":
                cy, cx = top + r, left + r
                mask = (rows - cy) ** 2 + (cols - cx) ** 2 <= r * r
            else:
                mask = np.zeros(shape, dtype=bool)
                mask[top : top + h, left : left + w] = True
            if not (mask & taken).any():
                break
        taken |= mask
        masks.append(mask)
    return masks


def marked_photo(rgb: np.ndarray, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The photo with the three marks pasted in, and their masks."""
    rng = np.random.default_rng(seed)
    shares = tuple(np.roll(SHARES, seed % 3))
    masks = _mark_masks(rgb.shape[:2], rng, shares)
    out = rgb.copy()
    for mask, (_, colour) in zip(masks, MARKS, strict=True):
        noise = rng.normal(0.0, NOISE, size=(int(mask.sum()), 3))
        out[mask] = np.clip(np.asarray(colour) + noise, 0, 255).round().astype(np.uint8)
    return out, masks


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / mse) if mse > 0 else float("inf")


def mark_delta_e(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    la = rgb2lab(a[mask][None].astype(np.float64) / 255.0)
    lb = rgb2lab(b[mask][None].astype(np.float64) / 255.0)
    return float(deltaE_ciede2000(la, lb).mean())


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def run_vq(src: Path, out: Path, pythonpath: str, extra: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    cmd = [sys.executable, "-m", "quantize", "quantize", str(src), "-k", "16"]
    t0 = time.perf_counter()
    # cwd: ``python -m`` puts the working folder before PYTHONPATH on sys.path
    subprocess.run([*cmd, *extra, "-o", str(out), "-f", "-q"], env=env, check=True, cwd=out.parent)
    return time.perf_counter() - t0


def run_pngquant(src: Path, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["pngquant", "16", "-f", "-o", str(out), str(src)], check=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=6, help="how many photos (default 6)")
    ap.add_argument("--baseline", default="/work/main", help="checkout of today's vq")
    ap.add_argument("--plain", action="store_true", help="also run the unmarked photos")
    ap.add_argument("--json", help="write every figure to this JSON file")
    ap.add_argument("--vq-args", default="", help="extra options of this worktree's vq")
    ap.add_argument("--only-new", action="store_true", help="run only this worktree's vq")
    args = ap.parse_args()
    tools: dict[str, object] = {
        "vq (keep small colours)": lambda s, o: run_vq(s, o, str(ROOT), args.vq_args.split()),
        "vq --no-keep-small-colors": lambda s, o: run_vq(
            s, o, str(ROOT), ["--no-keep-small-colors"]
        ),
        "vq baseline": lambda s, o: run_vq(s, o, args.baseline, []),
    }
    if args.only_new:
        tools = {k: v for k, v in tools.items() if k in ("vq (keep small colours)", "vq baseline")}
    elif shutil.which("pngquant"):
        tools["pngquant 16"] = run_pngquant
    photos = [p for p in PHOTOS if png_path(p).exists()][: args.photos]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, photo in enumerate(photos):
            rgb = _read_rgb(png_path(photo))
            marked, masks = marked_photo(rgb, seed=i)
            variants = [("marked", marked, masks)]
            if args.plain:
                variants.append(("plain", rgb, []))
            for variant, img, mks in variants:
                src = Path(tmp) / f"{photo.name}-{variant}.png"
                Image.fromarray(img).save(src, compress_level=1)
                for name, run in tools.items():
                    out = Path(tmp) / "out.png"
                    secs = run(src, out)  # type: ignore[operator]
                    q = _read_rgb(out)
                    row = {
                        "photo": photo.name,
                        "variant": variant,
                        "tool": name,
                        "psnr": psnr(img, q),
                        "seconds": secs,
                        "marks": {
                            m[0]: mark_delta_e(img, q, mk)
                            for m, mk in zip(MARKS, mks, strict=False)
                        },
                        "shares": [float(mk.mean()) for mk in mks],
                    }
                    rows.append(row)
                    marks = " ".join(f"{v:5.1f}" for v in row["marks"].values())
                    print(
                        f"{photo.name:12s} {variant:6s} {name:28s} PSNR {row['psnr']:6.2f} dB"
                        f"  {secs:5.2f} s  marks dE00 {marks}",
                        flush=True,
                    )
    print()
    for variant in ("marked", "plain") if args.plain else ("marked",):
        print(f"== {variant} photos: {len(photos)}")
        base = {
            r["photo"]: r["psnr"]
            for r in rows
            if r["variant"] == variant and r["tool"] == "vq baseline"
        }
        for name in tools:
            sel = [r for r in rows if r["variant"] == variant and r["tool"] == name]
            des = [v for r in sel for v in r["marks"].values()]
            kept = sum(v <= 3.0 for v in des)
            dpsnr = [r["psnr"] - base[r["photo"]] for r in sel]
            line = (
                f"{name:28s} median PSNR {np.median([r['psnr'] for r in sel]):6.2f} dB"
                f" (vs baseline median {np.median(dpsnr):+.2f} dB, worst {min(dpsnr):+.2f})"
                f"  median time {np.median([r['seconds'] for r in sel]):5.2f} s"
            )
            if des:
                line += f"  marks within dE00 3: {kept}/{len(des)}, worst {max(des):.1f}"
            print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
