"""Real camera photos for the benchmarks, from Debian's wallpaper packages.

Nothing here is committed to the repository: ``fetch()`` (``bench_vs_pngquant.py --fetch``)
runs ``apt-get download PACKAGE`` into a cache folder, unpacks each package with
``dpkg-deb -x``, keeps its ``/usr/share/doc/PACKAGE/copyright`` next to it and converts each
listed file to an 8-bit RGB PNG (``<cache>/png/<name>.png``).  The benchmarks read only those
PNGs, so they need no network once the cache is filled.

Cache folder: ``$VQ_BENCH_CACHE``, else ``~/.cache/vq-bench``.

Licences were read from each package's ``/usr/share/doc/<package>/copyright`` (Debian 12,
"bookworm"); for ``plasma-workspace-wallpapers`` the wallpaper's own ``metadata.json`` is
quoted too.  Every photo is unmodified apart from the conversion to RGB PNG (an opaque alpha
channel is dropped).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["PHOTOS", "Photo", "cache_dir", "fetch", "load", "png_path", "select"]


@dataclass(frozen=True)
class Photo:
    """One benchmark photo: where it comes from, what kind it is, its licence."""

    name: str  # short name, also the PNG's file name in the cache
    package: str  # Debian package (bookworm)
    path: str  # file inside the package
    kind: str  # sky, foliage, animals, night, colour, landscape, flat graphic
    licence: str  # from the package's copyright file
    author: str


_LOMIRI = "/usr/share/backgrounds/"
_PLASMA = "/usr/share/wallpapers/{}/contents/images/2560x1600.jpg"
_PLASMA_LICENCE = "GPL-2+ (debian/copyright, Files: *); metadata.json: LGPLv3"

PHOTOS: tuple[Photo, ...] = (
    Photo(
        "summer_1am",
        "plasma-workspace-wallpapers",
        _PLASMA.format("summer_1am"),
        "sky: dusk over a lake, long smooth gradients",
        _PLASMA_LICENCE,
        "Risto Saukonpää",
    ),
    Photo(
        "kite",
        "plasma-workspace-wallpapers",
        _PLASMA.format("Kite"),
        "sky: blue sky gradient with clouds",
        _PLASMA_LICENCE,
        "Risto Saukonpää",
    ),
    Photo(
        "picos",
        "lomiri-wallpapers-16.04",
        _LOMIRI + "picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "landscape: mountains, sky and clouds, grass",
        "CC-BY-4.0",
        "Aitzol Berasategi",
    ),
    Photo(
        "path",
        "plasma-workspace-wallpapers",
        _PLASMA.format("Path"),
        "foliage: dark forest path",
        _PLASMA_LICENCE,
        "Risto Saukonpää",
    ),
    Photo(
        "life",
        "lomiri-wallpapers-16.04",
        _LOMIRI + "life_by_Aitzol_Berasategi.jpg",
        "foliage: forest stream, leaves and rocks",
        "CC-BY-4.0",
        "Aitzol Berasategi",
    ),
    Photo(
        "friends",
        "lomiri-wallpapers-16.04",
        _LOMIRI + "friends_by_Aitzol_Berasategi.jpg",
        "animals (no people available): two dogs at a window, portrait orientation",
        "CC-BY-4.0",
        "Aitzol Berasategi",
    ),
    Photo(
        "darkest_hour",
        "plasma-workspace-wallpapers",
        _PLASMA.format("DarkestHour"),
        "night: misty lake at night, dark blues",
        _PLASMA_LICENCE,
        "Risto Saukonpää",
    ),
    Photo(
        "evening_glow",
        "plasma-workspace-wallpapers",
        _PLASMA.format("EveningGlow"),
        "night/dusk: sunset sky over boats, high contrast",
        _PLASMA_LICENCE,
        "Ian Hex",
    ),
    Photo(
        "fig",
        "lomiri-wallpapers-16.04",
        _LOMIRI + "Picture_0B_by_freespace.jpg",
        "colour: saturated red bowl and fig on grey concrete",
        "CC-BY-4.0",
        'Trevor "Freespace"',
    ),
    Photo(
        "city",
        "ukui-wallpapers",
        "/usr/share/backgrounds/city.png",
        "flat graphic: three flat areas, anti-aliased edges (1486 colours)",
        "CC-BY-SA-3.0",
        "Ubuntu Kylin community contributors",
    ),
    Photo(
        "rollpaper",
        "ukui-wallpapers",
        "/usr/share/backgrounds/rollpaper.png",
        "flat graphic: flat shapes with soft shading (4734 colours)",
        "CC-BY-SA-3.0",
        "Ubuntu Kylin community contributors",
    ),
)


def cache_dir() -> Path:
    """The cache folder (``$VQ_BENCH_CACHE`` or ``~/.cache/vq-bench``)."""
    env = os.environ.get("VQ_BENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vq-bench"


def png_path(photo: Photo) -> Path:
    """Where the converted PNG of ``photo`` lives in the cache."""
    return cache_dir() / "png" / f"{photo.name}.png"


def select(names: list[str] | None) -> list[Photo]:
    """The photos called ``names`` (all when None), in the order of :data:`PHOTOS`."""
    if not names:
        return list(PHOTOS)
    known = {p.name: p for p in PHOTOS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown photo(s) {unknown}; known: {sorted(known)}")
    return [p for p in PHOTOS if p.name in names]


def load(photo: Photo) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of ``photo`` from the cache (no network)."""
    path = png_path(photo)
    if not path.exists():
        raise SystemExit(f"{path} is missing: run benchmarks/bench_vs_pngquant.py --fetch first")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _run(cmd: list[str], cwd: Path) -> None:
    print("  $", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def fetch(photos: list[Photo] | None = None, *, force: bool = False) -> None:
    """Download the packages (``apt-get download``), unpack them, convert the photos to PNG.

    Needs Debian's ``apt-get`` and ``dpkg-deb`` and the network (run ``apt-get update``
    once first).  Already converted photos are skipped unless ``force``.
    """
    photos = list(PHOTOS) if photos is None else photos
    root = cache_dir()
    debs, extract, pngs, licences = (root / d for d in ("debs", "extract", "png", "licences"))
    for d in (debs, extract, pngs, licences):
        d.mkdir(parents=True, exist_ok=True)
    todo = [p for p in photos if force or not png_path(p).exists()]
    for package in sorted({p.package for p in todo}):
        target = extract / package
        if not target.exists():
            if not list(debs.glob(f"{package}_*.deb")):
                _run(["apt-get", "download", package], cwd=debs)
            (deb,) = debs.glob(f"{package}_*.deb")
            tmp = extract / f".{package}.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            _run(["dpkg-deb", "-x", str(deb), str(tmp)], cwd=extract)
            tmp.rename(target)
        copyright_file = target / "usr/share/doc" / package / "copyright"
        if copyright_file.exists():
            shutil.copyfile(copyright_file, licences / f"{package}.copyright")
    Image.MAX_IMAGE_PIXELS = None
    for p in todo:
        src = extract / p.package / p.path.lstrip("/")
        with Image.open(src) as im:
            if im.mode in ("RGBA", "LA", "PA") and im.getextrema()[-1][0] < 255:
                raise ValueError(f"{src} has transparent pixels")
            rgb = im.convert("RGB")
            rgb.save(png_path(p), optimize=False, compress_level=6)
            print(
                f"  {p.name}: {rgb.width}x{rgb.height} ({rgb.width * rgb.height / 1e6:.1f} MP)"
                f" <- {p.package}:{p.path}",
                flush=True,
            )
