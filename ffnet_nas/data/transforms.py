"""Joint image + mask transforms for segmentation (random scale, crop, flip; normalisation).

Images enter as uint8 tensors (3, H, W) and leave as float32, ImageNet-normalised; masks
are int64 (H, W) with ignore index 255 throughout. Randomness comes from torch's global
generator, whose state the training loop checkpoints, so a resumed run draws the same crops
it would have drawn without the kill.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IGNORE_INDEX = 255


def normalize(image: torch.Tensor) -> torch.Tensor:
    """uint8 (3, H, W) or float in [0, 1] -> float32 ImageNet-normalised."""
    x = image.float()
    if image.dtype == torch.uint8:
        x = x / 255.0
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype).view(3, 1, 1)
    return (x - mean) / std


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """Inverse of `normalize` (float in [0, 1]); for looking at samples."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype).view(3, 1, 1)
    return (image * std + mean).clamp(0, 1)


def resize_pair(image: torch.Tensor, mask: torch.Tensor, size_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Image bilinear (antialiased when shrinking), mask nearest: labels are never blended."""
    if tuple(image.shape[-2:]) == tuple(size_hw):
        return image, mask
    img = F.interpolate(image[None].float(), size=size_hw, mode="bilinear", align_corners=False, antialias=True)[0]
    if image.dtype == torch.uint8:
        img = img.round().clamp(0, 255).to(torch.uint8)
    m = F.interpolate(mask[None, None].float(), size=size_hw, mode="nearest")[0, 0].to(mask.dtype)
    return img, m


@dataclass(frozen=True)
class EvalTransform:
    """Deterministic: resize to `size_hw` (if given) and normalise."""

    size_hw: tuple[int, int] | None = None

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.size_hw is not None:
            image, mask = resize_pair(image, mask, self.size_hw)
        return normalize(image), mask.long()


@dataclass(frozen=True)
class TrainTransform:
    """Random scale around the eval size, pad (image 0, mask ignore), random crop, h-flip.

    The scale is relative to the size the eval transform would produce, so train crops and
    eval frames see objects at the same scale on average (the usual Cityscapes recipe:
    scale 0.5-2.0, crop, flip).
    """

    size_hw: tuple[int, int] | None = None
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = image.shape[-2:]
        out_h, out_w = self.size_hw or (h, w)
        lo, hi = self.scale_range
        s = lo + (hi - lo) * float(torch.rand(()))
        base = out_h / h  # eval resize factor (aspect kept: datasets have a fixed aspect)
        new_hw = (max(1, round(h * base * s)), max(1, round(w * base * s)))
        image, mask = resize_pair(image, mask, new_hw)
        image, mask = _pad_to(image, mask, out_h, out_w)
        top = int(torch.randint(0, image.shape[-2] - out_h + 1, ()))
        left = int(torch.randint(0, image.shape[-1] - out_w + 1, ()))
        image = image[:, top : top + out_h, left : left + out_w]
        mask = mask[top : top + out_h, left : left + out_w]
        if self.flip and bool(torch.rand(()) < 0.5):
            image, mask = image.flip(-1), mask.flip(-1)
        return normalize(image), mask.long()


def _pad_to(image: torch.Tensor, mask: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    ph, pw = max(0, h - image.shape[-2]), max(0, w - image.shape[-1])
    if ph or pw:
        image = F.pad(image, (0, pw, 0, ph), value=0)
        mask = F.pad(mask, (0, pw, 0, ph), value=IGNORE_INDEX)
    return image, mask
