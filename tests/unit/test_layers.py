"""The house rules the code keeps: layers import one way, no import cycle inside a package, small modules."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {
    "features": set(),
    "models": {"features"},
    "training": {"features", "models"},
    "serving": {"features", "models"},
    "propensity": {"features", "models", "training", "serving"},
}
MAX_LINES = 250


def _imports(path: Path) -> set[str]:
    """Every module this file imports, at any depth (function-local imports count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


MODULES = {_module(p): p for package in ALLOWED for p in (ROOT / package).rglob("*.py")}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_one_way(package):
    wrong = {
        name: sorted({i.split(".")[0] for i in _imports(path)} & set(ALLOWED) - ALLOWED[package] - {package})
        for name, path in MODULES.items()
        if name.split(".")[0] == package
    }
    assert not {k: v for k, v in wrong.items() if v}


def test_no_import_cycle_inside_a_package():
    graph = {name: {i for i in _imports(path) if i in MODULES and i != name} for name, path in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, node])):
                return cycle
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name, [])
            assert cycle is None, " -> ".join(cycle)


def test_every_module_is_small_enough_to_read():
    big = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_the_cli_is_a_thin_face():
    """The command modules define commands only: no library helper (each command calls one library function)."""
    for path in [ROOT / "propensity" / "cli.py", *(ROOT / "propensity").glob("*_commands.py")]:
        tree = ast.parse(path.read_text())
        helpers = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and not n.decorator_list]
        assert set(helpers) <= {"main", "_source", "resolve_cutoffs"}, (path.name, helpers)


def test_the_cli_imports_no_heavy_library_until_a_command_runs():
    """`propensity --help` and argument parsing load Typer only; each command imports what it uses."""
    import subprocess
    import sys

    heavy = ("ibis", "pandas", "duckdb", "mlflow", "sklearn", "shap", "matplotlib", "pyspark", "fastapi", "numpy")
    heavy += ("rich", "markdown_it", "pydantic", "yaml")  # Rich loads when something is printed; help is plain
    code = f"import sys, propensity.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert loaded.stdout.strip() == "[]"
