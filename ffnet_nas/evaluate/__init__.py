"""Full evaluation of points: assemble, fine-tune with KD, measure mIoU and latency.

    rows = evaluate_points(archs, workspace=Workspace("runs/default"), config=finetune_config(steps=300),
                           val_images=64)

For each point: build it from the block library (distilled initialisation; `init="random"` for
the from-scratch comparison), fine-tune with the task loss plus KD from the teacher
(`config`: a `ffnet_nas.settings.TrainConfig`, KD weight 1 by `budgets.finetune_config`),
evaluate mIoU on the first `val_images` validation images, and time it end to end with the
same protocol, backend and settings as the workdir's latency table (chosen by the one rule of
`ffnet_nas.predictors.load.choose_lut`, at the teacher's input size). One row per (point, init)
in `evaluated.csv`.

Kill and resume: fine-tuning checkpoints into the point's folder (`Workspace.point_resume_path`;
the training loop resumes from it); the row is written (atomically) only when the point is
finished, the resume state is then deleted (the fine-tuned weights stay, `Workspace.point_model_path`),
and a finished point is skipped unless `redo=True`.

Under torchrun (`ffnet_nas.distributed`) every rank runs the same loop: all of them fine-tune (DDP)
and score (the validation batches shared out); rank 0 alone writes the model file, times the
point, writes the row and deletes the resume state, and the others wait for it at a barrier.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from ffnet_nas import distributed
from ffnet_nas.settings import TrainConfig, accuracy_column
from ffnet_nas.workspace import Workspace
from ffnet_nas.space.arch import Arch, resolve
from ffnet_nas.space.catalogue import name_of
from ffnet_nas.space.complexity import complexity
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import atomic_write_csv, read_checked_csv

logger = logging.getLogger(__name__)

INITS = ("distilled", "random")
COLUMNS = (
    # input_hw: the deployment input the latency and the MACs are at (the latency table's size);
    # train_hw: the crop the point was fine-tuned on and scored at
    "code", "name", "init", "params", "macs", "input_hw", "train_hw",
    "predicted_latency_ms", "measured_latency_ms", "latency_table",
    "predicted_miou", "measured_miou", "steps", "seconds", "checkpoint",
    # evaluate --precision int8: the fine-tuned model quantised (ONNX Runtime static QDQ, calibrated on
    # training images) and scored on the same validation images as measured_miou
    "int8_miou",
    # where measured_miou was scored: the training crop, the deployment input, or "native" (the data's
    # own label size)
    "score_hw",
)
# The size the validation images are scored at: train (the crop, default), input (the deployment
# input, the latency table's size), native (real data at its own label size; the embedded data
# at its generated size, the training size).
SCORE_AT = ("train", "input", "native")


def read_evaluated(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=list(COLUMNS))
    return read_checked_csv(path, what="evaluated table", required=("code", "init", "measured_miou"),
                            key=("code", "init"), finite=("measured_miou",),
                            fix="expected a CSV written by 'ffnet-nas evaluate': repair or delete the damaged row (that point is "
                                "evaluated again), or move the file away to start over")


def distilled_miou(evaluated: pd.DataFrame) -> dict[str, float]:
    """Measured mIoU of each point fine-tuned from the distilled library (`read_evaluated`'s rows),
    by code: what a predictor is fitted on and checked against."""
    if not len(evaluated):
        return {}
    rows = evaluated[evaluated["init"] == "distilled"]
    return dict(zip(rows["code"], rows["measured_miou"].astype(float)))


def _upsert(path: Path, row: dict) -> pd.DataFrame:
    frame = read_evaluated(path)
    keep = ~((frame["code"] == row["code"]) & (frame["init"] == row["init"])) if len(frame) else slice(None)
    frame = pd.concat([frame[keep], pd.DataFrame([row])], ignore_index=True)
    atomic_write_csv(path, frame[[c for c in COLUMNS if c in frame.columns]])
    return frame


def point_dir(workspace: Workspace, arch: Arch, init: str) -> Path:
    return workspace.point_dir(arch.stable_hash, init)


def data_of(teacher_meta: "Mapping | object") -> tuple[str, tuple[int, int]]:
    """The data set and input size a teacher was trained on (from its file's dict or its
    `read_teacher_info` record): every evaluation uses them. Files that do not say: the embedded
    data at its default size, what train-teacher wrote before it recorded them."""
    get = teacher_meta.get if isinstance(teacher_meta, Mapping) else lambda k: getattr(teacher_meta, k, None)
    return get("data") or "synthetic", tuple(get("input_hw") or (128, 256))


@dataclass(frozen=True)
class Resources:
    """What every point of one `evaluate_points` call shares, loaded once: the teacher (read
    from its file once, metadata included), the data splits, the latency table, the predictor."""

    teacher: object
    data: str
    input_hw: tuple[int, int]
    num_classes: int
    train_ds: object
    val_ds: object
    table: object | None
    predictor: object | None
    score_hw: tuple[int, int] | None = None  # the size val_ds is scored at (None: native)

    @classmethod
    def load(cls, workspace: Workspace, *, predictor_dir: Path | None = None, lut: str | None = None,
             score_at: str = "train", val_images: int | None = None, val_split: int | None = None) -> "Resources":
        """`lut`: the latency table's name when the workdir holds several at the teacher's size
        (none there: the latency columns stay empty). `score_at`: one of SCORE_AT. `val_images`:
        the images the points are scored on (None: all), which sizes the embedded data's
        validation split (`data.validation_split`); `val_split`: that split generated with exactly
        this many images instead (the embedded data only)."""
        from ffnet_nas.distill.teacher import load_teacher
        from ffnet_nas.data import make_dataset, validation_split
        from ffnet_nas.predictors.load import choose_lut, load_accuracy_predictor, load_latency_table

        teacher = load_teacher(workspace.teacher_path)
        meta = teacher.teacher_info
        data, input_hw = data_of(meta)
        table_path = choose_lut(lut_dir=workspace.lut_dir, input_hw=input_hw, lut=lut)
        table = load_latency_table(table_path) if table_path is not None else None
        score_hw = scoring_size(score_at, data=data, train_hw=input_hw,
                                deploy_hw=tuple(table.spec.input_hw) if table is not None else None)
        # under torchrun rank 0 generates (and caches) the synthetic scenes once; the others read its file
        with distributed.main_first():
            train_ds = make_dataset(data, "train", size_hw=input_hw, augment=True, cache_dir=workspace.data_dir)
            val_ds = validation_split(data, scored=val_images, size_hw=score_hw, cache_dir=workspace.data_dir,
                                      images=val_split)
        return cls(teacher=teacher, data=data, input_hw=input_hw, num_classes=int(meta["num_classes"]),
                   train_ds=train_ds, val_ds=val_ds, table=table,
                   predictor=load_accuracy_predictor(predictor_dir or workspace.predictor_dir), score_hw=score_hw)

    @property
    def deploy_hw(self) -> tuple[int, int]:
        """The deployment input the latency and the MACs are at: the table's size, else the training size."""
        return tuple(self.table.spec.input_hw) if self.table is not None else self.input_hw

    def complexity(self, arch: Arch):
        """Params and MACs of `arch` at its own input (a pre_down point takes twice the deployment size,
        as the table timed it), with this data's head."""
        h, w = self.deploy_hw
        return complexity(arch, (h * arch.input_scale, w * arch.input_scale), num_classes=self.num_classes)

    def predicted_miou(self, arch: Arch) -> float | None:
        if self.predictor is None:
            return None
        try:
            return self.predictor.predict(arch)
        except InvalidInput:
            return None  # a block of this point is not in the library: no prediction, not an error here


def scoring_size(score_at: str, *, data: str, train_hw: tuple[int, int],
                 deploy_hw: tuple[int, int] | None) -> tuple[int, int] | None:
    """The size the validation images are scored at (None: each image's own, real data only)."""
    if score_at not in SCORE_AT:
        raise InvalidInput(f"score_at={score_at!r}: expected one of {', '.join(SCORE_AT)}")
    if score_at == "input":
        if deploy_hw is None:
            raise InvalidInput("scoring at the deployment input needs the workdir's latency table (its size): "
                               "expected 'ffnet-nas measure-latency' first, or score_at train")
        return deploy_hw
    if score_at == "native" and not data.startswith("synthetic"):
        return None
    return train_hw  # train; and the embedded data's native size is the size it was generated at


def point_latency(arch: Arch, table) -> tuple[float, float]:
    """Predicted and measured end-to-end latency under exactly the table's settings: its protocol,
    threads and measurement context (steady allocator, flushed denormals), lowest of its rounds —
    the rules its keys and its calibration were measured by. Timed outside that context, right
    after fine-tuning, the same network measured ~25% slower here."""
    from ffnet_nas.predictors.latency import predict_latency
    from ffnet_nas.predictors.latency.protocol import measurement_context
    from ffnet_nas.predictors.latency.validate import time_arch

    protocol = _table_protocol(table)
    with measurement_context(table.spec.device, table.spec.threads):
        measured = min(time_arch(arch, table, protocol).estimate_ms for _ in range(protocol.rounds))
    return predict_latency(arch, table), measured


def _table_protocol(table):
    """The timing protocol the table was measured by (its metadata), else the device's default."""
    from ffnet_nas.predictors.latency.protocol import Protocol, default_protocol

    stored = table.meta.get("protocol")
    return Protocol(**stored) if stored else default_protocol(table.spec.device)


@dataclass(frozen=True)
class PairedTiming:
    """Two networks timed side by side (`paired_latency`): the lowest of each over the rounds, and
    each round's ratio second / first (> 1: the first was faster in that round). The lowest-of
    figures are the verdict's; the ratios say whether the rounds agree on it."""

    first_ms: float
    second_ms: float
    ratios: tuple[float, ...]

    @property
    def rounds(self) -> int:
        return len(self.ratios)

    def record(self) -> dict:
        """What run_summary.json keeps as `latency_pair` (the first network is the run's best point)."""
        return {"best_ms": self.first_ms, "reference_ms": self.second_ms, "rounds": self.rounds,
                "ratios": list(self.ratios)}

    @classmethod
    def from_record(cls, record: dict | None) -> "PairedTiming | None":
        """The pair `record()` kept; None without one, or for a summary written before the rounds'
        ratios were kept (that pair is timed again rather than carried on without them)."""
        if not record or "ratios" not in record:
            return None
        return cls(first_ms=float(record["best_ms"]), second_ms=float(record["reference_ms"]),
                   ratios=tuple(float(r) for r in record["ratios"]))


def rounds_text(ratios) -> str:
    """"faster in 4 of 5 rounds, 0.93-1.22x" (of the first network; '' without ratios: an older summary)."""
    ratios = [float(r) for r in ratios or ()]
    if not ratios:
        return ""
    return f"faster in {sum(r > 1 for r in ratios)} of {len(ratios)} rounds, {min(ratios):.2f}-{max(ratios):.2f}x"


def paired_latency(first: Arch, second: Arch, table, *, rounds: int = 5) -> PairedTiming:
    """Both networks timed side by side: `rounds` rounds, each timing both under the table's
    protocol and measurement context (the order alternating, first-second then second-first), the
    lowest of each kept, and each round's ratio. The verdict's two latencies were measured minutes
    apart, each after its own fine-tune; on this 2-core VM the speed drifts by 20-50% over minutes
    (whole stretches of a run's evaluate step, docs/results.md), which a side-by-side timing shares
    between the two. Whether one round agrees with the next is what the ratios show."""
    from ffnet_nas.predictors.latency.protocol import measurement_context
    from ffnet_nas.predictors.latency.validate import time_arch

    protocol = _table_protocol(table)
    pair, times = (first, second), ([], [])  # by position, so one network against itself needs no case of its own
    with measurement_context(table.spec.device, table.spec.threads):
        for r in range(rounds):
            for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                times[i].append(time_arch(pair[i], table, protocol).estimate_ms)
    a, b = times
    return PairedTiming(min(a), min(b), tuple(y / x for x, y in zip(a, b)))


def evaluate_point(arch: "Arch | str", *, workspace: Workspace, config: TrainConfig, val_images: int | None = None,
                   init: str = "distilled", device: str = "cpu", progress: bool = True,
                   resources: Resources | None = None) -> dict:
    """Fine-tune (`config`) and measure one point on the first `val_images` validation images;
    returns its row (does not write the table).

    Under torchrun every rank calls it: all train and score; rank 0 writes the model file and times
    the point, and every rank returns rank 0's row.

    `resources` (from `Resources.load(workspace)`) lets a caller evaluating several points load
    the teacher, data, table and predictor once; without it they are loaded here."""
    from ffnet_nas.distill.assemble import assemble
    from ffnet_nas.training import evaluate, train
    from ffnet_nas.space.builder import build_model

    if init not in INITS:
        raise InvalidInput(f"init={init!r}: expected one of {', '.join(INITS)}")
    arch = resolve(arch)
    r = resources or Resources.load(workspace, val_images=val_images)
    model = assemble(arch, workspace.library_dir) if init == "distilled" else build_model(arch, num_classes=r.num_classes)
    t0 = time.perf_counter()
    train(model, r.train_ds, config=config, checkpoint_path=workspace.point_resume_path(arch.stable_hash, init),
          teacher=r.teacher,
          device=device, progress=progress, desc=f"fine-tune {arch.stable_hash} ({init})",
          fingerprint={"init": init, "data": r.data})
    score = evaluate(model.eval(), r.val_ds, device=device, limit=val_images, progress=progress)
    seconds = time.perf_counter() - t0
    row = None
    if distributed.is_main():
        row = _finish_point(arch, workspace=workspace, config=config, init=init, r=r, model=model, score=score,
                            seconds=seconds)
    # the others wait here while rank 0 writes and times (they would only disturb the timing)
    return distributed.broadcast_object(row)


def _finish_point(arch: Arch, *, workspace: Workspace, config: TrainConfig, init: str, r: Resources, model, score,
                  seconds: float) -> dict:
    """The fine-tuned model's file, its latency and its row: one process's work (rank 0's)."""
    from ffnet_nas.space.checkpoint import save_checkpoint

    checkpoint = save_checkpoint(workspace.point_model_path(arch.stable_hash, init), model.cpu(), data=r.data, init=init,
                                 steps=config.steps)
    predicted_ms = measured_ms = None
    if r.table is not None:
        predicted_ms, measured_ms = point_latency(arch, r.table)
    deploy_hw, cx = r.deploy_hw, r.complexity(arch)
    return {
        "code": arch.code, "name": name_of(arch), "init": init, "params": cx.params, "macs": cx.macs,
        "input_hw": f"{deploy_hw[0]}x{deploy_hw[1]}", "train_hw": f"{r.input_hw[0]}x{r.input_hw[1]}",
        "predicted_latency_ms": predicted_ms, "measured_latency_ms": measured_ms,
        "latency_table": r.table.path.name if r.table is not None else None,
        "predicted_miou": r.predicted_miou(arch), "measured_miou": 100 * score.miou,
        "steps": config.steps, "seconds": round(seconds, 2), "checkpoint": workspace.relative(checkpoint),
        "score_hw": f"{r.score_hw[0]}x{r.score_hw[1]}" if r.score_hw else "native",
    }


def evaluate_points(archs: Iterable["Arch | str"], *, workspace: Workspace, config: TrainConfig,
                    val_images: int | None = None, init: str = "distilled", redo: bool = False, device: str = "cpu",
                    progress: bool = True, predictor_dir: Path | None = None, lut: str | None = None,
                    scheduler: str | None = None, precision: str = "fp32", score_at: str = "train") -> pd.DataFrame:
    """Evaluate each point not yet in the table (or all with `redo`); each row lands when its point is done.

    `predicted_miou` comes from the predictor in `predictor_dir` (default: the workdir's), the one
    that picked the points; latency from the table `lut` (see `Resources.load`). With `scheduler`
    (a Dask scheduler's address) the points are fine-tuned and scored on its workers and timed
    here, on the device the table was measured on. `precision` "int8": each point's fine-tuned
    model is also quantised and scored (`int8_miou`), here, after its fine-tune. `score_at`: the
    size measured_miou is scored at (SCORE_AT)."""
    accuracy_column(precision)  # a bad precision is one line before any work
    archs = [resolve(a) for a in archs]
    done = read_evaluated(workspace.evaluated_path)
    finished = set(zip(done["code"], done["init"])) if len(done) else set()
    # per-point lines: INFO with progress on (what the user watches), DEBUG without (a quiet run)
    level = logging.INFO if progress else logging.DEBUG
    if scheduler:
        todo = []
        for arch in archs:
            if (arch.code, init) in finished and not redo:
                logger.log(level, "%s (%s): already evaluated, skipped (--redo to repeat)", arch.code, init)
                continue
            if redo:  # a worker's row from before is not the redone point's
                workspace.point_row_path(arch.stable_hash, init).unlink(missing_ok=True)
            todo.append(arch)
        if todo:
            from ffnet_nas.evaluate.cluster import evaluate_on_cluster

            evaluate_on_cluster(todo, scheduler=scheduler, workspace=workspace, config=config, val_images=val_images,
                                 init=init, device=device, predictor_dir=predictor_dir, lut=lut, level=level,
                                 score_at=score_at)
        archs_left: list[Arch] = []
    else:
        archs_left = archs
    resources = None
    for arch in archs_left:
        if (arch.code, init) in finished and not redo:
            logger.log(level, "%s (%s): already evaluated, skipped (--redo to repeat)", arch.code, init)
            continue
        # loaded on the first point that needs work
        resources = resources or Resources.load(workspace, predictor_dir=predictor_dir, lut=lut, score_at=score_at,
                                                val_images=val_images)
        row = evaluate_point(arch, workspace=workspace, config=config, val_images=val_images, init=init, device=device,
                             progress=progress, resources=resources)
        if distributed.is_main():
            _upsert(workspace.evaluated_path, row)
            # the row and model.pt are the result; the resume state (weights + optimizer, twice the
            # model's size) only served a kill mid-training and would leave GBs behind per run
            workspace.point_resume_path(arch.stable_hash, init).unlink(missing_ok=True)
        distributed.barrier()  # every rank reads the table below, and the next point starts from a clean folder
        latency = f", {row['measured_latency_ms']:.2f} ms" if row["measured_latency_ms"] is not None else ""
        logger.log(level, "%s (%s): mIoU %.2f%s -> %s", arch.code, init, row["measured_miou"], latency,
                   workspace.evaluated_path)
    if precision == "int8":
        from ffnet_nas.evaluate.int8 import fill_int8_miou

        fill_int8_miou(archs, workspace=workspace, init=init, val_images=val_images, level=level)
    frame = read_evaluated(workspace.evaluated_path)
    codes = {a.code for a in archs}
    return frame[frame["code"].isin(codes) & (frame["init"] == init)]


def held_out_miou(codes: Iterable[str], *, workspace: Workspace, val_images: int | None, device: str = "cpu",
                  progress: bool = False, score_hw: tuple[int, int] | None | str = "train",
                  precision: str = "fp32") -> dict[str, float]:
    """mIoU of evaluated (distilled) points on the validation images their scores did not use
    (those after the first `val_images`).

    Picking the best of many points by one noisy score flatters the pick (64 images, a few
    points of noise); a verdict that holds on images no choice was made on is one to trust.
    Empty when the scores used the whole validation split. Under torchrun every rank calls it and
    the images are shared out (`training.evaluate`); it writes nothing. `score_hw`: the size the
    scores were taken at ("train": the teacher's training size; None: native). `precision` "int8":
    the quantised model's mIoU (`Int8Scorer`, at the training size as int8_miou is), what an
    INT8 run judges by; every rank computes it whole."""
    from ffnet_nas.data import validation_split
    from ffnet_nas.training import evaluate
    from ffnet_nas.space.checkpoint import load_model
    from ffnet_nas.distill.teacher import read_teacher_info

    accuracy_column(precision)  # a bad precision is one line
    if val_images is None:
        return {}
    data, input_hw = data_of(read_teacher_info(workspace.teacher_path))
    quantised = None
    with distributed.main_first():
        if precision == "int8":  # the scorer's validation split, at the training size int8_miou is scored at
            from ffnet_nas.evaluate.int8 import Int8Scorer

            quantised = Int8Scorer(workspace, scored=val_images)
            val = quantised.val
        else:
            val = validation_split(data, scored=val_images, size_hw=input_hw if score_hw == "train" else score_hw,
                                   cache_dir=workspace.data_dir)
    if len(val) <= val_images:
        # said, not silent: the verdict then rests on the scoring images alone
        logger.warning("no validation image is held out (the scores used the first %d, the split holds %d): the "
                       "held-out check is skipped", val_images, len(val))
        return {}
    table = read_evaluated(workspace.evaluated_path)
    evaluated = set(table[table["init"] == "distilled"]["code"])
    scores = {}
    for code in dict.fromkeys(codes):
        # the weights of this workdir's point, wherever the table says they were written (an older
        # table holds absolute paths: in a copied workdir those are the original's files)
        if code not in evaluated:
            continue
        checkpoint = workspace.point_model_path(Arch.parse(code).stable_hash, "distilled")
        if checkpoint.exists():
            model = load_model(checkpoint).eval()
            if quantised is not None:
                scores[code] = quantised.miou(model, start=val_images)
            else:
                score = evaluate(model, val, start=val_images, device=device, progress=progress, desc="held-out")
                scores[code] = 100 * score.miou
    return scores
