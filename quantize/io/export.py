"""Atomic exports: indexed PNG, palettes, masks, soft maps, ``.npz`` and a JSON sidecar.

Every file is first written to a temporary file in the destination folder, flushed and
``fsync``-ed, then moved into place with :func:`os.replace` (or hard-linked when existing
files must not be overwritten, which makes the no-clobber check race-free).  A multi-file
export stages *all* files before moving any, so a failure (disk full, permission denied)
leaves the folder as it was: previous files byte-identical, no temporary file left.  No
EXIF, GPS or text metadata is ever copied into an output.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import re
import struct
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from quantize._json import json_safe
from quantize.png import encode_png

if TYPE_CHECKING:  # pragma: no cover
    from quantize.metrics import Metrics
    from quantize.pipeline import QuantizeResult

__all__ = [
    "EXPORT_KINDS",
    "PALETTE_FORMATS",
    "ExportError",
    "OutputExistsError",
    "atomic_write_bytes",
    "encode_palette",
    "SINGLE_FILE_KINDS",
    "export_all",
    "export_targets",
    "hex_color",
    "plan_exports",
    "read_palette",
    "sidecar_dict",
    "write_binary_masks",
    "write_indexed_png",
    "write_label_map",
    "write_npz",
    "write_palette",
    "write_sidecar",
    "write_soft_maps",
]

EXPORT_KINDS: tuple[str, ...] = (
    "indexed_png",
    "gpl",
    "act",
    "palette_json",
    "hex",
    "css",
    "swatch_png",
    "label_map",
    "binary_masks",
    "soft_maps",
    "npz",
    "sidecar",
)
#: palette format -> file suffix used by :func:`plan_exports`
PALETTE_FORMATS: dict[str, str] = {
    "gpl": ".gpl",
    "act": ".act",
    "json": ".palette.json",
    "hex": ".hex.txt",
    "css": ".css",
    "png": ".swatch.png",
}
_SUFFIX_TO_FORMAT = {".gpl": "gpl", ".act": "act", ".json": "json", ".txt": "hex",
                     ".hex": "hex", ".css": "css", ".png": "png"}  # fmt: skip
_SWATCH = 32
_SWATCH_COLUMNS = 16


class ExportError(Exception):
    """An export failed; the message names the file and the reason.

    Parameters
    ----------
    message : str
        ``"<file>: <problem>"``.
    paths : sequence of Path, optional
        Files concerned.
    """

    def __init__(self, message: str, paths: Sequence[Path] = ()) -> None:
        super().__init__(message)
        self.paths = [Path(p) for p in paths]


class OutputExistsError(ExportError):
    """A target file exists and overwriting was not allowed."""


# --------------------------------------------------------------------------------------
# atomic writing
# --------------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return "disk full (no space left on device)"
        if exc.errno == errno.EDQUOT:
            return "disk quota exceeded"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "permission denied"
        if exc.errno == errno.EROFS:
            return "read-only file system"
        if exc.errno == errno.ENOENT:
            return "folder does not exist"
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__


class _FdWriter(io.RawIOBase):
    """A write-only, non-seekable file over a descriptor; every write goes via os.write."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += os.write(self._fd, view[done:])
        self._pos += done
        return done

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:  # the descriptor is owned by the transaction
        super().close()


class _Transaction:
    """Stage several files as temporaries, then move them all into place."""

    def __init__(self, overwrite: bool) -> None:
        self.overwrite = overwrite
        self.staged: list[tuple[Path, Path]] = []  # (temporary, final)

    def stage(self, path: Path, fill: Callable[[IO[bytes]], None]) -> None:
        path = Path(path)
        folder = path.parent
        tmp_path: Path | None = None
        fd = -1
        try:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
            tmp_path = Path(name)
            self.staged.append((tmp_path, path))
            _set_mode(fd, path)
            writer = _FdWriter(fd)
            fill(writer)  # type: ignore[arg-type]
            os.fsync(fd)
        except ExportError:
            raise
        except Exception as exc:
            raise ExportError(f"{path}: cannot write ({_reason(exc)})", [path]) from exc
        finally:
            if fd >= 0:
                os.close(fd)

    def commit(self) -> list[Path]:
        folders: set[Path] = set()
        # (final, backup or None): how to undo each placed file if a later one fails
        undo: list[tuple[Path, Path | None]] = []
        try:
            for tmp, final in self.staged:
                if self.overwrite:
                    backup = self._backup(final)
                    try:
                        os.replace(tmp, final)
                    except BaseException:
                        if backup is not None:
                            _unlink_quiet(backup)
                        raise
                    undo.append((final, backup))
                else:
                    self._place_new(tmp, final)
                    undo.append((final, None))
                folders.add(final.parent)
        except BaseException as exc:
            failed = self.staged[len(undo)][1] if len(undo) < len(self.staged) else None
            self._undo(undo)
            self.discard()
            if isinstance(exc, ExportError) or not isinstance(exc, Exception):
                raise
            raise ExportError(f"{failed}: cannot write ({_reason(exc)})", [failed]) from exc
        for _, backup in undo:
            if backup is not None:
                _unlink_quiet(backup)
        self.discard()
        for folder in folders:
            _fsync_dir(folder)
        return [final for _, final in self.staged]

    @staticmethod
    def _backup(final: Path) -> Path | None:
        if not final.exists():
            return None
        backup = final.with_name(f".{final.name}.{os.getpid()}.{id(final):x}.bak")
        try:
            os.link(final, backup)
        except OSError:
            return None
        return backup

    @staticmethod
    def _undo(undo: list[tuple[Path, Path | None]]) -> None:
        for final, backup in reversed(undo):
            try:
                if backup is not None:
                    os.replace(backup, final)
                else:
                    os.unlink(final)
            except OSError:
                pass

    def _place_new(self, tmp: Path, final: Path) -> None:
        try:
            os.link(tmp, final)  # fails if final exists: no-clobber without a race
        except FileExistsError:
            raise OutputExistsError(
                f"{final}: already exists (use overwrite/--force)", [final]
            ) from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            if final.exists():  # filesystem without hard links
                raise OutputExistsError(
                    f"{final}: already exists (use overwrite/--force)", [final]
                ) from None
            os.replace(tmp, final)
            return
        os.unlink(tmp)

    def discard(self) -> None:
        for tmp, _ in self.staged:
            _unlink_quiet(tmp)


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once at import (os.umask cannot be read without setting)


def _set_mode(fd: int, final: Path) -> None:
    """Give the temporary file the mode the final file should have (mkstemp uses 0600)."""
    try:
        mode = final.stat().st_mode & 0o7777  # keep an overwritten file's permissions
    except OSError:
        mode = 0o666 & ~_UMASK
    try:
        os.fchmod(fd, mode)
    except (OSError, AttributeError):  # e.g. Windows or exotic filesystems
        pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_targets(paths: Sequence[Path], overwrite: bool) -> None:
    seen: set[Path] = set()
    for p in paths:
        key = Path(os.path.abspath(p))
        if key in seen:
            raise ExportError(f"{p}: written twice by one export", [p])
        seen.add(key)
    folders = [p for p in paths if p.is_dir()]
    if folders:
        raise ExportError(f"{folders[0]}: is a folder, not a file name", folders)
    missing = sorted({p.parent for p in paths if not p.parent.is_dir()})
    if missing:
        raise ExportError(f"{missing[0]}: folder does not exist", missing)
    if overwrite:
        return
    existing = [p for p in paths if p.exists() or p.is_symlink()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputExistsError(
            f"{existing[0]}: already exists{more} (use overwrite/--force)", existing
        )


_Job = tuple[Path, Callable[[IO[bytes]], None]]


def _run(jobs: Sequence[_Job], overwrite: bool) -> list[Path]:
    _check_targets([Path(p) for p, _ in jobs], overwrite)
    return _commit(jobs, overwrite)


def _commit(jobs: Sequence[_Job], overwrite: bool) -> list[Path]:
    """Stage every job, then move them all into place (targets already checked)."""
    tx = _Transaction(overwrite)
    try:
        for path, fill in jobs:
            tx.stage(Path(path), fill)
    except BaseException:
        tx.discard()
        raise
    return tx.commit()


def _bytes_job(data: bytes) -> Callable[[IO[bytes]], None]:
    def fill(f: IO[bytes]) -> None:
        f.write(data)

    return fill


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False
) -> Path:
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path : str or Path
        Destination; its folder must exist.
    data : bytes
        Content.
    overwrite : bool, optional
        Replace an existing file; otherwise :class:`OutputExistsError`.

    Returns
    -------
    path : Path

    Raises
    ------
    ExportError
        Disk full, permission denied, missing folder, ...; the old file is untouched.
    """
    return _run([(Path(path), _bytes_job(bytes(data)))], overwrite)[0]


# --------------------------------------------------------------------------------------
# encoders (pure: arrays in, bytes out)
# --------------------------------------------------------------------------------------






def hex_color(rgb: Sequence[int] | np.ndarray) -> str:
    """Format one 8-bit sRGB colour as ``#rrggbb``.

    Parameters
    ----------
    rgb : sequence of int or ndarray of shape (3,) or (4,)
        Red, green and blue on 0-255 (a fourth, alpha, value is ignored).

    Returns
    -------
    text : str
        Lower-case hex code, e.g. ``"#ff0010"``.

    Raises
    ------
    ValueError
        Fewer than three values, or a value outside 0-255.
    """
    values = [int(v) for v in list(rgb)[:3]]
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise ValueError(f"expected three values on 0-255, got {rgb!r}")
    return "#{:02x}{:02x}{:02x}".format(*values)


def _shares(palette: np.ndarray, proportions: np.ndarray | None) -> list[float | None]:
    if proportions is None:
        return [None] * len(palette)
    p = np.asarray(proportions, np.float64).reshape(-1)
    if p.shape[0] != len(palette):
        raise ValueError(f"{len(palette)} colours but {p.shape[0]} proportions")
    return [float(v) if math.isfinite(v) else None for v in p]


def _check_act(k: int) -> None:
    if k > 256:
        raise ExportError(f"a Photoshop .act palette holds at most 256 colours, not {k}")


def encode_palette(
    palette: np.ndarray,
    proportions: np.ndarray | None = None,
    fmt: str = "gpl",
    *,
    name: str = "VQ Studio palette",
    transparent_index: int | None = None,
) -> bytes:
    """Encode a palette in one of :data:`PALETTE_FORMATS`.

    Parameters
    ----------
    palette : ndarray of shape (K, 3), uint8
    proportions : ndarray of shape (K,), optional
        Share of pixels of each colour (written where the format has room for it).
    fmt : {"gpl", "act", "json", "hex", "css", "png"}
        GIMP palette, Photoshop colour table (772 bytes, K <= 256), JSON (hex, rgb, CIELAB,
        share), one ``#rrggbb`` per line, CSS custom properties, PNG swatch strip.
    name : str, optional
        Palette name (GIMP, JSON, CSS comment).
    transparent_index : int, optional
        Transparent entry to record in the ``.act`` trailer.

    Returns
    -------
    data : bytes

    Raises
    ------
    ExportError
        ``.act`` with more than 256 colours, or an unknown format.
    """
    palette = np.asarray(palette, np.uint8).reshape(-1, 3)
    shares = _shares(palette, proportions)
    k = len(palette)
    if fmt == "gpl":
        lines = ["GIMP Palette", f"Name: {name}", f"Columns: {min(k, 16)}", "#"]
        for c, s in zip(palette, shares, strict=True):
            label = hex_color(c) + (f" {100 * s:.2f}%" if s is not None else "")
            lines.append(f"{c[0]:3d} {c[1]:3d} {c[2]:3d}\t{label}")
        return ("\n".join(lines) + "\n").encode("utf-8")
    if fmt == "act":
        _check_act(k)
        table = np.zeros((256, 3), np.uint8)
        table[:k] = palette
        trans = 0xFFFF if transparent_index is None else int(transparent_index)
        return table.tobytes() + struct.pack(">HH", k, trans)
    if fmt == "json":
        from quantize.metrics import srgb8_to_lab

        lab = srgb8_to_lab(palette) if k else np.zeros((0, 3))
        colors = []
        for i, (c, s) in enumerate(zip(palette, shares, strict=True)):
            entry: dict[str, Any] = {
                "index": i,
                "hex": hex_color(c),
                "rgb": [int(v) for v in c],
                "lab": [round(float(v), 4) for v in lab[i]],
            }
            if s is not None:
                entry["share"] = s
            colors.append(entry)
        doc = {"name": name, "n_colors": k, "colors": colors}
        return (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode("utf-8")
    if fmt == "hex":
        return "".join(hex_color(c) + "\n" for c in palette).encode("ascii")
    if fmt == "css":
        width = _digits(k)
        lines = [f"/* {name}: {k} colours */", ":root {"]
        for i, (c, s) in enumerate(zip(palette, shares, strict=True)):
            note = f" /* {100 * s:.2f}% */" if s is not None else ""
            lines.append(f"  --vq-color-{i:0{width}d}: {hex_color(c)};{note}")
        lines.append("}")
        return ("\n".join(lines) + "\n").encode("utf-8")
    if fmt == "png":
        cols = min(max(k, 1), _SWATCH_COLUMNS)
        rows = max(1, -(-k // cols))
        grid = np.zeros((rows, cols, 3), np.uint8)
        grid.reshape(-1, 3)[:k] = palette
        big = np.repeat(np.repeat(grid, _SWATCH, axis=0), _SWATCH, axis=1)
        return encode_png(Image.fromarray(big, "RGB"))
    raise ExportError(f"unknown palette format {fmt!r} (choose from {sorted(PALETTE_FORMATS)})")


def palette_format_for(path: str | os.PathLike[str]) -> str:
    """Guess the palette format from a file name.

    Parameters
    ----------
    path : str or Path
        ``.gpl``, ``.act``, ``.json``, ``.txt``/``.hex``, ``.css`` or ``.png``.

    Returns
    -------
    fmt : str

    Raises
    ------
    ExportError
        Unknown extension.
    """
    suffix = Path(path).suffix.lower()
    fmt = _SUFFIX_TO_FORMAT.get(suffix)
    if fmt is None:
        known = ", ".join(sorted(_SUFFIX_TO_FORMAT))
        raise ExportError(f"{path}: unknown palette extension {suffix!r} (use one of {known})")
    return fmt


def read_palette(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a palette written by :func:`write_palette` (or by GIMP/Photoshop).

    Parameters
    ----------
    path : str or Path
        ``.gpl``, ``.act``, ``.json``, ``.txt``/``.hex``, ``.css`` or a swatch ``.png``.

    Returns
    -------
    palette : ndarray of shape (K, 3), uint8

    Raises
    ------
    ExportError
        Unreadable or malformed file.
    """
    p = Path(path)
    fmt = palette_format_for(p)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ExportError(f"{p}: cannot read ({_reason(exc)})", [p]) from exc
    try:
        if fmt == "act":
            if len(data) not in (768, 772):
                raise ValueError(f"{len(data)} bytes, expected 768 or 772")
            table = np.frombuffer(data[:768], np.uint8).reshape(256, 3)
            k = struct.unpack(">H", data[768:770])[0] if len(data) == 772 else 256
            return table[: min(k, 256)].copy()
        if fmt == "png":
            with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
                arr = np.asarray(im.convert("RGB"))
            centres = arr[_SWATCH // 2 :: _SWATCH, _SWATCH // 2 :: _SWATCH].reshape(-1, 3)
            return centres.copy()
        text = data.decode("utf-8")
        if fmt == "gpl":
            if not text.startswith("GIMP Palette"):
                raise ValueError("missing 'GIMP Palette' header")
            rows = []
            for line in text.splitlines()[1:]:
                m = re.match(r"\s*(\d+)\s+(\d+)\s+(\d+)", line)
                if m and not line.lstrip().startswith("#"):
                    rows.append([int(v) for v in m.groups()])
            return _rgb_rows(rows)
        if fmt == "json":
            doc = json.loads(text)
            return _rgb_rows([c["rgb"] for c in doc["colors"]])
        found = re.findall(r"#([0-9a-fA-F]{6})\b", text)
        return np.array(
            [[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in found], np.uint8
        ).reshape(-1, 3)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, OSError) as exc:
        raise ExportError(f"{p}: not a valid {fmt} palette ({exc})", [p]) from exc


def _rgb_rows(rows: Any) -> np.ndarray:
    arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError("colour values must be between 0 and 255")
    return arr.astype(np.uint8)


def _gray_png(arr: np.ndarray) -> bytes:
    if arr.dtype == np.uint16:
        return encode_png(Image.fromarray(arr))  # mode I;16 -> 16-bit greyscale PNG
    return encode_png(Image.fromarray(arr.astype(np.uint8), "L"))


def _labels(result: QuantizeResult) -> np.ndarray:
    labels = np.asarray(result.labels)
    k = len(result.palette)
    return labels.astype(np.uint8 if k <= 256 else np.uint16)


def _opaque(result: QuantizeResult) -> np.ndarray | None:
    opaque = getattr(result, "opaque", None)
    if opaque is None:
        return None
    opaque = np.asarray(opaque, bool)
    return None if bool(opaque.all()) else opaque


def _soft_u16(result: QuantizeResult, k: int) -> np.ndarray:
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


def _npz_fill(result: QuantizeResult) -> Callable[[IO[bytes]], None]:
    from numpy.lib import format as npy

    def fill(f: IO[bytes]) -> None:
        labels = _labels(result)
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
                header = {"descr": npy.dtype_to_descr(np.dtype("<f4")),
                          "fortran_order": False, "shape": (k, m, n)}  # fmt: skip
                npy.write_array_header_2_0(entry, header)
                for comp in range(k):
                    r = np.asarray(result.responsibility_map(comp), "<f4")
                    entry.write(np.ascontiguousarray(r).tobytes())

    return fill


def _versions() -> dict[str, str]:
    import PIL
    import scipy
    import skimage

    import quantize

    return {
        "vq-studio": quantize.__version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pillow": PIL.__version__,
        "scikit-image": skimage.__version__,
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sidecar_dict(
    result: QuantizeResult,
    *,
    source_path: str | os.PathLike[str] | None = None,
    metrics: Metrics | dict[str, Any] | None = None,
    dither: str = "none",
    strength: float = 1.0,
    outputs: Iterable[str | os.PathLike[str]] = (),
    source_sha256: str | None = None,
    rendering: tuple[np.ndarray, bytes] | None = None,
) -> dict[str, Any]:
    """Everything needed to reproduce and judge a result, as strict-JSON-safe data.

    Parameters
    ----------
    result : QuantizeResult
    source_path : str or Path, optional
        Input file; its SHA-256 and size are recorded.
    metrics : Metrics or dict, optional
        Computed for the given rendering when not supplied.
    dither, strength : optional
        Rendering used for the image outputs.
    outputs : iterable of str or Path, optional
        Names of the files written alongside.
    source_sha256 : str, optional
        SHA-256 of the source's bytes when already known (e.g.
        ``LoadedImage.info["sha256"]``): the file is then not read again.
    rendering : (indices, png), optional
        :func:`quantize.metrics.render_indexed` of this rendering, used when the metrics
        have to be computed.

    Returns
    -------
    doc : dict
    """
    palette = np.asarray(result.palette, np.uint8)
    shares = _shares(palette, getattr(result, "proportions", None))
    params = dict(result.parameters()) if hasattr(result, "parameters") else {}
    image = np.asarray(result.image)
    source: dict[str, Any] | None = None
    if source_path is not None:
        sp = Path(source_path)
        source = {"path": str(sp.resolve()), "name": sp.name}
        try:
            source["sha256"] = source_sha256 or _sha256(sp)
            source["bytes"] = sp.stat().st_size
        except OSError as exc:
            source["error"] = _reason(exc)
    history = np.asarray(getattr(result, "history", np.zeros(0)), np.float64)
    metrics_error = None
    if metrics is None:  # the sidecar promises metrics: measure the rendering now
        from quantize.metrics import compute_metrics

        original = source.get("bytes") if source else None
        try:
            metrics = compute_metrics(result, dither=dither, strength=strength,
                                      original_bytes=original, rendering=rendering)  # fmt: skip
        except (ValueError, TypeError, AttributeError, MemoryError) as exc:
            metrics_error = f"{type(exc).__name__}: {exc}"
    if metrics is not None and hasattr(metrics, "to_dict"):
        metrics = metrics.to_dict()
    doc = {
        "format": "vq-studio sidecar 1",
        "input": source,
        "image": {
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "channels": int(image.shape[2]) if image.ndim == 3 else 1,
            "dtype": str(image.dtype),
        },
        "parameters": params,
        "render": {"dither": dither, "strength": float(strength)},
        "seed": getattr(result, "seed", params.get("seed")),
        "versions": _versions(),
        "iterations": params.get("n_iter", int(history.size)),
        "converged": params.get("converged"),
        "history": history,
        "warnings": list(getattr(result, "warnings", []) or []),
        "metrics": metrics,
        **({"metrics_error": metrics_error} if metrics_error else {}),
        "palette": [
            {"index": i, "hex": hex_color(c), "rgb": [int(v) for v in c], "share": s}
            for i, (c, s) in enumerate(zip(palette, shares, strict=True))
        ],
        "outputs": [Path(p).name for p in outputs],
    }
    return json_safe(doc)


def _sidecar_bytes(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, allow_nan=False, sort_keys=False) + "\n").encode("utf-8")


# --------------------------------------------------------------------------------------
# planning and writing
# --------------------------------------------------------------------------------------


#: palette export kind -> palette format
_KIND_FORMAT = {"gpl": "gpl", "act": "act", "palette_json": "json", "hex": "hex", "css": "css",
                "swatch_png": "png"}  # fmt: skip


def _digits(k: int) -> int:
    return max(2, len(str(max(k - 1, 0))))


def plan_exports(
    result: QuantizeResult,
    out_dir: str | os.PathLike[str],
    stem: str,
    kinds: Iterable[str],
) -> list[Path]:
    """List every file :func:`export_all` would write, in order.

    Parameters
    ----------
    result : QuantizeResult
        Only ``palette`` is used (the number of mask files depends on K).
    out_dir : str or Path
    stem : str
        Base name, e.g. ``"photo"`` -> ``photo.png``, ``photo.gpl``, ``photo.mask-03.png``.
    kinds : iterable of str
        Subset of :data:`EXPORT_KINDS`.

    Returns
    -------
    paths : list of Path

    Raises
    ------
    ExportError
        Unknown kind.
    """
    out = Path(out_dir)
    k = len(result.palette)
    width = _digits(k)
    paths: list[Path] = []
    for kind in _check_kinds(kinds):
        if kind == "indexed_png":
            paths.append(out / f"{stem}.png")
        elif kind in _KIND_FORMAT:
            paths.append(out / f"{stem}{PALETTE_FORMATS[_KIND_FORMAT[kind]]}")
        elif kind == "label_map":
            paths.append(out / f"{stem}.labels.png")
        elif kind == "binary_masks":
            paths.extend(out / f"{stem}.mask-{i:0{width}d}.png" for i in range(k))
        elif kind == "soft_maps":
            paths.extend(out / f"{stem}.soft-{i:0{width}d}.png" for i in range(k))
        elif kind == "npz":
            paths.append(out / f"{stem}.maps.npz")
        elif kind == "sidecar":
            paths.append(out / f"{stem}.json")
    return paths


def _check_kinds(kinds: Iterable[str]) -> list[str]:
    kinds = list(dict.fromkeys(kinds))
    unknown = [k for k in kinds if k not in EXPORT_KINDS]
    if unknown:
        raise ExportError(f"unknown export kind(s) {unknown}; choose from {list(EXPORT_KINDS)}")
    # sidecar last: it lists the other outputs
    return sorted(kinds, key=lambda k: EXPORT_KINDS.index(k))


class _Render:
    """The indexed PNG's rendering, computed at most once per export (metrics and PNG)."""

    def __init__(
        self,
        result: QuantizeResult,
        dither: str,
        strength: float,
        rendering: tuple[np.ndarray, bytes] | None = None,
    ) -> None:
        self.result, self.dither, self.strength = result, dither, strength
        self.value = rendering

    def __call__(self) -> tuple[np.ndarray, bytes]:
        if self.value is None:
            from quantize.metrics import render_indexed

            self.value = render_indexed(self.result, dither=self.dither, strength=self.strength)
        return self.value

    def png(self) -> bytes:
        return self()[1]


def _jobs(
    result: QuantizeResult,
    kinds: list[str],
    planned: list[Path],
    render: _Render,
    sidecar: Callable[[Path], _Job],
    name: str,
) -> list[_Job]:
    """One job per planned file (``planned`` as :func:`plan_exports` lists it for ``kinds``).

    ``name`` is the palette name written into palette files.
    """
    palette = np.asarray(result.palette, np.uint8)
    proportions = getattr(result, "proportions", None)
    k = len(palette)
    jobs: list[_Job] = []
    cursor = iter(planned)
    for kind in kinds:
        if kind == "indexed_png":
            jobs.append((next(cursor), _lazy(render.png)))
        elif kind in _KIND_FORMAT:
            fmt = _KIND_FORMAT[kind]
            if fmt == "act":
                _check_act(k)
            jobs.append(
                (next(cursor), _lazy(lambda fmt=fmt: encode_palette(palette, proportions, fmt,
                                                                    name=name)))
            )  # fmt: skip
        elif kind == "label_map":
            jobs.append((next(cursor), _lazy(lambda: _gray_png(_labels(result)))))
        elif kind == "binary_masks":
            for i in range(k):
                jobs.append((next(cursor), _lazy(lambda i=i: _mask_png(result, i))))
        elif kind == "soft_maps":
            for i in range(k):
                jobs.append((next(cursor), _lazy(lambda i=i: _gray_png(_soft_u16(result, i)))))
        elif kind == "npz":
            jobs.append((next(cursor), _npz_fill(result)))
        elif kind == "sidecar":
            jobs.append(sidecar(next(cursor)))
    return jobs


def _sidecar_maker(
    result: QuantizeResult,
    every: Callable[[], list[Path]],
    render: _Render,
    *,
    dither: str,
    strength: float,
    source_path: str | os.PathLike[str] | None,
    source_sha256: str | None,
    metrics: Metrics | dict[str, Any] | None,
) -> Callable[[Path], _Job]:
    """Make the sidecar job for a path; it lists every other file of the export."""

    def make(path: Path) -> _Job:
        rendering = None
        if metrics is None:  # the sidecar measures the rendering: share it with the PNG
            try:
                rendering = render()
            except (ValueError, TypeError, AttributeError, MemoryError):
                rendering = None  # sidecar_dict records why the metrics are missing
        doc = sidecar_dict(result, source_path=source_path, metrics=metrics, dither=dither,
                           strength=strength, outputs=[p for p in every() if p != path],
                           source_sha256=source_sha256, rendering=rendering)  # fmt: skip
        return path, _bytes_job(_sidecar_bytes(doc))

    return make


def _lazy(make: Callable[[], bytes]) -> Callable[[IO[bytes]], None]:
    def fill(f: IO[bytes]) -> None:
        f.write(make())

    return fill


def _mask_png(result: QuantizeResult, i: int) -> bytes:
    mask = np.asarray(result.labels) == i
    opaque = _opaque(result)
    if opaque is not None:
        mask &= opaque
    return _gray_png(np.where(mask, 255, 0).astype(np.uint8))


def export_all(
    result: QuantizeResult,
    out_dir: str | os.PathLike[str],
    stem: str,
    kinds: Iterable[str],
    *,
    overwrite: bool = False,
    dither: str = "none",
    strength: float = 1.0,
    source_path: str | os.PathLike[str] | None = None,
    metrics: Metrics | dict[str, Any] | None = None,
    source_sha256: str | None = None,
    rendering: tuple[np.ndarray, bytes] | None = None,
) -> list[Path]:
    """Write several exports at once, all or nothing.

    Every target is checked before anything is written; all files are staged as temporary
    files, then moved into place.

    Parameters
    ----------
    result : QuantizeResult
    out_dir : str or Path
        Existing folder.
    stem : str
        Base file name (see :func:`plan_exports`).
    kinds : iterable of str
        Subset of :data:`EXPORT_KINDS`.
    overwrite : bool, optional
        Replace existing files; otherwise :class:`OutputExistsError` before writing any.
    dither : {"none", "fs", "ordered"}, optional
        Rendering of the indexed PNG.
    strength : float, optional
    source_path : str or Path, optional
        Input file recorded in the sidecar (with its SHA-256).
    metrics : Metrics or dict, optional
        Recorded in the sidecar (computed for the chosen rendering when not given).
    source_sha256 : str, optional
        SHA-256 of the input's bytes, if known (see :func:`sidecar_dict`).
    rendering : (indices, png), optional
        :func:`quantize.metrics.render_indexed` for ``dither``/``strength`` if the caller
        has it; otherwise the rendering is computed once for the PNG and the metrics.

    Returns
    -------
    paths : list of Path
        Files written, in :func:`plan_exports` order.

    Raises
    ------
    ExportError
        Nothing was changed.
    """
    kinds = _check_kinds(kinds)
    planned = plan_exports(result, out_dir, stem, kinds)
    _check_targets(planned, overwrite)
    render = _Render(result, dither, strength, rendering)
    sidecar = _sidecar_maker(result, lambda: planned, render, dither=dither, strength=strength,
                             source_path=source_path, source_sha256=source_sha256,
                             metrics=metrics)  # fmt: skip
    return _commit(_jobs(result, kinds, planned, render, sidecar, stem), overwrite)


#: kinds that write exactly one file (the others write one file per palette entry)
SINGLE_FILE_KINDS: tuple[str, ...] = tuple(
    k for k in EXPORT_KINDS if k not in ("binary_masks", "soft_maps")
)


def export_targets(
    result: QuantizeResult,
    targets: Sequence[tuple[str, str | os.PathLike[str]]],
    *,
    overwrite: bool = False,
    dither: str = "none",
    strength: float = 1.0,
    source_path: str | os.PathLike[str] | None = None,
    metrics: Metrics | dict[str, Any] | None = None,
    source_sha256: str | None = None,
    rendering: tuple[np.ndarray, bytes] | None = None,
) -> list[Path]:
    """Write exports to explicit paths, all or nothing (what the ``vq`` command uses).

    Parameters
    ----------
    result : QuantizeResult
    targets : sequence of (kind, path)
        For single-file kinds ``path`` is the file itself; for ``"binary_masks"`` and
        ``"soft_maps"`` it is ``folder/stem`` (files ``stem.mask-NN.png`` ...).  A
        ``"sidecar"`` lists every other target as its outputs.
    overwrite, dither, strength, source_path, metrics, source_sha256, rendering : optional
        As for :func:`export_all`.

    Returns
    -------
    paths : list of Path
        Every file written.

    Raises
    ------
    ExportError
        Nothing was changed.
    """
    planned: list[tuple[str, Path, list[Path]]] = []
    for kind, target in targets:
        path = Path(target)
        if kind in SINGLE_FILE_KINDS:
            files = [path]
        else:
            files = plan_exports(result, path.parent, path.name, [kind])
        planned.append((kind, path, files))
    every = [f for _, _, files in planned for f in files]
    _check_targets(every, overwrite)
    render = _Render(result, dither, strength, rendering)
    sidecar = _sidecar_maker(result, lambda: every, render, dither=dither, strength=strength,
                             source_path=source_path, source_sha256=source_sha256,
                             metrics=metrics)  # fmt: skip
    jobs: list[_Job] = []
    for kind, path, files in planned:
        jobs.extend(_jobs(result, _check_kinds([kind]), files, render, sidecar, path.name))
    return _commit(jobs, overwrite)


def write_indexed_png(
    path: str | os.PathLike[str],
    result: QuantizeResult,
    *,
    dither: str = "none",
    strength: float = 1.0,
    overwrite: bool = False,
) -> Path:
    """Write the result as an indexed PNG (smallest bit depth, tRNS for transparency).

    Parameters
    ----------
    path : str or Path
    result : QuantizeResult
    dither : {"none", "fs", "ordered"}, optional
    strength : float, optional
    overwrite : bool, optional

    Returns
    -------
    path : Path
    """
    job = _lazy(_Render(result, dither, strength).png)
    return _run([(Path(path), job)], overwrite)[0]


def write_palette(
    path: str | os.PathLike[str],
    palette: np.ndarray,
    proportions: np.ndarray | None = None,
    fmt: str | None = None,
    *,
    overwrite: bool = False,
    name: str | None = None,
) -> Path:
    """Write a palette file; the format follows the extension unless ``fmt`` is given.

    Parameters
    ----------
    path : str or Path
    palette : ndarray of shape (K, 3), uint8
    proportions : ndarray of shape (K,), optional
    fmt : {"gpl", "act", "json", "hex", "css", "png"}, optional
    overwrite : bool, optional
    name : str, optional
        Palette name; default the file stem.

    Returns
    -------
    path : Path
    """
    p = Path(path)
    fmt = fmt or palette_format_for(p)
    data = encode_palette(palette, proportions, fmt, name=name or p.stem)
    return _run([(p, _bytes_job(data))], overwrite)[0]


def write_label_map(
    path: str | os.PathLike[str], result: QuantizeResult, *, overwrite: bool = False
) -> Path:
    """Write the labels as an 8-bit greyscale PNG (16-bit when K > 256).

    Parameters
    ----------
    path : str or Path
    result : QuantizeResult
    overwrite : bool, optional

    Returns
    -------
    path : Path
    """
    return _run([(Path(path), _lazy(lambda: _gray_png(_labels(result))))], overwrite)[0]


def write_binary_masks(
    out_dir: str | os.PathLike[str], stem: str, result: QuantizeResult, *, overwrite: bool = False
) -> list[Path]:
    """Write one 0/255 PNG per cluster (``<stem>.mask-NN.png``), all or nothing.

    Parameters
    ----------
    out_dir : str or Path
    stem : str
    result : QuantizeResult
    overwrite : bool, optional

    Returns
    -------
    paths : list of Path
    """
    return export_all(result, out_dir, stem, ["binary_masks"], overwrite=overwrite)


def write_soft_maps(
    out_dir: str | os.PathLike[str], stem: str, result: QuantizeResult, *, overwrite: bool = False
) -> list[Path]:
    """Write each component's responsibility as a 16-bit PNG (0..65535), all or nothing.

    Parameters
    ----------
    out_dir : str or Path
    stem : str
    result : QuantizeResult
    overwrite : bool, optional

    Returns
    -------
    paths : list of Path
    """
    return export_all(result, out_dir, stem, ["soft_maps"], overwrite=overwrite)


def write_npz(
    path: str | os.PathLike[str], result: QuantizeResult, *, overwrite: bool = False
) -> Path:
    """Write all maps to one compressed ``.npz`` (loadable with ``allow_pickle=False``).

    Arrays: ``labels`` (M, N), ``palette`` (K, 3) uint8, ``proportions`` (K,), ``opaque``
    (M, N) bool, ``uncertainty`` (M, N) float32, ``responsibilities`` (K, M, N) float32.

    Parameters
    ----------
    path : str or Path
    result : QuantizeResult
    overwrite : bool, optional

    Returns
    -------
    path : Path
    """
    return _run([(Path(path), _npz_fill(result))], overwrite)[0]


def write_sidecar(
    path: str | os.PathLike[str],
    result: QuantizeResult,
    *,
    source_path: str | os.PathLike[str] | None = None,
    metrics: Metrics | dict[str, Any] | None = None,
    dither: str = "none",
    strength: float = 1.0,
    outputs: Iterable[str | os.PathLike[str]] = (),
    overwrite: bool = False,
) -> Path:
    """Write the JSON sidecar (strict JSON: no NaN or infinity).

    Parameters
    ----------
    path : str or Path
    result : QuantizeResult
    source_path, metrics, dither, strength, outputs : optional
        See :func:`sidecar_dict`.
    overwrite : bool, optional

    Returns
    -------
    path : Path
    """
    doc = sidecar_dict(result, source_path=source_path, metrics=metrics, dither=dither,
                       strength=strength, outputs=outputs)  # fmt: skip
    return _run([(Path(path), _bytes_job(_sidecar_bytes(doc)))], overwrite)[0]
