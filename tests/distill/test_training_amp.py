"""Mixed precision and DataLoader workers in the training loop: a run killed with SIGKILL resumes
bit for bit under bf16 (what this CPU runs) and with worker processes, as float32 does."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ffnet_nas.data import make_dataset
from ffnet_nas.settings import BlockTrainConfig, TrainConfig
from ffnet_nas.space.builder import build_model
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.training import train

TINY = "stemC-basic-d1.1.1-w16.24.32-s2-upC-segC-nearest"
HW = (32, 64)
REPO = Path(__file__).resolve().parents[2]

# One process trains for STEPS steps, checkpointing every 2; with KILL_AT set it SIGKILLs itself
# right after that step (the checkpoint then holds step KILL_AT - 1 rounded down to an even step).
SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import torch
    from ffnet_nas.data import make_dataset
    from ffnet_nas.settings import TrainConfig
    from ffnet_nas.space.builder import build_model
    from ffnet_nas.training import train

    ckpt, out, amp, workers, kill_at, cache = sys.argv[1:7]
    torch.set_num_threads(1)
    ds = make_dataset("synthetic:1", "train", size_hw=(32, 64), augment=True, num_images=16,
                      scale_range=(0.75, 1.5), cache_dir=cache)
    config = TrainConfig(steps=6, batch_size=2, checkpoint_every=2, amp=None if amp == "none" else amp,
                         num_workers=int(workers))
    torch.manual_seed(123)
    model = build_model("%s", num_classes=ds.num_classes)

    def on_step(step, loss):
        if step == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)

    train(model, ds, config=config, checkpoint_path=None if ckpt == "none" else ckpt, progress=False, on_step=on_step)
    torch.save(model.state_dict(), out)
""" % TINY)


def _train(tmp_path, *, ckpt, out, amp, workers, kill_at):
    return subprocess.run([sys.executable, "-c", SCRIPT, str(ckpt), str(out), amp, str(workers), str(kill_at),
                           str(tmp_path / "cache")], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)


# bf16 with worker processes is the case with both kinds of state to restore (autocast, loader
# workers); the two simpler ones add ~30 s and run with the slow tests
@pytest.mark.parametrize("amp, workers", [pytest.param("bf16", 0, marks=pytest.mark.slow),
                                          pytest.param("none", 2, marks=pytest.mark.slow), ("bf16", 2)])
def test_sigkill_then_resume_is_bit_for_bit(tmp_path, amp, workers):
    straight = _train(tmp_path, ckpt="none", out=tmp_path / "straight.pt", amp=amp, workers=workers, kill_at=0)
    assert straight.returncode == 0, straight.stderr[-2000:]
    ckpt = tmp_path / "state.pt"
    killed = _train(tmp_path, ckpt=ckpt, out=tmp_path / "never.pt", amp=amp, workers=workers, kill_at=3)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert torch.load(ckpt, weights_only=True)["step"] == 2 and not (tmp_path / "never.pt").exists()
    resumed = _train(tmp_path, ckpt=ckpt, out=tmp_path / "resumed.pt", amp=amp, workers=workers, kill_at=0)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = torch.load(tmp_path / "straight.pt"), torch.load(tmp_path / "resumed.pt")
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


@pytest.fixture(scope="module")
def data():
    return make_dataset("synthetic:1", "train", size_hw=HW, augment=True, num_images=16, scale_range=(0.75, 1.5))


def _trained(data, **config):
    torch.manual_seed(123)
    model = build_model(TINY, num_classes=data.num_classes)
    result = train(model, data, config=TrainConfig(steps=4, batch_size=2, **config), progress=False)
    return model.state_dict(), result


def test_bf16_trains_and_is_not_float32(data):
    torch.set_num_threads(1)
    fp32, _ = _trained(data)
    bf16, result = _trained(data, amp="bf16")
    assert all(torch.isfinite(v).all() for v in bf16.values()) and result.final_loss > 0
    assert any(not torch.equal(v, bf16[k]) for k, v in fp32.items())  # autocast really ran in bfloat16
    assert all(v.dtype == fp32[k].dtype for k, v in bf16.items())  # the weights stay float32


def test_workers_give_the_same_batches_whatever_their_number(data):
    torch.set_num_threads(1)
    one, _ = _trained(data, num_workers=1)
    two, _ = _trained(data, num_workers=2)
    for key, value in one.items():
        assert torch.equal(value, two[key]), key


def test_fp16_without_cuda_is_refused_in_one_line(data):
    model = build_model(TINY, num_classes=data.num_classes)
    with pytest.raises(InvalidInput, match="float16 autocast needs a CUDA device"):
        train(model, data, config=TrainConfig(steps=1, batch_size=2, amp="fp16"), progress=False)
    with pytest.raises(InvalidInput, match="amp='fp32': expected bf16 or fp16"):
        TrainConfig(amp="fp32")
    with pytest.raises(InvalidInput, match="amp='half'"):
        BlockTrainConfig(amp="half")


def test_a_float32_checkpoint_from_before_the_setting_still_resumes(data, tmp_path):
    """The fingerprint of a float32 run has no amp key, as checkpoints written before it existed."""
    from ffnet_nas.training import _fingerprint

    fp = _fingerprint(build_model(TINY, num_classes=8), TrainConfig(steps=2), {})
    assert "amp" not in fp["config"]
    assert _fingerprint(build_model(TINY, num_classes=8), TrainConfig(steps=2, amp="bf16"), {})["config"]["amp"] == "bf16"
