"""The report a user opens after `ffnet-nas run --budget micro`: complete, and drawn in a real browser.

One real micro run (on a small space that holds four published variants, so the run has a
reference to beat and the device-vs-paper figure has points), then: no "Missing" anywhere,
every figure drawn, every page renders in headless Chromium with the network off and no console
error, and every figure's PNG is not blank. Skipped where Chromium is not installed.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ffnet_nas.budgets import BUDGETS
from ffnet_nas.reports import browser

CHROMIUM = browser.find_chromium()

# The mobile space cut down to FFNet-46NS/74NS CCC (with and without pre_down): 16 points, 4 published.
SMALL = {"base": "mobile", "name": "small", "stems": ["C"], "up_heads": ["C"], "seg_heads": ["C"],
         "stages": {3: {"depths": [[6, 8], [8, 12], [8, 16]], "widths": [[64], [128], [256]]}},
         "first_strides": [2], "pre_downs": [False, True], "input_size": "32x64"}


def test_every_budget_validates_its_latency_table():
    # the report's LUT-fidelity and device-vs-paper figures need it after every run
    for name, budget in BUDGETS.items():
        assert budget.latency.validate >= 1, name
        assert budget.latency.validate_published is None or budget.latency.validate_published >= 2, name


def test_validation_takes_an_even_spread_of_published_variants():
    from ffnet_nas.predictors.latency.validate import validation_points
    from ffnet_nas.space.searchspace import get_space

    space = get_space("mobile")
    every = [a for a, source, _ in validation_points(space, 2, seed=0) if source == "published"]
    depth = lambda a: a.nominal_depth  # noqa: E731
    five = [a for a, source, _ in validation_points(space, 2, seed=0, published=5, spread_key=depth) if source == "published"]
    assert len(every) == 36 and len(five) == 5 and len({a.code for a in five}) == 5
    ranked = sorted(depth(a) for a in every)
    assert depth(five[0]) == ranked[0] and depth(five[-1]) == ranked[-1]  # both ends of the range


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("micro")
    space = tmp / "small.yaml"
    space.write_text(yaml.safe_dump(SMALL))
    work = tmp / "run"
    cmd = [sys.executable, "-m", "ffnet_nas", "run", "--budget", "micro", "--space", str(space), "--workdir", str(work),
           "--no-progress", "--threads", "1", "--format", "html,png"]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return work


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (Debian: apt-get install chromium)")
def test_the_report_after_a_micro_run_is_complete_and_renders(micro_run):
    from PIL import Image

    out = micro_run / "report"
    manifest = json.loads((out / "report.json").read_text())
    not_drawn = [f["slug"] for f in manifest["figures"] if not f["drawn"]]
    assert not_drawn == [], not_drawn
    assert all(f["missing"] == [] for f in manifest["figures"])
    pages = sorted(out.glob("*.html"))
    assert {p.name for p in pages} == {"index.html", "paper.html", "pareto.html", "evidence.html"}
    for page in pages:
        # what the page shows, not the inlined plotly.js (whose source has its own "Missing ..." messages)
        shown = re.sub(r"<script\b.*?</script>", "", page.read_text(), flags=re.S)
        assert "Missing" not in shown and 'class="missing"' not in shown, page.name
        check = browser.check_page(page)
        assert check.errors == () and check.fetches == (), (page.name, check.errors, check.fetches)
    # the verdict at the top: the found point and the reference, with the lines the CLI printed
    summary = json.loads((micro_run / "run_summary.json").read_text())
    index = (out / "index.html").read_text()
    assert summary["reference"] and summary["best"]["code"] in index and summary["reference"] in index
    assert index.count("<svg") == 2 and "best found:" in index and 'id="claims"' in index
    assert manifest["verdict"]["closing"][0].startswith("space small")
    for fig in manifest["figures"]:
        png = out / f"{fig['slug']}.png"
        img = np.asarray(Image.open(io.BytesIO(png.read_bytes())).convert("RGB"), dtype=float)
        assert img.std() > 10 and len(np.unique(img.reshape(-1, 3)[::7], axis=0)) > 50, fig["slug"]
