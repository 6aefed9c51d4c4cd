import numpy as np
import pytest
from skimage import color

from quantize.colorspace import SPACES, rgb_to_space, space_to_rgb, space_to_rgb_float


@pytest.fixture
def colors():
    rng = np.random.default_rng(0)
    c = rng.integers(0, 256, size=(500, 3), dtype=np.uint8)
    return np.concatenate([c, [[0, 0, 0], [255, 255, 255], [255, 0, 0], [1, 1, 1]]]).astype(
        np.uint8
    )


def test_lab_matches_scikit_image(colors):
    ours = rgb_to_space(colors, "lab")
    ref = color.rgb2lab(colors[None].astype(np.float64) / 255.0)[0]
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_oklab_reference_values():
    white, black = rgb_to_space(np.array([[255, 255, 255], [0, 0, 0]], np.uint8), "oklab")
    np.testing.assert_allclose(white, [1.0, 0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(black, [0.0, 0.0, 0.0], atol=1e-9)
    red = rgb_to_space(np.array([[255, 0, 0]], np.uint8), "oklab")[0]
    # published OKLab of sRGB red: (0.6279554, 0.22486306, 0.1258463)
    np.testing.assert_allclose(red, [0.62796, 0.22486, 0.12585], atol=2e-4)


@pytest.mark.parametrize("space", SPACES)
def test_round_trip_is_exact_on_bytes(colors, space):
    back = space_to_rgb(rgb_to_space(colors, space), space)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, colors)
    assert np.abs(space_to_rgb_float(rgb_to_space(colors, space), space) - colors).max() < 1e-6


def test_scales_and_clipping():
    c16 = np.array([[65535, 0, 32896]], np.uint16)
    np.testing.assert_allclose(rgb_to_space(c16, "rgb"), [[255.0, 0.0, 128.0]], atol=1e-3)
    np.testing.assert_allclose(rgb_to_space(np.array([[1.0, 0.0, 0.5]]), "rgb"), [[255, 0, 127.5]])
    out = space_to_rgb(np.array([[300.0, -20.0, 10.0]]), "rgb")
    assert out.tolist() == [[255, 0, 10]]
    out_lab = space_to_rgb(np.array([[50.0, 200.0, -200.0]]), "lab")  # far out of gamut
    assert out_lab.dtype == np.uint8
    with pytest.raises(ValueError):
        rgb_to_space(np.zeros((2, 3)), "hsv")
    with pytest.raises(ValueError):
        rgb_to_space(np.array([[np.nan, 0, 0]]), "lab")


def test_weighted_rgb_weighs_green_over_red_over_blue(colors):
    from quantize.colorspace import WRGB_WEIGHTS

    a, b = colors[:250].astype(float), colors[250:500].astype(float)
    d2 = ((rgb_to_space(colors[:250], "wrgb") - rgb_to_space(colors[250:500], "wrgb")) ** 2).sum(1)
    np.testing.assert_allclose(d2, ((a - b) ** 2 * WRGB_WEIGHTS**2).sum(1), rtol=1e-12)
    step = rgb_to_space(
        np.array([[100, 100, 100], [110, 100, 100], [100, 110, 100], [100, 100, 110]], np.uint8),
        "wrgb",
    )
    r, g, b_ = (np.linalg.norm(step[i] - step[0]) for i in (1, 2, 3))
    assert g > r > b_


@pytest.mark.parametrize("space", SPACES)
def test_greys_lie_on_the_grey_axis(space):
    from quantize.colorspace import grey_axis

    greys = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    pts = rgb_to_space(greys, space)
    np.testing.assert_allclose(pts, pts[:, :1] * grey_axis(space), atol=5e-3)


@pytest.mark.parametrize("space", ["rgb", "wrgb", "lab", "oklab"])
def test_oklab_error_score_is_the_same_in_every_fitting_space(space):
    from quantize.pipeline import oklab_error_score

    rng = np.random.default_rng(3)
    points = rng.integers(0, 256, (500, 3)).astype(np.uint8)
    centers = rng.integers(0, 256, (7, 3)).astype(np.uint8)
    labels = rng.integers(0, 7, 500)
    w = rng.uniform(0.5, 3.0, 500)
    direct = np.linalg.norm(
        rgb_to_space(points, "oklab") - rgb_to_space(centers, "oklab")[labels], axis=1
    )
    got = oklab_error_score(space)(
        rgb_to_space(centers, space), rgb_to_space(points, space), w, labels
    )
    np.testing.assert_allclose(got, w @ direct, rtol=1e-9)  # distances, not their squares
