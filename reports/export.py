"""Static PNG/SVG of the report's figures.

kaleido (>=1) drives an installed Chrome/Chromium (it finds Debian's /usr/bin/chromium by
itself, or $BROWSER_PATH) and makes both PNG and SVG. Without kaleido, PNGs come from
screenshots of a one-figure offline HTML page in headless Chromium, and SVG is skipped with
a message saying what to install. Files are written to a temporary folder beside the output
and renamed into place, so an interrupted export never leaves half an image.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ffnet_nas.reports import browser
from ffnet_nas.reports.model import ReportFigure
from ffnet_nas.space.errors import InvalidInput

FORMATS = ("html", "png", "svg")
PNG_SCALE = 1  # 1 px per layout px: the PNG looks like the HTML (and stays small for docs/)


@dataclass(frozen=True)
class StaticResult:
    written: dict[str, list[Path]]  # slug -> files
    skipped: tuple[str, ...]  # one sentence per format that could not be made, and why


def kaleido_available() -> bool:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return True


def export_static(figures: list[ReportFigure], out_dir: str | Path, *, formats: tuple[str, ...]) -> StaticResult:
    out_dir = Path(out_dir)
    drawn = [f for f in figures if f.drawn]
    wanted = [fmt for fmt in ("png", "svg") if fmt in formats]
    written: dict[str, list[Path]] = {}
    skipped: list[str] = []
    if not drawn or not wanted:
        return StaticResult(written, ())
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp_dir = tempfile.TemporaryDirectory(prefix=".export-", dir=out_dir)
    except OSError as e:
        raise InvalidInput(f"cannot write the report to {str(out_dir)!r}: {e.strerror or e}; expected a writable folder (--out)") from None
    with tmp_dir as tmp:
        tmp = Path(tmp)
        kaleido_error = None
        if kaleido_available():
            try:
                _with_kaleido(drawn, wanted, tmp)
            except Exception as e:  # kaleido raises its own types when it finds no browser
                kaleido_error = f"{type(e).__name__}: {e}".splitlines()[0]
            else:
                # kaleido can return without writing every file (seen once with two test workers
                # starting Chromium at the same time): a missing image is a failure, not a silent gap
                missing = [f"{f.slug}.{fmt}" for f in drawn for fmt in wanted if not (tmp / f"{f.slug}.{fmt}").is_file()]
                if missing:
                    kaleido_error = f"it wrote no {missing[0]} ({len(missing)} file(s) missing)"
        if not kaleido_available() or kaleido_error:
            if kaleido_error:
                skipped.append(f"kaleido failed ({kaleido_error}); fell back to Chromium screenshots")
            if "png" in wanted:
                if browser.find_chromium() is None:
                    skipped.append("PNG skipped: needs kaleido (pip install 'kaleido>=1') or Chromium (apt-get install chromium)")
                else:
                    for f in drawn:
                        _png_by_screenshot(f, tmp)
            if "svg" in wanted:
                skipped.append("SVG skipped: needs kaleido (pip install 'kaleido>=1') and Chromium (apt-get install chromium)")
        for f in drawn:
            for fmt in wanted:
                src = tmp / f"{f.slug}.{fmt}"
                if src.is_file():
                    dst = out_dir / src.name
                    os.replace(src, dst)  # same folder tree: an atomic rename
                    written.setdefault(f.slug, []).append(dst)
    return StaticResult(written, tuple(skipped))


def _with_kaleido(drawn: list[ReportFigure], wanted: list[str], tmp: Path) -> None:
    import plotly.io as pio

    figs, paths, widths, heights = [], [], [], []
    for f in drawn:
        for fmt in wanted:
            figs.append(f.figure)
            paths.append(tmp / f"{f.slug}.{fmt}")
            widths.append(f.figure.layout.width)
            heights.append(f.figure.layout.height)
    # One browser session for all images: starting Chromium costs seconds per call.
    pio.write_images(figs, paths, width=widths, height=heights, scale=PNG_SCALE)


def _png_by_screenshot(f: ReportFigure, tmp: Path) -> None:
    page = tmp / f"{f.slug}.page.html"
    # No page margin: the screenshot's top-left corner is the figure's.
    body = f.figure.to_html(full_html=False, include_plotlyjs=True, include_mathjax=False, config={"displayModeBar": False, "staticPlot": True})
    page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>body{{margin:0}}</style></head><body>{body}</body></html>")
    browser.screenshot(page, tmp / f"{f.slug}.png", width=int(f.figure.layout.width), height=int(f.figure.layout.height))
    page.unlink()
