"""The points of the device Pareto figure (compute half of `--pareto`).

One row per marker. `measured` says whether the marker stands for a measurement on this device
(filled, bold) or a prediction (hollow, faint); the hover names the source of both coordinates.
The y axis is one quantity per figure:
  * with a search: mIoU on the workdir's data set. Filled = measured by full evaluation (and its
    latency measured end to end); hollow = predicted (LUT latency, accuracy-predictor mIoU), as
    are the search front and the published variants nobody evaluated. A point that was both
    predicted and measured carries both, so the figure can draw the arrow between them.
  * without one: the published Cityscapes val mIoU of the published variants that the LUT
    validation measured here (the paper's landscape with this device's latency).
`group` is the legend entry (a few, not one per family): the search front, this workdir's own
points (search, refine and predictor design), and the published variants by backbone kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ffnet_nas.reports import inputs as inp
from ffnet_nas.reports.families import backbone_kind, family_of_arch
from ffnet_nas.reports.model import Missing
from ffnet_nas.reports.style import finite_or_none
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.catalogue import get_variant, name_of
from ffnet_nas.space.errors import InvalidInput

POINT_COLUMNS = (
    "code", "name", "family", "family_label", "three_stage", "depth", "label", "role", "measured",
    "latency_ms", "miou", "latency_source", "miou_source", "predicted_latency_ms", "measured_latency_ms",
    "predicted_miou", "measured_miou", "paper_miou", "params", "macs", "group", "published",
)
GROUP_FRONT = "search front (predicted)"
GROUP_OWN = "this workdir's points (search, refine, design)"
KIND_NAMES = {"": "FFNet", "S": "FFNet-S", "N": "FFNet-N", "NS": "FFNet-NS"}


@dataclass(frozen=True)
class ParetoData:
    points: pd.DataFrame  # POINT_COLUMNS
    mode: str  # "search" | "published" | "empty"
    y_title: str
    device: str  # what the latency axis was measured/predicted on
    targets: tuple[tuple[str, str, float], ...] = ()  # (metric, op, bound) the figure draws as dashed lines
    target_texts: tuple[str, ...] = ()  # as the search stored them
    undrawn_targets: tuple[str, ...] = ()  # texts with nothing to draw on these axes (params/MACs, unparseable)
    produced_by: dict = field(default_factory=dict)
    missing: tuple[Missing, ...] = ()
    found_code: str | None = None  # the run's verdict: the point found ...
    reference_code: str | None = None  # ... and the published variant it was compared with
    reference_name: str | None = None
    # mean (predicted - measured) mIoU over the evaluated points predicted before they were measured
    miou_bias: float | None = None
    n_bias: int = 0


def _arch_fields(code: str) -> dict:
    try:
        arch = Arch.parse(code)
    except (InvalidInput, ValueError):
        return {"family": "unknown", "family_label": "unparsed code", "three_stage": False, "depth": 0, "label": "", "name": "",
                "group": GROUP_OWN, "published": False}
    fam = family_of_arch(arch)
    name = name_of(arch) or ""
    kind = backbone_kind(arch.block, arch.widths)
    group = f"published {KIND_NAMES.get(kind, 'FFNet ' + kind)}" if name else GROUP_OWN
    paper = get_variant(name).miou if name else None
    return {"family": fam.key, "family_label": fam.label, "three_stage": fam.three_stage, "depth": arch.nominal_depth,
            "label": fam.point_label(arch.nominal_depth), "name": name, "paper_miou": paper,
            "params": get_variant(name).n_params if name else None, "group": group, "published": bool(name)}


def _row(code: str, **values) -> dict:
    row = {c: None for c in POINT_COLUMNS}
    row.update(_arch_fields(code))
    row["code"] = code
    row.update({k: v for k, v in values.items() if v is not None or k not in row})
    return row


def pareto_data(inputs: inp.ReportInputs, *, verdict: dict | None = None) -> ParetoData:
    """`verdict`: the run's summary (`inputs.run_summary`), whose found point and reference the
    figure annotates; None: nothing annotated."""
    missing: list[Missing] = []
    slug, m = inp.pick_lut(inputs)
    missing += [m] if m else []
    validation, lut_meta = None, {}
    if slug:
        lut_meta = inp.lut_meta(inputs, slug)
        validation, m = inp.lut_validation(inputs, slug)
        missing += [m] if m else []
    measured_lat = {}
    if validation is not None:
        measured_lat = dict(zip(validation.frame["code"], validation.frame["measured_ms"]))
    device = inp.device_label(lut_meta) if lut_meta else "this device"
    produced = inp.describe_lut(lut_meta) if lut_meta else {}
    search, m = inp.search(inputs)
    if search is None:
        missing.append(m)
        return _published_only(validation, device, produced, missing)
    summary = search.meta.get("summary") or {}
    evaluated, m = inp.evaluated(inputs)
    if m:
        missing.append(m)
    rows = []
    predicted: dict[str, dict] = {}
    for r in search.frame.to_dict("records"):
        rows.append(_row(r["code"], role="front", measured=False, latency_ms=r["latency_ms"], miou=r["miou"],
                         latency_source="LUT prediction", miou_source="accuracy predictor",
                         predicted_latency_ms=r["latency_ms"], predicted_miou=r["miou"],
                         measured_latency_ms=measured_lat.get(r["code"]), params=r.get("params"), macs=r.get("macs")))
        rows[-1]["group"] = GROUP_FRONT
        predicted[r["code"]] = rows[-1]
    evaluated_codes = set(evaluated["code"]) if evaluated is not None else set()
    published = search.meta.get("published")
    if published is not None:
        for r in published.to_dict("records"):
            if r["code"] in predicted:
                continue
            row = _row(r["code"], role="published", measured=False, latency_ms=r["latency_ms"], miou=r["miou"],
                       latency_source="LUT prediction", miou_source="accuracy predictor",
                       predicted_latency_ms=r["latency_ms"], predicted_miou=r["miou"],
                       measured_latency_ms=measured_lat.get(r["code"]))
            predicted[r["code"]] = row
            # An evaluated variant is drawn once, measured, with an arrow from this prediction;
            # its hollow twin would only repeat the arrow's tail.
            if r["code"] not in evaluated_codes:
                rows.append(row)
    biases = []
    if evaluated is not None:
        lat_col = "measured_latency_ms" if "measured_latency_ms" in evaluated.columns else None
        for r in evaluated.to_dict("records"):
            lat = r.get(lat_col) if lat_col else None
            source = f"measured here ({device})"
            if lat is None or pd.isna(lat):
                lat = measured_lat.get(r["code"]) or (predicted.get(r["code"]) or {}).get("predicted_latency_ms")
                source = "LUT prediction" if r["code"] not in measured_lat else source
            if lat is None or pd.isna(lat):
                continue
            # What was predicted before this point was measured (evaluate records it); for the
            # predictor's own design points nothing was, and the search's value is in-sample.
            pred_miou = finite_or_none(r.get("predicted_miou"))
            if pred_miou is not None:
                biases.append(pred_miou - float(r["miou"]))
            pred_lat = finite_or_none(r.get("predicted_latency_ms"))
            if pred_lat is None:
                pred_lat = finite_or_none((predicted.get(r["code"]) or {}).get("predicted_latency_ms"))
            rows.append(_row(r["code"], role="evaluated", measured=True, latency_ms=lat, miou=r["miou"],
                             latency_source=source, miou_source="measured (full fine-tune + evaluation)",
                             measured_latency_ms=lat if source != "LUT prediction" else None, measured_miou=r["miou"],
                             predicted_miou=pred_miou, predicted_latency_ms=pred_lat,
                             params=r.get("params"), macs=r.get("macs")))
    targets = summary.get("targets") or []
    produced = {**produced, "search study": summary.get("study"), "trials": summary.get("complete_trials"),
                "search run": (summary.get("provenance") or {}).get("created")}
    found, ref, ref_name = _verdict_codes(verdict)
    return ParetoData(
        points=pd.DataFrame(rows, columns=list(POINT_COLUMNS)),
        mode="search",
        y_title="mIoU (%) on this workdir's data set",
        device=device,
        targets=tuple(inp.drawable_targets(targets)),
        target_texts=tuple(targets),
        undrawn_targets=tuple(inp.undrawable_targets(targets)),
        produced_by={k: v for k, v in produced.items() if v is not None},
        missing=tuple(missing),
        found_code=found, reference_code=ref, reference_name=ref_name,
        miou_bias=float(sum(biases) / len(biases)) if biases else None, n_bias=len(biases),
    )



def _verdict_codes(verdict: dict | None) -> tuple[str | None, str | None, str | None]:
    verdict = verdict or {}
    best, ref = verdict.get("best") or {}, verdict.get("reference_row") or {}
    return best.get("code"), ref.get("code"), verdict.get("reference")


def _published_only(validation, device: str, produced: dict, missing: list[Missing]) -> ParetoData:
    """No search yet: the published variants with this device's latency and the paper's mIoU."""
    rows = []
    if validation is not None:
        pub = validation.frame[validation.frame["source"] == "published"]
        for r in pub.to_dict("records"):
            fields = _arch_fields(r["code"])
            if fields.get("paper_miou") is None:
                continue
            common = dict(role="published", miou=fields["paper_miou"], miou_source="published (README/paper, Cityscapes val)",
                          predicted_latency_ms=r["predicted_ms"], measured_latency_ms=r["measured_ms"])
            rows.append(_row(r["code"], measured=True, latency_ms=r["measured_ms"], latency_source=f"measured here ({device})", **common))
            rows.append(_row(r["code"], measured=False, latency_ms=r["predicted_ms"], latency_source="LUT prediction", **common))
    mode = "published" if rows else "empty"
    if validation is not None and not rows:
        missing.append(Missing("published variants in the LUT validation", str(validation.path),
                               "ffnet-nas measure-latency --validate N --space mobile (a space that contains published variants)"))
    return ParetoData(
        points=pd.DataFrame(rows, columns=list(POINT_COLUMNS)),
        mode=mode,
        y_title="Cityscapes val mIoU (%), as published",
        device=device,
        produced_by=produced,
        missing=tuple(missing),
    )
