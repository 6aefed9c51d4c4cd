"""The table of clustering methods: one entry per method, everything else is built from it.

A :class:`MethodSpec` says how to make the estimator and what a person and the other layers
need to know about it: its label, the estimator options it takes, its initialisations, the
objective it records, whether it gives soft responsibilities or can choose K by BIC, and
whether it only works on grey images.  The ``vq`` command's ``--method`` choices and help,
the desktop app's method list and its enabled fields, the pipeline's option checks and the
sidecar all read this table, so a new method is one estimator module plus one
:func:`register_method` call.

An estimator made by ``factory(n_colors, seed, options)`` must offer ``iter_fit(points,
weights, should_cancel=...)`` (a generator of :class:`~quantize.protocol.IterationRecord`
returning the fitted estimator) and, once fitted, ``labels_`` (U,), ``history_``,
``warnings_``, ``n_iter_``, ``converged_`` and its centres as ``cluster_centers_`` (K, D) or,
for a mixture, ``means_``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from quantize.cluster.gmm import GaussianMixture
from quantize.cluster.kmeans import KMeans, palette_rel_tol, palette_seedings
from quantize.cluster.minibatch import MiniBatchKMeans
from quantize.cluster.optimal1d import Optimal1D
from quantize.options import DEFAULTS

__all__ = [
    "METHODS",
    "MethodSpec",
    "fit_options",
    "get_method",
    "register_method",
    "unregister_method",
]

Factory = Callable[[int, int, dict[str, Any]], Any]


@dataclass(frozen=True)
class MethodSpec:
    """One clustering method.

    Parameters
    ----------
    name : str
        Name used by the API, ``vq --method`` and the sidecar.
    label : str
        Name in the app's method list (e.g. ``"Gaussian mixture"``).
    short_label : str
        Name inside a sentence of the CLI summary (e.g. ``"mini-batch K-means"``).
    description : str
        One line for ``vq --help`` and the app's tooltip.
    factory : callable
        ``factory(n_colors, seed, options) -> estimator``.
    options : frozenset of str
        Estimator options the method accepts (``init``, ``n_init``, ``max_iter``, ``tol``,
        ``covariance_type``...).  An empty set: the method takes no options.
    inits : mapping of str to str
        Initialisations offered (name -> label), the default first; empty for none.
    objective : {"inertia", "log_likelihood"}
        What its :class:`~quantize.protocol.IterationRecord` objective measures.
    soft : bool
        Whether it gives soft responsibilities (``predict_proba``).
    bic : bool
        Whether K can be chosen by BIC.
    grey_only : bool
        Whether it only fits grey images (one channel).
    default_tol : float or None
        Its own default convergence tolerance where :data:`~quantize.options.DEFAULTS`'
        ``tol`` does not fit what its ``tol`` measures (see :meth:`tol_default`).
    """

    name: str
    label: str
    short_label: str
    description: str
    factory: Factory
    options: frozenset[str]
    inits: Mapping[str, str] = field(default_factory=dict)
    objective: Literal["inertia", "log_likelihood"] = "inertia"
    soft: bool = False
    bic: bool = False
    grey_only: bool = False
    default_tol: float | None = None

    def tol_default(self) -> float:
        """Return the default ``tol`` of this method (the CLI's and the app's).

        Returns
        -------
        tol : float
        """
        return float(DEFAULTS["tol"] if self.default_tol is None else self.default_tol)

    @property
    def iterative(self) -> bool:
        """Whether the method iterates (has ``max_iter``/``tol``)."""
        return "max_iter" in self.options

    @property
    def polishable(self) -> bool:
        """Whether the palette polish after the fit applies (``error_power``).

        Hard fits of the squared error on colour images: their centres are means, which the
        polish moves towards the least sum of distances to a power below 2.
        """
        return self.objective == "inertia" and not self.soft and not self.grey_only

    @property
    def uses_covariance(self) -> bool:
        """Whether ``covariance_type`` applies."""
        return "covariance_type" in self.options

    def make(self, n_colors: int, seed: int, options: Mapping[str, Any]) -> Any:
        """Check ``options`` against :attr:`options` and make the estimator.

        Parameters
        ----------
        n_colors : int
            K.
        seed : int
            Seed of the estimator's randomness.
        options : mapping
            Estimator options.  A ``tol`` not given is the method's :meth:`tol_default`,
            as ``vq`` and the app run it, so that a library call with the same options
            makes the same palette.

        Returns
        -------
        estimator : object
            Not yet fitted.

        Raises
        ------
        ValueError
            If an option is not one the method accepts.
        """
        unknown = set(options) - self.options
        if unknown:
            raise ValueError(
                f"unknown option(s) for method {self.name!r}: {sorted(unknown)}; "
                f"allowed: {sorted(self.options)}"
            )
        opts = dict(options)
        if "tol" in self.options:
            opts.setdefault("tol", self.tol_default())
        return self.factory(n_colors, seed, opts)


_KMEANS_INITS = {"k-means++": "k-means++", "random": "Random"}
_COMMON = frozenset({"init", "n_init", "max_iter", "tol", "working_memory_mib"})

#: The registered methods by name, in menu order.  Read-only view; see :func:`register_method`.
_METHODS: dict[str, MethodSpec] = {}
METHODS: Mapping[str, MethodSpec] = _METHODS  # a live view for readers


def register_method(spec: MethodSpec) -> None:
    """Add a clustering method to the table (or replace one of the same name).

    Parameters
    ----------
    spec : MethodSpec
    """
    if not spec.name or not spec.name.isidentifier():
        raise ValueError(f"method name must be an identifier, got {spec.name!r}")
    _METHODS[spec.name] = spec


def unregister_method(name: str) -> None:
    """Remove a method added by :func:`register_method` (for tests and plug-ins).

    Parameters
    ----------
    name : str
    """
    _METHODS.pop(name, None)


def get_method(name: Any) -> MethodSpec:
    """Return the method called ``name``.

    Parameters
    ----------
    name : str

    Returns
    -------
    spec : MethodSpec

    Raises
    ------
    ValueError
        If no method has that name (the message lists the methods).
    """
    spec = _METHODS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ValueError(f"method must be one of {tuple(_METHODS)}, got {name!r}")
    return spec


def fit_options(
    method: str,
    *,
    init: Any,
    n_init: int,
    max_iter: int,
    tol: float,
    covariance_type: str = DEFAULTS["covariance_type"],
    locked: Any = None,
) -> dict[str, Any]:
    """Estimator options of a run, as the ``vq`` command and the app pass them to the engine.

    Only the options the method accepts are kept.

    Parameters
    ----------
    method : str
        A registered method.
    init : str or ndarray of shape (K, 3)
        Initialisation.
    n_init, max_iter : int
        Restarts and iteration cap per restart.
    tol : float
        Convergence tolerance.
    covariance_type : str, optional
        For methods with covariances.
    locked : ndarray of shape (L, 3), uint8, or None
        Locked sRGB colours (methods that accept ``locked``); None or empty: none.

    Raises
    ------
    ValueError
        If colours are locked for a method that cannot lock them.

    Returns
    -------
    options : dict
        ``**fit_options`` for :func:`quantize.pipeline.iter_quantize_image`.
    """
    spec = get_method(method)
    given = {
        "init": init,
        "n_init": n_init,
        "max_iter": max_iter,
        "tol": tol,
        "covariance_type": covariance_type,
    }
    out = {k: v for k, v in given.items() if k in spec.options}
    if locked is not None and len(locked):
        if "locked" not in spec.options:
            able = ", ".join(n for n, s in _METHODS.items() if "locked" in s.options)
            raise ValueError(f"method {method!r} cannot lock colours (methods that can: {able})")
        out["locked"] = locked
    return out


register_method(
    MethodSpec(
        name="kmeans",
        label="K-means",
        short_label="K-means",
        description="weighted K-means (Lloyd, coarse-to-fine): the best palette for compression",
        factory=lambda k, seed, o: KMeans(
            k,
            seed=seed,
            **{"rel_tol": palette_rel_tol(k), "n_seedings": palette_seedings(k), **o},
        ),
        options=_COMMON | {"algorithm", "locked", "rel_tol", "n_seedings", "seeding_score"},
        inits=_KMEANS_INITS,
    )
)
register_method(
    MethodSpec(
        name="gmm",
        label="Gaussian mixture",
        short_label="Gaussian mixture",
        description="Gaussian mixture fitted by EM: soft responsibilities for segmentation",
        factory=lambda k, seed, o: GaussianMixture(k, seed=seed, **o),
        options=_COMMON | {"covariance_type", "reg_covar", "locked"},
        inits={"kmeans": "K-means", **_KMEANS_INITS},
        objective="log_likelihood",
        soft=True,
        bic=True,
        # tol is a gain in mean log-likelihood per pixel here (a relative centre shift for
        # K-means): scikit-learn's default; 1e-4 took 2-3x the EM iterations on 1-megapixel
        # photos for a log-likelihood within 0.02 nats (benchmarks/README.md)
        default_tol=1e-3,
    )
)
register_method(
    MethodSpec(
        name="minibatch",
        label="Mini-batch K-means",
        short_label="mini-batch K-means",
        description="mini-batch K-means (stochastic updates on samples)",
        factory=lambda k, seed, o: MiniBatchKMeans(k, seed=seed, **o),
        options=_COMMON | {"batch_size", "max_no_improvement"},
        inits=_KMEANS_INITS,
        default_tol=1e-3,  # (K-means' was 1e-3 when this method was tuned)
    )
)
register_method(
    MethodSpec(
        name="optimal1d",
        label="Exact 1-D (grey images)",
        short_label="exact 1-D",
        description="the exact K-means optimum by dynamic programming, grey images only",
        factory=lambda k, seed, o: Optimal1D(k),
        options=frozenset(),
        grey_only=True,
    )
)
