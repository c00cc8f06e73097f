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
points (search, refine and predictor design), the published variants by backbone kind, and the
peer designs (NOT FFNet: `peer` is True for any point with a FAM/JPU head or metamixer blocks).

Peer points are placed wherever the workdir's tables place them, never from a paper: an evaluated
peer design is measured (filled); a peer reference point of the catalogue (`space.peers`) nobody
evaluated is predicted (hollow): its latency from the workdir's latency table (the LUT-validation
measurement when it was timed end to end), its mIoU from the search's trials when the search
scored it. A peer whose units the table lacks is not placed (`peer_notes` says which and how to
place it: `measure-latency --space peers_paper`); one with a latency but no mIoU here is drawn as
a latency-only line (`mIoU` None), not at a made-up height.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd

from ffnet_nas.reports import inputs as inp
from ffnet_nas.reports.families import backbone_kind, family_of_arch
from ffnet_nas.reports.model import Missing
from ffnet_nas.settings import accuracy_label
from ffnet_nas.space.arch import PEER_BLOCK_TYPES, PEER_UP_HEADS, Arch
from ffnet_nas.space.catalogue import get_variant, name_of
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.peers import get_peer, peer_of, peer_points
from ffnet_nas.stats import finite_or_none

log = logging.getLogger(__name__)

POINT_COLUMNS = (
    "code", "name", "family", "family_label", "three_stage", "depth", "label", "role", "measured",
    "latency_ms", "miou", "latency_source", "miou_source", "predicted_latency_ms", "measured_latency_ms",
    "predicted_miou", "measured_miou", "paper_miou", "params", "macs", "group", "published", "peer", "peer_name",
)
GROUP_FRONT = "search front (predicted)"
GROUP_OWN = "this workdir's points (search, refine, design)"
GROUP_PEER = "peer designs: NOT FFNet (SFNet/FastFCN heads, MetaMixer blocks)"
# how a peer's latency units get into a workdir's table (+ the table's own settings: docs/report.md)
PLACE_PEERS = "ffnet-nas measure-latency --space {space} --calibrate 0"
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
    peer_notes: tuple[str, ...] = ()  # peer reference points not placed, and why
    accuracy_label: str = "mIoU"  # which mIoU the y axis is: "INT8 mIoU" after an INT8 run


def _arch_fields(code: str) -> dict:
    try:
        arch = Arch.parse(code)
    except (InvalidInput, ValueError):
        return {"family": "unknown", "family_label": "unparsed code", "three_stage": False, "depth": 0, "label": "", "name": "",
                "group": GROUP_OWN, "published": False, "peer": False, "peer_name": ""}
    fam = family_of_arch(arch)
    if not arch.is_ffnet:
        # the family labels spell FFNet's letters ("FFNet AFAMC"): a peer must never read as an FFNet
        ref = peer_of(arch)
        what = ref.display_name if ref else f"up{arch.up_head} head, {arch.block} blocks [not FFNet]"
        return {"family": f"peer {arch.block} up{arch.up_head}", "family_label": f"peer design: {what}",
                "three_stage": fam.three_stage, "depth": arch.nominal_depth,
                # what makes it a peer: the fussier head, the fussier block, or both
                "label": ref.name if ref else "+".join(
                    ([arch.block] if arch.block in PEER_BLOCK_TYPES else [])
                    + ([f"up{arch.up_head}"] if arch.up_head in PEER_UP_HEADS else [])),
                "name": "", "group": GROUP_PEER, "published": False, "peer": True, "peer_name": ref.name if ref else ""}
    name = name_of(arch) or ""
    kind = backbone_kind(arch.block, arch.widths)
    group = f"published {KIND_NAMES.get(kind, 'FFNet ' + kind)}" if name else GROUP_OWN
    paper = get_variant(name).miou if name else None
    return {"family": fam.key, "family_label": fam.label, "three_stage": fam.three_stage, "depth": arch.nominal_depth,
            "label": fam.point_label(arch.nominal_depth), "name": name, "paper_miou": paper,
            "params": get_variant(name).n_params if name else None, "group": group, "published": bool(name),
            "peer": False, "peer_name": ""}


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
        return _published_only(validation, device, produced, missing, inputs=inputs, slug=slug, measured_lat=measured_lat)
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
    placed, peer_notes = _peer_rows(inputs, slug, device=device, measured_lat=measured_lat, drawn={r["code"] for r in rows},
                                    trials=_trial_predictions(inputs, summary))
    rows += placed
    targets = summary.get("targets") or []
    produced = {**produced, "peer points (NOT FFNet)": _peer_line(rows, peer_notes), "search study": summary.get("study"), "trials": summary.get("complete_trials"),
                "search run": (summary.get("provenance") or {}).get("created")}
    found, ref, ref_name = _verdict_codes(verdict)
    label = accuracy_label(inp.accuracy(inputs))
    return ParetoData(
        points=pd.DataFrame(rows, columns=list(POINT_COLUMNS)),
        mode="search",
        y_title=f"{label} (%) on this workdir's data set",
        accuracy_label=label,
        device=device,
        targets=tuple(inp.drawable_targets(targets)),
        target_texts=tuple(targets),
        undrawn_targets=tuple(inp.undrawable_targets(targets)),
        produced_by={k: v for k, v in produced.items() if v is not None},
        missing=tuple(missing),
        found_code=found, reference_code=ref, reference_name=ref_name,
        miou_bias=float(sum(biases) / len(biases)) if biases else None, n_bias=len(biases),
        peer_notes=tuple(peer_notes),
    )


def _trial_predictions(inputs: inp.ReportInputs, summary: dict) -> dict[str, tuple[float, float]]:
    """code -> (predicted latency, predicted mIoU) of every trial the search scored."""
    trials, _ = inp.search_trials(inputs, summary)
    if trials is None or trials.empty:
        return {}
    return {r["code"]: (float(r["latency_ms"]), float(r["miou"])) for r in trials.to_dict("records") if r["code"]}


def _peer_rows(inputs: inp.ReportInputs, slug: str | None, *, device: str, measured_lat: dict, drawn: set[str],
               trials: dict[str, tuple[float, float]]) -> tuple[list[dict], list[str]]:
    """The catalogue's peer reference points not drawn yet, placed from this workdir's tables.

    Latency: measured end to end when the LUT validation timed the point, else the table's
    prediction; mIoU: the search's prediction when it scored the point, else none (a latency-only
    line). Returns the rows and one note per peer that could not be placed.
    """
    from ffnet_nas.predictors.load import load_latency  # torch-free, the loader search and evaluate use

    latency_of, why_not = None, "no latency table"
    if slug is not None:
        try:
            latency_of, _ = load_latency(inputs.lut_dir / f"{slug}.csv")
        except (InvalidInput, KeyError, TypeError, ValueError) as e:
            # Only the peers need the table itself (every other point carries its latency in its own
            # table), so a damaged one leaves them unplaced, said in the figure, instead of ending the report.
            why_not = f"latency table unreadable ({str(e)[:80]})"
            log.warning("report: peer points not placed: %s", e)
    rows, notes = [], []
    for p in peer_points():
        code = p.arch.code
        if code in drawn:  # evaluated (measured) or on the front already
            continue
        lat, source, pred_lat = measured_lat.get(code), f"measured here ({device})", None
        if latency_of is not None:
            try:
                pred_lat = float(latency_of(p.arch))
            except InvalidInput:  # the table lacks its units
                pass
        if lat is None or pd.isna(lat):
            lat, source = pred_lat, "LUT prediction"
        if lat is None:
            notes.append(f"{p.name}: {why_not if latency_of is None else 'the latency table lacks its units'}"
                         f" ({PLACE_PEERS.format(space=_home_space(p.arch))})")
            continue
        trial = trials.get(code)
        miou = trial[1] if trial else None
        rows.append(_row(code, role="peer", measured=False, latency_ms=lat, miou=miou, latency_source=source,
                         miou_source="accuracy predictor (search trial)" if trial else "not known here (neither evaluated nor scored by the search)",
                         predicted_latency_ms=pred_lat, predicted_miou=miou,
                         measured_latency_ms=lat if source != "LUT prediction" else None))
    return rows, notes


def _home_space(arch: Arch) -> str:
    """The built-in space whose latency units include this peer point (one always does)."""
    from ffnet_nas.space.searchspace import PEER_SPACES, WITH_PEERS, builtin_space

    return next((n for n in (*WITH_PEERS, *PEER_SPACES) if arch in builtin_space(n)), "peers_paper")


def _peer_line(rows: list[dict], notes: list[str]) -> str:
    """What the figure's provenance says about the peers: how many placed, how, and the rest."""
    peers = [r for r in rows if r.get("peer")]
    measured = sum(1 for r in peers if r["role"] == "evaluated")
    latency_only = sum(1 for r in peers if r["role"] == "peer" and r["miou"] is None)
    text = (f"{len(peers)} placed ({measured} measured, {len(peers) - measured - latency_only} predicted, "
            f"{latency_only} latency only)")
    if notes:
        by_space: dict[str, list[str]] = {}
        for n in notes:
            by_space.setdefault(n.rsplit("--space ", 1)[1].split()[0], []).append(n.split(":")[0])
        text += "; not placed: " + "; ".join(f"{', '.join(names)} (their latency units: {PLACE_PEERS.format(space=sp)})"
                                             for sp, names in by_space.items())
        text += ", with this table's settings"
    return text



def _verdict_codes(verdict: dict | None) -> tuple[str | None, str | None, str | None]:
    verdict = verdict or {}
    best, ref = verdict.get("best") or {}, verdict.get("reference_row") or {}
    return best.get("code"), ref.get("code"), verdict.get("reference")


def _published_only(validation, device: str, produced: dict, missing: list[Missing], *, inputs: inp.ReportInputs,
                    slug: str | None, measured_lat: dict) -> ParetoData:
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
    # The peers whose papers publish a Cityscapes val mIoU belong on this figure as well (same axis:
    # the published mIoU, this device's latency), drawn as what they are: peers, predicted here.
    peers, notes = _peer_rows(inputs, slug, device=device, measured_lat=measured_lat, drawn=set(), trials={})
    for r in peers:  # without a published mIoU: a latency-only line
        paper = get_peer(r["peer_name"]).miou
        rows.append({**r, "miou": paper, "paper_miou": paper, "predicted_miou": None,
                     "miou_source": "published by its paper (Cityscapes val, their training)" if paper is not None
                     else "none published for this shape"})
    mode = "published" if rows else "empty"
    if validation is not None and not rows:
        missing.append(Missing("published variants in the LUT validation", str(validation.path),
                               "ffnet-nas measure-latency --validate N --space mobile (a space that contains published variants)"))
    return ParetoData(
        points=pd.DataFrame(rows, columns=list(POINT_COLUMNS)),
        mode=mode,
        y_title="Cityscapes val mIoU (%), as published",
        device=device,
        produced_by={**produced, "peer points (NOT FFNet)": _peer_line(rows, notes)} if rows else produced,
        missing=tuple(missing),
        peer_notes=tuple(notes),
    )
