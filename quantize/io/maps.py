"""Per-pixel exports of a result: label map, binary masks, soft maps, all maps as ``.npz``.

Arrays in, bytes out (or streamed into a file); :mod:`quantize.io.export` names and writes
the files.
"""

from __future__ import annotations

import zipfile
from typing import IO, TYPE_CHECKING

import numpy as np
from PIL import Image

from quantize.png import encode_png

if TYPE_CHECKING:  # pragma: no cover
    from quantize.pipeline import QuantizeResult

__all__ = ["gray_png", "label_array", "mask_png", "soft_map", "write_npz_to"]


def gray_png(arr: np.ndarray) -> bytes:
    """Encode a grey image as an 8-bit or (for uint16) 16-bit greyscale PNG.

    Parameters
    ----------
    arr : ndarray of shape (M, N), uint8 or uint16

    Returns
    -------
    png : bytes
    """
    if arr.dtype == np.uint16:
        return encode_png(Image.fromarray(arr))  # mode I;16 -> 16-bit greyscale PNG
    return encode_png(Image.fromarray(arr.astype(np.uint8), "L"))


def label_array(result: QuantizeResult) -> np.ndarray:
    """Return the labels as uint8 (uint16 when K > 256).

    Parameters
    ----------
    result : QuantizeResult

    Returns
    -------
    labels : ndarray of shape (M, N), uint8 or uint16
    """
    labels = np.asarray(result.labels)
    k = len(result.palette)
    return labels.astype(np.uint8 if k <= 256 else np.uint16)


def _opaque(result: QuantizeResult) -> np.ndarray | None:
    opaque = getattr(result, "opaque", None)
    if opaque is None:
        return None
    opaque = np.asarray(opaque, bool)
    return None if bool(opaque.all()) else opaque


def mask_png(result: QuantizeResult, i: int) -> bytes:
    """Encode where palette entry ``i`` is as a 0/255 PNG (transparent pixels 0).

    Parameters
    ----------
    result : QuantizeResult
    i : int
        Palette index.

    Returns
    -------
    png : bytes
    """
    mask = np.asarray(result.labels) == i
    opaque = _opaque(result)
    if opaque is not None:
        mask &= opaque
    return gray_png(np.where(mask, 255, 0).astype(np.uint8))


def soft_map(result: QuantizeResult, k: int) -> np.ndarray:
    """Return component ``k``'s responsibility on 0..65535 (transparent pixels 0).

    Parameters
    ----------
    result : QuantizeResult
    k : int
        Component (palette index).

    Returns
    -------
    soft : ndarray of shape (M, N), uint16
    """
    r = np.asarray(result.responsibility_map(k), np.float64)
    out = np.rint(np.clip(r, 0.0, 1.0) * 65535.0).astype(np.uint16)
    opaque = _opaque(result)
    if opaque is not None:
        out[~opaque] = 0
    return out


def _zip_entry(name: str) -> zipfile.ZipInfo:
    # a fixed timestamp keeps the .npz byte-identical for identical results
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def write_npz_to(result: QuantizeResult, f: IO[bytes]) -> None:
    """Stream every map of ``result`` into ``f`` as a compressed ``.npz``.

    Arrays: ``labels`` (M, N), ``palette`` (K, 3) uint8, ``proportions`` (K,), ``opaque``
    (M, N) bool, ``uncertainty`` (M, N) float32, ``responsibilities`` (K, M, N) float32,
    the last written one component at a time.  Byte-identical for identical results.

    Parameters
    ----------
    result : QuantizeResult
    f : binary file
        Written sequentially (need not be seekable).
    """
    from numpy.lib import format as npy

    labels = label_array(result)
    m, n = labels.shape
    k = len(result.palette)
    opaque = getattr(result, "opaque", None)
    opaque = np.ones((m, n), bool) if opaque is None else np.asarray(opaque, bool)
    arrays = {
        "labels": labels,
        "palette": np.asarray(result.palette, np.uint8),
        "proportions": np.asarray(result.proportions, np.float64),
        "opaque": opaque,
        "uncertainty": np.asarray(result.uncertainty_map(), np.float32),
    }
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            with zf.open(_zip_entry(key + ".npy"), "w", force_zip64=True) as entry:
                npy.write_array(entry, np.ascontiguousarray(arr), allow_pickle=False)
        # responsibilities (K, M, N) float32, streamed one component at a time
        with zf.open(_zip_entry("responsibilities.npy"), "w", force_zip64=True) as entry:
            header = {
                "descr": npy.dtype_to_descr(np.dtype("<f4")),
                "fortran_order": False,
                "shape": (k, m, n),
            }
            npy.write_array_header_2_0(entry, header)
            for comp in range(k):
                r = np.asarray(result.responsibility_map(comp), "<f4")
                entry.write(np.ascontiguousarray(r).tobytes())
