"""VQ Studio vs pngquant/libimagequant on real photos (issue 10, the measurement half).

Photos: the Debian wallpaper photos listed in ``photos.py`` (package, file, kind, licence).
They are not in the repository; fetch and convert them once (needs ``apt-get`` and the
network; ``apt-get update`` first)::

    .venv/bin/python benchmarks/bench_vs_pngquant.py --fetch

Then every part runs from the cache (``~/.cache/vq-bench`` or ``$VQ_BENCH_CACHE``) without
network.  Run from the repository root, with the OpenBLAS overrides unset (the script also
removes them from the environment of every process it times)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python \\
        benchmarks/bench_vs_pngquant.py --part cli exact engine profile

Parts (``--part``, several allowed; default ``cli``):

``cli``
    Whole processes with their defaults, per photo, K (``--ks``, default 16 64 256) and
    dither mode:  ``vq quantize IMG -k K --dither fs -q -o OUT`` vs
    ``pngquant K --output OUT IMG`` (pngquant dithers by default), and
    ``vq quantize IMG -k K -q -o OUT`` vs ``pngquant K --nofs --output OUT IMG``.
    Wall time is the median of ``--repeats`` runs (default 3, the two tools alternate);
    then output bytes, PSNR, SSIM (skimage, channel_axis, data_range 255), mean CIEDE2000
    after a Gaussian blur with sigma 1 px of both images, and a perceptual metric (NVIDIA
    FLIP, package ``flip-evaluator``, mean error at 67 pixels per degree, lower is better;
    ``--perceptual ssimulacra2`` adds SSIMULACRA2, package ``ssimulacra2``, higher is better,
    about 6 s per 4 MP image).  The summary gives, per (K, dither), the median over photos
    of ours/pngquant (bytes, time) and ours - pngquant (the quality measures), and the
    issue's targets 1-3.
``exact``
    Target 4: a 1024 x 1024 centre crop of each photo reduced to 200 colours (Pillow's
    median cut, no dithering) must come back exactly from ``vq ... -k 256`` (with and
    without ``--dither fs``) and from pngquant (with and without ``--nofs``).
``engine``
    Target 5, in one process: ``quantize_image(img, K, method="kmeans", color_space="rgb",
    seed=0, n_init=1, n_seedings=1)`` (one k-means++ seeding, as scikit-learn's ``n_init=1``;
    where the product's palettes try more seedings, K <= 32, their time and PSNR are printed
    too, as "default") vs libimagequant's Python binding (package ``imagequant``, speed 4,
    no dithering) at every K, and vs scikit-learn's ``KMeans(n_init=1)`` fitted on the
    distinct colours weighted by their pixel counts (``--sklearn-input unique``, the default;
    its time includes ``np.unique``) or on all pixels (``--sklearn-input pixels``, as
    ``bench_kmeans.py``) at K <= 64.  Time (median of ``--repeats``) and PSNR.
``profile``
    Where the time of one ``vq quantize IMG -k K --dither fs -q -o OUT`` goes, for each K of
    ``--ks`` (default 256 and 16) on the first photo of ``--photos``: ``python -X importtime``
    (the top-level imports) and cProfile (the main steps and the top functions).

Other options: ``--photos NAME ...`` (default all), ``--json FILE`` (all raw measurements),
``--work DIR`` (where the outputs go; default a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import photos as photo_list  # noqa: E402

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
DITHERS = ("fs", "none")
ENGINE_TARGETS = {16: 15.0, 64: 20.0}


# --------------------------------------------------------------------------- helpers


SNAPSHOT: dict[str, str] = {}  # "path", "commit": the exported engine, when --snapshot
CHILD_CWD: list[Path] = []  # the work folder: never the repository (it would shadow)


def child_env() -> dict[str, str]:
    """This process's environment without the OpenBLAS overrides (they slow numpy).

    Also without ``PYTHONDONTWRITEBYTECODE``: an installed package has its bytecode (pip
    writes it at install time, the bundle carries it); with the variable set and no
    ``__pycache__``, every ``vq`` process compiled the engine's modules from source again
    (0.17-0.19 s, which runs before 1 Dec 2026 paid).  With ``--snapshot`` the exported
    ``quantize`` package comes first on PYTHONPATH (and is byte-compiled once on export).
    """
    drop = {*OPENBLAS_VARS, "PYTHONDONTWRITEBYTECODE"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if SNAPSHOT:
        env["PYTHONPATH"] = os.pathsep.join(
            [SNAPSHOT["path"]] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
    return env


def export_snapshot(rev: str, work: Path) -> None:
    """``git archive REV quantize`` into ``work``: a frozen engine to measure.

    Other people edit the working tree while a benchmark runs for an hour; a half-done edit
    must not break (or change) the runs.  The snapshot shadows the editable install, for the
    processes this script starts (PYTHONPATH) and for the in-process engine part.
    """
    repo = Path(__file__).resolve().parents[1]
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", rev],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dest = work / f"snapshot-{commit}"
    if not (dest / "quantize").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", commit, "quantize"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    # as pip does on install: the runs below time the engine, not Python's compiler
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(dest)], check=True)
    SNAPSHOT.update(path=str(dest), commit=commit)
    sys.path.insert(0, str(dest))
    seen = subprocess.run(
        [sys.executable, "-c", "import quantize; print(quantize.__file__)"],
        env=child_env(),
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not seen.startswith(str(dest)):
        raise SystemExit(f"the snapshot does not shadow the installed engine: {seen}")
    print(f"engine: snapshot of commit {commit} (git archive) in {dest}")
    # numba compiles the error diffusion on its first use in a fresh tree (a few seconds,
    # once; then it loads from the cache beside the snapshot): not in a timed run
    compiled = subprocess.run(
        [
            sys.executable,
            "-c",
            "from quantize.render import compiled_diffusion as c, compiled_diffusion_error as e\n"
            "print('compiled' if c() is not None else 'numpy: ' + e())",
        ],
        env=child_env(),
        cwd=work,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"Floyd-Steinberg: {compiled or 'numpy (older engine)'}")


def median(xs):
    return statistics.median(xs)


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_timed(cmd: list[str], out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one process writing ``out`` (removed first)."""
    out.unlink(missing_ok=True)
    c0 = children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd,
        env=child_env(),
        capture_output=True,
        text=True,
        cwd=CHILD_CWD[0] if CHILD_CWD else None,
    )
    wall = time.perf_counter() - t0
    cpu = children_cpu() - c0
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, cpu


def vq_command(vq: str, img: Path, k: int, dither: str, out: Path) -> list[str]:
    cmd = [vq, "quantize", str(img), "-k", str(k)]
    if dither == "fs":
        cmd += ["--dither", "fs"]
    return cmd + ["-q", "-o", str(out)]


def pngquant_command(pngquant: str, img: Path, k: int, dither: str, out: Path) -> list[str]:
    cmd = [pngquant, str(k)]
    if dither == "none":
        cmd.append("--nofs")
    return cmd + ["--output", str(out), str(img)]


def versions(pngquant: str) -> dict[str, str]:
    info = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        info["pngquant"] = subprocess.run(
            [pngquant, "--version"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        info["pngquant"] = "missing"
    for mod in ("skimage", "sklearn", "flip_evaluator", "imagequant", "ssimulacra2"):
        try:
            from importlib.metadata import version

            name = {
                "skimage": "scikit-image",
                "sklearn": "scikit-learn",
                "flip_evaluator": "flip-evaluator",
            }.get(mod, mod)
            info[mod] = version(name)
        except Exception:  # noqa: BLE001 - optional packages
            info[mod] = "missing"
    try:
        info["commit"] = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parents[1]), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        info["commit"] = "?"
    return info


def environment_lines() -> list[str]:
    lines = []
    for var in OPENBLAS_VARS:
        if var in os.environ:
            lines.append(
                f"note: {var}={os.environ[var]} is set here; it is removed for the "
                "processes this script starts, but the in-process engine part is "
                "slowed: run with env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
            )
    lines.append(
        f"cpus: {os.cpu_count()}; load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    return lines


# --------------------------------------------------------------------------- quality


class Reference:
    """An original photo and what every comparison with it needs, computed once."""

    def __init__(self, rgb: np.ndarray, path: Path):
        self.rgb = rgb
        self.path = path
        self._lab = None
        self._flip = None

    @staticmethod
    def blurred_lab(rgb: np.ndarray) -> np.ndarray:
        from skimage.color import rgb2lab
        from skimage.filters import gaussian

        blurred = gaussian(rgb.astype(np.float64) / 255.0, sigma=1, channel_axis=-1)
        return rgb2lab(blurred)

    @property
    def lab(self) -> np.ndarray:
        if self._lab is None:
            self._lab = self.blurred_lab(self.rgb)
        return self._lab

    @property
    def flip_ref(self) -> np.ndarray:
        if self._flip is None:
            self._flip = self.rgb.astype(np.float32) / 255.0
        return self._flip


def quality(ref: Reference, out_path: Path, perceptual: set[str]) -> dict[str, float]:
    """PSNR, SSIM, blurred mean CIEDE2000 and the perceptual metrics of one output."""
    from skimage.color import deltaE_ciede2000
    from skimage.metrics import structural_similarity

    out = load_rgb(out_path)
    q = {
        "psnr": psnr(ref.rgb, out),
        "ssim": float(structural_similarity(ref.rgb, out, channel_axis=2, data_range=255)),
        "blur_de": float(np.mean(deltaE_ciede2000(ref.lab, Reference.blurred_lab(out)))),
    }
    if "flip" in perceptual:
        import flip_evaluator

        _, mean_err, _ = flip_evaluator.evaluate(
            ref.flip_ref, out.astype(np.float32) / 255.0, "LDR", applyMagma=False
        )
        q["flip"] = float(mean_err)
    if "ssimulacra2" in perceptual:
        from ssimulacra2 import compute_ssimulacra2

        q["ssimulacra2"] = float(compute_ssimulacra2(str(ref.path), str(out_path)))
    return q


# --------------------------------------------------------------------------- part: cli

QUALITY_KEYS = (
    ("psnr", "dPSNR dB", "{:+.3f}", 1),
    ("ssim", "dSSIM", "{:+.4f}", 1),
    ("blur_de", "d blur dE", "{:+.3f}", -1),
    ("flip", "dFLIP", "{:+.4f}", -1),
    ("ssimulacra2", "dSSIMU2", "{:+.2f}", 1),
)


def part_cli(args, selected, work: Path, rows: list[dict]) -> list[dict]:
    print(
        "\n== cli: whole processes with their defaults "
        f"(median of {args.repeats} runs, tools alternating)"
    )
    print(
        f"{'photo':<13} {'K':>3} {'dith':<4} {'tool':<8} {'time s':>7} {'cpu s':>6} "
        f"{'bytes':>9} {'PSNR':>7} {'SSIM':>7} {'blurdE':>7} "
        + " ".join(f"{m:>8}" for m in sorted(args.perceptual))
    )
    for photo in selected:
        img_path = photo_list.png_path(photo)
        ref = Reference(photo_list.load(photo), img_path)
        for k in args.ks:
            for dither in DITHERS:
                outs = {
                    "vq": work / f"{photo.name}-{k}-{dither}-vq.png",
                    "pngquant": work / f"{photo.name}-{k}-{dither}-pq.png",
                }
                cmds = {
                    "vq": vq_command(args.vq, img_path, k, dither, outs["vq"]),
                    "pngquant": pngquant_command(
                        args.pngquant, img_path, k, dither, outs["pngquant"]
                    ),
                }
                times = {"vq": [], "pngquant": []}
                cpus = {"vq": [], "pngquant": []}
                for r in range(args.repeats):
                    order = ("vq", "pngquant") if r % 2 == 0 else ("pngquant", "vq")
                    for tool in order:
                        wall, cpu = run_timed(cmds[tool], outs[tool])
                        times[tool].append(wall)
                        cpus[tool].append(cpu)
                for tool in ("vq", "pngquant"):
                    row = {
                        "photo": photo.name,
                        "k": k,
                        "dither": dither,
                        "tool": tool,
                        "time": median(times[tool]),
                        "times": times[tool],
                        "cpu": median(cpus[tool]),
                        "bytes": outs[tool].stat().st_size,
                        "command": " ".join(cmds[tool]),
                    }
                    row.update(quality(ref, outs[tool], args.perceptual))
                    rows.append(row)
                    print(
                        f"{photo.name:<13} {k:>3} {dither:<4} {tool:<8} {row['time']:7.2f} "
                        f"{row['cpu']:6.2f} {row['bytes']:>9} {row['psnr']:7.3f} "
                        f"{row['ssim']:7.4f} {row['blur_de']:7.3f} "
                        + " ".join(f"{row[m]:8.4f}" for m in sorted(args.perceptual)),
                        flush=True,
                    )
                    if not args.keep_outputs:
                        outs[tool].unlink(missing_ok=True)
    summarize_cli(rows, args)
    return rows


def summarize_cli(rows: list[dict], args) -> None:
    by = {(r["photo"], r["k"], r["dither"], r["tool"]): r for r in rows}
    photos_done = sorted({r["photo"] for r in rows})
    metrics = [m for m in QUALITY_KEYS if m[0] in rows[0]] if rows else []
    print(
        "\n== cli summary: median over photos of ours/pngquant (bytes, time, cpu) and "
        "ours - pngquant (quality)"
    )
    print(
        f"{'K':>3} {'dither':<6} {'n':>2} {'bytes':>6} {'time':>6} {'cpu':>6} "
        + " ".join(f"{label:>10}" for _, label, _, _ in metrics)
    )
    verdicts = []
    for k in args.ks:
        for dither in DITHERS:
            pairs = [
                (by[(p, k, dither, "vq")], by[(p, k, dither, "pngquant")])
                for p in photos_done
                if (p, k, dither, "vq") in by
            ]
            if not pairs:
                continue
            ratio = {key: [o[key] / t[key] for o, t in pairs] for key in ("bytes", "time", "cpu")}
            diff = {key: [o[key] - t[key] for o, t in pairs] for key, _, _, _ in metrics}
            print(
                f"{k:>3} {dither:<6} {len(pairs):>2} {median(ratio['bytes']):6.3f} "
                f"{median(ratio['time']):6.2f} {median(ratio['cpu']):6.2f} "
                + " ".join(f"{fmt.format(median(diff[key])):>10}" for key, _, fmt, _ in metrics)
            )
            n = len(pairs)
            t1 = sum(x <= 1.0 for x in ratio["time"])
            t2 = sum(x <= 1.0 for x in ratio["bytes"])
            t3 = sum(
                ds >= 0 and dd <= 0 for ds, dd in zip(diff["ssim"], diff["blur_de"], strict=True)
            )
            verdicts.append(
                f"K={k:<3} {dither:<4}  1) time <= pngquant: {t1}/{n} photos "
                f"({'holds' if t1 == n else 'NOT met'}); "
                f"2) bytes <= pngquant: {t2}/{n} ({'holds' if t2 == n else 'NOT met'}); "
                f"3) SSIM >= and blurred dE <=: {t3}/{n} ({'holds' if t3 == n else 'NOT met'})"
            )
    print(
        "(bytes/time/cpu: ratio ours/pngquant, below 1 is better for us; quality: ours minus "
        "pngquant; higher is better for PSNR, SSIM, SSIMULACRA2, lower for dE and FLIP)"
    )
    print("\n== issue 10 targets 1-3 (per photo; 'holds' = on every photo)")
    for line in verdicts:
        print(line)


def markdown_cli(rows: list[dict]) -> None:
    """The cli results as the Markdown tables of benchmarks/README.md."""
    by = {(r["photo"], r["k"], r["dither"], r["tool"]): r for r in rows}
    photos = list(dict.fromkeys(r["photo"] for r in rows))
    ks = sorted({r["k"] for r in rows})
    has_flip = bool(rows) and "flip" in rows[0]
    print(
        "| K | dither | bytes ours/pq | time ours/pq | CPU ours/pq | dPSNR dB | dSSIM "
        "| d blurred dE |"
        + (" dFLIP |" if has_flip else "")
        + " 1) time | 2) bytes | 3) SSIM and dE |"
    )
    print("|---" * (11 + has_flip) + "|")
    for k in ks:
        for d in DITHERS:
            pr = [
                (by[(p, k, d, "vq")], by[(p, k, d, "pngquant")])
                for p in photos
                if (p, k, d, "vq") in by and (p, k, d, "pngquant") in by
            ]
            if not pr:
                continue
            n = len(pr)
            rat = {m: [o[m] / t[m] for o, t in pr] for m in ("bytes", "time", "cpu")}
            dif = {
                m: [o[m] - t[m] for o, t in pr]
                for m in ("psnr", "ssim", "blur_de", "flip")
                if m in pr[0][0]
            }
            t1 = sum(x <= 1 for x in rat["time"])
            t2 = sum(x <= 1 for x in rat["bytes"])
            t3 = sum(a >= 0 and b <= 0 for a, b in zip(dif["ssim"], dif["blur_de"], strict=True))
            print(
                f"| {k} | {d} | {median(rat['bytes']):.3f} | {median(rat['time']):.2f} "
                f"| {median(rat['cpu']):.2f} | {median(dif['psnr']):+.2f} "
                f"| {median(dif['ssim']):+.4f} | {median(dif['blur_de']):+.3f} |"
                + (f" {median(dif['flip']):+.4f} |" if has_flip else "")
                + f" {t1}/{n} | {t2}/{n} | {t3}/{n} |"
            )
    print("\nPer photo: bytes ratio / time ratio (ours/pngquant)\n")
    cols = [(k, d) for k in ks for d in DITHERS]
    print("| photo | " + " | ".join(f"K={k} {d}" for k, d in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for p in photos:
        cells = []
        for k, d in cols:
            o, t = by.get((p, k, d, "vq")), by.get((p, k, d, "pngquant"))
            cells.append(
                f"{o['bytes'] / t['bytes']:.2f} / {o['time'] / t['time']:.1f}" if o and t else ""
            )
        print(f"| {p} | " + " | ".join(cells) + " |")


# --------------------------------------------------------------------------- part: exact


def reduced_crop(rgb: np.ndarray, n_colors: int = 200, size: int = 1024) -> np.ndarray:
    """A centre crop of ``rgb`` reduced to at most ``n_colors`` colours (median cut)."""
    h, w = rgb.shape[:2]
    s = min(size, h, w)
    y, x = (h - s) // 2, (w - s) // 2
    crop = Image.fromarray(np.ascontiguousarray(rgb[y : y + s, x : x + s]))
    reduced = crop.quantize(n_colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    return np.asarray(reduced.convert("RGB"))


def part_exact(args, selected, work: Path, rows: list[dict]) -> list[dict]:
    print("\n== exact (target 4): an image with <= K colours must come back exactly")
    k = 256
    for photo in selected:
        small = reduced_crop(photo_list.load(photo))
        n = len(np.unique(small.reshape(-1, 3), axis=0))
        src = work / f"{photo.name}-200.png"
        Image.fromarray(small).save(src)
        for tool in ("vq", "pngquant"):
            for dither in DITHERS:
                out = work / f"{photo.name}-200-{tool}-{dither}.png"
                cmd = (
                    vq_command(args.vq, src, k, dither, out)
                    if tool == "vq"
                    else pngquant_command(args.pngquant, src, k, dither, out)
                )
                run_timed(cmd, out)
                back = load_rgb(out)
                diff = np.any(back != small, axis=2)
                row = {
                    "photo": photo.name,
                    "colours": n,
                    "k": k,
                    "tool": tool,
                    "dither": dither,
                    "exact": bool(not diff.any()),
                    "pixels_changed": int(diff.sum()),
                    "max_abs": int(np.abs(back.astype(int) - small.astype(int)).max()),
                    "command": " ".join(cmd),
                }
                rows.append(row)
                print(
                    f"{photo.name:<13} {n:>4} colours  {tool:<8} {dither:<4} "
                    f"{'EXACT' if row['exact'] else 'changed'}"
                    f"  ({row['pixels_changed']} pixels differ, max |diff| {row['max_abs']})",
                    flush=True,
                )
                out.unlink(missing_ok=True)
        src.unlink(missing_ok=True)
    for tool in ("vq", "pngquant"):
        ok = [r["exact"] for r in rows if r["tool"] == tool]
        print(
            f"target 4 ({tool}): {sum(ok)}/{len(ok)} exact"
            + ("  holds" if all(ok) else "  NOT met")
        )
    return rows


# --------------------------------------------------------------------------- part: engine


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def part_engine(args, selected, rows: list[dict]) -> list[dict]:
    import imagequant
    from sklearn.cluster import KMeans

    from quantize import quantize_image
    from quantize._blas import limit_blas_threads

    limit_blas_threads()  # as `vq` and the app run the engine
    print(
        "\n== engine alone (target 5), in this process; median of "
        f"{args.repeats} runs; scikit-learn on {args.sklearn_input}"
    )

    from quantize.cluster.registry import get_method

    spec = get_method("kmeans")
    # one seeding, as scikit-learn's n_init=1 (snapshots before 3ebd77e have one anyway)
    one = {"n_seedings": 1} if "n_seedings" in spec.options else {}

    def ours(img, k, options=one):
        res = quantize_image(
            img, k, method="kmeans", color_space="rgb", seed=0, n_init=1, **options
        )
        return res.to_image()

    def seedings(k):
        return spec.make(k, 0, {}).n_seedings if one else 1

    def liq(img, k):
        h, w = img.shape[:2]
        rgba = np.dstack([img, np.full((h, w), 255, np.uint8)]).tobytes()
        t0 = time.perf_counter()
        idx, pal = imagequant.quantize_raw_rgba_bytes(rgba, w, h, dithering_level=0.0, max_colors=k)
        t = time.perf_counter() - t0
        pal = np.asarray(pal, np.uint8).reshape(-1, 4)[:, :3]
        return t, pal[np.frombuffer(idx, np.uint8)].reshape(img.shape)

    def sk(img, k):
        pix = img.reshape(-1, 3)
        t0 = time.perf_counter()
        if args.sklearn_input == "unique":
            codes = (
                (pix[:, 0].astype(np.uint32) << 16) | (pix[:, 1].astype(np.uint32) << 8) | pix[:, 2]
            )
            u, inv, counts = np.unique(codes, return_inverse=True, return_counts=True)
            pts = np.stack([(u >> 16) & 255, (u >> 8) & 255, u & 255], axis=1).astype(np.float64)
            km = KMeans(k, n_init=1, random_state=0).fit(pts, sample_weight=counts)
            labels = km.labels_[inv]
        else:
            km = KMeans(k, n_init=1, random_state=0).fit(pix.astype(np.float64))
            labels = km.labels_
        t = time.perf_counter() - t0
        pal = np.clip(np.rint(km.cluster_centers_), 0, 255).astype(np.uint8)
        return t, pal[labels].reshape(img.shape), km.n_iter_ < km.max_iter

    first = True
    for photo in selected:
        img = photo_list.load(photo)
        n_unique = len(
            np.unique(
                (img[..., 0].astype(np.uint32) << 16)
                | (img[..., 1].astype(np.uint32) << 8)
                | img[..., 2]
            )
        )
        if first:  # one-time costs of the first call in a process, on every side
            quantize_image(img, 8, method="kmeans", color_space="rgb", seed=0, n_init=1)
            liq(img, 8)
            KMeans(8, n_init=1, random_state=0, max_iter=3).fit(
                img.reshape(-1, 3)[::97].astype(np.float64)
            )
            first = False
        for k in args.ks:
            row = {
                "photo": photo.name,
                "k": k,
                "pixels": int(img.shape[0] * img.shape[1]),
                "unique": int(n_unique),
            }
            ts = []
            for _ in range(args.repeats):
                t, recon = _timed(lambda k=k, img=img: ours(img, k))
                ts.append(t)
            row.update(ours_time=median(ts), ours_psnr=psnr(img, recon))
            default_line = ""
            if seedings(k) > 1:  # the product's palettes: more seedings
                ts = []
                for _ in range(args.repeats):
                    t, recon = _timed(lambda k=k, img=img: ours(img, k, {}))
                    ts.append(t)
                row.update(default_time=median(ts), default_psnr=psnr(img, recon))
                default_line = (
                    f" | default ({seedings(k)} seedings) {row['default_time']:6.3f} s "
                    f"{row['default_psnr']:7.3f} dB"
                )
            ts = []
            for _ in range(args.repeats):
                t, recon = liq(img, k)
                ts.append(t)
            row.update(liq_time=median(ts), liq_psnr=psnr(img, recon))
            line = (
                f"{photo.name:<13} K={k:<3} ours {row['ours_time']:6.3f} s "
                f"{row['ours_psnr']:7.3f} dB | libimagequant {row['liq_time']:6.3f} s "
                f"{row['liq_psnr']:7.3f} dB (time ratio ours/liq "
                f"{row['ours_time'] / row['liq_time']:5.2f})"
            )
            if k <= args.sklearn_max_k:
                ts = []
                for _ in range(args.repeats):
                    t, recon, conv = sk(img, k)
                    ts.append(t)
                row.update(sk_time=median(ts), sk_psnr=psnr(img, recon), sk_converged=conv)
                row["speedup"] = row["sk_time"] / row["ours_time"]
                line += (
                    f" | sklearn {row['sk_time']:6.2f} s {row['sk_psnr']:7.3f} dB: "
                    f"{row['speedup']:5.1f}x"
                )
            line += default_line
            rows.append(row)
            print(line, flush=True)
    print("\n== engine summary (medians over photos)")
    for k in args.ks:
        rk = [r for r in rows if r["k"] == k]
        if not rk:
            continue
        time_ratio = median([r["ours_time"] / r["liq_time"] for r in rk])
        psnr_diff = median([r["ours_psnr"] - r["liq_psnr"] for r in rk])
        line = (
            f"K={k:<3} ours/libimagequant time {time_ratio:5.2f}, "
            f"PSNR ours - libimagequant {psnr_diff:+.3f} dB"
        )
        if "speedup" in rk[0]:
            sp = [r["speedup"] for r in rk]
            target = ENGINE_TARGETS.get(k)
            line += (
                f"; vs scikit-learn: median {median(sp):.1f}x, min {min(sp):.1f}x, "
                f"PSNR ours - sklearn "
                f"{median([r['ours_psnr'] - r['sk_psnr'] for r in rk]):+.3f} dB"
            )
            if target:
                ok = sum(s >= target for s in sp)
                line += f"; target {target:.0f}x on every photo: {ok}/{len(sp)} " + (
                    "holds" if ok == len(sp) else "NOT met"
                )
        if "default_time" in rk[0]:
            line += (
                f"; default ({seedings(k)} seedings): time "
                f"{median([r['default_time'] / r['ours_time'] for r in rk]):.2f}x one seeding's, "
                f"PSNR {median([r['default_psnr'] - r['ours_psnr'] for r in rk]):+.3f} dB"
            )
            if "speedup" in rk[0]:
                line += (
                    ", vs scikit-learn median "
                    f"{median([r['sk_time'] / r['default_time'] for r in rk]):.1f}x"
                )
        print(line)
    return rows


# --------------------------------------------------------------------------- part: profile

STEP_FUNCTIONS = (
    ("load_image", "read + decode the PNG"),
    ("unique_colors", "distinct colours"),
    ("iter_quantize_image", "fit incl. distinct colours and all restarts"),
    ("render_indexed", "render: map + dithering + PNG encoding"),
    ("greedy_kmeans_plusplus", "k-means++ seeding, one per restart"),
    ("dither_indices", "dithering"),
    ("encode_indexed_png", "PNG encoding (each call)"),
    ("compute_metrics", "metrics"),
    ("ssim", "SSIM"),
    ("delta_e_stats", "CIEDE2000"),
    ("write_outputs", "write outputs"),
)


def part_profile(args, selected, work: Path, rows: list[dict]) -> list[dict]:
    import pstats

    photo = selected[0]
    img_path = photo_list.png_path(photo)
    ks = args.ks if args.ks_given else [256, 16]
    py = sys.executable
    vq_script = shutil.which(args.vq) or args.vq
    with Image.open(img_path) as im:
        size = f"{im.width}x{im.height}"
    for k in ks:
        out = work / f"profile-{k}.png"
        cmd = vq_command(vq_script, img_path, k, "fs", out)
        print(f"\n== profile: {' '.join(['vq'] + cmd[1:])}  ({photo.name}, {size})")
        wall, _ = run_timed(cmd, out)
        print(f"wall time, plain run: {wall:.2f} s")
        # imports
        out.unlink(missing_ok=True)
        proc = subprocess.run(
            [py, "-X", "importtime", *cmd],
            env=child_env(),
            cwd=work,
            capture_output=True,
            text=True,
            check=True,
        )
        top = []
        for line in proc.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
            if m and len(m.group(3)) == 1:  # top level: one space of indentation
                top.append((int(m.group(2)) / 1e6, m.group(4)))
        total = sum(t for t, _ in top)
        print(f"imports: {total:.2f} s in all; top-level imports by cumulative time:")
        for t, name in sorted(top, reverse=True)[:12]:
            print(f"  {t:6.3f} s  {name}")
        # cProfile
        out.unlink(missing_ok=True)
        prof = work / f"profile-{k}.prof"
        subprocess.run(
            [py, "-m", "cProfile", "-o", str(prof), *cmd],
            env=child_env(),
            cwd=work,
            capture_output=True,
            text=True,
            check=True,
        )
        stats = pstats.Stats(str(prof))
        total_t = max(v[3] for v in stats.stats.values())
        print(
            f"cProfile: {total_t:.2f} s in all (profiling adds overhead); main steps "
            "(cumulative s, calls):"
        )
        steps = {}
        for func, label in STEP_FUNCTIONS:
            hits = [
                (key, v)
                for key, v in stats.stats.items()
                if key[2] == func and "quantize" in key[0]
            ]
            if hits:
                cum = sum(v[3] for _, v in hits)
                calls = sum(v[1] for _, v in hits)
                steps[func] = cum
                print(f"  {cum:6.3f} s  {calls:>4}x  {func:<20} {label}")
        fit_calls = [
            (key, v)
            for key, v in stats.stats.items()
            if key[2] in ("fit", "_fit_once", "_lloyd", "_run_one", "_single")
            and "quantize" in key[0]
        ]
        for key, v in sorted(fit_calls, key=lambda kv: -kv[1][3])[:4]:
            print(
                f"  {v[3]:6.3f} s  {v[1]:>4}x  {key[2]:<20} "
                f"{Path(key[0]).parent.name}/{Path(key[0]).name}:{key[1]}"
            )
        print("top functions by own time:")
        own = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:15]
        for key, v in own:
            print(
                f"  {v[2]:6.3f} s own {v[3]:6.3f} s cum {v[1]:>6}x  "
                f"{Path(key[0]).parent.name}/{Path(key[0]).name}:{key[1]}({key[2]})"
            )
        rows.append(
            {
                "photo": photo.name,
                "k": k,
                "wall": wall,
                "imports": total,
                "import_top": sorted(top, reverse=True)[:12],
                "profile_total": total_t,
                "steps": steps,
            }
        )
        out.unlink(missing_ok=True)
    return rows


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--fetch",
        action="store_true",
        help="download and convert the photos (apt-get download), then exit",
    )
    parser.add_argument(
        "--part", nargs="+", choices=["cli", "exact", "engine", "profile"], default=["cli"]
    )
    parser.add_argument(
        "--photos",
        nargs="+",
        default=None,
        help="photo names (default: all); " + ", ".join(p.name for p in photo_list.PHOTOS),
    )
    parser.add_argument(
        "--ks",
        type=int,
        nargs="+",
        default=None,
        help="palette sizes (default 16 64 256; profile: 256 16)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--perceptual", nargs="*", default=["flip"], choices=["flip", "ssimulacra2"]
    )
    parser.add_argument("--sklearn-input", choices=["unique", "pixels"], default="unique")
    parser.add_argument("--sklearn-max-k", type=int, default=64)
    parser.add_argument("--vq", default=str(Path(sys.executable).with_name("vq")))
    parser.add_argument("--pngquant", default="pngquant")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--keep-outputs", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    parser.add_argument("--list", action="store_true", help="print the photo list and exit")
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        metavar="FILE.json",
        help="print the cli results of a --json file as Markdown and exit",
    )
    parser.add_argument(
        "--snapshot",
        nargs="?",
        const="HEAD",
        default=None,
        metavar="REV",
        help="measure the quantize package of commit REV (default HEAD, "
        "exported with git archive) instead of the working tree",
    )
    args = parser.parse_args(argv)
    args.ks_given = args.ks is not None
    args.ks = args.ks or [16, 64, 256]
    args.perceptual = set(args.perceptual)
    selected = photo_list.select(args.photos)

    if args.markdown:
        markdown_cli(json.loads(args.markdown.read_text()).get("cli", []))
        return 0
    if args.list:
        for p in selected:
            print(f"{p.name:<13} {p.package}:{p.path}\n    {p.kind}; {p.licence}; {p.author}")
        return 0
    if args.fetch:
        photo_list.fetch(selected)
        return 0

    info = versions(args.pngquant)
    print("; ".join(f"{k} {v}" for k, v in info.items()))
    print("\n".join(environment_lines()))
    for p in selected:
        with Image.open(photo_list.png_path(p)) as im:
            print(f"photo {p.name}: {im.width}x{im.height} ({p.kind})")
    results = {
        "info": info,
        "args": {k: (sorted(v) if isinstance(v, set) else str(v)) for k, v in vars(args).items()},
    }
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="vq-bench-")
        work = Path(tmp.name)
    else:
        work = args.work.resolve()
        work.mkdir(parents=True, exist_ok=True)
    CHILD_CWD.append(work)
    if args.snapshot:
        export_snapshot(args.snapshot, work)
        info["engine"] = f"snapshot of {SNAPSHOT['commit']}"
        results["info"] = info
    else:
        info["engine"] = "working tree"
    try:
        for part in args.part:
            t0 = time.perf_counter()
            if part == "cli":
                part_cli(args, selected, work, results.setdefault("cli", []))
            elif part == "exact":
                part_exact(args, selected, work, results.setdefault("exact", []))
            elif part == "engine":
                part_engine(args, selected, results.setdefault("engine", []))
            elif part == "profile":
                part_profile(args, selected, work, results.setdefault("profile", []))
            print(f"(part {part}: {time.perf_counter() - t0:.0f} s)", flush=True)
    finally:
        if args.json:
            args.json.write_text(json.dumps(results, indent=1, default=str))
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
