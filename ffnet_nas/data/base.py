"""What every data set here is: indexable (image, mask) pairs plus class metadata.

Real data sets are lists of (image file, mask file) pairs read with Pillow, with a 256-entry
lookup table mapping stored mask values to training ids (Cityscapes labelIds -> trainIds,
ADE20K reduce-zero-label, identity for a plain folder). Reading and mapping are shared here;
each layout only knows how to find its files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ffnet_nas.space.errors import InvalidInput

IGNORE_INDEX = 255
Transform = Callable[[torch.Tensor, torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]


class SegmentationDataset(Dataset):
    """Base: `ds[i] -> (image float32 (3, H, W) normalised, mask int64 (H, W), 255 = ignore)`."""

    spec: str
    split: str
    num_classes: int
    class_names: tuple[str, ...]
    ignore_index: int = IGNORE_INDEX
    transform: Transform

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec!r}, split={self.split!r}, n={len(self)}, classes={self.num_classes})"


class PairedFiles(SegmentationDataset):
    """Image/mask file pairs with a label lookup table (uint8 mask value -> train id)."""

    def __init__(self, *, spec: str, split: str, pairs: Sequence[tuple[Path, Path]], label_map: np.ndarray,
                 class_names: Sequence[str], transform: Transform):
        if len(label_map) != 256:
            raise ValueError("label_map must have 256 entries (one per uint8 mask value)")
        self.spec, self.split = spec, split
        self.pairs = list(pairs)
        self.label_map = torch.as_tensor(np.asarray(label_map, dtype=np.int64))
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.pairs[i]
        image = read_image(image_path)
        raw = read_mask(mask_path)
        if raw.shape != image.shape[-2:]:
            raise InvalidInput(f"mask {str(mask_path)!r} is {tuple(raw.shape)} but its image is {tuple(image.shape[-2:])}; expected the same height and width")
        return self.transform(image, self.label_map[raw.long()])


def read_image(path: Path) -> torch.Tensor:
    """uint8 (3, H, W) RGB."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise InvalidInput(f"cannot read image {str(path)!r} ({e}); expected a PNG or JPEG file") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def read_mask(path: Path) -> torch.Tensor:
    """uint8 (H, W) of stored label values (single-channel or palette PNG)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16", "1"):
                raise InvalidInput(f"mask {str(path)!r} has mode {im.mode}; expected a single-channel label PNG (one class id per pixel)")
            arr = np.asarray(im)
    except (OSError, ValueError) as e:
        if isinstance(e, InvalidInput):
            raise
        raise InvalidInput(f"cannot read mask {str(path)!r} ({e}); expected a single-channel label PNG") from None
    if arr.max(initial=0) > 255:
        raise InvalidInput(f"mask {str(path)!r} holds values up to {int(arr.max())}; expected class ids 0..254 and 255 for ignore")
    return torch.from_numpy(arr.astype(np.uint8))


def require_dir(path: Path, *, layout: str, what: str) -> Path:
    """The folder, or one InvalidInput line naming the layout that was expected."""
    if not path.is_dir():
        raise InvalidInput(f"{what}: folder {str(path)!r} not found; expected the layout {layout}")
    return path


def fixed_batches(dataset, *, batch_size: int = 8, n_batches: int = 2, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first `n_batches * batch_size` items of `dataset` (fewer when it is smaller) as batches,
    its random augmentation drawn under `seed` with the global RNG restored afterwards: the same
    batches for every model and every caller (zero-cost proxies, BatchNorm recalibration)."""
    n = min(len(dataset), batch_size * n_batches)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        items = [dataset[i] for i in range(n)]
    return [(torch.stack([im for im, _ in items[i:i + batch_size]]), torch.stack([m for _, m in items[i:i + batch_size]]))
            for i in range(0, n, batch_size)]
