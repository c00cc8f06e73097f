"""`run_search(...)`: the notebook-friendly entry point; the CLI is a thin layer over it.

The objectives are plain callables `Arch -> float` (predicted latency in ms, predicted mIoU in %),
so anything can drive the search: the LUT predictor and the fitted accuracy predictor in the CLI,
stand-ins in tests and benchmarks.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ffnet_nas.search import exact
from ffnet_nas.search import study as st
from ffnet_nas.search.exhaustive import EXHAUSTIVE_MAX_POINTS, MAX_PROBES, count_probes
from ffnet_nas.search import tables
from ffnet_nas.space.complexity_cache import ComplexityCache, shared_cache
from ffnet_nas.search.targets import Target, parse_targets
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.searchspace import SearchSpace, get_space


@dataclass(frozen=True)
class SearchResult:
    study_name: str
    storage: str
    space: str
    targets: tuple[Target, ...]
    n_complete: int  # COMPLETE trials in the study (all workers)
    n_run: int  # completed by this call
    own_ms_per_trial: float  # our objective's time per trial (predictors included), this call
    pareto: Any  # DataFrame: the front of the feasible points, fastest first
    published: Any  # DataFrame: published variants of the space, predicted, and how the front beats them
    closest: Any  # DataFrame: when nothing is feasible, the points nearest to meeting the targets
    best: dict[str, Any] | None  # highest predicted mIoU among feasible points
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return self.best is not None


def default_study_name(space: SearchSpace, targets: tuple[Target, ...]) -> str:
    ops = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
    slug = "_".join(f"{t.metric}_{ops[t.op]}_{t.bound:g}" for t in targets) or "front"
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{space.name}.{slug}")


def predictor_study_name(space: SearchSpace, targets: tuple[Target, ...], objective_id: str) -> str:
    """One study per (space, targets, predictors): refitted predictors start a new study, the same
    ones resume theirs (the journal holds them all)."""
    return f"{default_study_name(space, targets)}.{hashlib.sha1(objective_id.encode()).hexdigest()[:8]}"


@contextlib.contextmanager
def _quiet_optuna():
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per trial would drown the bar
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


def run_search(
    *,
    space: "str | SearchSpace",
    predict_latency_ms: Callable[[Arch], float],
    predict_miou: Callable[[Arch], float],
    targets: "str | tuple[Target, ...] | None" = None,
    n_trials: int = 500,
    sampler: str = "nsga2",
    storage: "str | Path | None" = None,
    study_name: str | None = None,
    seed: int | None = None,
    objective_id: str | None = None,
    num_classes: int,  # the head's (the teacher's): params and MACs of a point depend on it
    progress: bool = True,
    durable: bool = False,
    complexity_cache: ComplexityCache | None = None,
    exhaustive: bool | None = None,
    sole_writer: bool = False,
) -> SearchResult:
    """Search `space` until the study holds `n_trials` COMPLETE trials; return its front.

    storage: None (in memory), a journal file path, or a SQLAlchemy URL; `durable` fsyncs every
    journal write (see `ffnet_nas.search.storage`). `objective_id` names the
    predictors; a stored study made with other predictors or targets is refused, not mixed.

    exhaustive: None (default) first scores every point and puts the exact front in the study
    (`ffnet_nas.search.exact`) when the sampler is NSGA-II, the space has at most
    `EXHAUSTIVE_MAX_POINTS` points and the predictors have the form the tables reproduce (checked
    on random points); NSGA-II then runs the rest of the `n_trials`. False: the sampler alone; True
    insists (an error when the space, sampler or predictors do not allow it).
    sole_writer: no other process can write this study (see `study.fail_stale_trials`).
    """
    space = get_space(space)
    targets = parse_targets(targets) if targets is None or isinstance(targets, str) else tuple(targets)
    if not isinstance(n_trials, int) or n_trials < 1:
        raise InvalidInput(f"n_trials={n_trials!r}: expected a positive integer")
    study_name = study_name or default_study_name(space, targets)
    cache = complexity_cache or shared_cache(space.input_hw, num_classes)
    with _quiet_optuna():
        storage_obj = st.open_storage(storage, durable=durable)
        sampler_obj = st.make_sampler(sampler, seed=seed)
        study = st.open_study(storage=storage_obj, study_name=study_name, sampler=sampler_obj,
                              ident=st.identity(space, targets, objective_id))
        stale = st.fail_stale_trials(study, sole_writer=sole_writer)
        objective = st.Objective(space, predict_latency_ms, predict_miou, targets, cache)
        t0 = time.perf_counter()
        st.enqueue_published(study, space)
        exact_pass = None
        if exhaustive is not False and _exhaustive_fits(space, sampler, strict=exhaustive is True):
            exact_pass = exact.add_exact_front(study, objective, published=st.published_in(space), worker=st.WORKER,
                                               strict=exhaustive is True)
        exact_seconds = time.perf_counter() - t0
        ran = st.run_trials(study, objective, n_trials=n_trials, progress=progress)
        ran += exact_pass["added_now"] if exact_pass else 0
        search_seconds = time.perf_counter() - t0
        trials = study.get_trials(deepcopy=False, states=(_complete(),))
    t0 = time.perf_counter()
    result = summarise(space=space, trials=trials, targets=targets, objective=objective, cache=cache)
    rows = result.pop("extra_rows")
    return SearchResult(study_name=study_name, storage=st.redact(str(storage)) if storage else "memory",
                        space=space.name, targets=targets, n_complete=len(trials), n_run=ran,
                        own_ms_per_trial=1e3 * objective.own_seconds / max(1, objective.calls),
                        extra={"stale_trials_failed": stale, "complexity_full_passes": cache.full_passes,
                               "mode": sampler if exact_pass is None else "exhaustive+" + sampler,
                               "exhaustive": exact_pass, "exhaustive_seconds": exact_seconds,
                               "search_seconds": search_seconds, "tables_seconds": time.perf_counter() - t0,
                               "own_ms_median": 1e3 * objective.median_seconds(),
                               "rows": rows, "complexity": cache.get}, **result)


def _exhaustive_fits(space: SearchSpace, sampler: str, *, strict: bool) -> bool:
    """Whether to try the exhaustive search: NSGA-II asked (another sampler is the user's choice) and a
    space small enough to score whole, in few enough probes."""
    fits = sampler == "nsga2" and space.size <= EXHAUSTIVE_MAX_POINTS and count_probes(space) <= MAX_PROBES
    if strict and not fits:
        raise InvalidInput(f"exhaustive search of space {space.name!r} ({space.size} points, {count_probes(space)} "
                           f"probes, sampler {sampler}): expected sampler nsga2, at most {EXHAUSTIVE_MAX_POINTS} points "
                           f"and {MAX_PROBES} probes")
    return fits


def _complete():
    from optuna.trial import TrialState

    return TrialState.COMPLETE


def summarise(*, space: SearchSpace, trials, targets: tuple[Target, ...], objective: st.Objective,
              cache: ComplexityCache) -> dict[str, Any]:
    import pandas as pd

    rows = tables.trial_rows(trials)
    front = tables.pareto_rows(rows)
    tables.fill_complexity(front, cache.get)
    published = {}
    for name, arch in st.published_in(space).items():
        published[name] = {"arch": arch, **objective.score(arch)}
        published[name]["latency_ms"] = published[name].pop("latency")
    tables.annotate_front(space, front, published)
    closest = [] if front else tables.closest_rows(rows)
    tables.fill_complexity(closest, cache.get)
    return {
        "pareto": _frame(front, ["code", "latency_ms", "miou", "params", "macs", "nearest_published",
                                 "nearest_distance", "dominates", "published", "trial"]),
        # with its columns even when no published variant is a point of the space (a header-only table)
        "published": pd.DataFrame(tables.published_rows(front, published, targets), columns=list(tables.PUBLISHED_COLUMNS)),
        "closest": _frame(closest, ["code", "latency_ms", "miou", "params", "macs", "violation", "trial"]),
        "best": tables.best_row(front),
        "extra_rows": rows,
    }


def _frame(rows: list[dict[str, Any]], columns: list[str]):
    import pandas as pd

    return pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)


def write_outputs(result: SearchResult, out_dir: "str | Path", *, evaluate_top: int = 0,
                  latest_dir: "str | Path | None" = None, to_evaluate: Any = None,
                  **provenance_extra: Any) -> dict[str, Path]:
    """Write the tables (atomically) into `out_dir`; returns name -> path.

    pareto.csv, published.csv, summary.json always; closest.csv when no point met the targets;
    to_evaluate.csv (the best `evaluate_top` feasible points, or the `to_evaluate` DataFrame given:
    a re-ranked list) when asked. With `latest_dir`, the
    Pareto table (and to_evaluate.csv) are also written there as the latest search's: that is
    where `ffnet-nas evaluate --from-search` looks.
    """
    import pandas as pd

    from ffnet_nas.space.io import atomic_write_csv, atomic_write_json, atomic_write_text, provenance

    out_dir = Path(out_dir)
    paths = {"pareto": atomic_write_csv(out_dir / "pareto.csv", result.pareto),
             "published": atomic_write_csv(out_dir / "published.csv", result.published)}
    if not result.feasible:
        paths["closest"] = atomic_write_csv(out_dir / "closest.csv", result.closest)
    if evaluate_top and to_evaluate is not None:
        paths["to_evaluate"] = atomic_write_csv(out_dir / "to_evaluate.csv", to_evaluate.head(evaluate_top))
    elif evaluate_top:
        front = result.pareto.to_dict("records")
        picked = tables.top_k(result.extra["rows"], front, evaluate_top)
        tables.fill_complexity(picked, result.extra["complexity"])
        frame = pd.DataFrame([{"rank": i + 1, **{c: r.get(c) for c in ("code", "latency_ms", "miou", "params", "macs", "trial")}}
                              for i, r in enumerate(picked)], columns=["rank", "code", "latency_ms", "miou", "params", "macs", "trial"])
        paths["to_evaluate"] = atomic_write_csv(out_dir / "to_evaluate.csv", frame)
    if latest_dir is not None:
        latest_dir = Path(latest_dir)
        paths["latest_pareto"] = atomic_write_csv(latest_dir / "pareto.csv", result.pareto)
        stale = latest_dir / "to_evaluate.csv"
        if "to_evaluate" in paths:
            paths["latest_to_evaluate"] = atomic_write_text(stale, paths["to_evaluate"].read_text())
        elif stale.exists():
            stale.unlink()  # an older search's list must not be evaluated as this one's
    summary = {
        "study": result.study_name, "storage": result.storage, "space": result.space,
        "targets": [t.text for t in result.targets], "complete_trials": result.n_complete,
        "trials_this_run": result.n_run, "own_ms_per_trial": result.own_ms_per_trial,
        "pareto_points": len(result.pareto), "best": result.best,
        "provenance": provenance(**provenance_extra),
    }
    paths["summary"] = atomic_write_json(out_dir / "summary.json", summary)
    return paths
