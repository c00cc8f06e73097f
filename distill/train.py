"""Train one student block on cached teacher features; report its held-out NSR.

Settings: `ffnet_nas.settings.BlockTrainConfig`.

Loss: NSR = ||S-T||^2 / ||T||^2 per batch (sums over the batch). Held-out NSR pools the sums
over the whole validation set (so large and small images weigh by their energy, as in the
per-batch loss). A loss or a held-out NSR that is NaN/inf marks the block `failed`; its weights
are still saved for inspection but `assemble` never uses them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from ffnet_nas.distill.blocks import StudentBlock, block_io, nsr, nsr_terms
from ffnet_nas.distill.choices import ChoiceSpec
from ffnet_nas.distill.features import FeatureSet
from ffnet_nas.settings import BlockTrainConfig, autocast_factory, check_amp

OK, FAILED = "ok", "failed"


@dataclass(frozen=True)
class BlockResult:
    spec: ChoiceSpec
    status: str
    nsr_val: float
    nsr_train: float  # mean NSR over the last 10% of steps
    steps: int
    seconds: float
    message: str = ""
    state_dict: dict = field(default_factory=dict, repr=False)


def _finite(x: float) -> bool:
    return math.isfinite(x)


def train_block(spec: ChoiceSpec, train: FeatureSet, val: FeatureSet, *, teacher_channels: tuple[int, ...],
                num_classes: int, teacher_input_scale: int, config: BlockTrainConfig = BlockTrainConfig(),
                device: str = "cpu") -> BlockResult:
    """`device`: where the student trains; the features stay where they are (memory-mapped on
    disk) and only each batch is moved there."""
    device = torch.device(device)
    check_amp(config.amp, device)
    torch.manual_seed(config.seed)
    # NHWC on CUDA (cuDNN's fastest layout); NCHW on the CPU, as every CPU figure was measured
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    student = StudentBlock(spec, teacher_channels=teacher_channels, num_classes=num_classes).to(device, memory_format=fmt)
    autocast = autocast_factory(config.amp, device)
    scaler = torch.amp.GradScaler(device.type) if config.amp == "fp16" else None
    # Adam + cosine decay: few steps per block, so no warm-up phase to waste them on
    opt = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, config.steps))
    gen = torch.Generator().manual_seed(config.seed)
    started = time.perf_counter()
    tail, status, message = [], OK, ""
    student.train()
    for step in range(config.steps):
        index = torch.randint(len(train), (min(config.batch_size, len(train)),), generator=gen)
        x, target = block_io(spec, _to(train.batch(index), device), teacher_input_scale=teacher_input_scale)
        with autocast():
            out = student(x)
        loss = nsr(out.float(), target)
        if not torch.isfinite(loss):
            status, message = FAILED, f"training loss became {loss.item()} at step {step}"
            break
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        sched.step()
        if step >= config.steps - max(1, config.steps // 10):
            tail.append(loss.item())
    nsr_val = evaluate_block(student, spec, val, teacher_input_scale=teacher_input_scale,
                             batch_size=config.eval_batch_size, device=device)
    if status == OK and not _finite(nsr_val):
        status, message = FAILED, f"held-out NSR is {nsr_val}"
    return BlockResult(spec=spec, status=status, nsr_val=nsr_val, nsr_train=sum(tail) / len(tail) if tail else float("nan"),
                       steps=step + 1 if config.steps else 0, seconds=time.perf_counter() - started,
                       message=message, state_dict={k: v.detach().cpu().clone() for k, v in student.state_dict().items()})


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True, memory_format=torch.channels_last) for k, v in batch.items()}


@torch.no_grad()
def evaluate_block(student: StudentBlock, spec: ChoiceSpec, val: FeatureSet, *, teacher_input_scale: int,
                   batch_size: int = 16, device: str | torch.device = "cpu") -> float:
    """Pooled held-out NSR: sum ||S-T||^2 / sum ||T||^2 over the validation set, eval mode, in
    float32 (the score does not depend on the training precision)."""
    device = torch.device(device)
    student.eval()
    noise = signal = 0.0
    for lo in range(0, len(val), batch_size):
        x, target = block_io(spec, _to(val.batch(range(lo, min(len(val), lo + batch_size))), device),
                             teacher_input_scale=teacher_input_scale)
        n, s = nsr_terms(student(x), target)
        noise, signal = noise + n.item(), signal + s.item()
    return noise / signal if signal > 0 else float("nan")
