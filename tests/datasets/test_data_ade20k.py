"""ADE20K loader (reduce-zero-label) on a tiny tree."""

import numpy as np
import pytest
import torch
from PIL import Image

from ffnet_nas.data import make_dataset
from ffnet_nas.space.errors import InvalidInput


def make_tree(root, n=3, hw=(12, 20)):
    rng = np.random.default_rng(0)
    base = root / "ADEChallengeData2016"
    out = {}
    for split in ("training", "validation"):
        (base / "images" / split).mkdir(parents=True)
        (base / "annotations" / split).mkdir(parents=True)
        for k in range(n):
            stem = f"ADE_{split[:5]}_{k:08d}"
            image = rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8)
            ann = rng.integers(0, 151, size=hw, dtype=np.uint8)
            Image.fromarray(image).save(base / "images" / split / f"{stem}.jpg", quality=95)
            Image.fromarray(ann).save(base / "annotations" / split / f"{stem}.png")
            out[(split, stem)] = ann
    return base, out


@pytest.mark.parametrize("use_parent", [False, True])
def test_reduce_zero_label(tmp_path, use_parent):
    base, anns = make_tree(tmp_path)
    ds = make_dataset(f"ade20k:{tmp_path if use_parent else base}", "val")
    assert len(ds) == 3 and ds.num_classes == 150 and ds.class_names[0] == "wall" and ds.class_names[149] == "flag"
    _, mask = ds[0]
    ann = torch.from_numpy(anns[("validation", "ADE_valid_00000000")].astype(np.int64))
    expected = torch.where(ann == 0, torch.tensor(255), ann - 1)
    assert torch.equal(mask, expected)
    assert int(mask[mask != 255].max()) <= 149


def test_missing_root_and_missing_annotation(tmp_path):
    with pytest.raises(InvalidInput, match="ADEChallengeData2016"):
        make_dataset(f"ade20k:{tmp_path}", "train")
    base, _ = make_tree(tmp_path)
    next((base / "annotations" / "training").glob("*.png")).unlink()
    with pytest.raises(InvalidInput, match="has no annotation"):
        make_dataset(f"ade20k:{base}", "train")
