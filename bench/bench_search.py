"""Search throughput and front quality, with STAND-IN objectives (tests/helpers/search_standins.py).

    .venv/bin/python -m bench.bench_search [--space mobile] [--trials 10000] [--side-trials 500]

The objectives here are cheap deterministic stand-ins, NOT predictions: these figures measure the
search machinery (Optuna + our objective + storage), not any model's accuracy or latency.

1. Side by side, same space/sampler/seed, --side-trials each: in-memory storage, the default
   journal (flushed, not fsynced) and the durable journal (Optuna's fsync per write); trials/s
   and their ratios, and our own time per trial (decode + stand-ins + cached complexity).
2. --trials trials (default 10,000) with the default journal and NSGA-II: trials/s, our own
   per-trial time, and how the wall time splits (ours vs Optuna's sampler + storage).
3. Front quality: hypervolume of the trials' front after N trials, as a share of the
   hypervolume of a reference front — every point of the space when it has <= 200,000 points
   (exact), else 100,000 random points — with the reference point fixed at the reference set's
   worst latency and worst mIoU. Also the number of trials to reach 99%, and random sampling
   at the same N for comparison.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ffnet_nas.search.api import run_search
from ffnet_nas.search.storage import open_storage
from ffnet_nas.space.searchspace import get_space
from ffnet_nas.stats import hypervolume, hypervolume_curve, pareto_mask
from tests.helpers.search_standins import standin_latency_ms, standin_miou


BENCH_NUM_CLASSES = 19  # params/MACs of a Cityscapes head, the paper's (the stand-in objectives ignore it)


def timed_search(space, *, storage, durable=False, n, sampler="nsga2", targets=None, seed=0, progress=False):
    t0 = time.perf_counter()
    r = run_search(space=space, predict_latency_ms=standin_latency_ms, predict_miou=standin_miou, targets=targets,
                   n_trials=n, sampler=sampler, storage=storage, study_name="bench", seed=seed,
                   progress=progress, durable=durable, num_classes=BENCH_NUM_CLASSES)
    return r, time.perf_counter() - t0


def trial_values(storage, name="bench") -> np.ndarray:
    import optuna
    from optuna.trial import TrialState

    trials = optuna.load_study(study_name=name, storage=open_storage(storage)).get_trials(
        deepcopy=False, states=(TrialState.COMPLETE,))
    return np.array([(t.values[1], t.values[0]) for t in sorted(trials, key=lambda t: t.number)])


def reference_set(space, *, n_random: int = 100_000, seed: int = 0) -> tuple[np.ndarray, str]:
    arches = list(space) if space.size <= 200_000 else space.sample_many(n_random, seed=seed)
    what = f"all {space.size} points" if space.size <= 200_000 else f"{len(arches)} random points"
    return np.array([(standin_latency_ms(a), standin_miou(a)) for a in arches]), what


def hv_curve(values: np.ndarray, ref_point, checkpoints) -> dict[int, float]:
    curve = hypervolume_curve(values, reference=ref_point)
    return {n: float(curve[n - 1]) for n in checkpoints if n <= len(values)}


def trials_to_reach(values: np.ndarray, ref_point, target_hv: float) -> int | None:
    # the curve never decreases: the first prefix at or above the target
    curve = hypervolume_curve(values, reference=ref_point)
    reached = np.flatnonzero(curve >= target_hv)
    return int(reached[0]) + 1 if len(reached) else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="mobile")
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--side-trials", type=int, default=500)
    ap.add_argument("--target", default="latency<8ms", help="constraint used in part 1 and 2 (exercises constraints)")
    args = ap.parse_args()
    space = get_space(args.space)
    tmp = Path(tempfile.mkdtemp(prefix="bench-search-"))
    print(f"STAND-IN objectives (not predictions); space {space.name} ({space.size} points), NSGA-II, target {args.target}")

    # 1. storages side by side
    print(f"\n1. storage, {args.side_trials} trials each, same seed:")
    timed_search(space, storage=None, n=60, targets=args.target)  # warm-up: imports, complexity parts
    rates = {}
    for label, storage, durable in (("in-memory", None, False), ("journal (default)", tmp / "a.journal", False),
                                    ("journal --durable (fsync)", tmp / "b.journal", True)):
        r, wall = timed_search(space, storage=storage, durable=durable, n=args.side_trials, targets=args.target)
        rates[label] = r.n_run / r.extra["search_seconds"]
        print(f"   {label:<27} {rates[label]:8.1f} trials/s   own median {r.extra['own_ms_median']:.3f} ms/trial "
              f"(mean {r.own_ms_per_trial:.3f})")
    base = rates["journal (default)"]
    print("   ratios to the default journal: " + ", ".join(f"{k} {v / base:.2f}x" for k, v in rates.items()))

    # 2. the long run with the default storage (unconstrained: its trials also give the front curve)
    journal = tmp / "long.journal"
    print(f"\n2. {args.trials} trials, default journal, NSGA-II, no target:")
    r, wall = timed_search(space, storage=journal, n=args.trials, progress=True)
    own_s = r.own_ms_per_trial * r.n_run / 1e3
    search_s = r.extra["search_seconds"]
    print(f"   {r.n_run / search_s:.1f} trials/s over {search_s:.1f} s (+{r.extra['tables_seconds']:.1f} s for the final "
          f"tables); our objective: median {r.extra['own_ms_median']:.4f} ms/trial, mean {r.own_ms_per_trial:.4f} "
          f"({100 * own_s / search_s:.2f}% of the search time); the rest is Optuna (NSGA-II sampling, trial "
          "bookkeeping, journal reads/writes)")

    # 3. front quality
    ref_values, what = reference_set(space)
    ref_point = (float(ref_values[:, 0].max()), float(ref_values[:, 1].min()))
    ref_hv = hypervolume(ref_values, reference=ref_point)
    values = trial_values(journal)
    checkpoints = [n for n in (50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000) if n <= len(values)]
    curve = hv_curve(values, ref_point, checkpoints)
    print(f"\n3. hypervolume share of the reference front ({what}; reference point = worst latency, worst mIoU):")
    print("   NSGA-II: " + ", ".join(f"{n}: {100 * hv / ref_hv:.2f}%" for n, hv in curve.items()))
    if space.size <= 200_000:  # the exact front is known: how much of it was found
        exact = {tuple(v) for v in ref_values[pareto_mask(ref_values)]}
        for n in checkpoints:
            found = {tuple(v) for v in values[:n]} & exact
            curve_text = f"{n}: {len(found)}/{len(exact)}"
            print(f"   exact front points (by objective values) found after {curve_text}")
    n99 = trials_to_reach(values, ref_point, 0.99 * ref_hv)
    print(f"   trials to reach 99%: {n99 if n99 is not None else f'not reached in {len(values)}'}")
    n_rand = min(2000, args.trials)
    timed_search(space, storage=tmp / "rand.journal", n=n_rand, sampler="random")
    rand_values = trial_values(tmp / "rand.journal")
    print(f"   random sampling at {n_rand} trials: {100 * hypervolume(rand_values, reference=ref_point) / ref_hv:.2f}% "
          f"(NSGA-II at {n_rand}: {100 * hv_curve(values, ref_point, [n_rand]).get(n_rand, float('nan')) / ref_hv:.2f}%)")
    print(f"\n(journals left in {tmp}; inspect with: optuna-dashboard {journal})")


if __name__ == "__main__":
    main()
