"""bench/bench_zero_shot_signals: the teacher-agreement signals (the rest is the predictor check's)."""

import pytest
import torch
from torch import nn

from bench.bench_zero_shot_signals import teacher_agreement


def _images(n):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(3, 8, 16, generator=g), None) for _ in range(n)]


def test_a_student_equal_to_the_teacher_agrees_everywhere_and_one_that_differs_does_not():
    torch.manual_seed(0)
    teacher = nn.Conv2d(3, 4, 1).eval()
    neg_kl, agree = teacher_agreement(teacher, teacher, _images(20), start=4, stop=20, batch=6)
    assert agree == pytest.approx(1.0) and neg_kl == pytest.approx(0.0, abs=1e-6)
    other = nn.Conv2d(3, 4, 1).eval()  # other weights: other logits, some pixels disagree
    neg_kl, agree = teacher_agreement(other, teacher, _images(20), start=4, stop=20, batch=6)
    assert neg_kl < 0 and 0 <= agree < 1
