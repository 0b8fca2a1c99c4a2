"""transforms/formats is pure: it never imports apache_beam (house style, TFT rule)."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    return names


def test_formats_never_import_beam():
    files = sorted((ROOT / "transforms" / "formats").rglob("*.py"))
    assert files
    for path in files:
        assert not any(n.split(".")[0] == "apache_beam" for n in _imports(path)), path


def test_unit_tests_never_import_beam():
    for path in sorted((ROOT / "tests" / "unit").rglob("*.py")):
        assert not any(n.split(".")[0] == "apache_beam" for n in _imports(path)), path


def test_importing_every_format_module_does_not_load_beam():
    import subprocess
    import sys

    modules = sorted(p.stem for p in (ROOT / "transforms" / "formats").glob("*.py") if p.stem != "__init__")
    code = ("import sys\n" + "".join(f"import transforms.formats.{m}\n" for m in modules)
            + "sys.exit(1 if 'apache_beam' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
