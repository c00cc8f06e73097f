"""MetaMixer's FFNet block (Yun et al. 2024, arXiv 2406.02021) as the block type `metamixer`.

A different network that shares FFNet's name: it keeps attention's structure (a token mixer then a
channel mixer, each residual) and replaces the query-key product by large-kernel depthwise
convolutions. Built here from the paper's description:

    token mixer:   1x1 conv-BN -> depthwise kxk -> GELU -> depthwise kxk        (x + mixer(x))
    channel mixer: depthwise 3x3 -> 1x1 expand (x4) -> GELU -> 1x1 -> BN         (x + mixer(x))

Each depthwise kxk (k = 7) trains with a parallel depthwise 3x3 branch (both with BN), the
structural re-parameterisation the paper uses: at deployment `reparameterize` merges the two
branches and their BNs into one kxk conv with a bias (exact up to float rounding; tested).

Stage interface (same as `BasicBlock` / `Bottleneck`): `MetaMixerBlock(cin, planes, stride)`.
Where the stride or width changes, the block starts with `downsample` (3x3 conv stride s + BN,
the paper's patch-merging stem of a stage); nothing else reads the block input then, so the
block's only input convolution is `downsample.0` (`INPUT_CONVS`), which is what assembly folds a
distillation adapter into.
"""

from __future__ import annotations

import torch
from torch import nn

BN_MOMENTUM = 0.1  # = space.builder.BN_MOMENTUM (the builder imports this module, not the reverse)
KERNEL = 7
SMALL_KERNEL = 3
MLP_RATIO = 4


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, momentum=BN_MOMENTUM)


class RepDWConv(nn.Module):
    """Depthwise kxk conv-BN with a parallel depthwise 3x3 conv-BN; one kxk conv after `reparameterize`."""

    def __init__(self, channels: int, kernel: int = KERNEL):
        super().__init__()
        self.channels, self.kernel = channels, kernel
        self.large = nn.Sequential(nn.Conv2d(channels, channels, kernel, 1, kernel // 2, groups=channels, bias=False),
                                   _bn(channels))
        self.small = nn.Sequential(nn.Conv2d(channels, channels, SMALL_KERNEL, 1, SMALL_KERNEL // 2, groups=channels,
                                             bias=False), _bn(channels))
        self.fused: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.fused(x)
        return self.large(x) + self.small(x)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Merge both branches (eval-mode BN) into `fused`, in float64, and drop them."""
        if self.fused is not None:
            return
        weight = torch.zeros(self.channels, 1, self.kernel, self.kernel, dtype=torch.float64,
                             device=self.large[0].weight.device)
        bias = torch.zeros(self.channels, dtype=torch.float64, device=weight.device)
        pad = (self.kernel - SMALL_KERNEL) // 2
        for branch, offset in ((self.large, 0), (self.small, pad)):
            conv, bn = branch
            scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            w = conv.weight.double() * scale.view(-1, 1, 1, 1)
            k = w.shape[-1]
            # a centred smaller kernel is the larger one zero-padded (both use 'same' padding)
            weight[:, :, offset:offset + k, offset:offset + k] += w
            bias += bn.bias.double() - bn.running_mean.double() * scale
        dtype = self.large[0].weight.dtype
        fused = nn.Conv2d(self.channels, self.channels, self.kernel, 1, self.kernel // 2, groups=self.channels,
                          bias=True, device=weight.device, dtype=dtype)
        fused.weight.copy_(weight.to(dtype))
        fused.bias.copy_(bias.to(dtype))
        self.fused = fused
        del self.large, self.small


class MetaMixerBlock(nn.Module):
    expansion = 1
    INPUT_CONVS = ("downsample.0",)  # the convs that read the block's input (see assemble.py)

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.downsample = (nn.Sequential(nn.Conv2d(cin, planes, 3, stride, 1, bias=False), _bn(planes))
                           if stride != 1 or cin != planes else None)
        self.token_mixer = nn.Sequential(
            nn.Conv2d(planes, planes, 1, bias=False), _bn(planes),
            RepDWConv(planes), nn.GELU(), RepDWConv(planes),
        )
        hidden = planes * MLP_RATIO
        self.channel_mixer = nn.Sequential(
            nn.Conv2d(planes, planes, 3, 1, 1, groups=planes, bias=False), _bn(planes),
            nn.Conv2d(planes, hidden, 1, bias=False), _bn(hidden), nn.GELU(),
            nn.Conv2d(hidden, planes, 1, bias=False), _bn(planes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        x = x + self.token_mixer(x)
        return x + self.channel_mixer(x)

    def last_bns(self) -> tuple[nn.BatchNorm2d, ...]:
        """The BNs that end each residual branch: zeroed at init so the block starts as identity.

        The token mixer ends in a RepDWConv: both its BNs are zeroed (their sum is the branch).
        """
        last = self.token_mixer[-1]
        if last.fused is not None:
            return (self.channel_mixer[-1],)
        return (last.large[1], last.small[1], self.channel_mixer[-1])


def reparameterize(model: nn.Module) -> int:
    """Merge every RepDWConv of `model` in place (eval mode); returns how many were merged."""
    count = 0
    for m in model.modules():
        if isinstance(m, RepDWConv) and m.fused is None:
            m.reparameterize()
            count += 1
    return count


__all__ = ["MetaMixerBlock", "RepDWConv", "reparameterize"]
