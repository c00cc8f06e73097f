"""The teacher's soft targets, computed once per batch and process.

Every fine-tune of a run draws its batches from the same seeded stream (`ffnet_nas.training`
seeds the augmentation with the fine-tune's seed), so the ten design points of the predictor and
the points the run evaluates under seed 0 all show the teacher the same 100 batches. The
teacher is frozen, so its output for a batch is the same every time: the KD term of the second
and later fine-tunes needs no teacher forward pass at all. On the quick budget that pass is
about 50 ms of a 250-450 ms training step (`bench/bench_soft_targets.py`, docs/results.md).

    targets = SoftTargets()                       # one per process: `shared()`
    logits = targets(teacher, images, key=(teacher_id, amp))

The memo holds a batch's targets under the teacher's identity (what the caller says it is: the
digest of its weights), the autocast setting and the digest of the image bytes, so a hit is the
same computation on the same input, bit for bit. Only CPU tensors are remembered (on a GPU the
pass costs less than the copy and the hash); it fills up to `max_bytes` and then stops adding
rather than evicting, since fine-tunes replay the stream from its start and an evicting memo
smaller than one stream would never hit. Only when it is full and another teacher key asks
(another teacher, precision or thread count) do the other keys' targets make room.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Callable, Hashable

import torch

# 46NS_CCC_mobile's logits for a batch of 8 at 64x128 are 0.3 MB (19 classes at stride 4): the
# quick budget's three seeds x 100 steps take ~93 MB; the full budget's (128x256, 300 steps) 1.1 GB
DEFAULT_MAX_BYTES = 768 * 2**20


def image_digest(images: torch.Tensor) -> str:
    """sha1 of a CPU tensor's dtype, shape and bytes."""
    t = images.detach().contiguous()
    h = hashlib.sha1(f"{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class SoftTargets:
    """A memo of teacher outputs by (teacher key, input bytes); counts its hits and misses."""

    def __init__(self, *, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = int(max_bytes)
        self.enabled = True  # False: every call computes, nothing is looked up or kept (bench_soft_targets' "off")
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._store: dict[tuple[Hashable, str], torch.Tensor] = {}
        self._lock = threading.Lock()

    def __call__(self, teacher: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, *,
                 key: Hashable) -> torch.Tensor:
        """`teacher(images)`, or the tensor it returned for the same key and bytes before. The
        caller treats the result as read-only (it is shared between calls)."""
        if not self.enabled or images.device.type != "cpu":
            return teacher(images)
        k = (key, image_digest(images))
        with self._lock:
            found = self._store.get(k)
            if found is not None:
                self.hits += 1
                return found
        out = teacher(images)
        size = _nbytes(out)
        with self._lock:
            self.misses += 1
            if self.bytes + size > self.max_bytes:
                self._drop_other_teachers(key)
            if self.bytes + size <= self.max_bytes and k not in self._store:
                self._store[k] = out.detach()
                self.bytes += size
        return out

    def _drop_other_teachers(self, key: Hashable) -> None:
        # a process that moves on to another teacher (or precision) will not ask for the old one's
        # targets again: they give way, where the targets of this teacher's stream never evict each other
        for k in [k for k in self._store if k[0] != key]:
            self.bytes -= _nbytes(self._store.pop(k))

    def clear(self) -> None:
        with self._lock:
            self._store.clear()
            self.bytes = self.hits = self.misses = 0


_SHARED = SoftTargets()


def shared() -> SoftTargets:
    """The process's memo: what `ffnet_nas.training` uses for every fine-tune's KD term."""
    return _SHARED


__all__ = ["DEFAULT_MAX_BYTES", "SoftTargets", "image_digest", "shared"]
