"""The house rules: one package per stage, imports that only point down, no import cycles, small modules.

The table below is the only statement of which package may import which; README's Layout section
describes it in words. Imports are read from the source (AST), lazy ones inside functions included:
an import inside a function is still a dependency.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import warnings
from pathlib import Path

import pytest

import disco_spec

PACKAGE_DIR = Path(disco_spec.__file__).parent

# Foundation modules every stage may use: the version, the error types, atomic file writes, the file hash.
FOUNDATION = {"_version", "errors", "atomic", "hashes"}

# package -> the packages it may import (besides itself and the foundation).
ALLOWED: dict[str, set[str]] = {
    "spec": set(),
    "plan": {"spec"},
    "models": {"spec"},
    "record": {"spec", "plan"},
    "engine": {"spec", "plan", "models"},
    "animation": {"spec", "plan", "models", "engine"},
    "run": {"spec", "plan", "models", "engine", "animation", "record"},
    "repro": {"spec", "plan", "models", "engine", "animation", "record", "run"},
    "tracking": {"spec", "plan", "models", "engine", "animation", "record", "run", "repro"},
    "scale": {"spec", "plan", "models", "engine", "animation", "record", "run", "repro", "tracking"},
    "cli": {"spec", "plan", "models", "engine", "animation", "record", "run", "repro", "tracking", "scale"},
    # The package root is the Python API (`disco_spec.render`): it may reach the run stage.
    "": {"run"},
}

# The engine is tensor work: it reads and writes no files (so no atomic writes, no file hashes), no mlflow.
FOUNDATION_EXCEPT = {"engine": {"atomic", "hashes"}}

# A module past LONG_LINES is named in a warning (it may be doing two jobs: split it by meaning, not to
# pass a count); past MAX_LINES it fails.
LONG_LINES = 400
MAX_LINES = 1000


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def from_import_target(node: ast.ImportFrom, here: list[str]) -> str | None:
    """The disco_spec module (relative to disco_spec, '' for the root) a `from X import ...` in package `here`
    reads from; None when X is not part of disco_spec."""
    if node.level:
        base = here[: len(here) - (node.level - 1)] if node.level > 1 else list(here)
        return ".".join(base + ([node.module] if node.module else []))
    if node.module and (node.module == "disco_spec" or node.module.startswith("disco_spec.")):
        return node.module[len("disco_spec."):] if "." in node.module else ""
    return None


def imported_modules(path: Path, name: str) -> set[str]:
    """disco_spec modules imported by the file at `path` (names relative to disco_spec, '' for the root)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    here = name.split(".") if name else []
    if not is_package:
        here = here[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "disco_spec" or alias.name.startswith("disco_spec."):
                    found.add(alias.name[len("disco_spec."):] if "." in alias.name else "")
        elif isinstance(node, ast.ImportFrom):
            target = from_import_target(node, here)
            if target is None:
                continue
            # `from pkg import mod` imports the module pkg.mod when one exists
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                found.add(sub if _exists(sub) else target)
    found.discard(name)
    return found


def _exists(module: str) -> bool:
    p = PACKAGE_DIR.joinpath(*module.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def package_of(module: str) -> str:
    """'spec.models' -> 'spec'; a foundation module is its own package; '' is the package root."""
    return module.split(".")[0]


def import_graph(root: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    return {module_name(p): imported_modules(p, module_name(p)) for p in sorted(root.rglob("*.py"))}


def rule_violations(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for mod, deps in sorted(graph.items()):
        pkg = package_of(mod)
        if pkg in FOUNDATION:
            allowed_pkgs, allowed_foundation = set(), FOUNDATION - {pkg}
        else:
            allowed_pkgs = ALLOWED.get(pkg)
            if allowed_pkgs is None:
                problems.append(f"{mod}: package {pkg!r} is not in the layout table")
                continue
            allowed_foundation = FOUNDATION - FOUNDATION_EXCEPT.get(pkg, set())
        for dep in sorted(deps):
            dep_pkg = package_of(dep)
            if dep_pkg == pkg and pkg not in FOUNDATION:
                continue
            if dep_pkg in FOUNDATION:
                if dep_pkg not in allowed_foundation:
                    problems.append(f"{mod} imports {dep}: {pkg} may not use {dep_pkg}")
            elif dep_pkg not in allowed_pkgs:
                problems.append(f"{mod} imports {dep}: {pkg or 'the package root'} may import only "
                                f"{sorted(allowed_pkgs) or 'nothing'} (and {sorted(allowed_foundation)})")
    return problems


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle between modules, as a path, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if d not in graph:
                continue
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_every_import_points_down_the_layout_table() -> None:
    assert rule_violations(import_graph()) == []


def test_no_import_cycle_between_modules() -> None:
    assert find_cycle(import_graph()) is None


@pytest.mark.slow
def test_a_planted_upward_import_is_caught(tmp_path: Path) -> None:
    graph = import_graph()
    planted = {**graph, "engine.sampler": graph["engine.sampler"] | {"run.records"}}
    problems = rule_violations(planted)
    assert any(p.startswith("engine.sampler imports run.records") for p in problems), problems
    # and read from real source: an engine module importing the run stage lazily, inside a function
    src = tmp_path / "planted.py"
    src.write_text("def f():\n    from ..run.records import OutputRecord\n    return OutputRecord\n")
    assert imported_modules(src, "engine.planted") == {"run.records"}


def test_a_planted_cycle_is_caught() -> None:
    graph = import_graph()
    planted = {**graph, "spec.schedules": graph["spec.schedules"] | {"spec.load"},
               "spec.load": graph["spec.load"] | {"spec.schedules"}}
    cycle = find_cycle(planted)
    assert cycle is not None and cycle[0] == cycle[-1]


def private_imports(path: Path, name: str) -> list[str]:
    """`_private` names the file at `path` takes from another disco_spec module: `from mod import _name`, or
    `mod._name` on a module it imported. A name used by a sibling is shared: make it public, or join the two."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = name.split(".") if name else []
    if path.name != "__init__.py":
        here = here[:-1]
    found: list[str] = []
    modules: dict[str, str] = {}  # local name -> the disco_spec module it is bound to
    for node in ast.walk(tree):
        target = from_import_target(node, here) if isinstance(node, ast.ImportFrom) else None
        if target is None:
            continue
        for alias in node.names:
            sub = f"{target}.{alias.name}" if target else alias.name
            if _exists(sub):
                modules[alias.asname or alias.name] = sub
            elif alias.name.startswith("_") and not alias.name.startswith("__") and target != name:
                found.append(f"{name}:{node.lineno} imports {alias.name} from {target}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and node.attr.startswith("_") and not node.attr.startswith("__") and modules[node.value.id] != name):
            found.append(f"{name}:{node.lineno} uses {modules[node.value.id]}.{node.attr}")
    return found


def test_no_private_name_crosses_modules() -> None:
    """Modules that need each other's internals are one module; a name siblings share is public."""
    found = [f for p in sorted(PACKAGE_DIR.rglob("*.py")) for f in private_imports(p, module_name(p))]
    assert found == []


def test_a_planted_private_import_is_caught(tmp_path: Path) -> None:
    src = tmp_path / "planted.py"
    src.write_text("from .schedule_error import _hidden\nfrom ..record import pngmeta\nfrom . import fields\n\n\n"
                   "def f():\n    from disco_spec.spec.explain import _short\n    return pngmeta._inner, fields.Section\n")
    assert private_imports(src, "spec.planted") == ["spec.planted:1 imports _hidden from spec.schedule_error",
                                                    "spec.planted:7 imports _short from spec.explain",
                                                    "spec.planted:8 uses record.pngmeta._inner"]
    # a module's own private names, and a private module (the foundation's _version), are not crossings
    own = tmp_path / "own.py"
    own.write_text("from .._version import __version__\nfrom disco_spec import _version\n\n\ndef _a():\n    return _version\n")
    assert private_imports(own, "spec.own") == []


def test_the_engine_writes_no_files() -> None:
    """engine/ takes tensors and yields step states: no open(), no atomic writes, no PNG saves."""
    offenders = []
    for p in sorted((PACKAGE_DIR / "engine").rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                if name in {"open", "write_text", "write_bytes", "save", "urlopen", "mkdir"}:
                    offenders.append(f"{p.name}:{node.lineno} {name}()")
    assert offenders == []


def test_each_package_says_its_job_and_what_it_may_import() -> None:
    for pkg in ALLOWED:
        if not pkg:
            continue
        doc = ast.get_docstring(ast.parse((PACKAGE_DIR / pkg / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "May import" in doc, pkg
        assert 2 <= len(doc.strip().splitlines()) <= 6, pkg


def test_long_modules_are_named_and_none_is_huge() -> None:
    lines = {module_name(p): len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE_DIR.rglob("*.py")}
    long = {name: n for name, n in lines.items() if n > LONG_LINES}
    if long:
        warnings.warn(f"modules over {LONG_LINES} lines (one job each?): "
                      + ", ".join(f"{name} {n}" for name, n in sorted(long.items())), stacklevel=1)
    assert {name: n for name, n in long.items() if n > MAX_LINES} == {}


def test_the_package_has_no_loose_modules_but_the_foundation() -> None:
    loose = {p.stem for p in PACKAGE_DIR.glob("*.py")} - {"__init__"}
    assert loose <= FOUNDATION


@pytest.mark.parametrize("name", sorted(m.name for m in pkgutil.walk_packages(disco_spec.__path__, "disco_spec.")
                                        if not m.name.endswith("__main__")))
def test_importing_any_module_leaves_the_render_function_in_place(name: str) -> None:
    """`disco_spec.render` is the API function; no submodule may shadow it, whatever was imported."""
    importlib.import_module(name)
    assert callable(disco_spec.render) and disco_spec.render.__module__ == "disco_spec"


@pytest.mark.render
@pytest.mark.slow
def test_the_python_api_renders_twice_in_one_process(tmp_path: Path, smoke_doc: dict) -> None:
    """A newcomer's notebook: `disco_spec.render(a); disco_spec.render(b)` (the module behind it cannot shadow it)."""
    from disco_spec.spec.load import validate_document

    smoke_doc["diffusion"]["steps"] = 4
    smoke_doc["init"]["skip_steps"] = 1
    spec = validate_document(smoke_doc)
    first = disco_spec.render(spec, tmp_path / "a", progress=False)
    second = disco_spec.render(spec, tmp_path / "b", progress=False)
    assert callable(disco_spec.render)
    assert [o.sha256 for o in first.outputs] == [o.sha256 for o in second.outputs] != []


@pytest.mark.render
def test_a_render_leaves_torchs_global_settings_as_it_found_them(tmp_path: Path, smoke_doc: dict) -> None:
    import torch

    from disco_spec.spec.load import validate_document

    smoke_doc["diffusion"]["steps"] = 3
    smoke_doc["init"]["skip_steps"] = 1
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic)
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False
    try:
        result = disco_spec.render(validate_document(smoke_doc), tmp_path, progress=False)
        assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic) == (False, False)
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.deterministic = saved[1]
    # while it ran, the deterministic settings were on (the manifest records them)
    assert result.manifest["hashed"]["environment"]["torch"]["deterministic_algorithms"] is True
