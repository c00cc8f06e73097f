"""Shared by the deploy/export/bench tests: BN statistics that make folding non-trivial."""

import torch
from torch import nn


def randomise_bn(model, seed=1):
    """With default statistics (mean 0, var 1, gamma 1, beta 0) folding is almost a no-op; these are not."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return model
