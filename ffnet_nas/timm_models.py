"""Every published FFNet variant registered with timm: `import ffnet_nas.timm_models`, then

    timm.create_model("segmentation_ffnet40S_BBB_mobile", num_classes=19)
    timm.create_model("segmentation_ffnet40S_BBB_mobile", features_only=True)   # the backbone's 4 features
    timm.create_model("segmentation_ffnet40S_BBB_mobile", pretrained=True,
                      pretrained_cfg_overlay=dict(file="ffnet40S_BBB_cityscapes_state_dict_quarts.pth"))

Registration happens when this module is imported, not when `ffnet_nas` is: importing timm
costs about 2 s on top of torch, which every CLI call would pay for nothing.

timm style: one thin entry point per name that only names its config (the published
catalogue), and one builder (`create_ffnet`) that does the work. The entry points are made
in a loop because there are 94 of them and the catalogue already holds their structure.
No weights are downloadable from here: `pretrained=True` needs a file (the official state
dicts load unchanged, wrappers and `module.` prefixes included).

Any other point of the space (a search result, a peer design such as an `upFAM` head or
`metamixer` blocks) is built by its code through the one generic name `ffnet_nas_arch`:

    timm.create_model("ffnet_nas_arch", arch="stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest", num_classes=8)

or registered by its code on request:

    name = ffnet_nas.timm_models.register_point("stemB-metamixer-d2.2.6.2-w64.128.192.320-s1-upB-segB-nearest")
    timm.create_model(name, num_classes=19)

timm reads a dot in a model name as a pretrained tag, so the name is the code with its dots as
underscores, prefixed: `ffnet_nas_stemB-metamixer-d2_2_6_2-...` (`code_model_name`). The peer
reference points of the catalogue (`peer_sfnet_r18`, ...; `space.peers`) are registered by name.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
# timm's public names only (timm.models re-exports them since 0.9); its `_`-prefixed modules
# are internal and move between releases.
from timm.models import FeatureInfo, generate_default_cfgs, register_model, resolve_pretrained_cfg
from torch import nn

from dataclasses import dataclass

from ffnet_nas.space.arch import Arch, resolve
from ffnet_nas.space.builder import FFNet, build_model
from ffnet_nas.space.catalogue import PublishedVariant, get_variant, published_variants
from ffnet_nas.space.peers import get_peer, peer_points
from ffnet_nas.space.checkpoint import extract_state_dict, infer_num_classes, load_state_dict_strict, read_state_dict
from ffnet_nas.space.errors import InvalidInput

__all__ = ["ARCH_ENTRY", "FFNetFeatures", "code_model_name", "create_ffnet", "ffnet_nas_arch", "register_point",
           "registered_names"]

ORIGIN_URL = "https://github.com/Qualcomm-AI-research/FFNet"
PAPER = "Simple and Efficient Architectures for Semantic Segmentation"
# Where a task head's class scores come from (timm's `classifier` field).
_CLASSIFIER = {"segmentation": "head.layers.3.last_layer.3", "classification": "head.layers.2.classifier"}
CODE_PREFIX = "ffnet_nas_"
CODE_INPUT_HW = (512, 1024)  # the default input of a point registered by code (the mobile resolution)


@dataclass(frozen=True)
class _Entry:
    """What one registered name stands for: a published variant, a peer point, or a code."""

    name: str
    arch: Arch
    task: str
    num_classes: int
    input_hw: tuple[int, int]
    description: str
    weights_file: str | None = None


def _entry(name: str) -> _Entry:
    if name.startswith(CODE_PREFIX):
        arch = resolve(name[len(CODE_PREFIX):].replace("_", "."))
        task = "classification" if arch.is_classifier else "segmentation"
        return _Entry(name, arch, task, 1000 if arch.is_classifier else 19,
                      tuple(h * arch.input_scale for h in CODE_INPUT_HW), f"point {arch.code}")
    if name.startswith("peer_"):
        p = get_peer(name)
        return _Entry(name, p.arch, "segmentation", 19, p.input_hw,
                      f"{p.system} reference point (NOT an FFNet; {p.source}); arch {p.arch.code}")
    v = get_variant(name)
    return _Entry(name, v.arch, v.task, v.num_classes, v.input_hw,
                  f"{v.display_name or v.name} ({v.task}, {v.family}); arch {v.arch.code}", v.weights_file)


def _classifier(arch: Arch) -> str:
    if arch.up_head == "JPU":  # the JPU head is the JPU then the seg head (space.peer_heads)
        return "head.layers.1.last_layer.3"
    return _CLASSIFIER["classification" if arch.is_classifier else "segmentation"]


def _cfg(v: "PublishedVariant | _Entry") -> dict[str, Any]:
    v = v if isinstance(v, _Entry) else _entry(v.name)
    first_conv = "backbone_model.conv1" if v.arch.stem == "A" else "backbone_model.conv0"
    return {
        "url": "",
        "num_classes": v.num_classes,
        "input_size": (3, *v.input_hw),
        "fixed_input_size": False,
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": first_conv,
        "classifier": _classifier(v.arch),
        "license": "bsd-3-clause-clear",
        "origin_url": ORIGIN_URL,
        "paper_name": PAPER,
        "paper_ids": "arXiv:2206.08236",
        "description": v.description,
        "notes": (f"official weights file: {v.weights_file}",) if v.weights_file else (),
    }


class FFNetFeatures(nn.Module):
    """The backbone of an FFNet (with its pre_down smoother) returning the up-head inputs.

    Module names match the full model's (`backbone_model.*`, `smoothing.*`), so this state dict
    is the backbone subset of an official checkpoint. `feature_info` is a timm FeatureInfo.
    """

    def __init__(self, model: FFNet, out_indices: Sequence[int] = (0, 1, 2, 3)):
        super().__init__()
        arch = model.arch
        indices = tuple(out_indices)
        if not indices or any(not isinstance(i, int) or not 0 <= i < 4 for i in indices):
            raise InvalidInput(f"out_indices={out_indices!r}: expected indices among 0..3 (the four up-head inputs)")
        self.arch = arch
        self.smoothing = model.smoothing
        self.backbone_model = model.backbone_model
        self.out_indices = indices
        self.feature_info = FeatureInfo(_feature_info(model), indices)

    def forward(self, x):
        if self.smoothing is not None:
            x = self.smoothing(x)
        feats = self.backbone_model(x)
        return [feats[i] for i in self.out_indices]


def _feature_info(model: FFNet) -> list[dict[str, Any]]:
    arch = model.arch
    # The stem output of a 3-stage backbone is the finest feature; it leaves through the max-pool (stem A)
    # or the shared stem ReLU (stems B, C).
    stages = [f"backbone_model.layer{i}" for i in range(1, arch.num_stages + 1)]
    if arch.num_stages == 3:
        stages.insert(0, "backbone_model.maxpool" if arch.stem == "A" else "backbone_model.relu")
    return [
        {"num_chs": c, "reduction": r, "module": m}
        for c, r, m in zip(arch.feature_channels, arch.feature_strides, stages)
    ]


def _reset_classes(model: FFNet, num_classes: int) -> None:
    """A fresh last layer for `num_classes` (timm's fine-tuning convention for pretrained + new classes)."""
    head = model.head.layers[-1]
    if model.arch.is_classifier:
        old = head.classifier
        head.classifier = nn.Linear(old.in_features, num_classes)
    else:
        old = head.last_layer[3]
        head.last_layer[3] = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding)
    model.num_classes = num_classes


def _pretrained_state(cfg: Any, variant: _Entry) -> dict[str, Any]:
    if cfg.state_dict:
        return extract_state_dict(cfg.state_dict, source="pretrained_cfg state_dict")
    if cfg.file:
        return read_state_dict(cfg.file)
    official = f" (the official file is {variant.weights_file}, from {ORIGIN_URL})" if variant.weights_file else ""
    raise InvalidInput(
        f"{variant.name}: no weights can be downloaded here; pass the checkpoint as "
        f"pretrained_cfg_overlay=dict(file=PATH) or checkpoint_path=PATH{official}"
    )


def create_ffnet(
    variant: str,
    pretrained: bool = False,
    *,
    pretrained_cfg: Any = None,
    pretrained_cfg_overlay: dict[str, Any] | None = None,
    num_classes: int | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] = (0, 1, 2, 3),
    in_chans: int = 3,
    cache_dir: Any = None,
    **kwargs: Any,
) -> nn.Module:
    """The one builder behind every registered name (timm's `_create_<family>` pattern)."""
    del cache_dir  # nothing is downloaded
    if kwargs:
        raise InvalidInput(f"{variant}: unsupported argument(s) {', '.join(sorted(kwargs))}; FFNet takes "
                           "num_classes, features_only, out_indices, pretrained, pretrained_cfg(_overlay)")
    if in_chans != 3:
        raise InvalidInput(f"{variant}: in_chans={in_chans}; FFNet takes RGB input (in_chans=3)")
    v = _entry(variant)
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=pretrained_cfg, pretrained_cfg_overlay=pretrained_cfg_overlay)
    wanted = num_classes if num_classes is not None else v.num_classes
    if pretrained:
        # build for the checkpoint's classes and load strictly; then a fresh last layer if other classes are asked for
        state = _pretrained_state(cfg, v)
        model = build_model(v.arch, num_classes=infer_num_classes(state) or v.num_classes)
        load_state_dict_strict(model, state, source=f"pretrained weights for {variant}")
        if num_classes is None and variant.startswith(CODE_PREFIX):
            # a code's 19 classes are only a default: a found model's own file knows its classes
            wanted = model.num_classes
        if wanted != model.num_classes and not features_only:
            _reset_classes(model, wanted)
    else:
        model = build_model(v.arch, num_classes=wanted)
    out: nn.Module = FFNetFeatures(model, out_indices) if features_only else model
    out.pretrained_cfg = cfg.to_dict()
    out.default_cfg = out.pretrained_cfg  # timm's backwards-compatible alias
    return out


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    def entry(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return create_ffnet(name, pretrained, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__module__ = __name__
    entry.__doc__ = f"FFNet-space point {name} ({_entry(name).arch.code})."
    return entry


default_cfgs = generate_default_cfgs({v.name: _cfg(v) for v in published_variants()}
                                     | {p.name: _cfg(_entry(p.name)) for p in peer_points()})


def registered_names() -> tuple[str, ...]:
    """The names registered at import: the published variants, then the peer reference points."""
    return tuple(v.name for v in published_variants()) + tuple(p.name for p in peer_points())


def code_model_name(arch_or_code: "Arch | str") -> str:
    """The timm name of a point: its code with dots as underscores (timm reads a dot as a tag)."""
    return CODE_PREFIX + resolve(arch_or_code).code.replace(".", "_")


def register_point(arch_or_code: "Arch | str") -> str:
    """Register any point (a code, an Arch or a published/peer name) with timm; returns its timm name.

    A published or peer name is already registered and comes back unchanged; registering the
    same code twice is a no-op.
    """
    text = arch_or_code if isinstance(arch_or_code, str) else None
    if text is not None and text.strip() in globals() and text.strip() in registered_names():
        return text.strip()
    name = code_model_name(arch_or_code)
    if name not in globals():
        # timm's register_model reads the cfg from this module's default_cfgs when it registers
        default_cfgs.update(generate_default_cfgs({name: _cfg(_entry(name))}))
        globals()[name] = register_model(_entrypoint(name))
    return name


for _name in registered_names():
    globals()[_name] = register_model(_entrypoint(_name))
del _name


ARCH_ENTRY = "ffnet_nas_arch"  # the one generic name: any point by code, `arch=` says which


@register_model
def ffnet_nas_arch(pretrained: bool = False, *, arch: "Arch | str | None" = None, **kwargs: Any) -> nn.Module:
    """Any point of the space by its arch code (or a published name): a search result taken away.

        timm.create_model("ffnet_nas_arch", arch="stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest", num_classes=8)

    A thin entry point like the others: it registers the code (`register_point`) and hands the
    rest to `create_ffnet`, so the model carries the code's own pretrained_cfg (its default input
    size, classifier, ...) and `pretrained=True` with `pretrained_cfg_overlay=dict(file=...)`
    loads a checkpoint strictly, as for a published name.
    """
    if arch is None or (isinstance(arch, str) and not arch.strip()):
        raise InvalidInput(f"{ARCH_ENTRY}: expected arch=CODE (an arch code such as those 'ffnet-nas space sample' "
                           "prints, or a published name)")
    if not isinstance(arch, (str, Arch)):
        raise InvalidInput(f"{ARCH_ENTRY}: arch={arch!r}: expected an arch code (text) or an Arch")
    # timm passes pretrained_cfg=None itself; a cfg asked for by the user belongs to the code's name
    return create_ffnet(register_point(arch), pretrained, **kwargs)
