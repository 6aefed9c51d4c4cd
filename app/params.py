"""Run parameters (a plain dataclass) and the parameter panel that edits them."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from quantize.cluster.registry import fit_options
from quantize.options import DEFAULTS

__all__ = ["RunParameters", "ParameterPanel", "METHODS", "DITHERS", "AUTO_MODES"]

METHODS: dict[str, str] = {
    "kmeans": "K-means",
    "gmm": "Gaussian mixture",
    "minibatch": "Mini-batch K-means",
    "optimal1d": "Exact 1-D (grey images)",
}
SPACE_LABELS: dict[str, str] = {"rgb": "sRGB", "lab": "CIELAB", "oklab": "OKLab"}
COVARIANCES: dict[str, str] = {
    "full": "Full",
    "diag": "Diagonal",
    "spherical": "Spherical",
    "tied": "Tied",
}
INITS: dict[str, dict[str, str]] = {
    "kmeans": {"k-means++": "k-means++", "random": "Random"},
    "gmm": {"kmeans": "K-means", "k-means++": "k-means++", "random": "Random"},
    "minibatch": {"k-means++": "k-means++", "random": "Random"},
    "optimal1d": {},
}
DITHERS: dict[str, str] = {"none": "None", "fs": "Floyd–Steinberg", "ordered": "Ordered (Bayer)"}
AUTO_MODES: dict[str, str] = {
    "off": "Off (use K)",
    "quality": "PSNR target",
    "bic": "BIC (mixture)",
}


@dataclass(frozen=True)
class RunParameters:
    """Everything that defines one quantization run in the GUI.

    Parameters
    ----------
    method : {"kmeans", "gmm", "minibatch", "optimal1d"}
        The estimator.
    n_colors : int
        Number of colours K (2–256); the upper bound of the search when ``auto`` is on.
    color_space : {"rgb", "lab", "oklab"}
        Space in which colours are clustered.
    covariance_type : {"full", "diag", "spherical", "tied"}
        GMM covariance form.
    init : str
        Initialisation (``"k-means++"``/``"random"`` for K-means; ``"kmeans"`` also for GMM).
    n_init : int
        Restarts; the best run is kept.
    max_iter : int
        Iteration cap per restart.
    tol : float
        Convergence tolerance.
    seed : int
        Random seed.
    dither : {"none", "fs", "ordered"}
        Dithering of the output image.
    dither_strength : float
        Dithering strength in [0, 1].
    auto : {"off", "quality", "bic"}
        Automatic choice of K.
    target_psnr : float
        Quality target (dB) for ``auto="quality"``.
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
        init_choices = INITS[method]
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
            color_space=self.color_space if self.color_space in SPACE_LABELS else d.color_space,
            covariance_type=(
                self.covariance_type if self.covariance_type in COVARIANCES else d.covariance_type
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
        )


def _combo(items: dict[str, str], object_name: str) -> QtWidgets.QComboBox:
    combo = QtWidgets.QComboBox()
    combo.setObjectName(object_name)
    combo.setSizeAdjustPolicy(
        QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
    )
    combo.setMinimumContentsLength(8)
    for key, label in items.items():
        combo.addItem(label, key)
    return combo


def _select(combo: QtWidgets.QComboBox, key: str) -> None:
    index = combo.findData(key)
    if index >= 0:
        combo.setCurrentIndex(index)


class ParameterPanel(QtWidgets.QWidget):
    """Form editing :class:`RunParameters`; emits ``changed`` on every user edit.

    Parameters
    ----------
    parent : QWidget, optional
        Parent widget.
    """

    changed = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("parameterPanel")
        self._updating = False

        self.method = _combo(METHODS, "methodCombo")
        self.method.setToolTip(
            "K-means: hard clusters, fast. Gaussian mixture: soft clusters with a covariance "
            "per colour. Exact 1-D: globally optimal palette for grey images."
        )
        self.n_colors = QtWidgets.QSpinBox(objectName="nColorsSpin")
        self.n_colors.setRange(2, 256)
        self.n_colors.setToolTip("Number of colours K (the maximum when K is chosen automatically)")
        self.color_space = _combo(SPACE_LABELS, "colorSpaceCombo")
        self.color_space.setToolTip("Space in which distances are measured")
        self.covariance = _combo(COVARIANCES, "covarianceCombo")
        self.init = _combo({}, "initCombo")  # filled per method by _fill_init
        self.n_init = QtWidgets.QSpinBox(objectName="restartsSpin")
        self.n_init.setRange(1, 50)
        self.n_init.setToolTip("Independent restarts; the best run is kept")
        self.max_iter = QtWidgets.QSpinBox(objectName="maxIterSpin")
        self.max_iter.setRange(1, 10000)
        self.tol = QtWidgets.QLineEdit(objectName="tolEdit")
        validator = QtGui.QDoubleValidator(1e-12, 0.5, 12, self.tol)
        validator.setNotation(QtGui.QDoubleValidator.Notation.ScientificNotation)
        self.tol.setValidator(validator)
        self.tol.setToolTip("Convergence tolerance (e.g. 1e-4)")
        self.seed = QtWidgets.QSpinBox(objectName="seedSpin")
        self.seed.setRange(0, 2**31 - 1)
        self.dither = _combo(DITHERS, "ditherCombo")
        self.strength = QtWidgets.QDoubleSpinBox(objectName="ditherStrengthSpin")
        self.strength.setRange(0.0, 1.0)
        self.strength.setSingleStep(0.05)
        self.strength.setDecimals(2)
        self.auto = _combo(AUTO_MODES, "autoCombo")
        self.auto.setToolTip(
            "Let VQ Studio choose K between 2 and the number of colours: the fewest colours "
            "reaching the PSNR target, or the Gaussian mixture with the lowest BIC"
        )
        self.target_psnr = QtWidgets.QDoubleSpinBox(objectName="targetPsnrSpin")
        self.target_psnr.setRange(15.0, 60.0)
        self.target_psnr.setSuffix(" dB")
        self.target_psnr.setDecimals(1)

        model = QtWidgets.QGroupBox("Model")
        form = QtWidgets.QFormLayout(model)
        form.addRow("&Method", self.method)
        self.n_colors_label = QtWidgets.QLabel("&Colours (K)")
        self.n_colors_label.setBuddy(self.n_colors)
        form.addRow(self.n_colors_label, self.n_colors)
        form.addRow("Colour &space", self.color_space)
        form.addRow("Co&variance", self.covariance)
        form.addRow("&Init", self.init)
        form.addRow("&Restarts", self.n_init)
        form.addRow("Max &iterations", self.max_iter)
        form.addRow("&Tolerance", self.tol)
        form.addRow("S&eed", self.seed)

        output = QtWidgets.QGroupBox("Output")
        form2 = QtWidgets.QFormLayout(output)
        form2.addRow("&Dithering", self.dither)
        form2.addRow("Stren&gth", self.strength)

        auto = QtWidgets.QGroupBox("Automatic K")
        form3 = QtWidgets.QFormLayout(auto)
        form3.addRow("&Auto K", self.auto)
        form3.addRow("&PSNR target", self.target_psnr)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(model)
        layout.addWidget(output)
        layout.addWidget(auto)
        layout.addStretch(1)

        self.set_parameters(RunParameters())
        for combo in (
            self.method,
            self.color_space,
            self.covariance,
            self.init,
            self.dither,
            self.auto,
        ):
            combo.currentIndexChanged.connect(self._on_edit)
        for spin in (self.n_colors, self.n_init, self.max_iter, self.seed):
            spin.valueChanged.connect(self._on_edit)
        self.strength.valueChanged.connect(self._on_edit)
        self.target_psnr.valueChanged.connect(self._on_edit)
        self.tol.editingFinished.connect(self._on_edit)

    # ------------------------------------------------------------------ public API
    def parameters(self) -> RunParameters:
        """Return the parameters shown in the form.

        Returns
        -------
        params : RunParameters
            Current, validated parameters.
        """
        try:
            tol = float(self.tol.text())
        except ValueError:
            tol = RunParameters.tol
        return RunParameters(
            method=self.method.currentData(),
            n_colors=self.n_colors.value(),
            color_space=self.color_space.currentData(),
            covariance_type=self.covariance.currentData(),
            init=self.init.currentData() or "",
            n_init=self.n_init.value(),
            max_iter=self.max_iter.value(),
            tol=tol,
            seed=self.seed.value(),
            dither=self.dither.currentData(),
            dither_strength=self.strength.value(),
            auto=self.auto.currentData(),
            target_psnr=self.target_psnr.value(),
        ).validated()

    def set_parameters(self, params: RunParameters) -> None:
        """Show ``params`` in the form (does not emit ``changed``).

        Parameters
        ----------
        params : RunParameters
            Parameters to show.
        """
        params = params.validated()
        self._updating = True
        try:
            _select(self.method, params.method)
            self._fill_init(params.method, params.init)
            self.n_colors.setValue(params.n_colors)
            _select(self.color_space, params.color_space)
            _select(self.covariance, params.covariance_type)
            self.n_init.setValue(params.n_init)
            self.max_iter.setValue(params.max_iter)
            self.tol.setText(f"{params.tol:g}")
            self.seed.setValue(params.seed)
            _select(self.dither, params.dither)
            self.strength.setValue(params.dither_strength)
            _select(self.auto, params.auto)
            self.target_psnr.setValue(params.target_psnr)
        finally:
            self._updating = False
        self._update_enabled()

    def set_grey_available(self, available: bool) -> None:
        """Enable the exact 1-D method only for grey images.

        Parameters
        ----------
        available : bool
            Whether the current image is grey.
        """
        item = self.method.model().item(self.method.findData("optimal1d"))
        item.setEnabled(available)
        if not available and self.method.currentData() == "optimal1d":
            _select(self.method, "kmeans")  # emits changed via _on_edit
        self._update_enabled()

    # ------------------------------------------------------------------ internals
    def _fill_init(self, method: str, current: str) -> None:
        self.init.blockSignals(True)
        self.init.clear()
        for key, label in INITS[method].items():
            self.init.addItem(label, key)
        index = self.init.findData(current)
        self.init.setCurrentIndex(index if index >= 0 else 0)
        self.init.blockSignals(False)

    def _update_enabled(self) -> None:
        method = self.method.currentData()
        iterative = method != "optimal1d"
        self.covariance.setEnabled(method == "gmm")
        for widget in (self.init, self.n_init, self.max_iter, self.tol, self.seed):
            widget.setEnabled(iterative)
        self.strength.setEnabled(self.dither.currentData() != "none")
        self.target_psnr.setEnabled(self.auto.currentData() == "quality")
        auto_on = self.auto.currentData() != "off"
        self.n_colors_label.setText("Max &colours (K)" if auto_on else "&Colours (K)")
        bic_item = self.auto.model().item(self.auto.findData("bic"))
        bic_item.setEnabled(method == "gmm")
        if method != "gmm" and self.auto.currentData() == "bic":
            self.auto.blockSignals(True)
            _select(self.auto, "off")
            self.auto.blockSignals(False)

    def _on_edit(self) -> None:
        if self._updating:
            return
        if self.sender() is self.method:
            self._fill_init(self.method.currentData(), self.init.currentData() or "")
        self._update_enabled()
        self.changed.emit()
