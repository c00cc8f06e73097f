"""The exact front of a space, put in the study as COMPLETE trials (Optuna stays the store of record).

`add_exact_front` scores every point (`exhaustive.Tables`), takes the feasible Pareto front
(predicted mIoU up, predicted latency down, every target met; `ffnet_nas.stats.pareto_mask`, as the
tables use) and adds each front point the study lacks as a COMPLETE trial made with
`optuna.trial.create_trial`; when no point is feasible, the `CLOSEST` points of the whole space with
the smallest total relative violation instead (what `closest.csv` lists). NSGA-II then spends the
rest of `--trials` as before: the study still ends with N complete trials, resumes and shares its
budget between workers as before, and the front it reports can only be the exact one.

Each added trial is scored by the same scalar `Objective.score` as an NSGA-II trial (the vectorised
values only choose the points) and carries the same parameters, distributions, user attributes
(+ `source: exhaustive`) and constraints, so the tables, the dashboard and NSGA-II read it like any
other. The published variants stay enqueued and are scored by NSGA-II's objective, first, as before.
A study user attribute `exhaustive` records the pass; a re-run (or a second worker) that finds it
scores nothing again. Of several workers that start together one claims the pass (`_standing`, a
study user attribute per worker: the earliest live claim holds it) and the others wait for its
front (up to `CLAIM_WAIT_S`) before their NSGA-II trials share the rest of the budget. The holder
reads the claims a second time just before it records, when every claim written at the start is in
the storage however slowly it was written, and the pass, once recorded, is read in the same
snapshot as the claims (its holder records it before releasing the claim): so a worker that probed
slowly and finds the claim released finds the front too. Only a claim that takes longer to write
than the holder takes to score can still let two workers add the front; its rows are then read
once per code (`tables.trial_rows`).

Memory: only the running front, and the `CLOSEST` least-violating infeasible points, are kept
between blocks of `CHUNK_POINTS` points.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ffnet_nas.search import exhaustive as ex
from ffnet_nas.search.targets import Target
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.searchspace import SearchSpace
from ffnet_nas.stats import pareto_mask

logger = logging.getLogger(__name__)

CLOSEST = 5  # as many as `tables.closest_rows` lists
CLAIM_KEY = "exhaustive_claim:"  # + worker: the study user attribute by which one worker takes the pass
CLAIM_STALE_S = 600.0  # a claim this old is a worker that died elsewhere: another may take the pass
CLAIM_SETTLE_S = 0.5  # between writing a claim and reading the others: claims written together both count
CLAIM_WAIT_S = 120.0  # how long another worker waits for the holder's front before NSGA-II goes on alone


@dataclass(frozen=True)
class Front:
    """The exact feasible front (flat indices, fastest first) and, when it is empty, the closest points."""

    index: np.ndarray
    latency: np.ndarray
    miou: np.ndarray
    closest_index: np.ndarray  # the least-violating infeasible points, smallest total violation first
    n_points: int
    n_feasible: int
    seconds: dict[str, float] = field(default_factory=dict)


def exact_front(tables: ex.Tables, targets: Sequence[Target]) -> Front:
    """Every point of `tables.space`, block by block, reduced to the running front as it goes."""
    t0 = time.perf_counter()
    names = ["latency", "miou"] + sorted({t.metric for t in targets if t.metric in ("params", "macs")})
    f_i, f_l, f_m = np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    c_i, c_v, c_m = np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    n = n_feasible = 0
    for start, values in tables.blocks(names):
        size = len(values["latency"])
        n += size
        flat = np.arange(start, start + size, dtype=np.int64)
        lat, acc = values["latency"], values["miou"]
        total = np.zeros(size)
        feasible = np.isfinite(lat) & np.isfinite(acc)
        for t in targets:
            v = t.violations(values[t.metric])
            feasible &= v <= 0
            total += np.maximum(v, 0.0)
        n_feasible += int(feasible.sum())
        i, l, m = np.concatenate((f_i, flat[feasible])), np.concatenate((f_l, lat[feasible])), np.concatenate((f_m, acc[feasible]))
        on = pareto_mask(np.stack((l, m), axis=1))
        f_i, f_l, f_m = i[on], l[on], m[on]
        if not n_feasible:  # the closest points matter only while nothing is feasible
            out = ~feasible & np.isfinite(total) & np.isfinite(acc)
            i, v, m = np.concatenate((c_i, flat[out])), np.concatenate((c_v, total[out])), np.concatenate((c_m, acc[out]))
            keep = np.lexsort((i, -m, v))[:CLOSEST]  # as `tables.closest_rows` orders them
            c_i, c_v, c_m = i[keep], v[keep], m[keep]
    order = np.lexsort((f_i, -f_m, f_l))
    return Front(index=f_i[order], latency=f_l[order], miou=f_m[order],
                 closest_index=c_i if not n_feasible else np.zeros(0, np.int64), n_points=n, n_feasible=n_feasible,
                 seconds={"score": time.perf_counter() - t0})


def build(space: SearchSpace, objective, *, targets: Sequence[Target], published: dict[str, Arch]) -> tuple[ex.Tables | None, str | None]:
    """Tables probed through the objective's callables, checked; (None, why) when they cannot reproduce them."""
    from ffnet_nas.predictors.accuracy import PARAMS_HW, PARAMS_NUM_CLASSES
    from ffnet_nas.space.complexity_cache import shared_cache

    predictor_cache = shared_cache(PARAMS_HW, PARAMS_NUM_CLASSES)
    quantities: dict[str, Any] = {"latency": objective.predict_latency_ms, "miou": objective.predict_miou}
    if any(t.metric == "params" for t in targets):
        quantities["params"] = lambda a: objective.cache.get(a)[0]
    if any(t.metric == "macs" for t in targets):
        quantities["macs"] = lambda a: objective.cache.get(a)[1]
    try:
        tables = ex.build_tables(space, quantities, params_at_predictor_size=lambda a: predictor_cache.get(a)[0],
                                 nonlinear=("latency", "miou"))
    except InvalidInput as e:  # e.g. a block the library lacks: NSGA-II meets it only if it samples that point
        return None, f"a probe failed: {e}"
    why = tables.check(quantities, ex.check_points(space, list(published.values())))
    return (tables, None) if why is None else (None, why)


def frozen_trial(space: SearchSpace, arch: Arch, objective, *, worker: str, published: str | None = None):
    """A COMPLETE trial for `arch`, as `Objective.__call__` would have left it; None for a non-finite score."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    values = objective.score(arch)
    if not (np.isfinite(values["miou"]) and np.isfinite(values["latency"])):
        return None
    attrs = {"worker": worker, "source": "exhaustive", **{k: values[k] for k in ("code", "params", "macs") if k in values}}
    if published:
        attrs["published"] = published
    dists = {name: CategoricalDistribution(choices) for name, choices in space.distributions().items()}
    return optuna.trial.create_trial(params=space.encode(arch), distributions=dists, values=[values["miou"], values["latency"]],
                                     user_attrs=attrs, constraints={t.text: v for t, v in zip(objective.targets, values.get("violations", ()))})


def add_exact_front(study, objective, *, published: dict[str, Arch], worker: str,
                    strict: bool = False) -> dict[str, Any] | None:
    """Add the exact front (module docstring) to `study`; the figures of the pass, or None when the
    callables do not have the tables' form (the caller's NSGA-II then searches alone; `strict` raises).

    Every worker probes (so each worker's predictors are checked, and a worker's first predictor call
    comes as early as under NSGA-II); then one claims the recording and the others wait for it."""
    done = study.user_attrs.get("exhaustive")
    if isinstance(done, dict) and "front" in done:
        logger.info("exhaustive search: the exact front (%d points of %d) is in the study already", done["front"],
                    done["points"])
        return {**done, "added_now": 0, "skipped": True}
    t0 = time.perf_counter()
    tables, why = build(objective.space, objective, targets=objective.targets, published=published)
    if tables is None:
        if strict:
            raise InvalidInput(f"the predictors do not have the form the exhaustive search scores ({why}); "
                               "expected latency and mIoU predictors as in ffnet_nas.predictors, or exhaustive=None")
        logger.info("exhaustive search not possible (%s): NSGA-II searches alone", why)
        return None
    probe_s = time.perf_counter() - t0
    me = f"{worker}:{uuid.uuid4().hex[:8]}"
    study.set_user_attr(CLAIM_KEY + me, time.time())
    try:
        time.sleep(CLAIM_SETTLE_S)  # a claim written at the same moment by another worker lands meanwhile
        done, holder = _standing(study, me)
        front = None
        if done is None and holder is None:
            front = exact_front(tables, objective.targets)
            done, holder = _standing(study, me)  # again: every claim made at the start is readable now
        if done is not None:
            return done
        if holder is not None:
            study.set_user_attr(CLAIM_KEY + me, None)
            waited = _wait_for(study, holder)
            if waited is not None:
                return waited
            # the holder gave up without a front: add what is missing
        if front is None:
            front = exact_front(tables, objective.targets)
        return _add(study, objective, tables, front, probe_s=probe_s, published=published, worker=worker)
    finally:
        study.set_user_attr(CLAIM_KEY + me, None)  # released (Optuna cannot delete an attribute)


def _standing(study, me: str) -> tuple[dict[str, Any] | None, str | None]:
    """From one read of the study's attributes: (the recorded pass, None) when it is there, else
    (None, the worker holding the claim, or None when it is `me`).

    The earliest live claim holds the pass (ties by name). A claim is dead once released (None),
    older than CLAIM_STALE_S, or made by a dead process on this host. Because the holder records the
    pass before it releases its claim, a read that finds the claim released finds the pass."""
    import socket

    from ffnet_nas.search.study import _alive

    attrs = study.user_attrs
    if isinstance(attrs.get("exhaustive"), dict) and "front" in attrs["exhaustive"]:
        return {**attrs["exhaustive"], "added_now": 0, "skipped": True}, None
    now = time.time()
    live = {}
    for key, when in attrs.items():
        if not key.startswith(CLAIM_KEY) or not isinstance(when, (int, float)):
            continue
        who = key[len(CLAIM_KEY):]
        host, _, pid = who.rsplit(":", 1)[0].rpartition(":")
        dead = host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))
        if who == me or (now - when < CLAIM_STALE_S and not dead):
            live[who] = when
    if me not in live:  # our own write is not readable yet: count it as made now
        live[me] = now
    winner = min(live, key=lambda w: (live[w], w))
    return None, (None if winner == me else winner)


def _wait_for(study, holder: str) -> dict[str, Any] | None:
    """Wait (up to CLAIM_WAIT_S) for the worker holding the pass, so that its front counts toward the
    budget this worker's NSGA-II trials share; None when it released the claim without one, or too late."""
    logger.info("exhaustive search: worker %s is adding the exact front; waiting for it", holder)
    deadline = time.monotonic() + CLAIM_WAIT_S
    while time.monotonic() < deadline:
        attrs = study.user_attrs
        if isinstance(attrs.get("exhaustive"), dict):
            return {**attrs["exhaustive"], "added_now": 0, "skipped": True, "claimed_by": holder}
        if not isinstance(attrs.get(CLAIM_KEY + holder), (int, float)):  # released without a front
            return None
        time.sleep(0.2)
    return None


def _add(study, objective, tables: ex.Tables, front: Front, *, probe_s: float, published: dict[str, Arch],
         worker: str) -> dict[str, Any]:
    from optuna.trial import TrialState

    space = objective.space
    t1 = time.perf_counter()
    have = {t.user_attrs.get("code") for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    have |= {a.code for a in published.values()}  # enqueued: NSGA-II's objective scores them first
    trials = []
    for flat in (front.index if len(front.index) else front.closest_index):
        arch = tables.arch_at(int(flat))
        if arch.code not in have and (trial := frozen_trial(space, arch, objective, worker=worker)):
            trials.append(trial)
            have.add(arch.code)
    study.add_trials(trials)
    figures = {"points": front.n_points, "feasible": front.n_feasible, "front": len(front.index),
               "closest": len(front.closest_index), "probes": tables.probes, "added": len(trials)}
    study.set_user_attr("exhaustive", figures)
    seconds = {"probe": probe_s, **front.seconds, "record": time.perf_counter() - t1}
    logger.info("exhaustive search: %d points scored (%d probed), %d feasible, exact front %d points; %d trials "
                "added (%.2f s probing, %.2f s scoring, %.2f s recording)", front.n_points, tables.probes,
                front.n_feasible, len(front.index), len(trials), seconds["probe"], seconds["score"], seconds["record"])
    return {**figures, "added_now": len(trials), "seconds": seconds, "skipped": False,
            "front_codes": [tables.arch_at(int(i)).code for i in front.index]}
