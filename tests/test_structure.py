"""The architecture as the code has it: layers import only downward, each shared constant has one home,
and the training loop stays a story a reader can follow (length and branches counted)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("data", "models", "engine", "eval")
SOURCES = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py")) + [ROOT / "train.py"]
# Each layer may import the ones before it, never the ones after.
LAYERS = {"data": 0, "models": 1, "engine": 2, "eval": 3, "train": 4}
CONSTANTS = ("IGNORE_INDEX", "PEFT_MODES", "OPTIMIZERS", "SCHEDULERS", "QUANT_TYPES", "QUANT_SKIP", "COMPUTE_DTYPES",
             "BUNDLED_NAME", "DEFAULT_SEED", "CACHE_ENV")


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imported_modules(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def layer_of(module: str) -> int | None:
    return LAYERS.get(module.split(".")[0])


def test_layers_import_only_downward():
    upward = []
    for path in SOURCES:
        own = layer_of(path.relative_to(ROOT).parts[0].removesuffix(".py"))
        for module in imported_modules(parsed(path)):
            other = layer_of(module)
            if other is not None and other > own:
                upward.append(f"{path.relative_to(ROOT)} imports {module}")
    assert upward == []


def test_engine_core_imports_no_experiment_tool():
    """The training core and its features never reach into engine/tools (the bench, sweep, predictor, plots)."""
    offenders = [f"{p.relative_to(ROOT)} imports {m}" for p in SOURCES if "tools" not in p.parts
                 for m in imported_modules(parsed(p)) if m.startswith("engine.tools")]
    assert offenders == []


def test_each_shared_constant_has_one_home():
    homes: dict[str, list[str]] = {name: [] for name in CONSTANTS}
    for path in SOURCES:
        for node in parsed(path).body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            for target in targets:
                if isinstance(target, ast.Name) and target.id in homes:
                    homes[target.id].append(str(path.relative_to(ROOT)))
    assert {name: len(where) for name, where in homes.items()} == {name: 1 for name in CONSTANTS}, homes


def test_no_bare_ignore_index_in_code():
    """-100 is written once, as IGNORE_INDEX (data/tokenize.py); everything else names it."""
    bare = [str(p.relative_to(ROOT)) for p in SOURCES for node in ast.walk(parsed(p))
            if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant) and node.operand.value == 100]
    assert bare == ["data/tokenize.py"]


def function(path: Path, name: str) -> ast.FunctionDef:
    return next(n for n in ast.walk(parsed(path)) if isinstance(n, ast.FunctionDef) and n.name == name)


@pytest.mark.parametrize("path, name, max_lines, max_branches", [
    ("engine/loop.py", "train", 60, 4),
    ("train.py", "run", 60, 6),
])
def test_the_story_functions_stay_short(path, name, max_lines, max_branches):
    fn = function(ROOT / path, name)
    lines = fn.end_lineno - fn.body[0].lineno + 1
    branches = sum(isinstance(n, (ast.If, ast.IfExp)) for n in ast.walk(fn))
    assert (lines <= max_lines, branches <= max_branches) == (True, True), (lines, branches)


def test_nothing_but_tests_imports_train_py():
    assert [str(p.relative_to(ROOT)) for p in SOURCES if "train" in imported_modules(parsed(p))] == []


def defined_names(path: Path) -> set[str]:
    """Top-level functions, classes and assignments of a file, and `Class.member` for class bodies."""
    names = set()
    for node in parsed(path).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names |= {f"{node.name}.{m.name}" for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def test_every_function_the_trainer_chapter_names_exists():
    """docs/how-trainer-works.md writes our code as `path::name`: each must be defined where it says."""
    import re

    text = (ROOT / "docs" / "how-trainer-works.md").read_text()
    references = set(re.findall(r"`([\w/]+\.py)::([\w.]+)", text))
    assert len(references) >= 40  # the chapter names every step it maps
    missing = sorted(f"{path}::{name}" for path, name in references
                     if not (ROOT / path).is_file() or name not in defined_names(ROOT / path))
    assert missing == []
    assert "docs/how-trainer-works.md" in (ROOT / "README.md").read_text()
