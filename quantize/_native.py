"""The compiled loops, loaded with llvmlite alone.

The loops are Floyd–Steinberg's (:mod:`quantize._fs_numba`), the K-means E step's
(:mod:`quantize._kmeans_numba`), the distinct colours' (:mod:`quantize._colors_numba`) and
the grid cells' of coarse-to-fine K-means (:mod:`quantize._cells_numba`).

numba compiles the loops into C-callable functions once; their machine code is kept in a
cache file, which later processes load with llvmlite (numba's code generator, installed
with it) in a few hundredths of a second, without importing numba.  Importing numba and
loading its own cache took about 0.4 s of CPU, mostly Python that held the interpreter lock,
in every ``vq`` run that dithered a large image (benchmarks/README.md).

The cache file holds, for this CPU (its name and features are part of the key, as are the
loops' source and the llvmlite version), one object file per entry point, the symbols each
leaves to the loader and a SHA-256 of the whole.  A missing, stale or damaged file is built
again (numba, a few seconds), checked by loading it in a fresh process, and replaced
atomically.  The loops take the error path of numba's calling convention never (they
allocate nothing and cannot raise); its symbols are bound to a no-op where the process does
not provide them.

The functions are called through ctypes, which releases the interpreter lock for the call.
:func:`kernels` is the process's one load (thread-safe); Floyd–Steinberg
(:mod:`quantize.render`) and the K-means E step (:mod:`quantize.cluster.kmeans`) use it, and
the numpy forms run where it is unavailable.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import struct
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Kernels", "cache_dir", "kernels", "kernels_error", "kernels_for", "load", "prepare"]

#: Layout version of the cache file.
_FORMAT = 2
_MAGIC = b"VQ-KERNELS\n"
#: The modules whose loops are compiled (their source is part of the key).
_SOURCES = ("_fs_numba", "_kmeans_numba", "_colors_numba", "_cells_numba")
#: Entries of the memo table of rounded colours (quantize._fs_numba.TABLE_SIZE).
_TABLE_SIZE = 1 << 24
#: Cells of the candidate lists (quantize._fs_numba.CELL_BITS = 5).
_N_CELLS = 1 << 15
# flag bits of diffuse_rows (quantize._fs_numba)
_HAS_GIVE, _DIRECT, _LIMITED, _WIDE_TABLE = 1, 2, 4, 8

_P = ctypes.c_void_p
_N = ctypes.c_ssize_t
_F = ctypes.c_float
_I = ctypes.c_int32
_D = ctypes.c_double
#: C signature of each entry point (all return void).
_ARGTYPES: dict[str, tuple[Any, ...]] = {
    "candidate_lists": (_P, _N, _P, _P, _P, _N, _I, _D, _D, _D),
    "diffuse_rows": (_P,) * 14 + (_N, _N, _N, _N, _I, _F, _F, _F, _F, _D, _D, _D, _N, _N),
    "dither_map": (_P,) * 5 + (_N, _N, _F, _F, _F, _F, _F, _N, _N),
    "nearest_all": (_P, _N, _P, _N, _P, _P, _P, _P, _N, _N),
    "bounded_update": (_P, _N, _P, _N) + (_P,) * 7 + (_D, _D, _N, _D, _N, _N, _P, _P, _P),
    "codes_rgb8": (_P, _N, _N, _P, _N, _N),
    "tally_codes": (_P, _N, _P, _N, _N),
    "rank_codes": (_P, _N, _P, _P, _N, _N),
    "count_present": (_P, _N, _N, _P),
    "rank_present": (_P, _N, _N, _N, _N, _P, _P),
    "cell_codes": (_P, _N, _N, _P, _P, _P, _N, _P, _P, _P),
    "cell_sums": (_P, _P, _N, _N, _N, _N) + (_P,) * 6,
}


def _source() -> bytes:
    here = Path(__file__)
    return b"".join(here.with_name(f"{name}.py").read_bytes() for name in _SOURCES)


def _host() -> tuple[str, str, str]:
    """Target triple, CPU name and CPU features of this machine (llvmlite's view)."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    features = llvm.get_host_cpu_features().flatten()
    return llvm.get_process_triple(), llvm.get_host_cpu_name(), features


def _key() -> str:
    import llvmlite

    digest = hashlib.sha256()
    for part in (str(_FORMAT), llvmlite.__version__, *_host()):
        digest.update(part.encode() + b"\0")
    digest.update(_source())
    return digest.hexdigest()[:20]


def cache_dir() -> Path:
    """Return the folder of the cache file.

    ``__pycache__`` beside this module when writable, else the user's cache folder;
    ``VQ_KERNEL_CACHE`` in the environment overrides both.
    """
    override = os.environ.get("VQ_KERNEL_CACHE", "").strip()
    if override:
        return Path(override)
    here = Path(__file__).with_name("__pycache__")
    try:
        here.mkdir(exist_ok=True)
        if os.access(here, os.W_OK):
            return here
    except OSError:
        pass
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "vq-studio"


def _cache_path() -> Path:
    return cache_dir() / f"kernels.{_key()}.bin"


def _pack(objects: list[dict[str, Any]]) -> bytes:
    """Serialise the objects: magic, SHA-256 of the rest, JSON length, JSON, object files."""
    meta = [
        {k: v for k, v in o.items() if k != "object"} | {"size": len(o["object"])} for o in objects
    ]
    text = json.dumps(meta).encode()
    rest = struct.pack("<Q", len(text)) + text + b"".join(o["object"] for o in objects)
    return _MAGIC + hashlib.sha256(rest).digest() + rest


def _unpack(data: bytes, name: str) -> list[dict[str, Any]]:
    """Return the objects of a cache file; ValueError when it is not a whole, intact one."""
    start = len(_MAGIC) + 32
    if not data.startswith(_MAGIC) or len(data) < start + 8:
        raise ValueError(f"{name}: not a kernel cache file")
    if hashlib.sha256(data[start:]).digest() != data[len(_MAGIC) : start]:
        raise ValueError(f"{name}: damaged (checksum mismatch)")
    (n_meta,) = struct.unpack("<Q", data[start : start + 8])
    pos = start + 8 + n_meta
    objects = json.loads(data[start + 8 : pos])
    for o in objects:
        o["object"] = data[pos : pos + o["size"]]
        pos += o["size"]
    if set(_ARGTYPES) != {o["name"] for o in objects}:
        raise ValueError(f"{name}: entry points differ from this version's")
    return objects


@ctypes.CFUNCTYPE(None)
def _never_called() -> None:  # pragma: no cover - bound to the loops' unused error path
    """Stand in for the error path's numba and NRT symbols when numba is not loaded."""


def _symbol_address(name: str) -> int | None:
    """Address of a symbol the machine code leaves to the loader, or None if unknown."""
    libraries: list[Any] = [ctypes.pythonapi]
    if sys.platform == "win32":
        libraries.append(ctypes.cdll.msvcrt)
    else:
        libraries.append(ctypes.CDLL(None))
    for library in libraries:
        try:
            return ctypes.addressof(ctypes.c_char.in_dll(library, name))
        except ValueError:
            continue
    if name.startswith(("numba_", "NRT_")):
        return ctypes.cast(_never_called, ctypes.c_void_p).value
    return None


class Kernels:
    """The compiled loops, called with numpy arrays (checked, then passed as pointers).

    Parameters
    ----------
    addresses : dict of str to int
        Address of each entry point (``_ARGTYPES``).
    keep : object, optional
        What must stay alive for the code to stay mapped (the execution engine).
    """

    def __init__(self, addresses: dict[str, int], keep: Any = None) -> None:
        self._keep = keep
        self._fn = {
            name: ctypes.CFUNCTYPE(None, *argtypes)(addresses[name])
            for name, argtypes in _ARGTYPES.items()
        }

    @staticmethod
    def _ptr(a: np.ndarray, dtype: Any, shape: tuple[int, ...], what: str) -> int:
        if a.dtype != dtype or a.shape != shape or not a.flags.c_contiguous:
            raise ValueError(
                f"{what}: expected {np.dtype(dtype)} {shape} C-contiguous, got {a.dtype} {a.shape}"
            )
        return int(a.ctypes.data)

    @staticmethod
    def _scales(pal64: np.ndarray, scale: np.ndarray | None) -> tuple[np.ndarray, list[float]]:
        """Return the palette times the channel scales, and the scales as three floats."""
        if scale is None:
            return pal64, [1.0, 1.0, 1.0]
        s = np.asarray(scale, np.float64)
        if s.shape != (3,) or not np.all(np.isfinite(s) & (s > 0)):
            raise ValueError(f"channel scales must be 3 positive numbers, got {scale!r}")
        return np.ascontiguousarray(pal64 * s), [float(v) for v in s]

    def candidate_lists(
        self, pal64: np.ndarray, scale: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidate entries per colour cell (see :func:`quantize._fs_numba.candidate_lists`).

        Parameters
        ----------
        pal64 : ndarray of shape (K, 3), float64
        scale : ndarray of shape (3,), optional
            Channel scales of the search's distance (default: plain sRGB distance).

        Returns
        -------
        offsets : ndarray of shape (32**3 + 1,), int32
        items : ndarray of shape (offsets[-1],), int32
        """
        k = pal64.shape[0]
        self._ptr(pal64, np.float64, (k, 3), "palette")
        scaled, s = self._scales(pal64, scale)
        pal = scaled.ctypes.data
        dist = np.empty(max(k, 1))
        offsets = np.zeros(_N_CELLS + 1, np.int32)
        fn = self._fn["candidate_lists"]
        fn(pal, k, dist.ctypes.data, offsets.ctypes.data, offsets.ctypes.data, 0, 0, *s)
        np.cumsum(offsets, out=offsets)
        items = np.empty(max(int(offsets[-1]), 1), np.int32)
        fn(pal, k, dist.ctypes.data, offsets.ctypes.data, items.ctypes.data, items.size, 1, *s)
        return offsets, items[: offsets[-1]]

    def diffuse_rows(
        self,
        rgb: np.ndarray,
        take: np.ndarray,
        give: np.ndarray,
        pal64: np.ndarray,
        table: np.ndarray,
        offsets: np.ndarray,
        items: np.ndarray,
        direct: bool,
        limited: bool,
        cap_sq: float,
        drop_sq: float,
        lo: float,
        hi: float,
        cur: np.ndarray,
        cur3: np.ndarray,
        out: np.ndarray,
        y0: int,
        y1: int,
        scale: np.ndarray | None = None,
    ) -> None:
        """Floyd–Steinberg over rows ``y0:y1`` (see :func:`quantize._fs_numba.diffuse_rows`).

        ``give`` of shape (0, 0) means every pixel passes on all its error; ``table`` is the
        uint16 or int32 memo of 2**24 entries (filled with the same ``scale`` only); the
        other arrays as there.  ``scale`` (3,): channel scales of the nearest-entry
        distance, as in :meth:`candidate_lists` (default: plain sRGB distance).
        """
        m, n = rgb.shape[:2]
        k = pal64.shape[0]
        if not 0 <= y0 <= y1 <= m:
            raise ValueError(f"rows {y0}:{y1} outside 0:{m}")
        if direct and (items.shape != (k,) or not np.array_equal(items, np.arange(k))):
            raise ValueError("direct search needs items = arange(K)")
        if not direct and (offsets.size != _N_CELLS + 1 or int(offsets[-1]) > items.size):
            raise ValueError("offsets and items are not candidate lists")
        if k and items.size and not 0 <= int(items.min()) <= int(items.max()) < k:
            raise ValueError("items out of the palette")
        flags = (_DIRECT if direct else 0) | (_LIMITED if limited else 0)
        if give.size:
            flags |= _HAS_GIVE
            give_p = self._ptr(give, np.float32, (m, n), "give")
        else:
            give_p = self._ptr(take, np.float32, (m, n), "take")
        wide = table.dtype == np.int32
        if wide:
            flags |= _WIDE_TABLE
        # (a direct search reads no memo: any table will do)
        shape = table.shape if direct else (_TABLE_SIZE,)
        table_p = self._ptr(table, np.int32 if wide else np.uint16, shape, "table")
        row = (n + 2, 3)
        nxt = np.zeros(row, np.float32)
        nxt3 = np.zeros(row, np.float32)
        pal = np.ascontiguousarray(pal64, np.float32)
        self._ptr(pal64, np.float64, (k, 3), "palette")
        scaled, s = self._scales(pal64, scale)
        self._fn["diffuse_rows"](
            self._ptr(rgb, np.uint8, (m, n, 3), "rgb"),
            self._ptr(take, np.float32, (m, n), "take"),
            give_p,
            scaled.ctypes.data,
            pal.ctypes.data,
            table_p,
            table_p,
            self._ptr(offsets, np.int32, offsets.shape, "offsets"),
            self._ptr(items, np.int32, items.shape, "items"),
            self._ptr(cur, np.float32, row, "cur"),
            self._ptr(cur3, np.float32, row, "cur3"),
            nxt.ctypes.data,
            nxt3.ctypes.data,
            self._ptr(out, np.int32, (m, n), "out"),
            m,
            n,
            k,
            items.size,
            flags,
            cap_sq,
            drop_sq,
            lo,
            hi,
            *s,
            y0,
            y1,
        )

    def dither_map(
        self,
        image: np.ndarray,
        indices: np.ndarray,
        scale: float,
        floor: float,
        keep: float,
        flat_min: float,
        flat_step: float,
        bands: int = 1,
    ) -> np.ndarray:
        """Return the dither map (:func:`quantize._fs_numba.dither_map`), (M, N) float32.

        ``bands`` > 1 computes that many bands of rows in parallel threads.
        """
        m, n = indices.shape
        image_p = self._ptr(image, np.uint8, (m, n, 3), "image")
        indices_p = self._ptr(indices, np.int32, (m, n), "indices")
        out = np.empty((m, n), np.float32)
        fn = self._fn["dither_map"]

        def band(y0: int, y1: int) -> None:
            rows = min(m, y1 + 2) - max(0, y0 - 2)
            busy = np.empty((rows, n), np.float32)
            sums = np.empty((rows, n), np.float32)
            fn(
                image_p,
                indices_p,
                busy.ctypes.data,
                sums.ctypes.data,
                out.ctypes.data,
                m,
                n,
                scale,
                floor,
                keep,
                flat_min,
                flat_step,
                y0,
                y1,
            )

        cuts = np.linspace(0, m, max(1, min(bands, m)) + 1).astype(int)
        if len(cuts) <= 2:
            band(0, m)
            return out
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(cuts) - 1, thread_name_prefix="vq-dither-map") as pool:
            for f in [pool.submit(band, a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]:
                f.result()
        return out

    def nearest_all(
        self, X: np.ndarray, centers: np.ndarray, out: tuple[np.ndarray, ...], i0: int, i1: int
    ) -> None:
        """Nearest centre of points ``i0:i1`` (:func:`quantize._kmeans_numba.nearest_all`).

        Parameters
        ----------
        X : ndarray of shape (N, 3), float64
        centers : ndarray of shape (K, 3), float64
        out : (labels, upper, lower, second)
            ndarrays of shape (N,): int32, float64, float64, int32, written at ``i0:i1``
            (``second``: the second nearest centre, -1 when K == 1).
        """
        n, k = X.shape[0], centers.shape[0]
        labels, upper, lower, second = out
        if not 0 <= i0 <= i1 <= n:
            raise ValueError(f"points {i0}:{i1} outside 0:{n}")
        self._fn["nearest_all"](
            self._ptr(X, np.float64, (n, 3), "points"),
            n,
            self._ptr(centers, np.float64, (k, 3), "centres"),
            k,
            self._ptr(labels, np.int32, (n,), "labels"),
            self._ptr(upper, np.float64, (n,), "upper"),
            self._ptr(lower, np.float64, (n,), "lower"),
            self._ptr(second, np.int32, (n,), "second"),
            i0,
            i1,
        )

    def codes_rgb8(self, pixels: np.ndarray, codes: np.ndarray, i0: int, i1: int) -> None:
        """Pack pixels ``i0:i1`` into 24-bit codes (:func:`quantize._colors_numba.codes_rgb8`).

        Parameters
        ----------
        pixels : ndarray of shape (P, 3) or (P, 4), uint8, C-contiguous
            Red, green, blue (and alpha, ignored) of each pixel.
        codes : ndarray of shape (P,), int32
            Gets ``r << 16 | g << 8 | b`` at ``i0:i1``.
        """
        n, stride = pixels.shape if pixels.ndim == 2 else (0, 0)
        if pixels.dtype != np.uint8 or stride not in (3, 4) or not pixels.flags.c_contiguous:
            raise ValueError(
                f"pixels: expected uint8 (P, 3) or (P, 4) C-contiguous, got {pixels.dtype} "
                f"{pixels.shape}"
            )
        self._span(n, i0, i1)
        self._fn["codes_rgb8"](
            int(pixels.ctypes.data),
            n,
            stride,
            self._ptr(codes, np.int32, (n,), "codes"),
            i0,
            i1,
        )

    @staticmethod
    def _span(n: int, i0: int, i1: int) -> None:
        if not 0 <= i0 <= i1 <= n:
            raise ValueError(f"items {i0}:{i1} outside 0:{n}")

    def tally_codes(self, codes: np.ndarray, counts: np.ndarray, i0: int, i1: int) -> None:
        """Count codes ``i0:i1`` (:func:`quantize._colors_numba.tally_codes`).

        Parameters
        ----------
        codes : ndarray of shape (P,), int32
            Each in ``0 .. 2**24 - 1`` (as :meth:`codes_rgb8` writes them; not checked).
        counts : ndarray of shape (2**24,), int32
            Incremented at each code.
        """
        n = codes.shape[0]
        self._span(n, i0, i1)
        self._fn["tally_codes"](
            self._ptr(codes, np.int32, (n,), "codes"),
            n,
            self._ptr(counts, np.int32, (1 << 24,), "counts"),
            i0,
            i1,
        )

    def rank_codes(
        self, codes: np.ndarray, ranks: np.ndarray, inverse: np.ndarray, i0: int, i1: int
    ) -> None:
        """Look codes ``i0:i1`` up (:func:`quantize._colors_numba.rank_codes`).

        Parameters
        ----------
        codes : ndarray of shape (P,), int32
            Each in ``0 .. 2**24 - 1`` (not checked).
        ranks : ndarray of shape (2**24,), int32
            The value of each code.
        inverse : ndarray of shape (P,), int32
            Gets ``ranks[code]`` at ``i0:i1``.
        """
        n = codes.shape[0]
        self._span(n, i0, i1)
        self._fn["rank_codes"](
            self._ptr(codes, np.int32, (n,), "codes"),
            n,
            self._ptr(ranks, np.int32, (1 << 24,), "ranks"),
            self._ptr(inverse, np.int32, (n,), "inverse"),
            i0,
            i1,
        )

    def count_present(self, counts: np.ndarray, i0: int, i1: int) -> int:
        """Return how many of ``counts[i0:i1]`` are not zero (a table of 2**24 int32).

        Parameters
        ----------
        counts : ndarray of shape (2**24,), int32
        i0, i1 : int
            The span of the table counted.

        Returns
        -------
        n : int
        """
        self._span(1 << 24, i0, i1)
        out = np.zeros(1, np.int64)
        self._fn["count_present"](
            self._ptr(counts, np.int32, (1 << 24,), "counts"), i0, i1, out.ctypes.data
        )
        return int(out[0])

    def rank_present(
        self, table: np.ndarray, i0: int, i1: int, first: int, uniq: np.ndarray, counts: np.ndarray
    ) -> None:
        """Rank the codes present in ``table[i0:i1]`` (:func:`quantize._colors_numba.rank_present`).

        Parameters
        ----------
        table : ndarray of shape (2**24,), int32
            The count of each code; each nonzero one in ``i0:i1`` becomes the code's rank.
        i0, i1 : int
            The span of the table ranked.
        first : int
            Rank of the first code present in the span (the codes present before it).
        uniq, counts : ndarray of shape (U,), int32 and int64
            Get each ranked code and its count at ``first`` on (U: the codes present in
            the whole table; not checked against ``first``, which the caller counted).
        """
        self._span(1 << 24, i0, i1)
        n = uniq.shape[0]
        if not 0 <= first <= n:
            raise ValueError(f"first rank {first} outside 0:{n}")
        self._fn["rank_present"](
            self._ptr(table, np.int32, (1 << 24,), "table"),
            i0,
            i1,
            first,
            n,
            self._ptr(uniq, np.int32, (n,), "uniq"),
            self._ptr(counts, np.int64, (n,), "counts"),
        )

    def cell_stats(
        self, X: np.ndarray, w: np.ndarray, lo: np.ndarray, h: np.ndarray, spread: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """Occupied grid cells of points, in Morton order, with their sums.

        :func:`quantize._cells_numba.cell_codes` and :func:`~quantize._cells_numba.cell_sums`.

        Parameters
        ----------
        X : ndarray of shape (N, D), float64, C-contiguous, D <= 3
            Points, each coordinate at least ``lo``'s.
        w : ndarray of shape (N,), float64
            Weights.
        lo, h : ndarray of shape (D,), float64
            The grid's origin and cell side per axis (sides > 0).
        spread : ndarray of shape (2**bits,), int64
            The bits of each cell coordinate (``2**bits`` cells per axis, ``D * bits`` <= 24)
            spread ``D`` places apart (Morton code).

        Returns
        -------
        cell : ndarray of shape (N,), int32
            Each point's cell (a row of the arrays below).
        codes : ndarray of shape (B,), int64
            Morton code of each occupied cell, increasing.
        W : ndarray of shape (B,)
            Cell weights.
        S : ndarray of shape (B, D)
            Weighted sums of the cells' points.
        Q : ndarray of shape (B,)
            Weighted sums of their squared norms.
        """
        n, d = X.shape
        bits = int(spread.shape[0]).bit_length() - 1
        if not 1 <= d <= 3 or spread.shape != (1 << bits,) or not 1 <= bits or d * bits > 24:
            raise ValueError(f"cells of {d}-dimensional points at {bits} bits: not supported")
        lo = np.ascontiguousarray(lo, np.float64)
        h = np.ascontiguousarray(h, np.float64)
        if lo.shape != (d,) or h.shape != (d,) or not np.all(h > 0):
            raise ValueError(f"grid origin {lo} and sides {h} do not fit {d} dimensions")
        table = np.zeros(1 << (d * bits), dtype=np.int32)
        cell = np.empty(n, dtype=np.int32)
        count = np.zeros(1, dtype=np.int64)
        x_p = self._ptr(X, np.float64, (n, d), "points")
        self._fn["cell_codes"](
            x_p, n, d, lo.ctypes.data, h.ctypes.data,
            self._ptr(spread, np.int64, (1 << bits,), "spread"), bits,
            table.ctypes.data, cell.ctypes.data, count.ctypes.data,
        )  # fmt: skip
        m = int(count[0])
        codes = np.empty(m, dtype=np.int64)
        W, S, Q = np.zeros(m), np.zeros((m, d)), np.zeros(m)
        self._fn["cell_sums"](
            x_p, self._ptr(w, np.float64, (n,), "weights"), n, d, bits, m,
            table.ctypes.data, cell.ctypes.data, codes.ctypes.data,
            W.ctypes.data, S.ctypes.data, Q.ctypes.data,
        )  # fmt: skip
        return cell, codes, W, S, Q

    def bounded_update(
        self,
        X: np.ndarray,
        centers: np.ndarray,
        state: tuple[np.ndarray, ...],
        tables: tuple[np.ndarray, ...],
        eps: float,
        i0: int,
        i1: int,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """E step for points ``i0:i1`` (:func:`quantize._kmeans_numba.bounded_update`).

        Parameters
        ----------
        X : ndarray of shape (N, 3), float64
        centers : ndarray of shape (K, 3), float64
        state : (labels, upper, lower)
            ndarrays of shape (N,): int32, float64, float64, updated in place.
        tables : (shift, half, near_idx, near_dist)
            ndarrays of shape (K,), (K,), (K, K - 1) int32, (K, K - 1), as
            :func:`quantize.cluster._nearest.centre_tables` makes them.
        eps : float

        Returns
        -------
        changed : ndarray of shape (C,), intp
            The points that changed centre.
        old : ndarray of shape (C,), int32
            Their previous labels.
        n_searched : int
            Points whose bounds did not prove their centre.
        """
        n, k = X.shape[0], centers.shape[0]
        labels, upper, lower = state
        shift, half, near_idx, near_dist = tables
        if not 0 <= i0 <= i1 <= n:
            raise ValueError(f"points {i0}:{i1} outside 0:{n}")
        own = labels[i0:i1]
        if own.size and not 0 <= int(own.min()) <= int(own.max()) < k:
            raise ValueError("labels out of the centres")
        near = (k, max(k - 1, 0))
        if near_idx.size and not 0 <= int(near_idx.min()) <= int(near_idx.max()) < k:
            raise ValueError("near_idx out of the centres")
        argmax = int(np.argmax(shift)) if k else 0
        max_shift = float(shift[argmax]) if k else 0.0
        other = float(np.delete(shift, argmax).max()) if k > 1 else 0.0
        changed = np.empty(i1 - i0, np.intp)
        old = np.empty(i1 - i0, np.int32)
        counts = np.zeros(2, np.intp)
        self._fn["bounded_update"](
            self._ptr(X, np.float64, (n, 3), "points"),
            n,
            self._ptr(centers, np.float64, (k, 3), "centres"),
            k,
            self._ptr(labels, np.int32, (n,), "labels"),
            self._ptr(upper, np.float64, (n,), "upper"),
            self._ptr(lower, np.float64, (n,), "lower"),
            self._ptr(shift, np.float64, (k,), "shift"),
            self._ptr(half, np.float64, (k,), "half"),
            self._ptr(near_idx, np.int32, near, "near_idx"),
            self._ptr(near_dist, np.float64, near, "near_dist"),
            max_shift,
            other,
            argmax,
            eps,
            i0,
            i1,
            changed.ctypes.data,
            old.ctypes.data,
            counts.ctypes.data,
        )
        n_changed = int(counts[0])
        return changed[:n_changed], old[:n_changed], int(counts[1])


def _target_machine() -> Any:
    import llvmlite.binding as llvm

    _, cpu, features = _host()
    return llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(
        cpu=cpu, features=features, opt=3
    )


def _load_objects(objects: list[dict[str, Any]]) -> Kernels:
    """Link the object files into this process (llvmlite's MCJIT) and wrap their entry points."""
    import llvmlite.binding as llvm

    tm = _target_machine()
    for name in sorted({e for o in objects for e in o["externals"]}):
        if not llvm.address_of_symbol(name):
            address = _symbol_address(name)
            if address is None:
                raise RuntimeError(f"the compiled loops need {name!r}, which this process lacks")
            llvm.add_symbol(name, address)
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), tm)
    for o in objects:
        engine.add_object_file(llvm.ObjectFileRef.from_data(o["object"]))
    engine.finalize_object()
    addresses = {o["name"]: engine.get_function_address(o["symbol"]) for o in objects}
    missing = [name for name, address in addresses.items() if not address]
    if missing:
        raise RuntimeError(f"entry points not found in the compiled code: {missing}")
    return Kernels(addresses, keep=engine)


def _check_in_child(path: Path) -> str:
    """Load a cache file in a fresh process (a linking failure there aborts it, not us)."""
    import subprocess

    if getattr(sys, "frozen", False):
        return "not checked in a frozen application"
    code = "import sys, quantize._native as m; m._load_file(sys.argv[1]); print('ok')"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parent.parent), env.get("PYTHONPATH", "")]
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if done.returncode != 0 or done.stdout.strip() != "ok":
        return (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return ""


def _load_file(path: str | Path) -> Kernels:
    path = Path(path)
    return _load_objects(_unpack(path.read_bytes(), str(path)))


def _build() -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Compile the loops with numba: their object files and their in-process addresses.

    Per entry point: ``name``, ``symbol`` (its native name), ``object`` (the object file,
    bytes) and ``externals`` (the symbols it leaves to the loader: the Python and numba
    functions of the error path, which these loops never take).
    """
    import importlib

    import llvmlite.binding as llvm

    cfuncs: dict[str, Any] = {}
    for name in _SOURCES:
        cfuncs.update(importlib.import_module(f"quantize.{name}").KERNELS)
    target_machine = _target_machine()
    objects = []
    for name, cfunc in cfuncs.items():
        module = llvm.parse_assembly(cfunc.inspect_llvm())
        module.verify()
        externals = sorted(
            {f.name for f in module.functions if f.is_declaration}
            | {g.name for g in module.global_variables if g.is_declaration}
        )
        objects.append(
            {
                "name": name,
                "symbol": cfunc.native_name,
                "object": target_machine.emit_object(module),
                "externals": [e for e in externals if not e.startswith("llvm.")],
            }
        )
    return objects, {name: int(f.address) for name, f in cfuncs.items()}


def load() -> Kernels:
    """Return the compiled loops: from the cache file, or compiled now (numba) and cached.

    Returns
    -------
    kernels : Kernels

    Raises
    ------
    ImportError
        llvmlite (or, to build the cache, numba) is not installed.
    RuntimeError, ValueError, OSError
        The machine code cannot be built or linked.
    """
    path = _cache_path()
    refused = path.with_suffix(".refused")
    if refused.exists():  # a fresh process could not link it: not tried again on this key
        raise RuntimeError(f"{refused}: {refused.read_text(errors='replace').strip()}")
    try:
        return _load_file(path)
    except FileNotFoundError:
        pass
    except ValueError:  # damaged or foreign: built again below
        pass
    import tempfile

    objects, addresses = _build()
    kernels = Kernels(addresses)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_pack(objects))
            os.chmod(tmp, 0o644)  # (mkstemp's 0600 would hide it from other users)
            problem = _check_in_child(Path(tmp))
            if problem:
                refused.write_text(problem + "\n")
            else:
                os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass  # an unwritable cache: this process has the code all the same
    return kernels


class _Loaded:
    """State of the process's load: the loops, False if unavailable, None if not tried."""

    lock = threading.Lock()
    module: Any = None
    error = ""
    loading = False  # a background load was started (prepare)


def kernels() -> Kernels | None:
    """Return the compiled loops, loading them on the first call; None if unavailable.

    The first call loads the machine code with llvmlite from its cache file (a few
    hundredths of a second; compiling it with numba the first time after an install takes
    several seconds).  None when numba/llvmlite is not installed, fails, or ``VQ_NUMBA=0``;
    the reason is in :func:`kernels_error`.  Thread-safe: concurrent callers wait for one
    load.
    """
    with _Loaded.lock:
        if _Loaded.module is None:
            if os.environ.get("VQ_NUMBA", "1").strip() == "0":
                _Loaded.module, _Loaded.error = False, "disabled by VQ_NUMBA=0"
            else:
                try:
                    _Loaded.module = load()
                except Exception as exc:  # not installed or broken: the numpy forms run
                    _Loaded.module = False
                    _Loaded.error = f"{type(exc).__name__}: {exc}"
        module = _Loaded.module
    return module if module else None


def loaded() -> Kernels | None:
    """Return the loops if this process has loaded them already, else None (never loads)."""
    return _Loaded.module if _Loaded.module else None


def kernels_for(work: int, load_from: int) -> Kernels | None:
    """Return the loops if loaded, or load them now when ``work >= load_from``; else None.

    A caller whose work is small uses the loops only if this process has them already: a
    first load from the cache file (about 0.03 s) would cost more than it saves.

    Parameters
    ----------
    work : int
        The size of the caller's work (points, pixels, points times centres).
    load_from : int
        The work from which loading the loops pays for itself.
    """
    loaded_now = loaded()
    if loaded_now is not None or work < load_from:
        return loaded_now
    return kernels()


def kernels_error() -> str:
    """Why the compiled loops are not used ("" when they are, or were never tried)."""
    return _Loaded.error


def prepare() -> None:
    """Start loading the compiled loops in a background thread, if not loaded or loading."""
    with _Loaded.lock:
        if _Loaded.module is not None or _Loaded.loading:
            return
        _Loaded.loading = True
    threading.Thread(target=_load_politely, name="vq-kernels-load", daemon=True).start()


#: Interpreter switch interval while the loops load in the background (the default is
#: 5 ms): kite K = 64, the fit beside the load 0.50 -> 0.43 s (0.18 s alone).
_LOAD_SWITCH_INTERVAL = 0.0002


def _load_politely() -> None:
    """Load the loops, handing the interpreter lock back quickly meanwhile.

    The first load after an install compiles with numba (seconds of Python): with the
    default 5 ms switch interval, the main thread would wait up to 5 ms for the lock after
    each numpy call.  Later loads (llvmlite, about 0.03 s) hardly hold it.
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(_LOAD_SWITCH_INTERVAL)
    try:
        kernels()
    finally:
        sys.setswitchinterval(interval)
