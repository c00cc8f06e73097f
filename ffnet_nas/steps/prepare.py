"""The steps that make a workdir's inputs: the teacher, the block library, the latency table.

    train_teacher(workspace=ws, request=TeacherRequest(...))     `ffnet-nas train-teacher`, run step 1
    distill(workspace=ws, request=DistillRequest(...))           `ffnet-nas distill`, run step 2
    measure_latency(workspace=ws, request=LatencyRequest(...))   `ffnet-nas measure-latency`, run step 3

Each takes the workspace and one frozen request, and returns a frozen result; none prints (the
caller says what happened: a command on stdout, `run` through logging).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ffnet_nas.settings import BlockTrainConfig
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.workspace import Workspace

logger = logging.getLogger(__name__)


# ---- teacher ----------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class TeacherRequest:
    arch: str
    steps: int
    data: str = "synthetic"
    batch_size: int = 8
    input_hw: tuple[int, int] | None = None  # None: the data's default size
    lr: float | None = None  # None: the optimiser's default (ffnet_nas.teacher)
    optimizer: str = "adamw"
    checkpoint_every: int = 50
    seed: int = 0
    workers: int = 0
    eval_images: int | None = None
    checkpoint: Path | None = None  # a teacher file or official weights to load instead of training
    init: Path | None = None  # official ImageNet weights the trained teacher's backbone starts from
    amp: str | None = None  # bf16 | fp16 autocast while training
    # `run` keeps a teacher file that exists; `train-teacher` trains on (it resumes, or continues to more steps)
    reuse: bool = False


@dataclass(frozen=True)
class TeacherResult:
    meta: object  # distill.teacher.TeacherMeta of the file
    run: object | None  # teacher.TeacherRun; None when an existing file was reused


def train_teacher(*, workspace: Workspace, request: TeacherRequest, device: str = "cpu",
                  progress: bool = True) -> TeacherResult:
    from ffnet_nas.distill.teacher import read_teacher_info
    from ffnet_nas.teacher import train_teacher as train

    path = workspace.teacher_path
    if request.reuse and path.exists():
        meta = read_teacher_info(path)
        if request.checkpoint is not None and meta.source != str(request.checkpoint):
            raise InvalidInput(f"workdir {str(workspace.root)!r} holds a teacher from {meta.source!r}, not "
                               f"{str(request.checkpoint)!r}: expected the same --teacher, or another --workdir")
        return TeacherResult(meta=meta, run=None)
    run = train(arch=request.arch, data=request.data, out_path=path, state_path=workspace.teacher_state_path,
                checkpoint=request.checkpoint, steps=request.steps, batch_size=request.batch_size,
                input_hw=request.input_hw, lr=request.lr, optimizer=request.optimizer,
                checkpoint_every=request.checkpoint_every, seed=request.seed, num_workers=request.workers,
                cache_dir=workspace.data_dir, device=device, eval_images=request.eval_images, init=request.init,
                amp=request.amp, progress=progress, log=lambda m: logger.info("  %s", m))
    return TeacherResult(meta=read_teacher_info(path), run=run)


# ---- block library ----------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class DistillRequest:
    space: object  # SearchSpace
    config: BlockTrainConfig
    train_images: int
    val_images: int
    teacher_path: Path | None = None  # None: the workdir's teacher
    data: str | None = None  # None: the data the teacher was trained on (else synthetic)
    input_hw: tuple[int, int] | None = None  # None: the teacher's input size
    jobs: int = 1
    scheduler: str | None = None  # a Dask scheduler's address: blocks are trained on its workers
    threads: int | None = None  # torch threads per block on the Dask workers (default 1)
    retry_failed: bool = False
    device: str = "cpu"  # where the teacher's features are computed and the students train


@dataclass(frozen=True)
class DistillResult:
    summary: object  # distill.run.DistillSummary
    teacher: object  # distill.teacher.TeacherMeta
    data: str


def distill(*, workspace: Workspace, request: DistillRequest, progress: bool = True) -> DistillResult:
    from ffnet_nas.data import make_dataset
    from ffnet_nas.distill.run import distill_space
    from ffnet_nas.distill.teacher import read_teacher_info

    teacher_path = Path(request.teacher_path or workspace.teacher_path)
    meta = read_teacher_info(teacher_path)
    data = request.data or meta.data or "synthetic"
    size_hw = request.input_hw or meta.input_hw
    train = make_dataset(data, "train", size_hw=size_hw, cache_dir=workspace.data_dir)
    val = make_dataset(data, "val", size_hw=size_hw, cache_dir=workspace.data_dir)
    if train.num_classes != meta.num_classes:
        raise InvalidInput(f"data {data!r} has {train.num_classes} classes but the teacher predicts "
                           f"{meta.num_classes}: expected the data the teacher was trained on")
    summary = distill_space(request.space, teacher_path=teacher_path, train_data=train, val_data=val,
                            library_dir=workspace.library_dir, data_spec=data, config=request.config, jobs=request.jobs,
                            scheduler=request.scheduler, threads=request.threads,
                            train_images=request.train_images, val_images=request.val_images,
                            retry_failed=request.retry_failed, device=request.device, progress=progress)
    return DistillResult(summary=summary, teacher=meta, data=data)


# ---- latency table ----------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class LatencyRequest:
    space: object  # SearchSpace
    spec: object  # predictors.latency.lut.LutSpec, from build.make_spec (which checks the settings)
    protocol: object  # predictors.latency.protocol.Protocol
    calibrate: int = 6  # networks timed end to end for the calibration
    validate: int = 0  # random points (+ the published variants) timed to validate the table
    validate_published: int | None = None  # published variants among them: an even spread of this many (None: all)
    seed: int = 0  # of the validation sample


def measure_latency(*, workspace: Workspace, request: LatencyRequest, progress: bool = True):
    """Fill, calibrate (and validate) the table for `request.spec` in the workdir; returns
    `predictors.latency.build.BuildResult` (the table, keys, keys measured now, calibration, validation)."""
    from ffnet_nas.predictors.latency.build import build

    return build(lut_dir=workspace.lut_dir, space=request.space, spec=request.spec, protocol=request.protocol,
                 calibrate_n=request.calibrate, validate_n=request.validate, validate_published=request.validate_published,
                 seed=request.seed, progress=progress)


__all__ = ["DistillRequest", "DistillResult", "LatencyRequest", "TeacherRequest", "TeacherResult", "distill",
           "measure_latency", "train_teacher"]
