"""What does INT8 cost in mIoU, per published variant of a run's space, on the run's own data?

    .venv/bin/python -m bench.bench_int8_accuracy --workdir runs/quick [--out DIR] [--variants A,B] [--boot 2000]

On a finished `ffnet-nas run` workdir, every published variant of the run's space is fine-tuned and
scored as the run does it (its budget's steps, scoring images and size; a variant the run already
evaluated is reused), then quantised exactly as the INT8 latency table's networks are (ONNX Runtime
static QDQ, calibrated on 16 training images) and scored again on the same images:
`ffnet_nas.steps.evaluate(..., precision="int8")`. The work happens in a copy of the workdir (hard
links; default `WORKDIR-int8`), so the run's own evaluated table is not touched, and a killed
benchmark resumes there (every row lands when its point is done).

The cost is paired: the same fine-tuned weights, the same images, only the arithmetic differs, so
fine-tuning noise does not enter it. Prints per variant the fp32 and INT8 mIoU and the cost, then
the mean cost with a bootstrap 95% interval over variants, the largest cost, and Kendall tau
between the fp32 and INT8 rankings with the number of pairs that swap order.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from bench._workdir import link_copy


def summarise(frame, *, boot: int, seed: int = 0) -> dict:
    """Mean INT8 cost with a bootstrap 95% interval, the largest cost, and the fp32-vs-INT8 rank agreement."""
    from ffnet_nas.stats import rank_correlations

    cost = (frame["measured_miou"] - frame["int8_miou"]).to_numpy(float)
    rng = np.random.default_rng(seed)
    means = [cost[rng.integers(0, len(cost), len(cost))].mean() for _ in range(boot)]
    fp32, int8 = frame["measured_miou"].to_numpy(float), frame["int8_miou"].to_numpy(float)
    swaps = sum(1 for i in range(len(fp32)) for j in range(i + 1, len(fp32))
                if (fp32[i] - fp32[j]) * (int8[i] - int8[j]) < 0)
    return {"n": len(cost), "mean": float(cost.mean()), "low": float(np.percentile(means, 2.5)),
            "high": float(np.percentile(means, 97.5)), "max": float(cost.max()), "min": float(cost.min()),
            "tau": rank_correlations(fp32, int8).kendall, "swaps": swaps, "pairs": len(fp32) * (len(fp32) - 1) // 2}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True, help="a finished 'ffnet-nas run' workdir")
    ap.add_argument("--out", type=Path, default=None, help="the copy worked in (default WORKDIR-int8)")
    ap.add_argument("--variants", default="", help="comma-separated published names (default: all in the space)")
    ap.add_argument("--boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from ffnet_nas import steps
    from ffnet_nas.predictor_check import run_settings
    from ffnet_nas.search.study import published_in
    from ffnet_nas.space.searchspace import get_search_space
    from ffnet_nas.workspace import Workspace

    ws = Workspace(link_copy(args.workdir, args.out or Path(f"{args.workdir}-int8")))
    settings = run_settings(ws)
    if settings is None:
        raise SystemExit(f"{args.workdir}: no run_summary.json; expected a workdir finished by 'ffnet-nas run'")
    published = published_in(get_search_space(settings.space))
    names = [n for n in args.variants.split(",") if n] or sorted(published)
    unknown = sorted(set(names) - set(published))
    if unknown:
        raise SystemExit(f"--variants: {', '.join(unknown)} not published variants of space {settings.space!r}")
    t0 = time.perf_counter()
    result = steps.evaluate(workspace=ws, request=steps.EvaluateRequest(
        points=tuple(published[n] for n in names), finetune=settings.config, val_images=settings.val_images,
        device=args.device, precision="int8", score_at=settings.score_at))
    rows = result.rows
    codes = {published[n].code: n for n in names}
    frame = rows[rows["code"].isin(codes) & (rows["init"] == "distilled")].copy()
    frame["name"] = frame["code"].map(codes)
    frame["cost"] = frame["measured_miou"] - frame["int8_miou"]
    frame = frame.sort_values("measured_miou", ascending=False)
    print(f"\nINT8 cost on {settings.space}: {len(frame)} published variants, fine-tuned {settings.config.steps} steps, "
          f"scored on {settings.val_images or 'all'} images ({time.perf_counter() - t0:.0f} s; rows in {ws.evaluated_path})\n")
    print("| variant | fp32 mIoU | INT8 mIoU | cost |\n|---|---:|---:|---:|")
    for r in frame.itertuples():
        print(f"| {r.name} | {r.measured_miou:.2f} | {r.int8_miou:.2f} | {r.cost:+.2f} |")
    s = summarise(frame, boot=args.boot)
    print(f"\nmean cost {s['mean']:+.2f} mIoU [{s['low']:+.2f}, {s['high']:+.2f}] (bootstrap 95%, {s['n']} variants); "
          f"range {s['min']:+.2f} to {s['max']:+.2f}; fp32 vs INT8 ranking: Kendall tau {s['tau']:.2f}, "
          f"{s['swaps']} of {s['pairs']} pairs swap")


if __name__ == "__main__":
    main()
