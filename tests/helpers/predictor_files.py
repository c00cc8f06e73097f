"""A workdir's predictors written for real, in the formats their packages write: a latency table
whose every unit of a space takes 1 ms, and an accuracy predictor with made-up coefficients. For
tests that go through the real loaders (`ffnet_nas.predictors.load`) without measuring or training."""

from __future__ import annotations

from pathlib import Path


def write_unit_latency_table(lut_dir: Path, space, *, num_classes: int = 19) -> Path:
    """A CPU fp32 eager table at the space's input size, 1 ms per unit; its CSV path."""
    import pandas as pd

    from ffnet_nas.predictors.latency.keys import space_units
    from ffnet_nas.predictors.latency.lut import COLUMNS, LutSpec
    from ffnet_nas.space.io import atomic_write_csv, atomic_write_json

    spec = LutSpec(device="cpu", device_name="cpu", dtype="fp32", backend="eager", batch=1, input_hw=space.input_hw,
                   threads=1, num_classes=num_classes)
    csv = Path(lut_dir) / f"{spec.slug}.csv"
    rows = [{c: None for c in COLUMNS} | {"key": u.key, "kind": "x", "estimate_ms": 1.0}
            for u in space_units(space, space.input_hw, num_classes=num_classes)]
    atomic_write_csv(csv, pd.DataFrame(rows, columns=list(COLUMNS)))
    atomic_write_json(csv.with_suffix(".json"), {"spec": spec.to_dict()})
    return csv


def write_made_up_predictor(predictor_dir: Path, space) -> Path:
    """An accuracy predictor over every block of `space` (NSR 0.1 each); its file path."""
    from ffnet_nas.predictors.accuracy import FEATURES, PREDICTOR_FILE, AccuracyPredictor, Validation

    blocks = {(b.position, b.choice) for a in space for b in a.blocks()}
    n = len(FEATURES)
    path = Path(predictor_dir) / PREDICTOR_FILE
    AccuracyPredictor(feature_names=FEATURES, mean=(0.0,) * n, scale=(1.0,) * n, coef=(-1,) * (n - 2) + (2, -1),
                      intercept=50.0, alpha=1.0, validation=Validation(4, 0.5, 0.5, 1.0, (0.0,) * 4), codes=(),
                      block_nsr=tuple((p, c, 0.1) for p, c in sorted(blocks))).save(path)
    return path
