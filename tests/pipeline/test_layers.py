"""Imports go one way: the layers drawn in docs/architecture.md, checked on the source.

A module may import from its own package (group) and from any lower layer, never from a higher
layer or from another group of its own layer. Function-local (lazy) imports count the same: a lazy
import still ties the lower module to the higher one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import REPO

# source folder -> the package it installs as (pyproject.toml: package-dir)
SOURCE_ROOTS = {"ffnet_nas": "ffnet_nas", "space": "ffnet_nas.space", "distill": "ffnet_nas.distill",
                "predictors": "ffnet_nas.predictors", "reports": "ffnet_nas.reports"}

# group -> layer, lowest first; keep in step with docs/architecture.md
LAYERS = {
    "ffnet_nas.space": 0, "ffnet_nas.stats": 0,
    "ffnet_nas.settings": 1, "ffnet_nas.workspace": 1, "ffnet_nas.lock": 1, "ffnet_nas.metrics": 1, "ffnet_nas.data": 1,
    "ffnet_nas.claims": 1, "ffnet_nas.cluster": 1, "ffnet_nas.run_summary": 1,
    "ffnet_nas.timm_models": 1, "ffnet_nas.distributed": 1, "ffnet_nas.averaging": 1,
    "ffnet_nas.soft_targets": 1, "ffnet_nas.batches": 1,
    "ffnet_nas.distill": 2, "ffnet_nas.predictors": 2, "ffnet_nas.training": 2,
    "ffnet_nas.search": 3, "ffnet_nas.budgets": 3,
    "ffnet_nas.reports": 4, "ffnet_nas.run_config": 4, "ffnet_nas.teacher": 4, "ffnet_nas.evaluate": 4,
    "ffnet_nas.zero_shot": 4,
    "ffnet_nas.fit_predictor": 5, "ffnet_nas.found": 5, "ffnet_nas.predictor_check": 5,
    "ffnet_nas.win_check": 5, "ffnet_nas.rivals": 5,
    "ffnet_nas.steps": 6, "ffnet_nas.closing": 6,
    "ffnet_nas.refine": 7,
    "ffnet_nas.pipeline": 8,
    "ffnet_nas.commands": 9, "ffnet_nas.cli": 10, "ffnet_nas.__main__": 11,
}
PACKAGES = ("space", "distill", "predictors", "reports", "search", "steps", "commands", "data", "evaluate")


def _group(module: str) -> str:
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in PACKAGES:
        return ".".join(parts[:2])
    return ".".join(parts[:2]) if len(parts) >= 2 else module


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = [SOURCE_ROOTS[rel.parts[0]], *rel.parts[1:]]
    return ".".join(p for p in parts if p != "__init__")


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "ffnet_nas":  # `from ffnet_nas import steps` imports ffnet_nas.steps
                for alias in node.names:
                    yield node.lineno, f"ffnet_nas.{alias.name}"
            else:
                yield node.lineno, node.module


def _sources():
    for folder in SOURCE_ROOTS:
        yield from sorted((REPO / folder).rglob("*.py"))


def test_every_module_has_a_layer():
    groups = {_group(_module_name(p)) for p in _sources()} - {"ffnet_nas"}
    assert groups <= set(LAYERS), f"add to LAYERS (and docs/architecture.md): {sorted(groups - set(LAYERS))}"


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_point_down(path):
    source = _module_name(path)
    group = _group(source)
    if group == "ffnet_nas":  # the package's own __init__
        return
    wrong = []
    for line, target in _imports(ast.parse(path.read_text())):
        if not target.startswith("ffnet_nas."):
            continue
        to = _group(target)
        if to == group or to not in LAYERS:
            continue
        if LAYERS[to] > LAYERS[group] or (LAYERS[to] == LAYERS[group]):
            wrong.append(f"line {line}: {source} (layer {LAYERS[group]}) imports {target} (layer {LAYERS[to]})")
    assert not wrong, "\n".join(wrong)
