"""The published FFNet variants (Qualcomm-AI-research/FFNet registry) as points of the space.

The facts come from `space/data/ffnet_variants.json`, a copy of the project's reference file
(structure, parameter counts and MACs measured from the reference code; accuracy and latency
transcribed from the README and the paper).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ffnet_nas.space.arch import Arch
from ffnet_nas.space.errors import InvalidInput, closest

# The reference repo's model files, grouped into the paper's families (Fig. 3, 5, 6).
_FAMILY_OF_FILE = {
    "ffnet_gpu_large": "gpu_large",
    "ffnet_S_gpu_large": "gpu_large",
    "ffnet_N_gpu_large": "gpu_large",
    "ffnet_gpu_small": "gpu_small",
    "ffnet_S_gpu_small": "gpu_small",
    "ffnet_S_mobile": "mobile",
    "ffnet_NS_mobile": "mobile",
}


@dataclass(frozen=True)
class PublishedVariant:
    name: str
    task: str  # segmentation | classification
    family: str  # gpu_large | gpu_small | mobile
    arch: Arch
    num_classes: int
    input_hw: tuple[int, int]  # the tensor the network takes (pre_down: 2x the README size)
    n_params: int
    macs: int
    macs_input_hw: tuple[int, int]
    is_training_entrypoint: bool
    weights_file: str | None
    miou_readme: float | None = None
    miou_paper: float | None = None
    # published latencies in ms, keyed by where they were measured (e.g. 'paper 2080Ti fp16')
    latency_ms: dict[str, float] = field(default_factory=dict, compare=False, hash=False)
    display_name: str | None = None

    @property
    def miou(self) -> float | None:
        """The README figure where there is one (it is the repo's own), else the paper's."""
        return self.miou_readme if self.miou_readme is not None else self.miou_paper


_LATENCY_COLUMNS = {
    "fp32_ms": "README fp32 (2080Ti)",
    "fp16_ms": "README fp16 (2080Ti)",
    "t1080ti_fp32_ms": "paper 1080Ti fp32",
    "t2080ti_fp32_ms": "paper 2080Ti fp32",
    "t2080ti_fp16_ms": "paper 2080Ti fp16",
    "s21_dsp_int8_ms": "paper S21 DSP int8",
}


def arch_from_record(rec: dict[str, Any]) -> Arch:
    task_head = "X" if rec["task"] == "classification" else rec["seg_head_type"]
    return Arch(
        stem=rec["stem"],
        block=rec["block_type"],
        depths=tuple(rec["depths"]),
        widths=tuple(rec["stage_widths"]),
        first_stride=rec["first_stage_stride"],
        up_head=rec["up_head_type"],
        seg_head=task_head,
        upsample="nearest" if rec["upsample_mode"] == "nearest" else "bilinear",
        pre_down=bool(rec["pre_down"]),
    )


def _variant_from_record(rec: dict[str, Any]) -> PublishedVariant:
    published = rec.get("published") or {}
    readme = published.get("readme") or {}
    papers = published.get("paper") or []
    latency: dict[str, float] = {}
    for source in [readme, *papers]:
        for column, label in _LATENCY_COLUMNS.items():
            if source.get(column) is not None:
                latency[label] = float(source[column])
    stem = rec["family_file"].split("/")[-1].removesuffix(".py")
    return PublishedVariant(
        name=rec["name"],
        task=rec["task"],
        family=_FAMILY_OF_FILE[stem],
        arch=arch_from_record(rec),
        num_classes=rec["num_classes"],
        input_hw=tuple(rec["network_input_hw"]),
        n_params=rec["n_params"],
        macs=rec["macs"],
        macs_input_hw=tuple(rec["macs_input_hw"]),
        is_training_entrypoint=rec["is_training_entrypoint"],
        weights_file=rec.get("weights_file"),
        miou_readme=readme.get("cityscapes_val_miou"),
        miou_paper=papers[0].get("cityscapes_val_miou") if papers else None,
        latency_ms=latency,
        display_name=readme.get("display_name") or (papers[0].get("display_name") if papers else None),
    )


@functools.cache
def reference_data() -> dict[str, Any]:
    with resources.files("ffnet_nas.space").joinpath("data/ffnet_variants.json").open() as f:
        return json.load(f)


@functools.cache
def published_variants() -> tuple[PublishedVariant, ...]:
    return tuple(_variant_from_record(r) for r in reference_data()["records"])


@functools.cache
def _by_name() -> dict[str, PublishedVariant]:
    return {v.name: v for v in published_variants()}


def get_variant(name: str) -> PublishedVariant:
    try:
        return _by_name()[name]
    except KeyError:
        raise InvalidInput(
            f"unknown FFNet variant {name!r}: expected a published name or an arch code "
            f"(stem...){closest(name, _by_name())}"
        ) from None


def variants(*, task: str | None = "segmentation", family: str | None = None, include_train: bool = False) -> tuple[PublishedVariant, ...]:
    """Published variants filtered by task and family; `_train` duplicates left out by default."""
    return tuple(
        v
        for v in published_variants()
        if (task is None or v.task == task)
        and (family is None or v.family == family)
        and (include_train or not v.is_training_entrypoint)
    )


def name_of(arch: Arch) -> str | None:
    """The published (non-_train) segmentation name of a point, if it is one.

    The GPU and mobile S models share a structure only when upsampling matches, so the code is
    unique among non-_train names except for exact structural twins; the first registered wins.
    """
    return _name_of_code().get(arch.code)


@functools.cache
def _name_of_code() -> dict[str, str]:
    out: dict[str, str] = {}
    for v in published_variants():
        if not v.is_training_entrypoint:
            out.setdefault(v.arch.code, v.name)
    return out
