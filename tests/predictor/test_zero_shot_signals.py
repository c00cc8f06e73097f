"""bench/bench_zero_shot_signals: the signals of one forward pass (the check's end is in test_predictor_check)."""

import math

import pytest
import torch
from torch import nn

from bench.bench_zero_shot_signals import BATCH, forward_signals, teacher_batches
from ffnet_nas.training import evaluate, kd_loss, segmentation_loss

CLASSES = 4


class _Data(list):
    num_classes = CLASSES


def _data(n: int) -> _Data:
    g = torch.Generator().manual_seed(0)
    items = []
    for _ in range(n):
        mask = torch.randint(0, CLASSES, (8, 16), generator=g)
        mask[0, :5] = 255  # unlabelled pixels: out of the mIoU, the cross-entropy and the pixel accuracy
        items.append((torch.randn(3, 8, 16, generator=g), mask))
    return _Data(items)


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, CLASSES, 3, padding=1), nn.Upsample(scale_factor=0.5)).eval()  # stride 2, like a head


def test_a_model_against_itself_as_teacher_has_no_kd_loss_and_full_agreement():
    data, model = _data(20), _model(0)
    own = teacher_batches(model, data, stop=20)
    assert len(own) == math.ceil(20 / BATCH) and own[0].shape[-2:] == (8, 16)  # at the label size
    s = forward_signals(model, data, start=0, stop=20, num_classes=CLASSES, teacher_logits=own)
    assert s["kd"] == pytest.approx(0.0, abs=1e-6) and s["agree"] == pytest.approx(100.0)
    other = forward_signals(_model(1), data, start=0, stop=20, num_classes=CLASSES, teacher_logits=own)
    assert other["kd"] > 0.01 and 0 <= other["agree"] < 100


def test_the_signals_are_the_scores_and_losses_the_code_computes_elsewhere():
    data, model = _data(12), _model(2)
    s = forward_signals(model, data, start=4, stop=12, num_classes=CLASSES)
    # Z: training.evaluate's mIoU on the same images, to the bit
    assert s["z"] == 100 * evaluate(model, data, start=4, limit=8, progress=False).miou
    assert "kd" not in s and "agree" not in s  # no teacher given: no teacher terms
    images = torch.stack([x for x, _ in data[4:12]])
    masks = torch.stack([m for _, m in data[4:12]])
    with torch.no_grad():
        logits = model(images)
        assert s["ce"] == pytest.approx(float(segmentation_loss(logits, masks)), rel=1e-5)  # mean over labelled pixels
        up = nn.functional.interpolate(logits, size=(8, 16), mode="bilinear", align_corners=False)
    known = masks != 255
    assert s["pixel_acc"] == pytest.approx(float((up.argmax(1) == masks)[known].float().mean()))
    p = up.softmax(1).gather(1, masks.clamp(max=CLASSES - 1).unsqueeze(1)).squeeze(1)[known].mean()
    assert s["p_true"] == pytest.approx(float(p), rel=1e-5)
    teacher = _model(3)
    # the teacher's logits of the same 8 images, one batch, as measure() makes them from image 0
    both = forward_signals(model, data, start=4, stop=12, num_classes=CLASSES,
                           teacher_logits=teacher_batches(teacher, _Data(data[4:]), stop=8))
    with torch.no_grad():
        assert both["kd"] == pytest.approx(float(kd_loss(up, teacher(images))), rel=1e-5)
