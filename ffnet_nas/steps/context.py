"""What every step of one `ffnet-nas run` shares, made once: the run context.

    ctx = open_run(workspace=ws, config=RunConfig(budget=get_budget("quick")))
    ctx = ctx.with_teacher(read_teacher_info(ws.teacher_path))   # once the teacher exists

Opening checks every setting that can fail on user input (budget, space, target, device,
threads) before any work, so a typo costs nothing. The teacher's metadata (data set, input
size, classes) is read once, after the teacher step, and handed to the steps that need it
instead of each of them reading the teacher file again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ffnet_nas.budgets import Budget
from ffnet_nas.run_config import RunConfig
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.workspace import Workspace


@dataclass(frozen=True, kw_only=True)
class RunContext:
    workspace: Workspace
    config: RunConfig
    space: object  # SearchSpace at the deployment size: the table, the target, the search's MACs see it
    targets: tuple | None  # parsed config.target (None: derived from the published variants later)
    device_name: str  # what the latency table records ("cpu" or the GPU's name)
    progress: bool = True
    teacher: object | None = None  # distill.teacher.TeacherMeta, once the teacher step ran
    # a Dask scheduler's address: blocks and candidate fine-tunes go to its workers (how the run
    # is carried out, not what it computes: not part of the config file)
    scheduler: str | None = None
    # where config.amp (resolved: None is float32) came from, for the run's first line
    precision_source: str = ""

    @property
    def budget(self) -> Budget:
        return self.config.budget

    @property
    def device(self) -> str:
        return self.config.device

    @property
    def train_hw(self) -> tuple[int, int]:
        """The crop every training step (teacher, distillation, fine-tuning) uses."""
        return self.budget.train_hw

    @property
    def input_hw(self) -> tuple[int, int]:
        """The deployment input: the latency table, the target, every timing and the MACs."""
        return self.space.input_hw

    @property
    def threads(self) -> int | None:
        return self.config.threads

    @property
    def num_classes(self) -> int:
        """The teacher's class count (= the data's): the latency units, MACs and models all use it."""
        if self.teacher is None:
            raise InvalidInput("the teacher's class count is asked before the teacher step ran")
        return int(self.teacher.num_classes)

    def with_teacher(self, meta) -> "RunContext":
        return dataclasses.replace(self, teacher=meta)


def open_run(*, workspace: Workspace, config: RunConfig, progress: bool = True,
             scheduler: str | None = None) -> RunContext:
    """The run's context, every user setting checked (InvalidInput, one line) before any work."""
    from ffnet_nas.data import parse_spec
    from ffnet_nas.predictors.latency.build import make_spec
    from ffnet_nas.reports.export import FORMATS
    from ffnet_nas.search.targets import parse_targets
    from ffnet_nas.settings import check_amp
    from ffnet_nas.space.searchspace import get_search_space

    budget = config.budget
    # Trained at budget.train_hw; deployed (timed, targeted) at budget.input_hw, else at the
    # space's paper resolution.
    space = get_search_space(config.space)
    if budget.input_hw is not None:
        space = dataclasses.replace(space, input_hw=budget.input_hw)
    targets = parse_targets(config.target) if config.target else None  # a malformed target fails here
    kind, _ = parse_spec(config.data)
    if kind != "synthetic":  # a missing folder or a wrong layout: now, not after the teacher's minutes
        from ffnet_nas.data import make_dataset

        make_dataset(config.data, "val")
    _check_teacher_inputs(config)
    bad = [f for f in config.formats if f not in FORMATS]
    if bad:
        raise InvalidInput(f"formats {list(config.formats)}: expected some of {', '.join(FORMATS)}")
    # Device, dtype, backend and threads are checked now; the table's spec is made again in the
    # latency step, when the teacher has said the class count (1 here only fills the field).
    spec = make_spec(device=config.device, dtype=budget.latency.dtype, backend=budget.latency.backend,
                     batch=budget.latency.batch, input_hw=space.input_hw, threads=config.threads, num_classes=1)
    # from here on config.amp is what every training step runs in (None: float32), resolved once,
    # so the run summary records it and `evaluate` / `fit-predictor --check` repeat it
    amp, source = run_precision(workspace, config)
    config = dataclasses.replace(config, amp=amp)
    check_amp(config.amp, config.device)
    if scheduler:  # a wrong address fails here, not after the teacher's minutes
        from ffnet_nas.cluster import check_scheduler

        check_scheduler(scheduler)
    return RunContext(workspace=workspace, config=config, space=space, targets=targets, device_name=spec.device_name,
                      progress=progress, scheduler=scheduler, precision_source=source)


def run_precision(workspace: Workspace, config: RunConfig) -> tuple[str | None, str]:
    """(autocast dtype or None for float32, where it came from) for the run in `workspace`.

    `--amp` when given. Else the precision this workdir recorded when its run first started
    (training_precision.json), so a re-run or a resume never mixes float32 and bf16 work, also on
    another machine. Else float32 for a workdir started before the record existed (it has a
    teacher: float32 was every run's default then). Else the budget's (`training_precision`)."""
    from ffnet_nas.predictor_check import run_settings
    from ffnet_nas.run_config import training_precision
    from ffnet_nas.settings import autocast_dtype

    if config.amp is not None:
        return training_precision(config), "--amp"
    recorded = read_training_precision(workspace)
    if recorded is not None:
        return autocast_dtype(recorded), f"this workdir's ({workspace.training_precision_path.name})"
    try:
        finished = run_settings(workspace)
    except InvalidInput:  # unreadable or older: the teacher rule below decides
        finished = None
    if finished is not None:  # a finished run from before the record: what its summary says it trained in
        return finished.config.amp, "this workdir's (its run_summary.json)"
    if workspace.teacher_path.exists() or workspace.teacher_state_path.exists():
        return None, "this workdir's: started before the precision was recorded, in float32"
    amp = training_precision(config)
    return amp, ("the budget's, on a CPU with native bf16" if amp else "the budget's")


def read_training_precision(workspace: Workspace) -> str | None:
    """The precision recorded in the workdir ("bf16", "fp16", "fp32"), None when there is no record."""
    from ffnet_nas.run_config import RUN_AMPS
    from ffnet_nas.space.io import read_json

    path = workspace.training_precision_path
    if not path.exists():
        return None
    data = read_json(path, what="training precision record")
    amp = data.get("amp") if isinstance(data, dict) else None
    if amp not in RUN_AMPS:
        raise InvalidInput(f"{str(path)!r} holds {data!r}: expected {{\"amp\": one of {', '.join(RUN_AMPS)}}} as "
                           "'ffnet-nas run' writes it (delete it to let the run decide again)")
    return amp


def write_training_precision(ctx: RunContext) -> Path:
    """Record what this run trains in, once: the first run of a workdir decides for every later one."""
    from ffnet_nas.space.io import atomic_write_json

    path = ctx.workspace.training_precision_path
    amp = ctx.config.amp or "fp32"
    if read_training_precision(ctx.workspace) != amp:
        atomic_write_json(path, {"amp": amp})
    return path


def _check_teacher_inputs(config: RunConfig) -> None:
    """A given teacher or ImageNet file that is not there is one line now, not after the data."""
    for what, value in (("teacher", config.teacher), ("init", (config.init or "").removeprefix("imagenet:") or None)):
        if value is not None and not Path(value).expanduser().is_file():
            raise InvalidInput(f"{what} file {value!r} not found: expected "
                               + ("a teacher file or official FFNet weights" if what == "teacher"
                                  else "an official ImageNet checkpoint (imagenet:FILE)"))


def workdir_num_classes(workspace: Workspace, *, data: str | None = None, lut_path: Path | None = None) -> int:
    """The class count a single command works with, where `run` has its context's (the teacher's).

    The teacher file's, when the workdir has one: the latency units, MACs and models of a workdir
    all follow it. Before a teacher exists: the count recorded in the latency table `lut_path`
    (the head it timed; what a search scores with), else that of the data set `data` (default
    "synthetic", what `train-teacher` trains on) -- never a fixed 19."""
    if workspace.teacher_path.exists():
        from ffnet_nas.distill.teacher import read_teacher_info

        return int(read_teacher_info(workspace.teacher_path).num_classes)
    if lut_path is not None:
        from ffnet_nas.predictors.latency.lut import load_table

        return int(load_table(lut_path).spec.num_classes)
    from ffnet_nas.data import class_count

    return class_count(data or "synthetic")


__all__ = ["RunContext", "open_run", "read_training_precision", "run_precision", "workdir_num_classes",
           "write_training_precision"]
