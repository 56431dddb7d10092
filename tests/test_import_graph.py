"""The package's import graph: no cycles, the GUI on top of the library, dependencies as declared.

Every module of ``src/napari_emsr`` is parsed with :mod:`ast`. Imports at module level and inside
functions both count: a function-level import only hides a cycle from Python, not from the design.
Imports under ``if TYPE_CHECKING:`` never run, so they are left out of the cycle check (they still
count for the layering and dependency checks).
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "src" / "napari_emsr"
PACKAGE = "napari_emsr"
GUI = f"{PACKAGE}._napari"

# Import names that differ from the distribution that provides them (compared normalised).
IMPORT_TO_DISTRIBUTION = {
    "skimage": "scikit-image",
    "yaml": "pyyaml",
    "PIL": "pillow",
    "bioimageio": "bioimageio.spec",
}
# Top-level names whose import makes a module depend on napari or a Qt binding.
GUI_IMPORTS = {"napari", "qtpy", "superqt", "magicgui", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy", "app_model"}


@dataclass(frozen=True)
class Import:
    """One import statement's target, as seen in the importing module."""

    source: str  # the importing module
    target: str  # the imported module (absolute, dotted)
    line: int
    type_checking: bool  # under ``if TYPE_CHECKING:``, so never executed


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_of(name: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, guarded)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(name, alias.name, node.lineno, guarded))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # relative: the importing module's package, up ``level - 1`` more packages
                base_parts = name.split(".") if is_package else name.split(".")[:-1]
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                # ``from a import b`` with a module a.b imports that module; otherwise a name of a
                sub = f"{base}.{alias.name}"
                found.append(Import(name, sub if sub in MODULES else base, node.lineno, guarded))
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(tree, False)
    return found


IMPORTS = [imp for name, path in MODULES.items() for imp in _imports_of(name, path)]


def _internal_target(target: str) -> str | None:
    """The package module an import loads (the longest known prefix), or None if it is not ours."""
    parts = target.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for imp in IMPORTS:
        target = _internal_target(imp.target)
        if target is not None and target != imp.source and not imp.type_checking:
            graph[imp.source].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return components


def _is_gui(module: str) -> bool:
    return module == GUI or module.startswith(GUI + ".")


def _third_party(imp: Import) -> str | None:
    top = imp.target.split(".")[0]
    if not top or top == PACKAGE or top in sys.stdlib_module_names or top == "__future__":
        return None
    return top


def _normalise(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return _normalise(match.group(1))


def _distribution(import_name: str) -> str:
    return _normalise(IMPORT_TO_DISTRIBUTION.get(import_name, import_name))


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
DEPENDENCIES = {_requirement_name(r) for r in PROJECT["dependencies"]}
EXTRAS = {extra: {_requirement_name(r) for r in reqs} for extra, reqs in PROJECT["optional-dependencies"].items()}
# extras that add optional features to the library itself (imported where the feature is used)
LIBRARY_EXTRAS = {"distributed", "bioimageio", "plot", "n5"}


def test_every_module_is_found():
    assert PACKAGE in MODULES and GUI in MODULES and f"{PACKAGE}.model_io" in MODULES
    assert any(imp.source == f"{PACKAGE}.zoo" for imp in IMPORTS)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles between modules of the package:\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_library_never_imports_the_gui():
    wrong = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for imp in IMPORTS
        if not _is_gui(imp.source) and _is_gui(_internal_target(imp.target) or "")
    ]
    assert not wrong, "the library imports from _napari/ (it must be the other way round):\n" + "\n".join(wrong)


def test_the_library_never_imports_napari_or_qt():
    wrong = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for imp in IMPORTS
        if not _is_gui(imp.source) and imp.target.split(".")[0] in GUI_IMPORTS
    ]
    assert not wrong, "napari or Qt imported outside _napari/:\n" + "\n".join(wrong)


def test_library_imports_are_declared_dependencies():
    allowed = DEPENDENCIES.union(*(EXTRAS[e] for e in LIBRARY_EXTRAS))
    undeclared = sorted(
        {
            f"{top} ({imp.source})"
            for imp in IMPORTS
            if not _is_gui(imp.source) and (top := _third_party(imp)) and _distribution(top) not in allowed
        }
    )
    assert not undeclared, "imported by the library but not in [project] dependencies: " + ", ".join(undeclared)


def test_gui_imports_are_declared_in_the_napari_extra():
    allowed = DEPENDENCIES | EXTRAS["napari"]
    undeclared = sorted(
        {
            f"{top} ({imp.source})"
            for imp in IMPORTS
            if _is_gui(imp.source) and (top := _third_party(imp)) and _distribution(top) not in allowed
        }
    )
    assert not undeclared, "imported by _napari/ but not in the napari extra: " + ", ".join(undeclared)


@pytest.mark.parametrize("group", ["dependencies", "napari", *sorted(LIBRARY_EXTRAS)])
def test_every_declared_dependency_is_imported(group):
    declared = DEPENDENCIES if group == "dependencies" else EXTRAS[group]
    imported = {_distribution(top) for imp in IMPORTS if (top := _third_party(imp))}
    if group == "napari":
        imported = {_distribution(top) for imp in IMPORTS if _is_gui(imp.source) and (top := _third_party(imp))}
    unused = sorted(declared - imported)
    assert not unused, f"declared in {group} but imported nowhere: {', '.join(unused)}"
