"""The teacher file: its format, its writer and its readers, in one place.

`ffnet-nas train-teacher` writes it (through `save_teacher`); distillation, evaluation and
the pipeline read it. One `torch.save`d dict, loadable with `weights_only=True`:

    "arch"         str              canonical arch code of the teacher (a segmentation arch)
    "num_classes"  int              classes it predicts (= the data set's)
    "state_dict"   {str: Tensor}    CPU weights; they must load with strict=True into
                                    build_model(arch, num_classes): a teacher that does not
                                    match its own arch code is a broken file, not a warning
    "data"         str              data spec it was trained/evaluated on ("synthetic:0", ...)
    "input_hw"     [H, W]           network input size (for a pre_down arch, twice the stem input)
    "miou"         float            val mIoU in [0, 1] (0.0 for an untrained test teacher)
    "iou"          {str: float}     optional: per-class val IoU
    "class_names"  [str]            optional
    "ignore_index" int              optional: the label that is not scored; absent means 255
                                    (every data set here uses 255, so writers omit it)
    "steps"        int              optional: optimisation steps run (0: loaded from a checkpoint)
    "source"       str              optional: "trained" or the checkpoint path the weights came from
    "provenance"   {str: plain}     versions, host, time, device, ... (builtin values only)
    "weights_sha1" str              optional: space.io.tensor_digest of state_dict, verified on
                                    every read (a file damaged inside its tensors still unpickles)

Readers, cheapest first:
    read_teacher_info(path) -> TeacherMeta   the metadata and the weights' digest, no network
    read_teacher_file(path) -> dict          the raw dict (state_dict included), checked for keys
    load_teacher(path)      -> FFNet         the network in eval mode; every key except
                                             "state_dict" is on `model.teacher_info` (a dict)

The teacher's identity (`weights_digest`, what the block library and the feature caches bind
to) covers the arch, the class count and the weights, not the file: two runs that train the
same teacher get the same digest although their files differ in provenance (time, host).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ffnet_nas.space.arch import Arch
from ffnet_nas.space.builder import FFNet, build_model
from ffnet_nas.space.errors import InvalidInput

REQUIRED = ("arch", "num_classes", "state_dict")
IGNORE_INDEX = 255  # the default of ffnet_nas.data and ffnet_nas.metrics; repeated so this layer needs neither


def save_teacher(path: str | Path, model: FFNet, *, data: str, input_hw: Sequence[int], miou: float,
                 iou: Mapping[str, float] | None = None, class_names: Sequence[str] | None = None,
                 steps: int | None = None, source: str | None = None,
                 provenance: Mapping[str, Any] | None = None) -> Path:
    """Write `model` as a teacher file (atomically); optional fields are left out when None.

    `provenance` adds fields to the standard record (versions, host, time); every value is
    made a builtin so the file loads with weights_only=True.
    """
    from ffnet_nas.distill.features import plain_provenance
    from ffnet_nas.space.io import DIGEST_KEY, atomic_torch_save, tensor_digest

    hw = [int(v) for v in input_hw]
    if len(hw) != 2 or min(hw) < 1:
        raise InvalidInput(f"input_hw={list(input_hw)!r}: expected [height, width], two positive integers")
    # the key order is the one train-teacher has always written
    obj: dict[str, Any] = {
        "arch": model.arch.code,
        "num_classes": int(model.num_classes),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "data": str(data),
        "input_hw": hw,
        "miou": float(miou),
    }
    optional = {"iou": None if iou is None else {str(k): float(v) for k, v in iou.items()},
                "class_names": None if class_names is None else [str(c) for c in class_names],
                "steps": None if steps is None else int(steps),
                "source": None if source is None else str(source)}
    obj.update({k: v for k, v in optional.items() if v is not None})
    obj["provenance"] = plain_provenance(**dict(provenance or {}))
    obj[DIGEST_KEY] = tensor_digest(obj["state_dict"])
    return atomic_torch_save(path, obj)


def read_teacher_file(path: str | Path) -> dict:
    """The teacher file's dict (weights included), checked to be one; InvalidInput otherwise."""
    path = Path(path)
    if not path.is_file():
        # (only `distill` takes --teacher FILE; the other commands read the workdir's teacher)
        raise InvalidInput(f"teacher file {str(path)!r} not found: expected the output of 'ffnet-nas train-teacher' "
                           "in this workdir (run it first, or use the --workdir that holds the teacher)")
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
    from ffnet_nas.space.io import check_digest

    check_digest(obj, path=path, what="teacher file",
                 hint="expected the output of 'ffnet-nas train-teacher': delete it and train the teacher again")
    return obj


def load_teacher(path: str | Path) -> FFNet:
    """The teacher in eval mode. Extra file fields (data, input_hw, miou, ...) are on `.teacher_info`."""
    obj = read_teacher_file(path)
    arch = _segmentation_arch(obj["arch"], path)
    model = build_model(arch, num_classes=int(obj["num_classes"]))
    try:
        model.load_state_dict(obj["state_dict"], strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise InvalidInput(f"teacher file {str(path)!r}: weights do not match arch {arch.code} ({first})") from None
    model.eval()
    model.teacher_info = {k: v for k, v in obj.items() if k != "state_dict"}
    return model


@dataclass(frozen=True)
class TeacherMeta:
    """What callers need to know about a teacher without building it."""

    path: Path
    arch: str
    num_classes: int
    data: str | None  # None: the file does not say (hand-made files; train-teacher always writes it)
    input_hw: tuple[int, int] | None
    ignore_index: int
    class_names: tuple[str, ...]
    miou: float | None
    digest: str  # weights_digest: the id the block library and feature caches bind to
    source: str | None = None  # "trained", or the file the weights were loaded from

    @property
    def channels(self) -> tuple[int, ...]:
        """Widths of the teacher's s4..s32 outputs (from the arch code)."""
        return tuple(Arch.parse(self.arch).feature_channels)

    @property
    def input_scale(self) -> int:
        return Arch.parse(self.arch).input_scale


# (path, size, mtime, inode) -> TeacherMeta: several steps of one run ask about the same file;
# a rewritten file changes its stat, so it is read again.
_META_CACHE: dict[tuple[str, int, int, int], TeacherMeta] = {}


def read_teacher_info(path: str | Path) -> TeacherMeta:
    """The teacher file's metadata and weights digest; the network is not built (cached while the file is unchanged)."""
    path = Path(path)
    try:
        st = os.stat(path)
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError:
        key = None  # read_teacher_file says what is wrong
    if key is not None and key in _META_CACHE:
        return _META_CACHE[key]
    obj = read_teacher_file(path)
    arch = _segmentation_arch(obj["arch"], path)
    hw = obj.get("input_hw")
    miou = obj.get("miou")
    meta = TeacherMeta(path=path, arch=arch.code, num_classes=int(obj["num_classes"]),
                       data=None if obj.get("data") is None else str(obj["data"]),
                       input_hw=(int(hw[0]), int(hw[1])) if hw else None,
                       ignore_index=int(obj.get("ignore_index", IGNORE_INDEX)),
                       class_names=tuple(str(c) for c in obj.get("class_names") or ()),
                       miou=None if miou is None else float(miou),
                       digest=weights_digest(arch.code, int(obj["num_classes"]), obj["state_dict"]),
                       source=None if obj.get("source") is None else str(obj["source"]))
    if key is not None:
        if len(_META_CACHE) > 16:
            _META_CACHE.clear()
        _META_CACHE[key] = meta
    return meta


def weights_digest(arch: str, num_classes: int, state_dict: Mapping[str, torch.Tensor]) -> str:
    """What makes a teacher this teacher: arch code, class count, every weight and buffer (not the file)."""
    from ffnet_nas.space.io import tensor_digest

    return tensor_digest(state_dict, salt=f"{arch}|{int(num_classes)}")


def _segmentation_arch(code: object, path: str | Path) -> Arch:
    try:
        arch = Arch.parse(str(code))
    except InvalidInput as e:
        raise InvalidInput(f"teacher file {str(path)!r}: {e}") from None
    if arch.is_classifier:
        raise InvalidInput(f"teacher {arch.code} is a classifier: expected a segmentation arch (seg head A/B/C)")
    return arch
