"""Cityscapes in its official layout, labelIds mapped to the 19 training ids.

    ROOT/leftImg8bit/<split>/<city>/<frame>_leftImg8bit.png
    ROOT/gtFine/<split>/<city>/<frame>_gtFine_labelIds.png

The label table is transcribed from `cityscapesscripts.helpers.labels` (v2.3.0; id, name,
trainId): the package drags in matplotlib, requests and a `typing` backport, far more than a
35-row table is worth at run time. `tests/test_data_cityscapes.py` compares this table with
the package's whenever it is importable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ffnet_nas.space.errors import InvalidInput

from .base import PairedFiles, Transform, require_dir

LAYOUT = "ROOT/leftImg8bit/<split>/<city>/*_leftImg8bit.png + ROOT/gtFine/<split>/<city>/*_gtFine_labelIds.png"

# (labelId, name, trainId); 255 = ignored in training and evaluation.
LABELS: tuple[tuple[int, str, int], ...] = (
    (0, "unlabeled", 255), (1, "ego vehicle", 255), (2, "rectification border", 255), (3, "out of roi", 255),
    (4, "static", 255), (5, "dynamic", 255), (6, "ground", 255), (7, "road", 0), (8, "sidewalk", 1),
    (9, "parking", 255), (10, "rail track", 255), (11, "building", 2), (12, "wall", 3), (13, "fence", 4),
    (14, "guard rail", 255), (15, "bridge", 255), (16, "tunnel", 255), (17, "pole", 5), (18, "polegroup", 255),
    (19, "traffic light", 6), (20, "traffic sign", 7), (21, "vegetation", 8), (22, "terrain", 9), (23, "sky", 10),
    (24, "person", 11), (25, "rider", 12), (26, "car", 13), (27, "truck", 14), (28, "bus", 15),
    (29, "caravan", 255), (30, "trailer", 255), (31, "train", 16), (32, "motorcycle", 17), (33, "bicycle", 18),
    (-1, "license plate", 255),
)
CLASS_NAMES: tuple[str, ...] = tuple(name for _, name, t in sorted(LABELS, key=lambda r: r[2]) if t != 255)
SPLITS = {"train": "train", "val": "val"}


def label_map() -> np.ndarray:
    """256-entry lookup: stored labelId -> trainId (255 for everything not trained on)."""
    lut = np.full(256, 255, dtype=np.int64)
    for label_id, _, train_id in LABELS:
        if label_id >= 0:
            lut[label_id] = train_id
    return lut


def train_id_to_label_id() -> np.ndarray:
    """trainId -> labelId, for writing predictions the official evaluation script can read."""
    out = np.zeros(len(CLASS_NAMES), dtype=np.int64)
    for label_id, _, train_id in LABELS:
        if train_id != 255:
            out[train_id] = label_id
    return out


def find_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    require_dir(root, layout=LAYOUT, what="cityscapes data root")
    images = require_dir(root / "leftImg8bit" / split, layout=LAYOUT, what="cityscapes")
    gt = require_dir(root / "gtFine" / split, layout=LAYOUT, what="cityscapes")
    pairs = []
    for image in sorted(images.glob("*/*_leftImg8bit.png")):
        frame = image.name[: -len("_leftImg8bit.png")]
        mask = gt / image.parent.name / f"{frame}_gtFine_labelIds.png"
        if not mask.is_file():
            raise InvalidInput(f"cityscapes: {str(image)!r} has no label file {str(mask)!r}; expected the layout {LAYOUT}")
        pairs.append((image, mask))
    if not pairs:
        raise InvalidInput(f"cityscapes: no *_leftImg8bit.png under {str(images)!r}; expected the layout {LAYOUT}")
    return pairs


def cityscapes(root: Path, split: str, *, spec: str, transform: Transform) -> PairedFiles:
    return PairedFiles(spec=spec, split=split, pairs=find_pairs(Path(root), SPLITS[split]), label_map=label_map(),
                       class_names=CLASS_NAMES, transform=transform)
