"""The Optuna study: storage, creation/resume, samplers, constraints, published seeds, trials.

Objectives are (predicted mIoU, predicted latency ms), directions (maximize, minimize). Each
trial records `code` and, when computed, `params`/`macs` as user attributes, and one Optuna
constraint per target (`trial.set_constraint(target, relative violation)`, <= 0 = met), so the
samplers, the dashboard and a re-run all read them from the study.

Resume and several workers:
* `--trials N` is the number of COMPLETE trials the study should reach; a re-run after a kill
  runs only what is missing. Several workers on one study share that budget: each stops once
  the study holds N complete trials, so the total can exceed N by at most (workers - 1).
* Every trial records the worker (`host:pid`) that runs it. On start, RUNNING trials left by a
  dead process on this host are marked FAIL (they never count; nothing is lost because their
  objective never returned). RDB storages also get Optuna's heartbeat, which fails stale trials
  of workers on other machines.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ffnet_nas.space.complexity_cache import ComplexityCache
from ffnet_nas.search.storage import open_storage, redact  # noqa: F401  (re-exported)
from ffnet_nas.search.targets import Target, canonical, violations
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.errors import InvalidInput, closest
from ffnet_nas.space.searchspace import SearchSpace

SAMPLERS = ("nsga2", "tpe", "random")
DIRECTIONS = ("maximize", "minimize")
METRIC_NAMES = ("miou", "latency_ms")
WORKER = f"{socket.gethostname()}:{os.getpid()}"
# A trial whose objective has not even recorded its worker after this long is abandoned.
_UNCLAIMED_GRACE_S = 120.0


def make_sampler(name: str, *, seed: int | None):
    """Constraints reach NSGA-II and TPE through `trial.set_constraint` (Optuna 5 reads them from
    the trial; the old `constraints_func` argument is deprecated there)."""
    import optuna

    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise InvalidInput(f"unknown sampler {name!r}: expected one of {', '.join(SAMPLERS)}{closest(name, SAMPLERS)}")


@dataclass(frozen=True)
class StudyIdentity:
    """What a study's numbers mean; a resumed study must match, or its trials would mislead."""

    space: str
    targets: str
    objective_id: str | None

    def attrs(self) -> dict[str, Any]:
        return {"space": self.space, "targets": self.targets, "objective_id": self.objective_id}


def identity(space: SearchSpace, targets: tuple[Target, ...], objective_id: str | None) -> StudyIdentity:
    import json

    return StudyIdentity(space=json.dumps(space.to_dict(), sort_keys=True), targets=canonical(targets),
                         objective_id=objective_id)


def open_study(*, storage, study_name: str, sampler, ident: StudyIdentity):
    """Create the study, or load it and check that it was made for the same space/targets/predictors."""
    import optuna

    try:
        study = optuna.create_study(storage=storage, study_name=study_name, sampler=sampler,
                                    directions=list(DIRECTIONS), load_if_exists=False)
        study.set_metric_names(list(METRIC_NAMES))
        for k, v in ident.attrs().items():
            study.set_user_attr(k, v)
        return study
    except optuna.exceptions.DuplicatedStudyError:
        pass
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    if [d.name.lower() for d in study.directions] != list(DIRECTIONS):
        raise InvalidInput(f"study {study_name!r} exists with other objectives ({study.directions}); "
                           "expected one made by ffnet-nas search: use another --study name")
    attrs = study.user_attrs
    deadline = time.monotonic() + 5.0
    while any(k not in attrs for k in ident.attrs()) and time.monotonic() < deadline:
        time.sleep(0.1)  # another worker just created it and is still writing its identity
        attrs = study.user_attrs
    for key, want in ident.attrs().items():
        if key not in attrs:
            study.set_user_attr(key, want)  # its creator died before recording it
        elif attrs[key] != want:
            what = {"space": "a different search space", "targets": f"targets {attrs[key]!r}",
                    "objective_id": f"other predictors ({attrs[key]})"}[key]
            raise InvalidInput(f"study {study_name!r} was made for {what}, not this run's; expected the same "
                               "--space/--target/predictors to resume it, or a new --study name")
    return study


def published_in(space: SearchSpace) -> dict[str, Arch]:
    """Published segmentation variants that are points of `space`, one name per distinct arch."""
    from ffnet_nas.space.catalogue import variants

    out: dict[str, Arch] = {}
    seen: set[Arch] = set()
    for v in variants(task="segmentation"):
        if v.arch in space and v.arch not in seen:
            seen.add(v.arch)
            out[v.name] = v.arch
    return out


def enqueue_published(study, space: SearchSpace) -> int:
    """Enqueue every published variant once per study (skipped when already there)."""
    if study.user_attrs.get("published_enqueued"):
        return 0
    published = published_in(space)
    for name, arch in published.items():
        study.enqueue_trial(space.encode(arch), user_attrs={"published": name}, skip_if_exists=True)
    study.set_user_attr("published_enqueued", True)
    return len(published)


def fail_stale_trials(study, *, sole_writer: bool = False) -> int:
    """Mark FAIL the RUNNING trials whose worker on this host is gone (or that never claimed a worker).

    A trial is RUNNING from Optuna's `ask` on, but records its worker only when the objective starts,
    after the sampler has chosen its parameters (NSGA-II reads every trial to do so): a kill in
    between leaves a trial nobody claimed, which another worker may still be about to claim, so it
    counts as abandoned only after `_UNCLAIMED_GRACE_S`. `sole_writer`: no other worker can be
    writing this study (`run` holds its workdir's lock exclusively), so every unclaimed one is."""
    import datetime as dt

    from optuna.trial import TrialState

    host = socket.gethostname()
    now = dt.datetime.now()
    failed = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if worker is None:
            start = t.datetime_start or now
            stale = sole_writer or (now - start).total_seconds() > _UNCLAIMED_GRACE_S
        else:
            w_host, _, pid = worker.rpartition(":")
            stale = w_host == host and pid.isdigit() and not _alive(int(pid))
        if stale:
            try:  # public API: `tell` by trial number; one another worker finished meanwhile is left as it is
                told = study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                failed += told.state == TrialState.FAIL
            except Exception:  # another worker finished or failed it between the check and the write
                pass
    return failed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Objective:
    """Scores one trial: decode the fixed-length parameters, predict, record constraints."""

    space: SearchSpace
    predict_latency_ms: Callable[[Arch], float]
    predict_miou: Callable[[Arch], float]
    targets: tuple[Target, ...]
    cache: ComplexityCache
    own_seconds: float = 0.0  # time spent in our code, predictors included (not Optuna's)
    calls: int = 0
    samples: list = field(default_factory=list, repr=False)  # per-call seconds (for a robust median)
    _distributions: dict[str, tuple] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._distributions = self.space.distributions()
        self._needs_complexity = any(t.metric in ("params", "macs") for t in self.targets)

    def __call__(self, trial) -> tuple[float, float]:
        trial.set_user_attr("worker", WORKER)
        params = {name: trial.suggest_categorical(name, choices) for name, choices in self._distributions.items()}
        t0 = time.perf_counter()
        values = self.score(self.space.decode(params))
        spent = time.perf_counter() - t0
        self.own_seconds += spent
        self.calls += 1
        self.samples.append(spent)
        for key in ("code", "params", "macs"):
            if key in values:
                trial.set_user_attr(key, values[key])
        for target, violation in zip(self.targets, values.get("violations", ())):
            trial.set_constraint(target.text, violation)
        return values["miou"], values["latency"]

    def median_seconds(self) -> float:
        return float(sorted(self.samples)[len(self.samples) // 2]) if self.samples else 0.0

    def score(self, arch: Arch) -> dict[str, Any]:
        values: dict[str, Any] = {"code": arch.code, "miou": float(self.predict_miou(arch)),
                                  "latency": float(self.predict_latency_ms(arch))}
        if self._needs_complexity:
            values["params"], values["macs"] = self.cache.get(arch)
        if self.targets:
            values["violations"] = violations(self.targets, values)
        return values


def count_complete(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def run_trials(study, objective: Objective, *, n_trials: int, progress: bool = True) -> int:
    """Run until the study holds `n_trials` COMPLETE trials; returns how many this call completed."""
    import optuna
    from optuna.trial import TrialState
    from tqdm.auto import tqdm

    done = count_complete(study)
    if done >= n_trials:
        return 0
    bar = tqdm(total=n_trials, initial=done, unit="trial", desc=f"search {study.study_name}", disable=not progress,
               dynamic_ncols=True)
    ran = 0

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal ran
        if trial.state == TrialState.COMPLETE:
            ran += 1
        total = count_complete(study)
        bar.update(max(0, total - bar.n))
        if total >= n_trials:
            study.stop()

    try:
        # Failed trials (a NaN prediction) do not count: go round again for what is missing, but
        # never forever — a pass that completes nothing means the objective is broken.
        while count_complete(study) < n_trials:
            before = ran
            study.optimize(objective, n_trials=n_trials - count_complete(study), callbacks=[after_trial],
                           gc_after_trial=False)
            if ran == before:
                raise InvalidInput(f"study {study.study_name!r}: no trial completed in the last pass "
                                   "(the predictors returned NaN or failed); expected finite predictions")
    finally:
        bar.close()
    return ran
