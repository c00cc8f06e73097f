"""bench/compare_protocol_predictors: two protocols' truths read from either kind of folder, paired on the
points both measured and neither run evaluated, each ranked by its own predictor."""

import json

import pandas as pd
import pytest

from bench.compare_protocol_predictors import held_out, read_truth, table


def _yardstick_folder(root, *, freeze_bn: bool, scores: dict[str, tuple[float, float]]):
    root.mkdir()
    (root / "yardstick_protocol.json").write_text(json.dumps({"steps": 100, "freeze_bn": freeze_bn}))
    rows = [{"code": c, "stride": 8, "seed": s, "avg50@run": v + 100, "avg50_bn@run": v, "avg50@truth": v + 200,
             "avg50_bn@truth": v + 300}
            for c, pair in scores.items() for s, v in enumerate(pair)]
    pd.DataFrame(rows).to_csv(root / "yardstick.csv", index=False)
    return root


def test_the_truth_is_the_runs_ending_of_its_protocol_in_either_kind_of_folder(tmp_path):
    scores = {"p0": (30.0, 31.0), "p1": (35.0, 34.0)}
    held = read_truth(_yardstick_folder(tmp_path / "held", freeze_bn=True, scores=scores)).set_index("code")
    batch = read_truth(_yardstick_folder(tmp_path / "batch", freeze_bn=False, scores=scores)).set_index("code")
    # held BatchNorm ends on the averaged weights as they are; otherwise BatchNorm is recomputed
    assert held.loc["p0", "seed_a"] == 130.0 and held.loc["p1", "seed_b"] == 134.0
    assert batch.loc["p0", "seed_a"] == 30.0 and batch.loc["p1", "seed_b"] == 34.0
    check = tmp_path / "check" / "predictor" / "check"
    check.mkdir(parents=True)
    points = [{"code": "p0", "stride": 8, "seed3": 20.0, "seed5": 21.0}]
    (check / "summary.json").write_text(json.dumps({"seeds": [3, 5], "points": points}))
    row = read_truth(tmp_path / "check").iloc[0]
    assert (row["code"], row["seed_a"], row["seed_b"]) == ("p0", 20.0, 21.0)
    # a run scoring on the larger image set is judged on that set's scores, of its own ending
    assert read_truth(tmp_path / "held", "truth").set_index("code").loc["p0", "seed_a"] == 230.0
    assert read_truth(tmp_path / "batch", "truth").set_index("code").loc["p1", "seed_b"] == 334.0
    with pytest.raises(SystemExit, match="scored on the run's images only"):
        read_truth(tmp_path / "check", "truth")


def test_each_predictor_is_judged_on_its_own_truth_over_the_same_held_out_points():
    codes = [f"p{i}" for i in range(8)]
    level = {c: float(i) for i, c in enumerate(codes)}
    # A's truth orders the points one way, B's the other way
    truth_a = pd.DataFrame({"code": codes, "stride": 8, "seed_a": [level[c] for c in codes],
                            "seed_b": [level[c] + 0.1 for c in codes]})
    truth_b = pd.DataFrame({"code": codes + ["only_b"], "stride": 8, "seed_a": [-level[c] for c in codes] + [0.0],
                            "seed_b": [-level[c] for c in codes] + [0.0]})
    draw = held_out(truth_a, truth_b, predict_a=lambda c: level[c], predict_b=lambda c: level[c],
                    evaluated={"p7"})
    assert sorted(draw["code"]) == codes[:7]  # only_b: one protocol only; p7: a run evaluated it
    assert draw["inside"].all()
    rows = dict(table([draw], labels=("A", "B"), group=False))
    assert rows["A: its run's predictor"].startswith("1.00")
    assert rows["B: its run's predictor"].startswith("-1.00")  # judged on B's own (reversed) truth
    assert rows["predictor tau, A minus B (paired)"].startswith("2.00")
    assert rows["A: the other seed (yardstick)"].startswith("1.00")
    assert "A: the other seed minus stride alone (paired)" in rows  # one stride here: stride ranks nothing


def test_the_yardstick_lead_over_stride_is_one_seed_against_the_other_beside_stride():
    # stride 16 scores higher here, so stride (smaller first) gets all 16 pairs across strides
    # wrong: tau-b (0 - 16) / sqrt((28 - 12) * 28) = -0.756; the seeds agree on every pair: 1.00
    codes = [f"p{i}" for i in range(8)]
    level = [1.0, 2.0, 3.0, 4.0, 10.0, 11.0, 12.0, 13.0]
    truth = pd.DataFrame({"code": codes, "stride": [8] * 4 + [16] * 4, "seed_a": level,
                          "seed_b": [v + 0.1 for v in level]})
    draw = held_out(truth, truth, predict_a=lambda c: 0.0, predict_b=lambda c: 0.0, evaluated=set())
    rows = dict(table([draw], labels=("A", "B"), group=False))
    assert rows["A: the other seed minus stride alone (paired)"].startswith("1.76")


def test_one_truth_folder_per_draw_for_each_protocol(tmp_path):
    from bench.compare_protocol_predictors import main

    with pytest.raises(SystemExit, match="expected one per draw"):
        main(["--run-a", str(tmp_path), "--truth-a", "x", "y", "--run-b", str(tmp_path), "--truth-b", "x"])
