"""The accuracy of a point as it ships in INT8: one recipe for every INT8 mIoU of a workdir.

    fill_int8_miou(archs, workspace=ws, val_images=64)   # int8_miou beside measured_miou in evaluated.csv
    Int8Scorer(ws).miou(model, start=64)                 # one model, held-out images

A fine-tuned point is quantised as the INT8 latency table's networks are (ONNX Runtime static QDQ,
`ffnet_nas.predictors.latency.int8`), calibrated on 16 training images of the workdir's data and
scored on validation images at the teacher's training size. `evaluate --precision int8`, an INT8
fit of the predictor, the held-out check and the win check all score through `Int8Scorer`.
"""

from __future__ import annotations

import logging
import math
from typing import Iterable

import pandas as pd

from ffnet_nas import distributed
from ffnet_nas.evaluate import _upsert, data_of, read_evaluated
from ffnet_nas.space.arch import Arch
from ffnet_nas.workspace import Workspace

logger = logging.getLogger(__name__)


def fill_int8_miou(archs: Iterable[Arch], *, workspace: Workspace, init: str = "distilled", val_images: int | None,
                   level: int = logging.INFO) -> None:
    """int8_miou for every point whose row lacks it (`Int8Scorer`: the INT8 latency table's recipe), on
    the validation images of its measured_miou. A re-run scores only the rows still without it.
    Under torchrun rank 0 is the one writer and every rank returns once the table is written."""
    if distributed.is_main():
        _fill_int8_miou(archs, workspace=workspace, init=init, val_images=val_images, level=level)
    distributed.barrier()


def _fill_int8_miou(archs: Iterable[Arch], *, workspace: Workspace, init: str, val_images: int | None,
                    level: int) -> None:
    from ffnet_nas.space.checkpoint import load_model

    rows = read_evaluated(workspace.evaluated_path)
    scorer = None
    for arch in archs:
        row = rows[(rows["code"] == arch.code) & (rows["init"] == init)] if len(rows) else rows
        if not len(row) or ("int8_miou" in row and pd.notna(row["int8_miou"].iloc[0])):
            continue
        weights = workspace.point_model_path(arch.stable_hash, init)
        if not weights.exists():  # a row whose model was deleted: it cannot be quantised, say so and go on
            logger.warning("%s (%s): no %s to quantise; its int8_miou stays empty (re-evaluate it: "
                           "'ffnet-nas evaluate --redo --precision int8 %s')", arch.code, init, weights, arch.code)
            continue
        scorer = scorer or Int8Scorer(workspace, scored=val_images)  # made on the first point that needs it
        model = load_model(weights).eval()
        miou = scorer.miou(model, stop=val_images)
        record = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.iloc[0].to_dict().items()}
        _upsert(workspace.evaluated_path, {**record, "int8_miou": miou})
        logger.log(level, "%s (%s): int8 mIoU %.2f (float %.2f) -> %s", arch.code, init, miou,
                   record["measured_miou"], workspace.evaluated_path)


class Int8Scorer:
    """The accuracy of a model as it ships in INT8: quantised as the INT8 latency table's networks
    are (`ffnet_nas.predictors.latency.int8`), calibrated on 16 training images of the workdir's
    data, scored over validation images, all at the teacher's training size. Every INT8 accuracy
    of a workdir (int8_miou, the held-out check, the win check) is this one recipe."""

    def __init__(self, workspace: Workspace, *, scored: int | None = None):
        """`scored`: the images the points are scored on (None: all), which sizes the embedded
        data's validation split (`data.validation_split`)."""
        from ffnet_nas.data import validation_split
        from ffnet_nas.distill.teacher import read_teacher_info
        from ffnet_nas.predictors.latency.int8 import calibration_images

        data, input_hw = data_of(read_teacher_info(workspace.teacher_path))
        self.val = validation_split(data, scored=scored, size_hw=input_hw, cache_dir=workspace.data_dir)
        self._calibration = calibration_images(data, size_hw=input_hw, cache_dir=workspace.data_dir)

    def miou(self, model, *, start: int = 0, stop: int | None = None) -> float:
        """INT8 mIoU in points over validation images [start, stop) (stop None: to the end)."""
        from ffnet_nas.predictors.latency.int8 import score_int8

        stop = len(self.val) if stop is None else min(stop, len(self.val))
        pairs = [self.val[i] for i in range(start, stop)]
        return 100 * score_int8(model, calibration=self._calibration, images=pairs, num_classes=model.num_classes,
                                ignore_index=getattr(self.val, "ignore_index", 255), fp32_too=False).miou
