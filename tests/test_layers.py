"""Imports flow one way: registry is the ground floor (STYLE.md)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ABOVE_REGISTRY = {"routing", "analytics", "dashboard", "audit"}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):  # imports inside functions count too
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_registry_imports_nothing_from_the_apps_above_it():
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & ABOVE_REGISTRY)
        for path in sorted((ROOT / "registry").rglob("*.py"))
        if imported_packages(path) & ABOVE_REGISTRY
    }
    assert offenders == {}


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from routing.live import LiveState\n    import analytics.budgets\n")
    assert imported_packages(module) == {"routing", "analytics"}
