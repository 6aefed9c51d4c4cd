"""Locate the files bundled with VQ Studio (sample photo, icons)."""

from __future__ import annotations

import sys
from pathlib import Path

SAMPLE_IMAGE_NAME = "sample-coffee.png"
ICON_NAME = "vq-studio.png"


def resources_dir() -> Path:
    """Return the folder holding the bundled resources.

    Works for a source checkout, an installed wheel and a PyInstaller bundle.

    Returns
    -------
    path : Path
        The folder containing the sample photo and icons.
    """
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root is not None:
        return Path(frozen_root) / "vq_resources"
    import vq_resources  # the package made from resources/

    return Path(vq_resources.__file__).resolve().parent


def sample_image_path() -> Path:
    """Return the path of the bundled sample photo (CC0, see resources/LICENSES.md).

    Returns
    -------
    path : Path
        Path of ``sample-coffee.png``.
    """
    return resources_dir() / SAMPLE_IMAGE_NAME


def icon_path() -> Path:
    """Return the path of the application icon (PNG).

    Returns
    -------
    path : Path
        Path of ``vq-studio.png``.
    """
    return resources_dir() / ICON_NAME
