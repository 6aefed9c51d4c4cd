"""The option tables of VQ Studio: colour spaces, covariance types, dithers and the defaults.

Each choice is declared once here, with the label a person reads; the ``vq`` command's
choices and help, the desktop app's combo boxes and the engine's validation are all built
from these tables, so that ``vq quantize photo.jpg`` and pressing *Run* in VQ Studio give
the same result for the same image.  Clustering methods have their own table, with their
estimators, in :mod:`quantize.cluster.registry`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "COLOR_SPACES",
    "COVARIANCE_TYPES",
    "DEFAULTS",
    "DITHERS",
    "ERROR_POWERS",
    "Choice",
    "Choices",
]


@dataclass(frozen=True)
class Choice:
    """One value of an option, with what a person reads for it.

    Parameters
    ----------
    name : str
        The value as the engine, the CLI and the sidecar spell it.
    label : str
        Text for menus and summaries.
    description : str, optional
        One line of help.
    """

    name: str
    label: str
    description: str = ""


class Choices(Mapping[str, Choice]):
    """An ordered, read-only table of :class:`Choice` by name.

    Parameters
    ----------
    what : str
        What the option is, for error messages (e.g. ``"colour space"``).
    choices : iterable of Choice
        In the order menus show them.
    """

    def __init__(self, what: str, *choices: Choice) -> None:
        self.what = what
        self._items = {c.name: c for c in choices}

    def __getitem__(self, name: str) -> Choice:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def names(self) -> tuple[str, ...]:
        """The names in menu order."""
        return tuple(self._items)

    def labels(self) -> dict[str, str]:
        """Return ``{name: label}`` in menu order."""
        return {c.name: c.label for c in self._items.values()}

    def check(self, name: Any) -> str:
        """Return ``name`` if it is one of the choices, else raise ValueError naming them.

        Parameters
        ----------
        name : str

        Returns
        -------
        name : str
        """
        if not isinstance(name, str) or name not in self._items:
            raise ValueError(f"{self.what} must be one of {self.names}, got {name!r}")
        return name


#: Spaces a fit can run in; the palette always comes back as sRGB.
COLOR_SPACES = Choices(
    "color_space",
    Choice("rgb", "sRGB", "sRGB values on a 0-255 scale (the best PSNR)"),
    Choice(
        "wrgb",
        "Weighted sRGB",
        "sRGB weighted as the eye sees errors (R 0.8, G 1, B 0.7): fewer visible colour errors",
    ),
    Choice("lab", "CIELAB", "CIELAB (D65), perceptually more uniform"),
    Choice("oklab", "OKLab", "OKLab, perceptually uniform and hue-linear"),
)

#: Covariance forms of a Gaussian mixture.
COVARIANCE_TYPES = Choices(
    "covariance_type",
    Choice("full", "Full", "a full covariance matrix per component"),
    Choice("diag", "Diagonal", "a diagonal covariance per component"),
    Choice("spherical", "Spherical", "one variance per component"),
    Choice("tied", "Tied", "one full covariance shared by all components"),
)

#: Ways of rendering an image with a palette.
DITHERS = Choices(
    "dither",
    Choice("none", "None", "nearest palette colour"),
    Choice("fs", "Floyd–Steinberg", "error diffusion"),
    Choice("ordered", "Ordered (Bayer)", "8x8 Bayer threshold pattern"),
)

#: Palette fits offered in the app: the power of the distance the palette is polished for
#: after a K-means fit (``error_power`` of :func:`quantize.pipeline.iter_quantize_image`;
#: ``vq --error-power`` takes any number in [1, 2]).  ``"auto"`` is the default, None.
ERROR_POWERS = Choices(
    "error power",
    Choice("auto", "Automatic", "power 1.5 for K <= 32, the K-means palette above"),
    Choice("2", "K-means (squared error)", "each entry the mean of its colours: the best PSNR"),
    Choice(
        "1.5",
        "Power 1.5",
        "entries follow the many pixels they serve more than a few far ones: "
        "fewer visible colour errors in small palettes",
    ),
    Choice("1", "Power 1 (median-like)", "the least pulled by far colours"),
)

#: Read-only mapping of default parameters.
DEFAULTS: MappingProxyType[str, Any] = MappingProxyType(
    {
        "method": "kmeans",
        "n_colors": 16,
        # weighted sRGB: on eleven camera photos its palettes beat plain sRGB ones on mean
        # CIEDE2000 after a 1-px blur at about the same SSIM, and OKLab ones on both
        # (benchmarks/README.md, issue 10)
        "color_space": "wrgb",
        "covariance_type": "full",
        "init": "k-means++",
        "n_init": 1,  # one run: the coarse-to-fine stages make restarts rarely worth 3x the time
        "max_iter": 100,
        # 1e-4, scikit-learn's: with the compiled E step it costs at most 0.04 s on a 4 MP
        # photo (K = 64; K = 256 stops by the relative rule first), and its palettes have a
        # lower blurred CIEDE2000 on most photos (benchmarks/README.md, issue 10); 1e-3
        # before.  The mixture and mini-batch K-means keep their own 1e-3 (registry).
        "tol": 1e-4,
        "seed": 0,
        "dither": "none",
        "dither_strength": 1.0,
        "target_psnr": 35.0,
        "k_max_quality": 256,
        "k_max_bic": 16,
        "max_pixels": 100_000_000,
        # small distinct colours (quantize.pipeline.iter_quantize_image, keep_small_colors):
        # a colour group farther than this OKLab distance from every palette entry and
        # holding at least this share of the pixels gets an entry (see benchmarks/README.md)
        "keep_small_colors": True,
        "small_color_distance": 0.05,
        "small_color_share": 3e-4,
        # palette polish after a K-means fit (quantize.pipeline.iter_quantize_image,
        # error_power): None is automatic, entries that minimise the sum of distances to
        # the power 1.5 for K <= 32, K-means' own squared error above (benchmarks/README.md)
        "error_power": None,
    }
)
