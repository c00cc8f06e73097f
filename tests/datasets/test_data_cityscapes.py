"""Cityscapes loader on a tiny tree in the official layout."""

import numpy as np
import pytest
import torch

from ffnet_nas.data import make_dataset
from ffnet_nas.data.cityscapes import CLASS_NAMES, LABELS, label_map, train_id_to_label_id
from ffnet_nas.space.errors import InvalidInput
from tests.helpers.trees import make_tree


def test_label_table_matches_cityscapesscripts():
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    official = {(l.id, l.name, l.trainId if l.trainId not in (-1,) else 255) for l in labels.labels}
    assert set(LABELS) == official
    assert CLASS_NAMES == tuple(labels.trainId2label[t].name for t in range(19))


def test_label_mapping_round_trip():
    lut = label_map()
    assert lut[7] == 0 and lut[26] == 13 and lut[33] == 18 and lut[0] == 255 and lut[34] == 255
    back = train_id_to_label_id()
    assert (lut[back] == np.arange(19)).all()


def test_loads_pairs_maps_to_train_ids(tmp_path):
    frames = make_tree(tmp_path)
    ds = make_dataset(f"cityscapes:{tmp_path}", "val")
    assert len(ds) == 4 and ds.num_classes == 19 and ds.ignore_index == 255
    image, mask = ds[0]
    raw_image, raw_labels = frames[("val", "aachen_000000_000019")]
    assert image.shape == (3, 16, 32) and mask.dtype == torch.int64
    assert torch.equal(mask, torch.from_numpy(label_map()[raw_labels]))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    restored = (image * std + mean) * 255
    assert torch.allclose(restored, torch.from_numpy(raw_image).permute(2, 0, 1).float(), atol=1e-3)


def test_size_hw_resizes_masks_with_nearest(tmp_path):
    make_tree(tmp_path, splits=("val",))
    ds = make_dataset(f"cityscapes:{tmp_path}", "val", size_hw=(8, 16))
    image, mask = ds[1]
    assert image.shape == (3, 8, 16) and mask.shape == (8, 16)
    assert set(mask.unique().tolist()) <= set(range(19)) | {255}  # no blended labels


def test_missing_or_malformed_root_names_the_layout(tmp_path):
    with pytest.raises(InvalidInput, match=r"leftImg8bit/<split>/<city>") as e:
        make_dataset(f"cityscapes:{tmp_path / 'nope'}", "train")
    assert "\n" not in str(e.value)
    make_tree(tmp_path, splits=("train",))
    with pytest.raises(InvalidInput, match="expected the layout"):
        make_dataset(f"cityscapes:{tmp_path}", "val")  # no val split
    next((tmp_path / "gtFine" / "train" / "aachen").glob("*labelIds.png")).unlink()
    with pytest.raises(InvalidInput, match="has no label file"):
        make_dataset(f"cityscapes:{tmp_path}", "train")
