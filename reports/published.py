"""The paper's own tables (Mehta et al. 2022, Tables 2-4) as tidy frames: the compute half of
`--paper` (the drawing is in `reports/paper.py`).

One row per published point: FFNet rows get a family (see `families.py`), baselines
(HRNet, DDRNet, FANet) a family of their own that the figures draw in grey.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import pandas as pd

from ffnet_nas.reports.families import backbone_kind, make_family
from ffnet_nas.space.catalogue import get_variant, published_variants, reference_data
from ffnet_nas.space.errors import InvalidInput


@dataclass(frozen=True)
class PaperFigure:
    key: str  # gpu_large | gpu_small | mobile
    number: str  # the paper's figure number
    table: str  # prefix of the `table` field in the reference data
    title: str
    latency_columns: tuple[tuple[str, str], ...]  # (column, axis label with unit), one panel each
    note: str


PAPER_FIGURES = {
    "gpu_large": PaperFigure(
        key="gpu_large",
        number="3",
        table="Table 2",
        title="GPU-large models: Cityscapes val mIoU vs latency (input 1024×2048, output stride 4)",
        latency_columns=(
            ("t2080ti_fp32_ms", "latency on RTX 2080Ti, FP32 (ms)"),
            ("t2080ti_fp16_ms", "latency on RTX 2080Ti, FP16 (ms)"),
        ),
        note="Source: paper Table 2 (Mehta et al. 2022). Baselines in grey.",
    ),
    "gpu_small": PaperFigure(
        key="gpu_small",
        number="5",
        table="Table 3",
        title="GPU-small models: Cityscapes val mIoU vs latency (input 1024×2048, output stride 8)",
        latency_columns=(
            ("t2080ti_fp32_ms", "latency on RTX 2080Ti, FP32 (ms)"),
            ("t2080ti_fp16_ms", "latency on RTX 2080Ti, FP16 (ms)"),
        ),
        note="Source: paper Table 3 (Mehta et al. 2022). Baselines in grey. 'd': stride-2 first stage.",
    ),
    "mobile": PaperFigure(
        key="mobile",
        number="6",
        table="Table 4",
        title="Mobile models: Cityscapes val mIoU vs latency on a Samsung S21 DSP (8-bit)",
        latency_columns=(("s21_dsp_int8_ms", "latency on Samsung S21 DSP, INT8 (ms)"),),
        note=(
            "Source: paper Table 4 (Mehta et al. 2022); mIoU of the FP16 model. "
            "'d' models take 1024×2048 input, the others 512×1024."
        ),
    ),
}

_DEPTH = re.compile(r"^ResNet\s+(\d+)\s*([A-Z]*)$")
_BASELINE = re.compile(r"^(.*?)\s+(\d+)(?:\s*(\S+))?$")


@functools.cache
def _registered() -> frozenset[str]:
    return frozenset(v.name for v in published_variants())


def paper_figure(key: str) -> PaperFigure:
    try:
        return PAPER_FIGURES[key]
    except KeyError:
        raise InvalidInput(f"unknown paper figure {key!r}: expected one of {', '.join(PAPER_FIGURES)}") from None


def paper_points(key: str) -> pd.DataFrame:
    """Every row of the paper table behind figure `key`, with its family and all latency columns.

    Columns: label, display_name, kind ('ffnet' | 'baseline'), family, family_label, depth,
    three_stage, model_name ('' for paper rows that have no code), params, macs, miou,
    input_hw, plus one column per latency in the table (ms).
    """
    fig = paper_figure(key)
    rows = [r for r in reference_data()["published_paper"] if r["table"].startswith(fig.table)]
    out = [_row(r) for r in rows]
    frame = pd.DataFrame(out)
    return frame.sort_values(["kind", "family", "depth"], kind="stable").reset_index(drop=True)


def _row(r: dict) -> dict:
    name = r["display_name"]
    latency = {k: float(v) for k, v in r.items() if k.endswith("_ms") and v is not None}
    base = {
        "display_name": name,
        "kind": r["kind"],
        "miou": float(r["cityscapes_val_miou"]),
        "input_hw": "×".join(map(str, r["input_hw"])),
        "table": r["table"],
        **latency,
    }
    if r["kind"] == "baseline":
        m = _BASELINE.match(name)
        fam = m.group(1) if m else name
        return {
            **base,
            "label": name,
            "family": f"baseline {fam}",
            "family_label": fam,
            "depth": int(m.group(2)) if m else 0,
            "three_stage": False,
            "model_name": "",
            "params": None,
            "macs": None,
        }
    m = _DEPTH.match(name)
    if not m:
        raise ValueError(f"unexpected paper row name {name!r}: expected 'ResNet <depth> [S|N|NS]'")
    depth, suffix = int(m.group(1)), m.group(2)
    # Some paper rows (dABB 34/18, mobile 30S/22S) name models the code never registered.
    names = [n for n in (r.get("candidate_model_names") or []) if n in _registered()]
    variant = get_variant(names[0]) if names else None
    block = variant.arch.block if variant else "basic"
    # The paper's kind letter is the published width set; bottleneck ResNets (50/101) are a kind apart.
    kind = backbone_kind(block, variant.arch.widths) if variant else suffix
    family = make_family(
        kind=kind,
        letters=r["stem_up_seg"].replace("-", ""),
        dagger=bool(r["first_stage_stride2_dagger"]) and not r["three_stage_marker"],
        three_stage=bool(r["three_stage_marker"]),
        suffix=" bottleneck" if block == "bottleneck" else "",
    )
    return {
        **base,
        "label": family.point_label(depth),
        "family": family.key,
        "family_label": family.label,
        "depth": depth,
        "three_stage": family.three_stage,
        "model_name": names[0] if names else "",
        "params": variant.n_params if variant else None,
        "macs": variant.macs if variant else None,
        "macs_input_hw": "×".join(map(str, variant.macs_input_hw)) if variant else "",
    }
