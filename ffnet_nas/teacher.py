"""Train (or load) the teacher FFNet and write the teacher file that distillation reads.

This module owns making a teacher: the default arch and step budget, the training recipe
and the val mIoU it reports. The file itself (keys, types, readers and the writer,
`save_teacher`) belongs to `ffnet_nas.distill.teacher`.

Progress goes to the `ffnet_nas.teacher` logger (the CLI shows INFO on stdout), or to `log`
when a caller passes one.

Under torchrun (`ffnet_nas.distributed`) every rank trains (DDP) and scores its share of the
validation batches; rank 0 alone writes the training checkpoint and the teacher file, and the
others wait for that file at a barrier (the caller reads it back on every rank).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ffnet_nas import distributed
from ffnet_nas.space.arch import resolve
from ffnet_nas.space.errors import InvalidInput

logger = logging.getLogger(__name__)

# 46NS_CCC_mobile: in bench/bench_synthetic_separation.py (same 400-step budget, 64x128) it
# reached the best val mIoU of the four published points tried (53.8 vs 50.2 for 40S_BBB_mobile,
# 48.3 for 18_dAAC, 41.4 for 40S_dBBB_mobile) at about half the cost per step of 40S_BBB_mobile
# (1.9 vs 3.7 s per batch of 8 at 128x256 on one shared CPU thread), and its stride-4 output keeps
# signs and cars. The large GPU variants would be stronger with long training but cost 3-9x more
# per step, which the embedded default's CPU budget cannot pay.
DEFAULT_TEACHER = "segmentation_ffnet46NS_CCC_mobile"
DEFAULT_STEPS = 600
# Fixed (not a share of --steps) so that re-running with more steps resumes the same run.
WARMUP_STEPS = 20


@dataclass(frozen=True)
class TeacherRun:
    path: Path
    arch: str
    miou: float
    steps: int
    start_step: int
    seconds: float
    state_path: Path | None


def train_teacher(*, arch: str = DEFAULT_TEACHER, data: str = "synthetic", out_path: str | Path,
                  state_path: str | Path | None = None, checkpoint: str | Path | None = None,
                  steps: int = DEFAULT_STEPS, batch_size: int = 8, input_hw: tuple[int, int] | None = None,
                  lr: float | None = None, optimizer: str = "adamw", checkpoint_every: int = 50, seed: int = 0,
                  num_workers: int = 0, cache_dir: str | Path | None = None, device: str = "cpu",
                  eval_images: int | None = None, init: str | Path | None = None, amp: str | None = None,
                  progress: bool = True, log: Callable[[str], None] | None = None) -> TeacherRun:
    """Train `arch` on `data` (resumable via `state_path`), or load weights from `checkpoint`
    (strict; a file that records its arch, such as another workdir's teacher, keeps that arch,
    official weights are loaded into `arch`), evaluate on the val split, and write the teacher
    file to `out_path`. `init`: official ImageNet weights the trained teacher's backbone starts
    from. `amp`: bf16 | fp16 autocast while training. Progress lines go to `log` (default: this
    module's logger at INFO)."""
    from ffnet_nas.data import make_dataset
    from ffnet_nas.distill.teacher import save_teacher
    from ffnet_nas.settings import TrainConfig
    from ffnet_nas.training import evaluate, train
    from ffnet_nas.space.builder import build_model

    log = log or logger.info
    point = resolve(arch)
    if point.is_classifier:
        raise InvalidInput(f"arch {point.code} is a classifier (seg head X): expected a segmentation arch for the teacher")
    show = progress and distributed.is_main()
    # rank 0 generates and caches the synthetic scenes; the other ranks then read its file
    with distributed.main_first():
        val = make_dataset(data, "val", size_hw=input_hw, cache_dir=cache_dir, progress=show)
    _say_data(val, log)
    t0 = time.perf_counter()
    start = 0
    if checkpoint is not None:
        model = _load_given_teacher(checkpoint, arch=point)
        if model.num_classes != val.num_classes:
            raise InvalidInput(f"teacher {str(checkpoint)!r} predicts {model.num_classes} classes but {data} has "
                               f"{val.num_classes}: expected weights trained on the same label set")
        log(f"loaded {checkpoint} into {model.arch.code} (strict: every key and shape matched)")
        steps_done = 0
    else:
        if lr is None:
            lr = 2e-3 if optimizer == "adamw" else 0.01
        with distributed.main_first():
            train_set = make_dataset(data, "train", size_hw=input_hw, augment=True, cache_dir=cache_dir,
                                     scale_range=(0.75, 1.5) if data.startswith("synthetic") else (0.5, 2.0),
                                     progress=show)
        _say_data(train_set, log)
        config = TrainConfig(steps=steps, batch_size=batch_size, optimizer=optimizer, lr=lr,
                             weight_decay=1e-2 if optimizer == "adamw" else 1e-4, warmup_steps=WARMUP_STEPS,
                             checkpoint_every=checkpoint_every, seed=seed, num_workers=num_workers, amp=amp)
        torch.manual_seed(seed)
        model = build_model(point, num_classes=train_set.num_classes)
        if init is not None:
            from ffnet_nas.space.checkpoint import load_checkpoint

            load_checkpoint(model, init, backbone_only=True)
            log(f"backbone of {point.code} starts from {init} (strict: every backbone key and shape matched)")
        where = f", checkpoint every {checkpoint_every} steps to {state_path}" if state_path is not None else ""
        log(f"training {point.code} on {train_set.spec} ({len(train_set)} images): {steps} steps x batch {batch_size}{where}")
        result = train(model, train_set, config=config, checkpoint_path=state_path, device=device, progress=progress,
                       desc="teacher", fingerprint={"data": train_set.spec, "input_hw": list(input_hw or ()),
                                                    **({"init": str(init)} if init is not None else {})})
        start, steps_done = result.start_step, result.steps
        if start:
            log(f"resumed from step {start} of {steps} ({state_path})")
        if state_path is not None:
            log(f"wrote training checkpoint {state_path} (step {steps_done})")
    score = evaluate(model, val, device=device, limit=eval_images, progress=progress, desc="val mIoU")
    hw = list(input_hw) if input_hw else list(_native_hw(val))
    val_images = min(len(val), eval_images or len(val))
    if distributed.is_main():
        save_teacher(out_path, model, data=val.spec, input_hw=hw, miou=float(score.miou), iou=score.per_class(),
                     class_names=val.class_names, steps=int(steps_done),
                     source="trained" if checkpoint is None else str(checkpoint),
                     provenance={"device": str(device), "dtype": "float32", "input_hw": f"{hw[0]}x{hw[1]}",
                                 "backend": "torch eager", "val_images": val_images,
                                 **({"processes": distributed.world_size()} if distributed.world_size() > 1 else {})})
    distributed.barrier()  # the caller reads the teacher file back, on every rank
    log(f"wrote teacher {out_path}: {point.code}, val mIoU {100 * score.miou:.1f} on {val_images} images of {val.spec}")
    return TeacherRun(path=Path(out_path), arch=point.code, miou=float(score.miou), steps=int(steps_done), start_step=start,
                      seconds=time.perf_counter() - t0, state_path=Path(state_path) if state_path else None)


def _load_given_teacher(path: str | Path, *, arch):
    """A teacher the user has: a file that records its arch (a teacher or checkpoint of this
    tool) keeps it; official weights, which do not, are loaded into `arch`. Strict either way."""
    from collections.abc import Mapping

    from ffnet_nas.space.checkpoint import load_model, read_checkpoint

    obj = read_checkpoint(path)
    recorded = obj.get("arch") if isinstance(obj, Mapping) else None
    return load_model(path, arch=None if isinstance(recorded, str) else arch)


def _say_data(dataset, log: Callable[[str], None]) -> None:
    cache = getattr(dataset, "cache_path", None)
    if cache is not None:
        verb = "generated and wrote" if dataset.generated else "read"
        log(f"{dataset.split}: {verb} {len(dataset)} scenes {cache}")
    else:
        log(f"{dataset.split}: {len(dataset)} images from {dataset.spec}")


def _native_hw(dataset) -> tuple[int, int]:
    size = getattr(dataset, "size_hw", None)
    if size:
        return tuple(size)
    image, _ = dataset[0]
    return tuple(image.shape[-2:])
