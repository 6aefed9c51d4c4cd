"""Colour models (save, load, apply), region statistics and the overlay/outline exports."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest
from PIL import Image
from skimage.draw import polygon2mask

from quantize import quantize_image
from quantize.cli import main
from quantize.io.export import export_targets
from quantize.io.model_file import (
    ModelError,
    apply_model,
    load_model,
    model_bytes,
    parse_model,
)
from quantize.io.overlay import class_contours, outline_mask, overlay_image
from quantize.io.stats_file import stats_csv, stats_json
from quantize.regions import label_regions, region_stats
from quantize.segment import segment_result

COLOURS = np.array([[200, 60, 60], [60, 160, 80], [70, 90, 190], [230, 220, 90]], float)


def scene(seed=0, shape=(40, 56), noise=12.0):
    rng = np.random.default_rng(seed)
    m, n = shape
    truth = np.zeros(shape, int)
    truth[:, n // 2 :] = 1
    truth[m // 2 :, : n // 3] = 2
    truth[5:12, 30:40] = 3
    truth[25:30, 40:44] = 3
    img = COLOURS[truth] + rng.normal(0, noise, (m, n, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), truth


@pytest.mark.parametrize(
    "method, options",
    [
        ("gmm", {"covariance_type": "full"}),
        ("gmm", {"covariance_type": "diag"}),
        ("gmm", {"covariance_type": "tied"}),
        ("gmm", {"covariance_type": "spherical"}),
        ("kmeans", {}),
    ],
)
def test_model_round_trip_applies_identically(tmp_path, method, options):
    img, _ = scene()
    res = quantize_image(img, 4, method=method, color_space="oklab", seed=1, **options)
    smoothed = segment_result(res, 1.0, 8)
    path = tmp_path / "m.model.json"
    export_targets(smoothed, [("colour_model", path)])
    model = load_model(path)
    assert model.smoothing.strength == 1.0 and model.smoothing.min_region == 8
    assert np.array_equal(model.palette, res.palette)
    again = apply_model(img, model)
    # the same image labelled without refitting: the same classes, same soft maps
    assert np.array_equal(again.labels, res.labels)
    assert np.array_equal(again.palette, res.palette)
    for k in range(4):
        np.testing.assert_allclose(
            again.responsibility_map(k), res.responsibility_map(k), atol=2e-5
        )
    sm = segment_result(again, model.smoothing.strength, model.smoothing.min_region)
    assert np.array_equal(sm.labels, smoothed.labels)
    # the file is byte-identical when written again from the applied model
    assert model_bytes(sm) == path.read_bytes()
    # another image: class k is the nearest / most probable class of the model
    other, _ = scene(5)
    applied = apply_model(other, model)
    if method == "gmm":
        expected = res.model.predict(applied.points)
    else:
        d = ((applied.points[:, None, :] - res.model.cluster_centers_[None]) ** 2).sum(-1)
        expected = d.argmin(axis=1)
    assert np.array_equal(applied.unique_labels, expected)


def test_model_errors_name_the_file_and_the_problem(tmp_path):
    img, _ = scene()
    res = quantize_image(img, 3, method="gmm", seed=0)
    doc = json.loads(model_bytes(res))
    cases = {
        "newer": ({**doc, "version": 2}, "newer VQ Studio"),
        "format": ({**doc, "format": "x"}, "not a VQ Studio colour model"),
        "shape": ({**doc, "means": doc["means"][:2]}, "'means' must have shape"),
        "nan": ({**doc, "weights": [1, None, 1]}, "'weights'"),
        "cov": ({**doc, "covariances": [[[1, 2, 0], [2, 1, 0], [0, 0, 1]]] * 3}, "mixture"),
        "palette": ({**doc, "palette": ["#zz0000", "#000000", "#ffffff"]}, "#rrggbb"),
    }
    for name, (bad, words) in cases.items():
        with pytest.raises(ModelError, match=re.escape(words)) as info:
            parse_model(bad, f"{name}.json")
        assert str(info.value).startswith(f"{name}.json: ")
    broken = tmp_path / "broken.json"
    broken.write_bytes(model_bytes(res)[:120])
    with pytest.raises(ModelError, match="broken JSON"):
        load_model(broken)
    with pytest.raises(ModelError, match="no such file"):
        load_model(tmp_path / "missing.json")


def two_images_and_a_model(tmp_path):
    """a.png, b.png and a colour model fitted on a (smooth 1, min region 8), via the CLI."""
    img, _ = scene()
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(img).save(a)
    Image.fromarray(scene(3)[0]).save(b)
    model = tmp_path / "stain.json"
    base = ["quantize", str(a), "-k", "4", "--method", "gmm", "-q", "--no-image"]
    assert main([*base, "--save-model", str(model), "--smooth", "--min-region", "8"]) == 0
    return img, a, b, model


def test_cli_save_model_and_apply(tmp_path):
    img, a, b, model = two_images_and_a_model(tmp_path)
    masks = tmp_path / "masks"
    out = tmp_path / "out"
    assert (
        main(["apply", str(model), str(a), str(b), "-o", str(out), "--masks", str(masks), "-q"])
        == 0
    )
    assert (out / "a-vq.png").is_file() and (out / "b-vq.png").is_file()
    loaded = load_model(model)
    for name, path in (("a", a), ("b", b)):
        with Image.open(masks / f"{name}.labels.png") as im:
            written = np.asarray(im)
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
        expected = segment_result(apply_model(arr, loaded), 1.0, 8).labels
        assert np.array_equal(written, expected)
    # a newer model: exit 3, nothing written
    doc = json.loads(model.read_text())
    doc["version"] = 99
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(doc))
    assert main(["apply", str(newer), str(a), "-o", str(tmp_path / "x.png"), "-q"]) == 3
    assert not (tmp_path / "x.png").exists()
    # an existing output is not overwritten without --force
    assert main(["apply", str(model), str(a), "-o", str(out), "-q"]) == 5


def direct_stats(img, labels, k, opaque=None):
    """Per class and region figures computed pixel by pixel, the slow obvious way."""
    from scipy import ndimage

    m, n = labels.shape
    opaque = np.ones((m, n), bool) if opaque is None else opaque
    total = opaque.sum()
    classes, regions = [], []
    for c in range(k):
        mask = (labels == c) & opaque
        rr, cc = np.nonzero(mask)
        lab, nreg = ndimage.label(mask, structure=[[0, 1, 0], [1, 1, 1], [0, 1, 0]])
        classes.append(
            (
                mask.sum(),
                mask.sum() / total,
                img[mask].mean(0) if mask.any() else None,
                (rr.mean(), cc.mean()) if mask.any() else None,
                (rr.min(), cc.min(), rr.max(), cc.max()) if mask.any() else None,
                nreg,
            )
        )
        for r in range(1, nreg + 1):
            reg = lab == r
            rr, cc = np.nonzero(reg)
            regions.append(
                (
                    c,
                    reg.sum(),
                    img[reg].mean(0),
                    (rr.mean(), cc.mean()),
                    (rr.min(), cc.min(), rr.max(), cc.max()),
                )
            )
    return classes, regions


def test_region_statistics_match_a_direct_computation():
    img, truth = scene(2, noise=30)
    rgba = np.dstack([img, np.full(truth.shape, 255, np.uint8)])
    rgba[0:6, 0:9, 3] = 0
    opaque = rgba[:, :, 3] > 0
    res = quantize_image(rgba, 5, method="kmeans", seed=0)  # K = 5: one class may be small
    st = region_stats(rgba, res.labels, res.palette, opaque)
    classes, regions = direct_stats(img.astype(float), res.labels, 5, opaque)
    assert st.n_pixels == opaque.sum()
    for c, (pix, share, mean, cen, bbox, nreg) in enumerate(classes):
        assert st.class_pixels[c] == pix and st.class_share[c] == pytest.approx(share)
        assert st.class_regions[c] == nreg
        if pix:
            np.testing.assert_allclose(st.class_mean[c], mean)
            np.testing.assert_allclose(st.class_centroid[c], cen)
            assert tuple(st.class_bbox[c]) == bbox
    # regions: same multiset (order may differ)
    got = sorted(
        (int(st.region_class[r]), int(st.region_pixels[r]), *np.round(st.region_centroid[r], 6))
        for r in range(st.n_regions)
    )
    want = sorted((c, int(p), *np.round(cen, 6)) for c, p, _, cen, _ in regions)
    assert got == want
    assert st.region_pixels.sum() == opaque.sum()
    np.testing.assert_allclose(st.region_share.sum(), 1.0)
    for r in range(st.n_regions):  # each region's bbox holds the region and touches it
        ids = st.regions.ids == r + 1
        rr, cc = np.nonzero(ids)
        assert tuple(st.region_bbox[r]) == (rr.min(), cc.min(), rr.max(), cc.max())
        np.testing.assert_allclose(st.region_mean[r], img[ids].astype(float).mean(0))


def test_stats_files_csv_and_json_agree(tmp_path):
    img, truth = scene(1)
    res = segment_result(quantize_image(img, 4, method="gmm", seed=0), 1.0, 4)
    st = region_stats(img, res.labels, res.palette)
    rows = list(csv.DictReader(io.StringIO(stats_csv(st).decode())))
    doc = json.loads(stats_json(st))
    cls = [r for r in rows if r["level"] == "class"]
    reg = [r for r in rows if r["level"] == "region"]
    assert len(cls) == 4 == len(doc["classes"]) and len(reg) == st.n_regions == len(doc["regions"])
    assert sum(int(r["pixels"]) for r in cls) == img.shape[0] * img.shape[1]
    for r, d in zip(cls, doc["classes"], strict=True):
        assert int(r["pixels"]) == d["pixels"] and int(r["regions"]) == d["regions"]
        assert r["color"] == d["color"]
    # through the CLI, by extension
    src = tmp_path / "s.png"
    Image.fromarray(img).save(src)
    assert (
        main(
            [
                "quantize",
                str(src),
                "-k",
                "4",
                "-q",
                "--no-image",
                "--stats",
                str(tmp_path / "s.json"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "s.json").read_text())["format"] == "vq-region-stats"
    assert main(["quantize", str(src), "-k", "4", "-q", "--stats", str(tmp_path / "s.txt")]) == 2


def test_overlay_blends_and_outlines_follow_the_borders():
    img, truth = scene(0, noise=0)
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)
    out = overlay_image(img, truth, palette, opacity=0.25, outlines=False)
    expect = np.rint(img * 0.75 + palette[truth] * 0.25)
    assert np.abs(out.astype(float) - expect).max() <= 1
    assert np.array_equal(overlay_image(img, truth, palette, opacity=0.0, outlines=False), img)
    edge = outline_mask(truth)
    lined = overlay_image(img, truth, palette, opacity=0.25, outlines=True)
    assert np.array_equal(lined[~edge], out[~edge])
    assert set(np.unique(lined[edge])) <= {0, 255}
    with pytest.raises(ValueError):
        overlay_image(img, truth, palette, opacity=1.5)


def test_outline_polygons_enclose_exactly_their_class(tmp_path):
    img, truth = scene(0, noise=0)
    truth[30:34, 5:9] = 3  # a hole inside class 2
    for k in range(4):
        contours = class_contours(truth, k)
        filled = np.zeros(truth.shape, bool)
        for c in contours:
            # pixel centres (r + 0.5, c + 0.5) inside the polygon, even-odd over contours
            rc = np.column_stack([c[:, 1] - 0.5, c[:, 0] - 0.5])
            filled ^= polygon2mask(truth.shape, rc)
        assert np.array_equal(filled, truth == k), k
        assert all(np.array_equal(c[0], c[-1]) for c in contours)
    res = quantize_image(img, 4, method="kmeans", seed=0)
    svg_path = tmp_path / "o.outlines.svg"
    export_targets(res, [("outlines_svg", svg_path)])
    text = svg_path.read_text()
    assert text.startswith("<?xml") and 'viewBox="0 0 56 40"' in text
    n_paths = text.count("<path ")
    assert n_paths == len(np.unique(res.labels))
    subpaths = text.count(" Z")
    assert subpaths >= label_regions(res.labels, 4).n_regions


def test_overlay_export_uses_the_given_opacity_and_outlines(tmp_path):
    img, _ = scene(4)
    result = quantize_image(img, 4, method="kmeans", seed=0)
    labels, palette = result.labels, result.palette
    for opacity, outlines in ((0.8, False), (0.2, True)):
        path = tmp_path / f"o{opacity}.png"
        export_targets(
            result,
            [("overlay_png", path)],
            overlay_opacity=opacity,
            overlay_outlines=outlines,
        )
        with Image.open(path) as im:
            written = np.asarray(im.convert("RGB"))
        expected = overlay_image(img, labels, palette, opacity=opacity, outlines=outlines)
        np.testing.assert_array_equal(written, expected)
    # the default is the engine's half opacity; an opacity outside [0, 1] writes nothing
    with pytest.raises(ValueError, match="opacity"):
        export_targets(result, [("overlay_png", tmp_path / "bad.png")], overlay_opacity=1.5)
    assert not (tmp_path / "bad.png").exists()


def test_cli_overlay_opacity(tmp_path):
    img, _ = scene(5)
    src = tmp_path / "s.png"
    Image.fromarray(img).save(src)
    out, over = tmp_path / "s-vq.png", tmp_path / "s.overlay.png"
    args = ["quantize", str(src), "-k", "4", "-q", "-o", str(out), "--overlay", str(over)]
    assert main([*args, "--overlay-opacity", "0.75"]) == 0
    with Image.open(out) as im:  # the indexed PNG: its palette and indices give the labels
        assert im.mode == "P"
        indices = np.asarray(im)
        pal = np.asarray(im.getpalette(), np.uint8).reshape(-1, 3)
    with Image.open(over) as im:
        written = np.asarray(im.convert("RGB"))
    expected = overlay_image(img, indices, pal[: indices.max() + 1], opacity=0.75)
    np.testing.assert_array_equal(written, expected)
    # a fraction outside 0-1 is a usage error, before anything is written
    over.unlink()
    assert main([*args, "--force", "--overlay-opacity", "2"]) == 2
    assert not over.exists()


def test_cli_apply_writes_stats_overlay_and_outlines(tmp_path, monkeypatch):
    img, a, b, model = two_images_and_a_model(tmp_path)
    loaded = load_model(model)
    # one image: files, as vq quantize names them
    one = tmp_path / "one"
    one.mkdir()
    stats_file, over, svg = one / "a.json", one / "a.png", one / "a.svg"
    opts = ["--stats", str(stats_file), "--overlay", str(over), "--outlines", str(svg)]
    assert main(["apply", str(model), str(a), "--no-image", "-q", *opts]) == 0
    expected = segment_result(apply_model(img, loaded), 1.0, 8)
    assert json.loads(stats_file.read_text()) == json.loads(
        stats_json(region_stats(img, expected.labels, expected.palette))
    )
    with Image.open(over) as im:
        written = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(written, overlay_image(img, expected.labels, expected.palette))
    assert svg.read_text().startswith("<?xml")
    # several images: the options name folders, one file per image
    folder = tmp_path / "many"
    opts = [
        "--stats", str(folder / "stats"), "--overlay", str(folder / "over"),
        "--outlines", str(folder / "lines"), "--overlay-opacity", "1",
    ]  # fmt: skip
    assert main(["apply", str(model), str(a), str(b), "--no-image", "-q", *opts]) == 0
    for name, path in (("a", a), ("b", b)):
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
        expected = segment_result(apply_model(arr, loaded), 1.0, 8)
        got = (folder / "stats" / f"{name}.stats.csv").read_text()
        assert got == stats_csv(region_stats(arr, expected.labels, expected.palette)).decode()
        with Image.open(folder / "over" / f"{name}.overlay.png") as im:
            written = np.asarray(im.convert("RGB"))
        solid = overlay_image(arr, expected.labels, expected.palette, opacity=1.0)
        np.testing.assert_array_equal(written, solid)
        assert (folder / "lines" / f"{name}.outlines.svg").is_file()
    # a file where several images need a folder: a usage error, nothing written
    clash = tmp_path / "clash.csv"
    clash.write_text("")
    monkeypatch.chdir(tmp_path)  # where the PNGs would go
    assert main(["apply", str(model), str(a), str(b), "-q", "--stats", str(clash)]) == 2
    assert not (tmp_path / "a-vq.png").exists()
