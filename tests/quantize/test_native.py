"""The compiled loops (Floyd–Steinberg, the K-means E step): their cache, their results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from quantize.cluster._nearest import nearest_indices

pytest.importorskip("numba")
pytest.importorskip("llvmlite")

from quantize import _native, render  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# a fresh process: load the cached loops, dither, report whether numba was imported
CHILD = """
import json, sys
import numpy as np
from quantize import render
rng = np.random.default_rng(5)
img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
pal = rng.integers(0, 256, (40, 3), dtype=np.uint8)
kernels = render.compiled_diffusion()
render._Compiled.module = kernels
out = render.dither_indices(img, pal, "fs")
print(json.dumps({"loaded": kernels is not None, "error": render.compiled_diffusion_error(),
                  "numba": "numba" in sys.modules, "indices": out.ravel().tolist()}))
"""


def _child(cache: Path) -> dict:
    env = dict(os.environ, VQ_KERNEL_CACHE=str(cache), PYTHONPATH=str(ROOT))
    env.pop("VQ_NUMBA", None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _numpy_indices(monkeypatch) -> list[int]:
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    pal = rng.integers(0, 256, (40, 3), dtype=np.uint8)
    monkeypatch.setattr(render._Compiled, "module", False)
    return render.dither_indices(img, pal, "fs").ravel().tolist()


def test_cache_is_built_once_then_loaded_without_numba(tmp_path, monkeypatch):
    monkeypatch.setenv("VQ_KERNEL_CACHE", str(tmp_path))
    kernels = _native.load()  # nothing cached: compiled with numba, checked, cached
    files = sorted(tmp_path.glob("kernels.*.bin"))
    assert (
        len(files) == 1
        and not list(tmp_path.glob("*.tmp"))
        and not list(tmp_path.glob("*.refused"))
    )
    assert isinstance(kernels, _native.Kernels)
    first = _child(tmp_path)
    assert first["loaded"] and not first["numba"], first["error"]
    assert first["indices"] == _numpy_indices(monkeypatch)  # the same indices to the bit
    assert sorted(tmp_path.glob("kernels.*.bin")) == files  # loaded, not built again


def test_damaged_cache_is_rebuilt_and_refused_code_is_not_retried(tmp_path, monkeypatch):
    monkeypatch.setenv("VQ_KERNEL_CACHE", str(tmp_path))
    path = _native._cache_path()
    path.write_bytes(_native._MAGIC + b"\0" * 100)  # a torn write
    with pytest.raises(ValueError, match="damaged"):
        _native._load_file(path)
    _native.load()
    intact = path.read_bytes()
    assert _native._unpack(intact, "x") and intact.startswith(_native._MAGIC)
    flipped = bytearray(intact)
    flipped[-10] ^= 0xFF  # one bit of machine code: never linked
    path.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="checksum"):
        _native._load_file(path)
    # a machine where a fresh process could not link the code: the numpy form, with a reason
    path.with_suffix(".refused").write_text("the compiled loops need 'x'\n")
    monkeypatch.setattr(render._Compiled, "module", None)
    monkeypatch.setattr(render._Compiled, "error", "")
    monkeypatch.delenv("VQ_NUMBA", raising=False)
    assert render.compiled_diffusion() is None
    assert "need 'x'" in render.compiled_diffusion_error()


def test_kernels_refuse_arrays_of_the_wrong_kind():
    kernels = render.compiled_diffusion()
    if kernels is None:
        pytest.skip(render.compiled_diffusion_error())
    image = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(ValueError, match="indices"):
        kernels.dither_map(image, np.zeros((4, 5), np.int64), 1.0, 0.1, 0.9, 0.2, 0.1)
    with pytest.raises(ValueError, match="image"):
        kernels.dither_map(image[:, ::-1], np.zeros((4, 5), np.int32), 1.0, 0.1, 0.9, 0.2, 0.1)
    pal = np.array([[0.0, 0, 0], [255, 255, 255]])
    offsets, items = kernels.candidate_lists(pal)
    assert offsets.shape == (2**15 + 1,) and offsets[-1] == items.size
    assert set(np.unique(items)) <= {0, 1}
    cur = np.zeros((7, 3), np.float32)
    out = np.zeros((4, 5), np.int32)
    take = np.ones((4, 5), np.float32)
    table = np.zeros(2**24, np.uint16)
    args = (image, take, np.zeros((0, 0), np.float32), pal, table, offsets, items, False, False)
    with pytest.raises(ValueError, match="rows"):
        kernels.diffuse_rows(*args, 0.0, 0.0, 0.0, 255.0, cur, cur.copy(), out, 0, 5)
    with pytest.raises(ValueError, match="items"):
        bad = (*args[:6], items + 2, *args[7:])
        kernels.diffuse_rows(*bad, 0.0, 0.0, 0.0, 255.0, cur, cur.copy(), out, 0, 4)
    with pytest.raises(ValueError, match="table"):
        short = (*args[:4], table[:100], *args[5:])
        kernels.diffuse_rows(*short, 0.0, 0.0, 0.0, 255.0, cur, cur.copy(), out, 0, 4)
    kernels.diffuse_rows(*args, 0.0, 0.0, 0.0, 255.0, cur, cur.copy(), out, 0, 4)
    assert np.all(out == 0)  # black stays black
    with pytest.raises(ValueError, match="scales"):
        kernels.candidate_lists(pal, np.array([1.0, 0.0, 1.0]))


def test_colour_loops_pack_count_and_look_up_like_numpy():
    kernels = render.compiled_diffusion()
    if kernels is None:
        pytest.skip(render.compiled_diffusion_error())
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, size=(501, 4), dtype=np.uint8)
    rgba[0, :3] = 255  # the highest code: no byte may leak into the next pixel's
    for pixels in (np.ascontiguousarray(rgba[:, :3]), rgba):
        codes = np.full(501, -1, np.int32)
        kernels.codes_rgb8(pixels, codes, 0, 200)
        kernels.codes_rgb8(pixels, codes, 200, 501)
        rgb = pixels[:, :3].astype(np.int64)
        np.testing.assert_array_equal(codes, rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])
    counts = np.zeros(2**24, np.int32)
    kernels.tally_codes(codes, counts, 0, 501)
    kernels.tally_codes(codes, counts, 0, 10)  # the first ten once more
    expected = np.bincount(codes, minlength=2**24) + np.bincount(codes[:10], minlength=2**24)
    np.testing.assert_array_equal(counts, expected)
    ranks = rng.integers(0, 1000, size=2**24).astype(np.int32)
    inverse = np.full(501, -7, np.int32)
    kernels.rank_codes(codes, ranks, inverse, 3, 501)
    np.testing.assert_array_equal(inverse[3:], ranks[codes[3:]])
    assert (inverse[:3] == -7).all()  # outside i0:i1: untouched
    with pytest.raises(ValueError, match="pixels"):
        kernels.codes_rgb8(rgba[:, :2], codes, 0, 1)
    with pytest.raises(ValueError, match="pixels"):
        kernels.codes_rgb8(rgba[::2, :3], codes[:251], 0, 1)
    with pytest.raises(ValueError, match="codes"):
        kernels.codes_rgb8(rgba, codes[:-1], 0, 1)
    with pytest.raises(ValueError, match="outside"):
        kernels.tally_codes(codes, counts, 0, 502)
    with pytest.raises(ValueError, match="counts"):
        kernels.tally_codes(codes, counts[:-1], 0, 1)
    with pytest.raises(ValueError, match="inverse"):
        kernels.rank_codes(codes, ranks, inverse.astype(np.int64), 0, 1)


def test_present_codes_are_ranked_like_flatnonzero():
    kernels = render.compiled_diffusion()
    if kernels is None:
        pytest.skip(render.compiled_diffusion_error())
    rng = np.random.default_rng(4)
    table = np.zeros(2**24, np.int32)
    codes = rng.choice(2**24, 5000, replace=False)
    codes[:3] = [0, 2**23 - 1, 2**24 - 1]  # both ends and the last code of the low half
    table[codes] = rng.integers(1, 900, codes.size)
    expected = np.flatnonzero(table)
    counts_expected = table[expected].astype(np.int64)
    half = 2**23
    n_low = kernels.count_present(table, 0, half)
    n_high = kernels.count_present(table, half, 2**24)
    assert (n_low, n_high) == ((expected < half).sum(), (expected >= half).sum())
    uniq, counts = np.empty(expected.size, np.int32), np.empty(expected.size, np.int64)
    kernels.rank_present(table, half, 2**24, n_low, uniq, counts)  # in either order
    kernels.rank_present(table, 0, half, 0, uniq, counts)
    np.testing.assert_array_equal(uniq, expected)
    np.testing.assert_array_equal(counts, counts_expected)
    np.testing.assert_array_equal(table[expected], np.arange(expected.size))  # the ranks
    assert not table[np.setdiff1d(np.arange(2**24), expected)[:1000]].any()
    # a short output is never overrun, and bad arguments are refused
    short_u, short_c = np.full(10, -1, np.int32), np.full(10, -1, np.int64)
    table[:] = 0
    table[codes] = 1
    kernels.rank_present(table, 0, 2**24, 0, short_u, short_c)
    np.testing.assert_array_equal(short_u, np.sort(codes)[:10])
    with pytest.raises(ValueError, match="outside"):
        kernels.count_present(table, 0, 2**24 + 1)
    with pytest.raises(ValueError, match="first rank"):
        kernels.rank_present(table, 0, 10, 11, short_u, short_c)
    with pytest.raises(ValueError, match="counts"):
        kernels.rank_present(table, 0, 10, 0, short_u, short_c.astype(np.int32))


@pytest.mark.parametrize("scale", [None, (0.8, 1.0, 0.7), (0.3, 1.0, 2.5)])
def test_candidate_lists_hold_the_nearest_entry_of_every_colour(scale):
    # the lists prune by the search's own (scaled) distance: the exact nearest entry of any
    # integer colour is among its cell's candidates
    kernels = render.compiled_diffusion()
    if kernels is None:
        pytest.skip(render.compiled_diffusion_error())
    rng = np.random.default_rng(3)
    pal = rng.integers(0, 256, (96, 3)).astype(np.float64)
    s = np.ones(3) if scale is None else np.asarray(scale)
    offsets, items = kernels.candidate_lists(pal, None if scale is None else s)
    q = rng.integers(0, 256, (20000, 3))
    q[:8] = [[0, 0, 0], [255, 255, 255], [0, 255, 0], [7, 8, 15], [8, 7, 16], *pal[:3]]
    nearest = nearest_indices(q * s, pal * s)
    cell = (q[:, 0] >> 3) << 10 | (q[:, 1] >> 3) << 5 | (q[:, 2] >> 3)
    for c, j in zip(cell, nearest, strict=True):
        assert j in items[offsets[c] : offsets[c + 1]]
    assert offsets[-1] < 96 * 2**15 / 4  # and they do prune


@pytest.mark.parametrize("shape", [(1, 5), (3, 4), (7, 9), (61, 83)])
def test_dither_map_in_parallel_bands_equals_the_whole(shape):
    kernels = render.compiled_diffusion()
    if kernels is None:
        pytest.skip(render.compiled_diffusion_error())
    rng = np.random.default_rng(shape[0])
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    image[: shape[0] // 2] //= 16  # smooth and busy parts
    indices = rng.integers(0, 5, shape).astype(np.int32)
    args = (1 / 2000.0, 0.1, 0.9, 0.3, 0.0875)
    whole = kernels.dither_map(image, indices, *args)
    expected = render.dither_map(image, indices, 16)  # the numpy form, at K = 16's settings
    st = render._adaptive_settings(16)
    settings = (1 / (255 * st.texture), st.floor, 1 - st.floor, st.flat_min)
    same = kernels.dither_map(image, indices, *settings, (1 - st.flat_min) / 8, bands=1)
    np.testing.assert_array_equal(same, expected)
    for bands in (2, 3, 5):
        np.testing.assert_array_equal(kernels.dither_map(image, indices, *args, bands=bands), whole)


# ---------------------------------------------------------------- the K-means E step


def _kernels():
    kernels = _native.kernels()
    if kernels is None:
        pytest.skip(_native.kernels_error())
    return kernels


def _true_distances(X, C):
    diff = X[:, None, :] - C[None, :, :]
    return np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))


@pytest.mark.parametrize("K", [2, 7, 40])
def test_bounded_update_keeps_exact_labels_and_valid_bounds(K):
    from quantize.cluster._annular import centre_tables, float64_margin

    kernels = _kernels()
    rng = np.random.default_rng(K)
    # clumps of points around centres that then move by several amounts, over iterations
    X = rng.normal(size=(3000, 3)) * 3 + rng.integers(0, 4, (3000, 1)) * 10.0
    C = X[rng.choice(3000, K, replace=False)].copy()
    labels = np.empty(3000, np.int32)
    upper, lower = np.empty(3000), np.empty(3000)
    eps = float64_margin(float((X * X).sum(1).max()), C)
    runner = np.empty(3000, np.int32)
    kernels.nearest_all(X, C, (labels, upper, lower, runner), 0, 3000)
    dist = _true_distances(X, C)
    np.testing.assert_array_equal(labels, dist.argmin(1))
    order = np.argsort(dist, axis=1, kind="stable")  # the second nearest, too
    np.testing.assert_array_equal(runner, order[:, 1])
    np.testing.assert_allclose(lower, np.take_along_axis(dist, order[:, 1:2], 1)[:, 0])
    upper += eps
    lower -= eps
    searched_total = 0
    for step in range(6):
        new = C + rng.normal(size=C.shape) * (2.0 / (step + 1))
        shift = np.sqrt(((new - C) ** 2).sum(1))
        C = np.ascontiguousarray(new)
        tables = centre_tables(C, shift, eps)
        before = labels.copy()
        changed, old, searched = [], [], 0
        for i0, i1 in ((0, 1234), (1234, 3000)):  # two slices, as two threads call it
            c, o, s = kernels.bounded_update(X, C, (labels, upper, lower), tables, eps, i0, i1)
            changed.append(c)
            old.append(o)
            searched += s
        dist = _true_distances(X, C)
        np.testing.assert_array_equal(labels, dist.argmin(1))  # exact nearest centres
        rows = np.arange(3000)
        assert np.all(upper >= dist[rows, labels])
        others = dist.copy()
        others[rows, labels] = np.inf
        assert np.all(lower <= others.min(1))
        changed = np.concatenate(changed)
        np.testing.assert_array_equal(changed, np.flatnonzero(before != labels))
        np.testing.assert_array_equal(np.concatenate(old), before[changed])
        assert searched < 3000
        searched_total += searched
    assert searched_total > 0  # the moves were large enough to make it search


def test_compiled_lloyd_fits_exactly_what_the_numpy_form_fits(monkeypatch):
    from quantize.cluster import _annular, kmeans

    _kernels()
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(m, s, (4000, 3)) for m, s in ((0, 1), (6, 2), (20, 4))])
    w = rng.integers(1, 9, X.shape[0]).astype(float)
    locked = np.array([[0.0, 0.0, 0.0], [30.0, 30.0, 30.0]])
    fits = {}
    monkeypatch.setattr(_annular, "MIN_WORK", 0)
    used = []
    monkeypatch.setattr(
        kmeans, "compiled_e_step", lambda *a: used.append(a) or _annular.compiled_e_step(*a)
    )
    # (fewer than 50 000 points: "auto" is "yinyang" with the compiled E step)
    for form, algorithm in (("compiled", "auto"), ("numpy", "yinyang")):
        model = kmeans.KMeans(24, seed=1, n_init=2, locked=locked, algorithm=algorithm)
        model.fit(X, w)
        fits[form] = (model.cluster_centers_, model.labels_, model.inertia_, model.n_iter_)
    assert len(used) == 2  # one per restart, "yinyang" never asks
    (c1, l1, j1, n1), (c2, l2, j2, n2) = fits["compiled"], fits["numpy"]
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_allclose(c1, c2, rtol=0, atol=1e-9)
    assert j1 == pytest.approx(j2, rel=1e-12) and n1 == n2
    np.testing.assert_array_equal(c1[:2], locked)


def test_compiled_e_step_is_used_only_where_it_applies(monkeypatch):
    from quantize.cluster import _annular

    monkeypatch.setattr(_native._Loaded, "module", None)
    monkeypatch.setattr(_native._Loaded, "error", "")
    monkeypatch.setenv("VQ_NUMBA", "0")
    assert _annular.compiled_e_step(10**6, 256, 3) is None  # disabled: the numpy form
    assert "VQ_NUMBA=0" in _native.kernels_error()
    monkeypatch.setattr(_native._Loaded, "module", None)
    monkeypatch.delenv("VQ_NUMBA")
    assert _annular.compiled_e_step(100, 4, 3) is None  # too little work to load it for
    assert _native._Loaded.module is None  # and not loaded
    assert _annular.compiled_e_step(10**6, 256, 2) is None  # not three dimensions
    assert _annular.compiled_e_step(10**6, 1, 3) is None
    kernels = _annular.compiled_e_step(10**6, 256, 3)
    assert kernels is _native.kernels() or kernels is None
    if kernels is not None:
        assert _annular.compiled_e_step(100, 4, 3) is kernels  # loaded: used for any size


def test_bounded_update_refuses_bad_arrays():
    from quantize.cluster._annular import centre_tables

    kernels = _kernels()
    X = np.zeros((10, 3))
    C = np.eye(3)
    state = (np.zeros(10, np.int32), np.zeros(10), np.zeros(10))
    tables = centre_tables(C, np.zeros(3), 1e-12)
    with pytest.raises(ValueError, match="points"):
        kernels.bounded_update(X[:, :2].copy(), C, state, tables, 1e-12, 0, 10)
    with pytest.raises(ValueError, match="labels out"):
        bad = (state[0] + 3, *state[1:])
        kernels.bounded_update(X, C, bad, tables, 1e-12, 0, 10)
    with pytest.raises(ValueError, match="outside"):
        kernels.bounded_update(X, C, state, tables, 1e-12, 0, 11)
    with pytest.raises(ValueError, match="near_idx"):
        kernels.bounded_update(X, C, state, (*tables[:2], tables[2] + 5, tables[3]), 1e-12, 0, 10)
    with pytest.raises(ValueError, match="lower"):
        kernels.nearest_all(X, C, (*state[:2], state[2][:5], state[0]), 0, 10)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("K", [1, 2, 9, 70])
def test_nearest_two_finds_the_two_nearest(monkeypatch, compiled, K):
    from quantize.cluster import _annular

    if compiled:
        _kernels()
        monkeypatch.setattr(_annular, "MIN_WORK", 0)  # the compiled loop even for this size
    else:
        monkeypatch.setattr(_annular, "compiled_e_step", lambda *a: None)
    rng = np.random.default_rng(K)
    X = rng.integers(0, 40, (5000, 3)).astype(float)  # whole numbers: many exact ties
    C = rng.integers(0, 40, (K, 3)).astype(float)
    first, second, d1, d2 = _annular.nearest_two(X, C)
    d = ((X[:, None] - C[None]) ** 2).sum(-1)
    order = np.argsort(d, axis=1, kind="stable")
    np.testing.assert_array_equal(first, order[:, 0])
    np.testing.assert_allclose(d1, d[np.arange(5000), first], rtol=1e-12)
    if K == 1:
        assert (second == -1).all() and np.isinf(d2).all()
    else:
        np.testing.assert_array_equal(second, order[:, 1])
        np.testing.assert_allclose(d2, d[np.arange(5000), second], rtol=1e-12)
