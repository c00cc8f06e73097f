"""Strict checkpoint loading: wrappers, prefixes, mismatches, corrupt files, self-describing saves."""

import pytest
import torch

from ffnet_nas.space import InvalidInput, build_model
from ffnet_nas.space.checkpoint import infer_num_classes, load_checkpoint, load_model, read_state_dict, save_checkpoint

PUBLISHED = "segmentation_ffnet40S_BBB_mobile"
TINY = "stemB-basic-d1.1.1.1-w8.16.24.32-s1-upB-segB-nearest"


def _randomised(name, num_classes=None, seed=0):
    torch.manual_seed(seed)
    model = build_model(name, num_classes=num_classes)
    with torch.no_grad():
        for buf_name, buf in model.named_buffers():
            if buf_name.endswith("running_mean"):
                buf.normal_()
    return model


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def published_state(tmp_path_factory):
    model = _randomised(PUBLISHED)
    path = tmp_path_factory.mktemp("ckpt") / "plain.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_published_plain_state_dict_loads_strictly(published_state):
    model, path = published_state
    fresh = build_model(PUBLISHED)
    assert not _same(fresh, model)
    assert load_checkpoint(fresh, path) is fresh
    assert _same(fresh, model)


@pytest.mark.parametrize("wrap", ["state_dict", "model", "module_prefix", "state_dict+module_prefix", "compiled"])
def test_wrappers_and_prefixes(tmp_path, wrap):
    model = _randomised(TINY)
    state = model.state_dict()
    if "module_prefix" in wrap:
        state = {f"module.{k}": v for k, v in state.items()}
    if wrap == "compiled":
        state = {f"_orig_mod.{k}": v for k, v in state.items()}
    if wrap.startswith("state_dict"):
        state = {"state_dict": state, "epoch": 3}
    if wrap == "model":
        state = {"model": state, "optimizer": {"lr": torch.tensor(0.1)}}
    torch.save(state, tmp_path / "w.pth")
    fresh = build_model(TINY)
    load_checkpoint(fresh, tmp_path / "w.pth")
    assert _same(fresh, model)


def test_corrupted_key_is_named_and_nothing_is_loaded(published_state, tmp_path):
    model, path = published_state
    state = torch.load(path, weights_only=True)
    state["backbone_model.layer2.0.conv1.weightt"] = state.pop("backbone_model.layer2.0.conv1.weight")
    torch.save(state, tmp_path / "bad.pth")
    fresh = build_model(PUBLISHED)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(InvalidInput) as err:
        load_checkpoint(fresh, tmp_path / "bad.pth")
    msg = str(err.value)
    assert "1 missing key (backbone_model.layer2.0.conv1.weight)" in msg
    assert "1 unexpected key (backbone_model.layer2.0.conv1.weightt)" in msg
    assert "nothing was loaded" in msg and "\n" not in msg
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())


def test_shape_mismatch_lists_shapes_and_counts(tmp_path):
    other = build_model("stemB-basic-d1.1.1.1-w16.16.24.32-s1-upB-segB-nearest")
    torch.save(other.state_dict(), tmp_path / "other.pth")
    with pytest.raises(InvalidInput) as err:
        load_checkpoint(build_model(TINY), tmp_path / "other.pth")
    msg = str(err.value)
    assert "shape mismatches (" in msg
    assert "backbone_model.layer1.0.conv1.weight: checkpoint (16, 64, 3, 3) vs model (8, 64, 3, 3)" in msg
    assert "... and" in msg  # more than SHOW mismatches: counted, not all listed


def test_wrong_num_classes_suggests_the_right_one(tmp_path):
    torch.save(build_model(TINY, num_classes=7).state_dict(), tmp_path / "c7.pth")
    assert infer_num_classes(read_state_dict(tmp_path / "c7.pth")) == 7
    with pytest.raises(InvalidInput, match="trained for 7 classes"):
        load_checkpoint(build_model(TINY), tmp_path / "c7.pth")


def test_different_arch_is_refused(tmp_path):
    torch.save(build_model(TINY).state_dict(), tmp_path / "t.pth")
    with pytest.raises(InvalidInput, match="missing key"):
        load_checkpoint(build_model("stemB-basic-d2.1.1.1-w8.16.24.32-s1-upB-segB-nearest"), tmp_path / "t.pth")


def test_missing_and_corrupt_files(tmp_path):
    model = build_model(TINY)
    with pytest.raises(InvalidInput, match="not found"):
        load_checkpoint(model, tmp_path / "nope.pth")
    torch.save(model.state_dict(), tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInput, match="corrupt or truncated"):
        load_checkpoint(model, tmp_path / "trunc.pth")
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(InvalidInput, match="corrupt or truncated"):
        load_checkpoint(model, tmp_path / "text.pth")


def test_non_state_dicts_are_refused(tmp_path):
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(InvalidInput, match="not a state dict"):
        load_checkpoint(build_model(TINY), tmp_path / "list.pth")
    torch.save({"a": 1, "b": torch.zeros(1)}, tmp_path / "mixed.pth")
    with pytest.raises(InvalidInput, match="not a state dict"):
        load_checkpoint(build_model(TINY), tmp_path / "mixed.pth")


def test_pickled_objects_are_not_unpickled(tmp_path):
    torch.save(build_model(TINY), tmp_path / "whole_module.pth")  # a pickled nn.Module, not a state dict
    with pytest.raises(InvalidInput, match="Python objects other than tensors"):
        load_checkpoint(build_model(TINY), tmp_path / "whole_module.pth")


def test_save_and_load_model_round_trip(tmp_path):
    model = _randomised(TINY, num_classes=5).eval()
    path = save_checkpoint(tmp_path / "sub" / "m.pt", model, dataset="synthetic")
    assert path.exists() and not list(path.parent.glob("*.tmp"))
    payload = torch.load(path, weights_only=True)
    assert payload["arch"] == TINY and payload["num_classes"] == 5
    assert payload["provenance"]["dataset"] == "synthetic" and "torch" in payload["provenance"]
    loaded = load_model(path).eval()
    assert loaded.arch == model.arch and loaded.num_classes == 5 and _same(loaded, model)
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_load_model_from_plain_state_dict_needs_arch(tmp_path):
    model = _randomised(TINY, num_classes=3)
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, tmp_path / "plain.pth")
    with pytest.raises(InvalidInput, match="does not record its arch"):
        load_model(tmp_path / "plain.pth")
    loaded = load_model(tmp_path / "plain.pth", arch=TINY)  # classes read from the head
    assert loaded.num_classes == 3 and _same(loaded, model)


def test_official_mobile_file_with_pre_down_smoother_loads_into_plain_variant(tmp_path):
    # The official ffnet*_mobile files are shared with the _pre_down variant: they carry smoothing.weight.
    pre = _randomised("stemB-basic-d1.1.1.1-w8.16.24.32-s1-upB-segB-nearest-predown")
    torch.save(pre.state_dict(), tmp_path / "shared.pth")
    plain = load_checkpoint(build_model(TINY), tmp_path / "shared.pth")
    sp, sq = plain.state_dict(), pre.state_dict()
    assert "smoothing.weight" not in sp and all(torch.equal(v, sq[k]) for k, v in sp.items())
    # any other extra key is still refused
    state = dict(sq, **{"head.extra": torch.zeros(1)})
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(InvalidInput, match=r"1 unexpected key \(head.extra\)"):
        load_checkpoint(build_model(TINY), tmp_path / "extra.pth")


def test_backbone_only_loads_classification_backbone_into_segmentation_model(tmp_path):
    cls = _randomised("stemB-basic-d1.1.1.1-w8.16.24.32-s1-upB-segX-nearest")  # ImageNet-style classifier
    torch.save(cls.state_dict(), tmp_path / "imagenet.pth")
    seg = build_model(TINY)
    head_before = {k: v.clone() for k, v in seg.state_dict().items() if k.startswith("head.")}
    with pytest.raises(InvalidInput, match="unexpected key"):
        load_checkpoint(seg, tmp_path / "imagenet.pth")  # the heads differ: strict refuses
    load_checkpoint(seg, tmp_path / "imagenet.pth", backbone_only=True)
    s, c = seg.state_dict(), cls.state_dict()
    assert all(torch.equal(s[k], c[k]) for k in s if k.startswith("backbone_model."))
    assert all(torch.equal(s[k], v) for k, v in head_before.items())
    other = "stemB-basic-d1.1.1.1-w8.16.24.40-s1-upB-segX-nearest"
    torch.save(build_model(other).state_dict(), tmp_path / "other.pth")
    with pytest.raises(InvalidInput, match="backbone of the model"):
        load_checkpoint(build_model(TINY), tmp_path / "other.pth", backbone_only=True)
