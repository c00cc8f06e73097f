"""The points of the device Pareto figure (compute half of `--pareto`).

One row per marker. `measured` says whether the marker's latency was measured on this device
(filled marker) or predicted by the LUT (hollow); the hover names the source of both
coordinates. The y axis is one quantity per figure:
  * with a search: mIoU on the workdir's data set (predicted by the accuracy predictor, or
    measured by full evaluation);
  * without one: the published Cityscapes val mIoU of the published variants that the LUT
    validation measured here (the paper's landscape with this device's latency).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ffnet_nas.reports import inputs as inp
from ffnet_nas.reports.families import family_of_arch
from ffnet_nas.reports.model import Missing
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.catalogue import get_variant, name_of
from ffnet_nas.space.errors import InvalidInput

POINT_COLUMNS = (
    "code", "name", "family", "family_label", "three_stage", "depth", "label", "role", "measured",
    "latency_ms", "miou", "latency_source", "miou_source", "predicted_latency_ms", "measured_latency_ms",
    "predicted_miou", "measured_miou", "paper_miou", "params", "macs",
)


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


def _arch_fields(code: str) -> dict:
    try:
        arch = Arch.parse(code)
    except (InvalidInput, ValueError):
        return {"family": "unknown", "family_label": "unparsed code", "three_stage": False, "depth": 0, "label": "", "name": ""}
    fam = family_of_arch(arch)
    name = name_of(arch) or ""
    paper = get_variant(name).miou if name else None
    return {"family": fam.key, "family_label": fam.label, "three_stage": fam.three_stage, "depth": arch.nominal_depth,
            "label": fam.point_label(arch.nominal_depth), "name": name, "paper_miou": paper,
            "params": get_variant(name).n_params if name else None}


def _row(code: str, **values) -> dict:
    row = {c: None for c in POINT_COLUMNS}
    row.update(_arch_fields(code))
    row["code"] = code
    row.update({k: v for k, v in values.items() if v is not None or k not in row})
    return row


def pareto_data(inputs: inp.ReportInputs) -> ParetoData:
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
    on_front = set(search.frame["code"])
    for r in search.frame.to_dict("records"):
        rows.append(_row(r["code"], role="front", measured=False, latency_ms=r["latency_ms"], miou=r["miou"],
                         latency_source="LUT prediction", miou_source="accuracy predictor",
                         predicted_latency_ms=r["latency_ms"], predicted_miou=r["miou"],
                         measured_latency_ms=measured_lat.get(r["code"]), params=r.get("params"), macs=r.get("macs")))
    published = search.meta.get("published")
    if published is not None:
        for r in published.to_dict("records"):
            if r["code"] in on_front:
                continue
            rows.append(_row(r["code"], role="published", measured=False, latency_ms=r["latency_ms"], miou=r["miou"],
                             latency_source="LUT prediction", miou_source="accuracy predictor",
                             predicted_latency_ms=r["latency_ms"], predicted_miou=r["miou"],
                             measured_latency_ms=measured_lat.get(r["code"])))
            if r["code"] in measured_lat:  # the same point with its latency measured here
                rows.append(_row(r["code"], role="published", measured=True, latency_ms=measured_lat[r["code"]], miou=r["miou"],
                                 latency_source=f"measured here ({device})", miou_source="accuracy predictor",
                                 predicted_latency_ms=r["latency_ms"], predicted_miou=r["miou"],
                                 measured_latency_ms=measured_lat[r["code"]]))
    if evaluated is not None:
        lat_col = "measured_latency_ms" if "measured_latency_ms" in evaluated.columns else None
        predicted = {r["code"]: r for r in rows}
        for r in evaluated.to_dict("records"):
            lat = r.get(lat_col) if lat_col else None
            source = f"measured here ({device})"
            if lat is None or pd.isna(lat):
                lat = measured_lat.get(r["code"]) or (predicted.get(r["code"]) or {}).get("predicted_latency_ms")
                source = "LUT prediction" if r["code"] not in measured_lat else source
            if lat is None or pd.isna(lat):
                continue
            pred_miou = r.get("predicted_miou")
            if pred_miou is None or pd.isna(pred_miou):
                pred_miou = (predicted.get(r["code"]) or {}).get("predicted_miou")
            pred_lat = r.get("predicted_latency_ms")
            rows.append(_row(r["code"], role="evaluated", measured=True, latency_ms=lat, miou=r["miou"],
                             latency_source=source, miou_source="measured (full fine-tune + evaluation)",
                             measured_latency_ms=lat if source != "LUT prediction" else None, measured_miou=r["miou"],
                             predicted_miou=pred_miou, predicted_latency_ms=None if pred_lat is None or pd.isna(pred_lat) else pred_lat,
                             params=r.get("params"), macs=r.get("macs")))
    targets = summary.get("targets") or []
    produced = {**produced, "search study": summary.get("study"), "trials": summary.get("complete_trials"),
                "search run": (summary.get("provenance") or {}).get("created")}
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
    )


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
