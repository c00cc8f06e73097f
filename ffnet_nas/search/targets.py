"""The target grammar: `latency<25ms,params<10M,macs<50G,miou>75`.

    targets := target ("," target)*
    target  := METRIC OP NUMBER [UNIT]
    METRIC  := latency | params | macs | miou          (case-insensitive)
    OP      := < | <= | > | >=
    UNIT    := latency: us|ms|s (required)   params: K|M|G (optional)
               macs: M|G|T (optional)          miou: % (optional)

A target becomes one Optuna constraint. Its value is the *relative* violation
((value - bound) / bound for an upper bound), so several targets with different units add up
to a comparable total: Optuna's constrained domination ranks infeasible trials by that sum,
and the "closest points" to an unmeetable target are the ones with the smallest sum.
"""

from __future__ import annotations

import math

import re
from dataclasses import dataclass
from typing import Mapping

from ffnet_nas.space.errors import InvalidInput, closest

GRAMMAR = ("accepted: METRIC OP NUMBER[UNIT], comma-separated, e.g. 'latency<25ms,params<10M,macs<50G,miou>75' "
           "(metrics latency/params/macs/miou; ops < <= > >=; units latency us/ms/s, params K/M/G, macs M/G/T)")

# metric -> (unit -> multiplier to the base unit, whether a unit is required, base unit label)
_UNITS: dict[str, tuple[dict[str, float], bool, str]] = {
    "latency": ({"us": 1e-3, "ms": 1.0, "s": 1e3}, True, "ms"),
    "params": ({"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}, False, ""),
    "macs": ({"": 1.0, "m": 1e6, "g": 1e9, "t": 1e12}, False, ""),
    "miou": ({"": 1.0, "%": 1.0}, False, "%"),
}
METRICS = tuple(_UNITS)
# A strict bound met with equality must still count as violated (Optuna: <= 0 is feasible).
_STRICT_EPS = 1e-12

_METRIC_RE = re.compile(r"[A-Za-z_]+")
_OP_RE = re.compile(r"<=|>=|<|>")
_NUMBER_RE = re.compile(r"[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?")
_UNIT_RE = re.compile(r"[A-Za-z%]*")


@dataclass(frozen=True)
class Target:
    metric: str  # latency | params | macs | miou
    op: str  # < | <= | > | >=
    bound: float  # in base units: ms, count, count, percent
    text: str  # as the user wrote it (stripped)

    @property
    def upper(self) -> bool:
        return self.op in ("<", "<=")

    def violation(self, value: float) -> float:
        """Relative violation: <= 0 when `value` meets the target, else how far off (0.1 = 10%)."""
        scale = abs(self.bound) or 1.0
        v = (value - self.bound) / scale if self.upper else (self.bound - value) / scale
        if v == 0 and self.op in ("<", ">"):
            return _STRICT_EPS
        return v

    def violations(self, values):
        """`violation` over a numpy array (the same arithmetic, for the exhaustive search)."""
        import numpy as np

        scale = abs(self.bound) or 1.0
        v = (values - self.bound) / scale if self.upper else (self.bound - values) / scale
        if self.op in ("<", ">"):
            v = np.where(v == 0, _STRICT_EPS, v)
        return v

    def met(self, value: float) -> bool:
        return self.violation(value) <= 0

    def __str__(self) -> str:
        return self.text


def _fail(text: str, pos: int, expected: str) -> None:
    shown = text[:pos] + "\u2038" + text[pos:]  # a caret mark at the failing position, one line
    raise InvalidInput(f"malformed target {text!r} at character {pos + 1} ({shown!r}): expected {expected}; {GRAMMAR}")


def _parse_one(whole: str, start: int, end: int) -> Target:
    """Parse whole[start:end] (one comma-separated item); positions in errors refer to `whole`."""
    pos = start
    while pos < end and whole[pos].isspace():
        pos += 1
    m = _METRIC_RE.match(whole, pos, end)
    if not m:
        _fail(whole, pos, f"a metric ({'/'.join(METRICS)})")
    metric = m.group().lower()
    if metric not in _UNITS:
        _fail(whole, pos, f"a metric ({'/'.join(METRICS)}), not {m.group()!r}{closest(metric, METRICS)}")
    pos = m.end()
    while pos < end and whole[pos].isspace():
        pos += 1
    m = _OP_RE.match(whole, pos, end)
    if not m:
        _fail(whole, pos, "a comparison < <= > >=")
    op, pos = m.group(), m.end()
    while pos < end and whole[pos].isspace():
        pos += 1
    m = _NUMBER_RE.match(whole, pos, end)
    if not m:
        _fail(whole, pos, "a non-negative number")
    number, pos = float(m.group()), m.end()
    if not math.isfinite(number):
        _fail(whole, pos, "a finite number")
    units, required, _ = _UNITS[metric]
    m = _UNIT_RE.match(whole, pos, end)
    unit = m.group() if m else ""
    allowed = "/".join(u for u in units if u) + ("" if required else " or none")
    if unit.lower() not in units or (required and not unit):
        _fail(whole, pos, f"a unit for {metric}: {allowed}")
    pos += len(unit)
    while pos < end and whole[pos].isspace():
        pos += 1
    if pos != end:
        _fail(whole, pos, "',' or the end after a target")
    bound = number * units[unit.lower()]
    if metric == "miou" and bound > 100:
        _fail(whole, start, f"a mIoU bound in 0..100 (got {number:g})")
    return Target(metric, op, bound, whole[start:end].strip())


def parse_targets(text: "str | None") -> tuple[Target, ...]:
    """'latency<25ms,params<10M' -> Targets; None or '' means no target (the whole front)."""
    if text is None or not str(text).strip():
        return ()
    text = str(text)
    out: list[Target] = []
    start = 0
    for part in text.split(","):
        end = start + len(part)
        if not part.strip():
            _fail(text, start, "a target between commas")
        out.append(_parse_one(text, start, end))
        start = end + 1
    metrics = [t.metric + ("<" if t.upper else ">") for t in out]
    dup = next((m for m in metrics if metrics.count(m) > 1), None)
    if dup:
        raise InvalidInput(f"target {text!r} bounds {dup[:-1]} twice in the same direction: expected at most one upper and one lower bound per metric")
    return tuple(out)


def canonical(targets: tuple[Target, ...]) -> str:
    """A stable spelling (base units) used to recognise a study's targets when it is resumed."""
    return ",".join(f"{t.metric}{t.op}{t.bound:.6g}{_UNITS[t.metric][2]}" for t in targets)


def violations(targets: tuple[Target, ...], values: Mapping[str, float]) -> list[float]:
    """One relative violation per target, in order (Optuna's constraints: <= 0 is feasible)."""
    return [t.violation(values[t.metric]) for t in targets]
