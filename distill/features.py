"""Teacher features at every position, computed once and optionally cached on disk.

Every student reads the teacher's input at its position and must reproduce the teacher's
output there, so one teacher pass per image serves all choices. The set holds, per image:
`image` (the teacher's network input), `s4`, `s8`, `s16`, `s32` (the teacher's outputs at
each position = its four up-head inputs) and `logits`. Stored as float16 by default: halves
the disk and memory, and the NSR of float16 rounding (~1e-7) is far below any student's.

Features are computed without augmentation: a student sees the same images each epoch.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import atomic_torch_save, provenance

FEATURE_KEYS = ("image", "s4", "s8", "s16", "s32", "logits")
CACHE_FORMAT = 1


@dataclass(frozen=True)
class FeatureSet:
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.tensors["image"].shape[0])

    def batch(self, index: torch.Tensor | Sequence[int]) -> dict[str, torch.Tensor]:
        """Rows `index` as float32 (training always runs in float32)."""
        index = torch.as_tensor(index, dtype=torch.long)
        return {k: v[index].float() for k, v in self.tensors.items()}

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


@torch.no_grad()
def teacher_features(teacher: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """One teacher pass, keeping the output of every position (the same ops as FFNet.forward)."""
    stem_in = teacher.smoothing(x) if teacher.smoothing is not None else x
    backbone = teacher.backbone_model
    h = backbone.forward_stem(stem_in)
    feats = [h] if backbone.num_stages == 3 else []
    for i in range(1, backbone.num_stages + 1):
        h = getattr(backbone, f"layer{i}")(h)
        feats.append(h)
    logits = teacher.head(feats)
    return dict(zip(FEATURE_KEYS, [x, *feats, logits]))


def compute_features(teacher: torch.nn.Module, dataset, *, limit: int | None = None, batch_size: int = 16,
                     dtype: torch.dtype = torch.float16, progress: bool = True, desc: str = "teacher features",
                     meta: dict | None = None, device: str = "cpu") -> FeatureSet:
    """Teacher features for the first `limit` items of `dataset` (any `ds[i] -> (image, mask)`),
    the teacher run on `device`, the features kept in host memory (then in the on-disk cache)."""
    from tqdm.auto import tqdm

    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise InvalidInput("the data set is empty: expected at least one image to compute teacher features from")
    teacher.to(device).eval()
    chunks: dict[str, list[torch.Tensor]] = {k: [] for k in FEATURE_KEYS}
    started = time.perf_counter()
    for lo in tqdm(range(0, n, batch_size), desc=desc, disable=not progress, unit="batch"):
        images = torch.stack([dataset[i][0] for i in range(lo, min(n, lo + batch_size))]).to(device)
        for k, v in teacher_features(teacher, images).items():
            chunks[k].append(v.to(dtype).cpu())
    meta = dict(meta or {}, n=n, dtype=str(dtype).removeprefix("torch."), seconds=round(time.perf_counter() - started, 3))
    return FeatureSet({k: torch.cat(v) for k, v in chunks.items()}, meta)


def plain_provenance(**extra: Any) -> dict[str, Any]:
    """provenance() with every value a builtin (torch's version string is a str subclass that
    weights_only loading refuses)."""
    import json

    return json.loads(json.dumps(provenance(**extra), default=str))


def save_features(path: str | Path, features: FeatureSet) -> Path:
    return atomic_torch_save(path, {"format": CACHE_FORMAT, "meta": features.meta, "tensors": features.tensors,
                                    "provenance": plain_provenance()})


def load_features(path: str | Path, *, mmap: bool = True) -> FeatureSet:
    """Memory-mapped by default, so parallel workers share the page cache instead of copies."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"feature cache {str(path)!r} not found")
    try:
        obj = torch.load(path, map_location="cpu", mmap=mmap, weights_only=True)
    except Exception as e:  # a truncated or foreign file: say so instead of a pickle traceback
        raise InvalidInput(f"feature cache {str(path)!r} is corrupt ({type(e).__name__}); delete it and re-run") from None
    if not isinstance(obj, dict) or obj.get("format") != CACHE_FORMAT or set(obj.get("tensors", {})) != set(FEATURE_KEYS):
        raise InvalidInput(f"feature cache {str(path)!r} is not a format-{CACHE_FORMAT} feature file; delete it and re-run")
    return FeatureSet(obj["tensors"], obj["meta"])


def cached_features(path: str | Path, key: dict[str, Any], compute) -> FeatureSet:
    """Load `path` when it was made for the same `key` (teacher, data, count), else compute and save."""
    path = Path(path)
    if path.is_file():
        try:
            fs = load_features(path)
            if fs.meta.get("key") == key:
                return fs
        except InvalidInput:
            pass  # stale or broken: recompute below and replace it atomically
    fs = compute()
    fs = FeatureSet(fs.tensors, dict(fs.meta, key=key))
    save_features(path, fs)
    return load_features(path)


def file_digest(path: str | Path) -> str:
    """sha1 of a file (the teacher): features and library are tied to the exact weights."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
