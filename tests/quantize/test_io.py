"""Loading: every input kind, generated in the test (no committed binaries)."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps
from skimage.color import rgb2lab

from quantize.io.load import (
    LoadError,
    apply_orientation,
    from_array,
    load_image,
    load_image_bytes,
    require_visible_pixels,
)
from quantize.pixels import to_uint8

RNG = np.random.default_rng(1234)


def rgb_image(h: int = 12, w: int = 17) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def filter_rows(values: np.ndarray, filters: str = "cycle") -> bytes:
    """Big-endian 16-bit rows, each with a PNG filter (every type in turn, or none)."""
    h, w, c = values.shape
    raw = np.empty((h, w, c, 2), np.uint8)
    raw[..., 0] = values >> 8
    raw[..., 1] = values & 255
    cur = raw.reshape(h, w * c * 2).astype(np.int32)
    bpp = c * 2
    out = bytearray()
    for y in range(h):
        f = (y % 5) if filters == "cycle" else 0
        row = cur[y]
        up = cur[y - 1] if y else np.zeros_like(row)
        left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        ul = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
        if f == 0:
            pred = 0
        elif f == 1:
            pred = left
        elif f == 2:
            pred = up
        elif f == 3:
            pred = (left + up) >> 1
        else:
            p = left + up - ul
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
        out.append(f)
        out += ((row - pred) & 255).astype(np.uint8).tobytes()
    return bytes(out)


# Adam7 passes: (first column, first row, column step, row step)
ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def encode_png16(
    values: np.ndarray, ctype: int, *, filters: str = "cycle", interlace: bool = False
) -> bytes:
    """Minimal 16-bit PNG encoder using every filter type, optionally Adam7-interlaced."""
    h, w, _ = values.shape
    if interlace:  # seven reduced images, each filtered on its own; empty passes left out
        passes = [values[y0::dy, x0::dx] for x0, y0, dx, dy in ADAM7]
        data = b"".join(filter_rows(p, filters) for p in passes if p.size)
    else:
        data = filter_rows(values, filters)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, int(interlace))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(data))
        + png_chunk(b"IEND", b"")
    )


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    pos = 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]))
        pos += 12 + n
    return out


def save(img: Image.Image, path: Path, fmt: str | None = None, **kw) -> Path:
    img.save(path, fmt, **kw)
    return path


# ------------------------------------------------------------------ ordinary modes


@pytest.mark.parametrize("ext", ["png", "bmp", "tif", "webp", "ppm"])
def test_lossless_rgb_formats_roundtrip(tmp_path, ext):
    arr = rgb_image()
    path = save(
        Image.fromarray(arr), tmp_path / f"a.{ext}", **({"lossless": True} if ext == "webp" else {})
    )
    loaded = load_image(path)
    assert loaded.pixels.dtype == np.uint8 and loaded.bit_depth == 8
    np.testing.assert_array_equal(loaded.pixels, arr)
    assert (loaded.width, loaded.height) == (17, 12)
    assert loaded.file_size == path.stat().st_size
    assert loaded.n_frames == 1 and not loaded.has_alpha
    assert loaded.info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_jpeg_loads_close(tmp_path):
    arr = np.full((16, 16, 3), (200, 40, 90), np.uint8)
    loaded = load_image(save(Image.fromarray(arr), tmp_path / "a.jpg", quality=95))
    assert loaded.format == "JPEG" and loaded.mode == "RGB"
    assert np.abs(loaded.pixels.astype(int) - arr).max() <= 4


def test_mode_1_and_L(tmp_path):
    bits = RNG.integers(0, 2, size=(9, 11)).astype(bool)
    loaded = load_image(save(Image.fromarray(bits), tmp_path / "b.png"))
    assert loaded.mode == "1"
    np.testing.assert_array_equal(loaded.pixels[:, :, 0], bits * 255)
    assert loaded.pixels.shape == (9, 11, 3)
    grey = RNG.integers(0, 256, size=(9, 11), dtype=np.uint8)
    loaded = load_image(save(Image.fromarray(grey), tmp_path / "g.png"))
    assert loaded.mode == "L"
    for c in range(3):
        np.testing.assert_array_equal(loaded.pixels[:, :, c], grey)


def test_LA_and_RGBA_keep_alpha(tmp_path):
    la = np.stack(
        [np.full((4, 5), 100, np.uint8), np.tile([0, 255, 128, 7, 255], (4, 1)).astype(np.uint8)], 2
    )
    loaded = load_image(save(Image.fromarray(la, "LA"), tmp_path / "la.png"))
    assert loaded.has_alpha and loaded.pixels.shape == (4, 5, 4)
    np.testing.assert_array_equal(loaded.pixels[:, :, 3], la[:, :, 1])
    rgba = np.dstack([rgb_image(4, 5), la[:, :, 1]])
    loaded = load_image(save(Image.fromarray(rgba, "RGBA"), tmp_path / "rgba.png"))
    np.testing.assert_array_equal(loaded.pixels, rgba)


def test_opaque_alpha_is_dropped(tmp_path):
    rgba = np.dstack([rgb_image(4, 5), np.full((4, 5), 255, np.uint8)])
    loaded = load_image(save(Image.fromarray(rgba, "RGBA"), tmp_path / "o.png"))
    assert loaded.pixels.shape == (4, 5, 3) and not loaded.has_alpha


def test_palette_with_trns(tmp_path):
    pal = Image.new("P", (6, 3))
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    pal.putdata([0, 1, 2, 0, 1, 2] * 3)
    path = save(pal, tmp_path / "p.png", transparency=1)
    loaded = load_image(path)
    assert loaded.mode == "P" and loaded.has_alpha
    px = loaded.pixels
    assert tuple(px[0, 0]) == (255, 0, 0, 255)
    assert px[0, 1, 3] == 0
    assert tuple(px[0, 2]) == (0, 0, 255, 255)


def test_palette_without_trns_is_rgb(tmp_path):
    pal = Image.new("P", (4, 2))
    pal.putpalette([10, 20, 30, 40, 50, 60])
    pal.putdata([0, 1] * 4)
    loaded = load_image(save(pal, tmp_path / "p.gif"))
    assert loaded.format == "GIF" and loaded.pixels.shape == (2, 4, 3)
    assert tuple(loaded.pixels[0, 1]) == (40, 50, 60)


def test_cmyk_jpeg_with_icc_profile_goes_through_cms(tmp_path):
    # an sRGB profile attached to a CMYK image is not valid, so build a real CMYK->sRGB
    # round trip: convert sRGB pixels to CMYK with Pillow, tag them with a lab profile?  No:
    # use a naive CMYK image with an embedded *sRGB* profile -> Pillow's CMS refuses the
    # colour space mismatch, which we must report as a note and still load.
    arr = np.full((8, 8, 4), (0, 255, 255, 0), np.uint8)  # pure red in naive CMYK
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = save(Image.fromarray(arr, "CMYK"), tmp_path / "c.jpg", quality=95, icc_profile=srgb)
    loaded = load_image(path)
    assert loaded.mode == "CMYK" and loaded.pixels.shape == (8, 8, 3)
    assert loaded.info["icc_converted"] is False
    assert any("ICC" in n for n in loaded.info["notes"])
    assert loaded.pixels[0, 0, 0] > 200 and loaded.pixels[0, 0, 1] < 60


def test_cmyk_without_profile(tmp_path):
    arr = np.full((8, 8, 4), (0, 0, 0, 255), np.uint8)  # black
    loaded = load_image(save(Image.fromarray(arr, "CMYK"), tmp_path / "k.tif"))
    assert loaded.mode == "CMYK"
    assert loaded.pixels.max() < 10
    assert any("without ICC" in n for n in loaded.info["notes"])


def cmyk_profile() -> bytes:
    """A minimal real ICC v2 CMYK printer profile (A2B0 lut8, Lab PCS) built by hand.

    Its colour table swaps the roles of cyan and magenta compared with a naive conversion,
    so a loader that ignores the profile gets red where the profile says green.
    """

    def s15(v: float) -> bytes:
        return struct.pack(">i", int(round(v * 65536)))

    def pad4(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % 4)

    text = b"VQ test CMYK\0"
    desc = (
        b"desc"
        + b"\0" * 4
        + struct.pack(">I", len(text))
        + text
        + struct.pack(">II", 0, 0)
        + struct.pack(">HB", 0, 0)
        + b"\0" * 67
    )
    d50 = s15(0.9642) + s15(1.0) + s15(0.8249)
    wtpt = b"XYZ " + b"\0" * 4 + d50
    cprt = b"text" + b"\0" * 4 + b"CC0\0"
    clut = bytearray()
    for c, m, y, k in itertools.product((0, 1), repeat=4):
        r, g, b = (1 - m) * (1 - k), (1 - c) * (1 - k), (1 - y) * (1 - k)  # C/M swapped
        lab = rgb2lab(np.array([[[r, g, b]]], float))[0, 0]
        clut += bytes([round(lab[0] * 255 / 100), round(lab[1] + 128), round(lab[2] + 128)])
    ramp = bytes(range(256))
    matrix = b"".join(s15(1.0 if i % 4 == 0 else 0.0) for i in range(9))
    a2b0 = b"mft1" + b"\0" * 4 + bytes([4, 3, 2, 0]) + matrix + ramp * 4 + bytes(clut) + ramp * 3
    tags = [(b"desc", desc), (b"wtpt", wtpt), (b"cprt", cprt), (b"A2B0", a2b0)]
    offset = 128 + 4 + 12 * len(tags)
    table = struct.pack(">I", len(tags))
    data = b""
    for sig, body in tags:
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += pad4(body)
    size = struct.pack(">I", offset + len(data))
    header = size + b"lcms" + bytes([2, 0x10, 0, 0]) + b"prtr" + b"CMYK" + b"Lab "
    header += b"\0" * 12 + b"acsp" + b"\0" * 28 + d50 + b"\0" * 48
    assert len(header) == 128
    return header + table + data


@pytest.mark.parametrize("ext", ["jpg", "tif"])
def test_cmyk_with_real_icc_profile_converts(tmp_path, ext):
    arr = np.full((8, 8, 4), (0, 255, 255, 0), np.uint8)  # naive: red; this profile: green
    path = save(
        Image.fromarray(arr, "CMYK"),
        tmp_path / f"c.{ext}",
        icc_profile=cmyk_profile(),
        **({"quality": 100} if ext == "jpg" else {}),
    )
    loaded = load_image(path)
    assert loaded.mode == "CMYK" and loaded.info["icc_converted"] is True
    r, g, b = (int(v) for v in loaded.pixels[4, 4])
    assert g > 200 and r < 60 and b < 60


# ------------------------------------------------------------------ 16-bit and float


def test_16bit_grey_png_scaled_not_clipped(tmp_path):
    grey = np.array([[0, 1000, 40000, 65535]], np.uint16)
    loaded = load_image(save(Image.fromarray(grey), tmp_path / "g16.png"))
    assert loaded.bit_depth == 16 and loaded.pixels.dtype == np.uint16
    np.testing.assert_array_equal(loaded.pixels[0, :, 1], grey[0])
    np.testing.assert_array_equal(to_uint8(loaded.pixels)[0, :, 0], [0, 4, 156, 255])


@pytest.mark.parametrize("ctype,channels", [(2, 3), (6, 4), (4, 2)])
def test_16bit_colour_png_every_filter(tmp_path, ctype, channels):
    values = RNG.integers(0, 65536, size=(7, 9, channels), dtype=np.uint16)
    values[..., -1] |= 1  # keep alpha non-constant but never fully opaque everywhere
    path = tmp_path / "c16.png"
    path.write_bytes(encode_png16(values, ctype))
    loaded = load_image(path)
    assert loaded.bit_depth == 16 and loaded.format == "PNG"
    if ctype == 4:
        expected = np.dstack([values[:, :, :1]] * 3 + [values[:, :, 1:]])
    else:
        expected = values
    np.testing.assert_array_equal(loaded.pixels, expected)
    # Pillow agrees on the high byte
    with Image.open(path) as im:
        if ctype == 2:
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), values >> 8)


def test_16bit_rgb_png_trns(tmp_path):
    values = np.zeros((2, 3, 3), np.uint16)
    values[0, 0] = (1, 2, 3)
    data = encode_png16(values, 2, filters="none")
    trns = png_chunk(b"tRNS", struct.pack(">HHH", 1, 2, 3))
    data = data[:33] + trns + data[33:]
    loaded = load_image_bytes(data, name="t.png")
    assert loaded.has_alpha and loaded.pixels[0, 0, 3] == 0 and loaded.pixels[1, 1, 3] == 65535


@pytest.mark.parametrize("ctype,channels", [(2, 3), (6, 4), (4, 2)])
@pytest.mark.parametrize("h,w", [(1, 1), (2, 3), (7, 9), (13, 17)])
def test_interlaced_16bit_colour_png_keeps_all_16_bits(tmp_path, ctype, channels, h, w):
    values = RNG.integers(0, 65536, size=(h, w, channels), dtype=np.uint16)
    values[..., 0].flat[0] = 0x1234  # a low byte that is not the high byte: not 8-bit content
    if ctype != 2:
        values[..., -1].flat[-1] = 7  # keep the alpha channel (not fully opaque)
    path = tmp_path / "adam7.png"
    path.write_bytes(encode_png16(values, ctype, interlace=True))
    with Image.open(path) as im:
        assert im.info.get("interlace") == 1  # really an Adam7 file
    loaded = load_image(path)
    assert loaded.bit_depth == 16 and loaded.pixels.dtype == np.uint16
    assert loaded.mode == {2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}[ctype]
    if ctype == 4:
        expected = np.dstack([values[:, :, :1]] * 3 + [values[:, :, 1:]])
    else:
        expected = values
    np.testing.assert_array_equal(loaded.pixels, expected)  # every bit, not just the high byte
    assert not any("8 bits" in n for n in loaded.info["notes"])
    assert loaded.pixels[..., 0].flat[0] == 0x1234


def test_interlaced_16bit_rgb_png_trns():
    values = RNG.integers(0, 65536, size=(5, 6, 3), dtype=np.uint16)
    values[2, 3] = (1, 2, 3)
    data = encode_png16(values, 2, interlace=True)
    trns = png_chunk(b"tRNS", struct.pack(">HHH", 1, 2, 3))
    loaded = load_image_bytes(data[:33] + trns + data[33:], name="t.png")
    assert loaded.has_alpha and loaded.bit_depth == 16
    alpha = np.full((5, 6), 65535, np.uint16)
    alpha[2, 3] = 0
    np.testing.assert_array_equal(loaded.pixels[..., 3], alpha)
    np.testing.assert_array_equal(loaded.pixels[..., :3], values)


def test_16bit_png_data_after_the_image_is_not_handed_to_the_decoder(monkeypatch):
    # the image's data followed by 20 MB of compressed zeros: the decoder gets only the image
    import imagecodecs

    values = RNG.integers(0, 65536, size=(6, 7, 4), dtype=np.uint16)
    image = zlib.decompress(dict(png_chunks(encode_png16(values, 6, interlace=True)))[b"IDAT"])
    ihdr = struct.pack(">IIBBBBB", 7, 6, 16, 6, 0, 0, 1)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(image + b"\0" * (20 << 20), 9))
        + png_chunk(b"IEND", b"")
    )
    sizes = []
    real = imagecodecs.png_decode

    def recording(buf, *a, **k):
        sizes.append(len(buf))
        return real(buf, *a, **k)

    monkeypatch.setattr(imagecodecs, "png_decode", recording)
    loaded = load_image_bytes(data, name="excess.png")
    np.testing.assert_array_equal(loaded.pixels, values)
    assert sizes and sizes[0] < len(data) and sizes[0] < 2 * len(zlib.compress(image))


def test_16bit_rgb_tiff(tmp_path):
    values = RNG.integers(0, 65536, size=(5, 6, 3), dtype=np.uint16)
    path = tmp_path / "c16.tif"
    tifffile.imwrite(path, values, photometric="rgb")
    loaded = load_image(path)
    assert loaded.bit_depth == 16 and loaded.mode == "RGB;uint16"
    np.testing.assert_array_equal(loaded.pixels, values)


def test_float_tiff_scaled(tmp_path):
    values = np.linspace(0, 1, 5 * 6 * 3, dtype=np.float32).reshape(5, 6, 3)
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, values, photometric="rgb")
    loaded = load_image(path)
    assert loaded.info["source_dtype"] == "float32" and loaded.bit_depth == 16
    assert loaded.pixels[0, 0, 0] == 0 and loaded.pixels[-1, -1, -1] == 65535


def test_float_grey_tiff_out_of_range_rescaled(tmp_path):
    values = np.array([[-2.0, 0.0], [2.0, 6.0]], np.float32)
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, values)
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.pixels[:, :, 2], [[0, 16384], [32768, 65535]])
    assert any("rescaled" in n for n in loaded.info["notes"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_float_tiff_at_the_extremes_of_its_type_is_stretched_not_black(tmp_path, dtype):
    # [-max, max] of the type: max - min overflows to inf, and (x - min) / inf was NaN -> 0
    top = float(np.finfo(dtype).max)
    values = np.array([[-top, 0.0, top], [top / 2, -top / 2, -top]], dtype)
    path = tmp_path / "extreme.tif"
    tifffile.imwrite(path, values)
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.pixels[:, :, 0], [[0, 32768, 65535], [49151, 16384, 0]])
    assert "warnings" not in loaded.info  # no overflow or invalid-value warning
    assert any("rescaled to the full range" in n for n in loaded.info["notes"])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.array([[1e308, -1e308]]), [65535, 0]),
        (np.array([[5e-324, -5e-324, 0.0]]), [65535, 0, 32768]),  # subnormal range
        (np.array([[1.0, 1.0 + 2**-52]]), [0, 65535]),  # two neighbouring doubles
        (np.array([[2**63 - 1, -(2**63)]], np.int64), [65535, 0]),
        (np.array([[2**64 - 1, 0]], np.uint64), [65535, 0]),
    ],
)
def test_extreme_ranges_from_arrays(values, expected):
    loaded = from_array(values)
    np.testing.assert_array_equal(loaded.pixels[0, :, 0], expected)
    assert "warnings" not in loaded.info


@pytest.mark.parametrize(
    ("dtype", "value", "level", "note"),
    [
        (np.float32, 7.0, 32768, "constant float image (every value 7) shown as mid grey"),
        (np.float64, -1e308, 32768, "constant float image (every value -1e+308)"),
        (np.int32, -5, 32768, "constant integer image (every value -5) shown as mid grey"),
        (np.float32, 0.5, 32768, None),  # in [0, 1]: its own value, no note
        (np.float32, 0.0, 0, None),
        (np.float32, 1.0, 65535, None),
    ],
)
def test_constant_float_and_wide_int_images(tmp_path, dtype, value, level, note):
    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, np.full((4, 5), value, dtype))
    loaded = load_image(path)
    assert np.all(loaded.pixels == level)
    notes = [n for n in loaded.info["notes"] if "constant" in n or "rescaled" in n]
    assert notes == ([] if note is None else [notes[0]])
    if note is not None:
        assert notes[0].startswith(note)


def test_fully_transparent_image_loads_but_has_nothing_to_quantize(tmp_path):
    path = tmp_path / "clear.png"
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0] = 90  # colour under alpha 0 is still invisible
    Image.fromarray(rgba, "RGBA").save(path)
    loaded = load_image(path)  # `vq info` describes it
    assert loaded.has_alpha
    with pytest.raises(LoadError, match=r"clear.png: image is fully transparent: nothing to"):
        require_visible_pixels(loaded)
    with pytest.raises(LoadError, match=r"^<stdin>: image is fully transparent"):
        require_visible_pixels(load_image_bytes(path.read_bytes()), "<stdin>")
    rgba[2, 3, 3] = 1  # one barely visible pixel is enough
    require_visible_pixels(from_array(rgba))
    require_visible_pixels(from_array(rgba[..., :3]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_tiff_nan_inf_refused(tmp_path, bad):
    values = np.zeros((4, 4, 3), np.float32)
    values[1, 2, 0] = bad
    path = tmp_path / "nan.tif"
    tifffile.imwrite(path, values, photometric="rgb")
    with pytest.raises(LoadError, match="nan.tif: image contains 1 NaN or infinite"):
        load_image(path)


def test_multipage_tiff_first_page(tmp_path):
    a, b = rgb_image(4, 4), rgb_image(4, 4)
    path = tmp_path / "m.tif"
    Image.fromarray(a).save(path, save_all=True, append_images=[Image.fromarray(b)])
    loaded = load_image(path)
    assert loaded.n_frames == 2
    np.testing.assert_array_equal(loaded.pixels, a)
    path16 = tmp_path / "m16.tif"
    with tifffile.TiffWriter(path16) as tw:
        for _ in range(3):
            tw.write(RNG.integers(0, 65536, size=(3, 3, 3), dtype=np.uint16), photometric="rgb")
    assert load_image(path16).n_frames == 3


# ------------------------------------------------------------------ animations, EXIF


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (5, 4), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    loaded = load_image(path)
    assert loaded.n_frames == 3
    assert tuple(loaded.pixels[0, 0]) == (255, 0, 0)


def test_apng_first_frame(tmp_path):
    frames = [Image.new("RGB", (5, 4), c) for c in [(9, 8, 7), (0, 255, 0)]]
    path = tmp_path / "anim.png"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    loaded = load_image(path)
    assert loaded.n_frames == 2 and tuple(loaded.pixels[3, 4]) == (9, 8, 7)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    arr = rgb_image(3, 5)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(Image.fromarray(arr), tmp_path / "o.png", exif=exif)
    loaded = load_image(path)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_array_equal(loaded.pixels, expected)
    assert loaded.info["orientation"] == orientation


def test_apply_orientation_on_uint16():
    a = np.arange(6, dtype=np.uint16).reshape(2, 3)
    np.testing.assert_array_equal(apply_orientation(a, 6), [[3, 0], [4, 1], [5, 2]])
    np.testing.assert_array_equal(apply_orientation(a, 99), a)


def test_malformed_exif_is_tolerated(tmp_path):
    arr = rgb_image(4, 4)
    buf = io.BytesIO()
    Image.fromarray(arr).save(
        buf, "JPEG", quality=95, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff"
    )
    path = tmp_path / "badexif.jpg"
    path.write_bytes(buf.getvalue())
    loaded = load_image(path)
    assert loaded.pixels.shape == (4, 4, 3) and loaded.info["orientation"] == 1


# ------------------------------------------------------------------ bad inputs


def test_missing_and_directory(tmp_path):
    with pytest.raises(LoadError, match="nope.png: no such file") as exc:
        load_image(tmp_path / "nope.png")
    assert exc.value.path.endswith("nope.png")
    with pytest.raises(LoadError, match="is a folder"):
        load_image(tmp_path)


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "file is empty"),
        (b"hello, this is not an image\n" * 4, "contains text"),
        (
            bytes(np.random.default_rng(3).integers(0, 256, 2000, dtype=np.uint8)),
            "not a supported image",
        ),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "PDF document"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "PostScript/EPS"),
        (b"8BPS\x00\x01" + b"\x00" * 40, "Photoshop PSD"),
    ],
)
def test_non_images_refused_with_reason(tmp_path, content, match):
    path = tmp_path / "renamed.png"
    path.write_bytes(content)
    with pytest.raises(LoadError, match=match) as exc:
        load_image(path)
    assert str(exc.value).startswith(str(path))


@pytest.mark.parametrize("ext,keep", [("png", 0.5), ("jpg", 0.4), ("gif", 0.5), ("tif", 0.5)])
def test_truncated_files(tmp_path, ext, keep):
    arr = RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    full = tmp_path / f"full.{ext}"
    Image.fromarray(arr).save(full)
    data = full.read_bytes()
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(LoadError, match="cut"):
        load_image(path)


def test_truncated_16bit_png(tmp_path):
    data = encode_png16(RNG.integers(0, 65536, size=(20, 20, 3), dtype=np.uint16), 2)
    with pytest.raises(LoadError, match="corrupt or truncated"):
        load_image_bytes(data[: len(data) // 2], name="cut16.png")


def test_size_cap_checked_before_decoding(tmp_path):
    # declared 30000 x 30000 with almost no data: must be refused without decoding
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 10))
    )
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(LoadError, match="too large"):
        load_image_bytes(data, name="bomb.png")
    # our own cap applies below Pillow's and with a large file that would decode fine
    path = save(Image.fromarray(rgb_image(20, 20)), tmp_path / "x.png")
    with pytest.raises(
        LoadError, match=r"x.png: image is too large: 20x20 = 400 pixels \(limit 399\)"
    ):
        load_image(path, max_pixels=399)
    assert load_image(path, max_pixels=400).pixels.shape == (20, 20, 3)
    # a 16-bit TIFF too
    tif = tmp_path / "big.tif"
    tifffile.imwrite(tif, np.zeros((30, 30, 3), np.uint16), photometric="rgb")
    with pytest.raises(LoadError, match="too large"):
        load_image(tif, max_pixels=100)
    assert Image.MAX_IMAGE_PIXELS == before


def test_pillow_bomb_warning_does_not_escape(tmp_path):
    # between Pillow's limit and 2x its limit Pillow only warns; we must not leak it
    # (pytest turns warnings into errors) and must apply our own cap instead.
    w = h = int((Image.MAX_IMAGE_PIXELS * 1.5) ** 0.5)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 10))
    )
    with pytest.raises(LoadError, match="too large"):
        load_image_bytes(data, name="b.png")


# ------------------------------------------------------------------ arrays and bytes


def test_load_image_bytes_and_from_array():
    arr = rgb_image(3, 4)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    loaded = load_image_bytes(buf.getvalue(), name="clipboard")
    assert loaded.path is None
    np.testing.assert_array_equal(loaded.pixels, arr)
    grey = np.array([[0.0, 0.5, 1.0]])
    out = from_array(grey)
    assert out.bit_depth == 16 and out.pixels.shape == (1, 3, 3)
    assert list(out.pixels[0, :, 0]) == [0, 32768, 65535]
    copy = arr.copy()
    out = from_array(arr)
    np.testing.assert_array_equal(arr, copy)
    assert not np.shares_memory(out.pixels, arr)
    with pytest.raises(LoadError, match="unsupported array shape"):
        from_array(np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(LoadError, match="NaN"):
        from_array(np.array([[np.nan]]))


def test_special_and_oversized_files(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(LoadError, match="pipe.png: not a regular file"):
        load_image(fifo)
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(200 + (64 << 20))  # sparse: cheap to make
    with pytest.raises(LoadError, match="file is too large"):
        load_image(big, max_pixels=10)


def test_16bit_png_zip_bomb_is_not_inflated():
    # declared 4x4 16-bit RGB, but the IDAT inflates to 50 MB of zeros
    ihdr = struct.pack(">IIBBBBB", 4, 4, 16, 2, 0, 0, 0)
    bomb = zlib.compress(b"\0" * (50 << 20), 9)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", bomb)
        + png_chunk(b"IEND", b"")
    )
    loaded = load_image_bytes(data, name="bomb16.png")
    assert loaded.pixels.shape == (4, 4, 3) and not loaded.pixels.any()


def test_tiff_tifffile_cannot_decode_falls_back_to_pillow_with_note(tmp_path, monkeypatch):
    # a 16-bit grey TIFF that Pillow can read; pretend tifffile lacks the codec
    grey = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    path = tmp_path / "g16.tif"
    Image.fromarray(grey).save(path)

    def no_codec(self, *a, **k):
        raise KeyError("<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_codec)
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.pixels[:, :, 0], grey)
    assert any("imagecodecs" in n for n in loaded.info["notes"])


@pytest.mark.parametrize("mode", ["RGB", "L", "P"])
def test_png_with_corrupt_data_is_refused_not_half_decoded(mode):
    # Pillow's getexif() decodes a PNG; its failure there was swallowed, and Pillow then took
    # the half-decoded image as loaded: garbage pixels without a word (found by Hypothesis)
    buf = io.BytesIO()
    Image.fromarray(rgb_image(64, 64)).convert(mode).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    middle = len(data) // 2
    data[middle : middle + 40] = bytes(40)
    with pytest.raises(LoadError, match=r"^bad.png: corrupt or truncated image"):
        load_image_bytes(bytes(data), name="bad.png")


def test_png_declaring_more_pixels_than_its_data_can_hold_is_refused_early():
    # 11 x 2,356,314 pixels from 6 bytes of deflate data: refused before any allocation
    header = struct.pack(">IIBBBBB", 2_356_314, 11, 8, 3, 0, 0, 1)
    data = b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            png_chunk(b"IHDR", header),
            png_chunk(b"PLTE", bytes(6)),
            png_chunk(b"IDAT", zlib.compress(bytes(50))[:6]),
            png_chunk(b"IEND", b""),
        ]
    )
    with pytest.raises(LoadError, match=r"2356314x11 pixels declared, but only 6 bytes of image"):
        load_image_bytes(data, name="bomb.png")
    # the most compressible real images still load (deflate expands a byte ~1030 times)
    for mode in ("1", "L"):
        buf = io.BytesIO()
        Image.new(mode, (3000, 2000)).save(buf, "PNG", optimize=True)
        assert load_image_bytes(buf.getvalue()).pixels.shape == (2000, 3000, 3)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "TIFF", "BMP", "WEBP"])
def test_mutated_files_load_or_raise_load_error(fmt, caplog):
    # a small deterministic fuzz: flipped bytes and cut tails must never escape as
    # anything but LoadError (or load fine)
    buf = io.BytesIO()
    Image.fromarray(rgb_image(16, 16)).save(buf, fmt)
    good = buf.getvalue()
    rng = np.random.default_rng(zlib.crc32(fmt.encode()))
    outcomes = {"ok": 0, "error": 0}
    for _ in range(40):
        data = bytearray(good)
        for pos in rng.integers(0, len(data), rng.integers(1, 6)):
            data[pos] = rng.integers(0, 256)
        if rng.random() < 0.3:
            data = data[: rng.integers(1, len(data))]
        try:
            loaded = load_image_bytes(bytes(data), name=f"fuzz.{fmt.lower()}")
        except LoadError as exc:
            assert str(exc).startswith("fuzz.")
            outcomes["error"] += 1
        else:
            assert loaded.pixels.ndim == 3 and loaded.pixels.shape[2] in (3, 4)
            outcomes["ok"] += 1
    assert sum(outcomes.values()) == 40
    # decoders' complaints stay off stderr: the LoadError message says what is wrong
    assert not [r for r in caplog.records if r.name.startswith(("PIL", "tifffile"))]


@pytest.mark.parametrize("interlace", [False, True])
def test_mutated_16bit_pngs_load_or_raise_load_error(interlace, caplog):
    values = RNG.integers(0, 65536, size=(12, 10, 4), dtype=np.uint16)
    good = encode_png16(values, 6, interlace=interlace)
    rng = np.random.default_rng(16 + interlace)
    for _ in range(60):
        data = bytearray(good)
        for pos in rng.integers(8, len(data), rng.integers(1, 4)):
            data[pos] = rng.integers(0, 256)
        if rng.random() < 0.3:
            data = data[: rng.integers(1, len(data))]
        try:
            loaded = load_image_bytes(bytes(data), name="fuzz16.png")
        except LoadError as exc:
            assert str(exc).startswith("fuzz16.png: ")
        else:
            assert loaded.pixels.ndim == 3 and loaded.pixels.shape[2] in (3, 4)
    assert not [r for r in caplog.records if r.name.startswith(("PIL", "imagecodecs"))]


def test_animated_webp_first_frame(tmp_path):
    frames = [Image.new("RGB", (6, 5), c) for c in [(200, 30, 40), (0, 255, 0), (0, 0, 255)]]
    path = tmp_path / "anim.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:], lossless=True, duration=40)
    loaded = load_image(path)
    assert loaded.format == "WEBP" and loaded.n_frames == 3
    assert tuple(loaded.pixels[2, 3][:3]) == (200, 30, 40)


def rgb_profile(swap_red_green: bool) -> bytes:
    """A minimal ICC v2 RGB display profile (matrix/TRC), optionally with R and G swapped."""

    def s15(v: float) -> bytes:
        return struct.pack(">i", int(round(v * 65536)))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + b"\0" * 4 + s15(x) + s15(y) + s15(z)

    text = b"VQ test RGB\0"
    desc = (
        b"desc"
        + b"\0" * 4
        + struct.pack(">I", len(text))
        + text
        + struct.pack(">II", 0, 0)
        + struct.pack(">HB", 0, 0)
        + b"\0" * 67
    )
    red, green, blue = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)
    if swap_red_green:
        red, green = green, red
    curv = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, 0x0233)  # gamma 2.2
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(*red)),
        (b"gXYZ", xyz(*green)),
        (b"bXYZ", xyz(*blue)),
        (b"rTRC", curv),
        (b"gTRC", curv),
        (b"bTRC", curv),
        (b"cprt", b"text" + b"\0" * 4 + b"CC0\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table = struct.pack(">I", len(tags))
    data = b""
    for sig, body in tags:
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body + b"\0" * (-len(body) % 4)
    header = struct.pack(">I", offset + len(data)) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntr"
    header += b"RGB XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 28
    header += s15(0.9642) + s15(1.0) + s15(0.8249) + b"\0" * 48
    return header + table + data


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_rgb_with_non_srgb_profile_is_converted(tmp_path, mode):
    colour = (255, 0, 0, 128)[: len(mode)]
    path = tmp_path / "p.png"
    Image.new(mode, (4, 4), colour).save(path, icc_profile=rgb_profile(True))
    loaded = load_image(path)
    assert loaded.info["icc_converted"] is True and loaded.info["icc_profile"] == "VQ test RGB"
    r, g, b = (int(v) for v in loaded.pixels[1, 1, :3])
    assert g > 200 and r < 60 and b < 60  # the profile says this "red" is green
    if mode == "RGBA":
        assert loaded.pixels[1, 1, 3] == 128


def test_srgb_tagged_and_broken_profiles_keep_values(tmp_path):
    arr = rgb_image(5, 5)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = save(Image.fromarray(arr), tmp_path / "s.png", icc_profile=srgb)
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.pixels, arr)
    assert "icc_converted" not in loaded.info
    path = save(Image.fromarray(arr), tmp_path / "b.png", icc_profile=b"garbage profile")
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.pixels, arr)
    assert any("ICC profile unusable" in n for n in loaded.info["notes"])


def test_icc_profile_on_16_bit_data_is_reported(tmp_path):
    path = tmp_path / "icc16.tif"
    values = RNG.integers(0, 65536, (3, 3, 3), dtype=np.uint16)
    tifffile.imwrite(
        path, values, photometric="rgb", extratags=[(34675, 7, 8, rgb_profile(True)[:8], True)]
    )
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.pixels, values)
    assert any("ICC profile not applied" in n for n in loaded.info["notes"])


@pytest.mark.parametrize("compression", ["lzw", "zlib", "zstd"])
def test_compressed_16bit_rgb_tiff_keeps_all_16_bits(tmp_path, compression):
    # scientists' TIFFs are usually compressed; imagecodecs lets tifffile decode them
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 65536, size=(5, 6, 3), dtype=np.uint16)
    path = tmp_path / f"rgb16-{compression}.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", compression=compression)
    loaded = load_image(path)
    assert loaded.bit_depth == 16
    np.testing.assert_array_equal(loaded.pixels, rgb)
    assert not any("imagecodecs" in n for n in loaded.info.get("notes", []))


# ------------------------------------------------------------------ threads


def test_overlapping_loads_on_threads_keep_their_own_warnings(monkeypatch, caplog):
    # two loads run at once (as the GUI's worker threads may); each decoder warning lands in
    # the load of the thread that raised it, a third thread's warning is not swallowed, and
    # the process-wide warning and logging state is as before once both are done
    import logging
    import threading
    import warnings

    import quantize.io.load as qio

    buf = io.BytesIO()
    Image.fromarray(rgb_image(4, 5)).save(buf, "PNG")
    data = buf.getvalue()
    inside = threading.Barrier(3, timeout=30)
    leave = threading.Barrier(3, timeout=30)
    real_orientation = qio._read_orientation

    def noisy_orientation(im):
        name = threading.current_thread().name
        warnings.warn(f"decoder warning in {name}", UserWarning, stacklevel=1)
        logging.getLogger("PIL.Image").warning("log record in %s", name)
        inside.wait()  # both loads are running now
        leave.wait()
        return real_orientation(im)

    monkeypatch.setattr(qio, "_read_orientation", noisy_orientation)
    monkeypatch.setattr(qio, "_read_png8", lambda data: None)  # Pillow's path, and its warnings
    filters_before = list(warnings.filters)
    show_before = warnings.showwarning
    loaded = {}

    def work():
        loaded[threading.current_thread().name] = load_image_bytes(data, name="t.png")

    threads = [threading.Thread(target=work, name=f"loader-{i}") for i in range(2)]
    with pytest.warns(UserWarning, match="other thread") as other:
        for t in threads:
            t.start()
        inside.wait()
        warnings.warn("from the other thread", UserWarning, stacklevel=1)
        logging.getLogger("PIL.Image").warning("log record of the other thread")
        leave.wait()
        for t in threads:
            t.join(30)
    assert [str(w.message) for w in other] == ["from the other thread"]
    for name in ("loader-0", "loader-1"):
        assert loaded[name].info["warnings"] == [f"decoder warning in {name}"]
    assert warnings.filters == filters_before and warnings.showwarning is show_before
    assert qio._capture_warnings._lists == {}
    # the loads' log records were dropped, the other thread's was not
    pil = [r.getMessage() for r in caplog.records if r.name.startswith("PIL")]
    assert pil == ["log record of the other thread"]


def test_on_size_reports_the_declared_size_once_before_decoding(tmp_path):
    seen: list[tuple[int, int]] = []
    png = tmp_path / "a.png"
    Image.fromarray(rgb_image(12, 17)).save(png)
    tif16 = tmp_path / "b.tif"  # read by tifffile
    tifffile.imwrite(tif16, (rgb_image(9, 5).astype(np.uint16) * 257), photometric="rgb")
    for path, size in ((png, (17, 12)), (tif16, (5, 9))):
        seen.clear()
        load_image(path, on_size=lambda w, h: seen.append((w, h)))
        assert seen == [size]
    seen.clear()
    load_image_bytes(png.read_bytes(), on_size=lambda w, h: seen.append((w, h)))
    assert seen == [(17, 12)]
    seen.clear()
    with pytest.raises(LoadError, match="too large"):  # refused: nothing to start
        load_image(png, max_pixels=100, on_size=lambda w, h: seen.append((w, h)))
    assert seen == []
    # a header intact, pixel data cut: reported, then the decode fails
    data = png.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match="cut.png"):
        load_image(cut, on_size=lambda w, h: seen.append((w, h)))
    assert seen == [(17, 12)]


def test_plain_8bit_pngs_read_by_libspng_equal_pillows_reading(tmp_path, monkeypatch):
    # RGB and RGBA, interlaced or not, with an sRGB or a foreign profile: the fast reader gives
    # Pillow's pixels and notes; with a transparent colour, EXIF or XMP text Pillow reads it
    import quantize.io.load as qio

    pytest.importorskip("imagecodecs")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, rng.integers(0, 256, (23, 31), dtype=np.uint8)])
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    cases = {
        "rgb": (rgb, {}),
        "rgba": (rgba, {}),
        "interlaced": (rgb, {"interlace": 1}),
        "srgb": (rgb, {"icc_profile": srgb}),
        "lab_profile": (rgb, {"icc_profile": lab}),
        "converted": (rgba, {"icc_profile": rgb_profile(True)}),  # not sRGB: converted
    }
    used = []
    real = qio._read_png8
    monkeypatch.setattr(qio, "_read_png8", lambda data: used.append(1) or real(data))
    for name, (pixels, params) in cases.items():
        path = tmp_path / f"{name}.png"
        Image.fromarray(pixels).save(path, **params)
        used.clear()
        fast = load_image(path)
        assert used and real(path.read_bytes()) is not None, name
        monkeypatch.setattr(qio, "_read_png8", lambda data: None)
        slow = load_image(path)
        monkeypatch.setattr(qio, "_read_png8", lambda data: used.append(1) or real(data))
        np.testing.assert_array_equal(fast.pixels, slow.pixels)
        assert fast.info == slow.info and fast.mode == slow.mode, name

    def with_chunk(data: bytes, kind: bytes, body: bytes) -> bytes:
        chunk = struct.pack(">I", len(body)) + kind + body
        chunk += struct.pack(">I", zlib.crc32(kind + body))
        return data[:33] + chunk + data[33:]  # after IHDR

    plain = (tmp_path / "rgb.png").read_bytes()
    assert real(plain) is not None
    assert real(with_chunk(plain, b"tRNS", b"\0\0\0\0\0\0")) is None
    assert real(with_chunk(plain, b"eXIf", b"MM\0*\0\0\0\x08\0\0")) is None
    assert real(with_chunk(plain, b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0<x/>")) is None
    assert real(with_chunk(plain, b"tEXt", b"Software\0me")) is not None
    assert real(plain[: len(plain) // 2]) is None  # truncated: Pillow says what is wrong
    grey = tmp_path / "grey.png"
    Image.fromarray(rgb[:, :, 0]).save(grey)
    assert real(grey.read_bytes()) is None


def test_8bit_png_with_compressed_data_after_the_image_reads_the_image():
    # (libspng stops at the image's end: 200 MB of compressed zeros behind a 64 x 64 image
    # took it 0.002 s, libpng 0.39 s)
    values = RNG.integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    rows = b"".join(b"\0" + values[y].tobytes() for y in range(9))
    data = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 11, 9, 8, 2, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(rows + b"\0" * (8 << 20), 1))
        + png_chunk(b"IEND", b"")
    )
    loaded = load_image_bytes(data, name="excess8.png")
    np.testing.assert_array_equal(loaded.pixels, values)
