"""A generic folder of images and label masks with matching file stems.

    ROOT/images/<name>.{png,jpg,jpeg}   ROOT/masks/<name>.png          (one pool; split below)
 or ROOT/<split>/images/...             ROOT/<split>/masks/...         (split = train | val)
    ROOT/classes.txt   optional, one class name per line (line k = class id k)

Masks are single-channel PNGs holding class ids 0..K-1 and 255 for ignore. With a single
pool, every 10th file in sorted stem order goes to `val` and the rest to `train` (fixed, so
the split never changes between runs). Without classes.txt the class count is 1 + the
largest id found in the masks (all of them are scanned once); with it, mask values past the
listed classes are treated as ignore (255).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ffnet_nas.space.errors import InvalidInput

from .base import IGNORE_INDEX, PairedFiles, Transform, read_mask, require_dir

LAYOUT = "ROOT/images/*.png|jpg + ROOT/masks/*.png with matching stems (or ROOT/{train,val}/images + masks), optional ROOT/classes.txt"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
VAL_EVERY = 10


def _pairs_in(folder: Path) -> list[tuple[Path, Path]]:
    images = require_dir(folder / "images", layout=LAYOUT, what="folder")
    masks = require_dir(folder / "masks", layout=LAYOUT, what="folder")
    pairs = []
    for image in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        mask = masks / f"{image.stem}.png"
        if not mask.is_file():
            raise InvalidInput(f"folder: {str(image)!r} has no mask {str(mask)!r}; expected the layout {LAYOUT}")
        pairs.append((image, mask))
    if not pairs:
        raise InvalidInput(f"folder: no .png/.jpg images in {str(images)!r}; expected the layout {LAYOUT}")
    return pairs


def find_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    require_dir(root, layout=LAYOUT, what="folder data root")
    if (root / split / "images").is_dir():
        return _pairs_in(root / split)
    pairs = _pairs_in(root)
    if len(pairs) < 2:
        raise InvalidInput(f"folder: {str(root)!r} has {len(pairs)} image; expected at least 2 to split into train and val (or ROOT/train + ROOT/val)")
    chosen = [p for i, p in enumerate(pairs) if (i % VAL_EVERY == VAL_EVERY - 1) == (split == "val")]
    return chosen or pairs[-1:]  # tiny folders: val gets the last file rather than nothing


def class_names(root: Path) -> tuple[str, ...]:
    listing = root / "classes.txt"
    if listing.is_file():
        names = tuple(line.strip() for line in listing.read_text().splitlines() if line.strip())
        if not names:
            raise InvalidInput(f"folder: {str(listing)!r} is empty; expected one class name per line")
        return names
    top = -1
    for split_dir in ([root] if (root / "masks").is_dir() else [root / s for s in ("train", "val") if (root / s).is_dir()]):
        for mask in (split_dir / "masks").glob("*.png"):
            values = np.unique(read_mask(mask).numpy())
            values = values[values != IGNORE_INDEX]
            if values.size:
                top = max(top, int(values.max()))
    if top < 0:
        raise InvalidInput(f"folder: no labelled pixels in the masks under {str(root)!r}; expected class ids 0..K-1 (255 = ignore)")
    return tuple(f"class{k}" for k in range(top + 1))


def folder(root: Path, split: str, *, spec: str, transform: Transform) -> PairedFiles:
    root = Path(root)
    pairs = find_pairs(root, split)
    names = class_names(root)
    lut = np.full(256, IGNORE_INDEX, dtype=np.int64)
    lut[: len(names)] = np.arange(len(names))
    return PairedFiles(spec=spec, split=split, pairs=pairs, label_map=lut, class_names=names, transform=transform)
