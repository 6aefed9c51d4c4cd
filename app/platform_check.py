"""Before the window opens on Linux: name the system packages Qt's X11 plugin lacks.

Qt's own message when a library of its ``xcb`` platform plugin is missing ("Could not load
the Qt platform plugin "xcb" … no Qt platform plugin could be initialized") names neither the
library nor the package.  :func:`missing_libraries` asks ``ldd`` which libraries of the
plugin are not found, and :data:`DEBIAN_PACKAGES` names the Debian/Ubuntu package of each.
No Qt is imported here (it would fail first).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = [
    "DEBIAN_PACKAGES",
    "check_display_libraries",
    "install_hint",
    "missing_libraries",
    "parse_ldd",
    "xcb_plugin",
]

#: Libraries of Qt's xcb platform plugin (and the Qt libraries it loads) that a bare desktop
#: may lack, with their Debian/Ubuntu packages (from ``ldd`` of PySide6 6.8-6.11 and
#: ``dpkg -S`` on Debian 12).
DEBIAN_PACKAGES: dict[str, str] = {
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
}


def xcb_plugin() -> Path | None:
    """Return the path of PySide6's xcb platform plugin (also inside the bundle), if any.

    Returns
    -------
    path : Path or None
    """
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        plugin = Path(folder) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if plugin.is_file():
            return plugin
    return None


def parse_ldd(text: str) -> list[str]:
    """Return the libraries ``ldd`` reports as not found.

    Parameters
    ----------
    text : str
        Output of ``ldd FILE``.

    Returns
    -------
    names : list of str
        E.g. ``["libxcb-icccm.so.4"]``, in order, without repeats.
    """
    missing: list[str] = []
    for line in text.splitlines():
        if "=> not found" in line:
            name = line.split("=>")[0].strip()
            if name not in missing:
                missing.append(name)
    return missing


def missing_libraries() -> list[str]:
    """List the libraries Qt's xcb plugin needs and the system lacks (Linux only).

    Returns
    -------
    names : list of str
        Empty when nothing is missing, off Linux, or when ``ldd`` or the plugin is absent.
    """
    plugin = xcb_plugin()
    ldd = shutil.which("ldd")
    if not sys.platform.startswith("linux") or plugin is None or ldd is None:
        return []
    try:
        proc = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_ldd(proc.stdout)


def install_hint(missing: list[str]) -> str:
    """Say what to install for the missing libraries.

    Parameters
    ----------
    missing : list of str
        From :func:`missing_libraries`.

    Returns
    -------
    text : str
        Names the libraries and the ``apt install`` line (Debian, Ubuntu and derivatives).
    """
    packages = [DEBIAN_PACKAGES[name] for name in missing if name in DEBIAN_PACKAGES]
    unknown = [name for name in missing if name not in DEBIAN_PACKAGES]
    text = (
        "VQ Studio cannot open its window: Qt's X11 support needs "
        + ", ".join(missing)
        + ", which this system lacks."
    )
    if packages:
        text += f"\nOn Debian or Ubuntu install them with:\n  sudo apt install {' '.join(packages)}"
    if unknown:
        text += f"\n(Install the packages that provide {', '.join(unknown)}.)"
    return text


def check_display_libraries() -> str:
    """Return the hint to print before Qt starts on X11, or ``""`` when all is there.

    Only when Qt will use X11: ``QT_QPA_PLATFORM`` unset or ``xcb`` and no Wayland session.

    Returns
    -------
    hint : str
    """
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform not in ("", "xcb") or (not platform and os.environ.get("WAYLAND_DISPLAY")):
        return ""
    missing = missing_libraries()
    return install_hint(missing) if missing else ""
