"""`SearchSpace`: the domain of every dimension, sampling, membership and an Optuna encoding.

Built-in spaces are derived from the published catalogue (the union, per dimension, of the
published variants of a family), so each one contains every published point of its family
by construction, and mirrors the paper's Fig. 3 (gpu_large), Fig. 5 (gpu_small) and Fig. 6
(mobile). `all` is their union. `mobile_peers` is the mobile space plus the peer designs the
FFNet paper argues against (the up-heads FAM, FAM2, JPU and the block `metamixer`: `space.peers`),
so a search can pick them where they win on the device. `peers_paper` holds the peers' paper-shaped
reference points that no other built-in space contains (SFNet-R18/R50, SFNet-Lite-R18, FastFCN-R50:
`space.peers`): it exists so `measure-latency` can add their units to a table and the report can
place them (it is not meant to be searched or distilled). User spaces come from YAML (see `from_yaml`).

Depth and width choices are per stage and per stage count: a 3-stage point's first stage is
not a 4-stage point's first stage. The Optuna encoding therefore keeps separate parameters
for the 3- and 4-stage slots; every parameter is present in every trial (NSGA-II needs that)
and only the slots of the chosen stage count are read.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from ffnet_nas.space.arch import (
    BLOCK_TYPES,
    PEER_BLOCK_TYPES,
    PEER_UP_HEADS,
    SEG_HEADS,
    STEMS,
    UP_HEADS,
    UPSAMPLE_MODES,
    Arch,
)
from ffnet_nas.space.errors import InvalidInput, closest

FAMILIES = ("gpu_large", "gpu_small", "mobile")
# built-in spaces that are a family plus the peer designs (the family's published FFNets stay members)
WITH_PEERS = {"mobile_peers": "mobile"}
# built-in spaces made of peer reference points only (no FFNet is a member): the union of the catalogue's
# peer points outside every other built-in space, so each of them has its latency units somewhere
PEER_SPACES = ("peers_paper",)
BUILTIN = FAMILIES + ("all",) + tuple(WITH_PEERS) + PEER_SPACES
# The paper's resolution of the tensor that enters the stem (pre_down points take 2x that).
PAPER_INPUT_HW = {"gpu_large": (1024, 2048), "gpu_small": (1024, 2048), "mobile": (512, 1024), "all": (1024, 2048),
                  "mobile_peers": (512, 1024), "peers_paper": (1024, 2048)}


@dataclass(frozen=True)
class StageOptions:
    """Choices for the backbones with `num_stages` stages: one tuple of choices per stage."""

    num_stages: int
    depths: tuple[tuple[int, ...], ...]
    widths: tuple[tuple[int, ...], ...]

    def size(self) -> int:
        return math.prod(len(c) for c in self.depths + self.widths)


@dataclass(frozen=True)
class SearchSpace:
    name: str
    stems: tuple[str, ...]
    blocks: tuple[str, ...]
    stage_options: tuple[StageOptions, ...]
    first_strides: tuple[int, ...]  # for 4-stage backbones; 3-stage ones always use 2
    up_heads: tuple[str, ...]
    seg_heads: tuple[str, ...]
    upsamples: tuple[str, ...]
    pre_downs: tuple[bool, ...]
    input_hw: tuple[int, int]  # the tensor entering the stem; a pre_down point takes 2x

    def __post_init__(self) -> None:
        _check_domains(self)

    # ---- size and membership ------------------------------------------------------------------
    def _common(self) -> int:
        return len(self.stems) * len(self.blocks) * len(self.up_heads) * len(self.seg_heads) * len(self.upsamples) * len(self.pre_downs)

    def _size_of(self, opts: StageOptions) -> int:
        strides = len(self.first_strides) if opts.num_stages == 4 else 1
        return self._common() * opts.size() * strides

    @property
    def size(self) -> int:
        return sum(self._size_of(o) for o in self.stage_options)

    def why_not(self, arch: Arch) -> list[str]:
        """Reasons `arch` is outside the space (empty when it is a member)."""
        reasons = []
        for field, value, domain in (
            ("stem", arch.stem, self.stems),
            ("block", arch.block, self.blocks),
            ("up_head", arch.up_head, self.up_heads),
            ("seg_head", arch.seg_head, self.seg_heads),
            ("upsample", arch.upsample, self.upsamples),
            ("pre_down", arch.pre_down, self.pre_downs),
        ):
            if value not in domain:
                reasons.append(f"{field}={value!r} not in {list(domain)}")
        opts = self._options(arch.num_stages)
        if opts is None:
            reasons.append(f"{arch.num_stages}-stage backbones not in this space")
            return reasons
        if arch.num_stages == 4 and arch.first_stride not in self.first_strides:
            reasons.append(f"first_stride={arch.first_stride} not in {list(self.first_strides)}")
        for i, (d, w) in enumerate(zip(arch.depths, arch.widths)):
            if d not in opts.depths[i]:
                reasons.append(f"depths[{i}]={d} not in {list(opts.depths[i])}")
            if w not in opts.widths[i]:
                reasons.append(f"widths[{i}]={w} not in {list(opts.widths[i])}")
        return reasons

    def __contains__(self, arch: object) -> bool:
        return isinstance(arch, Arch) and not self.why_not(arch)

    def _options(self, num_stages: int) -> StageOptions | None:
        return next((o for o in self.stage_options if o.num_stages == num_stages), None)

    def network_input_hw(self, arch: Arch) -> tuple[int, int]:
        return (self.input_hw[0] * arch.input_scale, self.input_hw[1] * arch.input_scale)

    # ---- sampling -----------------------------------------------------------------------------
    def sample(self, rng: random.Random | int | None = None) -> Arch:
        """One point drawn uniformly from the whole space."""
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        weights = [self._size_of(o) for o in self.stage_options]
        opts = rng.choices(self.stage_options, weights=weights)[0]
        return Arch(
            stem=rng.choice(self.stems),
            block=rng.choice(self.blocks),
            depths=tuple(rng.choice(c) for c in opts.depths),
            widths=tuple(rng.choice(c) for c in opts.widths),
            first_stride=rng.choice(self.first_strides) if opts.num_stages == 4 else 2,
            up_head=rng.choice(self.up_heads),
            seg_head=rng.choice(self.seg_heads),
            upsample=rng.choice(self.upsamples),
            pre_down=rng.choice(self.pre_downs),
        )

    def sample_many(self, n: int, *, seed: int = 0, unique: bool = True) -> list[Arch]:
        rng = random.Random(seed)
        n = min(n, self.size) if unique else n
        out: list[Arch] = []
        seen: set[Arch] = set()
        while len(out) < n:
            a = self.sample(rng)
            if unique and a in seen:
                continue
            seen.add(a)
            out.append(a)
        return out

    # ---- Optuna encoding ------------------------------------------------------------------------
    def distributions(self) -> dict[str, tuple[Any, ...]]:
        """Fixed-length categorical encoding: parameter name -> choices. Same keys for every point."""
        d: dict[str, tuple[Any, ...]] = {
            "num_stages": tuple(o.num_stages for o in self.stage_options),
            "stem": self.stems,
            "block": self.blocks,
        }
        for o in self.stage_options:
            for i in range(o.num_stages):
                d[f"{o.num_stages}stage.depth{i + 1}"] = o.depths[i]
                d[f"{o.num_stages}stage.width{i + 1}"] = o.widths[i]
        d.update(first_stride=self.first_strides, up_head=self.up_heads, seg_head=self.seg_heads,
                 upsample=self.upsamples, pre_down=self.pre_downs)
        return d

    def encode(self, arch: Arch) -> dict[str, Any]:
        """Parameters for `arch`; slots of the other stage count get their first choice."""
        if arch not in self:
            raise InvalidInput(f"{arch.code} is not in space {self.name!r}: {'; '.join(self.why_not(arch))}")
        params = {k: v[0] for k, v in self.distributions().items()}
        params.update(num_stages=arch.num_stages, stem=arch.stem, block=arch.block, up_head=arch.up_head,
                      seg_head=arch.seg_head, upsample=arch.upsample, pre_down=arch.pre_down)
        if arch.num_stages == 4:
            params["first_stride"] = arch.first_stride
        for i, (d, w) in enumerate(zip(arch.depths, arch.widths)):
            params[f"{arch.num_stages}stage.depth{i + 1}"] = d
            params[f"{arch.num_stages}stage.width{i + 1}"] = w
        return params

    def decode(self, params: Mapping[str, Any]) -> Arch:
        n = params["num_stages"]
        return Arch(
            stem=params["stem"],
            block=params["block"],
            depths=tuple(params[f"{n}stage.depth{i + 1}"] for i in range(n)),
            widths=tuple(params[f"{n}stage.width{i + 1}"] for i in range(n)),
            first_stride=params["first_stride"] if n == 4 else 2,
            up_head=params["up_head"],
            seg_head=params["seg_head"],
            upsample=params["upsample"],
            pre_down=params["pre_down"],
        )

    def __iter__(self) -> Iterator[Arch]:
        """Every point (use only on small spaces: see `size`)."""
        import itertools

        for o in self.stage_options:
            strides = self.first_strides if o.num_stages == 4 else (2,)
            for stem, block, *rest in itertools.product(
                self.stems, self.blocks, itertools.product(*o.depths), itertools.product(*o.widths),
                strides, self.up_heads, self.seg_heads, self.upsamples, self.pre_downs,
            ):
                depths, widths, fs, up, seg, ups, pd = rest
                yield Arch(stem, block, depths, widths, fs, up, seg, ups, pd)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stems": list(self.stems),
            "blocks": list(self.blocks),
            "stages": {o.num_stages: {"depths": [list(c) for c in o.depths], "widths": [list(c) for c in o.widths]}
                       for o in self.stage_options},
            "first_strides": list(self.first_strides),
            "up_heads": list(self.up_heads),
            "seg_heads": list(self.seg_heads),
            "upsamples": list(self.upsamples),
            "pre_downs": list(self.pre_downs),
            "input_size": f"{self.input_hw[0]}x{self.input_hw[1]}",
        }


def _check_domains(s: SearchSpace) -> None:
    def check(field: str, values: tuple, allowed: tuple) -> None:
        if not values:
            raise InvalidInput(f"space {s.name!r}: {field} is empty; expected at least one of {list(allowed)}")
        for v in values:
            if v not in allowed or (isinstance(v, bool) != isinstance(allowed[0], bool)):
                raise InvalidInput(f"space {s.name!r}: {field} has {v!r}; expected values from {list(allowed)}")
        once(field, values)

    def once(field: str, values: tuple) -> None:
        # a repeated value would count its points twice: the size, and sampling "without
        # replacement" from it, would be wrong (sampling more distinct points than exist never ends)
        repeated = [v for i, v in enumerate(values) if v in values[:i]]
        if repeated:
            raise InvalidInput(f"space {s.name!r}: {field} repeats {repeated[0]!r}; expected each value once")

    check("stems", s.stems, STEMS)
    check("blocks", s.blocks, BLOCK_TYPES)
    check("first_strides", s.first_strides, (1, 2))
    check("up_heads", s.up_heads, UP_HEADS)
    check("seg_heads", s.seg_heads, SEG_HEADS)
    check("upsamples", s.upsamples, UPSAMPLE_MODES)
    check("pre_downs", s.pre_downs, (False, True))
    if not s.stage_options:
        raise InvalidInput(f"space {s.name!r}: no stage options; expected 'stages' with 3 and/or 4")
    for o in s.stage_options:
        if o.num_stages not in (3, 4) or len(o.depths) != o.num_stages or len(o.widths) != o.num_stages:
            raise InvalidInput(f"space {s.name!r}: stages {o.num_stages} needs {o.num_stages} depth lists and "
                               f"{o.num_stages} width lists; got {len(o.depths)} and {len(o.widths)}")
        for i in range(o.num_stages):
            for kind, choices in (("depths", o.depths[i]), ("widths", o.widths[i])):
                if not choices:
                    raise InvalidInput(f"space {s.name!r}: stages {o.num_stages} {kind}[{i}] is empty; "
                                       "expected at least one value")
                once(f"stages {o.num_stages} {kind}[{i}]", choices)
        # Arch validates ranges: the smallest and largest point of each option surface bad values.
        for pick in (min, max):
            Arch(s.stems[0], s.blocks[0], tuple(pick(c) for c in o.depths), tuple(pick(c) for c in o.widths),
                 2 if o.num_stages == 3 else s.first_strides[0], s.up_heads[0], s.seg_heads[0], s.upsamples[0],
                 s.pre_downs[0])


def _union(values) -> tuple:
    return tuple(sorted(set(values), key=lambda v: (str(type(v)), v)))


@functools.cache
def builtin_space(name: str) -> SearchSpace:
    from ffnet_nas.space.catalogue import variants

    if name not in BUILTIN:
        raise InvalidInput(f"unknown space {name!r}: expected one of {', '.join(BUILTIN)} or a YAML file{closest(name, BUILTIN)}")
    if name in WITH_PEERS:
        base = builtin_space(WITH_PEERS[name])
        return dataclasses.replace(base, name=name, blocks=base.blocks + PEER_BLOCK_TYPES,
                                   up_heads=base.up_heads + PEER_UP_HEADS)
    if name in PEER_SPACES:
        members = list(_peers_outside_other_spaces())
    else:
        members = [v.arch for v in variants(task="segmentation", family=None if name == "all" else name)]
    options = []
    for n in (3, 4):
        arches = [a for a in members if a.num_stages == n]
        if arches:
            options.append(StageOptions(
                n,
                tuple(_union(a.depths[i] for a in arches) for i in range(n)),
                tuple(_union(a.widths[i] for a in arches) for i in range(n)),
            ))
    return SearchSpace(
        name=name,
        stems=_union(a.stem for a in members),
        blocks=_union(a.block for a in members),
        stage_options=tuple(options),
        first_strides=_union(a.first_stride for a in members if a.num_stages == 4),
        up_heads=_union(a.up_head for a in members),
        seg_heads=_union(a.seg_head for a in members),
        upsamples=_union(a.upsample for a in members),
        pre_downs=_union(a.pre_down for a in members),
        input_hw=PAPER_INPUT_HW[name],
    )


def _peers_outside_other_spaces() -> tuple[Arch, ...]:
    """The peer reference points no family or family-plus-peers space holds (their papers' shapes)."""
    from ffnet_nas.space.peers import peer_points

    others = [builtin_space(n) for n in FAMILIES + ("all",) + tuple(WITH_PEERS)]
    return tuple(p.arch for p in peer_points() if not any(p.arch in s for s in others))


_YAML_KEYS = {"name", "base", "stems", "blocks", "stages", "first_strides", "up_heads", "seg_heads", "upsamples", "pre_downs", "input_size"}


def from_dict(data: Mapping[str, Any], *, default_name: str = "custom") -> SearchSpace:
    """A space from a mapping like `SearchSpace.to_dict()`; `base: mobile` fills missing fields."""
    from ffnet_nas.space.complexity import parse_hw

    if not isinstance(data, Mapping):
        raise InvalidInput(f"a space file must hold a mapping of fields ({', '.join(sorted(_YAML_KEYS))}); got {type(data).__name__}")
    unknown = set(data) - _YAML_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise InvalidInput(f"unknown space field {key!r}: expected one of {', '.join(sorted(_YAML_KEYS))}{closest(key, _YAML_KEYS)}")
    merged = builtin_space(data["base"]).to_dict() if "base" in data else {}
    merged.update({k: v for k, v in data.items() if k != "base"})
    merged["name"] = data.get("name", default_name)  # a derived space is not the base space
    missing = [k for k in ("stems", "blocks", "stages", "up_heads", "seg_heads", "upsamples", "input_size") if k not in merged]
    if missing:
        raise InvalidInput(f"space {merged['name']!r} is missing {', '.join(missing)} (or give 'base: {'|'.join(BUILTIN)}')")
    name = str(merged["name"])
    try:
        stages = tuple(
            StageOptions(_integer(name, "stages", int(n) if isinstance(n, str) and n.isdigit() else n), tuple(tuple(_integer(name, f"stages {n} depths", x) for x in c)
                                                            for c in spec["depths"]),
                         tuple(tuple(_integer(name, f"stages {n} widths", x) for x in c) for c in spec["widths"]))
            for n, spec in sorted(merged["stages"].items(), key=lambda kv: str(kv[0]))
        )
        return SearchSpace(
            name=str(merged["name"]),
            stems=_values(name, "stems", merged["stems"]),
            blocks=_values(name, "blocks", merged["blocks"]),
            stage_options=stages,
            first_strides=tuple(_integer(name, "first_strides", x)
                                for x in _values(name, "first_strides", merged.get("first_strides", (1,)))),
            up_heads=_values(name, "up_heads", merged["up_heads"]),
            seg_heads=_values(name, "seg_heads", merged["seg_heads"]),
            upsamples=_values(name, "upsamples", merged["upsamples"]),
            pre_downs=_values(name, "pre_downs", merged.get("pre_downs", (False,))),  # booleans, never coerced
            input_hw=parse_hw(merged["input_size"]),
        )
    except (KeyError, TypeError, AttributeError) as e:
        raise InvalidInput(f"space {merged['name']!r}: malformed 'stages' ({e}); expected "
                           "stages: {4: {depths: [[..], [..], [..], [..]], widths: [[..], ..]}}") from None


def _values(space: str, field: str, value: Any) -> tuple:
    """A list field of a space file as a tuple; a scalar or a mapping is refused, not iterated."""
    if not isinstance(value, (list, tuple)):
        raise InvalidInput(f"space {space!r}: {field} is {value!r} ({type(value).__name__}); expected a list, "
                           f"e.g. {field}: [{', '.join(map(str, EXAMPLES.get(field, ('...',))))}]")
    return tuple(value)


EXAMPLES = {"stems": STEMS, "blocks": BLOCK_TYPES, "up_heads": UP_HEADS, "seg_heads": SEG_HEADS,
            "upsamples": UPSAMPLE_MODES, "pre_downs": ("false", "true"), "first_strides": (1, 2)}


def _integer(space: str, field: str, value: Any) -> int:
    """A whole number from a space file; a string, float or boolean is refused, not coerced."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"space {space!r}: {field} has {value!r} ({type(value).__name__}); expected whole numbers")
    return value


def from_yaml(path: str | Path) -> SearchSpace:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"space file {str(path)!r} not found: expected a built-in name ({', '.join(BUILTIN)}) or a YAML file")
    try:
        data = yaml.safe_load(path.read_text())
    except UnicodeDecodeError as e:
        raise InvalidInput(f"space file {str(path)!r} is not text (byte {e.start} is not UTF-8): expected a YAML "
                           "space file as described in docs/space.md") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise InvalidInput(f"space file {str(path)!r} is not valid YAML{where}") from None
    return from_dict(data, default_name=path.stem)


def get_space(name_or_path: "str | Path | SearchSpace") -> SearchSpace:
    """A built-in name, a YAML path, or a SearchSpace."""
    if isinstance(name_or_path, SearchSpace):
        return name_or_path
    text = str(name_or_path)
    if text in BUILTIN:
        return builtin_space(text)
    if text.endswith((".yaml", ".yml")) or Path(text).exists():
        return from_yaml(text)
    raise InvalidInput(f"unknown space {text!r}: expected one of {', '.join(BUILTIN)} or a YAML file{closest(text, BUILTIN)}")


def get_search_space(name_or_path: "str | Path | SearchSpace") -> SearchSpace:
    """`get_space` for the steps that distil, fit, search or run over a space: every space but the
    reference-point ones (`PEER_SPACES`), which exist only so `measure-latency` can place them."""
    space = get_space(name_or_path)
    if space.name in PEER_SPACES:
        raise InvalidInput(f"space {space.name!r} holds the peers' paper-shaped reference points for "
                           "'measure-latency' only (to place them on the report); expected mobile_peers to distil "
                           "and search the peer designs")
    return space
