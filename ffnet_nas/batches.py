"""Which images each training step sees, and the random draws that augment them.

A batch is a pure function of (seed, step) (`batch_indices`: epoch-wise shuffles), so a training
run killed and resumed trains on the same batches, and a job over several processes trains on the
single-process global batch, each rank on its share (`StepBatches`). The augmentation draws from
the global torch / numpy / random streams: a run seeds them per rank (`seed_all(rank_seed(...))`),
a checkpoint keeps their state (`rng_state`) and a resume restores it (`restore_rng`). DataLoader
workers, whose streams no checkpoint can hold, seed every item from (seed, rank, step, position)
instead (`SeededSteps`, `SeededItems`). The loop that uses all this is `ffnet_nas.training`.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Iterator

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = ["SeededItems", "SeededSteps", "StepBatches", "batch_indices", "rank_seed", "restore_rng", "rng_state",
           "seed_all", "set_rng_state"]


def batch_indices(step: int, *, batch_size: int, n: int, seed: int) -> list[int]:
    """The dataset indices of batch `step`: epoch-wise shuffles, a pure function of (seed, step)."""
    out = []
    for flat in range(step * batch_size, (step + 1) * batch_size):
        epoch, pos = divmod(flat, n)
        perm = _epoch_perm(seed, epoch, n)
        out.append(int(perm[pos]))
    return out


_PERM_CACHE: dict[tuple[int, int, int], torch.Tensor] = {}


def _epoch_perm(seed: int, epoch: int, n: int) -> torch.Tensor:
    key = (seed, epoch, n)
    if key not in _PERM_CACHE:
        if len(_PERM_CACHE) > 8:
            _PERM_CACHE.clear()
        _PERM_CACHE[key] = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return _PERM_CACHE[key]


class StepBatches(torch.utils.data.Sampler):
    """Batch `step` for steps start..stop-1; with several ranks, this rank's share of the global batch."""

    def __init__(self, *, start: int, stop: int, batch_size: int, n: int, seed: int, rank: int = 0, world: int = 1):
        self.start, self.stop, self.batch_size, self.n, self.seed = start, stop, batch_size, n, seed
        self.rank, self.world = rank, world

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            # the global batch is the single-process one, whatever the world size: resume stays a pure function
            yield batch_indices(step, batch_size=self.batch_size, n=self.n, seed=self.seed)[self.rank::self.world]

    def __len__(self) -> int:
        return self.stop - self.start


def rng_state() -> dict[str, Any]:
    """Every RNG the loop draws from, in types `torch.load(weights_only=True)` accepts.

    numpy's state holds an ndarray, which the safe unpickler refuses, so its key goes in a tensor;
    Python's state is a tuple of ints, which it accepts as is.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    return {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}


def rank_seed(seed: int, rank: int) -> int:
    """The augmentation seed of `rank`: the run's seed on rank 0 (one process is unchanged), a
    distinct stream on the others (the same draws on every rank would augment alike)."""
    return seed if rank == 0 else (seed * 1_000_003 + rank) % 2**63


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


class SeededSteps(torch.utils.data.Sampler):
    """A step sampler's batches as (index, item seed) pairs: the seed is a pure function of the
    run's seed, the rank, the step and the position in the batch."""

    def __init__(self, steps: StepBatches):
        self.steps = steps

    def __iter__(self):
        s = self.steps
        for step, batch in enumerate(s, start=s.start):
            yield [(i, (s.seed * 1_000_003 + s.rank * 7_919 + step) * 1_024 + k) for k, i in enumerate(batch)]

    def __len__(self) -> int:
        return len(self.steps)


class SeededItems(torch.utils.data.Dataset):
    """`dataset[index]` with torch, numpy and random seeded from the item's seed first (what
    the augmentation draws from), in whichever worker process it is made."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        index, seed = item
        seed_all(seed % 2**63)
        return self.dataset[index]

    def __getattr__(self, name):  # num_classes, ignore_index, ... of the wrapped set
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


def restore_rng(state: dict[str, Any], *, rank: int, world: int, seed: int, start: int) -> None:
    """This rank's RNG state from the checkpoint: its own entry when the job that wrote it had as
    many ranks; otherwise a fresh stream per step count (the run continues, not as it would have)."""
    saved = state.get("rng_ranks")
    if rank == 0:
        set_rng_state(state["rng"])
    elif isinstance(saved, list) and len(saved) == world:
        set_rng_state(saved[rank])
    else:
        seed_all(rank_seed(seed, rank) + start)
    if world > 1 and rank == 0 and not (isinstance(saved, list) and len(saved) == world):
        logger.warning("resuming with %d processes from a checkpoint written by %s: the augmentation of ranks 1.. "
                       "differs from an uninterrupted run", world,
                       f"{len(saved)} processes" if isinstance(saved, list) else "one process")
