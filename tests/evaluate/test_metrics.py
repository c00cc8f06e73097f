"""mIoU evaluator: confusion matrix with ignore index, checked against the official Cityscapes script."""

import math

import numpy as np
import pytest
import torch

from ffnet_nas.metrics import ConfusionMeter, SegmentationScore, confusion_matrix


def _naive_iou(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore: int = 255) -> np.ndarray:
    """Straightforward per-class IoU, written independently of the confusion matrix."""
    valid = gt != ignore
    out = np.full(num_classes, np.nan)
    for c in range(num_classes):
        tp = np.sum((pred == c) & (gt == c) & valid)
        fp = np.sum((pred == c) & (gt != c) & valid)
        fn = np.sum((pred != c) & (gt == c) & valid)
        if tp + fp + fn:
            out[c] = tp / (tp + fp + fn)
    return out


def test_confusion_matrix_counts_and_ignores():
    gt = torch.tensor([[0, 1, 255], [2, 2, 1]])
    pred = torch.tensor([[0, 2, 1], [2, 0, 1]])
    cm = confusion_matrix(pred, gt, num_classes=3)
    expected = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 0, 1]])
    assert torch.equal(cm, expected)
    assert cm.sum() == 5  # the ignored pixel is counted nowhere


def test_iou_matches_independent_computation_on_random_predictions():
    rng = np.random.default_rng(0)
    k = 7
    gt = rng.integers(0, k, size=(3, 40, 50))
    gt[rng.random(gt.shape) < 0.2] = 255
    gt[gt == 5] = 255  # class 5 absent from ground truth ...
    pred = rng.integers(0, k, size=gt.shape)
    pred[pred == 6] = 0  # ... and class 6 never predicted
    meter = ConfusionMeter(num_classes=k)
    for i in range(3):  # accumulation over batches
        meter.update(torch.from_numpy(pred[i : i + 1]), torch.from_numpy(gt[i : i + 1]))
    score = meter.score()
    np.testing.assert_allclose(score.iou, _naive_iou(pred, gt, k), equal_nan=True)
    assert math.isclose(score.miou, float(np.nanmean(_naive_iou(pred, gt, k))))
    assert score.iou[5] == 0.0  # predicted but absent: IoU 0, counted in the mean (as Cityscapes does)


def test_class_absent_everywhere_is_nan_and_left_out():
    score = SegmentationScore(np.array([[5, 0, 0], [1, 3, 0], [0, 0, 0]]))
    assert math.isnan(score.iou[2])
    assert math.isclose(score.miou, (5 / 6 + 3 / 4) / 2)


def test_logits_are_resized_to_the_label_size():
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 0] = 2.5
    logits[0, 1, :, 1] = 5.0  # bilinear x2 along W: class-1 logits 0, 1.25, 3.75, 5 vs 2.5 for class 0
    gt = torch.tensor([[[0, 0, 1, 1]] * 4])
    meter = ConfusionMeter(num_classes=2)
    meter.update(logits, gt)
    assert meter.score().miou == pytest.approx(1.0)


def test_out_of_range_labels_are_an_error_not_silent():
    with pytest.raises(ValueError, match="target labels"):
        confusion_matrix(torch.tensor([0]), torch.tensor([9]), num_classes=3)
    with pytest.raises(ValueError, match="predicted labels"):
        confusion_matrix(torch.tensor([3]), torch.tensor([0]), num_classes=3)


def test_agrees_with_official_cityscapes_evaluation(tmp_path):
    """Same predictions through cityscapesscripts' evalPixelLevelSemanticLabeling and through ours."""
    ev = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    from PIL import Image

    from ffnet_nas.data.cityscapes import CLASS_NAMES, label_map, train_id_to_label_id

    rng = np.random.default_rng(1)
    label_ids = np.array([i for i in range(34)], dtype=np.uint8)
    args = ev.args
    args.evalInstLevelScore = False
    args.quiet = True
    conf = ev.generateMatrix(args)
    meter = ConfusionMeter(num_classes=19, class_names=CLASS_NAMES)
    to_train, to_label = label_map(), train_id_to_label_id()
    for i in range(3):
        gt = rng.choice(label_ids, size=(32, 64)).astype(np.uint8)
        # A good-ish predictor: right 60% of the time on trainable pixels, else a random class.
        truth = to_train[gt]
        pred_train = np.where((rng.random(gt.shape) < 0.6) & (truth != 255), truth, rng.integers(0, 19, size=gt.shape))
        gt_path, pred_path = tmp_path / f"gt{i}_gtFine_labelIds.png", tmp_path / f"pred{i}.png"
        Image.fromarray(gt).save(gt_path)
        Image.fromarray(to_label[pred_train].astype(np.uint8)).save(pred_path)
        ev.evaluatePair(str(pred_path), str(gt_path), conf, {}, {}, args)  # accumulates into conf in place
        meter.update(torch.from_numpy(pred_train), torch.from_numpy(truth))
    ours = meter.score().per_class()
    for name in CLASS_NAMES:
        label_id = ev.name2label[name].id
        official = ev.getIouScoreForLabel(label_id, conf, args)
        assert ours[name] == pytest.approx(official, abs=1e-12), name
