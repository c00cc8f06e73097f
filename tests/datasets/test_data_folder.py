"""Generic images + masks folder: flat pool split 9:1, or explicit train/val folders."""

import numpy as np
import pytest
import torch
from PIL import Image

from ffnet_nas.data import make_dataset
from ffnet_nas.space.errors import InvalidInput
from tests.helpers.trees import write_pool


def test_flat_pool_split_and_inferred_classes(tmp_path):
    write_pool(tmp_path, 20)
    train = make_dataset(f"folder:{tmp_path}", "train")
    val = make_dataset(f"folder:{tmp_path}", "val")
    assert (len(train), len(val)) == (18, 2)
    assert not {p for p, _ in train.pairs} & {p for p, _ in val.pairs}
    assert train.num_classes == 4 and train.class_names == ("class0", "class1", "class2", "class3")
    _, mask = val[0]
    assert mask[0, 0] == 255 and int(mask[mask != 255].max()) < 4


def test_split_folders_and_classes_txt(tmp_path):
    write_pool(tmp_path / "train", 3)
    write_pool(tmp_path / "val", 2, seed=1)
    (tmp_path / "classes.txt").write_text("road\ncar\nsky\ntree\nsign\n")
    ds = make_dataset(f"folder:{tmp_path}", "val", size_hw=(8, 8))
    assert len(ds) == 2 and ds.class_names == ("road", "car", "sky", "tree", "sign") and ds.num_classes == 5
    image, mask = ds[1]
    assert image.shape == (3, 8, 8) and mask.dtype == torch.int64


def test_layout_errors_say_what_was_expected(tmp_path):
    with pytest.raises(InvalidInput, match=r"ROOT/images/\*") as e:
        make_dataset(f"folder:{tmp_path}", "train")
    assert "\n" not in str(e.value)
    write_pool(tmp_path, 3)
    (tmp_path / "masks" / "img001.png").unlink()
    with pytest.raises(InvalidInput, match="has no mask"):
        make_dataset(f"folder:{tmp_path}", "train")


def test_rgb_mask_is_rejected_with_a_clear_line(tmp_path):
    write_pool(tmp_path, 3)
    Image.fromarray(np.zeros((10, 14, 3), dtype=np.uint8)).save(tmp_path / "masks" / "img000.png")
    with pytest.raises(InvalidInput, match="single-channel"):
        make_dataset(f"folder:{tmp_path}", "train")
