"""The exhaustive search: tables probed through the real predictors (modelled numbers, real formats and
loaders: tests/search/model_predictors.py) equal the scalar predictions on every point, and the exact
front equals a brute-force one."""

import numpy as np
import optuna
import pytest
from ffnet_nas.space.complexity_cache import shared_cache
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.searchspace import from_dict
from optuna.trial import TrialState

from ffnet_nas.search import exact
from ffnet_nas.search import exhaustive as ex
from ffnet_nas.search.api import run_search
from ffnet_nas.search.study import Objective, published_in
from ffnet_nas.search.targets import parse_targets
from ffnet_nas.stats import pareto_mask
from tests.helpers.search_standins import standin_latency_ms, standin_miou, tiny_space
from tests.search.model_predictors import model_predictors

# 3- and 4-stage backbones, three block types, FFNet and peer heads (JPU changes the output stride),
# both upsamplings, pre_down and both first strides: every kind of part the tables must reproduce
MIXED = {"base": "mobile_peers", "name": "mixed", "stems": ["B", "C"], "blocks": ["basic", "bottleneck", "metamixer"],
         "stages": {3: {"depths": [[1, 2], [1], [1, 2]], "widths": [[16], [32], [48, 64]]},
                    4: {"depths": [[1, 2], [1, 2], [1], [1, 3]], "widths": [[16], [32], [48], [64]]}},
         "up_heads": ["B", "JPU"], "seg_heads": ["B", "C"], "upsamples": ["bilinear", "nearest"],
         "pre_downs": [False, True], "first_strides": [1, 2], "input_size": "32x64"}
NUM_CLASSES = 5


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    space = from_dict(MIXED)
    return space, model_predictors(tmp_path_factory.mktemp("mixed"), space, num_classes=NUM_CLASSES)


def _brute(space, preds, targets):
    cache = shared_cache(space.input_hw, NUM_CLASSES)
    rows = []
    for a in space:
        params, macs = cache.get(a)
        v = {"latency": preds.latency_ms(a), "miou": preds.miou(a), "params": params, "macs": macs}
        rows.append((a.code, v, [t.violation(v[t.metric]) for t in targets]))
    return rows


def test_tables_equal_the_scalar_predictors_on_every_point(mixed):
    space, preds = mixed
    cache = shared_cache(space.input_hw, NUM_CLASSES)
    objective = Objective(space, preds.latency_ms, preds.miou, parse_targets("params<1G,macs<1T"), cache)
    tables, why = exact.build(space, objective, targets=objective.targets, published={})
    assert why is None and tables.probes == ex.count_probes(space) < space.size / 4
    assert any(p.c != 0 for p in tables.parts["miou"])  # the log10(params) term is really there
    names = ["latency", "miou", "params", "macs"]
    values = {n: np.concatenate([b[n] for _, b in tables.blocks(names)]) for n in names}
    archs = [tables.arch_at(i) for i in range(space.size)]
    assert len(values["latency"]) == space.size and set(archs) == set(space)  # every point once
    want = {"latency": [preds.latency_ms(a) for a in archs], "miou": [preds.miou(a) for a in archs],
            "params": [cache.get(a)[0] for a in archs], "macs": [cache.get(a)[1] for a in archs]}
    for n in names:
        np.testing.assert_allclose(values[n], want[n], rtol=1e-9, atol=1e-9, err_msg=n)


def test_exact_front_equals_brute_force_under_every_kind_of_target(mixed):
    space, preds = mixed
    lat = sorted(preds.latency_ms(a) for a in space.sample_many(200, seed=1))
    targets = f"latency<{lat[len(lat) // 2]:.4f}ms,params<1.6M,miou>=30"
    r = run_search(space=space, predict_latency_ms=preds.latency_ms, predict_miou=preds.miou, targets=targets,
                   n_trials=40, progress=False, num_classes=NUM_CLASSES, exhaustive=True)
    assert r.extra["mode"] == "exhaustive+nsga2"
    rows = _brute(space, preds, parse_targets(targets))
    feasible = [(c, v) for c, v, viol in rows if all(x <= 0 for x in viol)]
    mask = pareto_mask([(v["latency"], v["miou"]) for _, v in feasible])
    brute = {c for (c, _), m in zip(feasible, mask) if m}
    assert brute and set(r.pareto["code"]) == brute == set(r.extra["exhaustive"]["front_codes"])
    assert r.extra["exhaustive"]["front"] == len(brute) and r.extra["exhaustive"]["feasible"] == len(feasible)
    assert r.best["miou"] == max(v["miou"] for c, v in feasible)


def test_nothing_feasible_lists_the_closest_points_of_the_whole_space(mixed):
    space, preds = mixed
    targets = "latency<0.01ms"
    r = run_search(space=space, predict_latency_ms=preds.latency_ms, predict_miou=preds.miou, targets=targets,
                   n_trials=10, progress=False, num_classes=NUM_CLASSES)
    assert r.extra["mode"] == "exhaustive+nsga2" and not r.feasible
    rows = _brute(space, preds, parse_targets(targets))
    best5 = sorted(rows, key=lambda r: (sum(max(0, x) for x in r[2]), -r[1]["miou"]))[:5]
    assert list(r.closest["code"]) == [c for c, _, _ in best5]


def test_the_study_holds_the_front_as_nsga2_trials_and_resumes(tmp_path, mixed):
    space, preds = mixed
    journal = tmp_path / "s.journal"
    args = {"space": space, "predict_latency_ms": preds.latency_ms, "predict_miou": preds.miou, "targets": "params<1.6M",
            "progress": False, "num_classes": NUM_CLASSES, "storage": journal, "study_name": "s", "seed": 0}
    first = run_search(n_trials=60, **args)
    trials = _study(journal).get_trials(states=(TrialState.COMPLETE,))
    assert first.n_run == first.n_complete == len(trials) == 60  # the budget, as before
    n_pub = len(published_in(space))
    assert [t.user_attrs.get("published") for t in trials[:n_pub]] == list(published_in(space))  # still first
    added = [t for t in trials if t.user_attrs.get("source") == "exhaustive"]
    assert len(added) == first.extra["exhaustive"]["added"] > 0
    dists = space.distributions()
    for t in trials:  # an added trial is what Objective.__call__ leaves: decoding, values, attributes, constraints
        a = space.decode(t.params)
        assert t.user_attrs["code"] == a.code and set(t.params) == set(dists)
        assert t.values == [preds.miou(a), preds.latency_ms(a)]
        assert t.user_attrs["params"] == shared_cache(space.input_hw, NUM_CLASSES).get(a)[0]
        assert list(t.constraints) == ["params<1.6M"]
    assert set(first.pareto["code"]) == set(first.extra["exhaustive"]["front_codes"])  # NSGA-II found nothing better
    again = run_search(n_trials=60, **args)  # resumed: nothing to add, nothing scored again
    assert again.n_run == 0 and again.extra["exhaustive"]["skipped"]
    more = run_search(n_trials=70, **args)
    assert more.n_run == 10 and more.n_complete == 70
    codes = [t.user_attrs.get("published") for t in _study(journal).get_trials() if t.user_attrs.get("published")]
    assert len(codes) == len(set(codes)) == n_pub  # the published points were not enqueued again


def _storage(journal):
    from ffnet_nas.search.storage import open_storage

    return open_storage(journal)


def _study(journal):
    return optuna.load_study(study_name="s", storage=_storage(journal))


def test_other_forms_fall_back_to_nsga2_or_are_refused():
    args = {"space": tiny_space(), "predict_latency_ms": standin_latency_ms, "predict_miou": standin_miou, "n_trials": 20,
            "seed": 0, "progress": False, "num_classes": 19}
    r = run_search(**args)  # the stand-in mIoU is not additive + c*log10(params): checked, not trusted
    assert r.extra["mode"] == "nsga2" and r.n_run == 20 and r.extra["exhaustive"] is None
    with pytest.raises(InvalidInput, match="do not have the form"):
        run_search(exhaustive=True, **args)
    with pytest.raises(InvalidInput, match="expected sampler nsga2"):
        run_search(exhaustive=True, **{**args, "predict_miou": standin_latency_ms}, sampler="tpe")
    assert run_search(sampler="random", **args).extra["mode"] == "random"


def test_a_failing_probe_leaves_the_search_to_nsga2(mixed):
    space, preds = mixed

    def miou(arch):  # like a library without the deepest first stage: NSGA-II meets it only if it samples one
        if arch.depths[0] == 2:
            raise InvalidInput(f"{arch.code}: the block library has no usable block for s4")
        return preds.miou(arch)

    objective = Objective(space, preds.latency_ms, miou, (), shared_cache(space.input_hw, NUM_CLASSES))
    tables, why = exact.build(space, objective, targets=(), published={})
    assert tables is None and why.startswith("a probe failed: ")  # run_search then leaves it to NSGA-II
    with pytest.raises(InvalidInput, match="a probe failed: .*no usable block"):
        run_search(space=space, predict_latency_ms=preds.latency_ms, predict_miou=miou, n_trials=5, seed=0,
                   progress=False, num_classes=NUM_CLASSES, exhaustive=True)


def test_spaces_above_the_threshold_keep_nsga2(monkeypatch):
    from ffnet_nas.search import api

    monkeypatch.setattr(api, "EXHAUSTIVE_MAX_POINTS", 100)
    r = run_search(space=tiny_space(), predict_latency_ms=standin_latency_ms, predict_miou=standin_latency_ms,
                   n_trials=12, seed=0, progress=False, num_classes=19)
    assert r.extra["mode"] == "nsga2"
    monkeypatch.setattr(api, "EXHAUSTIVE_MAX_POINTS", 10**9)
    monkeypatch.setattr(api, "MAX_PROBES", 10)  # too many probes: NSGA-II alone too
    assert run_search(space=tiny_space(), predict_latency_ms=standin_latency_ms, predict_miou=standin_latency_ms,
                      n_trials=12, seed=0, progress=False, num_classes=19).extra["mode"] == "nsga2"
    from ffnet_nas.space.searchspace import get_space

    assert ex.EXHAUSTIVE_MAX_POINTS >= get_space("all").size and ex.count_probes(get_space("all")) <= ex.MAX_PROBES


def test_two_workers_with_the_exact_front_share_one_journal(tmp_path, mixed):
    """Two workers (threads, each with its own storage object) on one journal: one adds the front, once; the
    budget holds."""
    import threading

    space, preds = mixed
    journal = tmp_path / "s.journal"
    results = {}

    def work(i):
        results[i] = run_search(space=space, predict_latency_ms=preds.latency_ms, predict_miou=preds.miou,
                                n_trials=40, seed=i, progress=False, num_classes=NUM_CLASSES, storage=journal,
                                study_name="s")

    threads = [threading.Thread(target=work, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    trials = _study(journal).get_trials()
    assert [t.number for t in trials] == list(range(len(trials)))
    assert all(t.state == TrialState.COMPLETE for t in trials) and 40 <= len(trials) <= 41
    assert sum(r.n_run for r in results.values()) == len(trials)
    passes = [r.extra["exhaustive"] for r in results.values()]
    scored = [p for p in passes if not p["skipped"]]
    # one pass: the other worker either waited on its claim or, started later, found its front in the study
    # (which of the two depends on how the threads are scheduled)
    assert len(scored) == 1 and len(passes) == 2, passes
    front = set(scored[0]["front_codes"])
    codes = [t.user_attrs["code"] for t in trials if t.user_attrs.get("source") == "exhaustive"]
    assert set(codes) == front and len(codes) == len(front)  # added once
    assert set(run_search(space=space, predict_latency_ms=preds.latency_ms, predict_miou=preds.miou, n_trials=40,
                          progress=False, num_classes=NUM_CLASSES, storage=journal, study_name="s").pareto["code"]) == front


def test_a_worker_that_probes_while_another_records_the_front_scores_nothing(tmp_path, mixed, monkeypatch):
    """The race CI met: worker B finds no pass and probes; worker A records the front and releases its claim
    meanwhile; B must then find A's pass, not a free claim, and score nothing again."""
    space, preds = mixed
    journal = tmp_path / "s.journal"
    objective = Objective(space, preds.latency_ms, preds.miou, (), shared_cache(space.input_hw, NUM_CLASSES))
    study_a = optuna.create_study(study_name="s", storage=_storage(journal), directions=["maximize", "minimize"])
    study_b = optuna.load_study(study_name="s", storage=_storage(journal))
    build, a = exact.build, {}

    def b_probes_while_a_records(*args, **kwargs):
        if not a:  # B's probe; A's build below is the plain one
            a["pass"] = None
            a["pass"] = exact.add_exact_front(study_a, objective, published={}, worker="host-a:1")
        return build(*args, **kwargs)

    monkeypatch.setattr(exact, "build", b_probes_while_a_records)
    b = exact.add_exact_front(study_b, objective, published={}, worker="host-b:2")
    assert not a["pass"]["skipped"] and a["pass"]["added"] > 0
    assert b["skipped"] and b["added_now"] == 0
    added = [t for t in _study(journal).get_trials() if t.user_attrs.get("source") == "exhaustive"]
    assert len(added) == a["pass"]["added"]
