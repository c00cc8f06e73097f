"""The weights a training run ends with: the average of its last steps, and BatchNorm statistics of their own.

    tail = TailAverage(last=25, steps=100)          # in the loop, after each optimiser step:
    tail.add(step, model)                           # counts only the last 25 steps
    tail.apply(model)                               # the model now holds their mean
    recalibrate_bn(model, batches)                  # statistics for the weights it now has

Why: the quick budget fine-tunes a point for 100 steps of 8 crops, and two fine-tuning seeds of one
point differed by 0.7-1.1 mIoU, as much as the true spread between points of one output stride, so
the yardstick could not rank them (issue 13; docs/results.md). What a seed leaves at the last step
is jittery in two ways: the weights follow the last few batches, and BatchNorm's running
statistics are an exponential average over roughly the last ten batches. The mean of the weights
over the last steps (a tail average, as in stochastic weight averaging, Izmailov et al. 2018) smooths
the first; recomputing the statistics as a plain average over a fixed set of training crops
("precise BN", Wu & Johnson 2021) removes the second, and an averaged model needs it anyway, since
no batch ever ran through the averaged weights.

`TailAverage.state_dict` goes into the training checkpoint, so a run killed inside the tail resumes
with its partial sum and ends with the same average.
"""

from __future__ import annotations

import torch
from torch import nn


COUNT = "__steps__"  # the state's entry counting the steps summed (no parameter name starts with "__")


class TailAverage:
    """The running sum of a model's parameters over the last `last` of `steps` optimiser steps.

    The mean divides by the steps actually added: a run resumed inside its tail without the partial
    sum (one that grew its step count past a finished shorter run) averages the steps after the
    resume only, rather than a sum that misses some of its terms."""

    def __init__(self, *, last: int, steps: int, state: dict[str, torch.Tensor] | None = None):
        if not 1 <= last <= steps:
            raise ValueError(f"last={last}: expected 1 to {steps} steps")
        self.last, self.steps = last, steps
        state = dict(state or {})
        self.count = int(state.pop(COUNT, torch.tensor(0)).item())
        self.sums: dict[str, torch.Tensor] = state

    def add(self, step: int, model: nn.Module) -> None:
        """After optimiser step `step` (1-based): counts when it is one of the last `last`."""
        if step <= self.steps - self.last:
            return
        with torch.no_grad():
            for name, p in model.named_parameters():
                acc = self.sums.get(name)
                self.sums[name] = p.detach().clone() if acc is None else acc.add_(p.detach())
        self.count += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The partial sum and its step count, for a training checkpoint (empty before the tail)."""
        return {**self.sums, COUNT: torch.tensor(self.count)} if self.count else {}

    def apply(self, model: nn.Module) -> None:
        """Load the mean over the tail into `model`'s parameters (its buffers are untouched)."""
        if not self.count:
            raise RuntimeError("no step of the tail was added: nothing to average")
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(self.sums[name] / self.count)


def batch_norms(model: nn.Module) -> list[nn.Module]:
    """Every BatchNorm layer of `model` (any dimension, SyncBatchNorm included)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def recalibrate_bn(model: nn.Module, batches) -> None:
    """Recompute every BatchNorm's running mean and variance as the plain average over `batches`
    ((images, masks) pairs; train-mode forward passes without gradients, on the model's device);
    the weights are untouched; leaves eval mode."""
    norms = batch_norms(model)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches, not an exponential one
    device = next(model.parameters()).device
    model.train()
    with torch.no_grad():
        for images, _ in batches:
            model(images.to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum  # a later fine-tune of this model averages as before
    model.eval()


__all__ = ["TailAverage", "batch_norms", "recalibrate_bn"]
