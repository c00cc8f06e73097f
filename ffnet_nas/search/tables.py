"""Tables from a finished study: the Pareto set, the published variants it dominates, the closest
points to an unmeetable target, and the top-K hand-off to full evaluation.

"Nearest published variant" is the published point of the space with the smallest *normalised
encoding distance*: the mean over the arch's dimensions of a per-dimension distance, where stem,
block, heads, upsampling, pre_down and first stride count 0 (same) or 1 (different), and each
stage's depth and width count |index difference| / (number of choices - 1) in the space's ordered
choices (1 for every stage slot when the stage counts differ). 0 = the same point, 1 = different in
every dimension. Ties go to the published point with the closer predicted latency.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ffnet_nas.stats import dominates, pareto_mask
from ffnet_nas.search.targets import Target
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.searchspace import SearchSpace

_CATEGORICAL = ("stem", "block", "up_head", "seg_head", "upsample", "pre_down", "first_stride")


def encoding_distance(space: SearchSpace, a: Arch, b: Arch) -> float:
    n_slots = max(o.num_stages for o in space.stage_options)
    total = sum(getattr(a, f) != getattr(b, f) for f in _CATEGORICAL)
    if a.num_stages != b.num_stages:
        total += 2 * n_slots
    else:
        opts = space._options(a.num_stages)
        for i in range(a.num_stages):
            for choices, x, y in ((opts.depths[i], a.depths[i], b.depths[i]), (opts.widths[i], a.widths[i], b.widths[i])):
                if len(choices) > 1 and x in choices and y in choices:
                    total += abs(choices.index(x) - choices.index(y)) / (len(choices) - 1)
                else:
                    total += float(x != y)
    return total / (len(_CATEGORICAL) + 2 * n_slots)


def nearest_published(space: SearchSpace, arch: Arch, latency: float, published: dict[str, dict[str, Any]]) -> tuple[str, float]:
    best = min(published.items(), key=lambda kv: (round(encoding_distance(space, arch, kv[1]["arch"]), 9),
                                                  abs(kv[1]["latency_ms"] - latency)))
    return best[0], encoding_distance(space, arch, best[1]["arch"])


def trial_rows(trials: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per distinct arch (its first COMPLETE trial), from FrozenTrials."""
    rows: dict[str, dict[str, Any]] = {}
    for t in trials:
        code = t.user_attrs.get("code")
        if code is None or code in rows or t.values is None:
            continue
        v = list(t.constraints.values())  # relative violations, one per target (<= 0: met)
        rows[code] = {"trial": t.number, "code": code, "miou": t.values[0], "latency_ms": t.values[1],
                      "params": t.user_attrs.get("params"), "macs": t.user_attrs.get("macs"),
                      "violation": float(sum(max(0.0, x) for x in v)), "feasible": all(x <= 0 for x in v),
                      "published": t.user_attrs.get("published")}
    return list(rows.values())


def fill_complexity(rows: list[dict[str, Any]], complexity_of: Callable[[Arch], tuple[int, int]]) -> None:
    for r in rows:
        if r["params"] is None or r["macs"] is None:
            r["params"], r["macs"] = complexity_of(Arch.parse(r["code"]))


def pareto_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    feasible = [r for r in rows if r["feasible"]]
    if not feasible:
        return []
    mask = pareto_mask([(r["latency_ms"], r["miou"]) for r in feasible])
    front = [r for r, m in zip(feasible, mask) if m]
    return sorted(front, key=lambda r: (r["latency_ms"], -r["miou"]))


def annotate_front(space: SearchSpace, front: list[dict[str, Any]], published: dict[str, dict[str, Any]]) -> None:
    """Add nearest published variant, its distance, and the published variants each point dominates."""
    for r in front:
        arch = Arch.parse(r["code"])
        r["nearest_published"], r["nearest_distance"] = nearest_published(space, arch, r["latency_ms"], published) if published else ("", float("nan"))
        p = (r["latency_ms"], r["miou"])
        r["dominates"] = ";".join(n for n, q in published.items() if dominates(p, (q["latency_ms"], q["miou"])))


PUBLISHED_COLUMNS = ("name", "code", "miou", "latency_ms", "meets_target", "dominated_by", "faster_by_pct",
                     "faster_point", "miou_gain", "more_accurate_point")


def published_rows(front: list[dict[str, Any]], published: dict[str, dict[str, Any]], targets: tuple[Target, ...]) -> list[dict[str, Any]]:
    """Each published variant: its predictions and by how much the front beats it (if it does).

    `faster_by_pct`: latency saved by the fastest front point at least as accurate;
    `miou_gain`: mIoU gained by the most accurate front point at most as slow.
    """
    out = []
    for name, q in published.items():
        lat, acc = q["latency_ms"], q["miou"]
        doms = [r for r in front if dominates((r["latency_ms"], r["miou"]), (lat, acc))]
        as_good = [r for r in doms if r["miou"] >= acc]
        as_fast = [r for r in doms if r["latency_ms"] <= lat]
        fastest = min(as_good, key=lambda r: r["latency_ms"]) if as_good else None
        richest = max(as_fast, key=lambda r: r["miou"]) if as_fast else None
        out.append({
            "name": name, "code": q["arch"].code, "miou": acc, "latency_ms": lat,
            "meets_target": all(t.met({"latency": lat, "miou": acc, "params": q.get("params", np.nan),
                                       "macs": q.get("macs", np.nan)}[t.metric]) for t in targets),
            "dominated_by": len(doms),
            "faster_by_pct": 100.0 * (1 - fastest["latency_ms"] / lat) if fastest else 0.0,
            "faster_point": fastest["code"] if fastest else "",
            "miou_gain": richest["miou"] - acc if richest else 0.0,
            "more_accurate_point": richest["code"] if richest else "",
        })
    return sorted(out, key=lambda r: r["latency_ms"])


def closest_rows(rows: list[dict[str, Any]], k: int = 5) -> list[dict[str, Any]]:
    """The points with the smallest total relative violation (for a target nothing met)."""
    return sorted(rows, key=lambda r: (r["violation"], -r["miou"]))[:k]


def best_row(front: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The highest predicted mIoU among feasible points (ties: the faster)."""
    return max(front, key=lambda r: (r["miou"], -r["latency_ms"])) if front else None


def top_k(rows: list[dict[str, Any]], front: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The K points handed to full evaluation: front points by mIoU, then other feasible points by mIoU."""
    on_front = {r["code"] for r in front}
    ranked = sorted(front, key=lambda r: -r["miou"]) + sorted(
        (r for r in rows if r["feasible"] and r["code"] not in on_front), key=lambda r: -r["miou"])
    return ranked[:k]
