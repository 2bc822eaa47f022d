"""The folder listing is the pipeline, and no stage imports one above it.

core < reading < deciding < composing < delivering < scheduled < interactions < the entry points
(chalicelib/notify.py, chalicelib/application.py). A module may import its own stage and
any stage below; an import upwards would tie a lower stage to a higher one's changes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parent.parent / "chalicelib"
STAGES = ("core", "reading", "deciding", "composing", "delivering", "scheduled", "interactions")
TOP = len(STAGES)  # the modules directly in chalicelib/


def stage_of(module: str) -> int:
    """The stage index of a dotted ``chalicelib...`` module name."""
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 and parts[1] in STAGES else TOP


def imported(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):  # function-level imports too
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] if node.module == "chalicelib" else []
            found.update(names or [node.module])
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "chalicelib" or name.startswith("chalicelib.")}


MODULES = sorted(LIB.rglob("*.py"))


def test_every_module_sits_in_a_stage_folder_or_is_an_entry_point():
    loose = {p.name for p in LIB.glob("*.py")} - {"__init__.py", "notify.py", "application.py"}
    assert loose == set(), f"put {sorted(loose)} in one of {STAGES}"
    assert {p.name for p in LIB.iterdir() if p.is_dir() and p.name != "__pycache__"} <= set(STAGES)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(LIB)))
def test_no_module_imports_a_stage_above_its_own(path):
    module = ".".join(("chalicelib", *path.relative_to(LIB).with_suffix("").parts))
    own = stage_of(module)
    upward = sorted(name for name in imported(path) if stage_of(name) > own)
    assert upward == [], f"{module} (stage {own}) imports from a stage above it: {upward}"
