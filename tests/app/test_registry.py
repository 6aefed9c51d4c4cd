"""The GUI's choices come from the engine's tables; the app's run logic needs no Qt."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from apphelpers import FAST, RUN_TIMEOUT_MS, make_image
from PySide6 import QtCore

from app.controller import RunController
from app.model import AUTO_MODES, RunParameters
from app.panels import ParameterPanel
from app.tasks import prepare
from quantize.cluster.registry import METHODS, MethodSpec, register_method, unregister_method
from quantize.options import COLOR_SPACES, COVARIANCE_TYPES, DEFAULTS, DITHERS, ERROR_POWERS

ROOT = Path(__file__).resolve().parents[2]
TOY_DESCRIPTION = "K-means under another name, registered by a test"


@pytest.fixture
def toy_method():
    from quantize.cluster.kmeans import KMeans

    register_method(
        MethodSpec(
            name="toy",
            label="Toy K-means",
            short_label="toy",
            description=TOY_DESCRIPTION,
            factory=lambda k, seed, o: KMeans(k, seed=seed, **o),
            options=frozenset({"init", "n_init", "max_iter", "tol"}),
            inits={"k-means++": "k-means++"},
        )
    )
    try:
        yield "toy"
    finally:
        unregister_method("toy")
    assert "toy" not in METHODS


def _items(combo) -> dict:
    return {combo.itemData(i): combo.itemText(i) for i in range(combo.count())}


def test_panel_choices_are_the_registries(qtbot):
    panel = ParameterPanel()
    qtbot.addWidget(panel)
    assert _items(panel.method) == {name: spec.label for name, spec in METHODS.items()}
    assert _items(panel.color_space) == COLOR_SPACES.labels()
    assert _items(panel.covariance) == COVARIANCE_TYPES.labels()
    assert _items(panel.dither) == DITHERS.labels()
    assert _items(panel.auto) == AUTO_MODES
    assert _items(panel.palette_fit) == ERROR_POWERS.labels()
    for row, spec in enumerate(METHODS.values()):
        tip = panel.method.itemData(row, QtCore.Qt.ItemDataRole.ToolTipRole)
        assert tip == spec.description
    defaults = panel.parameters()
    assert defaults == RunParameters()
    for key in ("method", "n_colors", "color_space", "init", "n_init", "max_iter", "tol"):
        assert getattr(defaults, key) == DEFAULTS[key], key


@pytest.mark.parametrize("name", list(METHODS))
def test_enabled_fields_follow_the_method_spec(qtbot, name):
    spec = METHODS[name]
    panel = ParameterPanel()
    qtbot.addWidget(panel)
    with_bic = next(n for n, s in METHODS.items() if s.bic)
    panel.set_parameters(RunParameters(method=with_bic, auto="bic"))
    assert panel.parameters().auto == "bic"
    panel.method.setCurrentIndex(panel.method.findData(name))  # as a person would
    assert panel.covariance.isEnabled() == spec.uses_covariance
    assert panel.palette_fit.isEnabled() == spec.polishable
    for widget in (panel.init, panel.n_init, panel.max_iter, panel.tol, panel.seed):
        assert widget.isEnabled() == spec.iterative
    assert _items(panel.init) == dict(spec.inits)
    bic = panel.auto.model().item(panel.auto.findData("bic"))
    assert bic.isEnabled() == spec.bic
    assert (panel.parameters().auto == "bic") == spec.bic
    # grey-only methods are offered for grey images only; a colour image moves off them
    panel.set_grey_available(False)
    item = panel.method.model().item(panel.method.findData(name))
    assert item.isEnabled() == (not spec.grey_only)
    assert not METHODS[panel.parameters().method].grey_only
    panel.set_grey_available(True)
    assert item.isEnabled()


def test_a_registered_method_is_offered_and_runs(qtbot, toy_method):
    panel = ParameterPanel()  # built after the registration: reads the registry now
    qtbot.addWidget(panel)
    index = panel.method.findData("toy")
    assert index >= 0 and panel.method.itemText(index) == "Toy K-means"
    assert panel.method.itemData(index, QtCore.Qt.ItemDataRole.ToolTipRole) == TOY_DESCRIPTION
    with qtbot.waitSignal(panel.changed):
        panel.method.setCurrentIndex(index)
    assert _items(panel.init) == {"k-means++": "k-means++"}
    assert not panel.covariance.isEnabled()  # no covariance_type among its options
    assert panel.max_iter.isEnabled() and panel.n_init.isEnabled()  # it iterates
    params = panel.parameters()
    assert params.method == "toy" and params.init == "k-means++"
    assert params.fit_options() == {
        "init": "k-means++",
        "n_init": DEFAULTS["n_init"],
        "max_iter": 100,
        "tol": DEFAULTS["tol"],
    }
    panel.set_parameters(replace(params, n_colors=5, n_init=2, color_space="rgb", max_iter=50))

    from quantize.io.load import from_array

    controller = RunController(panel.parameters)
    try:
        controller.set_image(prepare(from_array(make_image(), name="toy.png"), "toy.png"))
        with qtbot.waitSignal(controller.finished, timeout=RUN_TIMEOUT_MS) as blocker:
            assert controller.start()
        output = blocker.args[0]
        assert output.params.method == "toy"
        assert output.result.method == "toy"
        assert len(output.result.palette) == 5
        assert controller.record_count > 0
        assert {r.kind for r in output.result.records} == {"inertia"}
        assert not output.soft_maps.soft
        assert output.sample.points.shape[1] == 3
    finally:
        assert controller.shutdown(5000)
        controller.deleteLater()


@pytest.mark.parametrize(
    ("fit", "k", "power"), [("auto", 6, 1.5), ("auto", 40, 2.0), ("1", 6, 1.0)]
)
def test_the_palette_fit_chosen_in_the_panel_is_the_runs(qtbot, fit, k, power):
    panel = ParameterPanel()
    qtbot.addWidget(panel)
    panel.set_parameters(replace(FAST, n_colors=k))
    other = "2" if fit != "2" else "auto"
    panel.palette_fit.setCurrentIndex(panel.palette_fit.findData(other))
    with qtbot.waitSignal(panel.changed):
        panel.palette_fit.setCurrentIndex(panel.palette_fit.findData(fit))  # as a person would
    params = panel.parameters()
    assert params.palette_fit == fit
    assert RunParameters.from_json(params.to_json()).palette_fit == fit  # kept in the settings
    assert RunParameters(palette_fit="3").validated().palette_fit == "auto"
    from quantize.io.load import from_array

    controller = RunController(panel.parameters)
    try:
        image = np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)
        controller.set_image(prepare(from_array(image, name="noise.png"), "noise.png"))
        with qtbot.waitSignal(controller.finished, timeout=RUN_TIMEOUT_MS) as blocker:
            assert controller.start()
        result = blocker.args[0].result
        assert result.error_power == power
        assert result.parameters()["error_power"] == power
    finally:
        assert controller.shutdown(5000)
        controller.deleteLater()


def test_unregistered_method_in_the_settings_falls_back_to_the_default(toy_method):
    text = replace(FAST, method="toy", init="k-means++").to_json()
    assert RunParameters.from_json(text).method == "toy"
    unregister_method("toy")
    params = RunParameters.from_json(text)
    assert params.method == DEFAULTS["method"]


def _string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


def test_the_app_names_no_method():
    """Rules that depend on the method read its MethodSpec; no method name is spelled out."""
    names = set(METHODS)
    offenders = {}
    for path in sorted((ROOT / "app").rglob("*.py")):
        if path.name == "export_dialog.py":  # not about methods (and owned elsewhere)
            continue
        found = _string_constants(path) & names
        if found:
            offenders[str(path.relative_to(ROOT))] = sorted(found)
    assert offenders == {}


def test_model_and_tasks_run_without_qt():
    code = (
        "import json, sys\n"
        "import numpy as np\n"
        "from app.model import RunJob, RunParameters\n"
        "from app.tasks import run_pipeline\n"
        "from quantize.protocol import drain\n"
        "img = (np.arange(12 * 16 * 3).reshape(12, 16, 3) * 7 % 256).astype(np.uint8)\n"
        "job = RunJob(img, RunParameters(n_colors=3, n_init=1))\n"
        "out = drain(run_pipeline(job, lambda: False))\n"
        "gui = ('PySide6', 'shiboken6', 'pyqtgraph')\n"
        "qt = [m for m in sys.modules if m.split('.')[0] in gui]\n"
        "print(json.dumps([len(out.result.palette), qt]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    k, qt = json.loads(proc.stdout.strip().splitlines()[-1])
    assert k == 3 and qt == []


#: Settings written by VQ Studio before the restructuring (custom GMM parameters, auto-run
#: off, split compare mode, the palette dock closed).
OLD_INI = (
    "[General]\n"
    "autoRun=false\n"
    'parameters="{\\"auto\\": \\"off\\", \\"color_space\\": \\"lab\\", \\"covariance_type\\":'
    ' \\"diag\\", \\"dither\\": \\"ordered\\", \\"dither_strength\\": 0.5, \\"init\\": \\"kme'
    'ans\\", \\"max_iter\\": 100, \\"method\\": \\"gmm\\", \\"n_colors\\": 12, \\"n_init\\": '
    '3, \\"seed\\": 7, \\"target_psnr\\": 35.0, \\"tol\\": 0.0001}"\n'
    "\n"
    "[compare]\n"
    "mode=split\n"
    "\n"
    "[window]\n"
    "geometry=@ByteArray(\\x1\\xd9\\xd0\\xcb\\0\\x3\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\x5{"
    "\\0\\0\\x3\\x87\\0\\0\\0\\x2\\0\\0\\0\\x2\\0\\0\\x5y\\0\\0\\x3\\x85\\0\\0\\0\\0\\0\\0\\0"
    "\\0\\x3 \\0\\0\\0\\x2\\0\\0\\0\\x2\\0\\0\\x5y\\0\\0\\x3\\x85)\n"
    'state="@ByteArray(\\0\\0\\0\\xff\\0\\0\\0\\0\\xfd\\0\\0\\0\\x3\\0\\0\\0\\0\\0\\0\\x1,\\0'
    "\\0\\x3V\\xfc\\x2\\0\\0\\0\\x1\\xfb\\0\\0\\0\\x1c\\0p\\0\\x61\\0r\\0\\x61\\0m\\0\\x65\\0"
    "t\\0\\x65\\0r\\0s\\0\\x44\\0o\\0\\x63\\0k\\x1\\0\\0\\0\\x13\\0\\0\\x3V\\0\\0\\0\\x8d\\0"
    "\\xff\\xff\\xff\\0\\0\\0\\x1\\0\\0\\x1^\\0\\0\\x3V\\xfc\\x2\\0\\0\\0\\x2\\xfb\\0\\0\\0\\"
    "x16\\0p\\0\\x61\\0l\\0\\x65\\0t\\0t\\0\\x65\\0\\x44\\0o\\0\\x63\\0k\\0\\0\\0\\0\\x13\\0"
    "\\0\\x1\\xa8\\0\\0\\0n\\0\\xff\\xff\\xff\\xfb\\0\\0\\0\\x16\\0m\\0\\x65\\0t\\0r\\0i\\0\\"
    "x63\\0s\\0\\x44\\0o\\0\\x63\\0k\\x1\\0\\0\\x1\\xc1\\0\\0\\x1\\xa8\\0\\0\\0n\\0\\xff\\xff"
    "\\xff\\0\\0\\0\\x3\\0\\0\\x2\\xec\\0\\0\\x1,\\xfc\\x1\\0\\0\\0\\x1\\xfc\\0\\0\\x1\\x32\\"
    "0\\0\\x2\\xec\\0\\0\\x1\\x84\\0\\xff\\xff\\xff\\xfa\\0\\0\\0\\0\\x1\\0\\0\\0\\x3\\xfb\\0"
    "\\0\\0\\x1e\\0\\x63\\0o\\0n\\0v\\0\\x65\\0r\\0g\\0\\x65\\0n\\0\\x63\\0\\x65\\0\\x44\\0o"
    "\\0\\x63\\0k\\x1\\0\\0\\0\\0\\xff\\xff\\xff\\xff\\0\\0\\0H\\0\\xff\\xff\\xff\\xfb\\0\\0"
    "\\0\\x18\\0s\\0o\\0\\x66\\0t\\0M\\0\\x61\\0p\\0s\\0\\x44\\0o\\0\\x63\\0k\\x1\\0\\0\\0\\0"
    "\\xff\\xff\\xff\\xff\\0\\0\\x1\\x84\\0\\xff\\xff\\xff\\xfb\\0\\0\\0\\x1c\\0\\x63\\0o\\0l"
    "\\0o\\0r\\0S\\0p\\0\\x61\\0\\x63\\0\\x65\\0\\x44\\0o\\0\\x63\\0k\\x1\\0\\0\\0\\0\\xff\\x"
    "ff\\xff\\xff\\0\\0\\x1.\\0\\xff\\xff\\xff\\0\\0\\x2\\xec\\0\\0\\x2$\\0\\0\\0\\x4\\0\\0\\"
    '0\\x4\\0\\0\\0\\x1\\0\\0\\0\\x2\\xfc\\0\\0\\0\\0)"\n'
)


def test_settings_of_the_previous_version_still_load(qtbot, tmp_path):
    from app.main_window import MainWindow

    path = tmp_path / "old.ini"
    path.write_text(OLD_INI, encoding="utf-8")
    window = MainWindow(QtCore.QSettings(str(path), QtCore.QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    expected = RunParameters(
        method="gmm",
        n_colors=12,
        color_space="lab",
        covariance_type="diag",
        init="kmeans",
        n_init=3,  # as saved (the default was 3 then)
        tol=1e-4,  # as saved (the default was 1e-4 then)
        seed=7,
        dither="ordered",
        dither_strength=0.5,
    )
    assert window.params.parameters() == expected
    assert not window.auto_run_check.isChecked() and not window.controller.auto_run
    assert window.compare.mode() == "split"
    assert window._layout_restored  # the dock layout (same object names) was restored
    assert window.palette_dock.isHidden() and not window.params_dock.isHidden()
    window.close()
    keys = set(QtCore.QSettings(str(path), QtCore.QSettings.Format.IniFormat).allKeys())
    assert keys == {"autoRun", "parameters", "compare/mode", "window/geometry", "window/state"}
