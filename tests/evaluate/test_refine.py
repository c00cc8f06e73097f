"""Refine rounds (refit on evaluated points, search again, evaluate new challengers) on a micro workdir."""

import dataclasses
import shutil

import pandas as pd
import pytest

from ffnet_nas.budgets import finetune_config
from ffnet_nas.evaluate import evaluate_points, read_evaluated
from ffnet_nas.fit_predictor import fit_from_table
from ffnet_nas.refine import RefineRequest, beats, best_candidate, challengers, refine, stalled
from ffnet_nas.search.targets import parse_targets
from ffnet_nas.predictors.accuracy import AccuracyPredictor
from ffnet_nas.space import Arch
from ffnet_nas.space.searchspace import from_dict
from ffnet_nas.workspace import Workspace
from tests.helpers.micro import TINY_SPACE, micro_workdir

HW = (32, 64)
TINY = TINY_SPACE
CONFIG = finetune_config(steps=2, batch_size=2, checkpoint_every=1)
VAL_IMAGES = 4


def row(miou, ms):
    return {"measured_miou": miou, "measured_latency_ms": ms}


def test_beats_needs_more_accuracy_and_no_more_latency():
    ref = row(40.0, 10.0)
    assert beats(row(41.0, 10.0), ref) and beats(row(40.5, 9.0), ref)
    assert not beats(row(40.0, 9.0), ref)  # equal mIoU is not better
    assert not beats(row(45.0, 10.5), ref)  # more accurate but slower
    assert not beats(row(45.0, float("nan")), ref) and not beats(row(45.0, 9.0), None)


def test_best_candidate_prefers_a_winner_and_ignores_the_reference():
    ref = Arch.from_name("segmentation_ffnet40S_BBB_mobile")
    rows = {ref.code: row(40.0, 10.0), "fast": row(40.5, 8.0), "accurate": row(44.0, 12.0), "meh": row(30.0, 5.0)}
    best, won = best_candidate(rows, ["accurate", "fast", "meh", ref.code, "never-evaluated"], ref)
    assert won and best is rows["fast"]  # the slower, more accurate one does not beat the reference
    best, won = best_candidate(rows, ["accurate", "meh"], ref)
    assert not won and best is rows["accurate"]
    assert best_candidate(rows, [], ref) == (None, False)


def test_challengers_are_the_most_accurate_clearly_faster_unpublished_points():
    rows = pd.DataFrame({"code": ["a", "b", "c", "d", "e"], "latency_ms": [5.0, 9.0, 9.6, 12.0, 8.0],
                         "miou": [30, 40, 45, 50, 60], "published": [None, None, None, None, "segmentation_ffnetX"]})
    assert challengers(rows, 10.0, k=2) == ["b", "a"]  # c is within the 5% margin, d is slower, e is published
    assert challengers(rows, 10.0, k=2, exclude=["b"]) == ["a"]
    assert challengers(rows, 4.0, k=2) == []
    assert challengers(rows.drop(columns="published"), 10.0, k=1) == ["e"]


def test_a_stalled_chase_is_judged_on_the_best_find_that_beats_the_reference():
    ref, rival = Arch.from_name("segmentation_ffnet54S_BBB_mobile_pre_down"), Arch.from_name("segmentation_ffnet40S_BCC_mobile")
    request = RefineRequest(space=None, targets=(), reference=ref, reference_ms=26.0, candidates=(), finetune=CONFIG,
                            val_images=None, rounds=3, points=3, trials=1, num_classes=8, rival=rival, rival_margin=1.0,
                            stop_stalled=True)
    rows = {ref.code: row(38.0, 26.0), rival.code: row(46.0, 19.0), "a": row(46.4, 20.0), "slow": row(47.5, 27.0),
            "b": row(46.5, 24.0), "c": row(46.9, 24.0), "d": row(46.75, 24.0)}
    # round 1 made "b": +0.1 over "a", with 0.5 still lacking (the slower "slow" beats nothing, so it is no find)
    why = stalled(rows, request, finds=["a", "slow", "b"], last=["b"], rounds_left=1)
    assert why.startswith("raised the best find that beats the reference by +0.10 mIoU (46.40 -> 46.50); at that pace "
                          "the 1 round left would not close the 0.50 mIoU")
    assert why.endswith("segmentation_ffnet40S_BCC_mobile (46.00) by 1 mIoU")
    assert "did not raise the best find" in stalled(rows, request, finds=["a", "b", "slow"], last=["slow"], rounds_left=2)
    # "d": +0.35 with 0.25 lacking goes on; with two rounds left +0.1 a round (0.2 in all) stops but +0.35 goes on
    assert stalled(rows, request, finds=["a", "d"], last=["d"], rounds_left=1) is None
    assert stalled(rows, request, finds=["a", "b"], last=["b"], rounds_left=2) is not None
    assert stalled(rows, request, finds=["b", "c"], last=["c"], rounds_left=2) is None  # +0.4, 0.1 lacking
    rows["e"] = row(46.7, 24.0)  # exactly the pace needed goes on: +0.3 over "a", 0.3 lacking
    assert stalled(rows, request, finds=["a", "e"], last=["e"], rounds_left=1) is None
    # the first find to beat the reference is progress, whatever its margin; no rival, a rival not measured,
    # or no round left: nothing to stall
    assert stalled(rows, request, finds=["slow", "b"], last=["b"], rounds_left=1) is None
    assert stalled(rows, dataclasses.replace(request, rival=None), finds=["a", "b"], last=["b"], rounds_left=1) is None
    assert stalled({k: v for k, v in rows.items() if k != rival.code}, request, finds=["a", "b"], last=["b"],
                   rounds_left=1) is None
    assert stalled(rows, request, finds=["a", "b"], last=["b"], rounds_left=0) is None
    # an INT8 run judges and words it in INT8 mIoU
    int8 = {k: {**v, "int8_miou": v["measured_miou"] - 1.0} for k, v in rows.items()}
    assert "+0.10 INT8 mIoU" in stalled(int8, request, finds=["a", "b"], last=["b"], rounds_left=1, accuracy="int8_miou")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    space = from_dict(TINY)
    ws = micro_workdir(tmp_path_factory.mktemp("refine"), TINY, hw=HW)
    first = [space.sample(i) for i in range(6)]
    evaluate_points(list(dict.fromkeys(first))[:4], workspace=ws, config=CONFIG, val_images=VAL_IMAGES, progress=False)
    fit_from_table(ws)
    return ws, space


def _refine(ws, space, reference, **kw):
    codes = list(read_evaluated(ws.evaluated_path)["code"])
    request = RefineRequest(space=space, targets=parse_targets("latency<=1000ms"), reference=reference,
                            reference_ms=1e6, candidates=tuple(kw.pop("candidates", codes)), finetune=CONFIG,
                            val_images=VAL_IMAGES, trials=12, num_classes=8, **{"rounds": 2, "points": 1, **kw})
    return refine(workspace=ws, request=request, progress=False)


def test_refine_rounds_refit_search_and_evaluate_then_resume_without_redoing(workdir):
    ws, space = workdir
    table = read_evaluated(ws.evaluated_path)
    # an unbeatable reference (the most accurate point, and "beating" also needs no more latency)
    # makes every round run
    ref_row = table.sort_values("measured_miou").iloc[-1]
    table.loc[table["code"] == ref_row["code"], "measured_miou"] = 101.0
    table.to_csv(ws.evaluated_path, index=False)
    reference = Arch.parse(ref_row["code"])
    before = set(table["code"])

    rounds = _refine(ws, space, reference)
    assert [r.index for r in rounds] == [1, 2]
    assert rounds[0].fitted_on == len(before)
    for r in rounds:
        assert (ws.predictor_dir / f"round{r.index}" / "accuracy.json").exists()
        assert ws.round_predictor_dir(r.index) == ws.predictor_dir / f"round{r.index}"  # the layout older runs wrote
        listed = pd.read_csv(ws.search_dir / f"round{r.index}" / "to_evaluate.csv")
        assert list(listed["code"]) == list(r.points) and len(r.points) == 1
    new = [c for r in rounds for c in r.points]
    assert len(set(new)) == 2 and not set(new) & before  # new points only, none evaluated twice
    after = read_evaluated(ws.evaluated_path)
    assert not after.duplicated(["code", "init"]).any() and set(new) <= set(after["code"])
    assert rounds[1].fitted_on == len(before) + 1  # round 2 learned from round 1's point
    # each new row carries the prediction of the predictor that picked it
    picker = AccuracyPredictor.load(ws.predictor_dir / "round1" / "accuracy.json")
    predicted = after.set_index("code").loc[new[0], "predicted_miou"]
    assert predicted == pytest.approx(picker.predict(Arch.parse(new[0])))

    # a re-run (as after a kill) reads the rounds' predictors and lists back: same points, nothing redone
    text = ws.evaluated_path.read_text()
    again = _refine(ws, space, reference)
    assert again == rounds and ws.evaluated_path.read_text() == text

    # killed in round 2 before its point finished: the re-run evaluates that point, and only it
    cut = after[after["code"] != new[1]]
    cut.to_csv(ws.evaluated_path, index=False)
    assert _refine(ws, space, reference) == rounds
    resumed = read_evaluated(ws.evaluated_path)
    assert sorted(resumed["code"]) == sorted(after["code"]) and not resumed.duplicated(["code", "init"]).any()
    assert resumed.set_index("code").loc[new[0], "seconds"] == after.set_index("code").loc[new[0], "seconds"]


def test_refine_stops_when_the_reference_is_already_beaten(workdir, monkeypatch):
    ws, space = workdir
    table = read_evaluated(ws.evaluated_path)
    table = table[table["init"] == "distilled"]
    weakest = table.sort_values("measured_miou").iloc[0]
    slow = weakest["measured_latency_ms"] + 1e3  # every other point is faster and more accurate
    frame = read_evaluated(ws.evaluated_path)
    frame.loc[frame["code"] == weakest["code"], ["measured_miou", "measured_latency_ms"]] = [-1.0, slow]
    frame.to_csv(ws.evaluated_path, index=False)
    assert _refine(ws, space, Arch.parse(weakest["code"]), rounds=3) == []
    # a point the search did not propose (the predictor's design, a published variant) is not a find:
    # beating the reference with it does not stop the rounds
    assert [r.index for r in _refine(ws, space, Arch.parse(weakest["code"]), rounds=1, candidates=[])] == [1]
    # a published rival more accurate than every find keeps the rounds going, though the reference is
    # beaten; a round that searches (not one whose list an earlier call wrote: it is read back)
    # re-ranks against the rival
    from ffnet_nas import steps

    frame = read_evaluated(ws.evaluated_path)
    rival = frame[frame["init"] == "distilled"].sort_values("measured_miou").iloc[-1]["code"]
    finds = [c for c in frame["code"] if c not in (rival, weakest["code"])]
    frame.loc[frame["code"] == rival, "measured_miou"] = 101.0
    frame.to_csv(ws.evaluated_path, index=False)
    searched, search = [], steps.search

    def spy(*, request, **kw):
        searched.append(request.reference)
        return search(request=request, **kw)

    monkeypatch.setattr(steps, "search", spy)
    chase = dict(candidates=finds, rival=Arch.parse(rival))
    assert [r.index for r in _refine(ws, space, Arch.parse(weakest["code"]), rounds=3, **chase)] == [1, 2, 3]
    assert searched and set(searched) == {rival}  # every round that searched (alone, round 2 does too)
    # once a find out-scores the rival (and beats the reference) no round runs
    frame = read_evaluated(ws.evaluated_path)
    frame.loc[frame["code"] == rival, "measured_miou"] = -0.5
    frame.to_csv(ws.evaluated_path, index=False)
    assert _refine(ws, space, Arch.parse(weakest["code"]), rounds=3, **chase) == []
    # ... by more than the margin: a find 0.4 above the rival is inside a 0.5 margin, and the rounds go on
    frame = read_evaluated(ws.evaluated_path)
    top = frame[frame["code"].isin(finds)]["measured_miou"].max()
    frame.loc[frame["code"] == rival, "measured_miou"] = top - 0.4
    frame.to_csv(ws.evaluated_path, index=False)
    assert _refine(ws, space, Arch.parse(weakest["code"]), rounds=3, rival_margin=0.3, **chase) == []
    assert [r.index for r in _refine(ws, space, Arch.parse(weakest["code"]), rounds=3, rival_margin=0.5, **chase)] \
        == [1, 2, 3]


def test_a_stalled_chase_stops_and_a_resume_keeps_the_rounds_it_had(workdir, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(workdir[0].root, root)
    ws, space = Workspace(root), workdir[1]
    for folder in [*ws.search_dir.glob("round*"), *ws.predictor_dir.glob("round*")]:
        shutil.rmtree(folder)  # the rounds other tests ran: listed rounds are read back, not decided
    frame = read_evaluated(ws.evaluated_path)
    ranked = frame[frame["init"] == "distilled"].sort_values("measured_miou")
    weakest, rival = ranked.iloc[0]["code"], ranked.iloc[-1]["code"]
    frame.loc[frame["code"] == weakest, ["measured_miou", "measured_latency_ms"]] = [-1.0, 1e9]
    frame.loc[frame["code"] == rival, "measured_miou"] = 101.0  # no round can close that lead
    frame.to_csv(ws.evaluated_path, index=False)
    chase = dict(candidates=[c for c in ranked["code"] if c not in (weakest, rival)], rival=Arch.parse(rival))
    reference = Arch.parse(weakest)

    rounds = _refine(ws, space, reference, rounds=3, stop_stalled=True, **chase)
    assert [r.index for r in rounds] == [1] and rounds[0].stopped is not None
    assert "the 2 rounds left would not close" in rounds[0].stopped
    text = ws.evaluated_path.read_text()
    assert _refine(ws, space, reference, rounds=3, stop_stalled=True, **chase) == rounds  # the same decision again
    assert ws.evaluated_path.read_text() == text
    # a second round run without the rule is kept when the rule is back: only the round after it is decided
    assert [r.index for r in _refine(ws, space, reference, rounds=2, **chase)] == [1, 2]
    again = _refine(ws, space, reference, rounds=3, stop_stalled=True, **chase)
    assert [r.index for r in again] == [1, 2] and again[0].stopped is None and again[1].stopped


def test_challengers_margin_can_be_relaxed():
    rows = pd.DataFrame({"code": ["a", "b", "c"], "latency_ms": [9.0, 9.8, 10.2], "miou": [30, 40, 50]})
    assert challengers(rows, 10.0, k=3) == ["a"]
    assert challengers(rows, 10.0, k=3, margin=1.0) == ["b", "a"]  # never slower than the reference
