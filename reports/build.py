"""Assemble the report: compute each figure from the tables, render it, write HTML + images.

`build_report` is what `ffnet-nas report` calls; it takes explicit paths (`ReportInputs`), so a
notebook can point it anywhere. Nothing here measures or trains: it only reads tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ffnet_nas.reports import claims, compare, evidence, inputs as inp, verdict
from ffnet_nas.reports.export import FORMATS, export_static
from ffnet_nas.reports.html import claims_html, write_html
from ffnet_nas.reports.model import Missing, ReportFigure
from ffnet_nas.reports.paper import render_paper_figure
from ffnet_nas.reports.pareto import render_pareto
from ffnet_nas.reports.pareto_data import pareto_data
from ffnet_nas.reports.published import PAPER_FIGURES, paper_points
from ffnet_nas.settings import accuracy_label
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import atomic_write_json, provenance
from ffnet_nas.space.searchspace import WITH_PEERS


@dataclass(frozen=True)
class ReportResult:
    figures: tuple[ReportFigure, ...]
    written: tuple[Path, ...]
    index: Path
    notes: tuple[str, ...]  # formats skipped and why
    verdict: "verdict.Verdict | None" = None  # the run's, when the workdir has one
    claims: tuple = ()  # claims.ClaimResult, one per claim


def parse_formats(text: str) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in wanted if f not in FORMATS]
    if bad or not wanted:
        raise InvalidInput(f"--format {text!r}: expected a comma-separated list of {', '.join(FORMATS)} (e.g. html,png)")
    return wanted


# ---- figures -------------------------------------------------------------------------------------

def paper_report_figures() -> list[ReportFigure]:
    out = []
    for key, spec in PAPER_FIGURES.items():
        points = paper_points(key)
        hw = points["input_hw"].unique()
        out.append(ReportFigure(
            slug=f"paper_{key}",
            section="paper",
            title=f"Paper Fig. {spec.number}: {spec.title}",
            figure=render_paper_figure(points, spec),
            produced_by={"source": f"paper {spec.table} (Mehta et al. 2022, arXiv 2206.08236)",
                         "latency": " and ".join(label.removeprefix("latency on ").removesuffix(" (ms)") for _, label in spec.latency_columns) + ", as published",
                         "input size": ", ".join(hw), "points": f"{(points['kind'] == 'ffnet').sum()} FFNet + {(points['kind'] == 'baseline').sum()} baselines"},
        ))
    return out


def pareto_report_figure(inputs: inp.ReportInputs, *, verdict: dict | None = None) -> ReportFigure:
    data = pareto_data(inputs, verdict=verdict)
    fig = render_pareto(data)
    n_front = int((data.points["role"] == "front").sum()) if not data.points.empty else 0
    n_measured = int((data.points["role"] == "evaluated").sum()) if not data.points.empty else 0
    bias = (f"; the predictor {'overrates' if data.miou_bias > 0 else 'underrates'} the measured mIoU by "
            f"{abs(data.miou_bias):.1f} points on average (n={data.n_bias})" if data.miou_bias is not None else "")
    summary = {"search": f"{n_front} Pareto points (predicted), {n_measured} points measured in full{bias}",
               "published": f"{data.points.loc[~data.points['peer'].fillna(False).astype(bool), 'code'].nunique()} published "
                            f"variants with latency measured on {data.device}"}.get(data.mode, "")
    return ReportFigure(slug="pareto", section="pareto", title=f"Latency on {data.device} vs mIoU", figure=fig,
                        produced_by=data.produced_by, missing=data.missing, summary=summary)


def device_vs_paper_report_figure(inputs: inp.ReportInputs) -> ReportFigure:
    title = "Latency on this device vs as published in the paper"
    slug, missing = inp.pick_lut(inputs)
    if slug is None:
        return ReportFigure("device_vs_paper", "pareto", title, None, missing=(missing,))
    loaded, missing = inp.lut_validation(inputs, slug)
    meta = inp.lut_meta(inputs, slug)
    if loaded is None:
        return ReportFigure("device_vs_paper", "pareto", title, None, produced_by=inp.describe_lut(meta), missing=(missing,))
    frame = compare.device_vs_paper(loaded.frame)
    if len(frame) < 2:
        if not (loaded.frame["source"] == "published").any():  # the space holds none: nothing is missing
            return ReportFigure("device_vs_paper", "pareto", title, None, produced_by=inp.describe_lut(meta),
                                summary="not applicable: the validated space holds no published variant to set against the paper")
        return ReportFigure("device_vs_paper", "pareto", title, None, produced_by=inp.describe_lut(meta), missing=(
            Missing("published variants with a published latency in the LUT validation", str(loaded.path),
                    "ffnet-nas measure-latency --validate N --space mobile (or gpu_large, gpu_small)"),))
    spec = meta.get("spec", {})
    fig, headline = compare.device_vs_paper_figure(frame, device=spec.get("device_name") or spec.get("device") or "this device",
                                                   dtype=spec.get("dtype"), backend=spec.get("backend"))
    return ReportFigure("device_vs_paper", "pareto", title, fig, produced_by={**inp.describe_lut(meta), "table": slug},
                        summary=headline)


def lut_report_figure(inputs: inp.ReportInputs) -> ReportFigure:
    title = "LUT fidelity: predicted vs measured latency"
    slug, missing = inp.pick_lut(inputs)
    if slug is None:
        return ReportFigure("lut_fidelity", "evidence", title, None, missing=(missing,))
    loaded, missing = inp.lut_validation(inputs, slug)
    meta = inp.lut_meta(inputs, slug)
    produced = {**inp.describe_lut(meta), "table": slug}
    if loaded is None:
        return ReportFigure("lut_fidelity", "evidence", title, None, produced_by=produced, missing=(missing,))
    summary = loaded.meta.get("summary") or {}
    fig, fid = evidence.lut_fidelity_figure(loaded.frame, device=inp.device_label(meta), summary=summary)
    produced["validated"] = (summary.get("provenance") or {}).get("created", "")
    return ReportFigure("lut_fidelity", "evidence", title, fig, produced_by=produced, summary=fid.headline())


def predictor_report_figure(inputs: inp.ReportInputs) -> ReportFigure:
    unit = accuracy_label(inp.accuracy(inputs))
    title = f"Accuracy predictor fidelity: predicted vs measured {unit}"
    loaded, missing = inp.predictor(inputs)
    if loaded is None:
        return ReportFigure("predictor_fidelity", "evidence", title, None, missing=(missing,))
    if len(loaded.frame) < 2:
        return ReportFigure("predictor_fidelity", "evidence", title, None,
                            summary=f"only {len(loaded.frame)} evaluated point(s) match the predictor's codes")
    oos = inp.out_of_sample(inputs)
    oos = oos[~oos["code"].isin(loaded.frame["code"])]  # a design point is scored by its LOO value, once
    bench = inp.predictor_benchmark(inputs)
    fig, fid = evidence.predictor_fidelity_figure(loaded.frame, meta=loaded.meta, out_of_sample=oos,
                                                  benchmark=bench.frame if bench else None, unit=unit)
    produced = {"predictor": str(loaded.path), "fitted": (loaded.meta.get("meta") or {}).get("created", ""),
                "fine-tuned points used": len(loaded.frame), "out-of-sample points": len(oos),
                "held-out benchmark": str(bench.path) if bench else "none in this workdir"}
    summary = "LOO " + fid.headline(unit="mIoU points", relative=False)
    if len(oos):
        summary += (f"; out of sample n={len(oos)}: MAE {(oos['predicted'] - oos['measured']).abs().mean():.2f}, "
                    f"bias {(oos['predicted'] - oos['measured']).mean():+.2f} mIoU points")
    return ReportFigure("predictor_fidelity", "evidence", title, fig, produced_by=produced, summary=summary)


def search_report_figure(inputs: inp.ReportInputs) -> ReportFigure:
    title = "Search progress: hypervolume over trials"
    loaded, missing = inp.search(inputs)
    if loaded is None:
        return ReportFigure("search_progress", "evidence", title, None, missing=(missing,))
    summary = loaded.meta.get("summary") or {}
    trials, missing = inp.search_trials(inputs, summary)
    if trials is None or trials.empty:
        return ReportFigure("search_progress", "evidence", title, None, missing=(missing,) if missing else ())
    fig, hv = evidence.hypervolume_figure(trials, targets_text=", ".join(summary.get("targets") or []))
    produced = {"study": summary.get("study"), "storage": summary.get("storage"), "space": summary.get("space"),
                "searched": (summary.get("provenance") or {}).get("created", "")}
    return ReportFigure("search_progress", "evidence", title, fig, produced_by={k: v for k, v in produced.items() if v},
                        summary=f"{len(trials)} trials, final hypervolume {hv:.4g}")


def library_report_figure(inputs: inp.ReportInputs) -> ReportFigure:
    title = "Block library: NSR per position and choice"
    loaded, missing = inp.library(inputs)
    if loaded is None:
        return ReportFigure("block_library", "evidence", title, None, missing=(missing,))
    ok = loaded.frame[loaded.frame["status"] == "ok"]
    if ok.empty:
        return ReportFigure("block_library", "evidence", title, None, summary="no block distilled successfully yet")
    fig = evidence.nsr_heatmap_figure(loaded.frame)
    teacher = loaded.meta
    produced = {"teacher": teacher.get("arch", ""), "distilled": (teacher.get("provenance") or {}).get("created", ""),
                "table": str(loaded.path)}
    return ReportFigure("block_library", "evidence", title, fig, produced_by={k: v for k, v in produced.items() if v},
                        summary=f"{len(ok)} blocks, median NSR {ok['nsr_val'].median():.3g}")


# ---- the whole report ----------------------------------------------------------------------------

def build_report(*, inputs: inp.ReportInputs, out_dir: str | Path, paper: bool = True, pareto: bool = True,
                 formats: tuple[str, ...] = ("html",), progress: bool = True) -> ReportResult:
    from tqdm import tqdm

    run = inp.run_summary(inputs)
    steps: list[tuple[str, Callable[[], list[ReportFigure]]]] = []
    if paper:
        steps.append(("paper figures", paper_report_figures))
    if pareto:
        steps += [
            ("Pareto figure", lambda: [pareto_report_figure(inputs, verdict=run)]),
            ("device vs paper", lambda: [device_vs_paper_report_figure(inputs)]),
            ("LUT fidelity", lambda: [lut_report_figure(inputs)]),
            ("predictor fidelity", lambda: [predictor_report_figure(inputs)]),
            ("search progress", lambda: [search_report_figure(inputs)]),
            ("block library", lambda: [library_report_figure(inputs)]),
        ]
    figures: list[ReportFigure] = []
    bar = tqdm(steps, desc="report", unit="step", disable=not progress, dynamic_ncols=True)
    for name, step in bar:
        bar.set_postfix_str(name)
        figures += step()
    out_dir = Path(out_dir)
    static = export_static(figures, out_dir, formats=formats) if {"png", "svg"} & set(formats) else None
    written = [p for paths in (static.written.values() if static else []) for p in paths]
    notes = tuple(static.skipped) if static else ()
    stamp = provenance(formats=list(formats))
    index_notes = (f"Generated {stamp['created']} on {stamp['host']} (ffnet-nas {stamp['ffnet_nas']}). "
                   "Each figure lists what produced it; hover a point in the HTML for its code, params, MACs and sources.",
                   *notes)
    the_verdict = verdict.verdict(run) if run else None
    results = claims.check_claims(**claim_inputs(inputs, run)) if pareto else ()
    verdict_section = verdict.verdict_html(the_verdict) if the_verdict else (
        "<section id=\"verdict\"><h2>Verdict</h2><p class=\"meta\">No <code>ffnet-nas run</code> verdict in this "
        "workdir (it writes run_summary.json): the figures below show what its steps made.</p></section>")
    written += write_html(figures, out_dir, static=static.written if static else {}, notes=index_notes, pages="html" in formats,
                          verdict=verdict_section, claims=claims_html(results))
    manifest = {
        "verdict": {"headline": the_verdict.headline, "closing": list(the_verdict.closing)} if the_verdict else None,
        "claims": [{"claim": r.claim.key, "status": r.status, "sentence": r.sentence} for r in results],
        "figures": [{"slug": f.slug, "section": f.section, "title": f.title, "drawn": f.drawn, "summary": f.summary,
                     "produced_by": f.produced_by, "missing": [m.sentence() for m in f.missing]} for f in figures],
        "notes": list(notes),
        "provenance": stamp,
    }
    written.append(atomic_write_json(out_dir / "report.json", manifest))
    return ReportResult(tuple(figures), tuple(written), out_dir / "index.html", notes, the_verdict, results)


def claim_inputs(inputs: inp.ReportInputs, run: dict | None) -> dict:
    """What the claims are checked on: the evaluated points (measured), the search's trials (predicted),
    and the paper figure of the workdir's space."""
    import pandas as pd

    ev, _ = inp.evaluated(inputs)
    measured = pd.DataFrame(columns=["code", "latency_ms", "miou"])
    if ev is not None and "measured_latency_ms" in ev.columns:
        measured = pd.DataFrame({"code": ev["code"], "latency_ms": pd.to_numeric(ev["measured_latency_ms"], errors="coerce"),
                                 "miou": ev["miou"]}).dropna()
    predicted = None
    search, _ = inp.search(inputs)
    summary = (search.meta.get("summary") or {}) if search else {}
    if search is not None:
        trials, _ = inp.search_trials(inputs, summary)
        predicted = trials[["code", "latency_ms", "miou"]] if trials is not None and not trials.empty else None
    space = (run or {}).get("space") or summary.get("space")
    # a family-plus-peers space (mobile_peers) answers with its family's paper figure (Fig. 6)
    space = WITH_PEERS.get(space, space)
    return {"measured": measured, "predicted": predicted, "family": space if space in PAPER_FIGURES else None}
