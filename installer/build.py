"""Build the one-folder desktop bundle of VQ Studio with PyInstaller, then self-check it.

Usage (from the repository root, with the project installed with its ``installer`` extra)::

    python installer/build.py                 # -> installer/dist/vq-studio/
    python installer/build.py --dist DIR      # bundle into DIR/vq-studio/
    python installer/build.py --no-check      # skip running the bundle's --self-test

The bundle holds the app, the engine, Qt, and the resources (sample photo, icon, desktop file);
``vq-studio --self-test`` inside it loads the sample, quantizes it and exits 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NAME = "vq-studio"

# Never loaded by the app (the GUI, the engine, every export, the self-test's window), so
# left out: with them the bundle was 389 MiB on disk (448 MiB before the other packages of the
# shared environment grew), without them it is well under 250 MiB.  Measured by running a
# broad workload (every method, covariance, dither, export kind and reader, the window) and
# listing sys.modules: of scipy only linalg, ndimage and special load; of PySide6 QtCore,
# QtGui, QtWidgets and what pyqtgraph imports (QtOpenGL, QtOpenGLWidgets, QtSvg, QtTest).
# Dask is *not* excluded: `vq batch` and a batch window may import it (then it is bundled).
EXCLUDES = [
    # other GUI toolkits, plotting libraries, notebooks, test and build tools
    "tkinter",
    "matplotlib",
    "PyQt5",
    "PyQt6",
    "PySide2",
    "IPython",
    "pytest",
    "pytest_qt",
    "hypothesis",
    "setuptools",
    "pip",
    "pyqtgraph.opengl",
    "OpenGL",
    # numba and llvmlite (LLVM alone is 160-180 MB): the bundle would be 405 MiB; without
    # them Floyd-Steinberg runs in its numpy form (the same pixels, 3-4 times the time)
    "numba",
    "llvmlite",
    # never called: scikit-learn (benchmarks only), pandas
    "sklearn",
    "pandas",
    "torch",
    # tifffile's zarr interface (aszarr) pulls zarr -> numcodecs (35 MB) and fsspec ->
    # distributed -> bokeh (22 MB) -> networkx; the app reads TIFFs with tifffile.imread
    "zarr",
    "numcodecs",
    "bokeh",
    "networkx",
    "pooch",  # scikit-image's data downloader
    # scikit-image subpackages the app never loads (it uses color, measure.find_contours and
    # what they import: _shared, util, exposure); about 15 MB
    "skimage.filters",
    "skimage.feature",
    "skimage.morphology",
    "skimage.restoration",
    "skimage.transform",
    "skimage.draw",
    "skimage.segmentation",
    "skimage.registration",
    "skimage.graph",
    "skimage.future",
    "skimage.data",
    "skimage.io",
    # scipy subpackages that scikit-image's other modules import but the app never loads
    "scipy.sparse",
    "scipy.optimize",
    "scipy.stats",
    "scipy.interpolate",
    "scipy.integrate",
    "scipy.signal",
    "scipy.spatial",
    "scipy.io",
    "scipy.odr",
    "scipy.cluster",
    "scipy.datasets",
    "scipy.differentiate",
    "scipy.fftpack",
    "scipy.misc",
    "scipy.fft",
    # Qt modules no code path needs: pyqtgraph imports QtSvg and QtTest only if they exist
    # (SVG export, its test helpers: none used here); QtOpenGL and QtOpenGLWidgets stay,
    # its PColorMeshItem and OpenGLHelpers import them unconditionally
    "PySide6.QtSvg",
    "PySide6.QtTest",
    "PySide6.QtNetwork",
    "PySide6.QtDBus",
    "PySide6.QtQml",
    "PySide6.QtQuick",
    "PySide6.QtPdf",
    # Pillow's AVIF codec (5 MB; AVIF is not among the formats VQ Studio opens) and Tk glue
    "PIL._avif",
    "PIL.AvifImagePlugin",
    "PIL._imagingtk",
    "PIL.ImageTk",
]

#: Parts of the finished bundle that are removed (paths under the bundle's ``_internal``):
#: Qt's translations of its own dialogs (the app's texts are English; Qt falls back to
#: English, 7 MB); Qt's image-format plugins (images are decoded by Pillow; the icons are
#: PNG, built into Qt); the platform plugins for framebuffers, EGL and VNC and their input
#: plugins (a desktop uses xcb or wayland; the self-test uses offscreen).
PRUNE = [
    "PySide6/Qt/translations",
    "PySide6/Qt/plugins/imageformats",
    "PySide6/Qt/plugins/egldeviceintegrations",
    "PySide6/Qt/plugins/generic",
    "PySide6/Qt/plugins/platforms/libqeglfs.so",
    "PySide6/Qt/plugins/platforms/libqlinuxfb.so",
    "PySide6/Qt/plugins/platforms/libqminimal.so",
    "PySide6/Qt/plugins/platforms/libqminimalegl.so",
    "PySide6/Qt/plugins/platforms/libqvnc.so",
    "PySide6/Qt/plugins/platforms/libqvkkhrdisplay.so",
    "PySide6/Qt/lib/libQt6EglFSDeviceIntegration.so.6",
    "PySide6/Qt/lib/libQt6EglFsKmsSupport.so.6",
]


def build(dist: Path, work: Path) -> Path:
    """Run PyInstaller and return the bundle's executable.

    Parameters
    ----------
    dist : Path
        Folder that receives ``vq-studio/``.
    work : Path
        PyInstaller's scratch folder.

    Returns
    -------
    exe : Path
        Path of the bundled ``vq-studio`` executable.
    """
    sep = os.pathsep
    resources = ROOT / "resources"
    data = [
        f"{resources / name}{sep}vq_resources"
        for name in (
            "sample-coffee.png",
            "vq-studio.png",
            "vq-studio.ico",
            "vq-studio.desktop",
            "LICENSES.md",
            "__init__.py",
        )
    ]
    args = [
        sys.executable,
        "-m",
        "PyInstaller",
        str(HERE / "entry.py"),
        "--name",
        NAME,
        "--onedir",
        "--noconfirm",
        "--clean",
        "--log-level",
        "WARN",
        "--distpath",
        str(dist),
        "--workpath",
        str(work),
        "--specpath",
        str(work),
        "--paths",
        str(ROOT),
        "--collect-submodules",
        "quantize",
        "--collect-submodules",
        "app",
        "--hidden-import",
        "vq_resources",
        # pyqtgraph imports these with importlib (invisible to the analysis)
        "--hidden-import",
        "PySide6.QtOpenGL",
        "--hidden-import",
        "PySide6.QtOpenGLWidgets",
    ]
    if sys.platform != "linux":  # Linux executables carry no icon; the .desktop file names it
        args += ["--windowed", "--icon", str(resources / "vq-studio.ico")]
    for item in data:
        args += ["--add-data", item]
    for mod in EXCLUDES:
        args += ["--exclude-module", mod]
    _warn_missing_x11_libraries()
    subprocess.run(args, check=True, cwd=ROOT)
    exe = dist / NAME / (NAME + (".exe" if sys.platform == "win32" else ""))
    if not exe.is_file():
        raise SystemExit(f"PyInstaller finished but {exe} is missing")
    prune(exe.parent)
    strip_symbols(exe.parent)
    return exe


def prune(bundle: Path) -> list[Path]:
    """Remove the :data:`PRUNE` parts (and links to them) from a built bundle.

    Parameters
    ----------
    bundle : Path
        The bundle's folder (``dist/vq-studio``).

    Returns
    -------
    removed : list of Path
    """
    removed = []
    for part in PRUNE:
        for found in bundle.rglob(Path(part).name):
            if not found.as_posix().endswith(part):
                continue
            if found.is_dir() and not found.is_symlink():
                shutil.rmtree(found)
            else:
                found.unlink()
            removed.append(found)
    for link in bundle.rglob("*"):  # links left pointing at what was removed
        if link.is_symlink() and not link.exists():
            link.unlink()
    return removed


def _patched_by_auditwheel(path: Path, readelf: str) -> bool:
    """Whether a library was rewritten by auditwheel/patchelf (stripping those breaks them).

    Such files live in a ``<package>.libs`` folder or find their libraries there (an RPATH
    or RUNPATH naming ``.libs``); ``strip`` on them gives "ELF load command address/offset
    not page-aligned" at import (seen with numpy's OpenBLAS).
    """
    if any(part.endswith(".libs") for part in path.parts):
        return True
    dynamic = subprocess.run([readelf, "-d", str(path)], capture_output=True, text=True).stdout
    return any(
        ("RPATH" in line or "RUNPATH" in line) and ".libs" in line for line in dynamic.splitlines()
    )


def strip_symbols(bundle: Path) -> int:
    """Remove the symbol tables of the bundle's shared libraries that can safely lose them.

    Symbols are never needed at run time; libpython alone shrinks from 22 to 5.5 MB.  Files
    rewritten by auditwheel (numpy's, scipy's, Pillow's vendored libraries and the modules
    that load them) are left alone.  Linux only (``strip`` and ``readelf`` from binutils).

    Parameters
    ----------
    bundle : Path

    Returns
    -------
    saved : int
        Bytes saved.
    """
    strip, readelf = shutil.which("strip"), shutil.which("readelf")
    if not sys.platform.startswith("linux") or strip is None or readelf is None:
        return 0
    saved = 0
    for path in sorted(bundle.rglob("*.so*")):
        if path.is_symlink() or not path.is_file() or _patched_by_auditwheel(path, readelf):
            continue
        before = path.stat().st_size
        if subprocess.run([strip, "--strip-unneeded", str(path)], capture_output=True).returncode:
            continue
        saved += before - path.stat().st_size
    return saved


def _warn_missing_x11_libraries() -> None:
    """Say when the bundle will not carry some of the X11 libraries Qt needs.

    PyInstaller copies the libraries of Qt's xcb plugin that this machine has; those it
    lacks (libxcb-icccm4 and libxcb-keysyms1 on a bare Debian 12) must then be installed
    where the bundle runs.
    """
    sys.path.insert(0, str(ROOT))
    from app.platform_check import install_hint, missing_libraries

    missing = missing_libraries()
    if missing:
        print(
            "warning: the bundle will not carry these libraries, which this machine lacks; "
            "install them here before building, or on every machine it runs on:\n"
            + install_hint(missing),
            file=sys.stderr,
        )


def bundle_size(folder: Path) -> int:
    """Bytes the bundle takes on disk, each file once (symbolic links not followed).

    Parameters
    ----------
    folder : Path

    Returns
    -------
    size : int
    """
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def self_check(exe: Path) -> str:
    """Run the bundle's headless self-test and return what it printed.

    Parameters
    ----------
    exe : Path
        The bundled executable.

    Returns
    -------
    output : str
        Standard output of ``vq-studio --self-test``.
    """
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [str(exe), "--self-test"], capture_output=True, text=True, env=env, timeout=300
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"self-test of {exe} failed with exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout


def main(argv: list[str] | None = None) -> int:
    """Build the bundle and run its self-check; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=HERE / "dist", help="output folder")
    parser.add_argument("--work", type=Path, default=HERE / "build", help="scratch folder")
    parser.add_argument("--no-check", action="store_true", help="do not run the self-test")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    exe = build(args.dist.resolve(), args.work.resolve())
    t1 = time.perf_counter()
    size = bundle_size(exe.parent)
    print(f"built {exe} in {t1 - t0:.0f} s ({size / 2**20:.0f} MiB)")
    if not args.no_check:
        out = self_check(exe)
        print(f"self-test passed in {time.perf_counter() - t1:.1f} s: {out.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
