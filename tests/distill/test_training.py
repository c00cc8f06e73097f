"""Training loop: learning, exact resume after a kill, KD, schedules, divergence; the CLI end to end."""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ffnet_nas.data import make_dataset
from ffnet_nas.settings import TrainConfig
from ffnet_nas.batches import batch_indices
from ffnet_nas.training import TrainingDiverged, evaluate, kd_loss, train
from ffnet_nas.space.builder import build_model
from ffnet_nas.space.errors import InvalidInput
from tests.helpers.kill import Killed, kill_at

TINY = "stemC-basic-d1.1.1-w16.24.32-s2-upC-segC-nearest"
HW = (32, 64)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread():
    # Small convolutions: on a shared 2-core CPU one thread is much faster than two.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    train_ds = make_dataset("synthetic:1", "train", size_hw=HW, augment=True, num_images=16, scale_range=(0.75, 1.5))
    val_ds = make_dataset("synthetic:1", "val", size_hw=HW, num_images=8)
    return train_ds, val_ds


def _model(seed=0):
    torch.manual_seed(seed)
    return build_model(TINY, num_classes=8)


def test_loss_goes_down_and_evaluate_scores(data):
    train_ds, val_ds = data
    model = _model()
    before = evaluate(model, val_ds, progress=False)
    result = train(model, train_ds, config=TrainConfig(steps=20, batch_size=4, optimizer="adamw", lr=3e-3), progress=False)
    first = sum(l for _, l in result.losses[:5]) / 5
    last = sum(l for _, l in result.losses[-5:]) / 5
    assert last < 0.7 * first, (first, last)
    after = evaluate(model, val_ds, progress=False)
    assert after.miou > before.miou and 0 <= after.miou <= 1
    assert model.training  # evaluate restores the mode


def test_kill_and_resume_reproduces_the_uninterrupted_run(data, tmp_path):
    train_ds, _ = data
    config = TrainConfig(steps=6, batch_size=2, checkpoint_every=2)
    torch.manual_seed(123)
    straight = _model()
    train(straight, train_ds, config=config, progress=False)
    ckpt = tmp_path / "state.pt"
    torch.manual_seed(123)
    interrupted = _model()
    with pytest.raises(Killed):
        train(interrupted, train_ds, config=config, checkpoint_path=ckpt, progress=False, on_step=kill_at(3))
    assert torch.load(ckpt, weights_only=False)["step"] == 2  # step 3 was lost with the kill, step 2 saved
    torch.manual_seed(999)  # the RNG state comes from the checkpoint, not from here
    resumed = _model(seed=7)  # fresh weights: they come from the checkpoint too
    result = train(resumed, train_ds, config=config, checkpoint_path=ckpt, progress=False)
    assert result.start_step == 2 and len(result.losses) == 6
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_a_run_does_not_depend_on_what_the_process_ran_before(data):
    train_ds, _ = data  # augmented: random scale, crop and flip from the global RNG
    config = TrainConfig(steps=4, batch_size=2)
    results = []
    for history in (1, 1000):
        model = _model()
        torch.rand(history)  # e.g. other points built or trained earlier in the same process
        train(model, train_ds, config=config, progress=False)
        results.append(model.state_dict())
    for k, a in results[0].items():
        assert torch.equal(a, results[1][k]), k


def test_checkpoint_from_another_run_is_refused(data, tmp_path):
    train_ds, _ = data
    ckpt = tmp_path / "state.pt"
    train(_model(), train_ds, config=TrainConfig(steps=1, batch_size=2), checkpoint_path=ckpt, progress=False)
    with pytest.raises(InvalidInput, match="belongs to a different run.*lr"):
        train(_model(), train_ds, config=TrainConfig(steps=2, batch_size=2, lr=0.5), checkpoint_path=ckpt, progress=False)
    ckpt.write_bytes(b"garbage")
    with pytest.raises(InvalidInput, match="corrupt"):
        train(_model(), train_ds, config=TrainConfig(steps=2, batch_size=2), checkpoint_path=ckpt, progress=False)


def test_a_training_checkpoint_damaged_inside_its_weights_is_refused(data, tmp_path):
    from tests.helpers.hostile import flip_a_weight_byte

    train_ds, _ = data
    ckpt = tmp_path / "state.pt"
    model = _model()
    train(model, train_ds, config=TrainConfig(steps=1, batch_size=2), checkpoint_path=ckpt, progress=False)
    weights = torch.load(ckpt, weights_only=True)["model"]
    flip_a_weight_byte(ckpt, max(weights.values(), key=lambda t: t.numel()))
    with pytest.raises(InvalidInput, match=r"training checkpoint .*state.pt' is damaged: its weights hash to .*"
                                           "delete it to start over"):
        train(_model(), train_ds, config=TrainConfig(steps=2, batch_size=2), checkpoint_path=ckpt, progress=False)
    torch.save({"step": 1}, ckpt)  # a torch file, but not a training state
    with pytest.raises(InvalidInput, match="is not one this tool writes"):
        train(_model(), train_ds, config=TrainConfig(steps=2, batch_size=2), checkpoint_path=ckpt, progress=False)


def test_non_finite_loss_raises_and_keeps_last_checkpoint(data, tmp_path):
    train_ds, _ = data

    class Poisoned(torch.utils.data.Dataset):
        num_classes, ignore_index = 8, 255

        def __len__(self):
            return len(train_ds)

        def __getitem__(self, i):
            image, mask = train_ds[i]
            return image * float("nan"), mask

    with pytest.raises(TrainingDiverged, match="expected a finite loss"):
        train(_model(), Poisoned(), config=TrainConfig(steps=3, batch_size=2), checkpoint_path=tmp_path / "s.pt", progress=False)
    assert not (tmp_path / "s.pt").exists()


def test_kd_term(data):
    logits = torch.randn(2, 8, 4, 8)
    assert kd_loss(logits, logits).abs() < 1e-6
    assert kd_loss(logits, torch.randn(2, 8, 2, 4), temperature=2.0) > 0
    train_ds, _ = data
    teacher = _model(seed=5)
    with pytest.raises(InvalidInput, match="needs a teacher"):
        train(_model(), train_ds, config=TrainConfig(steps=1, kd_weight=1.0), progress=False)
    result = train(_model(), train_ds, config=TrainConfig(steps=2, batch_size=2, kd_weight=0.5, kd_temperature=2.0),
                   teacher=teacher, progress=False)
    assert math.isfinite(result.final_loss)


def test_schedules_and_batches():
    poly = TrainConfig(steps=100, lr=0.1, warmup_steps=10)
    assert poly.lr_at(0) == pytest.approx(0.01) and poly.lr_at(9) == pytest.approx(0.1)
    assert poly.lr_at(10) == pytest.approx(0.1) and poly.lr_at(100) == 0
    cos = TrainConfig(steps=100, lr=0.1, schedule="cosine")
    assert cos.lr_at(50) == pytest.approx(0.05)
    seen = [i for s in range(5) for i in batch_indices(s, batch_size=4, n=20, seed=0)]
    assert sorted(seen) == list(range(20))  # one epoch: every image exactly once
    assert batch_indices(7, batch_size=4, n=20, seed=0) == batch_indices(7, batch_size=4, n=20, seed=0)
    with pytest.raises(InvalidInput, match="optimizer"):
        TrainConfig(optimizer="lion")


def _cli(workdir, *extra):
    return [sys.executable, "-m", "ffnet_nas", "train-teacher", "--arch", TINY, "--input-size", "32x64", "--batch-size", "2",
            "--checkpoint-every", "2", "--threads", "1", "--no-progress", "--workdir", str(workdir), *extra]


def test_cli_kill_mid_training_then_resume(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    state = tmp_path / "teacher" / "train_state.pt"
    proc = subprocess.Popen(_cli(tmp_path, "--steps", "400"), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    step = 0
    try:
        while time.time() < deadline and proc.poll() is None:
            if state.exists():
                try:
                    step = torch.load(state, weights_only=False)["step"]
                except Exception:
                    step = 0
                if step >= 4:
                    break
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert step >= 4, proc.stdout.read().decode()[-2000:]
    killed_at = torch.load(state, weights_only=False)["step"]
    assert killed_at < 400
    out = subprocess.run(_cli(tmp_path, "--steps", str(killed_at + 2), "--eval-images", "4"), cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"resumed from step {killed_at} of {killed_at + 2}" in out.stdout
    teacher_path = tmp_path / "teacher" / "teacher.pt"
    assert f"wrote teacher {teacher_path}" in out.stdout
    teacher = torch.load(teacher_path, weights_only=True)
    assert teacher["arch"] == TINY and teacher["num_classes"] == 8 and teacher["input_hw"] == [32, 64]
    assert teacher["steps"] == killed_at + 2 and 0 <= teacher["miou"] <= 1 and teacher["data"] == "synthetic:0"
    model = build_model(teacher["arch"], num_classes=teacher["num_classes"])
    model.load_state_dict(teacher["state_dict"], strict=True)


@pytest.mark.parametrize("extra, expected", [(["--data", "folder:/nonexistent"], "expected the layout"),
                                             (["--input-size", "big"], "expected"),
                                             (["--steps", "0"], "expected positive"),
                                             (["--arch", "classification_ffnet40S_BBX_mobile"], "expected a segmentation arch")])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, extra, expected):
    from ffnet_nas.cli import main

    argv = _cli(tmp_path, *extra)[3:]  # in-process: the same dispatcher the console script runs
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in err


def test_teacher_from_checkpoint_loads_strictly(tmp_path):
    from ffnet_nas.teacher import train_teacher

    weights = tmp_path / "official.pth"
    torch.save(_model(seed=3).state_dict(), weights)
    out = tmp_path / "teacher.pt"
    run = train_teacher(arch=TINY, data="synthetic", checkpoint=weights, out_path=out, input_hw=HW, eval_images=4,
                        cache_dir=tmp_path, progress=False, log=lambda s: None)
    teacher = torch.load(out, weights_only=True)
    assert teacher["source"] == str(weights) and teacher["steps"] == 0 and run.miou == teacher["miou"]
    for k, v in _model(seed=3).state_dict().items():
        assert torch.equal(teacher["state_dict"][k], v), k
    other = "stemC-basic-d1.1.2-w16.24.32-s2-upC-segC-nearest"  # one more block: keys do not match
    with pytest.raises(InvalidInput, match="does not fit the model"):
        train_teacher(arch=other, data="synthetic", checkpoint=weights, out_path=out, input_hw=HW, cache_dir=tmp_path,
                      progress=False, log=lambda s: None)
    nineteen = tmp_path / "nineteen.pth"
    torch.save(build_model(TINY, num_classes=19).state_dict(), nineteen)
    with pytest.raises(InvalidInput, match="predicts 19 classes but synthetic has 8"):
        train_teacher(arch=TINY, data="synthetic", checkpoint=nineteen, out_path=out, input_hw=HW, cache_dir=tmp_path,
                      progress=False, log=lambda s: None)


def test_teacher_reports_through_logging_when_no_log_is_given(tmp_path, caplog):
    import logging

    from ffnet_nas.teacher import train_teacher

    weights = tmp_path / "official.pth"
    torch.save(_model(seed=3).state_dict(), weights)
    out = tmp_path / "teacher.pt"
    with caplog.at_level(logging.INFO, logger="ffnet_nas.teacher"):
        train_teacher(arch=TINY, data="synthetic", checkpoint=weights, out_path=out, input_hw=HW, eval_images=4,
                      cache_dir=tmp_path, progress=False)
    messages = [r.getMessage() for r in caplog.records if r.name == "ffnet_nas.teacher"]
    assert any(m.startswith(f"wrote teacher {out}: ") for m in messages), messages
    assert any(m.startswith(f"loaded {weights} into ") for m in messages), messages


def test_a_planted_pickle_in_the_training_checkpoint_runs_nothing(tmp_path):
    import pickle

    from ffnet_nas.space.errors import InvalidInput
    from ffnet_nas.training import load_train_state
    from tests.helpers.hostile import Planted

    marker = tmp_path / "pwned"
    state = tmp_path / "train_state.pt"
    torch.save({"step": 1, "payload": Planted(marker)}, state)
    assert pickle.loads(pickle.dumps(Planted(marker))) is not None and marker.exists()  # the payload is live
    marker.unlink()
    with pytest.raises(InvalidInput, match="could run code") as err:
        load_train_state(state)
    assert not marker.exists(), "loading the checkpoint executed code from it"
    assert "\n" not in str(err.value)
