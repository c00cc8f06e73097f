"""How far can the latency LUT be trusted on this machine, and what does a full table cost?

1. Builds the unit table for a space at one input size (default: mobile at 256x512, the
   tensor entering the stem), timing the build; calibrates on 6 networks; validates on N
   random points plus every published variant of the space, each measured twice, and prints
   the predictor's error next to the measurement's own repeatability (pass 2 vs pass 1).
2. Counts the keys of every built-in space at its paper resolution exactly, and estimates
   the build time of each from this run's measured build seconds per multiply-accumulate of
   the measured keys (an estimate: warm-up and call overheads do not scale with MACs).
3. Prints predict_latency's own cost next to one end-to-end measurement (a ratio measured
   side by side in this run).

    .venv/bin/python bench/bench_latency.py                          # mobile, 256x512, 1 thread, CPU clock
    .venv/bin/python bench/bench_latency.py --clock wall --validate 20

Load average is printed before and after: on a shared machine it says how much to trust the run.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def unit_macs(unit) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ffnet_nas.predictors.latency.modules import unit_module

    with torch.device("meta"):
        module = unit_module(unit)
        xs = tuple(torch.empty(1, c, h, w) for c, (h, w) in zip(unit.channels, unit.hw))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*xs)
    return counter.get_total_flops() // 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="mobile")
    ap.add_argument("--input-size", default="256x512")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", default="cpu", help="cpu (thread CPU time; shared machine) or wall")
    ap.add_argument("--validate", type=int, default=20, help="random points (plus every published variant)")
    ap.add_argument("--calibrate", type=int, default=6)
    ap.add_argument("--workdir", default="runs/bench_latency")
    ap.add_argument("--num-classes", type=int, default=19, help="classes of the timed head (default 19: Cityscapes, the paper's)")
    args = ap.parse_args(argv)

    import numpy as np

    from ffnet_nas.predictors.latency.build import make_spec
    from ffnet_nas.predictors.latency.keys import space_units
    from ffnet_nas.predictors.latency.lut import measure_units, open_table
    from ffnet_nas.predictors.latency.predict import predict_latency
    from ffnet_nas.predictors.latency.protocol import default_protocol, measurement_context
    from ffnet_nas.predictors.latency.validate import calibrate, time_arch, validate
    from ffnet_nas.space.complexity import parse_hw
    from ffnet_nas.space.searchspace import PAPER_INPUT_HW, get_space

    load0 = os.getloadavg()
    print(f"load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} on {os.cpu_count()} CPUs")
    space = get_space(args.space)
    hw = parse_hw(args.input_size)
    spec = make_spec(device="cpu", input_hw=hw, threads=args.threads, num_classes=args.num_classes)
    protocol = default_protocol("cpu", clock=args.clock)
    lut_dir = Path(args.workdir) / "lut"
    table = open_table(lut_dir, spec, protocol, space=space.name)
    units = space_units(space, hw, num_classes=spec.num_classes)
    t0 = time.perf_counter()
    table = measure_units(table, units, protocol)
    build_s = time.perf_counter() - t0
    rows = [table.rows[u.key] for u in units]
    measured_s = sum(float(r["seconds"]) for r in rows)  # includes keys finished by an earlier, interrupted run
    t0 = time.perf_counter()
    cal = calibrate(table, space, n=args.calibrate, protocol=protocol)
    cal_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = validate(table, space, n=args.validate, calibration=cal, protocol=protocol)
    val_s = time.perf_counter() - t0

    print(f"\n== {space.name} at {hw[0]}x{hw[1]} (stem input), cpu, fp32, eager, {args.threads} thread(s), "
          f"clock={args.clock}, estimator={protocol.estimator}")
    print(f"LUT: {len(units)} keys, built in {measured_s:.0f} s of measurement ({build_s:.0f} s in this run), "
          f"{measured_s / len(units):.1f} s per key")
    print(f"calibration ({cal.model}): measured = {cal.a:.3f} * sum + {cal.b:.2f} ms on {cal.n_points} networks "
          f"(fit rms {cal.rel_rmse * 100:.1f}%, leave-one-out {cal.loo_rel_rmse * 100:.1f}%), {cal_s:.0f} s")
    print(f"validation ({val_s:.0f} s): {result.table_path}")
    print(f"{'':>22} {'n':>4} {'median|err|':>12} {'within±10%':>11} {'Spearman':>9} {'Kendall':>8}")
    for label, a in (("predictor (calibrated)", result.predictor), ("raw sum", result.raw_sum),
                     ("predictor vs pass 1", result.per_pass[0]), ("predictor vs pass 2", result.per_pass[1]),
                     ("repeatability (ruler)", result.repeatability)):
        print(f"{label:>22} {a.n:>4} {a.median_abs_pct:>11.1f}% {a.within_10pct * 100:>10.0f}% "
              f"{a.spearman:>9.3f} {a.kendall:>8.3f}")

    # ---- keys and build time of every built-in space at its paper resolution -------------------
    seconds_per_mac = measured_s / max(1, sum(unit_macs(u) for u in units))
    print(f"\nbuild cost here: {seconds_per_mac * 1e9:.3f} s per GMAC of measured keys")
    print(f"{'space':>10} {'resolution':>11} {'points':>9} {'keys':>5} {'key GMAC':>9} {'est. build':>11}")
    for name in ("mobile", "gpu_large", "gpu_small", "all"):
        s = get_space(name)
        paper = PAPER_INPUT_HW[name]
        us = space_units(s, paper)
        gmac = sum(unit_macs(u) for u in us) / 1e9
        est = gmac * 1e9 * seconds_per_mac
        print(f"{name:>10} {paper[0]}x{paper[1]:<6} {s.size:>9} {len(us):>5} {gmac:>9.0f} {est / 3600:>10.1f}h")

    # ---- predictor cost vs one end-to-end measurement, side by side -------------------------
    arch = space.sample_many(1, seed=7)[0]
    t0 = time.perf_counter()
    for _ in range(100):
        predict_latency(arch, table, calibration=cal)
    predict_s = (time.perf_counter() - t0) / 100
    with measurement_context(spec.device, spec.threads):
        t0 = time.perf_counter()
        time_arch(arch, table, protocol)
        measure_s = time.perf_counter() - t0
    print(f"\npredict_latency {predict_s * 1e3:.2f} ms vs end-to-end measurement {measure_s:.1f} s "
          f"(ratio {measure_s / predict_s:,.0f}x)")
    load1 = os.getloadavg()
    print(f"load average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    frame = __import__("pandas").read_csv(result.table_path)
    worst = frame.reindex(frame["error_pct"].abs().sort_values(ascending=False).index).head(5)
    print("\nlargest errors:")
    print(worst[["code", "source", "predicted_ms", "measured_ms", "error_pct", "repeat_diff_pct"]]
          .to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    del np
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
