"""Small data trees in the real layouts (Cityscapes, a plain images+masks folder), written by the
tests that need real-layout data: the loaders' tests and `run --data` end to end."""

import numpy as np
from PIL import Image


def make_tree(root, *, splits=("train", "val"), cities=("aachen", "bochum"), hw=(16, 32), seed=0):
    rng = np.random.default_rng(seed)
    frames = {}
    for split in splits:
        for city in cities:
            for k in range(2):
                frame = f"{city}_{k:06d}_000019"
                img_dir = root / "leftImg8bit" / split / city
                gt_dir = root / "gtFine" / split / city
                img_dir.mkdir(parents=True, exist_ok=True)
                gt_dir.mkdir(parents=True, exist_ok=True)
                image = rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8)
                labels = rng.integers(0, 34, size=hw, dtype=np.uint8)
                Image.fromarray(image).save(img_dir / f"{frame}_leftImg8bit.png")
                Image.fromarray(labels).save(gt_dir / f"{frame}_gtFine_labelIds.png")
                # distractors the official layout also holds: must not be read as labels
                Image.fromarray(labels).save(gt_dir / f"{frame}_gtFine_color.png")
                frames[(split, frame)] = (image, labels)
    return frames


def write_pool(folder, n, hw=(10, 14), classes=4, seed=0):
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir(parents=True)
    for k in range(n):
        Image.fromarray(rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8)).save(folder / "images" / f"img{k:03d}.png")
        mask = rng.integers(0, classes, size=hw, dtype=np.uint8)
        mask[0, 0] = 255
        Image.fromarray(mask).save(folder / "masks" / f"img{k:03d}.png")
