"""A reusable training loop for segmentation models, and `evaluate`.

This module owns the loop, the losses and the training checkpoint; the settings it reads
(`TrainConfig`) live in `ffnet_nas.settings`. It reports through logging (DEBUG: resumes);
the per-step progress is a tqdm bar (`progress=False` turns it off).

    result = train(model, dataset, config=TrainConfig(steps=2000), checkpoint_path=".../train_state.pt",
                   teacher=None)
    score = evaluate(model, val_dataset)     # -> metrics.SegmentationScore (.miou, .iou, ...)

Loss: cross-entropy on logits resized to the label size (ignore 255), plus optionally a
pixel-wise KD term KL(teacher || student) at temperature T (Hinton et al.), weighted by
`kd_weight`. Optimiser SGD (momentum, the FFNet recipe) or AdamW; LR poly(0.9) or cosine,
with linear warm-up; the LR is a pure function of the step, so nothing but the step has to be
restored for it.

Kill and resume: every `checkpoint_every` steps (and at the end) the model, optimiser,
step, loss log and RNG states are written atomically to `checkpoint_path`. Calling `train`
again with the same path continues from the saved step. Which images make up a batch is a
pure function of (seed, step), and the augmentation RNG is restored, so a resumed run reproduces
the uninterrupted run exactly (a test checks it). With DataLoader workers (`num_workers` > 0),
whose RNG states no checkpoint can hold, every item is augmented under a seed that is a pure
function of (seed, rank, step, position): the same batches after a resume, though not the same
draws as with num_workers=0.

On CUDA the model, the teacher and the images are channels_last (NHWC), what cuDNN runs fastest;
the CPU keeps NCHW. Mixed precision (`amp`): the forward passes (student and teacher) run under torch.autocast in
bfloat16 or float16, the losses in float32; float16 (CUDA only) scales the loss with a
GradScaler, whose state the checkpoint keeps.

Several processes (torchrun; `ffnet_nas.distributed`): the model is wrapped in
DistributedDataParallel (SyncBatchNorm when asked, CUDA only). The global batch of step s is still
`batches.batch_indices(s, ...)`; rank r trains on every world_size-th image of it from position r, so the
batch size must split evenly. The cross-entropy is summed on each rank and divided by the valid
pixels of the whole global batch (one all-reduce of a count), so the averaged gradient is the
single-process gradient of the same batch; what still differs is BatchNorm, whose batch statistics
come from each rank's share unless SyncBatchNorm is on, and the augmentation draws (each rank has
its own random stream). Only rank 0 writes the checkpoint; it holds every rank's RNG state, so a
resumed job with the same number of processes reproduces the uninterrupted one. `evaluate` shares
the batches out over the ranks and sums the confusion matrices: the same score as one process.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ffnet_nas import batches, soft_targets
from ffnet_nas.averaging import TailAverage, batch_norms, recalibrate_bn
from ffnet_nas.data import fixed_batches
from ffnet_nas.metrics import IGNORE_INDEX, ConfusionMeter, SegmentationScore
# OPTIMIZERS and SCHEDULES are re-exported (the CLI's copy is checked against them); the settings
# class itself is imported from its one home, ffnet_nas.settings.
from ffnet_nas.settings import OPTIMIZERS, SCHEDULES, TrainConfig, check_amp
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import DIGEST_KEY, check_digest, refused_as_code

logger = logging.getLogger(__name__)

__all__ = ["OPTIMIZERS", "SCHEDULES", "TrainResult", "TrainingDiverged", "evaluate",
           "kd_loss", "load_train_state", "make_optimizer", "segmentation_loss", "train"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf: the weights are not usable (nothing is written over the last good checkpoint)."""


@dataclass(frozen=True)
class TrainResult:
    steps: int
    start_step: int  # > 0 when the run resumed from a checkpoint
    final_loss: float
    seconds: float  # this invocation only
    losses: tuple[tuple[int, float], ...] = field(repr=False, default=())
    checkpoint_path: Path | None = None


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, *, ignore_index: int = IGNORE_INDEX,
                      reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy with logits bilinearly resized to the label size (FFNet outputs stride 4/8).
    `reduction="sum"`: summed over the valid pixels (the DDP loop divides by the global count)."""
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, target, ignore_index=ignore_index, reduction=reduction)


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
    """Pixel-wise KL(teacher || student) at temperature T, times T^2 (gradient scale of Hinton et al.)."""
    if teacher.shape[-2:] != student.shape[-2:]:
        teacher = F.interpolate(teacher, size=student.shape[-2:], mode="bilinear", align_corners=False)
    t = temperature
    log_p = F.log_softmax(student / t, dim=1)
    log_q = F.log_softmax(teacher / t, dim=1)
    # mean over pixels (not batch-sum) so the weight does not depend on the output size
    return (log_q.exp() * (log_q - log_p)).sum(1).mean() * t * t


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on BN parameters and biases (1-D tensors): standard for ResNet-style nets.
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=config.lr)


def _fingerprint(model: nn.Module, config: TrainConfig, extra: dict[str, Any]) -> dict[str, Any]:
    """What must not change between a run and its resume (the step count may grow)."""
    arch = getattr(model, "arch", None)
    cfg = {k: v for k, v in config.to_dict().items() if k not in ("steps", "checkpoint_every", "num_workers")}
    if cfg.get("amp") is None:
        cfg.pop("amp", None)  # float32: the fingerprint of checkpoints written before the setting existed
    return {"arch": getattr(arch, "code", type(model).__name__), "config": cfg, **extra}


def load_train_state(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        # A workdir may come from elsewhere (a shared run folder, a download): never unpickle code.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not refused_as_code(e):
            raise InvalidInput(f"training checkpoint {str(path)!r} is corrupt or truncated ({type(e).__name__}); "
                               "delete it to start over") from None
        raise InvalidInput(f"training checkpoint {str(path)!r} holds Python objects that are not loaded because "
                           "unpickling them could run code (a planted file, or one from an earlier ffnet-nas, which "
                           "kept numpy objects there); delete it to restart this training from its first step") from None
    except Exception as e:
        raise InvalidInput(f"training checkpoint {str(path)!r} is corrupt or truncated ({type(e).__name__}); "
                           "delete it to start over") from None
    if not isinstance(state, dict) or not {"step", "model", "optimizer", "rng", "fingerprint"} <= set(state):
        raise InvalidInput(f"training checkpoint {str(path)!r} is not one this tool writes (expected step, model, "
                           "optimizer, rng, fingerprint); delete it to start over")
    check_digest(state, path=path, what="training checkpoint", hint="delete it to start over", key="model")
    if "average" in state:  # the tail average's partial sum (TrainConfig.average_tail) has its own digest
        check_digest({DIGEST_KEY: state.get("average_sha1"), "average": state["average"]}, path=path,
                     what="training checkpoint", hint="delete it to start over", key="average")
    return state


def train(model: nn.Module, dataset, *, config: TrainConfig, checkpoint_path: str | Path | None = None,
          teacher: nn.Module | None = None, device: str | torch.device = "cpu", progress: bool = True,
          desc: str = "train", fingerprint: dict[str, Any] | None = None,
          on_step: Callable[[int, float], None] | None = None, sync_bn: bool | None = None) -> TrainResult:
    """Train `model` in place on `dataset` (items: normalised image, int64 mask) for `config.steps`.

    Resumes from `checkpoint_path` when it exists and was made by the same model/config/
    `fingerprint` (a mismatch is an InvalidInput naming the difference). `on_step(step, loss)`
    runs after each step (tests use it to simulate a kill). Raises `TrainingDiverged` on a
    non-finite loss; the last good checkpoint stays.

    Inside a `ffnet_nas.distributed.session` with several ranks every rank calls this alike: DDP,
    this rank's share of each global batch, rank 0 writing the checkpoint (see the module doc).
    `sync_bn` (None: the session's setting) converts BatchNorm to SyncBatchNorm for the run and back
    after it; one process ignores it (plain BatchNorm computes the same).
    """
    from tqdm.auto import tqdm

    from ffnet_nas import distributed

    device = torch.device(device)
    rank, world = distributed.rank(), distributed.world_size()
    if len(dataset) == 0:
        raise InvalidInput("the training set is empty: expected at least one image")
    if config.batch_size > len(dataset):
        # a batch draws distinct images; a larger one would only allocate (100000000 took 13 GB before failing)
        raise InvalidInput(f"batch size {config.batch_size} is larger than the training set ({len(dataset)} images): "
                           f"expected at most {len(dataset)}")
    if config.batch_size % world:
        raise InvalidInput(f"batch size {config.batch_size} does not split over {world} processes: expected a multiple "
                           f"of {world} (the global batch is shared out evenly)")
    if config.kd_weight > 0 and teacher is None:
        raise InvalidInput(f"kd_weight={config.kd_weight} needs a teacher model")
    check_amp(config.amp, device)
    sync_bn = distributed.sync_bn() if sync_bn is None else bool(sync_bn)
    if sync_bn and world > 1 and device.type == "cpu":
        raise InvalidInput("sync_bn on the CPU: torch's SyncBatchNorm runs on GPUs only; expected a CUDA device")
    model.to(device)
    synced = world > 1 and sync_bn
    if synced:
        # in place for every BatchNorm below the root (the FFNet roots are not BatchNorm); undone after the run
        nn.SyncBatchNorm.convert_sync_batchnorm(model)
    try:
        return _train(model, dataset, config=config, checkpoint_path=checkpoint_path, teacher=teacher, device=device,
                      progress=progress and rank == 0, desc=desc, fingerprint=fingerprint, on_step=on_step,
                      rank=rank, world=world, tqdm=tqdm)
    finally:
        if synced:
            _revert_sync_bn(model)


def _teacher_key(teacher: nn.Module, config: TrainConfig, fmt: torch.memory_format) -> tuple:
    """What makes the teacher's output for a batch what it is, besides the batch: its weights and
    buffers, the autocast precision, the memory format and the thread count (a reduction split
    over other threads may round differently), so a remembered target is the one it would compute."""
    from ffnet_nas.space.io import tensor_digest

    return tensor_digest(teacher.state_dict()), config.amp, str(fmt), torch.get_num_threads()


def _revert_sync_bn(module: nn.Module) -> None:
    """SyncBatchNorm back to BatchNorm2d, same parameters and buffers (what files and callers expect)."""
    for name, child in module.named_children():
        if isinstance(child, nn.SyncBatchNorm):
            plain = nn.BatchNorm2d(child.num_features, eps=child.eps, momentum=child.momentum, affine=child.affine,
                                   track_running_stats=child.track_running_stats)
            if child.affine:
                plain.weight, plain.bias = child.weight, child.bias
            plain.running_mean, plain.running_var = child.running_mean, child.running_var
            plain.num_batches_tracked = child.num_batches_tracked
            plain.train(child.training)
            setattr(module, name, plain)
        else:
            _revert_sync_bn(child)


def _train(model: nn.Module, dataset, *, config: TrainConfig, checkpoint_path: str | Path | None,
           teacher: nn.Module | None, device: torch.device, progress: bool, desc: str,
           fingerprint: dict[str, Any] | None, on_step: Callable[[int, float], None] | None,
           rank: int, world: int, tqdm) -> TrainResult:
    from ffnet_nas import distributed

    fmt = memory_format(device)
    plain_dataset = dataset  # before any worker wrapping: the crops precise BN averages over
    model.to(memory_format=fmt)  # before the optimiser: it holds the parameters as they are then
    optimizer = make_optimizer(model, config)
    fp = _fingerprint(model, config, fingerprint or {})
    checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
    start, losses = 0, []
    # every rank reads the one file rank 0 wrote (nothing writes it before the first step)
    state = load_train_state(checkpoint_path) if checkpoint_path is not None else None
    if state is not None:
        if state.get("fingerprint") != fp:
            diff = _describe_difference(state.get("fingerprint") or {}, fp)
            raise InvalidInput(f"training checkpoint {str(checkpoint_path)!r} belongs to a different run ({diff}); "
                               "expected the same arch, data and settings: delete it or use another --workdir")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, losses = int(state["step"]), list(state["losses"])
        logger.debug("%s: resuming from step %d of %d (%s)", desc, start, config.steps, checkpoint_path)
    # a partial sum belongs to the tail of the run that wrote it: a resume to more steps starts a new tail
    partial = (state or {}).get("average") if (state or {}).get("average_steps") == config.steps else None
    tail = TailAverage(last=config.average_steps, steps=config.steps, state=partial) if config.average_steps else None
    if teacher is not None:
        teacher.to(device, memory_format=fmt).eval()
        # the memo keeps CPU targets only (ffnet_nas.soft_targets): no digest to take elsewhere
        teacher_key = _teacher_key(teacher, config, fmt) if config.kd_weight > 0 and device.type == "cpu" else None
    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # broadcasts rank 0's weights at construction; averages the gradients in backward
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def save(step: int) -> None:
        if checkpoint_path is None:
            return
        from ffnet_nas.space.io import atomic_torch_save, tensor_digest

        # Each rank's augmentation stream is its own: the file keeps all of them, or a resumed job
        # would augment differently from the uninterrupted one on every rank but 0.
        rng_ranks = distributed.all_gather_object(batches.rng_state()) if world > 1 else None
        if rank == 0:
            weights = model.state_dict()
            payload = {"step": step, "model": weights, "optimizer": optimizer.state_dict(), "rng": batches.rng_state(),
                       "losses": losses, "fingerprint": fp, DIGEST_KEY: tensor_digest(weights)}
            if scaler is not None:
                payload["scaler"] = scaler.state_dict()
            if tail is not None and tail.state_dict():
                payload["average"] = tail.state_dict()
                payload["average_sha1"] = tensor_digest(tail.state_dict())
                payload["average_steps"] = config.steps
            if rng_ranks is not None:
                payload["rng_ranks"] = rng_ranks
            atomic_torch_save(checkpoint_path, payload)
        # no rank runs ahead of a checkpoint that a kill could make it resume from
        distributed.barrier()

    sampler = batches.StepBatches(start=start, stop=config.steps, batch_size=config.batch_size, n=len(dataset),
                           seed=config.seed, rank=rank, world=world)
    if config.num_workers:
        # Worker processes draw from their own RNGs, which a checkpoint cannot hold: seed every item
        # from (seed, rank, step, position) instead, so a resumed run gets the same batches.
        sampler, dataset = batches.SeededSteps(sampler), batches.SeededItems(dataset)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=config.num_workers,
                                         pin_memory=device.type == "cuda")
    autocast, scaler = _mixed_precision(config.amp, device)
    if scaler is not None and state is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    if state is None and config.freeze_bn and config.precise_bn:
        # the statistics the frozen layers hold: the model's own as it starts, over fixed crops
        # (the same for every seed; fixed_batches restores the global RNG, so the stream below is
        # untouched). A resume finds them in the checkpoint's buffers instead.
        recalibrate_bn(model, _precise_bn_batches(plain_dataset, config))
    if state is None:
        # The augmentation draws from the global RNGs: seed them, or a point's result would depend
        # on what the process ran before it (one point measured 45.5 and 43.9 mIoU that way).
        batches.seed_all(batches.rank_seed(config.seed, rank))
    # Creating the iterator draws a seed from torch's RNG: do it before restoring the saved state,
    # as the uninterrupted run did it before its first step.
    stream = iter(loader)
    if state is not None:
        batches.restore_rng(state, rank=rank, world=world, seed=config.seed, start=start)
    t0 = time.perf_counter()
    loss_value = losses[-1][1] if losses else float("nan")
    ignore_index = getattr(dataset, "ignore_index", IGNORE_INDEX)
    net.train()
    bar = tqdm(total=config.steps, initial=start, desc=desc, disable=not progress, dynamic_ncols=True, unit="step")
    try:
        for step, (images, masks) in enumerate(stream, start=start):
            lr = config.lr_at(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if config.freeze_bn:  # again each step: an on_step that evaluates leaves the model in train mode
                _hold_batch_norm(net)
            images = images.to(device, non_blocking=True, memory_format=fmt)
            masks = masks.to(device, non_blocking=True)
            with autocast():
                logits = net(images)
            logits = logits.float()  # the losses in float32, as without autocast
            if world > 1:
                # Sum here, divide by the valid pixels of the whole global batch: DDP's mean over the
                # ranks then gives the single-process mean over that batch, even when the ranks hold
                # different numbers of ignored pixels.
                valid = distributed.all_reduce_sum((masks != ignore_index).sum().to(torch.float64))
                summed = segmentation_loss(logits, masks, ignore_index=ignore_index, reduction="sum")
                loss = summed * (world / valid).to(summed.dtype)
            else:
                loss = segmentation_loss(logits, masks, ignore_index=ignore_index)
            if teacher is not None and config.kd_weight > 0:
                with torch.no_grad(), autocast():
                    # the same batch under the same teacher gives the same targets: remembered across fine-tunes
                    target = soft_targets.shared()(teacher, images, key=teacher_key).float()
                # a mean over this rank's pixels: every rank holds the same number, so DDP's mean is the global one
                loss = loss + config.kd_weight * kd_loss(logits, target, temperature=config.kd_temperature)
            if world > 1:
                # the loss of the global batch, the same on every rank: all of them stop on a non-finite one
                loss_value = float(distributed.all_reduce_sum(loss.detach().clone()) / world)
            else:
                loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise TrainingDiverged(f"loss became {loss_value} at step {step}; expected a finite loss: lower the learning rate "
                                       f"(now {lr:.3g}) or check the data")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)  # clip the true gradients
            else:
                loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)  # skipped when the fp16 gradients overflowed
                scaler.update()
            else:
                optimizer.step()
            if tail is not None:
                tail.add(step + 1, model)
            losses.append((step + 1, loss_value))
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2g}")
            if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
                save(step + 1)
            if on_step is not None:
                on_step(step + 1, loss_value)
    finally:
        bar.close()
    _finish(model, plain_dataset, config=config, tail=tail)
    if world > 1:
        # The running statistics are each rank's own after the last forward; rank 0's are the ones
        # its checkpoint and model file hold, so every rank scores and keeps those.
        for buffer in model.buffers():
            distributed.broadcast_(buffer)
    return TrainResult(steps=config.steps, start_step=start, final_loss=loss_value, seconds=time.perf_counter() - t0,
                       losses=tuple(losses), checkpoint_path=checkpoint_path)




def _finish(model: nn.Module, dataset, *, config: TrainConfig, tail: TailAverage | None) -> None:
    """The weights the run ends with (ffnet_nas.averaging): the tail average, then precise BatchNorm
    statistics over the first `config.precise_bn` training crops, drawn the same for every seed (so
    two seeds' statistics differ only through their weights). Runs again on a resume of a finished
    run, with the same result: the checkpoint holds the last step's weights and the tail's sum."""
    if tail is not None and tail.count:
        tail.apply(model)
    elif tail is not None:  # a checkpoint past the configured steps: no step of the tail ran here
        logger.warning("no step of the averaged tail ran (the checkpoint is past step %d): the last weights are kept",
                       config.steps)
    if config.precise_bn and not config.freeze_bn:  # held statistics are the ones the weights trained under
        recalibrate_bn(model, _precise_bn_batches(dataset, config))
    model.train()  # every layer, as a run without these settings leaves it


def _precise_bn_batches(dataset, config: TrainConfig) -> list:
    """The first `config.precise_bn` training crops, drawn the same for every seed and every call."""
    return fixed_batches(dataset, batch_size=config.batch_size, n_batches=math.ceil(config.precise_bn / config.batch_size),
                         seed=0)


def _hold_batch_norm(model: nn.Module) -> None:
    """Every BatchNorm layer normalises with its running statistics and stops updating them (eval
    mode), while its scale and shift keep their gradients (`TrainConfig.freeze_bn`)."""
    for m in batch_norms(model):
        m.eval()


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on CUDA, where cuDNN's convolutions (and tensor cores under autocast) run faster
    in NHWC; the CPU keeps NCHW, which is what every CPU figure here was measured in."""
    return torch.channels_last if torch.device(device).type == "cuda" else torch.contiguous_format


def _mixed_precision(amp: str | None, device: torch.device):
    """(autocast context factory, gradient scaler or None) for `amp`; float32: a no-op context."""
    from ffnet_nas.settings import autocast_factory

    # float16's narrow range underflows small gradients: scale the loss (bfloat16 has float32's range)
    return autocast_factory(amp, device), (torch.amp.GradScaler(device.type) if amp == "fp16" else None)


def _describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    flat_old, flat_new = _flatten(old), _flatten(new)
    keys = [k for k in sorted(set(flat_old) | set(flat_new)) if flat_old.get(k) != flat_new.get(k)]
    return "; ".join(f"{k}: {flat_old.get(k)!r} there, {flat_new.get(k)!r} now" for k in keys[:3]) or "unknown difference"


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@torch.inference_mode()
def evaluate(model: nn.Module, dataset, *, batch_size: int = 8, device: str | torch.device = "cpu",
             num_workers: int = 0, limit: int | None = None, start: int = 0, progress: bool = True,
             desc: str = "eval") -> SegmentationScore:
    """mIoU of `model` on `dataset` (eval mode; logits resized bilinearly to the label size,
    as the Cityscapes evaluation does). `start` and `limit` evaluate images start..start+limit only.

    In a distributed session every rank calls it with the same model: the batches (the ones one
    process would make) are shared out over the ranks and the confusion matrices summed, so every
    rank returns the single-process score."""
    from tqdm.auto import tqdm

    from ffnet_nas import distributed

    device = torch.device(device)
    was_training = model.training
    fmt = memory_format(device)
    model.to(device, memory_format=fmt).eval()
    end = len(dataset) if limit is None else min(start + limit, len(dataset))
    indices: Sequence[int] = range(min(start, end), end)
    # whole batches per rank, not images: a batch holds the images it holds in one process, so
    # every logit (and the summed matrix) is the single-process one
    shards = distributed.shard([list(indices[i:i + batch_size]) for i in range(0, len(indices), batch_size)])
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=shards, num_workers=num_workers)
    meter = ConfusionMeter(num_classes=dataset.num_classes, ignore_index=getattr(dataset, "ignore_index", IGNORE_INDEX),
                           class_names=getattr(dataset, "class_names", ()))
    try:
        for images, masks in tqdm(loader, desc=desc, disable=not progress or not distributed.is_main(),
                                  dynamic_ncols=True, unit="batch"):
            logits = model(images.to(device, memory_format=fmt))
            meter.update(logits.float().cpu(), masks)
    finally:
        model.train(was_training)
    distributed.all_reduce_sum(meter.matrix)
    return meter.score()
