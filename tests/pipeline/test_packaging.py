"""The distribution installs one top-level name, `ffnet_nas`, and works without the source tree.

The source folders space/, distill/, predictors/ and reports/ sit beside ffnet_nas/ but are mapped
to ffnet_nas.space, ... by setuptools `package-dir` (pyproject.toml). PyPI has distributions named
`space`, `reports` and `predictors`, and pip does not notice two distributions writing the same
files, so a stray top-level package would silently clobber (or be clobbered by) someone else's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import Distribution
from pathlib import Path

import pytest

from tests.helpers import REPO

# source folder -> the package it installs as (pyproject.toml: package-dir)
FOLDERS = {"ffnet_nas": "ffnet_nas", "space": "ffnet_nas.space", "distill": "ffnet_nas.distill",
           "predictors": "ffnet_nas.predictors", "reports": "ffnet_nas.reports"}


def source_packages() -> set[str]:
    """Every package of the source tree, read from the folders (not from pyproject.toml, so a new
    folder that the packages list forgets fails here: ffnet_nas.steps once installed nowhere)."""
    found = set()
    for folder, package in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join((package, *rel.parts)))
    return found


def test_the_source_tree_has_the_packages_this_test_knows():
    assert {"ffnet_nas.steps", "ffnet_nas.commands", "ffnet_nas.predictors.latency"} <= source_packages()


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A normal (non-editable) install of a copy of the source tree into a fresh target folder."""
    root = tmp_path_factory.mktemp("packaging")
    src = root / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "build", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", "tests", "bench", "docs"))
    wheels, target = root / "wheels", root / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)], check=True,
                   capture_output=True)
    (wheel,) = wheels.glob("ffnet_nas-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True, capture_output=True)
    return target


def test_the_only_top_level_name_installed_is_ffnet_nas(installed):
    (info,) = installed.glob("ffnet_nas-*.dist-info")
    files = Distribution.at(info).files
    assert files, "the installed distribution lists no files"
    top = {f.parts[0] for f in files if not f.parts[0].endswith(".dist-info") and f.parts[0] not in ("bin", "..")}
    assert top == {"ffnet_nas"}, f"installed top-level names: {sorted(top)}"
    names = {"/".join(f.parts) for f in files}
    for package in sorted(source_packages()):
        assert package.replace(".", "/") + "/__init__.py" in names, f"{package} is not installed (pyproject.toml packages)"
    assert "ffnet_nas/space/data/ffnet_variants.json" in names  # package data travels with the subpackage


def test_the_installed_copy_imports_without_the_source_tree(installed, tmp_path):
    # every module of every package, and the command line's pipeline (it imports ffnet_nas.steps lazily)
    code = ("import importlib, pkgutil, ffnet_nas, ffnet_nas.space as s; "
            "[importlib.import_module(m.name) for m in pkgutil.walk_packages(ffnet_nas.__path__, 'ffnet_nas.') if not m.name.endswith('__main__')]; "
            "from ffnet_nas import steps, pipeline; print(s.__file__); print(len(s.published_variants()))")
    # cwd is an empty folder and the target comes first on sys.path, so the repository is not what imports
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(installed), "PATH": ""},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout.split()
    assert Path(out[0]).is_relative_to(installed), out[0]
    assert int(out[1]) > 0
