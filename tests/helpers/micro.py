"""A micro workdir made in seconds (random-init teacher, a tiny space's block library, optionally a
latency table), and a 2-worker Dask LocalCluster: shared by the evaluation and cluster tests. Also
the command of a real `ffnet-nas run --budget micro` (`run_command`), which the pipeline tests share
one finished copy of (tests/pipeline/conftest.py)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import torch

from ffnet_nas.data import make_dataset
from ffnet_nas.distill.run import distill_space
from ffnet_nas.distill.teacher import save_teacher
from ffnet_nas.predictors.latency.build import build, make_spec
from ffnet_nas.predictors.latency.protocol import Protocol
from ffnet_nas.settings import BlockTrainConfig
from ffnet_nas.space import build_model
from ffnet_nas.space.searchspace import from_dict
from ffnet_nas.workspace import Workspace

# a tiny 4-stage space (12 points, both first strides, two seg heads): the evaluation tests' default
TINY_SPACE = {"base": "mobile", "name": "tiny", "stems": ["B"], "up_heads": ["B"], "seg_heads": ["B", "C"],
              "stages": {4: {"depths": [[1, 2], [1], [1], [2, 1]], "widths": [[16], [32], [48], [64]]}},
              "first_strides": [1, 2], "pre_downs": [False], "input_size": "32x64"}
# the space of the real micro runs (`run_command`): 8 points, both first strides, two seg heads
RUN_SPACE = {"base": "mobile", "name": "tiny", "stems": ["B"], "up_heads": ["B"], "seg_heads": ["B", "C"],
             "stages": {4: {"depths": [[1, 2], [1], [1], [1]], "widths": [[16], [32], [48], [64]]}},
             "first_strides": [1, 2], "pre_downs": [False], "input_size": "32x64"}
TEACHER_CODE = "stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest"
# a latency table in well under a second a unit: good enough to have one, not to trust its figures
FAST_PROTOCOL = Protocol(warmup_runs=1, warmup_s=0.0, min_repeats=3, max_repeats=4, rel_tol=0.5, max_seconds=0.2)


def micro_workdir(root: str | Path, space: dict, *, hw: tuple[int, int] = (32, 64), lut: bool = True) -> Workspace:
    """Teacher (seeded random init, trained on nothing), the space's block library (2 steps a block)
    and, with `lut`, a 1-thread CPU latency table of the space at `hw`."""
    torch.manual_seed(0)
    ws = Workspace(root)
    train = make_dataset("synthetic", "train", size_hw=hw, cache_dir=ws.data_dir)
    teacher = build_model(TEACHER_CODE, num_classes=train.num_classes).eval()
    save_teacher(ws.teacher_path, teacher, data="synthetic", input_hw=list(hw), miou=0.0)
    val = make_dataset("synthetic", "val", size_hw=hw, cache_dir=ws.data_dir)
    distill_space(from_dict(space), teacher_path=ws.teacher_path, train_data=train, val_data=val,
                  library_dir=ws.library_dir, data_spec="synthetic", config=BlockTrainConfig(steps=2, batch_size=4),
                  train_images=8, val_images=4, progress=False)
    if lut:
        build(lut_dir=ws.lut_dir, space=from_dict(space),
              spec=make_spec(device="cpu", input_hw=hw, threads=1, num_classes=train.num_classes),
              protocol=FAST_PROTOCOL, calibrate_n=0, progress=False)
    return ws


def local_cluster():
    """Generator for a fixture: a real dask.distributed cluster of 2 worker processes, 1 thread each
    (the layout `dask worker --nworkers 2 --nthreads 1` gives on a host)."""
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster:
        yield cluster


def run_command(workdir: Path, space: Path) -> list[str]:
    """`ffnet-nas run --budget micro` on `space`, one thread, no progress bars: as a subprocess argv."""
    return [sys.executable, "-m", "ffnet_nas", "run", "--budget", "micro", "--space", str(space),
            "--workdir", str(workdir), "--no-progress", "--threads", "1"]


def unbuffered_env() -> dict[str, str]:
    """The environment for a subprocess whose output is read line by line as it runs."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


@dataclasses.dataclass(frozen=True)
class FinishedRun:
    """A finished micro run: its workdir, the space file it searched and what its first run printed."""

    workdir: Path
    space: Path
    stdout: str


def write_run_space(folder: Path) -> Path:
    """RUN_SPACE as the YAML file `--space` takes: FOLDER/tiny.yaml."""
    import yaml

    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(RUN_SPACE))
    return path


def finished_run(root: Path) -> FinishedRun:
    """Run `ffnet-nas run --budget micro` on RUN_SPACE under `root` (about 30 s here) and check it finished."""
    space = write_run_space(root)
    workdir = root / "run"
    done = subprocess.run(run_command(workdir, space), capture_output=True, text=True, env=unbuffered_env(), timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return FinishedRun(workdir=workdir, space=space, stdout=done.stdout)
