"""The layers: pure packages never import Beam, and every import points down.

Pure packages, bottom up, with what each may import of the project (house style, TFT rule):
model <- storage, release, formats <- summary <- state. The Beam adapters
(`transforms/*.py`) may import any of them, `pipeline` anything; nothing imports
`pipeline` but `pipeline` itself, and no module imports one that imports it back.
"""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

# package -> the project packages its modules may import (besides itself)
ALLOWED = {
    "model": set(),
    "storage": {"model"},
    "release": {"model"},
    "formats": {"model"},
    "summary": {"model", "formats"},
    "state": {"model", "storage", "release", "formats", "summary"},
}
PURE = tuple(ALLOWED)


def _imports(path: pathlib.Path) -> set[str]:
    """Every module an import statement of `path` names (`from a import b` gives a and a.b)."""
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module:
            names.add(n.module)
            names |= {f"{n.module}.{a.name}" for a in n.names}
    return names


def _module(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _project_modules() -> dict[str, pathlib.Path]:
    files = sorted((ROOT / "transforms").rglob("*.py")) + sorted((ROOT / "pipeline").rglob("*.py"))
    return {_module(p): p for p in files}


def _pure_files(package: str) -> list[pathlib.Path]:
    files = sorted((ROOT / "transforms" / package).rglob("*.py"))
    assert files, package
    return files


def test_every_pure_package_is_listed():
    found = {p.name for p in (ROOT / "transforms").iterdir()
             if p.is_dir() and (p / "__init__.py").exists()}
    assert found == set(PURE)


def test_pure_packages_never_import_beam():
    for package in PURE:
        for path in _pure_files(package):
            assert not any(n.split(".")[0] == "apache_beam" for n in _imports(path)), path


def test_pure_packages_import_only_the_packages_below_them():
    for package, allowed in ALLOWED.items():
        for path in _pure_files(package):
            for name in _imports(path):
                parts = name.split(".")
                if parts[0] == "pipeline":
                    raise AssertionError(f"{path} imports {name}")
                if parts[0] != "transforms" or len(parts) < 2:
                    continue
                if name == "transforms":
                    continue
                target = parts[1]
                assert target in allowed | {package}, f"{path} imports {name}"


def test_adapters_never_import_pipeline():
    for path in sorted((ROOT / "transforms").glob("*.py")):
        assert not any(n.split(".")[0] == "pipeline" for n in _imports(path)), path


def test_no_import_cycles():
    modules = _project_modules()
    graph = {m: {n for n in _imports(p) if n in modules and n != m} for m, p in modules.items()}
    # A package's __init__ re-exporting its own modules is not a cycle through them.
    for m in graph:
        graph[m] = {n for n in graph[m] if not m.startswith(n + ".")}
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail + [m, n]))
            if n not in state:
                visit(n, trail + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_unit_tests_never_import_beam():
    for path in sorted((ROOT / "tests" / "unit").rglob("*.py")):
        assert not any(n.split(".")[0] == "apache_beam" for n in _imports(path)), path


def test_importing_every_pure_module_does_not_load_beam():
    modules = [_module(p) for package in PURE for p in _pure_files(package)]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "sys.exit(1 if 'apache_beam' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
