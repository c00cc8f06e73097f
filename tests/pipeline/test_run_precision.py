"""The precision a run trains in: the flag, else what the workdir recorded, else the budget's
(`cpu_amp`: bf16 on a CPU that runs it natively). Recorded once, so a re-run, a resume or a move to
another CPU never mixes float32 and bf16 work, and what `evaluate` and the predictor check repeat."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from ffnet_nas import settings
from ffnet_nas.budgets import get_budget
from ffnet_nas.pipeline import run_pipeline
from ffnet_nas.predictor_check import run_settings
from ffnet_nas.run_config import RunConfig
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.steps import open_run, read_training_precision, run_precision
from ffnet_nas.workspace import Workspace

BF16_MICRO = dataclasses.replace(get_budget("micro"), cpu_amp="bf16")


def _native(monkeypatch, value: bool) -> None:
    monkeypatch.setattr(settings, "native_bf16_cpu", lambda: value)


def test_the_flag_then_the_record_then_an_older_workdir_then_the_budget(tmp_path, monkeypatch):
    _native(monkeypatch, True)
    ws = Workspace(tmp_path / "w")
    assert run_precision(ws, RunConfig(budget=BF16_MICRO)) == ("bf16", "the budget's, on a CPU with native bf16")
    assert run_precision(ws, RunConfig(budget=BF16_MICRO, amp="fp32"))[0] is None  # asked: float32
    # a workdir with a teacher and no record was started by a version that trained in float32
    ws.teacher_dir.mkdir(parents=True)
    ws.teacher_state_path.write_bytes(b"")
    amp, source = run_precision(ws, RunConfig(budget=BF16_MICRO))
    assert amp is None and "before the precision was recorded" in source
    # ... unless its run summary says what the run trained in
    from ffnet_nas.budgets import budget_dict  # the provenance as `run` writes it

    ws.run_summary_path.write_text(json.dumps({"provenance": {"budget": budget_dict(BF16_MICRO),
                                                              "config": {"space": "mobile", "amp": "bf16"}}}))
    assert run_precision(ws, RunConfig(budget=BF16_MICRO)) == ("bf16", "this workdir's (its run_summary.json)")
    # the record wins over the teacher's presence and over the machine
    ws.training_precision_path.write_text(json.dumps({"amp": "bf16"}))
    _native(monkeypatch, False)
    assert run_precision(ws, RunConfig(budget=BF16_MICRO))[0] == "bf16"
    assert run_precision(ws, RunConfig(budget=BF16_MICRO, amp="fp32"))[0] is None  # the flag still wins
    # a damaged record is one line naming the file and what it should hold
    ws.training_precision_path.write_text(json.dumps({"amp": "half"}))
    with pytest.raises(InvalidInput, match="training_precision.json.*expected"):
        run_precision(ws, RunConfig(budget=BF16_MICRO))


def test_a_run_in_the_budgets_bf16_records_it_and_the_check_repeats_it(tmp_path, space_file, monkeypatch):
    """The implicit path end to end (a micro run on a budget with cpu_amp, on a CPU said to run bf16
    natively): the summary's provenance and the workdir's record say bf16, so the predictor check
    and `evaluate` fine-tune in bf16; a machine without native bf16 keeps the workdir's bf16."""
    _native(monkeypatch, True)
    torch.set_num_threads(1)
    ws = Workspace(tmp_path / "run")
    config = RunConfig(budget=BF16_MICRO, space=str(space_file), threads=1)
    run_pipeline(workspace=ws, config=config, progress=False)
    summary = json.loads(ws.run_summary_path.read_text())
    assert summary["provenance"]["config"]["amp"] == "bf16"
    assert read_training_precision(ws) == "bf16" and run_settings(ws).config.amp == "bf16"
    _native(monkeypatch, False)
    assert open_run(workspace=ws, config=config, progress=False).config.amp == "bf16"


def test_a_float32_run_records_fp32_not_null(micro_run):
    """null in a config means "the budget's", which may be bf16 elsewhere: the record says fp32."""
    ws = Workspace(micro_run.workdir)
    summary = json.loads(ws.run_summary_path.read_text())
    assert summary["provenance"]["config"]["amp"] == "fp32"
    assert read_training_precision(ws) == "fp32" and run_settings(ws).config.amp is None
