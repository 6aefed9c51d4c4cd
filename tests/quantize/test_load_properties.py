"""Property tests of the loader on generated headers (Hypothesis).

Each strategy writes a file of one format whose header fields take arbitrary values (width,
height, bit depth, colour type, compression, palette size...), followed by a body that may be
plausible, random or missing, and possibly cut anywhere.  Whatever the bytes, loading either
gives a valid image within the pixel cap or raises :class:`LoadError` naming the source:
never another exception, never a hang, never a large allocation.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import struct
import sys
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantize.io.load import LoadError, load_image_bytes

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGALRM and getrusage")

#: A small cap, so that any image that does decode is small (the cap is checked before
#: decoding); the default cap is exercised by the test at the end.
MAX_PIXELS = 1 << 16
#: Longest time one load may take (a hang becomes a failure, not a stuck test run).
LOAD_LIMIT_S = 10.0
#: Largest growth of the process's peak resident memory over one property test.
PEAK_GROWTH_LIMIT = 256 << 20

Strategy = st.SearchStrategy[Any]

PROPERTY = settings(
    max_examples=300,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class LoadTookTooLong(BaseException):
    """Raised by the alarm; a BaseException so the loader cannot turn it into LoadError."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum, frame):
        raise LoadTookTooLong(f"a load took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def peak_rss_bytes() -> int:
    kib_or_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib_or_bytes if sys.platform == "darwin" else kib_or_bytes * 1024


@contextlib.contextmanager
def bounded_peak_memory(limit: int = PEAK_GROWTH_LIMIT) -> Iterator[None]:
    before = peak_rss_bytes()
    yield
    grown = peak_rss_bytes() - before
    assert grown < limit, f"peak memory grew by {grown / 2**20:.0f} MiB"


def loads_or_refuses(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> str:
    """Load ``data``; check the outcome is a valid image or a LoadError naming ``name``."""
    with time_limit(LOAD_LIMIT_S):
        try:
            loaded = load_image_bytes(data, name=name, max_pixels=max_pixels)
        except LoadError as exc:
            assert str(exc).startswith(f"{name}: ") and exc.problem, str(exc)
            return "refused"
    pixels = loaded.pixels
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    assert pixels.dtype in (np.uint8, np.uint16) and pixels.flags.c_contiguous
    assert pixels.shape[:2] == (loaded.height, loaded.width)
    assert 1 <= loaded.width * loaded.height <= max_pixels
    assert loaded.bit_depth == (16 if pixels.dtype == np.uint16 else 8)
    assert loaded.has_alpha == (pixels.shape[2] == 4)
    return "loaded"


# ------------------------------------------------------------------ field strategies


def mostly(usual: Strategy, anything: Strategy, odds: int = 4) -> Strategy:
    """Usual values ``odds`` times out of ``odds + 1``, so most files get past the header.

    (Hypothesis favours the smallest choice, 0: it picks the usual branch.)
    """
    return st.integers(0, odds).flatmap(lambda i: anything if i == odds else usual)


def sizes() -> st.SearchStrategy[int]:
    """Image dimensions: mostly small, else zero, near the caps, huge, the field's limit."""
    edges = st.sampled_from([0, 255, 256, 257, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1])
    return mostly(st.integers(1, 48), st.one_of(edges, st.integers(0, 2**32 - 1)))


def byte_field(usual: list[int], odds: int = 4) -> st.SearchStrategy[int]:
    """A one-byte header field: mostly its valid values, sometimes anything."""
    return mostly(st.sampled_from(usual), st.integers(0, 255), odds)


def short_field(usual: list[int]) -> st.SearchStrategy[int]:
    """A 16-bit header field: mostly its valid values, sometimes anything."""
    return mostly(st.sampled_from(usual), st.integers(0, 65535))


@st.composite
def bodies(draw: st.DrawFn, plausible_size: int) -> bytes:
    """Image data: compressed zeros or noise, raw noise, or nothing."""
    kind = draw(st.sampled_from(["zlib-zeros", "zlib-noise", "raw", "empty"]))
    n = draw(st.integers(0, max(0, min(plausible_size, 20_000))))
    if kind == "zlib-zeros":
        return zlib.compress(b"\0" * n)
    if kind == "zlib-noise":
        return zlib.compress(draw(st.binary(max_size=min(n, 2000))))
    if kind == "raw":
        return draw(st.binary(max_size=min(n, 4000)))
    return b""


@st.composite
def cut(draw: st.DrawFn, data: bytes) -> bytes:
    """The whole file, or (one time in four) a prefix of it: a truncated download."""
    if draw(st.integers(0, 3)) < 3:
        return data
    return data[: draw(st.integers(0, len(data)))]


def png_chunk(kind: bytes, body: bytes, good_crc: bool = True) -> bytes:
    crc = zlib.crc32(kind + body) ^ (0 if good_crc else 1)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


# ------------------------------------------------------------------ formats


@st.composite
def png_files(draw: st.DrawFn) -> bytes:
    width, height = draw(sizes()), draw(sizes())
    valid = [(0, d) for d in (1, 2, 4, 8, 16)] + [(3, d) for d in (1, 2, 4, 8)]
    valid += [(c, d) for c in (2, 4, 6) for d in (8, 16)]
    pair = mostly(st.sampled_from(valid), st.tuples(st.integers(0, 255), st.integers(0, 255)))
    ctype, depth = draw(pair)
    ihdr = struct.pack(
        ">IIBBBBB",
        width,
        height,
        depth,
        ctype,
        draw(byte_field([0], odds=10)),  # compression
        draw(byte_field([0], odds=10)),  # filter method
        draw(byte_field([0, 1], odds=10)),  # interlace
    )
    chunks = [png_chunk(b"IHDR", ihdr, good_crc=draw(st.integers(0, 9)) < 9)]
    if ctype == 3 or draw(st.booleans()):
        chunks.append(png_chunk(b"PLTE", draw(st.binary(max_size=800))))
    if draw(st.booleans()):
        chunks.append(png_chunk(b"tRNS", draw(st.binary(max_size=300))))
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(ctype, 4)
    raw = height * (1 + (width * channels * max(depth, 1) + 7) // 8)
    data = draw(bodies(raw))
    for piece in np.array_split(np.frombuffer(data, np.uint8), draw(st.integers(1, 3))):
        chunks.append(png_chunk(b"IDAT", piece.tobytes()))
    chunks.append(png_chunk(b"IEND", b""))
    return draw(cut(b"\x89PNG\r\n\x1a\n" + b"".join(chunks)))


@st.composite
def tiff_files(draw: st.DrawFn) -> bytes:
    endian = draw(st.sampled_from(["<", ">"]))
    width, height = draw(sizes()), draw(sizes())
    # (photometric, samples per pixel, bits per sample, sample format) that readers know
    layouts = [
        (0, 1, 1, 1),
        (1, 1, 8, 1),
        (1, 1, 12, 1),
        (1, 1, 16, 1),
        (1, 1, 16, 2),
        (1, 1, 32, 1),
        (1, 1, 32, 3),
        (1, 1, 64, 3),
        (1, 2, 8, 1),
        (1, 2, 16, 1),
        (2, 3, 8, 1),
        (2, 3, 16, 1),
        (2, 3, 32, 3),
        (2, 4, 8, 1),
        (2, 4, 16, 1),
        (3, 1, 4, 1),
        (3, 1, 8, 1),
        (5, 4, 8, 1),
        (6, 3, 8, 1),
    ]
    field = st.integers(0, 65535)
    photometric, spp, bps, sample_format = draw(
        mostly(st.sampled_from(layouts), st.tuples(field, field, field, field))
    )
    compression = draw(short_field([1, 1, 1, 5, 7, 8, 32773, 32946, 50000]))
    planar = draw(short_field([1, 1, 2]))
    rows_per_strip = draw(mostly(st.just(height), st.integers(0, 2**32 - 1)))
    body = draw(bodies(width * height * max(spp, 1) * max(bps, 1) // 8))
    n_entries = 11 + (photometric == 3)
    ifd_size = 2 + 12 * n_entries + 4
    data_offset = 8 + ifd_size
    strip_offset = draw(mostly(st.just(data_offset), st.integers(0, 2**32 - 1)))
    strip_count = draw(mostly(st.just(len(body)), st.integers(0, 2**32 - 1)))
    # (tag, type, value): SHORT = 3, LONG = 4; one value each, kept in the entry
    entries = [
        (256, 4, width),
        (257, 4, height),
        (258, 3, bps),
        (259, 3, compression),
        (262, 3, photometric),
        (273, 4, strip_offset),
        (277, 3, min(spp, 65535)),
        (278, 4, rows_per_strip),
        (279, 4, strip_count),
        (284, 3, planar),
        (339, 3, sample_format),
    ]
    if photometric == 3:  # a colour map, of a random (often wrong) length
        entries.append((320, 3, draw(st.integers(0, 65535))))
    ifd = struct.pack(f"{endian}H", len(entries))
    for tag, kind, value in sorted(entries):
        packed = (
            struct.pack(f"{endian}HH", value & 0xFFFF, 0)
            if kind == 3
            else struct.pack(f"{endian}I", value)
        )
        ifd += struct.pack(f"{endian}HHI", tag, kind, 1) + packed
    ifd += struct.pack(f"{endian}I", 0)
    magic = b"II*\x00" if endian == "<" else b"MM\x00*"
    return draw(cut(magic + struct.pack(f"{endian}I", 8) + ifd + body))


@st.composite
def bmp_files(draw: st.DrawFn) -> bytes:
    width = draw(mostly(st.integers(-40, 40), st.integers(-(2**31), 2**31 - 1)))
    height = draw(mostly(st.integers(-40, 40), st.integers(-(2**31), 2**31 - 1)))
    bpp = draw(short_field([1, 4, 8, 16, 24, 32]))
    compression = draw(mostly(st.sampled_from([0, 0, 1, 2, 3]), st.integers(0, 2**32 - 1)))
    colours = draw(mostly(st.integers(0, 300), st.integers(0, 2**32 - 1)))
    header_size = draw(mostly(st.sampled_from([40, 40, 12, 52, 56, 108, 124]), st.integers(0, 200)))
    info = struct.pack(
        "<IiiHHIIiiII",
        header_size,
        width,
        height,
        draw(st.sampled_from([1, 0, 2])),  # planes
        bpp,
        compression,
        draw(st.integers(0, 2**32 - 1)),  # image size
        0,
        0,
        colours,
        0,
    )
    info += draw(st.binary(max_size=max(0, header_size - len(info))))  # masks, colour space
    palette = draw(st.binary(max_size=4 * min(colours, 300)))
    body = draw(bodies(abs(width) * abs(height) * max(bpp, 1) // 8))
    offset = draw(mostly(st.just(14 + len(info) + len(palette)), st.integers(0, 2**32 - 1)))
    head = b"BM" + struct.pack("<IHHI", 14 + len(info) + len(palette) + len(body), 0, 0, offset)
    return draw(cut(head + info + palette + body))


@st.composite
def gif_files(draw: st.DrawFn) -> bytes:
    small = mostly(st.integers(1, 48), st.integers(0, 65535))
    offset = mostly(st.just(0), st.integers(0, 65535))
    flags = draw(st.integers(0, 255))  # global colour table and its size
    screen = struct.pack("<HHBBB", draw(small), draw(small), flags, draw(st.integers(0, 255)), 0)
    table_size = 3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0
    table = draw(
        mostly(st.just(table_size), st.integers(0, 768)).flatmap(
            lambda n: st.binary(min_size=n, max_size=n)
        )
    )
    descriptor = b"," + struct.pack(
        "<HHHHB", draw(offset), draw(offset), draw(small), draw(small), draw(byte_field([0, 0x40]))
    )
    code_size = bytes([draw(byte_field([2, 8]))])
    blocks = b"".join(
        bytes([len(b)]) + b for b in draw(st.lists(st.binary(min_size=1, max_size=255), max_size=4))
    )
    data = b"GIF89a" + screen + table + descriptor + code_size + blocks + b"\x00;"
    return draw(cut(data))


@st.composite
def pnm_files(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["P1", "P2", "P3", "P4", "P5", "P6"]))
    width, height = draw(sizes()), draw(sizes())
    maxval = draw(mostly(st.sampled_from([1, 255, 256, 65535]), st.integers(0, 2**20)))
    header = f"{kind}\n{width} {height}\n" + ("" if kind in ("P1", "P4") else f"{maxval}\n")
    body = draw(st.binary(max_size=min(width * height * 6, 4000)))
    return draw(cut(header.encode() + body))


@st.composite
def jpeg_files(draw: st.DrawFn) -> bytes:
    n_components = draw(mostly(st.sampled_from([1, 3, 4]), st.sampled_from([0, 2, 255])))
    small = mostly(st.integers(1, 48), st.integers(0, 65535))
    sof = struct.pack(">BHHB", draw(byte_field([8, 12])), draw(small), draw(small), n_components)
    for i in range(min(n_components, 4)):
        sof += bytes([i + 1, draw(byte_field([0x11, 0x22, 0x21])), draw(byte_field([0, 1]))])

    def segment(marker: int, body: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body

    quant = segment(0xDB, b"\x00" + draw(st.binary(min_size=64, max_size=64)))
    sof_marker = draw(st.sampled_from([0xC0, 0xC1, 0xC2, 0xC3, 0xC9]))
    scan = segment(0xDA, bytes([1, 1, 0, 0, 63, 0]))
    data = b"\xff\xd8" + quant + segment(sof_marker, sof) + scan
    data += draw(st.binary(max_size=2000)) + b"\xff\xd9"
    return draw(cut(data))


# ------------------------------------------------------------------ properties


@pytest.mark.parametrize(
    ("files", "name"),
    [
        (png_files(), "gen.png"),
        (tiff_files(), "gen.tif"),
        (bmp_files(), "gen.bmp"),
        (gif_files(), "gen.gif"),
        (pnm_files(), "gen.ppm"),
        (jpeg_files(), "gen.jpg"),
    ],
    ids=["PNG", "TIFF", "BMP", "GIF", "PNM", "JPEG"],
)
def test_generated_files_load_or_raise_load_error(files, name):
    outcomes: list[str] = []

    @PROPERTY
    @given(files)
    def check(data: bytes) -> None:
        outcomes.append(loads_or_refuses(data, name))

    with bounded_peak_memory():
        check()
    assert "refused" in outcomes  # the strategies do reach the error paths


@PROPERTY
@given(png_files())
def test_generated_pngs_under_the_default_cap_stay_small_in_memory(data):
    """Declared sizes up to the default cap (10**8 pixels) with tiny bodies: no big buffer."""
    with bounded_peak_memory():
        loads_or_refuses(data, "big.png", max_pixels=100_000_000)
