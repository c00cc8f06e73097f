"""The teacher file (ffnet_nas.distill.teacher): writer, readers, metadata, older files."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ffnet_nas.distill.features import file_digest
from ffnet_nas.distill.library import BlockLibrary, TeacherInfo
from ffnet_nas.distill.teacher import (TeacherMeta, load_teacher, read_teacher_file, read_teacher_info, save_teacher,
                                       weights_digest)
from ffnet_nas.space.builder import build_model
from ffnet_nas.space.errors import InvalidInput
from tests.helpers.distill import NUM_CLASSES, TEACHER_CODE, tiny_teacher


def test_save_writes_the_documented_keys(tmp_path):
    teacher = tiny_teacher()
    path = save_teacher(tmp_path / "t.pt", teacher, data="synthetic:0", input_hw=(32, 64), miou=0.25,
                        iou={"a": 0.5}, class_names=("a", "b"), steps=3, source="trained",
                        provenance={"device": "cpu", "val_images": 4})
    obj = torch.load(path, weights_only=True)  # plain values only
    assert list(obj) == ["arch", "num_classes", "state_dict", "data", "input_hw", "miou", "iou", "class_names",
                         "steps", "source", "provenance", "weights_sha1"]
    assert obj["arch"] == TEACHER_CODE and obj["num_classes"] == NUM_CLASSES and obj["input_hw"] == [32, 64]
    assert obj["iou"] == {"a": 0.5} and obj["class_names"] == ["a", "b"] and obj["steps"] == 3
    assert obj["provenance"]["device"] == "cpu" and obj["provenance"]["val_images"] == 4
    assert "torch" in obj["provenance"]
    bare = torch.load(save_teacher(tmp_path / "b.pt", teacher, data="synthetic", input_hw=[32, 64], miou=0.0),
                      weights_only=True)
    assert set(bare) == {"arch", "num_classes", "state_dict", "data", "input_hw", "miou", "provenance", "weights_sha1"}
    with pytest.raises(InvalidInput, match=r"input_hw=\[32\]: expected \[height, width\]"):
        save_teacher(tmp_path / "c.pt", teacher, data="synthetic", input_hw=[32], miou=0.0)


def test_files_in_the_older_layouts_still_load(tmp_path):
    """Both writers before the format had one home: train-teacher's dict and the test helper's."""
    teacher = tiny_teacher(seed=2)
    sd = {k: v.detach().cpu() for k, v in teacher.state_dict().items()}
    from_cli = {"arch": TEACHER_CODE, "num_classes": NUM_CLASSES, "state_dict": sd, "data": "synthetic:0",
                "input_hw": [32, 64], "miou": 0.4, "iou": {"road": 0.4}, "class_names": ["road"], "steps": 5,
                "source": "trained", "provenance": {"device": "cpu", "val_images": 4}}
    from_helper = {"arch": TEACHER_CODE, "num_classes": NUM_CLASSES, "state_dict": teacher.state_dict(),
                   "provenance": {"torch": "2.5"}, "data": "synthetic", "input_hw": [32, 64], "miou": 0.0}
    x = torch.randn(1, 3, 32, 64)
    for name, obj in (("cli.pt", from_cli), ("helper.pt", from_helper)):
        torch.save(obj, tmp_path / name)
        loaded = load_teacher(tmp_path / name)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), teacher(x))
        assert loaded.teacher_info == {k: v for k, v in obj.items() if k != "state_dict"}
        meta = read_teacher_info(tmp_path / name)
        assert (meta.arch, meta.num_classes, meta.data, meta.input_hw, meta.miou) == \
            (TEACHER_CODE, NUM_CLASSES, obj["data"], (32, 64), obj["miou"])
        assert meta.ignore_index == 255 and meta.digest == weights_digest(TEACHER_CODE, NUM_CLASSES, sd)
    assert read_teacher_info(tmp_path / "cli.pt").class_names == ("road",)
    assert read_teacher_info(tmp_path / "helper.pt").class_names == ()


def test_read_teacher_info_matches_the_library_binding_and_is_frozen(tmp_path):
    teacher = tiny_teacher()
    path = save_teacher(tmp_path / "t.pt", teacher, data="synthetic", input_hw=[32, 64], miou=0.0)
    meta = read_teacher_info(path)
    assert isinstance(meta, TeacherMeta)
    loaded = load_teacher(path)
    info = TeacherInfo.of(loaded, digest=weights_digest(loaded.arch.code, loaded.num_classes, loaded.state_dict()))
    assert (meta.arch, meta.num_classes, meta.channels, meta.input_scale, meta.digest) == \
        (info.arch, info.num_classes, info.channels, info.input_scale, info.digest)
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.arch = "x"


def test_read_teacher_info_sees_a_rewritten_file(tmp_path):
    path = tmp_path / "t.pt"
    save_teacher(path, tiny_teacher(), data="synthetic", input_hw=[32, 64], miou=0.0)
    first = read_teacher_info(path)
    assert read_teacher_info(path) is first  # unchanged file: not read again
    save_teacher(path, tiny_teacher(seed=1), data="synthetic:1", input_hw=[32, 64], miou=0.5)
    second = read_teacher_info(path)
    assert second.data == "synthetic:1" and second.miou == 0.5 and second.digest != first.digest


def test_bad_teacher_files_are_one_line_errors(tmp_path):
    with pytest.raises(InvalidInput, match="not found"):
        read_teacher_info(tmp_path / "none.pt")
    torch.save({"arch": TEACHER_CODE}, tmp_path / "partial.pt")
    with pytest.raises(InvalidInput, match="lacks arch, num_classes, state_dict"):
        read_teacher_file(tmp_path / "partial.pt")
    classifier = build_model("classification_ffnet40S_BBX_mobile", num_classes=10)
    torch.save({"arch": classifier.arch.code, "num_classes": 10, "state_dict": {}}, tmp_path / "cls.pt")
    for reader in (read_teacher_info, load_teacher):
        with pytest.raises(InvalidInput, match="is a classifier") as err:
            reader(tmp_path / "cls.pt")
        assert "\n" not in str(err.value)


def test_the_teacher_digest_covers_the_weights_not_the_file(tmp_path):
    """Two runs that train the same teacher write different files (time, host) but one teacher."""
    teacher = tiny_teacher()
    a = save_teacher(tmp_path / "a.pt", teacher, data="synthetic", input_hw=[32, 64], miou=0.1,
                     provenance={"created": "2026-01-01T00:00:00"})
    b = save_teacher(tmp_path / "b.pt", teacher, data="synthetic", input_hw=[32, 64], miou=0.1,
                     provenance={"created": "2026-06-01T12:00:00", "host": "elsewhere"})
    assert file_digest(a) != file_digest(b)
    assert read_teacher_info(a).digest == read_teacher_info(b).digest
    other = tiny_teacher(seed=1)
    c = save_teacher(tmp_path / "c.pt", other, data="synthetic", input_hw=[32, 64], miou=0.1)
    assert read_teacher_info(c).digest != read_teacher_info(a).digest
    # one weight changed by one ulp is another teacher
    sd = {k: v.clone() for k, v in teacher.state_dict().items()}
    name = next(k for k, v in sd.items() if v.is_floating_point())
    sd[name].view(-1)[0] = torch.nextafter(sd[name].view(-1)[0], torch.tensor(float("inf")))
    assert weights_digest(TEACHER_CODE, NUM_CLASSES, sd) != read_teacher_info(a).digest


def test_a_library_bound_by_the_old_file_digest_is_adopted_only_for_its_own_teacher(tmp_path):
    path = save_teacher(tmp_path / "t.pt", tiny_teacher(), data="synthetic", input_hw=[32, 64], miou=0.0)
    loaded = load_teacher(path)
    info = TeacherInfo.of(loaded, digest=read_teacher_info(path).digest)
    legacy = dataclasses.replace(info, digest=file_digest(path))
    library = BlockLibrary(tmp_path / "lib")
    library.bind(legacy)  # what an older version wrote
    library.adopt_file_digest(info, file_digest=lambda: "0123456789abcdef")  # another file: left alone
    with pytest.raises(InvalidInput, match="was distilled from teacher"):
        library.bind(info)
    library.adopt_file_digest(info, file_digest=lambda: file_digest(path))
    library.bind(info)  # now accepted
    assert library.teacher() == info


def test_corrupt_library_metadata_is_one_line(tmp_path):
    library = BlockLibrary(tmp_path / "lib")
    library.root.mkdir()
    library.meta_path.write_text('{"arch": "x"}')
    with pytest.raises(InvalidInput, match="incomplete or corrupt.*delete the library folder"):
        library.teacher()
