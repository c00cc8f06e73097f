"""Fidelity of the latency table per backend and precision, next to the ruler and a MACs-only baseline.

For each of eager (deployable form), onnxruntime fp32 and onnxruntime int8, on one space and input
size, one thread: build the unit table, calibrate on 6 networks, validate on N random points plus
an even spread of K published variants, each timed twice (`predictors.latency.build`). Printed per
backend: the share of points within ±10% and ±5% of the lower measured pass, Spearman, median
|error|; the same for pass 2 vs pass 1 (the ruler's repeatability) and for a MACs-only predictor
(measured = a*GMACs + b fitted on the same calibration networks).

`--speedup`: onnxruntime int8 vs fp32 per published variant of the space without pre_down
(the `_mobile` names), timed interleaved in this run, and how many change rank.

    .venv/bin/python -m bench.bench_latency_backends --backends eager,onnxruntime --input-size 128x256
    .venv/bin/python -m bench.bench_latency_backends --backends int8 --speedup --input-size 128x256

Load average is printed before and after; `--clock cpu` (default) times the thread's CPU time, so a
shared machine's scheduler is out of the figure (its cache contention is not).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

BACKENDS = {"eager": ("eager", "fp32", "deploy"), "onnxruntime": ("onnxruntime", "fp32", "module"),
            "int8": ("onnxruntime", "int8", "module")}


def _within(frame, col: str, ref: str, pct: float) -> float:
    import numpy as np

    err = np.abs(frame[col].to_numpy() - frame[ref].to_numpy()) / frame[ref].to_numpy() * 100
    return float(np.mean(err <= pct))


def _line(label: str, frame, col: str, ref: str) -> dict:
    from ffnet_nas.predictors.latency.validate import agreement

    a = agreement(frame[col], frame[ref])
    row = {"n": a.n, "within_10": a.within_10pct, "within_5": _within(frame, col, ref, 5.0),
           "spearman": a.spearman, "median_abs_pct": a.median_abs_pct}
    print(f"  {label:<22} n={row['n']:>3}  ±10% {row['within_10'] * 100:5.1f}%  ±5% {row['within_5'] * 100:5.1f}%  "
          f"Spearman {row['spearman']:.3f}  median |err| {row['median_abs_pct']:.2f}%", flush=True)
    return row


def fidelity(name: str, *, space, input_hw, threads: int, protocol, validate: int, published: int, lut_dir: Path) -> dict:
    import pandas as pd
    from ffnet_nas.predictors.latency.build import build, make_spec
    from ffnet_nas.predictors.latency.predict import fit_calibration
    from ffnet_nas.predictors.latency.validate import e2e_path
    from ffnet_nas.space.complexity import complexity

    backend, dtype, form = BACKENDS[name]
    spec = make_spec(device="cpu", dtype=dtype, backend=backend, input_hw=input_hw, threads=threads, num_classes=19,
                     form=form)
    t0 = time.perf_counter()
    result = build(lut_dir=lut_dir, space=space, spec=spec, protocol=protocol, calibrate_n=6, validate_n=validate,
                   validate_published=published, progress=False)
    seconds = time.perf_counter() - t0
    table = result.table
    frame = pd.read_csv(result.validation.table_path)
    # MACs-only: the same 6 calibration networks, measured = a * GMACs + b
    e2e = pd.read_csv(e2e_path(table))
    cal = e2e[e2e["pass"] >= 10].groupby("code")["estimate_ms"].min()

    def gmacs(code: str) -> float:
        from ffnet_nas.predictors.latency.keys import network_hw_for
        from ffnet_nas.space.arch import Arch

        arch = Arch.parse(code)
        return complexity(arch, network_hw_for(arch, input_hw), num_classes=19).macs / 1e9

    macs_fit = fit_calibration([gmacs(c) for c in cal.index], cal.to_numpy(), model="line")
    frame["macs_ms"] = [macs_fit.apply(gmacs(c)) for c in frame["code"]]
    print(f"{name}: {table.path.name}, form {table.spec.form}, {len(table)} keys, built+calibrated+validated in "
          f"{seconds / 60:.1f} min; calibration {result.calibration.model} a={result.calibration.a:.3f} "
          f"b={result.calibration.b:.3f}", flush=True)
    out = {"table": table.path.name, "form": table.spec.form, "minutes": round(seconds / 60, 2),
           "n_random": int((frame["source"] == "random").sum()), "n_published": int((frame["source"] == "published").sum()),
           "predictor": _line("predictor", frame, "predicted_ms", "measured_ms"),
           "repeatability": _line("ruler (pass 2 vs 1)", frame, "measured_2_ms", "measured_1_ms"),
           "macs_only": _line("MACs-only (line)", frame, "macs_ms", "measured_ms"),
           "raw_sum": _line("raw sum of units", frame, "raw_sum_ms", "measured_ms")}
    if "form_probe" in table.meta:
        out["form_probe"] = table.meta["form_probe"]
    return out


def summarise(lut_dir: Path, *, space, input_hw) -> dict:
    """Figures from what a run left in `lut_dir`, finished or not: every validation network timed so far
    (pass 1 and/or 2) against the calibrated table, and the ruler where both passes exist."""
    import pandas as pd
    from ffnet_nas.predictors.latency.lut import load_table
    from ffnet_nas.predictors.latency.predict import (
        Calibration,
        fit_calibration,
        load_calibration,
        raw_sum,
    )
    from ffnet_nas.predictors.latency.validate import e2e_path
    from ffnet_nas.space.arch import Arch

    out = {}
    for csv in sorted(p for p in lut_dir.glob("*.csv") if "." not in p.stem):
        table = load_table(csv)
        cal = load_calibration(table) or Calibration()
        e2e = pd.read_csv(e2e_path(table)) if e2e_path(table).exists() else pd.DataFrame(columns=["code", "pass"])
        cal_rows = e2e[e2e["pass"] >= 10].groupby("code")["estimate_ms"].min()
        val = e2e[e2e["pass"].isin([1, 2])].pivot_table(index="code", columns="pass", values="estimate_ms")
        gm = {c: _gmacs(c, input_hw) for c in list(cal_rows.index) + list(val.index)}
        macs_fit = fit_calibration([gm[c] for c in cal_rows.index], cal_rows.to_numpy(), model="line")
        frame = pd.DataFrame({"code": val.index})
        frame["measured_1_ms"] = val.get(1, pd.Series(dtype=float)).reindex(val.index).to_numpy()
        frame["measured_2_ms"] = val.get(2, pd.Series(dtype=float)).reindex(val.index).to_numpy()
        frame["measured_ms"] = frame[["measured_1_ms", "measured_2_ms"]].min(axis=1)
        frame["predicted_ms"] = [cal.apply(raw_sum(Arch.parse(c), table)) for c in frame["code"]]
        frame["macs_ms"] = [macs_fit.apply(gm[c]) for c in frame["code"]]
        print(f"{csv.stem}: calibration {cal.model} on {cal.n_points} networks (fit rms {cal.rel_rmse * 100:.1f}%, "
              f"leave-one-out {cal.loo_rel_rmse * 100:.1f}%); {len(frame)} validation networks timed, "
              f"{int(frame['measured_2_ms'].notna().sum())} twice", flush=True)
        out[csv.stem] = {"calibration": cal.to_dict(), "n_timed": len(frame),
                         "predictor": _line("predictor", frame, "predicted_ms", "measured_ms"),
                         "repeatability": _line("ruler (pass 2 vs 1)", frame.dropna(), "measured_2_ms", "measured_1_ms"),
                         "macs_only": _line("MACs-only (line)", frame, "macs_ms", "measured_ms")}
    return out


def _gmacs(code: str, input_hw) -> float:
    from ffnet_nas.predictors.latency.keys import network_hw_for
    from ffnet_nas.space.arch import Arch
    from ffnet_nas.space.complexity import complexity

    arch = Arch.parse(code)
    return complexity(arch, network_hw_for(arch, input_hw), num_classes=19).macs / 1e9


def speedup(*, space, input_hw, threads: int, protocol) -> list[dict]:
    """ORT int8 vs fp32 per published `_mobile` variant in the space, both timed back to back per variant."""
    from ffnet_nas.predictors.latency.backends import prepare
    from ffnet_nas.predictors.latency.keys import network_hw_for
    from ffnet_nas.predictors.latency.modules import network
    from ffnet_nas.predictors.latency.protocol import measurement_context, time_callable
    from ffnet_nas.space.catalogue import variants

    picks = [v for v in variants(task="segmentation") if v.arch in space and not v.arch.pre_down]
    rows = []
    with measurement_context("cpu", threads):
        for v in picks:
            model, inputs = network(v.arch, input_hw, 1, num_classes=19)
            ms = {}
            for dtype in ("fp32", "int8"):
                fn = prepare(model, inputs, backend="onnxruntime", device="cpu", dtype=dtype, threads=threads)
                ms[dtype] = min(time_callable(fn, device="cpu", protocol=protocol).estimate_ms
                                for _ in range(protocol.rounds))
            hw = network_hw_for(v.arch, input_hw)
            rows.append({"name": v.name, "fp32_ms": ms["fp32"], "int8_ms": ms["int8"],
                         "speedup": ms["fp32"] / ms["int8"], "input": f"{hw[0]}x{hw[1]}"})
            print(f"  {v.name:<40} fp32 {ms['fp32']:8.2f} ms  int8 {ms['int8']:8.2f} ms  x{ms['fp32'] / ms['int8']:.2f}",
                  flush=True)
    fp = sorted(rows, key=lambda r: r["fp32_ms"])
    q = sorted(rows, key=lambda r: r["int8_ms"])
    moved = sum(a["name"] != b["name"] for a, b in zip(fp, q))
    from ffnet_nas.stats import rank_correlations

    rc = rank_correlations([r["fp32_ms"] for r in rows], [r["int8_ms"] for r in rows])
    print(f"  {len(rows)} variants: speed-up {min(r['speedup'] for r in rows):.2f}-{max(r['speedup'] for r in rows):.2f}x; "
          f"{moved} change rank position; Kendall fp32 vs int8 {rc.kendall:.3f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    from ffnet_nas.predictors.latency.protocol import Protocol, default_threads
    from ffnet_nas.space.complexity import parse_hw
    from ffnet_nas.space.searchspace import get_space

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backends", default="eager,onnxruntime,int8")
    p.add_argument("--space", default="mobile")
    p.add_argument("--input-size", default="128x256")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=("wall", "cpu"), default="cpu")
    p.add_argument("--validate", type=int, default=30)
    p.add_argument("--published", type=int, default=4, help="published variants among the validation points")
    p.add_argument("--repeats", default="5:30")
    p.add_argument("--max-seconds", type=float, default=3.0)
    p.add_argument("--speedup", action="store_true")
    p.add_argument("--workdir", default=None, help="keep the tables here (default: a temporary folder)")
    p.add_argument("--json", default=None, help="write the figures here")
    p.add_argument("--summarise", default=None, metavar="WORKDIR",
                   help="measure nothing: figures from the tables a (possibly interrupted) run left in WORKDIR/lut")
    a = p.parse_args(argv)
    if a.summarise:
        figures = summarise(Path(a.summarise) / "lut", space=get_space(a.space), input_hw=parse_hw(a.input_size))
        if a.json:
            Path(a.json).write_text(json.dumps(figures, indent=1, default=float))
        return 0
    lo, hi = (int(x) for x in a.repeats.split(":"))
    protocol = Protocol(min_repeats=lo, max_repeats=hi, max_seconds=a.max_seconds, clock=a.clock, rounds=2)
    space, hw = get_space(a.space), parse_hw(a.input_size)
    print(f"cpu: {os.cpu_count()} cores visible ({default_threads()} usable), {a.threads} thread(s), clock {a.clock}; "
          f"load {os.getloadavg()}; space {space.name} at {hw[0]}x{hw[1]}", flush=True)
    figures: dict = {"input_hw": list(hw), "space": space.name, "threads": a.threads, "clock": a.clock,
                     "protocol": protocol.to_dict(), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-lat-") as tmp:
        lut_dir = Path(a.workdir or tmp) / "lut"
        for name in [b for b in a.backends.split(",") if b]:
            figures[name] = fidelity(name, space=space, input_hw=hw, threads=a.threads, protocol=protocol,
                                     validate=a.validate, published=a.published, lut_dir=lut_dir)
    if a.speedup:
        print("int8 vs fp32, onnxruntime, published variants without pre_down:", flush=True)
        figures["speedup"] = speedup(space=space, input_hw=hw, threads=a.threads, protocol=protocol)
    figures["load_after"] = os.getloadavg()
    print(f"load {figures['load_after']}", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
