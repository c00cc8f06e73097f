"""Zero-cost proxies: a network's promise scored from a few gradients, without training it.

    batches = fixed_batches(train_ds, batch_size=8, n_batches=2, seed=0)   # ffnet_nas.data
    grad_norm(model, batches), zico(model, batches)

They are the baselines a reviewer tries before believing a trained predictor (the predictor check
of `ffnet_nas.predictor_check` ranks points by them beside ours):

- `grad_norm` (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021): the sum over
  weight tensors of the L2 norm of the loss gradient on one batch.
- `zico` (Li et al., "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients", ICLR
  2023): for each layer, log of the sum over its weights of mean |gradient| / standard deviation of
  the gradient across batches; summed over layers. Needs at least two batches. Weights whose
  gradient does not vary between the batches (std 0) carry no signal and are left out, as in the
  paper's code.

The loss is the segmentation cross-entropy (ignore label `IGNORE_INDEX`), logits resized to the
mask, as fine-tuning computes it. The model is used in train mode (batch-norm statistics of the
batch, as the papers do) on a copy, so the caller's model and its running statistics are untouched.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ffnet_nas.metrics import IGNORE_INDEX


def _loss(model: nn.Module, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    logits = model(images)
    if logits.shape[-2:] != masks.shape[-2:]:
        logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, masks, ignore_index=IGNORE_INDEX)


def _gradients(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    """Per batch, the gradient of every weight tensor (conv and linear weights: what the papers score)."""
    net = copy.deepcopy(model).train()
    weights = {name: p for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
               for pname, p in m.named_parameters(recurse=False) if pname == "weight" and p.requires_grad}
    grads = []
    for images, masks in batches:
        net.zero_grad(set_to_none=True)
        _loss(net, images, masks).backward()
        grads.append({name: p.grad.detach().clone() for name, p in weights.items() if p.grad is not None})
    return grads


def grad_norm(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Sum of the weight gradients' L2 norms on the first batch."""
    if not batches:
        raise ValueError("grad_norm: expected at least one batch")
    (first,) = _gradients(model, batches[:1])
    return float(sum(g.norm() for g in first.values()))


def zico(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """ZiCo over `batches` (at least two)."""
    if len(batches) < 2:
        raise ValueError(f"zico: expected at least 2 batches (it compares gradients across batches), got {len(batches)}")
    per_batch = _gradients(model, batches)
    score = 0.0
    for name in per_batch[0]:
        g = torch.stack([grads[name] for grads in per_batch])
        mean, std = g.abs().mean(0), g.std(0, correction=0)  # the population std, as the paper computes it
        signal = std > 0
        total = float((mean[signal] / std[signal]).sum())
        if total > 0:
            score += math.log(total)
    return score


__all__ = ["grad_norm", "zico"]
