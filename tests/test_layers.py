"""Layers import one way: features <- models <- training; serving uses features and models, never training."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "features": set(),
    "models": {"features"},
    "training": {"features", "models"},
    "serving": {"features", "models"},
}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_one_way(package):
    wrong = {
        str(p.relative_to(ROOT)): sorted(_imported_packages(p) - ALLOWED[package] - {package})
        for p in (ROOT / package).rglob("*.py")
    }
    assert not {k: v for k, v in wrong.items() if v}
