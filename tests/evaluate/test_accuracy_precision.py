"""Which accuracy a run ranks and judges by: the float model's, or under an INT8 latency table the
quantised model's (int8_miou). Pure: the choice of the best point, the verdict lines, the report."""

from __future__ import annotations

import math

import pytest

from ffnet_nas.settings import accuracy_column, accuracy_label
from ffnet_nas.closing import describe
from ffnet_nas.refine import beats, best_candidate
from ffnet_nas.reports.verdict import verdict, verdict_html
from ffnet_nas.run_summary import RunSummary
from ffnet_nas.space import Arch, InvalidInput
from ffnet_nas.win_check import judge

REF = Arch.parse("stemC-basic-d6.8.8-w64.128.256-s2-upC-segC-nearest")
A, B = "stemC-basic-d6.12.8-w64.128.256-s2-upC-segC-nearest", "stemC-basic-d8.12.8-w64.128.256-s2-upC-segC-nearest"
# A is the more accurate in float, B once quantised; both faster than the reference
ROWS = {A: {"code": A, "measured_miou": 48.0, "int8_miou": 44.0, "measured_latency_ms": 10.0},
        B: {"code": B, "measured_miou": 47.0, "int8_miou": 46.5, "measured_latency_ms": 11.0},
        REF.code: {"code": REF.code, "measured_miou": 46.0, "int8_miou": 45.0, "measured_latency_ms": 12.0}}


def test_the_column_and_its_name_per_precision():
    assert (accuracy_column("fp32"), accuracy_column("int8")) == ("measured_miou", "int8_miou")
    assert (accuracy_label("fp32"), accuracy_label("int8")) == ("mIoU", "INT8 mIoU")
    with pytest.raises(InvalidInput, match="precision 'bf16': expected one of fp32, int8"):
        accuracy_column("bf16")


def test_the_best_point_and_the_win_are_judged_in_the_runs_precision():
    assert best_candidate(ROWS, [A, B], REF) == (ROWS[A], True)
    assert best_candidate(ROWS, [A, B], REF, accuracy="int8_miou") == (ROWS[B], True)
    # A beats the reference in float (48 > 46) but not once quantised (44 < 45)
    assert beats(ROWS[A], ROWS[REF.code]) and not beats(ROWS[A], ROWS[REF.code], accuracy="int8_miou")
    # a row without the INT8 score is neither a winner nor the best
    unscored = {**ROWS, A: {**ROWS[A], "int8_miou": math.nan}}
    assert not beats(unscored[A], unscored[REF.code], accuracy="int8_miou")
    assert best_candidate(unscored, [A], REF, accuracy="int8_miou") == (None, False)


def _summary(accuracy: str) -> RunSummary:
    return RunSummary(budget="quick", space="mobile", device="cpu", target="latency<=12ms", reference="ffnet_ref",
                      best={**ROWS[B], "held_out_miou": 45.5, "predicted_latency_ms": 10.5},
                      reference_row={**ROWS[REF.code], "held_out_miou": 44.5}, beats_reference=True,
                      held_out_confirms=True, accuracy=accuracy)


def test_the_verdict_lines_and_the_report_name_and_show_the_int8_accuracy():
    lines = "\n".join(describe(_summary("int8_miou")))
    assert f"best found: {B}  INT8 mIoU 46.50" in lines and "ffnet_ref  INT8 mIoU 45.00" in lines
    assert "higher measured INT8 mIoU" in lines and "INT8 mIoU 45.50 vs 44.50" in lines
    float_lines = "\n".join(describe(_summary("measured_miou")))
    assert f"best found: {B}  mIoU 47.00" in float_lines and "INT8" not in float_lines
    v = verdict({**_summary("int8_miou").__dict__})
    assert v.unit == "INT8 mIoU" and v.found.measured_miou == 46.5 and v.reference.measured_miou == 45.0
    assert "46.50% vs 45.00% INT8 mIoU" in v.headline and "<th>measured INT8 mIoU</th>" in verdict_html(v)
    old = {k: val for k, val in _summary("measured_miou").__dict__.items() if k != "accuracy"}  # older summaries
    assert verdict(old).found.measured_miou == 47.0 and verdict(old).unit == "mIoU"


def test_the_win_check_says_which_accuracy_it_compared():
    scores = [{A: (48.0, 47.0), REF.code: (46.0, 45.0)}, {A: (47.5, 46.8), REF.code: (46.2, 45.1)}]
    assert "win over the reference in INT8 mIoU measured under 2 seeds" in judge(
        scores, best=A, reference=REF.code, seeds=[0, 1], precision="int8").text()
    assert "win over the reference measured under 2 seeds" in judge(scores, best=A, reference=REF.code, seeds=[0, 1]).text()


def test_a_win_check_without_the_runs_accuracy_is_one_line(tmp_path):
    from ffnet_nas.budgets import finetune_config
    from ffnet_nas.win_check import check_win
    from ffnet_nas.workspace import Workspace

    unscored = {**ROWS[B], "int8_miou": None}
    with pytest.raises(InvalidInput, match=f"{B} has no int8_miou: expected both points scored in int8"):
        check_win(workspace=Workspace(tmp_path), best=unscored, reference=ROWS[REF.code],
                  config=finetune_config(steps=1), val_images=4, precision="int8")


def test_the_exported_models_metadata_says_its_int8_accuracy_and_what_the_run_judged_by():
    from ffnet_nas.found import _int8_record

    assert _int8_record({"int8_miou": 46.456}, {"accuracy": "int8_miou"}) == {"int8_miou": "46.46",
                                                                             "judged_by": "int8_miou"}
    assert _int8_record({"int8_miou": math.nan}, {}) == {} and _int8_record({}, {"accuracy": "measured_miou"}) == {}
