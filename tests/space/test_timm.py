"""Published variants through timm: create_model, features_only with FeatureInfo, pretrained from a file."""

import pytest
import torch

timm = pytest.importorskip("timm")
import ffnet_nas.timm_models  # noqa: E402,F401  (registers the names)
from ffnet_nas.space import InvalidInput, build_model, published_variants  # noqa: E402

NAME = "segmentation_ffnet40S_BBB_mobile"
X = torch.randn(1, 3, 64, 128)


def test_every_published_variant_is_registered_with_its_cfg():
    names = set(timm.list_models("*ffnet*"))
    published = {v.name for v in published_variants()}
    assert len(published) == 94 and published <= names
    assert "segmentation_ffnet122NS_CBB_mobile_pre_down_train" in names
    cfg = timm.get_pretrained_cfg("segmentation_ffnet122NS_CBB_mobile_pre_down")
    assert cfg.input_size == (3, 1024, 2048) and cfg.num_classes == 19 and cfg.first_conv == "backbone_model.conv0"
    assert timm.get_pretrained_cfg("classification_ffnet18_AAX").classifier == "head.layers.2.classifier"


def test_create_model_equals_our_builder():
    model = timm.create_model(NAME, num_classes=19)
    ours = build_model(NAME)
    assert model.arch == ours.arch
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}
    assert model.pretrained_cfg["architecture"] == NAME
    with torch.no_grad():
        assert model.eval()(X).shape == (1, 19, 16, 32)


@pytest.mark.parametrize(
    "name", ["segmentation_ffnet40S_BBB_mobile", "segmentation_ffnet122NS_CBB_mobile_pre_down", "segmentation_ffnet18_dAAC"]
)
def test_features_only_matches_feature_info(name):
    feats = timm.create_model(name, features_only=True).eval()
    info = feats.feature_info
    with torch.no_grad():
        outs = feats(X)
    assert len(outs) == 4
    assert [o.shape[1] for o in outs] == info.channels()
    assert [X.shape[-1] // o.shape[-1] for o in outs] == info.reduction()
    assert not any(k.startswith("head.") for k in feats.state_dict())
    modules = dict(feats.named_modules())
    assert all(m in modules for m in info.module_name())


def test_features_only_out_indices():
    feats = timm.create_model(NAME, features_only=True, out_indices=(1, 3)).eval()
    with torch.no_grad():
        outs = feats(X)
    assert [o.shape[1] for o in outs] == feats.feature_info.channels() == [128, 320]
    with pytest.raises(InvalidInput, match="out_indices"):
        timm.create_model(NAME, features_only=True, out_indices=(4,))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(NAME).eval()
    path = tmp_path_factory.mktemp("w") / "official.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    return model, path


def test_pretrained_from_file_overlay(weights):
    ref, path = weights
    model = timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    with torch.no_grad():
        assert torch.equal(model(X), ref(X))
    feats = timm.create_model(NAME, pretrained=True, features_only=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    with torch.no_grad():
        assert torch.equal(feats(X)[-1], ref.backbone_model(X)[-1])
    # new classes: the backbone and heads keep the weights, the last layer is fresh (timm's convention)
    tuned = timm.create_model(NAME, pretrained=True, num_classes=5, pretrained_cfg_overlay=dict(file=str(path)))
    assert tuned.num_classes == 5
    assert torch.equal(tuned.state_dict()["backbone_model.layer1.0.conv1.weight"], ref.state_dict()["backbone_model.layer1.0.conv1.weight"])
    with torch.no_grad():
        assert tuned.eval()(X).shape == (1, 5, 16, 32)


def test_pretrained_without_file_is_a_clear_error():
    with pytest.raises(InvalidInput, match=r"pretrained_cfg_overlay=dict\(file=PATH\).*ffnet40S_BBB_cityscapes"):
        timm.create_model(NAME, pretrained=True)


def test_pretrained_file_of_another_model_is_refused(tmp_path):
    torch.save(build_model("segmentation_ffnet46NS_CCC_mobile").state_dict(), tmp_path / "other.pth")
    with pytest.raises(InvalidInput, match="missing key"):
        timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / "other.pth")))


def test_unsupported_arguments():
    with pytest.raises(InvalidInput, match="drop_path_rate"):
        timm.create_model(NAME, drop_path_rate=0.1)
    with pytest.raises(InvalidInput, match="in_chans"):
        timm.create_model(NAME, in_chans=1)
