"""Every point of a space scored at once, from per-part tables probed through the search's callables.

Within one *skeleton* (stage count, block type, stage widths, first stride, pre_down) each quantity
the search needs is a sum of independent parts plus at most one known non-linear term:

    q(point) = F[stem, depth1] + sum_i G_i[depth_i] + H[up, seg, upsample] + c * log10(P(point))

* latency: the table's unit times add up (pre_down, stem, per stage its first block + (depth-1)
  repeats, the head unit), then the calibration a*sum + b: additive (c = 0);
* params and MACs: the complexity cache's parts add up (stem, stages, adapters, head): additive;
* predicted mIoU (`predictors.accuracy`), any feature set: the NSR ridge reads log10 NSR per
  position (s4 couples the stem and the first stage's depth, hence the 2-D table F; s8..s32 one
  stage each; the head); the choices ridges read indicators of the stem (in F), of the head's
  choices (in H) and of the skeleton's own choices (constant in it); all read log2 output stride
  (fixed by the skeleton and the up-head) and log10 of the params P at `PARAMS_HW` with
  `PARAMS_NUM_CLASSES` classes: the one non-additive term, c * log10(P).

The tables are *probed*: the same scalar callables the NSGA-II objective calls are asked at the
skeleton's base point, along each axis, and at one corner (for c), never read from the predictors'
internals. The search step hands `run_search` plain callables, and the predictors are being changed
by others: a probe-and-verify design stays exact for whatever still has this form and notices
(`Tables.check`, on random points of the whole space) the day something does not, so the caller can
fall back to NSGA-II instead of searching the wrong numbers.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ffnet_nas.space.arch import Arch
from ffnet_nas.space.searchspace import SearchSpace

# Spaces up to this many points are scored exhaustively (`all`, the largest built-in, has 3.6 M);
# larger ones keep NSGA-II. About 20 bytes per feasible point are kept (see exact.py).
EXHAUSTIVE_MAX_POINTS = 5_000_000
# Points scored per numpy block: bounds the temporaries (~10 float64 arrays of this length).
CHUNK_POINTS = 1 << 18
# The vectorised value must equal the scalar callable's to this (relative to max(1, |value|)).
TOLERANCE = 1e-9
CHECK_POINTS = 64  # random points compared with the scalar callables (plus every published one)
# Probing asks the scalar callables once per probe: past this many (`all` needs 2,784; a space whose
# skeletons hold few points each would need nearly one per point) NSGA-II is cheaper.
MAX_PROBES = 20_000


@dataclass(frozen=True)
class Skeleton:
    """The points sharing everything but the stem, the stage depths and the head (up, seg, upsample)."""

    num_stages: int
    block: str
    widths: tuple[int, ...]
    first_stride: int
    pre_down: bool
    stems: tuple[str, ...]
    depths: tuple[tuple[int, ...], ...]  # choices per stage
    heads: tuple[tuple[str, str, str], ...]  # (up_head, seg_head, upsample)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.stems),) + tuple(len(d) for d in self.depths) + (len(self.heads),)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def arch(self, index: Sequence[int]) -> Arch:
        """The point at grid `index` (stem, depth per stage, head)."""
        up, seg, ups = self.heads[index[-1]]
        return Arch(self.stems[index[0]], self.block, tuple(c[i] for c, i in zip(self.depths, index[1:-1])),
                    self.widths, self.first_stride, up, seg, ups, self.pre_down)


def skeletons(space: SearchSpace) -> list[Skeleton]:
    """The space's skeletons; their grids cover the space once (flat index: skeleton by skeleton, each in C order)."""
    heads = tuple(itertools.product(space.up_heads, space.seg_heads, space.upsamples))
    out = []
    for opts in space.stage_options:
        strides = space.first_strides if opts.num_stages == 4 else (2,)
        for block, widths, fs, pd in itertools.product(space.blocks, itertools.product(*opts.widths), strides,
                                                       space.pre_downs):
            out.append(Skeleton(opts.num_stages, block, tuple(widths), fs, pd, space.stems, opts.depths, heads))
    return out


def probe_indices(sk: Skeleton) -> list[tuple[int, ...]]:
    """Grid indices asked per skeleton: every (stem, depth1) pair, then one axis at a time from the base."""
    k = len(sk.depths)
    base = [0] * (k + 2)
    out = [tuple([s, a] + base[2:]) for s in range(len(sk.stems)) for a in range(len(sk.depths[0]))]
    for axis in range(2, k + 2):
        for j in range(1, sk.shape[axis]):
            idx = list(base)
            idx[axis] = j
            out.append(tuple(idx))
    return out


def count_probes(space: SearchSpace) -> int:
    """How many points `build_tables` asks, without enumerating the skeletons (+1 corner each)."""
    heads = len(space.up_heads) * len(space.seg_heads) * len(space.upsamples)
    total = 0
    for opts in space.stage_options:
        n_sk = len(space.blocks) * math.prod(len(w) for w in opts.widths) * len(space.pre_downs) * \
            (len(space.first_strides) if opts.num_stages == 4 else 1)
        per = len(space.stems) * len(opts.depths[0]) + sum(len(d) - 1 for d in opts.depths[1:]) + heads - 1 + 1
        total += n_sk * per
    return total


def probe_archs(space: SearchSpace) -> list[Arch]:
    """Every point probed: together they use every (position, choice) block of the space."""
    return [sk.arch(i) for sk in skeletons(space) for i in probe_indices(sk)]


@dataclass(frozen=True)
class Parts:
    """One quantity on one skeleton: F[stem, depth1], G_i[depth_i] (i >= 2), H[head], and c."""

    pair: np.ndarray
    stages: tuple[np.ndarray, ...]
    head: np.ndarray
    c: float = 0.0

    @classmethod
    def from_probes(cls, sk: Skeleton, values: np.ndarray, c: float = 0.0) -> Parts:
        n0, n1 = sk.shape[0], sk.shape[1]
        pair = values[: n0 * n1].reshape(n0, n1)
        rest, base = values[n0 * n1:], pair[0, 0]
        stages, start = [], 0
        for n in sk.shape[2:]:
            stages.append(np.concatenate(([0.0], rest[start:start + n - 1] - base)))
            start += n - 1
        return cls(pair, tuple(stages[:-1]), stages[-1], c)

    def additive_at(self, index: Sequence[int]) -> float:
        return float(self.pair[index[0], index[1]] + sum(g[i] for g, i in zip(self.stages, index[2:-1]))
                     + self.head[index[-1]])

    def grid(self, shape: tuple[int, ...], lead: tuple[int, ...]) -> np.ndarray:
        """The additive part over the sub-grid whose first len(lead) indices are `lead`, flattened."""
        m = len(lead)
        free = shape[m:]
        total: np.ndarray | float = 0.0
        terms = [((0, 1), self.pair)] + [((i + 2,), g) for i, g in enumerate(self.stages)] + \
            [((len(shape) - 1,), self.head)]
        for axes, table in terms:
            t = table[tuple(lead[a] if a < m else slice(None) for a in axes)]
            shape_b = [1] * len(free)
            for a, n in zip([a for a in axes if a >= m], np.shape(t)):
                shape_b[a - m] = n
            total = total + np.reshape(t, shape_b)
        return np.broadcast_to(total, free).reshape(-1)


def _log_params(params: np.ndarray | float) -> np.ndarray:
    return np.log10(np.maximum(params, 1.0))


@dataclass(frozen=True)
class Tables:
    """Per skeleton and quantity, the `Parts`; `P` (params at the accuracy predictor's size) is always there."""

    space: SearchSpace
    skeletons: tuple[Skeleton, ...]
    parts: dict  # name -> tuple[Parts, ...] (one per skeleton)
    probes: int  # points asked of the scalar callables

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate(([0], np.cumsum([sk.size for sk in self.skeletons])))

    def value(self, name: str, s: int, index: Sequence[int]) -> float:
        p = self.parts[name][s]
        extra = p.c * float(_log_params(self.parts["P"][s].additive_at(index))) if p.c else 0.0
        return p.additive_at(index) + extra

    def locate(self, arch: Arch) -> tuple[int, tuple[int, ...]]:
        """(skeleton number, grid index) of a point of the space."""
        for s, sk in enumerate(self.skeletons):
            if (sk.num_stages, sk.block, sk.widths, sk.first_stride, sk.pre_down) == \
                    (arch.num_stages, arch.block, arch.widths, arch.first_stride, arch.pre_down):
                return s, ((sk.stems.index(arch.stem),) + tuple(c.index(d) for c, d in zip(sk.depths, arch.depths))
                           + (sk.heads.index((arch.up_head, arch.seg_head, arch.upsample)),))
        raise KeyError(arch.code)

    def arch_at(self, flat: int) -> Arch:
        offsets = self.offsets
        s = int(np.searchsorted(offsets, flat, side="right") - 1)
        sk = self.skeletons[s]
        return sk.arch(np.unravel_index(int(flat - offsets[s]), sk.shape))

    def blocks(self, names: Sequence[str]) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """(first flat index, {name: values}) per block of at most CHUNK_POINTS points, in flat order."""
        start = 0
        for s, sk in enumerate(self.skeletons):
            shape = sk.shape
            m = 0
            while m < len(shape) and math.prod(shape[m:]) > CHUNK_POINTS:
                m += 1
            for lead in itertools.product(*(range(n) for n in shape[:m])):
                log_p = _log_params(self.parts["P"][s].grid(shape, lead))
                out = {}
                for name in names:
                    p = self.parts[name][s]
                    out[name] = p.grid(shape, lead) + p.c * log_p if p.c else p.grid(shape, lead)
                yield start, out
                start += len(log_p)

    def check(self, scalar: dict[str, Callable[[Arch], float]], points: Sequence[Arch]) -> str | None:
        """None when every table value equals the scalar callable's on `points`; else why not (one line)."""
        for arch in points:
            s, index = self.locate(arch)
            for name, fn in scalar.items():
                want, got = float(fn(arch)), self.value(name, s, index)
                if not (abs(got - want) <= TOLERANCE * max(1.0, abs(want))):  # NaN fails too
                    return f"{name} of {arch.code}: tables give {got!r}, the predictor {want!r}"
        return None


def _corner(sk: Skeleton, p_parts: Parts) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], float] | None:
    """Two one-group moves from the base whose corner shows log10(P) least additive: (m1, m2, corner, ddL).

    Groups are what add up independently: (stem, depth1), each later stage's depth, the head. The
    larger |ddL|, the better c is determined (c = the quantity's second difference / ddL)."""
    k = len(sk.depths)
    base = [0] * (k + 2)
    groups, indices, deltas = [], [], []
    for s, a in itertools.product(range(sk.shape[0]), range(sk.shape[1])):
        if (s, a) != (0, 0):
            groups.append(0)
            indices.append(tuple([s, a] + base[2:]))
            deltas.append(float(p_parts.pair[s, a] - p_parts.pair[0, 0]))
    for g, table in enumerate(list(p_parts.stages) + [p_parts.head], start=1):
        for j in range(1, len(table)):
            idx = list(base)
            idx[g + 1] = j
            groups.append(g)
            indices.append(tuple(idx))
            deltas.append(float(table[j]))
    if len(set(groups)) < 2:
        return None
    g, d, p0 = np.array(groups), np.array(deltas), float(p_parts.pair[0, 0])
    i, j = np.triu_indices(len(g), k=1)
    keep = g[i] != g[j]
    i, j = i[keep], j[keep]
    ddl = _log_params(p0 + d[i] + d[j]) - _log_params(p0 + d[i]) - _log_params(p0 + d[j]) + _log_params(p0)
    best = int(np.argmax(np.abs(ddl)))
    if not abs(ddl[best]) > 1e-12:
        return None
    m1, m2 = indices[i[best]], indices[j[best]]
    corner = tuple(max(x, y) for x, y in zip(m1, m2))  # the two moves touch disjoint axes
    return m1, m2, corner, float(ddl[best])


def build_tables(space: SearchSpace, quantities: dict[str, Callable[[Arch], float]], *,
                 params_at_predictor_size: Callable[[Arch], float], nonlinear: Sequence[str] = ()) -> Tables:
    """Probe every skeleton of `space`. `nonlinear` names the quantities that get a c * log10(P) term."""
    sks = skeletons(space)
    parts: dict[str, list[Parts]] = {name: [] for name in ("P", *quantities)}
    probes = 0
    for sk in sks:
        points = [sk.arch(i) for i in probe_indices(sk)]
        probes += len(points)
        p_parts = Parts.from_probes(sk, np.array([float(params_at_predictor_size(a)) for a in points]))
        parts["P"].append(p_parts)
        corner = _corner(sk, p_parts) if nonlinear else None
        probes += corner is not None
        log_p = _log_params(np.array([p_parts.additive_at(i) for i in probe_indices(sk)]))
        for name, fn in quantities.items():
            values = np.array([float(fn(a)) for a in points])
            c = 0.0
            if name in nonlinear and corner is not None:
                m1, m2, cx, ddl = corner
                at = dict(zip(probe_indices(sk), values))
                c = (float(fn(sk.arch(cx))) - at[m1] - at[m2] + at[tuple([0] * len(sk.shape))]) / ddl
            parts[name].append(Parts.from_probes(sk, values - c * log_p if c else values, c))
    return Tables(space, tuple(sks), {k: tuple(v) for k, v in parts.items()}, probes)


def check_points(space: SearchSpace, published: Sequence[Arch], *, n: int = CHECK_POINTS, seed: int = 0) -> list[Arch]:
    """Random points of the whole space plus the published ones: what `Tables.check` compares."""
    picked = space.sample_many(min(n, space.size), seed=seed) if space.size else []
    rng = random.Random(seed)
    rng.shuffle(picked)
    return list(dict.fromkeys(list(published) + picked))
