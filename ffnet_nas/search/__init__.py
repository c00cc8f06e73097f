"""Optuna search for Pareto points of an FFNet space (predicted mIoU up, predicted latency down).

    from ffnet_nas.search import run_search
    result = run_search(space="mobile", predict_latency_ms=f, predict_miou=g, targets="latency<25ms",
                        n_trials=2000, num_classes=19, storage="runs/default/search/study.journal")
    result.pareto, result.best, result.published

    targets.py           the target grammar -> Optuna constraints (relative violations)
    storage.py           in-memory / journal file / SQLAlchemy URL
    study.py             study creation and resume, samplers, published seeds, stale trials, the objective
    exhaustive.py        every point scored at once from per-skeleton tables probed through the callables
    exact.py             the exact front of a space, added to the study before NSGA-II runs the rest
    complexity_cache.py  params and MACs per point from cached parts
    pareto.py            dominance, Pareto mask, exact 2-D hypervolume
    tables.py            Pareto / published-dominance / closest / top-K tables, nearest published variant
    api.py               run_search and write_outputs
    summary.py           terminal rendering
    predictors.py        the workdir's latency table and accuracy predictor as callables
"""

from ffnet_nas.search.api import SearchResult, run_search, write_outputs
from ffnet_nas.search.targets import Target, parse_targets

__all__ = ["SearchResult", "Target", "parse_targets", "run_search", "write_outputs"]
