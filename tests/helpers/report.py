"""A synthetic run folder in the formats the other layers write, for the report tests.

The numbers are made up (seeded), the formats are not: column names follow
predictors/latency/validate.py, distill/library.py, ffnet_nas/search/api.py and
predictors/accuracy.py, ffnet_nas/evaluate/ and ffnet_nas/fit_predictor.py. The journal is a real Optuna journal with trials carrying the same
user attribute and constraints the search sets ('code', one constraint per target).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ffnet_nas.space.catalogue import variants

SLUG = "cpu-fp32-eager-b1-256x512-t2"
SPEC = {"backend": "eager", "batch": 1, "device": "cpu", "device_name": "Test CPU", "dtype": "fp32",
        "input_hw": [256, 512], "num_classes": 19, "threads": 2}


def _mobile_published(n: int | None = None):
    out = [v for v in variants(family="mobile") if not v.arch.pre_down]
    return out[:n] if n else out


def _fake_ms(macs: float) -> float:
    return 2.0 + macs / 1e9 * 0.25


def write_lut(root: Path, *, n_random: int = 12, seed: int = 0, published: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    lut = root / "lut"
    lut.mkdir(parents=True, exist_ok=True)
    (lut / f"{SLUG}.json").write_text(json.dumps({"spec": SPEC, "provenance": {"created": "2026-01-02T03:04:05+00:00", "torch": "2.x"}}))
    (lut / f"{SLUG}.csv").write_text("key,kind,estimate_ms\n")
    rows = []
    pubs = _mobile_published() if published else []
    for i in range(n_random):
        m = float(rng.uniform(5, 40))
        rows.append({"code": f"stemB-basic-d{1 + i % 4}.2.2.2-w64.128.192.320-s1-upB-segB-nearest", "source": "random", "name": ""} | _pair(m, rng))
    for v in pubs:
        rows.append({"code": v.arch.code, "source": "published", "name": v.name} | _pair(_fake_ms(v.macs), rng))
    frame = pd.DataFrame(rows)
    frame.to_csv(lut / f"{SLUG}.validation.csv", index=False)
    summary = {"spec": SPEC, "repeatability": {"median_abs_pct": 3.2}, "calibration": {"a": 1.1, "b": 0.4, "n_points": 6},
               "provenance": {"created": "2026-01-02T04:00:00+00:00"}}
    (lut / f"{SLUG}.validation.json").write_text(json.dumps(summary))
    return lut


def _pair(measured: float, rng) -> dict:
    m1, m2 = measured * rng.normal(1, 0.02), measured * rng.normal(1, 0.02)
    mean = (m1 + m2) / 2
    pred = mean * rng.normal(1, 0.06)
    return {"raw_sum_ms": pred / 1.1, "predicted_ms": pred, "measured_1_ms": m1, "measured_2_ms": m2,
            "measured_ms": mean, "error_pct": (pred - mean) / mean * 100, "repeat_diff_pct": (m2 - m1) / m1 * 100}


def write_library(root: Path, *, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    rows, seen = [], set()
    for v in _mobile_published():
        for b in v.arch.blocks():
            if (b.position, b.choice) in seen:
                continue
            seen.add((b.position, b.choice))
            rows.append({"position": b.position, "choice": b.choice, "status": "ok", "nsr_val": float(rng.uniform(0.02, 0.6)),
                         "nsr_train": 0.1, "steps": 10, "seconds": 1.0, "params": 1000, "file": "", "message": ""})
    rows[-1]["status"] = "failed"
    lib = root / "library"
    lib.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(lib / "blocks.csv", index=False)
    (lib / "library.json").write_text(json.dumps({"arch": "teacher-code", "provenance": {"created": "2026-01-02T05:00:00+00:00"}}))
    return lib


def write_search(root: Path, *, n_trials: int = 30, seed: int = 0, target: float = 20.0) -> Path:
    """pareto.csv + published.csv + summary.json + a real Optuna journal with `n_trials` trials."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    rng = np.random.default_rng(seed)
    search = root / "search" / "mobile.latency_lt_20"  # the search command writes one folder per study
    search.mkdir(parents=True, exist_ok=True)
    pubs = _mobile_published()
    journal = root / "search" / "study.journal"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="mobile.latency_lt_20", directions=["maximize", "minimize"],
                                storage=JournalStorage(JournalFileBackend(str(journal))))
    trials = []
    for i in range(n_trials):
        v = pubs[i % len(pubs)]
        lat = _fake_ms(v.macs) * rng.uniform(0.7, 1.3)
        miou = 70 + 3 * math.log(v.arch.nominal_depth) * rng.uniform(0.95, 1.05)
        code = v.arch.code if i < len(pubs) else v.arch.replace(depths=tuple(max(1, d - i % 3) for d in v.arch.depths)).code
        # As the search records them: one constraint per target, <= 0 when met (Trial.set_constraint).
        t = optuna.trial.create_trial(values=[miou, lat], user_attrs={"code": code}, constraints={f"latency<{target:g}ms": lat / target - 1})
        study.add_trial(t)
        trials.append({"code": code, "latency_ms": lat, "miou": miou, "feasible": lat < target, "trial": i})
    frame = pd.DataFrame(trials).drop_duplicates("code")
    feas = frame[frame["feasible"]].sort_values("latency_ms")
    front = feas[feas["miou"] > feas["miou"].cummax().shift(fill_value=-1)]
    front.assign(params=1e7, macs=1e10, nearest_published="", nearest_distance=0.0, dominates="", published="")[
        ["code", "latency_ms", "miou", "params", "macs", "nearest_published", "nearest_distance", "dominates", "published", "trial"]
    ].to_csv(search / "pareto.csv", index=False)
    pub_rows = [{"name": v.name, "code": v.arch.code, "miou": 70 + 3 * math.log(v.arch.nominal_depth),
                 "latency_ms": _fake_ms(v.macs) * 1.05, "meets_target": True, "dominated_by": 0} for v in pubs]
    pd.DataFrame(pub_rows).to_csv(search / "published.csv", index=False)
    # Saved as the command saw it: a path relative to where it ran, which the report must still find.
    summary = {"study": "mobile.latency_lt_20", "storage": "runs/elsewhere/search/study.journal", "space": "mobile", "targets": [f"latency<{target:g}ms", "params<30M"],
               "complete_trials": n_trials, "provenance": {"created": "2026-01-02T06:00:00+00:00"}}
    (search / "summary.json").write_text(json.dumps(summary))
    return search


def write_evaluated_and_predictor(root: Path, *, n: int = 8, seed: int = 0) -> None:
    from ffnet_nas.predictors.accuracy import fit_accuracy_predictor

    rng = np.random.default_rng(seed)
    pubs = _mobile_published(n)
    codes = [v.arch.code for v in pubs]
    measured = np.array([70 + 3 * math.log(v.arch.nominal_depth) + rng.normal(0, 0.5) for v in pubs])
    x = np.column_stack([measured + rng.normal(0, 0.8, n), rng.normal(0, 1, n)])
    pred = fit_accuracy_predictor(x, measured, codes=codes, feature_names=("noisy_miou", "noise"))
    (root / "predictor").mkdir(parents=True, exist_ok=True)
    pred.save(root / "predictor" / "accuracy.json")
    pd.DataFrame({"code": codes, "measured_miou": measured, "loo_predicted_miou": pred.validation.loo_predictions}).to_csv(
        root / "predictor" / "loo.csv", index=False)
    lat = [_fake_ms(v.macs) for v in pubs]
    rows = pd.DataFrame({"code": codes, "name": [v.name for v in pubs], "init": "distilled", "params": [v.n_params for v in pubs],
                         "macs": [v.macs for v in pubs], "predicted_latency_ms": lat, "measured_latency_ms": [x * 1.03 for x in lat],
                         "predicted_miou": measured + 0.3, "measured_miou": measured})
    # A random-initialisation comparison row: the report leaves it out.
    rows = pd.concat([rows, rows.iloc[:1].assign(init="random", measured_miou=40.0)], ignore_index=True)
    rows.to_csv(root / "evaluated.csv", index=False)


def make_workdir(root: Path, *, lut: bool = True, library: bool = True, search: bool = True, evaluated: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if lut:
        write_lut(root)
    if library:
        write_library(root)
    if search:
        write_search(root)
    if evaluated:
        write_evaluated_and_predictor(root)
    return root
