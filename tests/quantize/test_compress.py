"""What a user compressing a photo relies on: exact small images, sorted PNG palettes, speed."""

import io

import numpy as np
import pytest
from PIL import Image

from quantize import quantize_image
from quantize.cli import main
from quantize.metrics import render_indexed
from quantize.pipeline import map_to_palette
from quantize.png import encode_indexed_png, lightness_order


def few_colour_image(n_colors: int, seed: int = 0) -> np.ndarray:
    # close colours (a 24-level cube): Pillow's error diffusion maps near colours to one
    # entry through its colour cache, which made such images lossy before
    rng = np.random.default_rng(seed)
    codes = rng.choice(24**3, n_colors, replace=False)
    colors = (100 + np.stack([codes // 576, codes // 24 % 24, codes % 24], 1)).astype(np.uint8)
    idx = rng.integers(0, n_colors, (60, 80))
    idx.ravel()[:n_colors] = np.arange(n_colors)  # every colour occurs
    return colors[idx]


@pytest.mark.parametrize("space", ["rgb", "lab", "oklab"])
@pytest.mark.parametrize("dither", ["none", "fs", "ordered"])
def test_an_image_with_at_most_k_colours_comes_back_exactly(tmp_path, space, dither):
    img = few_colour_image(200)
    src = tmp_path / "few.png"
    Image.fromarray(img).save(src)
    out = tmp_path / "out.png"
    argv = ["quantize", str(src), "-k", "256", "--space", space, "--dither", dither, "-q"]
    assert main([*argv, "-o", str(out)]) == 0
    with Image.open(out) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), img)


def test_exact_results_skip_dithering_and_lossy_ones_do_not():
    img = few_colour_image(12)
    exact = quantize_image(img, 12, color_space="oklab", seed=0)
    assert exact.exact
    assert np.array_equal(exact.to_image("ordered", 1.0), img)
    lossy = quantize_image(img, 6, color_space="oklab", seed=0)
    assert not lossy.exact
    assert not np.array_equal(lossy.indices("ordered", 1.0), lossy.labels)


def test_sorted_png_palette_runs_dark_to_light_with_the_same_pixels():
    rng = np.random.default_rng(1)
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    indices = rng.integers(0, 16, (30, 40)).astype(np.uint8)
    opaque = np.ones((30, 40), bool)
    opaque[:5, :5] = False
    for mask in (None, opaque):
        data = encode_indexed_png(indices, palette, mask, sort=True)
        with Image.open(io.BytesIO(data)) as im:
            stored = np.asarray(im.getpalette(), np.uint8).reshape(-1, 3)
            rgba = np.asarray(im.convert("RGBA"))
        entries = stored[1:17] if mask is not None else stored[:16]
        assert np.array_equal(entries, palette[lightness_order(palette)])
        keep = np.ones_like(opaque) if mask is None else opaque
        assert np.array_equal(rgba[..., :3][keep], palette[indices][keep])
        if mask is not None:
            assert (rgba[..., 3][~opaque] == 0).all()


@pytest.mark.parametrize("k", [2, 4, 16, 64])
def test_indexed_png_is_smaller_than_pillows_and_decodes_to_the_same_pixels(k):
    # a photo-like image: a gradient with grain, quantized and dithered
    rng = np.random.default_rng(k)
    y, x = np.mgrid[0:240, 0:320]
    img = np.dstack([x * 255 // 319, y * 255 // 239, (x + y) * 255 // 558]).astype(float)
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    r = quantize_image(img, k, seed=0)
    indices = np.asarray(r.indices(dither="fs"))
    ours = encode_indexed_png(indices, r.palette, sort=True)
    pil = Image.frombytes("P", (320, 240), indices.astype(np.uint8).tobytes())
    pil.putpalette(np.asarray(r.palette, np.uint8).tobytes(), rawmode="RGB")
    buf = io.BytesIO()
    pil.save(buf, "PNG")  # Pillow's default: zlib level 6, adaptive filters below 8 bits
    if k <= 16:  # packed rows: filter "none" beats Pillow's adaptive filters
        assert len(ours) < len(buf.getvalue())
    else:  # 8 bits: both use filter "none"; level 7 against 6
        assert len(ours) <= len(buf.getvalue()) * 1.005
    with Image.open(io.BytesIO(ours)) as im:
        assert im.mode == "P" and im.info.get("transparency") is None
        decoded = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(decoded, np.asarray(r.palette, np.uint8)[indices])


@pytest.mark.parametrize("dither", ["none", "fs", "ordered"])
def test_the_indices_are_handed_over_before_the_png_is_made(dither, monkeypatch):
    import quantize.metrics as metrics

    img = few_colour_image(40)
    r = quantize_image(img, 3, seed=0)
    seen = []
    finish = metrics.IndexedPngStream.finish

    def finish_spied(self):
        seen.append("png")  # every indexed PNG, streamed or not, is finished here
        return finish(self)

    monkeypatch.setattr(metrics.IndexedPngStream, "finish", finish_spied)
    indices, data = render_indexed(r, dither=dither, on_indices=lambda i: seen.append(i.copy()))
    assert len(seen) == 2 and seen[1] == "png"  # once, before the PNG
    np.testing.assert_array_equal(seen[0], indices)
    assert data == render_indexed(r, dither=dither)[1]


def test_a_users_palette_keeps_its_order_in_the_png():
    img = few_colour_image(30)
    palette = np.array([[250, 250, 250], [10, 10, 10], [200, 30, 30], [30, 30, 200]], np.uint8)
    r = map_to_palette(img, palette)
    _, data = render_indexed(r)
    with Image.open(io.BytesIO(data)) as im:
        stored = np.asarray(im.getpalette(), np.uint8).reshape(-1, 3)[:4]
    assert np.array_equal(stored, palette)
    fitted = quantize_image(img, 4, seed=0)
    _, data = render_indexed(fitted)
    with Image.open(io.BytesIO(data)) as im:
        stored = np.asarray(im.getpalette(), np.uint8).reshape(-1, 3)[:4]
    luma = stored.astype(float) @ [299, 587, 114]
    assert (np.diff(luma) >= 0).all()


def test_quiet_runs_skip_the_measures_and_summaries_keep_them(tmp_path, monkeypatch):
    import quantize.metrics

    img = few_colour_image(40)
    src = tmp_path / "a.png"
    Image.fromarray(img).save(src)
    calls = []
    real = quantize.metrics.compute_metrics

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(quantize.metrics, "compute_metrics", counting)
    assert main(["quantize", str(src), "-k", "8", "-q", "-o", str(tmp_path / "q.png")]) == 0
    assert calls == []
    out = tmp_path / "r.png"
    report = str(tmp_path / "r.json")
    assert main(["quantize", str(src), "-k", "8", "-q", "-o", str(out), "--report", report]) == 0
    assert calls == [1]
    assert main(["quantize", str(src), "-k", "8", "-o", str(tmp_path / "s.png")]) == 0
    assert calls == [1, 1]


def test_large_png_deflated_in_parallel_blocks_is_one_valid_stream(monkeypatch):
    import zlib

    import quantize.png as png

    rng = np.random.default_rng(3)
    indices = (rng.random((300, 401)) * 7).astype(np.uint8).cumsum(axis=1) % 16
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    whole = encode_indexed_png(indices, palette)
    monkeypatch.setattr(png, "_DEFLATE_BLOCK", 5000)  # about 12 blocks
    blocks = encode_indexed_png(indices, palette)
    assert blocks != whole
    for data in (whole, blocks):
        with Image.open(io.BytesIO(data)) as im:
            np.testing.assert_array_equal(np.asarray(im), indices)
    # the stream itself: zlib checks the header and the Adler-32 of the whole data
    start = blocks.index(b"IDAT") + 4
    length = int.from_bytes(blocks[start - 8 : start - 4], "big")
    raw = zlib.decompress(blocks[start : start + length])
    assert len(raw) == 300 * (1 + 401 // 2 + 1)


def test_flat_graphics_are_deflated_harder_than_photos():
    import zlib

    import quantize.png as png

    # flat graphics: three large areas of one colour with straight (stepped) borders
    y, x = np.mgrid[0:200, 0:600]
    flat = (1 * (y > 0.3 * x + 20) + 2 * (x > 420)).astype(np.uint8)
    # a smooth photo, undithered: runs, but short ones with noisy borders
    rng = np.random.default_rng(0)
    photo = ((x + y + rng.normal(0, 4, x.shape)) // 6).astype(np.uint8)
    assert png._zlib_level(flat, 8) == 9
    assert png._zlib_level(photo, 8) == png._ZLIB_LEVEL_BYTE
    assert png._zlib_level(png._pack_rows(photo % 16, 4), 4) == png._ZLIB_LEVEL_PACKED
    assert png._zlib_level(flat[:0], 8) == png._ZLIB_LEVEL_BYTE  # no rows
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    for img, level in ((flat, 9), (photo, png._ZLIB_LEVEL_BYTE)):
        data = encode_indexed_png(img, palette)
        with Image.open(io.BytesIO(data)) as im:
            np.testing.assert_array_equal(np.asarray(im), img)
        start = data.index(b"IDAT") + 4
        length = int.from_bytes(data[start - 8 : start - 4], "big")
        raw = zlib.decompress(data[start : start + length])
        assert length == len(png._zlib.compress(raw, level))  # (zlib-ng when installed)
        if level == 9:  # what it is for
            assert length < len(png._zlib.compress(raw, 7))


@pytest.mark.parametrize(("k", "transparent"), [(2, False), (4, True), (16, False), (200, True)])
def test_png_stream_bytes_do_not_depend_on_how_rows_arrive(k, transparent, monkeypatch):
    import quantize.png as png

    rng = np.random.default_rng(k)
    m, n = 97, 131
    indices = (rng.random((m, n)) * 3).astype(np.int64).cumsum(axis=1) % k
    palette = rng.integers(0, 256, (k, 3), dtype=np.uint8)
    opaque = rng.random((m, n)) > 0.1 if transparent else None
    sample = np.roll(indices, 3, axis=0)  # (an undithered rendering, say)
    monkeypatch.setattr(png, "_DEFLATE_BLOCK", 700)  # many blocks, some rows each
    whole = encode_indexed_png(indices, palette, opaque, sort=True, level_sample=sample)
    for cuts in ([], [1], [13, 14, 60], sorted(rng.choice(np.arange(1, m), 20, replace=False))):
        stream = png.IndexedPngStream((m, n), palette, opaque, sort=True, level_sample=sample)
        for part in np.split(indices, cuts):
            stream.feed(part)
        assert stream.finish() == whole
    with Image.open(io.BytesIO(whole)) as im:
        got = np.asarray(im)
        rgb = np.asarray(im.convert("RGB"))
    want = palette[indices]
    if opaque is not None:
        assert (got[~opaque] == 0).all()  # the transparent entry
        np.testing.assert_array_equal(rgb[opaque], want[opaque])
    else:
        np.testing.assert_array_equal(rgb, want)


def test_png_stream_refuses_rows_that_do_not_fit():
    import quantize.png as png

    palette = np.zeros((4, 3), np.uint8)
    stream = png.IndexedPngStream((5, 6), palette, level_sample=np.zeros((5, 6), int))
    with pytest.raises(ValueError, match="continue"):
        stream.feed(np.zeros((2, 7), int))
    stream.feed(np.zeros((4, 6), int))
    with pytest.raises(ValueError, match="continue"):
        stream.feed(np.zeros((2, 6), int))  # one row too many
    with pytest.raises(ValueError, match="4 of 5 rows"):
        stream.finish()
    with pytest.raises(ValueError, match="257 palette entries"):
        png.IndexedPngStream(
            (2, 2),
            np.zeros((256, 3), np.uint8),
            np.array([[True, False], [True, True]]),
            level_sample=np.zeros((2, 2), int),
        )


def test_dithered_png_is_the_same_whether_compiled_bands_or_numpy_made_it(monkeypatch):
    import quantize.png as png
    import quantize.render as render

    if render.compiled_diffusion() is None:
        pytest.skip(render.compiled_diffusion_error())
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:180, 0:150]
    img = np.clip(np.dstack([x, y, x + y]) + rng.normal(0, 8, (180, 150, 3)), 0, 255)
    r = quantize_image(img.astype(np.uint8), n_colors=24, seed=0)
    monkeypatch.setattr(render, "_COMPILED_BAND_PIXELS", 150 * 7)  # bands of 7 rows
    monkeypatch.setattr(png, "_DEFLATE_BLOCK", 2000)  # blocks of 26 rows
    compiled = render_indexed(r, dither="fs")
    monkeypatch.setattr(render._Compiled, "module", False)  # the numpy wavefront form
    numpy_form = render_indexed(r, dither="fs")
    np.testing.assert_array_equal(compiled[0], numpy_form[0])
    assert compiled[1] == numpy_form[1]
    with Image.open(io.BytesIO(compiled[1])) as im:
        np.testing.assert_array_equal(
            np.asarray(im.convert("RGB")), np.asarray(r.palette, np.uint8)[compiled[0]]
        )
