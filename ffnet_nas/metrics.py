"""Segmentation accuracy: a confusion matrix with an ignore index, per-class IoU and mIoU.

The definitions follow the official Cityscapes evaluation (`cityscapesscripts`,
evalPixelLevelSemanticLabeling): pixels whose ground truth is the ignore index are dropped
entirely (they count neither as false negatives nor as false positives); a prediction of
any class on a valid pixel counts. IoU_c = TP / (TP + FP + FN); a class with no ground-truth
pixels and no predictions has no IoU (NaN) and is left out of the mean, as there.
`tests/test_metrics.py` checks the numbers against the official script.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

IGNORE_INDEX = 255


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, *, num_classes: int, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """(num_classes, num_classes) int64 counts, rows = ground truth, columns = prediction.

    `pred` and `target` are integer tensors of the same shape. Ground-truth pixels equal to
    `ignore_index` are skipped; any other ground truth or prediction outside [0, num_classes)
    is an error (it would silently corrupt the counts).
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    pred = pred.reshape(-1).long()
    target = target.reshape(-1).long()
    keep = target != ignore_index
    pred, target = pred[keep], target[keep]
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ValueError(f"target labels must be in [0, {num_classes}) or {ignore_index}; got range [{int(target.min())}, {int(target.max())}]")
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_classes):
        raise ValueError(f"predicted labels must be in [0, {num_classes}); got range [{int(pred.min())}, {int(pred.max())}]")
    # One bincount over (gt, pred) pairs: linear time, no Python loop over classes.
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


@dataclass(frozen=True)
class SegmentationScore:
    """mIoU and its parts from one confusion matrix (values in [0, 1]; NaN = class absent)."""

    confusion: np.ndarray = field(repr=False)
    class_names: tuple[str, ...] = ()

    @property
    def iou(self) -> np.ndarray:
        cm = self.confusion.astype(np.float64)
        tp = np.diag(cm)
        denom = cm.sum(0) + cm.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, tp / np.where(denom > 0, denom, 1), np.nan)

    @property
    def miou(self) -> float:
        iou = self.iou
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    @property
    def pixel_accuracy(self) -> float:
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else float("nan")

    @property
    def num_pixels(self) -> int:
        return int(self.confusion.sum())

    def per_class(self) -> dict[str, float]:
        names = self.class_names or tuple(str(i) for i in range(len(self.confusion)))
        return {n: float(v) for n, v in zip(names, self.iou)}

    def to_dict(self) -> dict:
        return {"miou": self.miou, "pixel_accuracy": self.pixel_accuracy, "num_pixels": self.num_pixels, "iou": self.per_class()}


class ConfusionMeter:
    """Accumulates a confusion matrix over batches of predictions (logits or labels)."""

    def __init__(self, *, num_classes: int, ignore_index: int = IGNORE_INDEX, class_names: Sequence[str] = ()):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = tuple(class_names)
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """`pred`: (N, C, H, W) logits (resized to the target size bilinearly, as the Cityscapes
        evaluation script does outside the model) or (N, H, W) labels; `target`: (N, H, W)."""
        if pred.dim() == target.dim() + 1:
            if pred.shape[-2:] != target.shape[-2:]:
                pred = torch.nn.functional.interpolate(pred.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
            pred = pred.argmax(1)
        self.matrix += confusion_matrix(pred.cpu(), target.cpu(), num_classes=self.num_classes, ignore_index=self.ignore_index)

    def score(self) -> SegmentationScore:
        return SegmentationScore(self.matrix.numpy().copy(), self.class_names)
