"""ADE20K (SceneParsing, `ADEChallengeData2016`) with reduce-zero-label.

    ROOT/images/{training,validation}/*.jpg
    ROOT/annotations/{training,validation}/*.png   (0 = other, 1..150 = classes)

ROOT may be the `ADEChallengeData2016` folder itself or its parent. Reduce-zero-label (the
MMSegmentation convention the published ADE20K numbers use): 0 -> 255 (ignored), k -> k-1,
so 150 classes 0..149.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ffnet_nas.space.errors import InvalidInput

from .base import PairedFiles, Transform, require_dir

LAYOUT = "ROOT/images/{training,validation}/*.jpg + ROOT/annotations/{training,validation}/*.png (ROOT = ADEChallengeData2016)"
SPLITS = {"train": "training", "val": "validation"}
NUM_CLASSES = 150
# The 150 SceneParsing class names in id order (objectInfo150, first synonym; as MMSegmentation lists them).
CLASS_NAMES: tuple[str, ...] = (
    'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed', 'windowpane', 'grass', 'cabinet',
    'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain', 'chair', 'car', 'water',
    'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug', 'field', 'armchair', 'seat', 'fence', 'desk',
    'rock', 'wardrobe', 'lamp', 'bathtub', 'railing', 'cushion', 'base', 'box', 'column', 'signboard',
    'chest of drawers', 'counter', 'sand', 'sink', 'skyscraper', 'fireplace', 'refrigerator', 'grandstand', 'path',
    'stairs', 'runway', 'case', 'pool table', 'pillow', 'screen door', 'stairway', 'river', 'bridge', 'bookcase',
    'blind', 'coffee table', 'toilet', 'flower', 'book', 'hill', 'bench', 'countertop', 'stove', 'palm',
    'kitchen island', 'computer', 'swivel chair', 'boat', 'bar', 'arcade machine', 'hovel', 'bus', 'towel', 'light',
    'truck', 'tower', 'chandelier', 'awning', 'streetlight', 'booth', 'television receiver', 'airplane',
    'dirt track', 'apparel', 'pole', 'land', 'bannister', 'escalator', 'ottoman', 'bottle', 'buffet', 'poster',
    'stage', 'van', 'ship', 'fountain', 'conveyer belt', 'canopy', 'washer', 'plaything', 'swimming pool', 'stool',
    'barrel', 'basket', 'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven', 'ball', 'food', 'step', 'tank',
    'trade name', 'microwave', 'pot', 'animal', 'bicycle', 'lake', 'dishwasher', 'screen', 'blanket', 'sculpture',
    'hood', 'sconce', 'vase', 'traffic light', 'tray', 'ashcan', 'fan', 'pier', 'crt screen', 'plate', 'monitor',
    'bulletin board', 'shower', 'radiator', 'glass', 'clock', 'flag',
)


def label_map() -> np.ndarray:
    lut = np.full(256, 255, dtype=np.int64)
    lut[1 : NUM_CLASSES + 1] = np.arange(NUM_CLASSES)
    return lut


def find_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    if not (root / "images").is_dir() and (root / "ADEChallengeData2016").is_dir():
        root = root / "ADEChallengeData2016"
    require_dir(root, layout=LAYOUT, what="ade20k data root")
    images = require_dir(root / "images" / split, layout=LAYOUT, what="ade20k")
    annotations = require_dir(root / "annotations" / split, layout=LAYOUT, what="ade20k")
    pairs = []
    for image in sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        mask = annotations / f"{image.stem}.png"
        if not mask.is_file():
            raise InvalidInput(f"ade20k: {str(image)!r} has no annotation {str(mask)!r}; expected the layout {LAYOUT}")
        pairs.append((image, mask))
    if not pairs:
        raise InvalidInput(f"ade20k: no images under {str(images)!r}; expected the layout {LAYOUT}")
    return pairs


def ade20k(root: Path, split: str, *, spec: str, transform: Transform) -> PairedFiles:
    return PairedFiles(spec=spec, split=split, pairs=find_pairs(Path(root), SPLITS[split]), label_map=label_map(),
                       class_names=CLASS_NAMES, transform=transform)
