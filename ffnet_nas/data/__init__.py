"""Segmentation data sets behind one factory.

    ds = make_dataset("synthetic" | "synthetic:SEED" | "synthetic:SEED:hard" | "cityscapes:/path" | "ade20k:/path" | "folder:/path",
                      split="train" | "val", size_hw=None, augment=False)
    image, mask = ds[i]   # float32 (3, H, W) ImageNet-normalised; int64 (H, W), 255 = ignore
    ds.num_classes, ds.ignore_index, ds.class_names

`size_hw` is the network input size: training crops are that size (after a random scale),
evaluation frames are resized to it. For the embedded set it is also the size the scenes are
generated at (default 128x256).
"""

from __future__ import annotations

from pathlib import Path

from ffnet_nas.space.errors import InvalidInput, closest

from .base import IGNORE_INDEX, SegmentationDataset, fixed_batches
from .transforms import EvalTransform, TrainTransform

KINDS = ("synthetic", "cityscapes", "ade20k", "folder")
SPLITS = ("train", "val")
SPEC_HELP = "synthetic | synthetic:SEED | synthetic:SEED:hard | cityscapes:PATH | ade20k:PATH | folder:PATH"


def parse_spec(spec: str) -> tuple[str, str | None]:
    """'kind' or 'kind:arg' -> (kind, arg); one InvalidInput line for anything else."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidInput(f"data {spec!r}: expected {SPEC_HELP}")
    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind not in KINDS:
        raise InvalidInput(f"data {spec!r}: unknown kind {kind!r}; expected {SPEC_HELP}{closest(kind, KINDS)}")
    if kind == "synthetic":
        if not arg:
            return kind, "0"
        seed, colon, level = arg.partition(":")
        if not seed.lstrip("-").isdigit():
            raise InvalidInput(f"data {spec!r}: expected an integer seed, e.g. synthetic:0 or synthetic:0:hard")
        if colon and level != "hard":
            raise InvalidInput(f"data {spec!r}: unknown level {level!r}; expected synthetic:SEED or synthetic:SEED:hard")
        return kind, arg
    if not arg:
        raise InvalidInput(f"data {spec!r}: {kind} needs a path; expected {kind}:PATH")
    return kind, arg


def make_dataset(spec: str, split: str = "train", *, size_hw: tuple[int, int] | None = None, augment: bool = False,
                 cache_dir: str | Path | None = None, scale_range: tuple[float, float] = (0.5, 2.0),
                 num_images: int | None = None, progress: bool = False) -> SegmentationDataset:
    """A data set by spec (see module doc). `cache_dir` keeps generated synthetic scenes;
    `num_images` overrides the synthetic split size (train 512, val 128); `progress` shows a
    bar while scenes are generated."""
    if split not in SPLITS:
        raise InvalidInput(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    if size_hw is not None:
        size_hw = _check_hw(size_hw)
    kind, arg = parse_spec(spec)
    transform = TrainTransform(size_hw, scale_range=scale_range) if augment else EvalTransform(size_hw)
    if kind == "synthetic":
        from .synthetic import DEFAULT_HW, SyntheticStreets

        hw = size_hw or DEFAULT_HW
        seed, _, level = arg.partition(":")
        return SyntheticStreets(seed=int(seed), level=level or "default", split=split, size_hw=hw,
                                transform=TrainTransform(hw, scale_range=scale_range) if augment else EvalTransform(None),
                                cache_dir=Path(cache_dir) if cache_dir else None, n=num_images, progress=progress)
    root = Path(arg).expanduser()
    if kind == "cityscapes":
        from .cityscapes import cityscapes as build
    elif kind == "ade20k":
        from .ade20k import ade20k as build
    else:
        from .folder import folder as build
    return build(root, split, spec=f"{kind}:{root}", transform=transform)


def validation_split(spec: str, *, scored: int | None, size_hw: tuple[int, int] | None = None,
                     cache_dir: str | Path | None = None, progress: bool = False,
                     images: int | None = None) -> SegmentationDataset:
    """The validation split a workdir's points are scored on (their first `scored` images) and
    held out on (the images after them). A user's data set is what it is; the embedded one is
    generated as large as the scoring needs (`synthetic.validation_size`): a run that scores on
    256 images gets 512, the first 128 of them the default split's. `images` generates exactly
    that many embedded images instead (a yardstick measured on more of them; the embedded data only)."""
    kind, _ = parse_spec(spec)
    if images is not None and scored is not None and images < scored:
        raise InvalidInput(f"val_split {images}: expected at least the {scored} images the points are scored on")
    if kind == "synthetic":
        from .synthetic import validation_size

        return make_dataset(spec, "val", size_hw=size_hw, cache_dir=cache_dir,
                            num_images=validation_size(scored) if images is None else images, progress=progress)
    if images is not None:
        raise InvalidInput(f"val_split {images}: only the embedded data can generate more validation images; "
                           f"this workdir's data is {spec!r}")
    return make_dataset(spec, "val", size_hw=size_hw, cache_dir=cache_dir, progress=progress)


def class_count(spec: str) -> int:
    """How many classes the data set `spec` labels, without loading (or generating) any image:
    what a head is sized for before a teacher exists."""
    kind, arg = parse_spec(spec)
    if kind == "synthetic":
        from .synthetic import CLASS_NAMES
    elif kind == "cityscapes":
        from .cityscapes import CLASS_NAMES
    elif kind == "ade20k":
        from .ade20k import CLASS_NAMES
    else:
        from .base import require_dir
        from .folder import LAYOUT, class_names

        root = Path(arg).expanduser()
        require_dir(root, layout=LAYOUT, what="folder data root")
        return len(class_names(root))
    return len(CLASS_NAMES)


def _check_hw(size_hw) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size_hw)
    except (TypeError, ValueError):
        raise InvalidInput(f"size {size_hw!r}: expected (height, width), e.g. (128, 256)") from None
    if h < 8 or w < 8:
        raise InvalidInput(f"size {h}x{w}: expected at least 8x8")
    return h, w


__all__ = ["IGNORE_INDEX", "KINDS", "SegmentationDataset", "class_count", "fixed_batches", "make_dataset", "parse_spec",
           "validation_split"]
