"""The compiled Floyd–Steinberg loops' cache: built once, loaded later without numba."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")
pytest.importorskip("llvmlite")

from quantize import _fs_native, render  # noqa: E402

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
    kernels = _fs_native.load()  # nothing cached: compiled with numba, checked, cached
    files = sorted(tmp_path.glob("fs_kernels.*.bin"))
    assert (
        len(files) == 1
        and not list(tmp_path.glob("*.tmp"))
        and not list(tmp_path.glob("*.refused"))
    )
    assert isinstance(kernels, _fs_native.Kernels)
    first = _child(tmp_path)
    assert first["loaded"] and not first["numba"], first["error"]
    assert first["indices"] == _numpy_indices(monkeypatch)  # the same indices to the bit
    assert sorted(tmp_path.glob("fs_kernels.*.bin")) == files  # loaded, not built again


def test_damaged_cache_is_rebuilt_and_refused_code_is_not_retried(tmp_path, monkeypatch):
    monkeypatch.setenv("VQ_KERNEL_CACHE", str(tmp_path))
    path = _fs_native._cache_path()
    path.write_bytes(b"VQ-FS-KERNELS\n" + b"\0" * 100)  # a torn write
    with pytest.raises(ValueError, match="damaged"):
        _fs_native._load_file(path)
    _fs_native.load()
    intact = path.read_bytes()
    assert _fs_native._unpack(intact, "x") and intact[:14] == b"VQ-FS-KERNELS\n"
    flipped = bytearray(intact)
    flipped[-10] ^= 0xFF  # one bit of machine code: never linked
    path.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="checksum"):
        _fs_native._load_file(path)
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
