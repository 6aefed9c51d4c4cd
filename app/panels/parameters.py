"""The parameter panel: a form editing :class:`~app.model.RunParameters`.

Its choices come from the engine's tables when the panel is built: the methods from
:data:`quantize.cluster.registry.METHODS` (so a newly registered method is offered), colour
spaces, covariance types and dithers from :mod:`quantize.options`.  Which fields apply follows
the chosen method's :class:`~quantize.cluster.registry.MethodSpec`: the covariance only for
methods with covariances, the iteration fields only for iterative methods, BIC only for
methods that support it, grey-only methods only for grey images.
"""

from __future__ import annotations

from typing import cast

from PySide6 import QtCore, QtGui, QtWidgets

from app.model import AUTO_MODES, MAX_SIZE_KB_RANGE, RunParameters
from quantize._native import prepare as prepare_compiled_loops
from quantize.cluster.registry import METHODS, MethodSpec
from quantize.options import COLOR_SPACES, COVARIANCE_TYPES, DEFAULTS, DITHERS, ERROR_POWERS

__all__ = ["ParameterPanel"]


def _combo(
    items: dict[str, str], object_name: str, tips: dict[str, str] | None = None
) -> QtWidgets.QComboBox:
    combo = QtWidgets.QComboBox()
    combo.setObjectName(object_name)
    combo.setSizeAdjustPolicy(
        QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
    )
    combo.setMinimumContentsLength(8)
    for key, label in items.items():
        combo.addItem(label, key)
        if tips and tips.get(key):
            combo.setItemData(combo.count() - 1, tips[key], QtCore.Qt.ItemDataRole.ToolTipRole)
    return combo


def _items(combo: QtWidgets.QComboBox) -> QtGui.QStandardItemModel:
    """Return the model of a combo filled with ``addItem`` (Qt's default item model)."""
    # model() is typed QAbstractItemModel; a QComboBox's own model is a QStandardItemModel
    return cast(QtGui.QStandardItemModel, combo.model())


def _select(combo: QtWidgets.QComboBox, key: str) -> None:
    index = combo.findData(key)
    if index >= 0:
        combo.setCurrentIndex(index)


def method_hint(spec: MethodSpec) -> str:
    """Say in a line what a method is good for (shown under the method's combo box).

    Parameters
    ----------
    spec : MethodSpec

    Returns
    -------
    hint : str
        Built from the method's flags: soft methods suit segmentation, the others palettes.
    """
    if spec.grey_only:
        return "Best for grey images: the optimal palette, found exactly."
    if spec.soft:
        return (
            "Best for segmentation: soft maps give each pixel a probability per colour. "
            "For a small palette image, K-means is faster and usually sharper."
        )
    return (
        "Best for palettes and small indexed images. For segmentation with soft maps and "
        "uncertainty, use the Gaussian mixture."
    )


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

        # the registry as it is now: a method registered before the panel is built is offered
        self._specs: dict[str, MethodSpec] = dict(METHODS)
        self.method = _combo(
            {name: spec.label for name, spec in self._specs.items()},
            "methodCombo",
            {name: spec.description for name, spec in self._specs.items()},
        )
        self.method.setToolTip(
            "K-means: hard clusters, fast. Gaussian mixture: soft clusters with a covariance "
            "per colour. Exact 1-D: globally optimal palette for grey images."
        )
        self.n_colors = QtWidgets.QSpinBox(objectName="nColorsSpin")
        self.n_colors.setRange(2, 256)
        self.n_colors.setToolTip("Number of colours K (the maximum when K is chosen automatically)")
        self.color_space = _combo(COLOR_SPACES.labels(), "colorSpaceCombo")
        self.color_space.setToolTip("Space in which distances are measured")
        self.covariance = _combo(COVARIANCE_TYPES.labels(), "covarianceCombo")
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
        self.tol.setToolTip("Convergence tolerance (e.g. 1e-3; smaller runs longer)")
        self.seed = QtWidgets.QSpinBox(objectName="seedSpin")
        self.seed.setRange(0, 2**31 - 1)
        self.dither = _combo(DITHERS.labels(), "ditherCombo")
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
        self.keep_small = QtWidgets.QCheckBox("Keep small distinct colours", objectName="keepSmall")
        self.keep_small.setToolTip(
            "Give a small colour group far from every palette colour (a logo, a sign) its own "
            f"entry: farther than {DEFAULTS['small_color_distance']:g} in OKLab and at least "
            f"{100 * DEFAULTS['small_color_share']:g} % of the pixels (K-means, Gaussian mixture)"
        )
        self.palette_fit = _combo(
            ERROR_POWERS.labels(),
            "paletteFitCombo",
            {c.name: c.description for c in ERROR_POWERS.values()},
        )
        self.palette_fit.setToolTip(
            "How the K-means palette is finished: each entry the mean of its colours (the best "
            "PSNR), or moved towards the many pixels it serves rather than a few far ones (the "
            "least sum of distances to a power below 2: fewer visible colour errors in small "
            "palettes).  Automatic: power 1.5 for K <= 32"
        )
        self._palette_order = "share"  # chosen in the palette editor, kept with the parameters
        self.max_size = QtWidgets.QDoubleSpinBox(objectName="maxSizeSpin")
        self.max_size.setRange(*MAX_SIZE_KB_RANGE)
        self.max_size.setDecimals(0)
        self.max_size.setSuffix(" kB")
        self.max_size.setToolTip("Size budget: the most colours whose indexed PNG fits")

        self.method_hint = QtWidgets.QLabel("", objectName="methodHint")
        self.method_hint.setWordWrap(True)
        self.method_hint.setStyleSheet("color: #555555; font-size: 11px;")

        model = QtWidgets.QGroupBox("Model")
        form = QtWidgets.QFormLayout(model)
        form.addRow("&Method", self.method)
        form.addRow(self.method_hint)
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
        form.addRow("Pa&lette fit", self.palette_fit)
        form.addRow(self.keep_small)

        output = QtWidgets.QGroupBox("Output")
        form2 = QtWidgets.QFormLayout(output)
        form2.addRow("&Dithering", self.dither)
        form2.addRow("Stren&gth", self.strength)

        auto = QtWidgets.QGroupBox("Automatic K")
        form3 = QtWidgets.QFormLayout(auto)
        form3.addRow("&Auto K", self.auto)
        form3.addRow("&PSNR target", self.target_psnr)
        form3.addRow("Si&ze budget", self.max_size)

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
            self.palette_fit,
        ):
            combo.currentIndexChanged.connect(self._on_edit)
        for spin in (self.n_colors, self.n_init, self.max_iter, self.seed):
            spin.valueChanged.connect(self._on_edit)
        self.strength.valueChanged.connect(self._on_edit)
        self.target_psnr.valueChanged.connect(self._on_edit)
        self.max_size.valueChanged.connect(self._on_edit)
        self.tol.editingFinished.connect(self._on_edit)
        self.keep_small.toggled.connect(self._on_edit)

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
            keep_small_colors=self.keep_small.isChecked(),
            palette_fit=self.palette_fit.currentData(),
            palette_order=self._palette_order,
            max_size_kb=self.max_size.value(),
        ).validated()

    def set_palette_order(self, key: str) -> None:
        """Set the order the palette is shown and exported in (emits ``changed``).

        Parameters
        ----------
        key : str
            One of :data:`quantize.edit.SORT_KEYS`.
        """
        if key != self._palette_order:
            self._palette_order = key
            self.changed.emit()

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
            self._shown_method = params.method
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
            self.keep_small.setChecked(params.keep_small_colors)
            _select(self.palette_fit, params.palette_fit)
            self._palette_order = params.palette_order
            self.max_size.setValue(params.max_size_kb)
        finally:
            self._updating = False
        self._update_enabled()

    def set_grey_available(self, available: bool) -> None:
        """Enable the grey-only methods (e.g. the exact 1-D one) only for grey images.

        Parameters
        ----------
        available : bool
            Whether the current image is grey.
        """
        model = _items(self.method)
        for row in range(self.method.count()):
            if self._spec(self.method.itemData(row)).grey_only:
                model.item(row).setEnabled(available)
        if not available and self._spec(self.method.currentData()).grey_only:
            _select(self.method, self._fallback_method())  # emits changed via _on_edit
        self._update_enabled()

    # ------------------------------------------------------------------ internals
    def _spec(self, method: str) -> MethodSpec:
        """Return the spec of a method in the combo (as registered when the panel was built)."""
        return self._specs.get(method) or METHODS[method]

    def _fallback_method(self) -> str:
        """Return the method chosen instead of a grey-only one for a colour image."""
        default = DEFAULTS["method"]
        if default in self._specs and not self._specs[default].grey_only:
            return default
        return next(name for name, spec in self._specs.items() if not spec.grey_only)

    def _fill_init(self, method: str, current: str) -> None:
        self.init.blockSignals(True)
        self.init.clear()
        for key, label in self._spec(method).inits.items():
            self.init.addItem(label, key)
        index = self.init.findData(current)
        self.init.setCurrentIndex(index if index >= 0 else 0)
        self.init.blockSignals(False)

    def _update_enabled(self) -> None:
        spec = self._spec(self.method.currentData())
        self.method_hint.setText(method_hint(spec))
        self.covariance.setEnabled(spec.uses_covariance)
        self.palette_fit.setEnabled(spec.polishable)
        for widget in (self.init, self.n_init, self.max_iter, self.tol, self.seed):
            widget.setEnabled(spec.iterative)
        self.strength.setEnabled(self.dither.currentData() != "none")
        if self.dither.currentData() == "fs" or spec.iterative:
            prepare_compiled_loops()  # Floyd-Steinberg and the K-means E step, meanwhile
        self.target_psnr.setEnabled(self.auto.currentData() == "quality")
        self.max_size.setEnabled(self.auto.currentData() == "size")
        auto_on = self.auto.currentData() != "off"
        self.n_colors_label.setText("Max &colours (K)" if auto_on else "&Colours (K)")
        bic_item = _items(self.auto).item(self.auto.findData("bic"))
        bic_item.setEnabled(spec.bic)
        if not spec.bic and self.auto.currentData() == "bic":
            self.auto.blockSignals(True)
            _select(self.auto, "off")
            self.auto.blockSignals(False)

    def _on_edit(self) -> None:
        if self._updating:
            return
        if self.sender() is self.method:  # a new method starts from its own default init
            method = self.method.currentData()
            self._fill_init(method, "")
            previous = self._spec(getattr(self, "_shown_method", method))
            try:
                untouched = float(self.tol.text()) == previous.tol_default()
            except ValueError:
                untouched = True
            if untouched:  # and its own default tolerance, unless the user typed one
                self.tol.setText(f"{self._spec(method).tol_default():g}")
            self._shown_method = method
        self._update_enabled()
        self.changed.emit()
