"""The benchmark photo, shared by the benchmark scripts.

The bundled sample photo ``resources/sample-coffee.png`` (600 x 400, CC0) upscaled with
Pillow's bicubic filter to 2560 x 1600 (4.1 megapixels, about 323 000 distinct colours).
No random noise is added: the photo is the same on every machine.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
from PIL import Image

from quantize.metrics import mse_psnr
from quantize.resources import sample_image_path

WIDTH, HEIGHT = 2560, 1600


def benchmark_photo(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """(height, width, 3) uint8 RGB: the sample photo, bicubic-resized."""
    with Image.open(sample_image_path()) as im:
        return np.asarray(im.convert("RGB").resize((width, height), Image.BICUBIC))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two (M, N, 3) uint8 images, as ``vq`` reports it."""
    return mse_psnr(a, b)[1]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median(xs):
    return statistics.median(xs)


def environment_note() -> str:
    lines = []
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            lines.append(
                f"note: {var}={os.environ[var]} is set (slows numpy's OpenBLAS); for a "
                "benchmark run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ..."
            )
    try:
        from threadpoolctl import threadpool_info

        for info in threadpool_info():
            if info.get("user_api") == "blas":
                lines.append(
                    f"blas: {info.get('internal_api')} {info.get('version')} "
                    f"{info.get('architecture')} threads={info.get('num_threads')}"
                )
    except ImportError:  # pragma: no cover
        pass
    lines.append(f"cpus: {os.cpu_count()}; load average: {os.getloadavg()}")
    return "\n".join(lines)
