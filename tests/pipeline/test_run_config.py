"""`ffnet-nas run --print-config` / `--config`: every setting in one YAML file, read back exactly,
bad files refused in one line naming the key, explicit flags over the file; the budgets' numbers."""

import json

import pytest
import yaml

from ffnet_nas.budgets import BUDGETS, get_budget
from ffnet_nas.cli import main
from ffnet_nas.run_config import RunConfig, load_config
from ffnet_nas.space import InvalidInput


def _print_config(capsys, *argv) -> str:
    assert main(["run", "--print-config", *argv]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(BUDGETS))
def test_print_config_then_config_reproduces_every_setting(tmp_path, capsys, name):
    text = _print_config(capsys, "--budget", name, "--threads", "2", "--target", "latency<9ms")
    path = tmp_path / "run.yaml"
    path.write_text(text)
    config = load_config(path)
    assert config == RunConfig(budget=get_budget(name), threads=2, target="latency<9ms")
    assert _print_config(capsys, "--config", str(path)) == text  # and the file says the same again


def test_the_yaml_holds_every_setting_the_run_uses(capsys):
    data = yaml.safe_load(_print_config(capsys))
    assert {"space", "data", "target", "device", "threads", "formats", "budget"} <= set(data)
    budget = data["budget"]
    assert budget["name"] == "quick" and budget["train_hw"] == budget["input_hw"] == [64, 128]
    assert budget["search"] == {"trials": 300, "seed": 0, "rerank": 24, "rerank_by": "zero-shot", "rerank_per_class": 0}
    assert budget["evaluate"]["finetune"]["kd_weight"] == 1.0 and budget["evaluate"]["finetune"]["seed"] == 0
    assert budget["distill"]["block"]["steps"] == 80 and budget["teacher"]["steps"] == 500
    assert budget["cpu_amp"] is None and data["amp"] is None  # null: the budget's precision (training_precision)
    assert budget["latency"]["protocol"]["max_repeats"] == 60


def test_flags_given_explicitly_override_the_file(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"device": "cuda", "threads": 3, "space": "gpu_small",
                                    "budget": {"name": "micro", "search": {"trials": 7}}}))
    data = yaml.safe_load(_print_config(capsys, "--config", str(path)))
    assert (data["device"], data["threads"], data["space"], data["budget"]["search"]["trials"]) == ("cuda", 3, "gpu_small", 7)
    assert data["budget"]["teacher"]["steps"] == 10  # left out: the named budget's value
    data = yaml.safe_load(_print_config(capsys, "--config", str(path), "--device", "cpu", "--threads", "1",
                                        "--format", "html,png"))
    assert (data["device"], data["threads"], data["formats"]) == ("cpu", 1, ["html", "png"])
    assert data["budget"]["search"]["trials"] == 7 and data["space"] == "gpu_small"  # not given: the file's
    data = yaml.safe_load(_print_config(capsys, "--config", str(path), "--budget", "quick"))
    assert data["budget"]["search"]["trials"] == 300  # --budget NAME: that budget instead of the file's


@pytest.mark.parametrize("text, fragment", [
    ("budget: {search: {trialz: 3}}", "budget.search.trialz: unknown key"),
    ("devise: cpu", "devise: unknown key"),
    ("threads: two", "threads: expected an integer"),
    ("budget: {teacher: {steps: true}}", "budget.teacher.steps: expected an integer"),
    ("budget: {input_hw: [64]}", "budget.input_hw: expected a list of 2 values"),
    ("budget: {train_hw: [64, true]}", "budget.train_hw"),
    ("budget: {search: {trials: 0}}", "budget.search.trials=0: expected a positive integer"),
    ("budget: {evaluate: {finetune: {lr: -1}}}", "budget.evaluate.finetune.lr=-1.0: expected a positive learning rate"),
    ("budget: {predictor: {points: 2}}", "budget.predictor.points=2: expected at least 4"),
    ("budget: {name: huge}", "budget.name: unknown budget 'huge'"),
    ("threads: 0", "threads=0: expected a positive integer"),
    ("amp: fp64", "amp='fp64': expected bf16, fp16, fp32 or null"),
    ("budget: {cpu_amp: fp16}", "budget.cpu_amp='fp16': expected bf16 or null"),
    ("- a list", "expected a mapping"),
    ("budget: {search: [1, 2", "not valid YAML"),
    ("budget: {distill: {block: {lr: 1e999}}}", "budget.distill.block.lr: expected a finite number"),
    ("budget: {distill: {block: {lr: fast}}}", "budget.distill.block.lr: expected a finite number, got 'fast'"),
])
def test_a_bad_file_is_one_line_naming_the_key_and_exit_2(tmp_path, capsys, text, fragment):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    assert main(["run", "--config", str(path), "--print-config", "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert fragment in err and str(path) in err and err.count("\n") == 1, err
    assert not (tmp_path / "w").exists()


def test_missing_config_file_is_one_line(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path / "nope.yaml"), "--print-config"]) == 2
    assert "not found" in capsys.readouterr().err


def test_budgets_keep_their_numbers():
    # the values the positional Budget(...) rows held: a run must do the same work as before
    old = {  # train_hw, teacher arch, teacher steps, distill steps, train/val images, calibrate, predictor n,
             # finetune steps, the teacher's val images, trials, evaluate top, rounds, round points, batch, repeats, seconds
        "micro": ((32, 64), "stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest", 10, 3, 8, 8, 2, 4, 2, 8, 30, 1, 1, 1,
                  4, (3, 5), 0.2),
        "quick": ((64, 128), "segmentation_ffnet46NS_CCC_mobile", 500, 80, 128, 32, 4, 10, 100, 64, 300, 2, 2, 3, 8,
                  (10, 60), 2.0),
        "full": ((128, 256), "segmentation_ffnet46NS_CCC_mobile", 1500, 300, 256, 64, 8, 20, 300, None, 2000, 3, 3, 3, 8,
                 (10, 60), 2.0),
    }
    for name, want in old.items():
        b = get_budget(name)
        got = (b.train_hw, b.teacher.arch, b.teacher.steps, b.distill.block.steps, b.distill.train_images,
               b.distill.val_images, b.latency.calibrate, b.predictor.points, b.evaluate.finetune.steps,
               b.teacher.val_images, b.search.trials, b.evaluate.top, b.evaluate.rounds, b.evaluate.round_points,
               b.evaluate.finetune.batch_size, (b.latency.protocol.min_repeats, b.latency.protocol.max_repeats),
               b.latency.protocol.max_seconds)
        assert got == want, name
        assert b.teacher.batch_size == b.distill.block.batch_size == b.evaluate.finetune.batch_size
        # what FinetuneSettings gave the training loop
        f = b.evaluate.finetune
        assert (f.lr, f.kd_weight, f.kd_temperature, f.checkpoint_every, f.seed) == (0.01, 1.0, 1.0, 50, 0)
    # the quick budget's fine-tune and scoring since 2026-12-06: F2/256 (docs/results.md); the others as before
    scoring = {name: (b.evaluate.val_images, b.evaluate.finetune.freeze_bn, b.evaluate.finetune.grad_clip)
               for name, b in BUDGETS.items()}
    assert scoring == {"micro": (8, False, None), "quick": (256, True, 2.0), "full": (None, False, None)}
    with pytest.raises(TypeError):
        type(get_budget("micro"))("micro", (32, 64))  # keyword-only: no positional rows any more
    with pytest.raises(InvalidInput, match="did you mean: quick"):
        get_budget("quik")


def test_the_training_precision_is_the_flag_else_the_budgets_on_a_cpu_that_runs_it_natively():
    from ffnet_nas.run_config import training_precision

    import dataclasses

    micro = get_budget("micro")
    assert all(get_budget(name).cpu_amp is None for name in BUDGETS)  # float32 unless asked (docs/results.md)
    quick = dataclasses.replace(get_budget("quick"), cpu_amp="bf16")  # what `budget: {cpu_amp: bf16}` gives
    for native in (True, False):
        assert training_precision(RunConfig(budget=quick), native_bf16=native) == ("bf16" if native else None)
        assert training_precision(RunConfig(budget=quick, amp="fp32"), native_bf16=native) is None  # asked: float32
        assert training_precision(RunConfig(budget=micro, amp="bf16"), native_bf16=native) == "bf16"  # asked: bf16
        assert training_precision(RunConfig(budget=micro), native_bf16=native) is None  # the tests' budget: float32
        assert training_precision(RunConfig(budget=quick, device="cuda"), native_bf16=native) is None  # CPUs only


def test_a_run_records_the_precision_it_trained_in(tmp_path, monkeypatch):
    """open_run resolves the precision once: what the run summary's provenance then records, and
    what `evaluate` and `fit-predictor --check` repeat (predictor_check.run_settings)."""
    import dataclasses

    from ffnet_nas import settings, steps
    from ffnet_nas.workspace import Workspace

    budget = dataclasses.replace(get_budget("micro"), cpu_amp="bf16")
    for native, want in ((True, "bf16"), (False, None)):
        monkeypatch.setattr(settings, "native_bf16_cpu", lambda native=native: native)
        ctx = steps.open_run(workspace=Workspace(tmp_path / "w"), config=RunConfig(budget=budget), progress=False)
        assert ctx.config.amp == want
    ctx = steps.open_run(workspace=Workspace(tmp_path / "w"), config=RunConfig(budget=budget, amp="fp32"), progress=False)
    assert ctx.config.amp is None


def test_a_run_summary_from_before_the_change_still_reads(tmp_path):
    from ffnet_nas.run_summary import read_summary

    old = {"budget": "quick", "space": "mobile", "device": "AMD EPYC", "target": "latency<=20.5ms",
           "reference": "segmentation_ffnet74NS_CBB_mobile", "best": {"code": "x", "measured_miou": 44.79},
           "reference_row": None, "beats_reference": True, "held_out_confirms": None, "rounds": [],
           "seconds": {"teacher": 1.0}, "files": {"teacher": "t.pt"},
           # the flat budget of the older version
           "provenance": {"budget": {"name": "quick", "input_hw": [64, 128], "teacher_steps": 500, "trials": 300}}}
    path = tmp_path / "run_summary.json"
    path.write_text(json.dumps(old))
    summary = read_summary(path)
    assert summary.budget == "quick" and summary.best["measured_miou"] == 44.79 and summary.beats_reference
    path.write_text(json.dumps({"space": "mobile"}))
    with pytest.raises(InvalidInput, match="re-run it"):
        read_summary(path)


def test_an_exponent_without_a_dot_is_a_number(tmp_path, capsys):
    """PyYAML reads YAML 1.1, where `1e-3` is a string; a learning rate written so is still a number."""
    path = tmp_path / "run.yaml"
    path.write_text("budget: {name: quick, distill: {block: {lr: 1e-3}}, evaluate: {finetune: {lr: 5E-3}}}\n")
    assert main(["run", "--config", str(path), "--print-config"]) == 0
    text = capsys.readouterr().out
    assert "lr: 0.001" in text and "lr: 0.005" in text
