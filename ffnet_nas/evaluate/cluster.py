"""Full evaluation on a Dask cluster: the workers fine-tune and score, this process times.

    evaluate_on_cluster(archs, scheduler="tcp://HOST:8786", workspace=ws, config=config, ...)

`evaluate.evaluate_points(scheduler=...)` calls it. Each task (`PointTask`: names and paths, which
the worker opens on the shared workdir) claims its point (`ffnet_nas.claims`), fine-tunes and scores
it as `evaluate.evaluate_point` does, and writes the weights and a row without latency
(`Workspace.point_row_path`); this process times the point with the workdir's latency table, on
the device the table was measured on, and adds the row to evaluated.csv. A row a worker finished
before this process was stopped is only timed.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from ffnet_nas.evaluate import Resources, _upsert, data_of, evaluate_point, point_latency
from ffnet_nas.settings import TrainConfig
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import atomic_write_json, read_json
from ffnet_nas.workspace import Workspace

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PointTask:
    """One fine-tune for a Dask worker: names and paths, which the worker opens on the shared workdir."""

    code: str
    workdir: str  # absolute: a worker's working directory is its own
    config: TrainConfig
    val_images: int | None
    init: str
    device: str
    predictor_dir: str | None
    lut: str | None
    score_at: str = "train"


_WORKER_RESOURCES: dict[tuple, Resources] = {}


def finetune_on_worker(task: PointTask) -> dict:
    """On a Dask worker: claim the point, fine-tune and score it, write its weights and its row
    (`Workspace.point_row_path`, without latency: that is timed where the table was measured);
    returns the row, or `{"status": CLAIMED}` when another process holds the point."""
    from ffnet_nas.claims import CLAIMED, claim, holder

    ws, arch = Workspace(task.workdir), Arch.parse(task.code)
    claim_path = ws.point_claim_path(arch.stable_hash, task.init)
    with claim(claim_path) as mine:
        if not mine:
            return {"code": task.code, "status": CLAIMED, "holder": holder(claim_path)}
        done = _worker_row(ws, arch, task.init)
        if done is not None:  # finished by whoever held the claim before
            return done
        key = (task.workdir, task.predictor_dir, task.lut, task.score_at, task.val_images)
        if key not in _WORKER_RESOURCES:  # a worker serves many points of one run: load once
            _WORKER_RESOURCES.clear()
            loaded = Resources.load(ws, predictor_dir=Path(task.predictor_dir) if task.predictor_dir else None,
                                    lut=task.lut, score_at=task.score_at, val_images=task.val_images)
            _WORKER_RESOURCES[key] = dataclasses.replace(loaded, table=None)
        row = evaluate_point(arch, workspace=ws, config=task.config, val_images=task.val_images, init=task.init,
                             device=task.device, progress=False, resources=_WORKER_RESOURCES[key])
        atomic_write_json(ws.point_row_path(arch.stable_hash, task.init), row)
        return row


def _worker_row(ws: Workspace, arch: Arch, init: str) -> dict | None:
    """The row a worker wrote for this point, when it and the point's weights are there."""
    path = ws.point_row_path(arch.stable_hash, init)
    if not (path.is_file() and ws.point_model_path(arch.stable_hash, init).is_file()):
        return None
    try:
        row = read_json(path, what="worker's row")
    except InvalidInput:
        return None  # damaged: the point is evaluated again
    return row if isinstance(row, dict) and row.get("code") == arch.code and row.get("init") == init else None


def evaluate_on_cluster(archs: list[Arch], *, scheduler: str, workspace: Workspace, config: TrainConfig,
                         val_images: int | None, init: str, device: str, predictor_dir: Path | None, lut: str | None,
                         level: int, score_at: str = "train") -> None:
    """Fine-tune `archs` on the cluster's workers; time each here and add its row as it comes back."""
    from ffnet_nas.claims import CLAIMED, wait_for_release
    from ffnet_nas.cluster import map_unordered
    from ffnet_nas.distill.teacher import read_teacher_info
    from ffnet_nas.predictors.load import choose_lut, load_latency_table

    _, input_hw = data_of(read_teacher_info(workspace.teacher_path))
    table_path = choose_lut(lut_dir=workspace.lut_dir, input_hw=input_hw, lut=lut)
    table = load_latency_table(table_path) if table_path is not None else None

    def finish(row: dict) -> None:
        arch = Arch.parse(row["code"])
        if table is not None:
            predicted_ms, measured_ms = point_latency(arch, table)
            row = {**row, "predicted_latency_ms": predicted_ms, "measured_latency_ms": measured_ms,
                   "latency_table": table.path.name}
        _upsert(workspace.evaluated_path, row)
        workspace.point_row_path(arch.stable_hash, init).unlink(missing_ok=True)
        workspace.point_resume_path(arch.stable_hash, init).unlink(missing_ok=True)
        latency = f", {row['measured_latency_ms']:.2f} ms" if row["measured_latency_ms"] is not None else ""
        logger.log(level, "%s (%s): mIoU %.2f%s (fine-tuned on the cluster) -> %s", arch.code, init,
                   row["measured_miou"], latency, workspace.evaluated_path)

    root = str(workspace.root.resolve())
    pending = []
    for arch in archs:
        row = _worker_row(workspace, arch, init)
        if row is not None:  # a worker finished it before this process was stopped: only time it
            finish(row)
        else:
            pending.append(PointTask(code=arch.code, workdir=root, config=config, val_images=val_images, init=init,
                                     device=device, predictor_dir=str(Path(predictor_dir).resolve()) if predictor_dir
                                     else None, lut=lut, score_at=score_at))
    while pending:
        claimed = []
        for row in map_unordered(finetune_on_worker, pending, address=scheduler, name="evaluate",
                                 describe=lambda t: f"point {t.code}"):
            if row.get("status") == CLAIMED:
                logger.info("%s is being fine-tuned by %s: taken up again at the end", row["code"], row["holder"])
                claimed.append(next(t for t in pending if t.code == row["code"]))
            else:
                finish(row)
        for task in claimed:  # wait until each is released (finished, or its holder died)
            arch = Arch.parse(task.code)
            wait_for_release(workspace.point_claim_path(arch.stable_hash, init))
        pending = claimed
