"""The verdict at the top of index.html: the point found vs the published variant it was compared
with, side by side, and the sentence `ffnet-nas run` printed (compute: `verdict`; render:
`verdict_html`).

The numbers come from the run's summary (`RunSummary`, handed over by `run` or read back from
run_summary.json): the same rows the CLI's closing lines were made from, so the page and the
terminal cannot disagree.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from ffnet_nas.reports.sketch import arch_caption, sketch, sketch_svg
from ffnet_nas.reports.style import fmt_count
from ffnet_nas.settings import ACCURACY_COLUMNS, accuracy_label
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.stats import finite_or_none

# The CLI's closing lines end with timings and file paths; the verdict is what comes before them.
_NOT_VERDICT = ("time per step", "wrote ")


@dataclass(frozen=True)
class Side:
    role: str  # "found" | "reference"
    code: str
    name: str
    measured_miou: float | None
    held_out_miou: float | None
    predicted_miou: float | None
    measured_latency_ms: float | None
    predicted_latency_ms: float | None
    params: float | None
    macs: float | None


@dataclass(frozen=True)
class Verdict:
    found: Side | None
    reference: Side | None
    beats: bool | None
    held_out_confirms: bool | None
    headline: str
    closing: tuple[str, ...]  # what the CLI printed (empty when the summary did not carry it)
    context: str  # space, budget, device, target
    unit: str = "mIoU"  # what the sides' accuracy is: "INT8 mIoU" in an INT8 run



def _side(role: str, row: dict | None, name: str | None = None, *, accuracy: str = ACCURACY_COLUMNS["fp32"]) -> Side | None:
    # `accuracy`: the column the run judged by (int8_miou in an INT8 run); shown as the measured mIoU
    if not row or not row.get("code"):
        return None
    return Side(role=role, code=str(row["code"]), name=str(name or row.get("name") or ""),
                measured_miou=finite_or_none(row.get(accuracy)),
                held_out_miou=finite_or_none(row.get("held_out_miou")),
                predicted_miou=finite_or_none(row.get("predicted_miou")),
                measured_latency_ms=finite_or_none(row.get("measured_latency_ms")),
                predicted_latency_ms=finite_or_none(row.get("predicted_latency_ms")),
                params=finite_or_none(row.get("params")), macs=finite_or_none(row.get("macs")))


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}%"


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} ms"


def verdict(summary: dict) -> Verdict:
    """The verdict of one run from its summary dict (RunSummary fields, optionally 'closing')."""
    accuracy = summary.get("accuracy") or ACCURACY_COLUMNS["fp32"]
    unit = accuracy_label(accuracy)
    found = _side("found", summary.get("best"), accuracy=accuracy)
    ref = _side("reference", summary.get("reference_row"), summary.get("reference"), accuracy=accuracy)
    beats, held = summary.get("beats_reference"), summary.get("held_out_confirms")
    context = ", ".join(f"{k} {summary[k]}" for k in ("space", "budget", "device", "target") if summary.get(k))
    if found is None:
        headline = "The run evaluated no search point in full: nothing to compare yet."
    elif ref is None:
        headline = (f"Found {found.code}: {_pct(found.measured_miou)} {unit} at {_ms(found.measured_latency_ms)} measured. "
                    "No published variant of this space was compared with it (the space holds none, or no latency target).")
    else:
        verb = "beats" if beats else "does not beat"
        headline = (f"The point found {verb} {ref.name or ref.code}: {_pct(found.measured_miou)} vs "
                    f"{_pct(ref.measured_miou)} {unit} at {_ms(found.measured_latency_ms)} vs {_ms(ref.measured_latency_ms)}, "
                    "both measured on this device and data.")
        if held is not None and found.held_out_miou is not None and ref.held_out_miou is not None:
            headline += (f" On the held-out validation images: {_pct(found.held_out_miou)} vs {_pct(ref.held_out_miou)}"
                         f" ({'confirmed' if held else 'NOT confirmed'}).")
    closing = []
    for line in summary.get("closing") or ():
        if str(line).startswith(_NOT_VERDICT):
            break
        closing.append(str(line))
    return Verdict(found, ref, beats, held, headline, tuple(closing), context, unit)


# ---- render ----------------------------------------------------------------------------------

def _drawing(code: str) -> str:
    try:
        arch = Arch.parse(code)
    except (InvalidInput, ValueError):
        return "—"
    return sketch_svg(sketch(arch), caption=arch_caption(arch))


def verdict_html(v: Verdict) -> str:
    sides = [s for s in (v.found, v.reference) if s is not None]
    rows = ""
    if sides:
        def cells(fn) -> str:
            return "".join(f"<td>{fn(s)}</td>" for s in sides)

        heads = "".join(f"<th>{'point found' if s.role == 'found' else 'reference: ' + html.escape(s.name or 'published')}</th>"
                        for s in sides)
        rows = (
            f"<table class=\"verdict\"><tr><th></th>{heads}</tr>"
            f"<tr><th>code</th>{cells(lambda s: '<code>' + html.escape(s.code) + '</code>')}</tr>"
            f"<tr><th>architecture</th>{cells(lambda s: _drawing(s.code))}</tr>"
            f"<tr><th>measured {v.unit}</th>{cells(lambda s: '<b>' + _pct(s.measured_miou) + '</b>')}</tr>"
            f"<tr><th>held-out {v.unit}</th>{cells(lambda s: _pct(s.held_out_miou))}</tr>"
            f"<tr><th>predicted {v.unit}</th>{cells(lambda s: _pct(s.predicted_miou))}</tr>"
            f"<tr><th>measured latency</th>{cells(lambda s: '<b>' + _ms(s.measured_latency_ms) + '</b>')}</tr>"
            f"<tr><th>predicted latency (LUT)</th>{cells(lambda s: _ms(s.predicted_latency_ms))}</tr>"
            f"<tr><th>params · MACs</th>{cells(lambda s: fmt_count(s.params) + ' · ' + fmt_count(s.macs))}</tr>"
            "</table>"
        )
    closing = ("<p class=\"meta\">What <code>ffnet-nas run</code> printed:</p><pre>"
               + html.escape("\n".join(v.closing)) + "</pre>") if v.closing else ""
    context = f"<p class=\"meta\">{html.escape(v.context)}</p>" if v.context else ""
    return (f"<section id=\"verdict\"><h2>Verdict</h2><p class=\"headline\">{html.escape(v.headline)}</p>"
            f"{context}{rows}{closing}</section>")
