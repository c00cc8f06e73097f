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

SUBPACKAGES = ("ffnet_nas.space", "ffnet_nas.distill", "ffnet_nas.predictors", "ffnet_nas.predictors.latency",
               "ffnet_nas.reports", "ffnet_nas.search", "ffnet_nas.commands", "ffnet_nas.data")


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
    for package in SUBPACKAGES:
        assert package.replace(".", "/") + "/__init__.py" in names, package
    assert "ffnet_nas/space/data/ffnet_variants.json" in names  # package data travels with the subpackage


def test_the_installed_copy_imports_without_the_source_tree(installed, tmp_path):
    code = ("import ffnet_nas.space as s, ffnet_nas.reports, ffnet_nas.distill, ffnet_nas.predictors.latency; "
            "print(s.__file__); print(len(s.published_variants()))")
    # cwd is an empty folder and the target comes first on sys.path, so the repository is not what imports
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(installed), "PATH": ""},
                         capture_output=True, text=True, check=True).stdout.split()
    assert Path(out[0]).is_relative_to(installed), out[0]
    assert int(out[1]) > 0
