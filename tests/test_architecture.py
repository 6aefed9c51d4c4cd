"""Layering rules of the code base, checked on the real modules."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import quantize

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("PySide6", "shiboken6", "pyqtgraph", "superqt", "qtpy", "app")


def _engine_modules() -> list[str]:
    names = (m.name for m in pkgutil.walk_packages(quantize.__path__, "quantize."))
    return sorted(name for name in names if not name.endswith("__main__"))


def test_engine_has_modules_to_check():
    # guards the test below against silently checking nothing
    mods = _engine_modules()
    assert "quantize.protocol" in mods
    assert "quantize.cluster.kmeans" in mods  # subpackages are walked too
    assert len(mods) >= 5


def test_engine_never_imports_qt_or_app():
    """Import every quantize module in a fresh interpreter; no Qt or app module may load."""
    mods = _engine_modules()
    code = (
        "import importlib, json, sys\n"
        f"for m in {mods!r}:\n"
        "    importlib.import_module(m)\n"
        "import quantize\n"
        "[getattr(quantize, n) for n in quantize.__all__ if n != '__version__']\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert bad == [], f"quantize pulled in GUI modules: {bad}"


def test_every_public_name_resolves():
    for name in quantize.__all__:
        assert getattr(quantize, name) is not None, name


def test_bundled_resources_present_and_licensed():
    from quantize.resources import icon_path, resources_dir, sample_image_path

    sample = sample_image_path()
    assert sample.is_file()
    assert sample.stat().st_size < 2 * 1024 * 1024
    assert icon_path().is_file()
    licences = (resources_dir() / "LICENSES.md").read_text(encoding="utf-8")
    assert sample.name in licences and "CC0" in licences
    desktop = (resources_dir() / "vq-studio.desktop").read_text(encoding="utf-8")
    assert "Exec=vq-studio" in desktop


def _children(graph, module):
    return iter(sorted(graph.find_modules_directly_imported_by(module)))


def _import_cycles(graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, _children(graph, root))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, _children(graph, child)))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_no_import_cycles_counting_imports_inside_functions():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("quantize", "app")  # sees imports inside functions too
    assert "quantize.cluster.kmeans" in graph.modules
    assert _import_cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    class Graph:  # a -> b -> c -> a, d -> a
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
        modules = set(edges)

        def find_modules_directly_imported_by(self, m):
            return self.edges[m]

    assert _import_cycles(Graph()) == [["a", "b", "c"]]


def test_layer_contracts_hold():
    """The import-linter contracts in pyproject.toml (layers; no Qt in the engine)."""
    pytest.importorskip("importlinter")
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout
