"""Scoring every point of each built-in space, and how much of the exact front NSGA-II reaches.

    .venv/bin/python -m bench.bench_exhaustive [--spaces mobile,all] [--seeds 5] [--repeats 3]
                                               [--trials 300] [--workdir RUN --space-of-workdir mobile]

Predictors: MODELLED ones in the real formats (tests/search/model_predictors.py: a latency table
whose unit times follow the units' MACs, a calibration, an accuracy predictor with made-up NSRs and
coefficients), loaded by the real loader, so the timings are those of the real code; with
--workdir, that run's own latency table and accuracy predictor for the space it was run on.

Per space:
1. time to score everything (`ffnet_nas.search.exact`): probing the tables through the predictors,
   then the vectorised scoring + exact front. Apart: building the space's complexity parts on the
   meta device (once per process, paid by any search of the space, NSGA-II's too); then the first
   pass (predictor memos empty) and the median/min/max of --repeats more (memos warm); for mobile
   also a plain Python loop over every point with the same predictors, side by side;
2. NSGA-II at --trials trials (the quick budget's 300), run exactly as a run's search does
   (`run_search`, the run's default target `latency<=` median published prediction, published
   variants first, exhaustive=False), --seeds seeds: its feasible trials' hypervolume as a share of
   the exact front's (reference point: the worst feasible latency and mIoU of the whole space); and,
   for seed 0, the points a quick run would hand to full evaluation (its top 2) without and with
   the exact front.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from ffnet_nas.space.complexity_cache import shared_cache
from ffnet_nas.space.searchspace import BUILTIN, PEER_SPACES, get_space

from ffnet_nas.pipeline import default_target
from ffnet_nas.search import exact
from ffnet_nas.search.api import run_search
from ffnet_nas.search.exhaustive import probe_archs
from ffnet_nas.search.study import Objective, published_in
from ffnet_nas.search.tables import top_k
from ffnet_nas.search.targets import parse_targets
from ffnet_nas.stats import hypervolume
from tests.search.model_predictors import model_predictors

NUM_CLASSES = 19
SEARCHABLE = tuple(n for n in BUILTIN if n not in PEER_SPACES)  # peers_paper is for measure-latency only


def predictors_for(space, root: Path, workdir: Path | None):
    if workdir is not None:
        from ffnet_nas.predictors.load import load_predictors

        return load_predictors(lut_dir=workdir / "lut", predictor_dir=workdir / "predictor", space=space)
    return model_predictors(root / space.name, space, num_classes=NUM_CLASSES)


def exhaustive_pass(space, preds, targets) -> dict:
    from ffnet_nas.predictors.accuracy import PARAMS_HW, PARAMS_NUM_CLASSES

    caches = (shared_cache(space.input_hw, NUM_CLASSES), shared_cache(PARAMS_HW, PARAMS_NUM_CLASSES))
    builds = sum(c.full_passes + c.part_passes for c in caches)
    objective = Objective(space, preds.latency_ms, preds.miou, targets, caches[0])
    t0 = time.perf_counter()
    tables, why = exact.build(space, objective, targets=targets, published=published_in(space))
    assert tables is not None, why
    t1 = time.perf_counter()
    front = exact.exact_front(tables, targets)
    t2 = time.perf_counter()
    return {"probe": t1 - t0, "score": t2 - t1, "total": t2 - t0, "probes": tables.probes, "front": front,
            "tables": tables, "builds": sum(c.full_passes + c.part_passes for c in caches) - builds}


def _parts_cache():
    from ffnet_nas.predictors.accuracy import PARAMS_HW, PARAMS_NUM_CLASSES

    return shared_cache(PARAMS_HW, PARAMS_NUM_CLASSES)


def _builds() -> int:
    return _parts_cache().full_passes + _parts_cache().part_passes


def worst_feasible(tables, targets) -> tuple[float, float]:
    names = ["latency", "miou"] + sorted({t.metric for t in targets if t.metric in ("params", "macs")})
    worst_lat, worst_acc = -np.inf, np.inf
    for _, v in tables.blocks(names):
        ok = np.ones(len(v["latency"]), bool)
        for t in targets:
            ok &= t.violations(v[t.metric]) <= 0
        if ok.any():
            worst_lat, worst_acc = max(worst_lat, float(v["latency"][ok].max())), min(worst_acc, float(v["miou"][ok].min()))
    return worst_lat, worst_acc


def search(space, preds, targets, *, trials: int, seed: int, exhaustive: bool | None):
    return run_search(space=space, predict_latency_ms=preds.latency_ms, predict_miou=preds.miou, targets=targets,
                      n_trials=trials, seed=seed, storage=None, progress=False, num_classes=NUM_CLASSES,
                      exhaustive=exhaustive)


def hv_share(result, *, ref, exact_hv: float) -> float:
    rows = [x for x in result.extra["rows"] if x["feasible"]]
    return hypervolume([(x["latency_ms"], x["miou"]) for x in rows], reference=ref) / exact_hv


def handoff(result, k: int) -> list[str]:
    """What a run evaluates after its search: `to_evaluate.csv`'s best k feasible points."""
    return [r["code"] for r in top_k(result.extra["rows"], result.pareto.to_dict("records"), k)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spaces", default=",".join(SEARCHABLE))
    ap.add_argument("--seeds", type=int, default=5, help="NSGA-II seeds (0: timings only)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--trials", type=int, default=300, help="NSGA-II trials (the quick budget's: 300)")
    ap.add_argument("--workdir", type=Path, default=None, help="use this run's predictors (for the space it ran on)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-exhaustive-"))
    from ffnet_nas.space.complexity import count_params

    count_params("segmentation_ffnet46NS_CBB_mobile")  # import torch and build one network first: not a space's cost
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; predictors: "
          + (f"{args.workdir}" if args.workdir else "MODELLED (tests/search/model_predictors.py), real formats and loaders"))
    print("parts: building the space's complexity parts on the meta device (count in brackets; once per process, "
          "paid by any search of the space); first: the first exhaustive pass after that (predictor memos empty); "
          "warm: --repeats more passes (tables probed again through the memoised predictors, then scored)")
    print(f"{'space':<13} {'points':>9} {'probes':>6} {'parts s (n)':>13} {'first s':>7} {'warm s (min-max)':>20} {'probe/score warm s':>19} "
          f"{'feasible':>9} {'front':>5}  NSGA-II HV share at {args.trials} trials, {args.seeds} seeds: mean [min, max]")
    for name in args.spaces.split(","):
        space = get_space(name)
        preds = predictors_for(space, root, args.workdir)
        published_ms = {n: preds.latency_ms(a) for n, a in published_in(space).items()}
        targets = parse_targets(default_target(published_ms))
        t0 = time.perf_counter()
        parts_before = _builds()
        for a in probe_archs(space):  # the complexity parts: built once per process, by any search of the space
            _parts_cache().get(a)
        parts_s, parts_n = time.perf_counter() - t0, _builds() - parts_before
        cold = exhaustive_pass(space, preds, targets)
        warm = [exhaustive_pass(space, preds, targets) for _ in range(args.repeats)]
        totals = [w["total"] for w in warm]
        front = cold["front"]
        ref = worst_feasible(cold["tables"], targets)
        exact_hv = hypervolume(np.stack((front.latency, front.miou), axis=1), reference=ref)
        alone = [search(space, preds, targets, trials=args.trials, seed=s, exhaustive=False) for s in range(args.seeds)]
        shares = [hv_share(r, ref=ref, exact_hv=exact_hv) for r in alone]
        print(f"{name:<13} {front.n_points:>9} {cold['probes']:>6} {parts_s:>7.2f} ({parts_n:>3}) {cold['total']:>7.2f} "
              f"{statistics.median(totals):>8.3f} ({min(totals):.3f}-{max(totals):.3f}) "
              f"{statistics.median(w['probe'] for w in warm):>9.3f}/{statistics.median(w['score'] for w in warm):.3f} "
              f"{front.n_feasible:>9} {len(front.index):>5}  "
              + (f"{100 * statistics.mean(shares):.1f}% [{100 * min(shares):.1f}, {100 * max(shares):.1f}]" if shares else "-")
              + f"   target {targets[0].text}", flush=True)
        if alone:  # the hand-off to full evaluation (the quick budget's top 2), seed 0, without and with the pass
            both = search(space, preds, targets, trials=args.trials, seed=0, exhaustive=None)
            a, b = handoff(alone[0], 2), handoff(both, 2)
            print(f"   top 2 handed to evaluation, seed 0: {'the same' if a == b else 'different'} "
                  f"(NSGA-II alone: best predicted {alone[0].best['miou']:.3f} mIoU; with the exact front: "
                  f"{both.best['miou']:.3f}; {len(set(a) & set(b))} of 2 shared); front "
                  f"{len(alone[0].pareto)} -> {len(both.pareto)} points", flush=True)
        if name == "mobile":
            loops = []
            for _ in range(2):  # what the issue timed: every point through the scalar predictors, one by one
                t0 = time.perf_counter()
                for a in space:
                    preds.latency_ms(a), preds.miou(a)
                loops.append(time.perf_counter() - t0)
            print(f"   mobile, plain Python loop over every point with the same predictors: {loops[0]:.2f} s "
                  f"({loops[0] / statistics.median(totals):.0f}x the warm exhaustive pass; complexity parts cached, "
                  f"predictor memos holding only the probes), {loops[1]:.2f} s with every point memoised", flush=True)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; load average "
          f"{os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
