"""Load the teacher written by `ffnet-nas train-teacher`.

File format (torch.save): {"arch": code, "num_classes": int, "state_dict": ..., "data": spec,
"input_hw": [H, W], "miou": float, "provenance": {...}}. The weights must load with
strict=True: a teacher that does not match its own arch code is a broken file, not a warning.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ffnet_nas.space.arch import Arch
from ffnet_nas.space.builder import FFNet, build_model
from ffnet_nas.space.errors import InvalidInput

REQUIRED = ("arch", "num_classes", "state_dict")


def read_teacher_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"teacher file {str(path)!r} not found: expected the output of 'ffnet-nas train-teacher' "
                           "(or pass --teacher FILE)")
    try:
        # provenance may hold torch's version object (a str subclass): allow just that class
        with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InvalidInput(f"teacher file {str(path)!r} is corrupt or not a torch file ({type(e).__name__}); "
                           "expected the output of 'ffnet-nas train-teacher'") from None
    if not isinstance(obj, dict) or any(k not in obj for k in REQUIRED):
        have = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise InvalidInput(f"teacher file {str(path)!r} lacks {', '.join(REQUIRED)} (has {have}); "
                           "expected the output of 'ffnet-nas train-teacher'")
    return obj


def load_teacher(path: str | Path) -> FFNet:
    """The teacher in eval mode. Extra file fields (data, input_hw, miou) are on `.teacher_info`."""
    obj = read_teacher_file(path)
    arch = Arch.parse(str(obj["arch"]))
    if arch.is_classifier:
        raise InvalidInput(f"teacher {arch.code} is a classifier: expected a segmentation arch (seg head A/B/C)")
    model = build_model(arch, num_classes=int(obj["num_classes"]))
    try:
        model.load_state_dict(obj["state_dict"], strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise InvalidInput(f"teacher file {str(path)!r}: weights do not match arch {arch.code} ({first})") from None
    model.eval()
    model.teacher_info = {k: v for k, v in obj.items() if k != "state_dict"}
    return model


def save_teacher(path: str | Path, model: FFNet, **info) -> Path:
    """Write a teacher in the same format (used by tests and benchmarks with a random-init teacher)."""
    from ffnet_nas.distill.features import plain_provenance
    from ffnet_nas.space.io import atomic_torch_save

    obj = {"arch": model.arch.code, "num_classes": model.num_classes, "state_dict": model.state_dict(),
           "provenance": plain_provenance(), **info}
    return atomic_torch_save(path, obj)
