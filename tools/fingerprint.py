"""Fingerprint what the engine and the exports produce, to show a refactor changed nothing.

Runs a fixed set of ``vq quantize`` commands in-process (K-means, mini-batch, Gaussian mixture,
the exact 1-D method, each dither, a user palette, a quality target, BIC) on the sample photo,
a crop of it, a grey version and an image with transparency, writing every export kind, and
prints one SHA-256 per output file (the JSON sidecars and summaries without the fields that
change from run to run: elapsed time, library versions, absolute paths).

Usage::

    python tools/fingerprint.py > before.txt     # on the old tree
    python tools/fingerprint.py > after.txt      # on the new tree
    diff before.txt after.txt                    # empty: byte-identical results
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VOLATILE = {"elapsed_s", "versions", "path", "elapsed", "outputs"}


def _scrub(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {
            k: _scrub(v)
            for k, v in doc.items()
            if k not in VOLATILE and not (k == "input" and isinstance(v, str))
        }
    if isinstance(doc, list):
        return [_scrub(v) for v in doc]
    return doc


def _digest(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".json":
        try:
            data = json.dumps(_scrub(json.loads(data)), sort_keys=True).encode()
        except ValueError:
            pass
    return hashlib.sha256(data).hexdigest()[:16]


def _inputs(folder: Path) -> dict[str, Path]:
    sample = Image.open(ROOT / "resources" / "sample-coffee.png").convert("RGB")
    big = sample.resize((1600, 1000), Image.Resampling.BICUBIC)
    crop = sample.crop((100, 50, 300, 200))
    grey = crop.convert("L")
    rgba = np.dstack([np.asarray(crop), np.full(crop.size[::-1], 255, np.uint8)])
    rgba[:40, :60, 3] = 0
    paths = {
        "big": folder / "big.png",
        "crop": folder / "crop.png",
        "grey": folder / "grey.png",
        "rgba": folder / "rgba.png",
    }
    big.save(paths["big"])
    crop.save(paths["crop"])
    grey.save(paths["grey"])
    Image.fromarray(rgba, "RGBA").save(paths["rgba"])
    gpl = folder / "brand.gpl"
    gpl.write_text(
        "GIMP Palette\nName: brand\n#\n 10  20  30 a\n200 180 160 b\n250 250 250 c\n 90 140  60 d\n"
    )
    paths["gpl"] = gpl
    return paths


def _runs(p: dict[str, Path]) -> list[tuple[str, list[str]]]:
    every = [
        a
        for ext in ("gpl", "act", "json", "txt", "css", "png")
        for a in ("--palette", f"{{o}}/pal.{ext}")
    ]
    every += ["--masks", "{o}/masks", "--soft", "{o}/soft", "--report", "{o}/report.json"]
    crop, big = str(p["crop"]), str(p["big"])
    return [
        ("kmeans-big-16", [big, "-k", "16"]),
        ("kmeans-big-64-fs", [big, "-k", "64", "--dither", "fs"]),
        ("kmeans-crop-8-all", [crop, "-k", "8", *every]),
        ("kmeans-crop-8-ordered", [crop, "-k", "8", "--dither", "ordered", "--strength", "0.6"]),
        ("kmeans-crop-rgb-random", [crop, "-k", "12", "--space", "rgb", "--init", "random"]),
        ("minibatch-crop-8", [crop, "-k", "8", "--method", "minibatch", "--space", "lab"]),
        ("gmm-crop-6-all", [crop, "-k", "6", "--method", "gmm", *every]),
        (
            "gmm-crop-diag-fs",
            [crop, "-k", "5", "--method", "gmm", "--covariance", "diag", "--dither", "fs"],
        ),
        ("gmm-crop-tied", [crop, "-k", "4", "--method", "gmm", "--covariance", "tied"]),
        ("gmm-crop-spherical", [crop, "-k", "4", "--method", "gmm", "--covariance", "spherical"]),
        ("optimal1d-grey-all", [str(p["grey"]), "-k", "6", "--method", "optimal1d", *every]),
        ("rgba-8-all", [str(p["rgba"]), "-k", "8", *every]),
        ("palette-crop-fs", [crop, "--use-palette", str(p["gpl"]), "--dither", "fs"]),
        ("init-palette-crop", [crop, "--init-palette", str(p["gpl"])]),
        ("quality-crop-30", [crop, "--quality", "30"]),
        ("bic-crop", [crop, "-k", "auto", "--method", "gmm", "--n-init", "1"]),
    ]


def main() -> int:
    """Print the fingerprint of every run; return 0."""
    from quantize.cli import main as vq

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        p = _inputs(folder)
        for name, argv in _runs(p):
            out = folder / name
            out.mkdir()
            argv = [a.replace("{o}", str(out)) for a in argv]
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                code = vq(["quantize", *argv, "-o", str(out / "image.png"), "--json"])
            summary = _scrub(json.loads(stdout.getvalue())) if code == 0 else None
            text = json.dumps(summary, sort_keys=True).encode()
            print(f"{name} exit={code} summary={hashlib.sha256(text).hexdigest()[:16]}")
            for f in sorted(out.rglob("*")):
                if f.is_file():
                    print(f"  {f.relative_to(out)} {_digest(f)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
