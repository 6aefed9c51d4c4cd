"""What a run is and what it gives, without Qt: parameters, inputs, outputs, progress text.

:class:`RunParameters` is the form's content (remembered as JSON in the settings);
:class:`RunJob` is the input of one run and :class:`RunOutput` everything a finished run hands
to the views.  The choices offered and the rules that depend on the method come from the
engine's tables (:mod:`quantize.cluster.registry`, :mod:`quantize.options`), so nothing here
names a method.  The work itself is in :mod:`app.tasks`, the run control in
:mod:`app.controller`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from quantize.cluster.registry import METHODS, fit_options, get_method
from quantize.edit import SORT_KEYS
from quantize.io.palettes import hex_color
from quantize.options import COLOR_SPACES, COVARIANCE_TYPES, DEFAULTS, DITHERS, ERROR_POWERS
from quantize.protocol import IterationRecord

__all__ = [
    "AUTO_MODES",
    "AUTO_METRICS",
    "MAX_SIZE_KB_RANGE",
    "RunParameters",
    "RunJob",
    "Stage",
    "SoftMaps",
    "ColorSample",
    "RunOutput",
    "OpenedImage",
    "objective_kind",
    "is_grey_fit",
    "fit_space",
    "only_rendering_changed",
    "convergence_setup",
    "describe_record",
    "describe_image",
    "describe_output",
    "describe_pixel",
    "auto_k_verdict",
    "png_size_verdict",
    "format_bytes",
]

#: Automatic choice of K (the app's own option): name -> label, the default first.
AUTO_MODES: dict[str, str] = {
    "off": "Off (use K)",
    "quality": "PSNR target",
    "size": "Size budget",
    "bic": "BIC (mixture)",
}
#: Score plotted against K for each automatic mode.
AUTO_METRICS: dict[str, str] = {"quality": "psnr", "size": "png_bytes", "bic": "bic"}
#: range of the size budget (kB) of ``auto="size"``
MAX_SIZE_KB_RANGE = (1.0, 1_000_000.0)


@dataclass(frozen=True)
class RunParameters:
    """Everything that defines one quantization run in the GUI.

    Parameters
    ----------
    method : str
        A method of :data:`quantize.cluster.registry.METHODS`.
    n_colors : int
        Number of colours K (2–256); the upper bound of the search when ``auto`` is on.
    color_space : str
        Space in which colours are clustered (:data:`quantize.options.COLOR_SPACES`).
    covariance_type : str
        Mixture covariance form (:data:`quantize.options.COVARIANCE_TYPES`).
    init : str
        Initialisation, one of the method's ``inits`` (empty when it has none).
    n_init : int
        Restarts; the best run is kept.
    max_iter : int
        Iteration cap per restart.
    tol : float
        Convergence tolerance.
    seed : int
        Random seed.
    dither : str
        Dithering of the output image (:data:`quantize.options.DITHERS`).
    dither_strength : float
        Dithering strength in [0, 1].
    auto : {"off", "quality", "size", "bic"}
        Automatic choice of K (:data:`AUTO_MODES`).
    target_psnr : float
        Quality target (dB) for ``auto="quality"``.
    keep_small_colors : bool
        Give small distinct colour groups their own entry (see
        :func:`quantize.pipeline.iter_quantize_image`).
    palette_fit : str
        A key of :data:`quantize.options.ERROR_POWERS`: the power the palette is polished
        for after a K-means fit (see :meth:`error_power`).
    palette_order : str
        Order the palette is shown and exported in (:data:`quantize.edit.SORT_KEYS`).
    max_size_kb : float
        Budget of the indexed PNG (kB, 1000 bytes) for ``auto="size"``: the most colours
        whose PNG fits.
    """

    method: str = DEFAULTS["method"]
    n_colors: int = DEFAULTS["n_colors"]
    color_space: str = DEFAULTS["color_space"]
    covariance_type: str = DEFAULTS["covariance_type"]
    init: str = DEFAULTS["init"]
    n_init: int = DEFAULTS["n_init"]
    max_iter: int = DEFAULTS["max_iter"]
    tol: float = DEFAULTS["tol"]
    seed: int = DEFAULTS["seed"]
    dither: str = DEFAULTS["dither"]
    dither_strength: float = DEFAULTS["dither_strength"]
    auto: str = "off"
    target_psnr: float = DEFAULTS["target_psnr"]
    keep_small_colors: bool = DEFAULTS["keep_small_colors"]
    palette_fit: str = "auto"
    palette_order: str = "share"
    max_size_kb: float = 300.0

    def error_power(self) -> float | None:
        """Return ``error_power`` of :func:`quantize.pipeline.iter_quantize_image` (None: auto).

        Returns
        -------
        power : float or None
        """
        return None if self.palette_fit == "auto" else float(self.palette_fit)

    def pipeline_options(self) -> dict[str, Any]:
        """Return the options of the steps around the fit (small colours, palette polish).

        Returns
        -------
        options : dict
            ``keep_small_colors`` and ``error_power`` for
            :func:`quantize.pipeline.iter_quantize_image`.
        """
        return {"keep_small_colors": self.keep_small_colors, "error_power": self.error_power()}

    def fit_options(self) -> dict[str, Any]:
        """Return the estimator options passed on to :func:`quantize.pipeline.iter_quantize_image`.

        Returns
        -------
        options : dict
            Keyword arguments for the chosen method.
        """
        return fit_options(
            self.method,
            init=self.init,
            n_init=self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            covariance_type=self.covariance_type,
        )

    def to_json(self) -> str:
        """Serialise to a JSON string (for QSettings).

        Returns
        -------
        text : str
            JSON object of the fields.
        """
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> RunParameters:
        """Parse :meth:`to_json` output, falling back to defaults for anything invalid.

        Parameters
        ----------
        text : str or None
            JSON text, possibly from an older version or corrupted.

        Returns
        -------
        params : RunParameters
            Parsed, validated parameters.
        """
        default = cls()
        try:
            data = json.loads(text) if text else {}
        except (TypeError, ValueError):
            return default
        if not isinstance(data, dict):
            return default
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in data and isinstance(data[f.name], type(getattr(default, f.name))):
                values[f.name] = data[f.name]
            elif f.name in data and isinstance(getattr(default, f.name), float):
                if isinstance(data[f.name], int) and not isinstance(data[f.name], bool):
                    values[f.name] = float(data[f.name])
        params = replace(default, **values)
        return params.validated()

    def validated(self) -> RunParameters:
        """Return a copy with every field clamped to its allowed values.

        Returns
        -------
        params : RunParameters
            Valid parameters.
        """
        d = RunParameters()
        method = self.method if self.method in METHODS else d.method
        init_choices = METHODS[method].inits
        init = (
            self.init
            if (not init_choices or self.init in init_choices)
            else next(iter(init_choices))
        )
        tol = self.tol if math.isfinite(self.tol) and 0 < self.tol < 1 else d.tol
        return replace(
            self,
            method=method,
            n_colors=min(256, max(2, int(self.n_colors))),
            color_space=self.color_space if self.color_space in COLOR_SPACES else d.color_space,
            covariance_type=(
                self.covariance_type
                if self.covariance_type in COVARIANCE_TYPES
                else d.covariance_type
            ),
            init=init,
            n_init=min(50, max(1, int(self.n_init))),
            max_iter=min(10000, max(1, int(self.max_iter))),
            tol=tol,
            seed=min(2**31 - 1, max(0, int(self.seed))),
            dither=self.dither if self.dither in DITHERS else d.dither,
            dither_strength=min(1.0, max(0.0, float(self.dither_strength))),
            auto=self.auto if self.auto in AUTO_MODES else d.auto,
            target_psnr=min(60.0, max(15.0, float(self.target_psnr))),
            keep_small_colors=bool(self.keep_small_colors),
            palette_fit=self.palette_fit if self.palette_fit in ERROR_POWERS else d.palette_fit,
            palette_order=self.palette_order if self.palette_order in SORT_KEYS else "share",
            max_size_kb=min(
                MAX_SIZE_KB_RANGE[1], max(MAX_SIZE_KB_RANGE[0], float(self.max_size_kb))
            ),
        )


@dataclass(frozen=True)
class RunJob:
    """Inputs of one run.

    Parameters
    ----------
    image : ndarray of shape (M, N, 3) or (M, N, 4)
        Pixels (uint8 or uint16), not modified.
    params : RunParameters
        The run parameters.
    original_bytes : int or None
        Size of the source file, for the metrics' size comparison.
    previous : QuantizeResult or None
        A fit of this image with the same model parameters: only re-render it (used when
        just the dithering changed, and for an edited palette).
    overrides : dict or None
        Extra keyword arguments of :func:`quantize.pipeline.iter_quantize_image`: ``init``
        (an sRGB palette to start from), ``locked`` (colours kept exactly), ``importance``
        (a map painted in the app).
    table : ColorTable or None
        The distinct colours of ``image`` (:func:`quantize.features.unique_colors`), from an
        earlier run of the same image; ``None`` computes them (on a 15 MP photo 0.4 s, and
        the colours' conversion to the fitting space is kept with them).
    """

    image: np.ndarray
    params: RunParameters
    original_bytes: int | None = None
    previous: Any = None
    overrides: dict[str, Any] | None = None
    table: Any = None


@dataclass(frozen=True)
class Stage:
    """A progress message between the fit and the end of the run.

    Parameters
    ----------
    text : str
        What the worker is doing now.
    """

    text: str


@dataclass(frozen=True)
class Shown:
    """The run's result, ready to show before its quality metrics are computed.

    A run yields it once, after the rendering and the display data: the views show the
    palette image at once, and the metrics (seconds on a large photo) follow with the
    run's final output.

    Parameters
    ----------
    output : RunOutput
        The output without metrics (``metrics_pending`` is ``True``).
    """

    output: RunOutput


@dataclass
class SoftMaps:
    """Down-sampled per-component maps for display.

    Parameters
    ----------
    components : ndarray of shape (L,)
        Component indices shown, largest share first (``L <= MAX_MAPS``).
    responsibilities : ndarray of shape (L, m, n), uint8
        Responsibility of each shown component as 8-bit levels ``round(255 r)``
        (:func:`app.tasks.map_levels`; hard 0/255 masks for hard methods).
    labels : ndarray of shape (m, n)
        Hard label map at the same resolution.
    uncertainty : ndarray of shape (m, n), uint8
        ``1 - max responsibility`` as 8-bit levels.
    step : int
        Sub-sampling step from the full image (``m = ceil(M / step)``).
    soft : bool
        Whether the fit has soft responsibilities (e.g. a Gaussian mixture, or any smoothed
        result).
    uncertainty_source : str
        What ``uncertainty`` is computed from: ``"responsibilities"``, or for the hard
        methods ``"distances"`` (the soft assignments of :func:`quantize.segment.
        soft_assignments`: their masks are 0/1 but how close a pixel is to another centre
        still shows).
    """

    components: np.ndarray
    responsibilities: np.ndarray
    labels: np.ndarray
    uncertainty: np.ndarray
    step: int
    soft: bool = False
    uncertainty_source: str = "responsibilities"


@dataclass
class ColorSample:
    """A random sample of the opaque pixels, in the fitting space.

    Parameters
    ----------
    points : ndarray of shape (S, D), float64
        Sampled colours in the result's colour space (D = 1 for grey fits).
    labels : ndarray of shape (S,)
        Cluster of each sampled pixel.
    steps : list of IterationRecord
        The kept run's records, in order, whose centres live in the same space as
        ``points`` (shape (K, D)): the colour-space view's iteration replay.
    """

    points: np.ndarray
    labels: np.ndarray
    steps: list[IterationRecord] = field(default_factory=list)


@dataclass
class RunOutput:
    """Everything a finished run hands to the GUI.

    Parameters
    ----------
    result : QuantizeResult
        The engine's result.
    quantized : ndarray of shape (M, N, 3) or (M, N, 4), uint8
        The palette image (dithered as requested), C-contiguous; with the input's alpha
        channel when it has one.
    labels : ndarray of shape (M, N), uint8, or None
        C-contiguous labels for cluster highlighting (``None`` when K > 256).
    soft_maps : SoftMaps
        Display-resolution maps.
    sample : ColorSample
        Colour sample for the colour-space view.
    chosen_restart : int
        Restart index whose run was kept.
    metrics : Metrics or None
        Quality metrics, or ``None`` when they could not be computed.
    metrics_error : str
        Why metrics are missing (empty otherwise).
    params : RunParameters
        Parameters of this run.
    elapsed_s : float
        Wall time of the whole run.
    extra : dict
        ``"auto"``: the automatic choice of K (an ``AutoKResult``), when one was made.
    rendering : (indices, png) or None
        :func:`quantize.metrics.render_indexed` of the result with the run's dithering,
        shared by the metrics and the export.
    original_bytes : int or None
        Size of the original file, when known.
    metrics_pending : bool
        ``True`` in the output a run shows before it computes the metrics (:class:`Shown`).
    """

    result: Any
    quantized: np.ndarray
    labels: np.ndarray | None
    soft_maps: SoftMaps
    sample: ColorSample
    chosen_restart: int
    metrics: Any
    metrics_error: str
    params: RunParameters
    elapsed_s: float
    extra: dict[str, Any] = field(default_factory=dict)
    rendering: tuple[np.ndarray, bytes] | None = None
    original_bytes: int | None = None
    metrics_pending: bool = False


@dataclass
class OpenedImage:
    """A decoded image plus what the GUI shows of it.

    Parameters
    ----------
    loaded : LoadedImage
        From :mod:`quantize.io.load`.
    display : ndarray of shape (M, N, 3) or (M, N, 4), uint8
        C-contiguous display pixels.
    grey : bool
        Whether every pixel is grey (R == G == B), which allows the grey-only methods.
    name : str
        Name shown in the title bar.
    """

    loaded: Any
    display: np.ndarray
    grey: bool
    name: str


def objective_kind(method: str) -> str:
    """Return the objective plotted for ``method``.

    Parameters
    ----------
    method : str
        A registered method.

    Returns
    -------
    kind : {"inertia", "log_likelihood"}
        Which :class:`~quantize.protocol.IterationRecord` objective the method records.
    """
    return get_method(method).objective


def is_grey_fit(method: str) -> bool:
    """Return whether ``method`` fits grey levels (one dimension) rather than colours.

    Parameters
    ----------
    method : str
        A registered method.

    Returns
    -------
    grey : bool
        The method's ``grey_only``.
    """
    return get_method(method).grey_only


def fit_space(result: Any) -> str:
    """Return the space of a result's centres: its colour space, or ``"grey"`` for 1-D fits.

    Parameters
    ----------
    result : QuantizeResult
        A fitted result.

    Returns
    -------
    space : str
        ``"grey"`` or one of :data:`quantize.options.COLOR_SPACES`.
    """
    return "grey" if is_grey_fit(result.method) else result.color_space


def only_rendering_changed(old: RunParameters, new: RunParameters) -> bool:
    """Return whether ``new`` differs from ``old`` only in how the palette image is drawn.

    Parameters
    ----------
    old, new : RunParameters
        Parameters of the previous and of the requested run.

    Returns
    -------
    same_fit : bool
        ``True`` when the fit can be reused and only dithering changes.
    """
    return (
        old != new
        and old.auto == "off"
        and replace(
            new,
            dither=old.dither,
            dither_strength=old.dither_strength,
            palette_order=old.palette_order,
        )
        == old
    )


def convergence_setup(params: RunParameters) -> tuple[str, str | None, int]:
    """Return what the convergence plot shows for a run with ``params``.

    Parameters
    ----------
    params : RunParameters
        The coming run.

    Returns
    -------
    kind : {"inertia", "log_likelihood"}
        Objective of the method.
    auto_metric : str or None
        Score plotted against K for an automatic choice of K, else ``None``.
    n_runs : int
        Restart curves to prepare (0 for an automatic choice of K).
    """
    auto_metric = AUTO_METRICS.get(params.auto)
    n_runs = 0 if auto_metric else params.fit_options().get("n_init", 1)
    return objective_kind(params.method), auto_metric, n_runs


def describe_record(record: IterationRecord, params: RunParameters) -> tuple[float | None, str]:
    """Describe the latest iteration of a run for the status bar.

    Parameters
    ----------
    record : IterationRecord
        The engine's latest record.
    params : RunParameters
        Parameters of the run.

    Returns
    -------
    done : float or None
        Fraction of the fit done, in [0, 1], when it can be told (a plain fit of an
        iterative method), else ``None``.
    text : str
        E.g. ``"run 2/3 · iteration 14 · J = 151.2 · shift 0.012"``.
    """
    name = "J" if record.kind == "inertia" else "mean log-likelihood"
    runs = f"run {record.restart + 1}/{params.n_init} · " if params.n_init > 1 else ""
    extra = record.extra
    k = f"K={extra['k']} · " if isinstance(extra, dict) and "k" in extra else ""
    stage = f"{record.stage} · " if record.stage else ""
    done = None
    if params.auto == "off" and get_method(params.method).iterative:
        done = (record.restart + min(1.0, record.iteration / params.max_iter)) / params.n_init
    text = (
        f"{stage}{k}{runs}iteration {record.iteration} · {name} = {record.objective:.6g} · "
        f"shift {record.shift:.3g}"
    )
    return done, text


def format_bytes(n: float | None) -> str:
    """Format a byte count for people (``"12.3 kB"``).

    Parameters
    ----------
    n : float or None
        Number of bytes.

    Returns
    -------
    text : str
        Human-readable size, ``"–"`` when unknown.
    """
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return "–"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000.0
    return f"{value:.1f} GB"


def describe_image(loaded: Any) -> tuple[str, str]:
    """Describe an opened image for the status bar.

    Parameters
    ----------
    loaded : LoadedImage
        From :mod:`quantize.io.load`.

    Returns
    -------
    facts : str
        Size, format, mode, depth, alpha, file size and frames.
    notes : str
        The loader's warnings and notes, ``"; "``-joined (empty when none).
    """
    size = format_bytes(loaded.file_size) if loaded.file_size else "in memory"
    frames = f" · {loaded.n_frames} frames (first shown)" if loaded.n_frames > 1 else ""
    alpha = " · alpha" if loaded.has_alpha else ""
    facts = (
        f"{loaded.width}×{loaded.height} · {loaded.format} {loaded.mode} "
        f"{loaded.bit_depth}-bit{alpha} · {size}{frames}"
    )
    notes = list(loaded.info.get("warnings", []) or []) + list(loaded.info.get("notes", []) or [])
    return facts, "; ".join(str(n) for n in notes)


def describe_output(output: RunOutput) -> str:
    """Summarise a finished run for the status bar.

    Parameters
    ----------
    output : RunOutput
        The run.

    Returns
    -------
    text : str
        E.g. ``"Done: 16 colours (kmeans, oklab) in 1.12 s · PSNR 28.53 dB"``.
    """
    result = output.result
    psnr = getattr(output.metrics, "psnr", None)
    quality = f" · PSNR {psnr:.2f} dB" if psnr is not None else ""
    warn = f" · {len(result.warnings)} warning(s), see Metrics" if result.warnings else ""
    size, _ = png_size_verdict(output)
    size = f" · {size}" if size else ""
    missed = auto_k_verdict(output)
    head = f"{missed} · " if missed else "Done: "
    return (
        f"{head}{len(result.palette)} colours ({result.method}, {result.color_space}) in "
        f"{output.elapsed_s:.2f} s{quality}{size}{warn}"
    )


def png_size_verdict(output: RunOutput) -> tuple[str, bool]:
    """Say the indexed PNG's size next to the original file's, and whether it is larger.

    Parameters
    ----------
    output : RunOutput
        A finished run (its metrics hold both sizes), or one whose metrics are still being
        computed (its rendering holds the PNG).

    Returns
    -------
    text : str
        E.g. ``"PNG 319.0 kB (319,012 bytes) vs original 185.0 kB"``, with
        ``" — LARGER than the original"`` when it is; ``""`` without metrics.
    larger : bool
        Whether the PNG is larger than the original file.
    """
    m = output.metrics
    if m is not None:
        png_bytes, original = m.png_bytes, m.original_bytes
    elif (rendering := getattr(output, "rendering", None)) is not None:
        png_bytes, original = len(rendering[1]), getattr(output, "original_bytes", None)
    else:
        return "", False
    text = f"PNG {format_bytes(png_bytes)} ({png_bytes:,} bytes)"
    if not original:
        return text, False
    larger = png_bytes > original
    text += f" vs original {format_bytes(original)}"
    if larger:
        text += " — LARGER than the original"
    return text, larger


def auto_k_verdict(output: RunOutput) -> str:
    """Say that an automatic choice of K missed its target (``""`` when it did not).

    Parameters
    ----------
    output : RunOutput
        A finished run; ``output.extra["auto"]`` is the search's
        :class:`~quantize.auto.AutoKResult` for an automatic K.

    Returns
    -------
    text : str
        E.g. ``"Target 35 dB NOT reached: best 29.5 dB at K=16, the most colours allowed
        (raise Max colours)"``.
    """
    choice = output.extra.get("auto")
    if choice is None or choice.reached or choice.target is None:
        return ""
    if choice.metric == "png_bytes":
        return (
            f"No palette fits {format_bytes(choice.target)}: even K={choice.k} makes a PNG of "
            f"{format_bytes(choice.value)}"
        )
    unit = " dB" if choice.metric == "psnr" else ""
    return (
        f"Target {choice.target:g}{unit} NOT reached: best {choice.value:.1f}{unit} at "
        f"K={choice.k}, the most colours allowed (raise Max colours)"
    )


def describe_pixel(image: np.ndarray, output: RunOutput | None, row: int, col: int) -> str:
    """Describe one pixel: position, original value, palette colour and cluster.

    Parameters
    ----------
    image : ndarray of shape (M, N, 3) or (M, N, 4)
        The image.
    output : RunOutput or None
        The run whose palette and clusters are shown, if any.
    row, col : int
        Pixel position.

    Returns
    -------
    text : str
        E.g. ``"(row 120, col 45) rgb(200, 120, 80) → #c27850 cluster 3 (12.1 %)"``.
    """
    value = image[row, col]
    channels = ", ".join(str(int(v)) for v in np.atleast_1d(value))
    name = "rgba" if np.size(value) == 4 else "rgb"
    text = f"(row {row}, col {col}) {name}({channels})"
    if output is not None:
        result = output.result
        k = int(result.labels[row, col])
        opaque = result.opaque is None or bool(result.opaque[row, col])
        if opaque:
            colour = hex_color(result.palette[k])
            share = 100.0 * float(result.proportions[k])
            text += f" → {colour} cluster {k} ({share:.1f} %)"
        else:
            text += " (transparent: not clustered)"
    return text
