"""MODELLED predictors written in the real formats (a latency table + calibration, an accuracy
predictor), for the exhaustive-search tests and bench/bench_exhaustive.py.

They are NOT measurements: a unit's time is its conv MACs (counted from the unit's key) at 2 GMAC
per ms plus 20 us, times a seeded log-normal factor (sd 0.1), and the calibration is a*sum + b with
a = 1.3, b = 0.7 ms; each block's NSR falls with its depth and width, with seeded noise, and the
ridge coefficients have the signs a fitted predictor has (lower NSR, more params, finer stride:
higher mIoU). They go through the real loaders (`ffnet_nas.predictors.load`), so the search scores
points with the real code, on a landscape that is made up.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

HEAD_BASE = 128  # a made-up head width: a head's cost grows with its inputs


def _unit_macs(unit) -> float:
    (h, w), c = unit.hw[0], unit.channels[0]
    if unit.kind == "predown":
        return 25.0 * 3 * (h // 2) * (w // 2)
    if unit.kind == "stem":
        return {"A": 7 * 7 * 3 * 64, "B": 9 * (3 * 32 + 32 * 64 + 64 * 64), "C": 9 * (3 * 32 + 32 * 64)}[unit.spec] * (h // 4) * (w // 4)
    if unit.kind == "block":
        block, planes, stride = re.match(r"(\w+):p(\d+)-s(\d)", unit.spec).groups()
        p, s = int(planes), int(stride)
        out = math.ceil(h / s) * math.ceil(w / s)
        project = c * p * out if (s != 1 or c != p) else 0.0
        if block == "bottleneck":
            return c * p * h * w + 9 * p * p * out + 4 * p * p * out + (c * 4 * p * out if (s != 1 or c != 4 * p) else 0.0)
        if block == "metamixer":
            return 9 * c * out + 2 * c * p * out + project
        return 9 * c * p * out + 9 * p * p * out + project
    # head: every input adapted to HEAD_BASE channels, then a 3x3 at the finest size
    finest = unit.hw[0][0] * unit.hw[0][1]
    return sum(ch * HEAD_BASE * hh * ww for ch, (hh, ww) in zip(unit.channels, unit.hw)) + 9 * HEAD_BASE * 4 * HEAD_BASE * finest


def write_model_latency_table(lut_dir: Path, space, *, num_classes: int = 19, seed: int = 0,
                              calibration: tuple[float, float] | None = (1.3, 0.7)) -> Path:
    """A CPU fp32 eager table of every unit of `space` at its input size (modelled times); its CSV path."""
    import pandas as pd
    from ffnet_nas.predictors.latency.keys import space_units
    from ffnet_nas.predictors.latency.lut import COLUMNS, LutSpec
    from ffnet_nas.space.io import atomic_write_csv, atomic_write_json

    spec = LutSpec(device="cpu", device_name="cpu", dtype="fp32", backend="eager", batch=1, input_hw=space.input_hw,
                   threads=1, num_classes=num_classes)
    csv = Path(lut_dir) / f"{spec.slug}.csv"
    units = space_units(space, space.input_hw, num_classes=num_classes)
    noise = np.random.default_rng(seed).lognormal(0.0, 0.1, size=len(units))
    rows = [{c: None for c in COLUMNS} | {"key": u.key, "kind": u.kind, "estimate_ms": (_unit_macs(u) / 2e9 + 0.02) * f}
            for u, f in zip(units, noise)]
    atomic_write_csv(csv, pd.DataFrame(rows, columns=list(COLUMNS)))
    atomic_write_json(csv.with_suffix(".json"), {"spec": spec.to_dict()})
    if calibration is not None:
        atomic_write_json(csv.with_suffix(".calibration.json"), {"spec": spec.to_dict(), "calibration": {
            "a": calibration[0], "b": calibration[1], "n_points": 4, "model": "line"}})
    return csv


def _nsr(choice: str, rng: np.random.Generator) -> float:
    depth = sum(int(d) for d in re.findall(r"\.d(\d+)", choice)) or 4
    width = sum(int(w) for w in re.findall(r"\.w(\d+)", choice)) or 64
    return float(10 ** (-0.6 - 0.35 * math.log2(depth) - 0.25 * math.log2(width / 64) + rng.normal(0.0, 0.08)))


def write_model_predictor(predictor_dir: Path, space, *, seed: int = 0) -> Path:
    """An accuracy predictor holding an NSR for every (position, choice) block of `space`; its file path."""
    from ffnet_nas.predictors.accuracy import (
        FEATURES,
        PREDICTOR_FILE,
        AccuracyPredictor,
        Validation,
    )

    from ffnet_nas.search.exhaustive import probe_archs

    blocks = sorted({(b.position, b.choice) for a in probe_archs(space) for b in a.blocks()})
    rng = np.random.default_rng(seed)
    nsr = [(p, c, _nsr(c, rng)) for p, c in blocks]
    n = len(FEATURES)
    coef = (-1.2, -0.9, -0.7, -0.5, -0.4)[: n - 2] + (1.5, -3.0)  # per position, then log10 params, log2 stride
    path = Path(predictor_dir) / PREDICTOR_FILE
    AccuracyPredictor(feature_names=FEATURES, mean=(-1.5,) * (n - 2) + (6.5, 3.5), scale=(0.3,) * (n - 2) + (0.4, 0.8),
                      coef=coef, intercept=45.0, alpha=1.0, validation=Validation(4, 0.5, 0.5, 1.0, (0.0,) * 4),
                      codes=(), block_nsr=tuple(nsr)).save(path)
    return path


def model_predictors(root: Path, space, *, num_classes: int = 19, seed: int = 0):
    """Both written under `root` (lut/, predictor/) and loaded by the real loader: `predictors.load.Predictors`."""
    from ffnet_nas.predictors.load import load_predictors

    (root / "lut").mkdir(parents=True, exist_ok=True)
    (root / "predictor").mkdir(parents=True, exist_ok=True)
    write_model_latency_table(root / "lut", space, num_classes=num_classes, seed=seed)
    write_model_predictor(root / "predictor", space, seed=seed)
    return load_predictors(lut_dir=root / "lut", predictor_dir=root / "predictor", space=space)
