import numpy as np
import pytest

from quantize import features
from quantize.features import ColorTable, unique_colors


def _reference(flat):
    return np.unique(flat, axis=0, return_inverse=True, return_counts=True)


@pytest.fixture(autouse=True, params=["numpy", "compiled"])
def rgb8_path(request, monkeypatch):
    """Run each test with 8-bit RGB images counted by numpy, then by the compiled loops."""
    if request.param == "numpy":
        monkeypatch.setattr(features, "_compiled_rgb8", lambda flat: None)
    else:
        from quantize import _native

        if _native.kernels() is None:
            pytest.skip(_native.kernels_error())
    return request.param


@pytest.mark.parametrize("big_path", [False, True])
def test_rgb8_matches_numpy_unique(monkeypatch, big_path):
    if big_path:  # force the presence-table path on a small image, counted in chunks
        monkeypatch.setattr(features, "_BINCOUNT_MIN_PIXELS", 0)
        monkeypatch.setattr(features, "_COUNT_CHUNK", 7)  # 1200 pixels: 172 chunks
    rng = np.random.default_rng(0)
    img = rng.integers(0, 6, size=(40, 30, 3), dtype=np.uint8) * 50
    table = unique_colors(img)
    colors, inverse, counts = _reference(img.reshape(-1, 3))
    assert isinstance(table, ColorTable)
    np.testing.assert_array_equal(table.colors, colors)
    np.testing.assert_array_equal(table.counts, counts)
    np.testing.assert_array_equal(table.inverse, inverse.ravel())
    assert table.colors.dtype == np.uint8 and table.counts.dtype == np.int64
    assert table.shape == (40, 30) and table.opaque is None
    assert table.n_pixels == 1200
    # gather reproduces the image
    np.testing.assert_array_equal(table.gather(table.colors), img)


def test_uint16_and_grey():
    rng = np.random.default_rng(1)
    img16 = (rng.integers(0, 5, size=(20, 10, 3)) * 16000).astype(np.uint16)
    t = unique_colors(img16)
    colors, inverse, counts = _reference(img16.reshape(-1, 3))
    np.testing.assert_array_equal(t.colors, colors)
    np.testing.assert_array_equal(t.counts, counts)
    assert t.colors.dtype == np.uint16 and t.max_value == 65535
    grey = rng.integers(0, 256, size=(16, 16), dtype=np.uint8)
    tg = unique_colors(grey)
    assert tg.colors.shape[1] == 1 and tg.n_channels == 1
    np.testing.assert_array_equal(tg.gather(tg.colors[:, 0]), grey)
    grey16 = rng.integers(0, 65536, size=(16, 16), dtype=np.uint16)
    tg16 = unique_colors(grey16)
    np.testing.assert_array_equal(tg16.gather(tg16.colors[:, 0]), grey16)


def test_alpha_zero_pixels_are_excluded():
    img = np.zeros((4, 5, 4), dtype=np.uint8)
    img[..., :3] = 200
    img[..., 3] = 255
    img[0, :, :3] = (1, 2, 3)  # a colour that only transparent pixels have
    img[0, :, 3] = 0
    img[1, 0, 3] = 1  # barely visible still counts
    t = unique_colors(img)
    assert t.opaque is not None and t.opaque.sum() == 15
    assert (t.inverse.reshape(4, 5)[0] == -1).all()
    np.testing.assert_array_equal(t.colors, [[200, 200, 200]])
    assert t.counts.tolist() == [15]
    gathered = t.gather(np.array([7]), fill=0)
    assert (gathered[0] == 0).all() and (gathered[1:] == 7).all()
    la = np.stack([np.full((3, 3), 9, np.uint8), np.eye(3, dtype=np.uint8) * 255], axis=-1)
    t2 = unique_colors(la)
    assert t2.n_pixels == 3 and t2.colors.tolist() == [[9]]


def test_input_not_mutated_and_errors():
    img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    before = img.copy()
    unique_colors(img)
    np.testing.assert_array_equal(img, before)
    bad = np.zeros((2, 2, 3))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        unique_colors(bad)
    with pytest.raises(ValueError):
        unique_colors(np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(ValueError):
        unique_colors(np.zeros((0, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        unique_colors(np.zeros((2, 2, 3), np.int32))
    transparent = np.zeros((2, 2, 4), np.uint8)
    with pytest.raises(ValueError, match="opaque"):
        unique_colors(transparent)


def test_float_image_is_scaled_to_16_bit():
    img = np.array([[[0.0, 0.5, 1.0]]])
    t = unique_colors(img)
    assert t.colors.dtype == np.uint16
    assert t.colors.tolist() == [[0, 32768, 65535]]


def test_shared_tables_are_left_clean(monkeypatch):
    monkeypatch.setattr(features, "_BINCOUNT_MIN_PIXELS", 0)
    rng = np.random.default_rng(5)
    for _ in range(3):
        img = rng.integers(0, 256, size=(20, 20, 3), dtype=np.uint8)
        t = unique_colors(img)
        colors, inverse, counts = _reference(img.reshape(-1, 3))
        np.testing.assert_array_equal(t.colors, colors)
        np.testing.assert_array_equal(t.counts, counts)
        np.testing.assert_array_equal(t.inverse, inverse.ravel())


def test_rgb8_codes_contiguous_and_strided_inputs():
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, size=(9, 11, 4), dtype=np.uint8)
    img[0, 0, :3] = 255  # the highest code, so no byte can leak into another pixel's code

    def expected(rgb):
        rgb = rgb.reshape(-1, rgb.shape[-1]).astype(np.int64)
        return rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2]

    rgb = np.ascontiguousarray(img[..., :3])
    readonly = rgb.copy()
    readonly.setflags(write=False)
    for arr in (rgb, img, rgb[:, ::2], img[..., :3], rgb[..., ::-1], readonly, rgb[-1:, -1:]):
        flat = arr.reshape(-1, arr.shape[-1])
        codes = features._rgb8_codes(flat)
        assert codes.dtype == np.intp
        np.testing.assert_array_equal(codes, expected(arr[..., :3]))


@pytest.mark.parametrize("layout", ["strided", "readonly", "rgba"])
def test_table_path_on_non_contiguous_and_alpha_inputs(monkeypatch, layout):
    monkeypatch.setattr(features, "_BINCOUNT_MIN_PIXELS", 0)
    rng = np.random.default_rng(8)
    base = rng.integers(0, 4, size=(30, 40, 4), dtype=np.uint8) * 85
    if layout == "strided":
        img = base[:, ::3, 1:]
    elif layout == "readonly":
        img = np.ascontiguousarray(base[..., :3])
        img.setflags(write=False)
    else:
        img = base.copy()
        img[..., 3] = np.where(rng.random(img.shape[:2]) < 0.3, 0, 255)
    t = unique_colors(img)
    opaque = img[..., 3] > 0 if layout == "rgba" else np.ones(img.shape[:2], bool)
    colors, inverse, counts = _reference(img[..., :3][opaque])
    np.testing.assert_array_equal(t.colors, colors)
    np.testing.assert_array_equal(t.counts, counts)
    expected_inverse = np.full(opaque.size, -1)
    expected_inverse[opaque.ravel()] = inverse.ravel()
    np.testing.assert_array_equal(t.inverse, expected_inverse)
    assert t.inverse.dtype == np.int32


def test_gather_matches_fancy_indexing_with_fill():
    rng = np.random.default_rng(9)
    img = rng.integers(0, 3, size=(12, 10, 4), dtype=np.uint8) * 100
    img[..., 3] = np.where(rng.random((12, 10)) < 0.25, 0, 9)
    t = unique_colors(img)
    transparent = (t.inverse < 0).reshape(t.shape)
    assert transparent.any() and not transparent.all()
    for values, fill in (
        (np.arange(t.n_colors, dtype=np.uint8) + 1, 0),
        (rng.random((t.n_colors, 3)).astype(np.float32), -0.5),
    ):
        expected = values[np.maximum(t.inverse, 0)].reshape(t.shape + values.shape[1:])
        expected[transparent] = fill
        out = t.gather(values, fill=fill)
        assert out.dtype == values.dtype
        np.testing.assert_array_equal(out, expected)


def test_mid_size_images_use_the_shared_tables_only_once_they_exist(monkeypatch):
    # images between the two thresholds: sorted while the shared tables do not exist (or
    # are lent to another caller), counted with them once they do; same result either way
    monkeypatch.setattr(features, "_WARM_TABLE_MIN_PIXELS", 0)
    monkeypatch.setattr(features._Scratch, "present", None)
    monkeypatch.setattr(features._Scratch, "lut", None)
    calls = []
    tables = features._tables

    def spy(n_bins, reuse):
        calls.append((n_bins, reuse))
        return tables(n_bins, reuse)

    monkeypatch.setattr(features, "_tables", spy)
    rng = np.random.default_rng(10)
    img = rng.integers(0, 256, size=(25, 20, 3), dtype=np.uint8)
    colors, inverse, counts = _reference(img.reshape(-1, 3))

    def check(t):
        np.testing.assert_array_equal(t.colors, colors)
        np.testing.assert_array_equal(t.counts, counts)
        np.testing.assert_array_equal(t.inverse, inverse.ravel())

    check(unique_colors(img))  # cold: sorted, no tables allocated
    assert calls == [] and features._Scratch.present is None
    with monkeypatch.context() as m:
        m.setattr(features, "_BINCOUNT_MIN_PIXELS", 0)
        check(unique_colors(img))  # large enough: allocates the shared tables
    assert calls == [(1 << 24, True)] and features._Scratch.present is not None
    check(unique_colors(img))  # warm: the shared tables
    assert calls[-1] == (1 << 24, True)
    with features._Scratch.lock:  # lent to another caller: sorted again
        check(unique_colors(img))
    assert len(calls) == 2
    assert not features._Scratch.present.any()


def test_both_paths_share_the_tables_and_leave_them_usable(monkeypatch, rgb8_path):
    # numpy leaves ranks in the shared look-up table, the compiled loops count in it: each
    # must find it as it needs it whatever ran before, on images of every channel layout
    if rgb8_path == "numpy":
        pytest.skip("one run covers both paths")
    from quantize import _native

    monkeypatch.setattr(features, "_BINCOUNT_MIN_PIXELS", 0)
    monkeypatch.setattr(features, "_WARM_TABLE_MIN_PIXELS", 0)  # numpy: the shared tables
    monkeypatch.setattr(features, "_KERNEL_LOAD_MIN_PIXELS", 0)
    compiled = features._compiled_rgb8
    used = []

    def spy(flat):
        found = compiled(flat)
        used.append(found is not None)
        return found

    rng = np.random.default_rng(12)
    for i in range(6):
        img = rng.integers(0, 5 + i, size=(23, 31, 3 + i % 2), dtype=np.uint8) * 40
        if i % 2:
            img[..., 3] = 255  # alpha, every pixel opaque
        path = spy if i in (0, 2, 3, 5) else lambda f: None
        monkeypatch.setattr(features, "_compiled_rgb8", path)
        t = unique_colors(img)
        colors, inverse, counts = _reference(img[..., :3].reshape(-1, 3))
        np.testing.assert_array_equal(t.colors, colors)
        np.testing.assert_array_equal(t.counts, counts)
        np.testing.assert_array_equal(t.inverse, inverse.ravel())
        assert t.counts.dtype == np.int64 and t.inverse.dtype == np.int32
        assert (t.opaque is None) == (i % 2 == 0)
    assert used == [True] * 4 and _native.loaded() is not None
    assert features._Scratch.lut_zero and not features._Scratch.lut.any()
