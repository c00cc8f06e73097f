"""The published variants within a run's latency target: the nearest one (the run's reference), the
ones the run measured, the most accurate of them, and whether the point it found is more accurate.

The reference is the published variant nearest the target (`nearest_published`: the slowest one
the table puts within it), which is what "beats the published variant" has always meant. It is not
the strongest: on the embedded data a `_pre_down` twin and its full-resolution sibling sit 0.4 ms
apart in the table and ~10 mIoU apart in accuracy, and the nearest is often the weaker. "Better
than every published FFNet at that budget" asks about all of them. The run already fine-tunes some
published variants (its predictor's design points); `rivals_to_measure` names the ones its
predictor rates most accurate within the target, so at most one more fine-tune (none when the run
measured it already) covers the likeliest rival; `compare` reads the answer from the workdir's
evaluated rows (pure).

"Within the target" uses the latency table's predictions, as the target and the reference do; the
rivals are compared on accuracy alone, since all of them fit the budget.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Sequence

from ffnet_nas.stats import finite_or_none


def latency_limit(targets: Sequence) -> float | None:
    """The latency bound of a run's targets (`search.targets.Target`s), None without one."""
    return next((t.bound for t in targets if t.metric == "latency" and t.upper), None)


def within_limit(published_ms: Mapping[str, float], limit_ms: float) -> dict[str, float]:
    """The published variants the table puts within the latency limit (pure)."""
    return {name: ms for name, ms in published_ms.items() if ms <= limit_ms}


def nearest_published(published_ms: Mapping[str, float], limit_ms: float) -> str | None:
    """The slowest published variant predicted within the latency limit (what a user picks today)."""
    under = within_limit(published_ms, limit_ms)
    pool = under or published_ms
    if not pool:
        return None
    return max(pool, key=pool.get) if under else min(pool, key=pool.get)


@dataclass(frozen=True)
class Rival:
    name: str
    code: str
    accuracy: float
    predicted_latency_ms: float


@dataclass(frozen=True)
class PublishedRivals:
    limit_ms: float
    within: int  # published variants of the space the table puts within the latency limit
    measured: tuple[str, ...]  # of those, the ones evaluated in this workdir (names)
    strongest: Rival | None  # the most accurate measured one
    margin: float | None  # the found point's accuracy minus the strongest's (None: no found point)
    beats: bool | None  # the found point is more accurate than every measured rival (a tie is not a win)
    found_ms: float | None = None  # the found point's latency by the table, beside the strongest's
    # both scored on the validation images no choice was made on (None: not scored, or none held out)
    held_out_found: float | None = None
    held_out_rival: float | None = None
    # both timed side by side after the verdict (evaluate.paired_latency; None: not timed)
    paired_found_ms: float | None = None
    paired_rival_ms: float | None = None
    paired_ratios: tuple[float, ...] = ()  # each round's rival / found (evaluate.PairedTiming; (): older summary)

    @classmethod
    def from_dict(cls, record: Mapping) -> "PublishedRivals":
        """From `dataclasses.asdict` (run_summary.json's `published_rivals`); keys it does not know
        (a newer version's) are left out."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in record.items() if k in names}
        values["measured"] = tuple(values.get("measured") or ())
        values["paired_ratios"] = tuple(values.get("paired_ratios") or ())
        if values.get("strongest") is not None:
            values["strongest"] = Rival(**{k: values["strongest"][k] for k in ("name", "code", "accuracy",
                                                                             "predicted_latency_ms")})
        return cls(**values)

    def text(self, *, unit: str = "mIoU", noise: float | None = None) -> str:
        """One closing line of the run."""
        if self.within == 0:
            return "published variants within the target: none, so there is no published rival to compare with"
        head = f"published variants within the target: {self.within}, {len(self.measured)} of them measured in this workdir"
        if self.strongest is None:
            return head + "; none measured, so the found point was compared with none of them"
        s = self.strongest
        line = f"{head}; the most accurate: {s.name}  {unit} {s.accuracy:.2f}  {s.predicted_latency_ms:.2f} ms (table)"
        if self.margin is None:
            return line + "; no found point to compare with it"
        line += f"; the found point is more accurate: {'yes' if self.beats else 'NO'} ({self.margin:+.2f})"
        if not self.beats and self.found_ms is not None and self.paired_found_ms is None:
            # less accurate than a published variant is still a trade-off while it is faster
            faster = "faster" if self.found_ms < s.predicted_latency_ms else "NOT faster"
            line += f", and it is {faster} ({self.found_ms:.2f} ms, table)"
        if self.paired_found_ms is not None and self.paired_rival_ms is not None:
            faster = "faster" if self.paired_found_ms < self.paired_rival_ms else "NOT faster"
            from ffnet_nas.evaluate import rounds_text

            rounds = rounds_text(self.paired_ratios)
            line += (f"; timed side by side {self.paired_found_ms:.2f} vs {self.paired_rival_ms:.2f} ms, {faster} "
                     f"({self.paired_rival_ms / self.paired_found_ms:.2f}x{'; ' + rounds if rounds else ''})")
        if self.held_out_found is not None and self.held_out_rival is not None:
            held = "more" if self.held_out_found > self.held_out_rival else "NOT more"
            line += f"; on the held-out images {self.held_out_found:.2f} vs {self.held_out_rival:.2f}, {held} accurate"
        if noise is not None:
            # the margin is one seed of each point: a margin inside one point's own seed spread says nothing
            larger = "larger" if abs(self.margin) > noise else "NOT larger"
            line += f"; the same point differed by up to {noise:.2f} between seeds: the margin is {larger} than that"
        return line


def rivals_to_measure(predicted: Sequence[Mapping], *, published_ms: Mapping[str, float], limit_ms: float,
                      k: int) -> list[str]:
    """Names of the `k` published variants within the limit that the predictor rates most accurate
    (`predicted`: rows with name and miou, as search/published.csv), ties to the faster (pure). The
    choice does not depend on what is measured already, so a resumed run picks the same ones and,
    finding them measured, fine-tunes nothing more."""
    within = within_limit(published_ms, limit_ms)
    rows = sorted((r for r in predicted if r["name"] in within), key=lambda r: (-float(r["miou"]), within[r["name"]]))
    return [r["name"] for r in rows[:k]]


def with_rivals(points: Sequence, *, predicted: Sequence[Mapping], published: Mapping, published_ms: Mapping[str, float],
                limit_ms: float | None, k: int) -> list:
    """`points` (Archs to evaluate) and then the `k` rivals (`rivals_to_measure`) not among them
    already, as Archs (`published`: name -> Arch); the evaluate step skips those it has measured (pure)."""
    if limit_ms is None or k == 0:
        return list(points)
    rivals = [published[n] for n in rivals_to_measure(predicted, published_ms=published_ms, limit_ms=limit_ms, k=k)]
    return [*points, *(a for a in rivals if a not in points)]


def strongest_rival(rows: Mapping[str, Mapping], *, published_codes: Mapping[str, str], published_ms: Mapping[str, float],
                    limit_ms: float | None, accuracy: str = "measured_miou", reference: str | None = None) -> str | None:
    """The name of the most accurate published variant within the limit measured in `rows`, or None
    (no limit, none measured, or it is the `reference` itself: beating that is the rule already) (pure)."""
    if limit_ms is None:
        return None
    found = compare(None, rows, published_codes=published_codes, published_ms=published_ms, limit_ms=limit_ms,
                    accuracy=accuracy).strongest
    return None if found is None or found.name == reference else found.name


def compare(best: Mapping | None, rows: Mapping[str, Mapping], *, published_codes: Mapping[str, str],
            published_ms: Mapping[str, float], limit_ms: float, accuracy: str = "measured_miou") -> PublishedRivals:
    """The published variants within the limit measured in the workdir (`rows`: its evaluated rows by
    code, whatever evaluated them) against the found point, on `accuracy` (pure). A row without a
    finite accuracy (an INT8 score not taken) is not measured. `published_codes`: name -> code."""
    within = within_limit(published_ms, limit_ms)
    measured = [(name, rows[published_codes[name]]) for name in sorted(within)
                if published_codes[name] in rows and finite_or_none(rows[published_codes[name]].get(accuracy)) is not None]
    if not measured:
        return PublishedRivals(limit_ms=limit_ms, within=len(within), measured=(), strongest=None, margin=None,
                               beats=None)
    name, row = max(measured, key=lambda nr: float(nr[1][accuracy]))
    strongest = Rival(name=name, code=row["code"], accuracy=float(row[accuracy]), predicted_latency_ms=float(within[name]))
    found = finite_or_none(best.get(accuracy)) if best is not None else None
    margin = found - strongest.accuracy if found is not None else None
    found_ms = finite_or_none(best.get("predicted_latency_ms")) if best is not None else None
    return PublishedRivals(limit_ms=limit_ms, within=len(within), measured=tuple(n for n, _ in measured),
                           strongest=strongest, margin=margin, beats=None if margin is None else margin > 0,
                           found_ms=found_ms)


__all__ = ["PublishedRivals", "Rival", "compare", "latency_limit", "nearest_published", "rivals_to_measure",
           "strongest_rival", "with_rivals", "within_limit"]
