"""Teacher features at every position, computed once and cached on disk in chunks.

Every student reads the teacher's input at its position and must reproduce the teacher's
output there, so one teacher pass per image serves all choices. The set holds, per image:
`image` (the teacher's network input), `s4`, `s8`, `s16`, `s32` (the teacher's outputs at
each position = its four up-head inputs) and `logits`. Stored as float16 by default: halves
the disk and memory, and the NSR of float16 rounding (~1e-7) is far below any student's.

Features are computed without augmentation: a student sees the same images each epoch.

The cache at PATH (format 2) is streamed: at Cityscapes scale the set is ~35 GB, more than a
machine may hold, so it is written chunk by chunk as the teacher computes it:

    PATH                    the index, written last: key, n, dtype, shapes, the chunk list with digests
    PATH.chunks/00000.pt    rows [0, r) of every feature + their tensor digest (one atomic file per chunk)
    PATH.chunks/lock        claimed while a process computes the chunks (a second one waits, then reuses)

A chunk is the largest whole number of teacher batches within CHUNK_BYTES (at least one batch),
so the batches, and therefore the bytes, are those of an in-memory computation. A computation
killed midway keeps its finished chunks; the next one reuses every chunk whose key, rows and
digest match and computes the rest. Readers memory-map each chunk (page cache shared between
worker processes); nothing is unpickled beyond tensors and plain containers (weights_only).
A format-1 cache (one file holding every tensor, from before the chunks) is still read.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import (
    DIGEST_KEY,
    atomic_torch_save,
    check_digest,
    provenance,
    refused_as_code,
    tensor_digest,
)

from ffnet_nas.claims import claim, holder

logger = logging.getLogger(__name__)

FEATURE_KEYS = ("image", "s4", "s8", "s16", "s32", "logits")
CACHE_FORMAT = 2  # 1: one file with every tensor (read, never written)
CHUNK_BYTES = 64 << 20  # Cityscapes 512x1024 (~12 MB an image): one 16-image batch a chunk


class FeatureSet:
    """Rows of teacher features held as chunks of consecutive rows (each `key -> tensor`, in
    memory or memory-mapped from the cache); `batch` gathers rows across them."""

    __slots__ = ("_chunks", "_ends", "_meta", "source")

    def __init__(self, tensors: dict[str, torch.Tensor] | None = None, meta: dict | None = None, *,
                 chunks: Sequence[dict[str, torch.Tensor]] | None = None, source: Path | None = None):
        if (tensors is None) == (chunks is None):
            raise ValueError("FeatureSet takes either `tensors` (one block of rows) or `chunks`")
        self._chunks = (dict(tensors),) if tensors is not None else tuple(dict(c) for c in chunks)
        if not self._chunks:
            raise ValueError("FeatureSet needs at least one chunk")
        self._meta = dict(meta or {})
        self._ends = torch.tensor([int(c["image"].shape[0]) for c in self._chunks]).cumsum(0)
        self.source = source  # the cache index it was read from (None: computed in memory)

    @property
    def meta(self) -> dict[str, Any]:
        return self._meta

    @property
    def chunks(self) -> tuple[dict[str, torch.Tensor], ...]:
        return self._chunks

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        """Every row in one tensor per key: a view when the set is one chunk, else a copy in memory."""
        return self._chunks[0] if len(self._chunks) == 1 else self.rows(0, len(self))

    def __len__(self) -> int:
        return int(self._ends[-1])

    def rows(self, lo: int, hi: int) -> dict[str, torch.Tensor]:
        """Rows [lo, hi) in the stored dtype."""
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in self._chunks[0]}
        begin = 0
        for chunk, end in zip(self._chunks, self._ends.tolist()):
            a, b = max(lo, begin), min(hi, end)
            if a < b:
                for k, v in chunk.items():
                    parts[k].append(v[a - begin:b - begin])
            begin = end
        return {k: v[0] if len(v) == 1 else torch.cat(v) for k, v in parts.items()}

    def batch(self, index: torch.Tensor | Sequence[int]) -> dict[str, torch.Tensor]:
        """Rows `index` as float32 (training always runs in float32)."""
        index = torch.as_tensor(index, dtype=torch.long)
        if len(self._chunks) == 1:
            return {k: v[index].float() for k, v in self._chunks[0].items()}
        n, flat = len(self), index.reshape(-1)
        if flat.numel() and (int(flat.min()) < -n or int(flat.max()) >= n):
            raise IndexError(f"row index out of range for a feature set of {n} rows")
        flat = flat.remainder(n)  # negative rows count from the end, as tensor indexing does
        which = torch.searchsorted(self._ends, flat, right=True)
        starts = torch.cat([torch.zeros(1, dtype=self._ends.dtype), self._ends[:-1]])
        out = {k: torch.empty((flat.numel(), *v.shape[1:]), dtype=torch.float32) for k, v in self._chunks[0].items()}
        for c in which.unique().tolist():
            mask = which == c
            local = flat[mask] - starts[c]
            for k, v in self._chunks[c].items():
                out[k][mask] = v[local].float()
        return {k: v.reshape(*index.shape, *v.shape[1:]) for k, v in out.items()}

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for c in self._chunks for t in c.values())


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


def _teacher_batch(teacher, dataset, lo: int, hi: int, dtype: torch.dtype, device: str) -> dict[str, torch.Tensor]:
    images = torch.stack([dataset[i][0] for i in range(lo, hi)]).to(device)
    return {k: v.to(dtype).cpu() for k, v in teacher_features(teacher, images).items()}


def compute_features(teacher: torch.nn.Module, dataset, *, limit: int | None = None, batch_size: int = 16,
                     dtype: torch.dtype = torch.float16, progress: bool = True, desc: str = "teacher features",
                     meta: dict | None = None, device: str = "cpu", cache: str | Path | None = None,
                     key: dict | None = None, chunk_bytes: int = CHUNK_BYTES) -> FeatureSet:
    """Teacher features for the first `limit` items of `dataset` (any `ds[i] -> (image, mask)`),
    the teacher run on `device`. Without `cache`: in host memory (small sets). With `cache`: streamed
    into the cache at that path chunk by chunk (at most one chunk in memory), reusing the chunks an
    interrupted computation of the same `key` left there; returns the cache, memory-mapped."""
    from tqdm.auto import tqdm

    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise InvalidInput("the data set is empty: expected at least one image to compute teacher features from")
    teacher.to(device).eval()
    meta = dict(meta or {}, n=n, dtype=str(dtype).removeprefix("torch."))
    started = time.perf_counter()
    bar = tqdm(total=n, desc=desc, disable=not progress, unit="img")
    try:
        if cache is None:
            parts = []
            for lo in range(0, n, batch_size):
                parts.append(_teacher_batch(teacher, dataset, lo, min(n, lo + batch_size), dtype, device))
                bar.update(len(parts[-1]["image"]))
            meta["seconds"] = round(time.perf_counter() - started, 3)
            return FeatureSet({k: torch.cat([p[k] for p in parts]) for k in FEATURE_KEYS}, meta)

        def batches(lo: int, hi: int) -> Iterator[dict[str, torch.Tensor]]:
            for b in range(lo, hi, batch_size):
                yield _teacher_batch(teacher, dataset, b, min(hi, b + batch_size), dtype, device)

        return _write_cache(Path(cache), key=key, n=n, dtype=dtype, meta=meta, batches=batches, reuse=True,
                            chunk_rows=lambda row_bytes: max(batch_size, chunk_bytes // row_bytes // batch_size * batch_size),
                            bar=bar, started=started)
    finally:
        bar.close()


def plain_provenance(**extra: Any) -> dict[str, Any]:
    """provenance() with every value a builtin (torch's version string is a str subclass that
    weights_only loading refuses)."""
    import json

    return json.loads(json.dumps(provenance(**extra), default=str))


def chunk_folder(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".chunks")


def save_features(path: str | Path, features: FeatureSet, *, chunk_bytes: int = CHUNK_BYTES) -> Path:
    """Write a set held in memory as a cache at `path` (chunks of about `chunk_bytes`); returns `path`."""
    rows = max(1, chunk_bytes // max(1, features.nbytes // len(features)))

    def batches(lo: int, hi: int) -> Iterator[dict[str, torch.Tensor]]:
        yield features.rows(lo, hi)

    dtype = features.chunks[0]["s4"].dtype
    _write_cache(Path(path), key=features.meta.get("key"), n=len(features), dtype=dtype, meta=features.meta,
                 batches=batches, reuse=False, chunk_rows=rows)
    return Path(path)


def _write_cache(path: Path, *, key: Any, n: int, dtype: torch.dtype, meta: dict, reuse: bool,
                 batches: Callable[[int, int], Iterator[dict[str, torch.Tensor]]],
                 chunk_rows: int | Callable[[int], int], bar=None, started: float | None = None) -> FeatureSet:
    """Write the chunks of rows [0, n) that are missing (all of them unless `reuse`), then the index.
    `chunk_rows`: rows a chunk, or a function of the bytes of one row (then the first batch is
    computed to measure them, and kept as the start of chunk 0)."""
    folder, dtype_name = chunk_folder(path), str(dtype).removeprefix("torch.")
    with _computing(folder):
        if reuse:  # another process may have finished it while this one waited for the claim
            try:
                done = load_features(path)
                if done.meta.get("key") == key and len(done) == n:
                    return done
            except InvalidInput:
                pass
        for leftover in folder.glob(".*.tmp"):  # temp files of writers killed mid-write (the claim is ours)
            leftover.unlink(missing_ok=True)
        first, rows = None, _planned_rows(folder, key, n, dtype_name) if reuse else None
        if rows is None and isinstance(chunk_rows, int):
            rows = chunk_rows
        elif rows is None:  # the chunk size follows from the bytes of one row: compute the first batch
            first = next(batches(0, n))
            rows = chunk_rows(max(1, sum(v[0].numel() * v.element_size() for v in first.values())))
        plan = {"n": n, "chunk_rows": rows, "dtype": dtype_name}
        entries, shapes, computed = [], None, 0
        for i, lo in enumerate(range(0, n, rows)):
            hi, file = min(n, lo + rows), folder / f"{i:05d}.pt"
            entry = _reusable(file, key=key, plan=plan, rows=[lo, hi]) if reuse else None
            if entry is None:
                tensors = _fill(batches, lo, hi, first if lo == 0 else None, bar)
                digest = tensor_digest(tensors)
                atomic_torch_save(file, {"format": CACHE_FORMAT, "key": key, "plan": plan, "rows": [lo, hi],
                                         "tensors": tensors, DIGEST_KEY: digest})
                _VERIFIED.add(_stamp(file, digest))
                entry, computed = {"file": f"{folder.name}/{file.name}", "rows": [lo, hi], "digest": digest}, computed + hi - lo
                shapes = {k: list(v.shape[1:]) for k, v in tensors.items()}
                del tensors  # the next chunk's rows replace these: one chunk in memory at a time
            elif bar is not None:
                bar.update(hi - lo)
            first = None
            entries.append(entry)
        if shapes is None:
            shapes = {k: list(v.shape[1:]) for k, v in _read_chunk(folder / Path(entries[0]["file"]).name, mmap=True,
                                                                     verify=False)["tensors"].items()}
        if computed < n:
            logger.info("feature cache %s: %d of %d rows reused from an earlier computation", path, n - computed, n)
        meta = dict(meta, key=key, chunk_rows=rows)
        if started is not None:
            meta["seconds"] = round(time.perf_counter() - started, 3)
        atomic_torch_save(path, {"format": CACHE_FORMAT, "key": key, "n": n, "dtype": dtype_name, "shapes": shapes,
                                 "chunks": entries, "meta": meta, "provenance": plain_provenance()})
        listed = {Path(e["file"]).name for e in entries}
        for stale in folder.glob("[0-9]*.pt"):  # chunks of an earlier, longer set
            if stale.name not in listed:
                stale.unlink(missing_ok=True)
        return load_features(path)


def _fill(batches, lo: int, hi: int, first: dict | None, bar) -> dict[str, torch.Tensor]:
    """Rows [lo, hi) copied batch by batch into tensors allocated once (no list + cat doubling)."""
    out, at = None, lo
    # the first batch, already computed to size the chunks, is not computed twice
    source = batches(lo, hi) if first is None else itertools.chain([first], batches(lo + len(first["image"]), hi))
    for part in source:
        if out is None:
            out = {k: torch.empty((hi - lo, *v.shape[1:]), dtype=v.dtype) for k, v in part.items()}
        m = len(part["image"])
        for k, v in part.items():
            out[k][at - lo:at - lo + m] = v
        at += m
        if bar is not None:
            bar.update(m)
    return out


@contextmanager
def _computing(folder: Path) -> Iterator[None]:
    """One process computes a cache at a time; a second one waits for it (then finds it done)."""
    lock = folder / "lock"
    try:  # the claim opens its file without a message of its own
        folder.mkdir(parents=True, exist_ok=True)
        os.close(os.open(lock, os.O_RDWR | os.O_CREAT, 0o644))
    except OSError as e:
        raise InvalidInput(f"cannot write the feature cache {str(folder)!r}: {e.strerror or e}; "
                           "expected a writable folder") from None
    with claim(lock) as mine:
        if mine:
            yield
            return
    logger.info("feature cache %s is being computed by %s: waiting for it", folder, holder(lock))
    with claim(lock, wait=True):
        yield


def _planned_rows(folder: Path, key: Any, n: int, dtype_name: str) -> int | None:
    """The chunk size of an interrupted computation of the same set (kept, so its chunks are reused)."""
    try:
        obj = _read_chunk(folder / "00000.pt", mmap=True, verify=False)
    except InvalidInput:
        return None
    plan = obj.get("plan")
    if obj.get("key") != key or not isinstance(plan, dict) or plan.get("n") != n or plan.get("dtype") != dtype_name:
        return None
    rows = plan.get("chunk_rows")
    return rows if isinstance(rows, int) and rows > 0 else None


def _reusable(file: Path, *, key: Any, plan: dict, rows: list[int]) -> dict | None:
    if not file.is_file():
        return None
    try:
        obj = _read_chunk(file, mmap=True, verify=True)
    except InvalidInput as e:
        logger.warning("%s: computed again", e)
        return None
    if obj.get("key") != key or obj.get("plan") != plan or obj.get("rows") != rows:
        return None  # another key, or another chunking: stale
    return {"file": f"{file.parent.name}/{file.name}", "rows": rows, "digest": obj[DIGEST_KEY]}


_VERIFIED: set[tuple] = set()  # chunks whose digest this process checked (or wrote), by inode and mtime


def _stamp(file: Path, digest: str) -> tuple:
    st = os.stat(file)
    return (str(file.resolve()), st.st_ino, st.st_mtime_ns, st.st_size, digest)


def _read_chunk(file: Path, *, mmap: bool, verify: bool) -> dict:
    hint = "it is computed again by the next distill/run (or delete the cache and re-run)"
    try:
        obj = torch.load(file, map_location="cpu", mmap=mmap, weights_only=True)
    except FileNotFoundError:
        raise InvalidInput(f"feature chunk {str(file)!r} is missing; {hint}") from None
    except Exception as e:  # noqa: BLE001 - torch.load fails on a damaged file with many types: one line instead
        what = "holds Python objects other than tensors (not loaded)" if refused_as_code(e) else \
            f"is corrupt ({type(e).__name__})"
        raise InvalidInput(f"feature chunk {str(file)!r} {what}; {hint}") from None
    if (not isinstance(obj, dict) or obj.get("format") != CACHE_FORMAT or not isinstance(obj.get("tensors"), dict)
            or set(obj["tensors"]) != set(FEATURE_KEYS) or not isinstance(obj.get(DIGEST_KEY), str)):
        raise InvalidInput(f"feature chunk {str(file)!r} is not a format-{CACHE_FORMAT} feature chunk; {hint}")
    if verify and _stamp(file, obj[DIGEST_KEY]) not in _VERIFIED:
        check_digest(obj, path=file, what="feature chunk", hint=hint, key="tensors")
        _VERIFIED.add(_stamp(file, obj[DIGEST_KEY]))
    return obj


def load_features(path: str | Path, *, mmap: bool = True, verify: bool = True) -> FeatureSet:
    """The cache at `path`, every chunk memory-mapped by default (parallel workers share the page
    cache instead of copies). `verify`: check each chunk's tensor digest (reads every byte, once per
    process and file); a damaged or missing chunk is an InvalidInput naming it."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"feature cache {str(path)!r} not found")
    try:
        obj = torch.load(path, map_location="cpu", mmap=mmap, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch.load fails on a damaged file with many types: one line instead
        what = "holds Python objects other than tensors (not loaded)" if refused_as_code(e) else \
            f"is corrupt ({type(e).__name__})"
        raise InvalidInput(f"feature cache {str(path)!r} {what}; delete it and re-run") from None
    fmt = obj.get("format") if isinstance(obj, dict) else None
    if fmt == 1 and isinstance(obj.get("tensors"), dict) and set(obj["tensors"]) == set(FEATURE_KEYS):
        return FeatureSet(obj["tensors"], obj.get("meta") or {}, source=path)  # one file, as written before chunks
    bad = InvalidInput(f"feature cache {str(path)!r} is not a format-{CACHE_FORMAT} feature index; delete it and re-run")
    try:
        entries, n = obj["chunks"], obj["n"]
        files = [Path(e["file"]) for e in entries]
        ranges = [tuple(e["rows"]) for e in entries]
    except (KeyError, TypeError, ValueError):
        raise bad from None
    if fmt != CACHE_FORMAT or not entries or any(f.parent.name != chunk_folder(path).name or f.parent.parent != Path(".")
                                                  for f in files):
        raise bad  # chunk names stay inside PATH.chunks: an index never points elsewhere
    if [r[0] for r in ranges] != [0, *[r[1] for r in ranges[:-1]]] or ranges[-1][1] != n:
        raise bad
    chunks = []
    for file, entry, (lo, hi) in zip(files, entries, ranges):
        file = path.parent / file
        chunk = _read_chunk(file, mmap=mmap, verify=verify)
        tensors = chunk["tensors"]
        if (chunk.get("key") != obj.get("key") or chunk[DIGEST_KEY] != entry.get("digest")
                or any(v.shape[0] != hi - lo or list(v.shape[1:]) != obj["shapes"].get(k) for k, v in tensors.items())):
            raise InvalidInput(f"feature chunk {str(file)!r} does not belong to the cache {str(path)!r} (another key, "
                               "rows or digest); it is computed again by the next distill/run")
        chunks.append(tensors)
    return FeatureSet(chunks=chunks, meta=obj.get("meta") or {}, source=path)


def cached_features(path: str | Path, key: dict[str, Any], compute: Callable[[], FeatureSet]) -> FeatureSet:
    """The cache at `path` when it was made for the same `key` (teacher, data, split, count), else
    `compute()`: either a set in memory (saved here), or `compute_features(..., cache=path, key=key)`,
    which streams into the cache itself and resumes from the chunks of an interrupted computation."""
    path = Path(path)
    try:
        fs = load_features(path)
        if fs.meta.get("key") == key:
            return fs
    except InvalidInput as e:
        if path.is_file():
            logger.warning("%s: computed again", e)
    fs = compute()
    if fs.source is not None and Path(fs.source).resolve() == path.resolve() and fs.meta.get("key") == key:
        return fs
    save_features(path, FeatureSet(chunks=fs.chunks, meta=dict(fs.meta, key=key)))
    return load_features(path)


def cache_bytes(path: str | Path) -> int:
    """Bytes the cache at `path` takes on disk: the index and its chunks."""
    path = Path(path)
    return path.stat().st_size + sum(f.stat().st_size for f in chunk_folder(path).glob("[0-9]*.pt"))


def file_digest(path: str | Path) -> str:
    """sha1 of a file (the teacher): features and library are tied to the exact weights."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
