"""Load images from files, bytes or arrays into an upright RGB(A) array.

Decoding is done by Pillow through an allow-list of formats (never Ghostscript, never Qt),
with tifffile for 16-bit colour and floating-point TIFFs and imagecodecs (libpng) for
16-bit colour PNGs, interlaced or not (Pillow reduces those to 8 bits).  The declared size
is checked against our own cap *before* any pixel is decoded; Pillow's global settings are
never changed.

Every failure is a :class:`LoadError` whose message names the file and the problem.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import os
import stat
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from quantize.options import DEFAULTS
from quantize.pixels import grey_to_rgb

__all__ = [
    "ALLOWED_FORMATS",
    "CONSTANT_LEVEL",
    "DEFAULT_MAX_PIXELS",
    "LoadError",
    "LoadedImage",
    "apply_orientation",
    "file_size_limit",
    "from_array",
    "load_image",
    "load_image_bytes",
    "require_visible_pixels",
]

#: Pillow format names we let Pillow open (no EPS/PDF/PSD/ICO/...: no Ghostscript ever).
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "TIFF", "WEBP", "BMP", "GIF", "PPM")
#: Default cap on width * height, checked before decoding (the ``vq`` command's default too).
DEFAULT_MAX_PIXELS: int = DEFAULTS["max_pixels"]
#: Receives the declared ``(width, height)`` of an image before its pixels are decoded.
SizeCallback = Callable[[int, int], None]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# magic bytes of formats people rename to .png/.jpg, to say what the file really is
_KNOWN_OTHERS = (
    (b"%PDF", "a PDF document"),
    (b"%!PS", "a PostScript/EPS document"),
    (b"\xc5\xd0\xd3\xc6", "an EPS document"),
    (b"8BPS", "a Photoshop PSD document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x00\x00\x01\x00", "a Windows icon"),
)


class LoadError(Exception):
    """An image could not be loaded; the message reads ``"<file>: <problem>"``.

    Parameters
    ----------
    path : str or Path or None
        The file (or a label such as ``"clipboard"``).
    problem : str
        What is wrong, in words a user understands.
    """

    def __init__(self, path: str | os.PathLike[str] | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        name = self.path if self.path is not None else "<image>"
        super().__init__(f"{name}: {problem}")


@dataclass
class LoadedImage:
    """A decoded image, upright, as RGB or RGBA.

    Attributes
    ----------
    pixels : ndarray of shape (M, N, 3) or (M, N, 4), dtype uint8 or uint16
        Row-major pixels (M rows, N columns), EXIF orientation applied.
    path : Path or None
        Source file, if any.
    format : str
        Container format, e.g. ``"PNG"``; ``"array"`` for :func:`from_array`.
    mode : str
        The original Pillow mode (``"P"``, ``"CMYK"``, ``"I;16"``, ...) or a description such
        as ``"RGB;16"``/``"F"`` for data decoded without Pillow.
    bit_depth : int
        8 or 16: bits per channel of ``pixels``.
    n_frames : int
        Number of frames/pages in the file; only the first is loaded.
    file_size : int
        Size of the file in bytes (0 for arrays).
    has_alpha : bool
        Whether ``pixels`` has an alpha channel (only kept if some pixel is not opaque).
    width, height : int
        ``N`` and ``M``.
    info : dict
        Extra facts: ``source_dtype``, ``icc_converted``, ``orientation``, ``warnings``,
        ``notes`` (documented conversions), ``sha256`` (of the encoded file's bytes, for
        reports: the file need not be read again).
    """

    pixels: np.ndarray
    path: Path | None
    format: str
    mode: str
    bit_depth: int
    n_frames: int
    file_size: int
    has_alpha: bool
    width: int
    height: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Return the file name, or ``"<image>"`` when there is no file."""
        return self.path.name if self.path is not None else "<image>"


# --------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------


def load_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_size: SizeCallback | None = None,
) -> LoadedImage:
    """Load the first frame of an image file as an upright RGB(A) array.

    Parameters
    ----------
    path : str or Path
        Image file: PNG (also APNG, 16-bit), JPEG (also CMYK with ICC profile), TIFF (also
        16-bit, float, multi-page), WebP, BMP, GIF (first frame), PPM/PGM.
    max_pixels : int, optional
        Refuse images whose declared ``width * height`` exceeds this, before decoding.
    on_size : callable, optional
        Called once with the declared ``(width, height)`` (before any EXIF rotation) when
        the header is read and the size accepted, before the pixels are decoded: work that
        only needs the size can start meanwhile.

    Returns
    -------
    image : LoadedImage
        ``pixels`` of shape (M, N, 3) or (M, N, 4), uint8 or uint16.

    Raises
    ------
    LoadError
        Missing, unreadable, empty, truncated, corrupt, unsupported or too large.
    """
    p = Path(path)
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(p)
        if not stat.S_ISREG(st.st_mode):
            raise LoadError(p, "not a regular file")
        if st.st_size > file_size_limit(max_pixels):
            raise LoadError(p, f"file is too large ({st.st_size:,} bytes) for the pixel limit")
        data = p.read_bytes()
    except FileNotFoundError:
        raise LoadError(p, "no such file") from None
    except IsADirectoryError:
        raise LoadError(p, "is a folder, not an image file") from None
    except PermissionError:
        raise LoadError(p, "permission denied") from None
    except OSError as exc:
        raise LoadError(p, f"cannot read file ({exc.strerror or exc})") from None
    return _load(data, p, max_pixels=max_pixels, on_size=on_size)


def file_size_limit(max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
    """Largest encoded size, in bytes, accepted for images within a pixel cap.

    No image within the cap needs more bytes than 16-bit RGBA plus slack; larger inputs are
    refused before they are read in full.

    Parameters
    ----------
    max_pixels : int, optional
        The cap on ``width * height``.

    Returns
    -------
    limit : int
    """
    return max_pixels * 8 + (64 << 20)


def load_image_bytes(
    data: bytes,
    *,
    name: str = "<bytes>",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_size: SizeCallback | None = None,
) -> LoadedImage:
    """Load an encoded image held in memory (e.g. pasted from the clipboard).

    Parameters
    ----------
    data : bytes
        The encoded file content.
    name : str, optional
        Label used in error messages.
    max_pixels : int, optional
        Size cap, as for :func:`load_image`.
    on_size : callable, optional
        As for :func:`load_image`.

    Returns
    -------
    image : LoadedImage
        With ``path`` set to ``None``.

    Raises
    ------
    LoadError
        As for :func:`load_image`.
    """
    loaded = _load(bytes(data), Path(name), max_pixels=max_pixels, on_size=on_size)
    loaded.path = None
    return loaded


def from_array(array: np.ndarray, *, name: str = "<array>") -> LoadedImage:
    """Wrap an in-memory array as a :class:`LoadedImage`, converting it like a file.

    Parameters
    ----------
    array : ndarray of shape (M, N), (M, N, 1), (M, N, 2), (M, N, 3) or (M, N, 4)
        Grey, grey+alpha, RGB or RGBA; uint8, uint16, bool or float in [0, 1].
    name : str, optional
        Label used in error messages.

    Returns
    -------
    image : LoadedImage
        A copy; the input is not modified.

    Raises
    ------
    LoadError
        Unsupported shape or dtype, or non-finite float values.
    """
    arr = np.array(array, copy=True)
    pixels, notes = _normalize_array(arr, name)
    return _finish(pixels, None, "array", f"array:{arr.dtype}", 1, 0, {"notes": notes})


def require_visible_pixels(loaded: LoadedImage, name: str | os.PathLike[str] | None = None) -> None:
    """Refuse an image with no pixel to quantize (every pixel fully transparent).

    Loading such a file succeeds (``vq info`` describes it); quantizing it cannot, so the
    ``vq`` command and the desktop app both refuse it with this one message when it opens.

    Parameters
    ----------
    loaded : LoadedImage
        The image.
    name : str or Path, optional
        The file named in the message; default ``loaded.path``.

    Raises
    ------
    LoadError
        ``"<file>: image is fully transparent: nothing to quantize"``.
    """
    if loaded.has_alpha and not np.any(loaded.pixels[:, :, 3]):
        raise LoadError(
            name if name is not None else loaded.path,
            "image is fully transparent: nothing to quantize",
        )


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to a row-major array, as a viewer would.

    Parameters
    ----------
    pixels : ndarray of shape (M, N, ...)
        Stored pixels.
    orientation : int
        EXIF tag 0x0112; values outside 1-8 are treated as 1.

    Returns
    -------
    upright : ndarray of shape (M, N, ...) or (N, M, ...)
        A view when possible.
    """
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(pixels, -1)
    if orientation == 7:
        return pixels[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(pixels, 1)
    return pixels


# --------------------------------------------------------------------------------------
# implementation
# --------------------------------------------------------------------------------------


def _describe_foreign(data: bytes) -> str:
    for magic, what in _KNOWN_OTHERS:
        if data.startswith(magic):
            return f"not a supported image format (it is {what})"
    head = data[:512]
    if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "not an image (the file contains text)"
    return "not a supported image file (unknown or corrupt content)"


def _load(
    data: bytes, path: Path, *, max_pixels: int, on_size: SizeCallback | None = None
) -> LoadedImage:
    if len(data) == 0:
        raise LoadError(path, "file is empty")
    if on_size is not None:  # once, also when one TIFF reader gives the file to the other
        on_size = functools.cache(on_size)
    with _capture_warnings() as caught, _decoder_logs_muted():
        try:
            loaded = _load_inner(data, path, max_pixels, on_size)
        except (LoadError, MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a decoder choking on hostile bytes is still a bad file
            raise LoadError(path, f"cannot decode image ({type(exc).__name__}: {exc})") from None
    quiet = (DeprecationWarning, Image.DecompressionBombWarning)  # our own cap applies
    messages = [str(w.message) for w in caught if not issubclass(w.category, quiet)]
    if messages:
        loaded.info.setdefault("warnings", []).extend(messages)
    loaded.info["sha256"] = hashlib.sha256(data).hexdigest()
    return loaded


# ---------------------------------------------------------------------------- decoder noise
#
# Decoders report recoverable damage (bad EXIF, oversized tags, Pillow's bomb warning...)
# as warnings and log records.  A load keeps the warnings in ``info["warnings"]`` and keeps
# the log records off stderr, and it must do so on any thread: the desktop app loads on
# worker threads, possibly two at once.  ``warnings.catch_warnings`` cannot be used per load
# there: the warning filters and ``warnings.showwarning`` are process-wide (Python < 3.14), so
# two overlapping loads would each save and restore the other's state, out of order, and
# could leave the process recording warnings for good.  Instead all running loads share one
# capture: the first to start saves the state and installs a recorder, the last to finish
# restores it, and every warning goes to the load running on the thread that raised it
# (warnings of other threads meanwhile go on to the previous ``showwarning``).  Log records
# are filtered the same way, by a filter installed once that looks at the current thread.
# Remaining limit: code on another thread that enters its own ``catch_warnings`` while a load
# runs still races with it; nothing in this package does (the ``vq`` command handles its
# warnings on the one thread that also loads).


class _WarningCapture:
    """Record warnings per loading thread while any load runs (see above)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lists: dict[int, list[warnings.WarningMessage]] = {}
        self._saved: warnings.catch_warnings | None = None
        self._outer: Any = None

    def _show(
        self,
        message: Any,
        category: Any,
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        target = self._lists.get(threading.get_ident())
        if target is None:  # raised by another thread: not ours to keep
            self._outer(message, category, filename, lineno, file, line)
        else:
            target.append(warnings.WarningMessage(message, category, filename, lineno, file, line))

    @contextlib.contextmanager
    def __call__(self) -> Iterator[list[warnings.WarningMessage]]:
        me = threading.get_ident()
        caught: list[warnings.WarningMessage] = []
        with self._lock:
            if me in self._lists:  # nested on one thread: the outer load records for both
                caught = self._lists[me]
                nested = True
            else:
                nested = False
                if not self._lists:
                    self._saved = warnings.catch_warnings()
                    self._saved.__enter__()
                    warnings.simplefilter("always")
                    self._outer = warnings.showwarning
                    warnings.showwarning = self._show
                self._lists[me] = caught
        try:
            yield caught
        finally:
            if not nested:
                with self._lock:
                    del self._lists[me]
                    if not self._lists and self._saved is not None:
                        saved, self._saved = self._saved, None
                        saved.__exit__(None, None, None)


_capture_warnings = _WarningCapture()

_DECODER_LOGGERS = (
    "tifffile",
    "imagecodecs",
    "PIL.Image",
    "PIL.ImageFile",
    "PIL.TiffImagePlugin",
    "PIL.PngImagePlugin",
    "PIL.JpegImagePlugin",
    "PIL.GifImagePlugin",
)
_loading = threading.local()


def _drop_while_loading(record: logging.LogRecord) -> bool:
    """Log filter: below CRITICAL, drop records that a load on this thread provoked."""
    return record.levelno >= logging.CRITICAL or not getattr(_loading, "depth", 0)


for _name in _DECODER_LOGGERS:  # installed once; a no-op on threads that are not loading
    logging.getLogger(_name).addFilter(_drop_while_loading)
del _name


@contextlib.contextmanager
def _decoder_logs_muted() -> Iterator[None]:
    """Keep decoders' log records about a bad file off stderr (the LoadError says it)."""
    _loading.depth = getattr(_loading, "depth", 0) + 1
    try:
        yield
    finally:
        _loading.depth -= 1


def _check_size(
    path: Path, width: int, height: int, max_pixels: int, on_size: SizeCallback | None
) -> None:
    if width <= 0 or height <= 0:
        raise LoadError(path, f"invalid image size {width}x{height}")
    if width * height > max_pixels:
        raise LoadError(
            path,
            f"image is too large: {width}x{height} = {width * height:,} pixels "
            f"(limit {max_pixels:,})",
        )
    if on_size is not None:
        on_size(width, height)


def _load_inner(
    data: bytes, path: Path, max_pixels: int, on_size: SizeCallback | None
) -> LoadedImage:
    if data.startswith(_TIFF_SIGNATURES):
        loaded = _try_tifffile(data, path, max_pixels, on_size)
        if isinstance(loaded, LoadedImage):
            return loaded
        fallback = loaded
    else:
        fallback = None
    try:
        im = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except Image.DecompressionBombError:
        raise LoadError(path, _BOMB) from None
    except UnidentifiedImageError:
        raise LoadError(path, _describe_foreign(data)) from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise LoadError(path, f"corrupt or truncated image ({exc})") from None
    with im:
        width, height = im.size
        _check_size(path, width, height, max_pixels, on_size)
        fmt = im.format or "?"
        is_png = fmt == "PNG" and data.startswith(_PNG_SIGNATURE)
        if is_png:
            _check_png_data_size(data, path, width, height)
        n_frames = int(getattr(im, "n_frames", 1) or 1)
        png16 = _png16_colour_header(data) if is_png else None
        if png16 is not None:  # Pillow would reduce it to 8 bits
            orientation = _read_orientation(im)
            pixels, mode = _read_png16(data, path, png16)
            pixels = apply_orientation(pixels, orientation)
            info16: dict[str, Any] = {
                "orientation": orientation,
                "source_dtype": "uint16",
                "notes": [],
            }
            if im.info.get("icc_profile"):
                info16["notes"].append(_ICC_16_NOTE)
            return _finish(pixels, path, fmt, mode, n_frames, len(data), info16)
        if is_png and n_frames == 1:
            fast = _read_png8(data)
            if fast is not None:  # no metadata that Pillow would act on but a profile
                info8: dict[str, Any] = {"orientation": 1, "notes": [], "source_dtype": "uint8"}
                icc = im.info.get("icc_profile")
                if icc:  # as _pil_to_array: converted unless it is sRGB
                    converted = _rgb_to_srgb(Image.fromarray(fast), icc, info8)
                    if info8.get("icc_converted"):
                        fast = np.asarray(converted)
                return _finish(fast, path, fmt, im.mode, n_frames, len(data), info8)
        try:
            im.seek(0)
            im.load()
        except Image.DecompressionBombError:
            raise LoadError(path, _BOMB) from None
        except (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError) as exc:
            reason = str(exc) or type(exc).__name__
            raise LoadError(path, f"corrupt or truncated image ({reason})") from None
        # only now: getexif() may decode the image (a PNG's eXIf chunk can follow the
        # data), and a decoding failure there must not be swallowed, since Pillow would
        # then consider the half-decoded image loaded
        orientation = _read_orientation(im)
        info: dict[str, Any] = {"orientation": orientation, "notes": []}
        if fallback is not None:
            info["notes"].append(f"read by Pillow, possibly at reduced bit depth ({fallback})")
        mode = im.mode
        pixels = _pil_to_array(im, path, info)
    pixels = apply_orientation(pixels, orientation)
    return _finish(pixels, path, fmt, mode, n_frames, len(data), info)


_BOMB = "image is too large (refused as a decompression bomb)"
_ICC_16_NOTE = "embedded ICC profile not applied to 16-bit/float data (values taken as sRGB)"


def _read_orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # malformed EXIF must never stop a load
        return 1
    return _orientation(value)


def _orientation(value: Any) -> int:
    """Return an EXIF/TIFF orientation tag's value as 1-8 (anything malformed counts as 1)."""
    try:
        value = int(value)
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


def _pil_to_array(im: Image.Image, path: Path, info: dict[str, Any]) -> np.ndarray:
    mode = im.mode
    info["source_dtype"] = "uint8"
    if mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(im, info))
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        info["source_dtype"] = "uint16"
        grey = np.asarray(im).astype(np.uint16)
        return grey_to_rgb(grey[:, :, None])
    if mode in ("I", "F"):
        arr = np.asarray(im)
        info["source_dtype"] = str(arr.dtype)
        grey, notes = _scale_to_uint16(arr, path)
        info["notes"].extend(notes)
        return grey_to_rgb(grey[:, :, None])
    has_trns = "transparency" in im.info
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (has_trns and mode in ("P", "L", "RGB", "1")):
        out = im.convert("RGBA")
    else:
        out = im.convert("RGB")
    if mode in ("RGB", "RGBA", "RGBX") and im.info.get("icc_profile"):
        out = _rgb_to_srgb(out, im.info["icc_profile"], info)
    return np.asarray(out)


def _rgb_to_srgb(im: Image.Image, icc: bytes, info: dict[str, Any]) -> Image.Image:
    """Convert RGB(A) pixels tagged with a non-sRGB ICC profile (Display P3, Adobe RGB...)."""
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        desc = str(src.profile.profile_description or "").strip()
        info["icc_profile"] = desc
        if "srgb" in desc.lower() or src.profile.xcolor_space.strip() != "RGB":
            return im  # already sRGB (or not an RGB profile): keep the values exactly
        dst = ImageCms.createProfile("sRGB")
        rgb = im.convert("RGB") if im.mode != "RGB" else im
        out = ImageCms.profileToProfile(rgb, src, dst, outputMode="RGB")
        if out is None:
            return im
        if im.mode == "RGBA":
            out.putalpha(im.getchannel("A"))
        info["icc_converted"] = True
        return out
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError, AttributeError) as exc:
        info["notes"].append(f"ICC profile unusable ({exc}); colours taken as sRGB")
        return im


def _cmyk_to_rgb(im: Image.Image, info: dict[str, Any]) -> Image.Image:
    icc = im.info.get("icc_profile")
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            out = ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
            if out is not None:
                info["icc_converted"] = True
                return out
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
            info["notes"].append(f"ICC profile unusable ({exc}); naive CMYK conversion used")
    else:
        info["notes"].append("CMYK without ICC profile; naive conversion used")
    info["icc_converted"] = False
    return im.convert("RGB")


#: uint16 value of every sample of a constant image outside the nominal range (mid grey)
CONSTANT_LEVEL = 32768


def _scale_to_uint16(arr: np.ndarray, path: Path) -> tuple[np.ndarray, list[str]]:
    """Map integer or float samples to uint16 without clipping.

    Floats within [0, 1] and integers within [0, 65535] keep their values (floats times
    65535); other ranges are stretched linearly onto [0, 65535], the minimum to 0 and the
    maximum to 65535, with a note.  A constant image outside those ranges has no range to
    stretch: it becomes mid grey (:data:`CONSTANT_LEVEL`), with a note saying so.
    """
    notes: list[str] = []
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise LoadError(path, f"image contains {bad} NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0.0 and hi <= 1.0:
            return np.rint(arr.astype(np.float64) * 65535.0).astype(np.uint16), notes
        if lo == hi:
            notes.append(f"constant float image (every value {lo:g}) shown as mid grey")
            return np.full(arr.shape, CONSTANT_LEVEL, np.uint16), notes
        notes.append(f"float values in [{lo:g}, {hi:g}] rescaled to the full range")
        return _stretch(arr.astype(np.float64), lo, hi), notes
    if arr.dtype.kind in "ui":
        if arr.dtype.itemsize == 1 and arr.dtype.kind == "u":
            return arr.astype(np.uint16) * 257, notes
        lo_int, hi_int = int(arr.min()), int(arr.max())
        if lo_int >= 0 and hi_int <= 65535:
            return arr.astype(np.uint16), notes
        if lo_int == hi_int:
            notes.append(f"constant integer image (every value {lo_int}) shown as mid grey")
            return np.full(arr.shape, CONSTANT_LEVEL, np.uint16), notes
        notes.append(f"integer values in [{lo_int}, {hi_int}] rescaled to 16 bits")
        values = arr.astype(np.float64)
        return _stretch(values, float(values.min()), float(values.max())), notes
    if arr.dtype == np.bool_:
        return arr.astype(np.uint16) * 65535, notes
    raise LoadError(path, f"unsupported sample type {arr.dtype}")


def _stretch(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map finite float64 ``values`` in [lo, hi] (lo < hi) linearly onto uint16 [0, 65535].

    ``hi - lo`` overflows for ranges such as [-1e308, 1e308] (and ``x - lo`` with it), so
    everything is first divided by the largest magnitude: the values then lie in [-1, 1],
    their differences in [0, 2], and nothing can overflow; a range too narrow to tell apart
    after that division (a few ulps) maps to 0 and 65535 by comparison.
    """
    scale = max(abs(lo), abs(hi))
    unit_lo, unit_hi = lo / scale, hi / scale
    span = unit_hi - unit_lo
    if not span > 0.0:
        return np.where(values > lo, np.uint16(65535), np.uint16(0)).astype(np.uint16)
    scaled = (values / scale - unit_lo) / span * 65535.0
    return np.rint(np.clip(scaled, 0.0, 65535.0)).astype(np.uint16)


def _normalize_array(arr: np.ndarray, name: str) -> tuple[np.ndarray, list[str]]:
    """Turn a grey/GA/RGB/RGBA array of any supported dtype into uint8/uint16 RGB(A)."""
    label = Path(name)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise LoadError(label, f"unsupported array shape {arr.shape}")
    notes: list[str] = []
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype not in (np.uint8, np.uint16):
        arr, notes = _scale_to_uint16(arr, label)
    return np.ascontiguousarray(grey_to_rgb(arr)), notes


def _finish(
    pixels: np.ndarray,
    path: Path | None,
    fmt: str,
    mode: str,
    n_frames: int,
    file_size: int,
    info: dict[str, Any],
) -> LoadedImage:
    pixels = np.ascontiguousarray(pixels)
    info.setdefault("notes", [])
    if pixels.shape[2] == 4:
        full = 65535 if pixels.dtype == np.uint16 else 255
        if bool(np.all(pixels[:, :, 3] == full)):
            pixels = np.ascontiguousarray(pixels[:, :, :3])
            info["notes"].append("fully opaque alpha channel dropped")
    bit_depth = 16 if pixels.dtype == np.uint16 else 8
    if bit_depth == 16 and not np.any(pixels % 257):
        # e.g. an 8-bit source that was stored in 16-bit containers: keep it 16-bit anyway,
        # the values are exact; nothing to do but noting it helps `vq info`.
        info["notes"].append("16-bit samples are exact multiples of 257 (8-bit content)")
    return LoadedImage(
        pixels=pixels,
        path=path,
        format=fmt,
        mode=mode,
        bit_depth=bit_depth,
        n_frames=max(int(n_frames), 1),
        file_size=int(file_size),
        has_alpha=pixels.shape[2] == 4,
        width=int(pixels.shape[1]),
        height=int(pixels.shape[0]),
        info=info,
    )


# ---------------------------------------------------------------------------- TIFF


def _try_tifffile(
    data: bytes, path: Path, max_pixels: int, on_size: SizeCallback | None
) -> LoadedImage | str | None:
    """Read 16-bit colour / float / wide-int TIFFs with tifffile.

    Returns None for files Pillow reads without loss (8-bit, palette, CMYK, ...), and a
    reason string when tifffile should have read the file but could not (e.g. a compression
    that needs the optional ``imagecodecs`` package): Pillow then reads it, possibly at 8 bits.
    """
    import tifffile

    wanted = False
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            pages = tif.pages
            if len(pages) == 0:
                raise LoadError(path, "TIFF has no pages")
            page = pages.first
            dtype = np.dtype(page.dtype) if page.dtype is not None else None
            photometric = int(page.photometric)
            if dtype is None or dtype == np.uint8 or dtype == np.bool_:
                return None
            if photometric not in (0, 1, 2):  # MINISWHITE, MINISBLACK, RGB
                return None
            wanted = True
            width, height = int(page.imagewidth), int(page.imagelength)
            _check_size(path, width, height, max_pixels, on_size)
            n_frames = len(pages)
            arr = page.asarray()
            axes = page.axes
            has_icc = 34675 in page.tags  # InterColorProfile
            tag = page.tags.get(274)  # EXIF/TIFF Orientation
            orientation = _orientation(tag.value) if tag is not None else 1
    except LoadError:
        raise
    except Exception as exc:  # tifffile raises many types; Pillow gets a second chance
        if isinstance(exc, (MemoryError, KeyboardInterrupt)):
            raise
        return str(exc) or type(exc).__name__ if wanted else None
    arr = _tiff_to_yxs(arr, axes, path)
    notes: list[str] = []
    samples = arr.shape[2]
    if samples not in (1, 2, 3, 4):
        raise LoadError(path, f"unsupported TIFF with {samples} samples per pixel")
    if arr.dtype != np.uint16:  # also refuses NaN and infinite values
        arr, notes = _scale_to_uint16(arr, path)
    if photometric == 0:  # MINISWHITE: 0 is white
        arr[:, :, :1] = 65535 - arr[:, :, :1]
    pixels, more = _normalize_array(arr, str(path))
    pixels = apply_orientation(pixels, orientation)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[samples] + f";{dtype}"
    info: dict[str, Any] = {
        "orientation": orientation,
        "source_dtype": str(dtype),
        "notes": notes + more,
    }
    if has_icc:
        info["notes"].append(_ICC_16_NOTE)
    return _finish(pixels, path, "TIFF", mode, n_frames, len(data), info)


def _tiff_to_yxs(arr: np.ndarray, axes: str, path: Path) -> np.ndarray:
    axes = axes.upper()
    # drop leading length-1 axes we do not care about
    while arr.ndim > 0 and len(axes) == arr.ndim and axes[0] not in "YXS" and arr.shape[0] == 1:
        arr, axes = arr[0], axes[1:]
    if axes == "YX":
        return arr[:, :, None]
    if axes == "YXS":
        return arr
    if axes == "SYX":
        return np.moveaxis(arr, 0, -1)
    raise LoadError(path, f"unsupported TIFF layout {axes} {arr.shape}")


# ---------------------------------------------------------------------------- PNG 16

# Adam7 passes: (first column, first row, column step, row step)
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
_PNG16_CHANNELS = {2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel
_PNG16_MODES = {2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}


#: Most bytes one byte of deflate data can inflate to: 258 bytes per 2-bit length/distance
#: code pair gives 1032, plus a margin for block headers.
_DEFLATE_MAX_RATIO = 1040
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel


def _png_idat_bytes(data: bytes) -> int:
    """Total length of a PNG's IDAT chunks (the default image's compressed data)."""
    total = 0
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            total += min(length, len(data) - pos - 8)
        elif kind == b"IEND":
            break
        pos += 12 + length
    return total


def _check_png_data_size(data: bytes, path: Path, width: int, height: int) -> None:
    """Refuse a PNG whose compressed data is too short to hold the size it declares.

    A 100-byte file declaring 20000x5000 pixels is truncated (or a decompression bomb
    that was cut): deflate cannot expand one byte to more than about 1032, so this is
    known before a buffer for the whole image is allocated and filled with nothing.
    """
    if len(data) < 29:
        return
    depth, ctype = data[24], data[25]
    bits = width * height * _PNG_CHANNELS.get(ctype, 1) * depth
    compressed = _png_idat_bytes(data)
    if bits // 8 > _DEFLATE_MAX_RATIO * compressed + 1024:
        raise LoadError(
            path,
            f"corrupt or truncated image ({width}x{height} pixels declared, but only "
            f"{compressed:,} bytes of image data)",
        )


#: Chunks after which Pillow's reading differs from the plain pixels: a transparent colour,
#: EXIF (orientation), animation.  (A colour profile is applied to the plain pixels.)
_PNG8_PILLOW_CHUNKS = {b"tRNS", b"eXIf", b"acTL", b"fcTL", b"fdAT"}
#: Text keywords under which Pillow looks for EXIF or XMP (an orientation).
_PNG8_PILLOW_TEXT = (b"Raw profile type exif", b"Raw profile type APP1", b"XML:com.adobe.xmp")


def _read_png8(data: bytes) -> np.ndarray | None:
    """Decode an 8-bit RGB or RGBA PNG with libspng (via imagecodecs), or return None.

    libspng decodes a 4.5 MP photo in about 0.075 s, Pillow in 0.11-0.14 s, to the same
    values; unlike libpng it stops at the end of the image instead of inflating whatever
    compressed data follows (a small image trailed by gigabytes of compressed zeros).  None
    (Pillow reads the file) for every other PNG: other depths and colour types, a chunk of
    :data:`_PNG8_PILLOW_CHUNKS`, EXIF or XMP text, damaged or unreadable data (Pillow then
    says what is wrong), or without imagecodecs' libspng.

    Returns
    -------
    pixels : ndarray of shape (M, N, 3) or (M, N, 4), uint8, or None
    """
    if len(data) < 33 or data[12:16] != b"IHDR":
        return None
    width, height, depth, ctype = struct.unpack(">IIBB", data[16:26])
    if depth != 8 or ctype not in (2, 6):
        return None
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind in _PNG8_PILLOW_CHUNKS:
            return None
        if kind in (b"tEXt", b"zTXt", b"iTXt") and data[pos + 8 : pos + 8 + length].startswith(
            _PNG8_PILLOW_TEXT
        ):
            return None
        if kind == b"IEND":
            break
        pos += 12 + length
    try:
        import imagecodecs

        pixels = imagecodecs.spng_decode(data)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception:  # not available, or a damaged file: Pillow's reading and its message
        return None
    channels = _PNG_CHANNELS[ctype]
    if pixels.dtype != np.uint8 or pixels.shape != (height, width, channels):
        return None
    return pixels


def _png16_colour_header(data: bytes) -> tuple[int, int, int, int] | None:
    """``(width, height, colour type, interlace)`` of a 16-bit colour PNG (types 2, 4, 6).

    None for every PNG that Pillow decodes without loss (8-bit, palette, 16-bit grey).
    """
    if len(data) < 33 or data[12:16] != b"IHDR":
        return None
    width, height, depth, ctype, _comp, _filt, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth != 16 or ctype not in _PNG16_CHANNELS:
        return None
    return width, height, ctype, interlace


def _read_png16(
    data: bytes, path: Path, header: tuple[int, int, int, int]
) -> tuple[np.ndarray, str]:
    """Decode a 16-bit colour PNG (also interlaced) with libpng, via imagecodecs.

    ``header`` is the file's :func:`_png16_colour_header`.  A ``tRNS`` colour key of an RGB
    image becomes an alpha channel (0 where the key matches, 65535 elsewhere).
    """
    import imagecodecs

    width, height, ctype, _interlace = header
    data = _png_without_excess_data(data, path, header)
    try:
        values = imagecodecs.png_decode(data)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # libpng's errors, and whatever a hostile file provokes
        detail = str(exc) if isinstance(exc, imagecodecs.PngError) else type(exc).__name__
        raise LoadError(path, f"corrupt or truncated image (PNG data: {detail})") from None
    channels = _PNG16_CHANNELS[ctype]
    if values.dtype != np.uint16 or values.shape[:2] != (height, width) or values.ndim != 3:
        raise LoadError(
            path, f"cannot decode image (16-bit PNG decoded as {values.dtype} {values.shape})"
        )
    if values.shape[2] not in (channels, channels + (ctype == 2)):
        raise LoadError(path, f"cannot decode image ({values.shape[2]} samples per pixel)")
    if ctype == 4:
        values = grey_to_rgb(values)
    return np.ascontiguousarray(values), _PNG16_MODES[ctype]


def _png_raw_size(width: int, height: int, channels: int, interlace: int) -> int:
    """Bytes of filtered 16-bit image data a PNG of this size holds (Adam7 passes too)."""
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        cols = -(-(width - x0) // dx) if width > x0 else 0
        rows = -(-(height - y0) // dy) if height > y0 else 0
        if cols and rows:
            total += rows * (1 + cols * channels * 2)
    return total


def _png_without_excess_data(data: bytes, path: Path, header: tuple[int, int, int, int]) -> bytes:
    """Return ``data``, or a copy whose image data stops where the image does.

    libpng inflates all of the image data, even past the last row, so a tiny image followed
    by gigabytes of compressed zeros (a zip bomb) would keep it busy.  The data is inflated
    here first, in blocks, never beyond the declared image size; only if more follows is
    the PNG rebuilt with just the image's own data.
    """
    width, height, ctype, interlace = header
    need = _png_raw_size(width, height, _PNG16_CHANNELS[ctype], interlace)
    chunks: list[tuple[bytes, bytes]] = []
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunks.append((kind, data[pos : pos + 12 + length]))
        pos += 12 + length
        if kind == b"IEND":
            break
    idat = b"".join(c[8:-4] for kind, c in chunks if kind == b"IDAT")
    inflate = zlib.decompressobj()
    produced = 0
    tail = idat
    try:
        while produced < need:
            block = inflate.decompress(tail, min(need - produced, 1 << 20))
            tail = inflate.unconsumed_tail
            produced += len(block)
            if not block:
                return data  # too short: libpng says so
        if inflate.eof or not inflate.decompress(tail, 1):
            return data  # nothing follows the image
        raw = zlib.decompressobj().decompress(idat, need)
    except zlib.error as exc:
        raise LoadError(path, f"corrupt or truncated image (PNG data: {exc})") from None
    body = zlib.compress(raw, 1)
    out = [data[:8]]
    for kind, chunk in chunks:
        if kind != b"IDAT":
            out.append(chunk)
        elif body:  # the first IDAT chunk's place
            crc = struct.pack(">I", zlib.crc32(b"IDAT" + body))
            out.append(struct.pack(">I", len(body)) + b"IDAT" + body + crc)
            body = b""
    return b"".join(out)
