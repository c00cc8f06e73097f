"""Offline HTML: one page per section with plotly's JS embedded once, and an index.html.

Every page opens from disk with no network (`include_plotlyjs=True` inlines plotly.js; no CDN,
no MathJax). A page per section rather than per figure keeps the report at ~3 copies of
plotly.js (about 4.7 MB each) instead of one per figure.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Iterable

from ffnet_nas.reports.model import ReportFigure
from ffnet_nas.space.io import atomic_write_text

SECTIONS = {
    "paper": ("paper.html", "The paper's figures, re-drawn from its tables"),
    "pareto": ("pareto.html", "Latency vs accuracy on your device"),
    "evidence": ("evidence.html", "Evidence: how far the predictions can be trusted"),
}
_PLOT_CONFIG = {"displaylogo": False, "responsive": False, "toImageButtonOptions": {"format": "png", "scale": 2}}
_CSS = """
body { font-family: Arial, Helvetica, sans-serif; margin: 24px; color: #222; max-width: 1500px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; }
table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ddd; padding: 4px 8px; vertical-align: top; text-align: left; }
.missing { color: #a00000; margin: 4px 0; } .summary { font-weight: bold; } .meta { color: #555; font-size: 13px; }
.headline { font-size: 16px; font-weight: bold; } table.verdict td { min-width: 320px; } pre { background: #f6f6f6; padding: 8px; font-size: 12px; white-space: pre-wrap; }
.holds { color: #0a6b2a; font-weight: bold; } .fails { color: #a00000; font-weight: bold; } .open { color: #6b5a00; font-weight: bold; }
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _meta(fig: ReportFigure) -> str:
    items = " · ".join(f"{html.escape(str(k))}: <b>{html.escape(str(v))}</b>" for k, v in fig.produced_by.items())
    missing = "".join(f"<p class=\"missing\">Missing: {html.escape(m.sentence())}</p>" for m in fig.missing)
    summary = f"<p class=\"summary\">{html.escape(fig.summary)}</p>" if fig.summary else ""
    return f"{summary}<p class=\"meta\">{items}</p>{missing}"


def section_page(section: str, figures: list[ReportFigure]) -> str:
    _, heading = SECTIONS[section]
    parts = [f"<h1>{html.escape(heading)}</h1><p><a href=\"index.html\">back to the index</a></p>"]
    js_done = False
    for fig in figures:
        parts.append(f"<h2 id=\"{fig.slug}\">{html.escape(fig.title)}</h2>{_meta(fig)}")
        if fig.figure is None:
            parts.append("<p class=\"missing\">Nothing to draw yet (see above).</p>")
            continue
        parts.append(
            fig.figure.to_html(
                full_html=False,
                include_plotlyjs=not js_done,  # inline plotly.js once per page
                include_mathjax=False,
                div_id=f"plot-{fig.slug}",
                config=_PLOT_CONFIG,
            )
        )
        js_done = True
    return _page(heading, "\n".join(parts))


_STATUS_CLASS = {"holds": "holds", "does not hold": "fails"}


def claims_html(results) -> str:
    """The paper's claims checked here (`claims.check_claims` results) as a table with their numbers."""
    if not results:
        return ""
    rows = []
    for r in results:
        numbers = [c.sentence(r.claim.sides) for c in (*r.paper, r.measured, r.predicted) if c is not None]
        detail = "".join(f"<li>{html.escape(n)}</li>" for n in numbers)
        css = _STATUS_CLASS.get(r.status, "open")
        rows.append(f"<tr><td><b>{html.escape(r.claim.title)}</b></td><td><span class=\"{css}\">{html.escape(r.status)}</span>"
                    f"<br>{html.escape(r.sentence)}" + (f"<ul class=\"meta\">{detail}</ul>" if detail else "") + "</td></tr>")
    return ("<section id=\"claims\"><h2>The paper's claims, checked on this device and data</h2>"
            "<p class=\"meta\">For each design choice: over the latencies both sides reach, which side's best mIoU within "
            "a latency is higher on most of the range, in the paper's tables (its device) and here. 'Measured' uses the "
            "points evaluated in full; 'predicted' the search's trials (LUT latency, predictor mIoU), used only where one "
            "side has no measured point.</p><table>" + "".join(rows) + "</table></section>")


def index_page(figures: list[ReportFigure], *, static: dict[str, list[Path]], out_dir: Path, title: str, notes: Iterable[str] = (),
               verdict: str = "", claims: str = "") -> str:
    """`verdict` and `claims`: HTML sections shown above the figures (verdict.verdict_html, claims_html)."""
    rows = []
    for fig in figures:
        page, _ = SECTIONS[fig.section]
        links = [f"<a href=\"{page}#{fig.slug}\">HTML</a>"] if fig.drawn and (out_dir / page).is_file() else []
        files = static.get(fig.slug, [])
        links += [f"<a href=\"{p.relative_to(out_dir).as_posix()}\">{p.suffix[1:].upper()}</a>" for p in files]
        thumb = next((f"<br><img src=\"{p.relative_to(out_dir).as_posix()}\" width=\"260\" alt=\"\">" for p in files if p.suffix == ".png"), "")
        rows.append(
            f"<tr><td>{html.escape(fig.title)}{thumb}</td><td>{' · '.join(links) or '—'}</td><td>{_meta(fig)}</td></tr>"
        )
    note_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    body = (
        f"<h1>{html.escape(title)}</h1>"
        + verdict
        + claims
        + "<h2>Figures</h2>"
        + (f"<ul>{note_html}</ul>" if note_html else "")
        + "<table><tr><th>figure</th><th>files</th><th>what produced it</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    return _page(title, body)


def write_html(figures: list[ReportFigure], out_dir: str | Path, *, static: dict[str, list[Path]] | None = None,
               title: str = "ffnet-nas report", notes: Iterable[str] = (), pages: bool = True, verdict: str = "",
               claims: str = "") -> list[Path]:
    """Write the section pages (when `pages`) and index.html under `out_dir`; returns the paths written."""
    out_dir = Path(out_dir)
    written = []
    for section, (filename, _) in SECTIONS.items():
        members = [f for f in figures if f.section == section]
        if members and pages:
            written.append(atomic_write_text(out_dir / filename, section_page(section, members)))
    written.append(atomic_write_text(out_dir / "index.html", index_page(figures, static=static or {}, out_dir=out_dir, title=title, notes=notes,
                                                                          verdict=verdict, claims=claims)))
    return written
