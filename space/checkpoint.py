"""Checkpoints: strict loading of official and wrapped state dicts, and self-describing saves.

Loading is strict on purpose: a state dict that does not match the model key for key and
shape for shape raises `InvalidInput` naming the keys, instead of leaving part of the network
at its random initialisation (what `strict=False` silently does).

Accepted layouts: a plain state dict; a dict wrapping one under "state_dict", "model" or
"model_state_dict" (training scripts, ours included); keys prefixed by "module."
(DataParallel/DistributedDataParallel) or "_orig_mod." (torch.compile).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ffnet_nas.space.arch import Arch, resolve
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import DIGEST_KEY, atomic_torch_save, check_digest, provenance, refused_as_code, tensor_digest

WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
STRIP_PREFIXES = ("module.", "_orig_mod.")
SMOOTHING_PREFIX = "smoothing."  # the fixed Gaussian of pre_down models (a buffer, never trained)
# How many keys an error message lists per kind before it says "... and N more".
SHOW = 5
REWRITE_HINT = "expected the file as it was saved: restore it or write it again (e.g. 'ffnet-nas evaluate CODE --redo')"
# The last layer of each task head (segmentation, classification): its output size is the number of classes.
_CLASS_LAYERS = ("head.layers.3.last_layer.3.", "head.layers.2.classifier.")


def read_checkpoint(path: str | Path) -> Any:
    """The raw object in a checkpoint file, loaded safely (tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"checkpoint {str(path)!r} not found: expected a file written by torch.save")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if refused_as_code(e):
            # Not corrupt, but it pickles arbitrary Python objects; unpickling those can run code.
            raise InvalidInput(
                f"checkpoint {str(path)!r} holds Python objects other than tensors, which are not loaded for "
                "safety: expected a state dict (re-save it with torch.save(model.state_dict(), path))"
            ) from None
        raise InvalidInput(f"checkpoint {str(path)!r} is corrupt or truncated ({_first_line(e)}): expected a file written by torch.save") from None
    except Exception as e:  # torch.load fails on damaged files with many types (RuntimeError, EOFError, KeyError, ...)
        raise InvalidInput(f"checkpoint {str(path)!r} is corrupt or truncated ({_first_line(e)}): expected a file written by torch.save") from None


def extract_state_dict(obj: Any, *, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Unwrap {"state_dict": ...}-style containers and strip DataParallel/compile prefixes."""
    seen = 0
    while isinstance(obj, Mapping) and seen < 3:
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj, seen = inner, seen + 1
    if not isinstance(obj, Mapping) or not obj:
        raise InvalidInput(f"{source} holds {type(obj).__name__}, not a state dict: expected a mapping of parameter names to tensors")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise InvalidInput(
            f"{source} is not a state dict: {len(bad)} entries are not name->tensor (e.g. {bad[0]!r}); "
            f"expected a plain state dict or one wrapped under {'/'.join(WRAPPER_KEYS)}"
        )
    state = dict(obj)
    for prefix in STRIP_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    obj = read_checkpoint(path)
    check_digest(obj, path=path, what="checkpoint", hint=REWRITE_HINT)
    return extract_state_dict(obj, source=f"checkpoint {str(path)!r}")


def infer_num_classes(state: Mapping[str, torch.Tensor]) -> int | None:
    """The number of classes a checkpoint's head was trained for, or None if it has no FFNet head."""
    for layer in _CLASS_LAYERS:
        key = layer + "weight"
        if key in state:
            return int(state[key].shape[0])
    return None


def mismatch_report(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str | None:
    """None when `state` fits `model` key for key and shape for shape, else a one-line explanation."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    bad_shapes = [k for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}" for k in bad_shapes]
    if not (missing or unexpected or shapes):
        return None
    kinds = (("missing key", "missing keys", missing), ("unexpected key", "unexpected keys", unexpected), ("shape mismatch", "shape mismatches", shapes))
    parts = [_listing(one if len(items) == 1 else many, items) for one, many, items in kinds if items]
    hint = ""
    if bad_shapes and not (missing or unexpected) and all(k.startswith(_CLASS_LAYERS) for k in bad_shapes):
        hint = f"; the checkpoint was trained for {infer_num_classes(state)} classes: build the model with that num_classes"
    return "; ".join(parts) + hint


def _listing(noun: str, items: list[str]) -> str:
    shown = ", ".join(items[:SHOW])
    more = f", ... and {len(items) - SHOW} more" if len(items) > SHOW else ""
    return f"{len(items)} {noun} ({shown}{more})"


def _without_fixed_smoothing(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop `smoothing.weight` where the model has no pre_down smoother.

    The official Cityscapes files of the mobile models are shared by the plain and the
    `_pre_down` variant, so the plain variant's file carries the fixed (untrained) Gaussian
    of the smoother; the reference code loads those with strict=False for this one key.
    The plain model never applies a smoother, so dropping the key loses nothing.
    """
    expected = model.state_dict()
    return {k: v for k, v in state.items() if not (k.startswith(SMOOTHING_PREFIX) and k not in expected)}


def load_state_dict_strict(
    model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str = "state dict", backbone_only: bool = False
) -> nn.Module:
    """Load `state` into `model` if it fits key for key and shape for shape; otherwise raise, loading nothing.

    backbone_only: load only the `backbone_model.*` (and pre_down) weights, all of which must be
    present, leaving the heads as they are (the reference's ImageNet -> segmentation initialisation).
    """
    state = _without_fixed_smoothing(model, state)
    target = model
    if backbone_only:
        if not hasattr(model, "backbone_model"):
            raise InvalidInput(f"{source}: backbone_only needs an FFNet (a model with .backbone_model)")
        prefix = "backbone_model."
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        target = model.backbone_model
    problem = mismatch_report(target, state)
    if problem is not None:
        what = f" ({model.arch.code})" if isinstance(getattr(model, "arch", None), Arch) else ""
        part = "backbone of the model" if backbone_only else "model"
        raise InvalidInput(f"{source} does not fit the {part}{what}: {problem}; nothing was loaded")
    target.load_state_dict(state, strict=True)
    return model


def load_checkpoint(model: nn.Module, path: str | Path, *, backbone_only: bool = False) -> nn.Module:
    """Load a checkpoint into `model` strictly (all keys, all shapes) and return the model.

    On any mismatch nothing is loaded and `InvalidInput` lists the first missing/unexpected
    keys and shape mismatches with their counts. One key is tolerated: the fixed pre_down
    Gaussian (`smoothing.weight`) in a file loaded into a model without pre_down, as the
    official mobile files are. `backbone_only=True` loads just the backbone (e.g. ImageNet
    classification weights into a segmentation model), still strictly within the backbone.
    """
    return load_state_dict_strict(model, read_state_dict(path), source=f"checkpoint {str(path)!r}", backbone_only=backbone_only)


def save_checkpoint(path: str | Path, model: nn.Module, *, arch: "Arch | str | None" = None, **extra: Any) -> Path:
    """Write {"arch", "num_classes", "state_dict", "provenance"} atomically; `load_model` rebuilds it.

    `extra` goes into the provenance record (what produced the weights: data set, epochs, ...).
    """
    arch = resolve(arch) if arch is not None else getattr(model, "arch", None)
    if not isinstance(arch, Arch):
        raise InvalidInput("save_checkpoint: the model has no .arch; expected an FFNet or an explicit arch=")
    num_classes = getattr(model, "num_classes", None)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if num_classes is None:
        num_classes = infer_num_classes(state)
    payload = {
        "arch": arch.code,
        "num_classes": num_classes,
        "state_dict": state,
        # plain str values: provenance() holds torch's TorchVersion, which weights_only loading refuses
        "provenance": {k: v if isinstance(v, (int, float, bool, type(None))) else str(v) for k, v in provenance(**extra).items()},
        DIGEST_KEY: tensor_digest(state),
    }
    return atomic_torch_save(path, payload)


def load_model(path: str | Path, *, arch: "Arch | str | None" = None, num_classes: int | None = None) -> nn.Module:
    """Rebuild an FFNet from a checkpoint and load its weights strictly.

    Files written by `save_checkpoint` know their arch and number of classes. A plain or
    official state dict does not: pass `arch=` (name or code); the number of classes is then
    read from the head's last layer unless given. The model is returned in train mode, as
    `build_model` makes it; call `.eval()` for inference.
    """
    from ffnet_nas.space.builder import build_model

    obj = read_checkpoint(path)
    check_digest(obj, path=path, what="checkpoint", hint=REWRITE_HINT)
    source = f"checkpoint {str(path)!r}"
    stored_arch = obj.get("arch") if isinstance(obj, Mapping) else None
    if arch is None:
        if not isinstance(stored_arch, str):
            raise InvalidInput(f"{source} does not record its arch (a plain state dict?): pass the arch name or code explicitly")
        arch = stored_arch
    state = extract_state_dict(obj, source=source)
    if num_classes is None:
        stored = obj.get("num_classes") if isinstance(obj, Mapping) else None
        num_classes = stored if isinstance(stored, int) else infer_num_classes(state)
    model = build_model(arch, num_classes=num_classes)
    return load_state_dict_strict(model, state, source=source)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else type(e).__name__
