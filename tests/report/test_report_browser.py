"""The report as a user sees it: opened in a real headless Chromium with the network off.

Checks that every page draws its plots with no script error and no network fetch, and that the
PNGs (kaleido, and the screenshot fallback) have the figure's size and are not blank.
Skipped, with the reason, where Chromium is not installed (Debian: apt-get install chromium).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from ffnet_nas.reports import browser, export
from ffnet_nas.reports.build import build_report
from ffnet_nas.reports.inputs import ReportInputs

from tests.helpers.report import make_workdir

CHROMIUM = browser.find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (Debian: apt-get install chromium)")


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB"), dtype=float)


def _assert_not_blank(img: np.ndarray) -> None:
    # A plot has axes, text and coloured markers: many distinct colours and real variance.
    assert img.std() > 10
    assert len(np.unique(img.reshape(-1, 3)[::7], axis=0)) > 50


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = make_workdir(tmp_path_factory.mktemp("w"))
    inputs = ReportInputs(lut_dir=root / "lut", library_dir=root / "library", search_dir=root / "search",
                          evaluated_path=root / "evaluated.csv", predictor_dir=root / "predictor")
    return build_report(inputs=inputs, out_dir=root / "report", formats=("html",), progress=False)


def test_every_page_renders_offline_without_errors(report):
    out = report.index.parent
    expected = {"paper.html": 3, "pareto.html": 2, "evidence.html": 4}
    for page, n_plots in expected.items():
        check = browser.check_page(out / page)
        assert check.errors == () and check.fetches == (), (page, check.errors, check.fetches)
        assert check.plots == n_plots, (page, check.plots)
    index = (out / "index.html").read_text()
    assert 'href="paper.html#paper_mobile"' in index and 'href="evidence.html#lut_fidelity"' in index


def test_the_check_can_fail(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script src="https://cdn.plot.ly/plotly-2.35.2.min.js"></script>'
                   "<script>undefinedFunction();</script></body></html>")
    check = browser.check_page(bad)
    assert not check.ok and check.plots == 0
    assert any("undefinedFunction" in e for e in check.errors)
    assert check.fetches == ("https://cdn.plot.ly/plotly-2.35.2.min.js",)


def test_static_images_have_the_figure_size_and_are_not_blank(report, tmp_path):
    from ffnet_nas.reports.html import index_page

    manifest = json.loads((report.index.parent / "report.json").read_text())
    assert all(f["drawn"] for f in manifest["figures"])
    by_slug = {f.slug: f for f in report.figures}
    slugs = ("paper_mobile", "pareto", "lut_fidelity", "block_library")
    # SVG needs kaleido (pip install 'kaleido>=1'); without it the fallback test below covers PNG.
    formats = ("png", "svg") if export.kaleido_available() else ("png",)
    static = export.export_static([by_slug[s] for s in slugs], tmp_path, formats=formats)
    if "svg" in formats:
        svg = (tmp_path / "paper_mobile.svg").read_text()
        assert svg.startswith("<svg") and "Paper Fig. 6" in svg and 'width="1150"' in svg
    assert 'href="paper_mobile.png"' in index_page(report.figures, static=static.written, out_dir=tmp_path, title="t")
    for slug in slugs:
        png = tmp_path / f"{slug}.png"
        img = _png(png)
        layout = by_slug[slug].figure.layout
        assert img.shape[:2] == (layout.height, layout.width)
        _assert_not_blank(img)


def test_png_by_screenshot_when_kaleido_is_missing(tmp_path, monkeypatch):
    from ffnet_nas.reports.build import paper_report_figures

    monkeypatch.setattr(export, "kaleido_available", lambda: False)
    fig = [f for f in paper_report_figures() if f.slug == "paper_mobile"]
    result = export.export_static(fig, tmp_path, formats=("png", "svg"))
    png = result.written["paper_mobile"][0]
    img = _png(png)
    assert img.shape[:2] == (fig[0].figure.layout.height, fig[0].figure.layout.width)
    _assert_not_blank(img)
    assert any("SVG skipped" in s and "kaleido" in s for s in result.skipped)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paper_mobile.png"]


def test_an_image_kaleido_did_not_write_is_made_by_screenshot_and_said(tmp_path, monkeypatch):
    """kaleido returned once without writing one PNG (two test workers starting Chromium at once), and
    the report silently lacked it: now a missing image is a kaleido failure, with the fallback's PNG."""
    from ffnet_nas.reports.build import paper_report_figures

    monkeypatch.setattr(export, "kaleido_available", lambda: True)
    monkeypatch.setattr(export, "_with_kaleido", lambda drawn, wanted, tmp: None)  # returns, writes nothing
    fig = [f for f in paper_report_figures() if f.slug == "paper_mobile"]
    result = export.export_static(fig, tmp_path, formats=("png",))
    _assert_not_blank(_png(result.written["paper_mobile"][0]))
    assert any("kaleido failed (it wrote no paper_mobile.png (1 file(s) missing))" in s for s in result.skipped), result.skipped


def test_png_by_screenshot_with_an_unusable_tmpdir(tmp_path, monkeypatch):
    """Chromium died ("zygote ... Broken pipe") when TMPDIR pointed nowhere; Python's tempfile
    falls back to a usable folder, and Chromium is now given that one."""
    import tempfile

    from ffnet_nas.reports.build import paper_report_figures

    monkeypatch.setattr(export, "kaleido_available", lambda: False)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "nowhere"))
    monkeypatch.setattr(tempfile, "tempdir", None)  # recompute from the environment, as a fresh process would
    fig = [f for f in paper_report_figures() if f.slug == "paper_mobile"]
    result = export.export_static(fig, tmp_path / "out", formats=("png",))
    _assert_not_blank(_png(result.written["paper_mobile"][0]))
