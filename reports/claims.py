"""The paper's claims (Figs. 3/5/6), checked on this workdir's device and data (compute: `check_claims`).

Each claim compares two sides of one design choice (basic vs bottleneck blocks, 3 vs 4 stages,
narrower vs wider heads, output stride 4 vs 8, FFNet's heads vs fussier peers). The paper's
answer is computed from its own tables (`published.paper_points`): which side's best mIoU within a
latency is higher over most of the latencies both reach (`Comparison`). The same is done here, from what
this workdir measured (full evaluations: measured mIoU and latency) and, marked as such, from
predictions (the search's trials: LUT latency, predictor mIoU) when nothing was measured on one
side. A claim with no point on one side here says so instead of guessing, and so does one whose
sides were only measured on one side and only predicted on the other: a prediction set against a
measurement would compare the predictor's bias, not the designs.

The peers claim is the paper's "a plain design matches fussier ones": FFNet ahead or neither side
ahead both confirm it (`Claim.tie_holds`); only the peers leading at equal latency refutes it.

New claims are one `Claim` in `CLAIMS`: a name per side and a function that puts a point on a
side (or on neither).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ffnet_nas.reports.published import PAPER_FIGURES, paper_points
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.catalogue import get_variant
from ffnet_nas.space.errors import InvalidInput

FFNET_HEADS = ("A", "B", "C")  # the up-heads of the paper; any other is a peer's (SFNet, FastFCN, ...)
# Which published latency stands for each paper figure (the one its device is known by).
PAPER_LATENCY = {"gpu_large": "t2080ti_fp16_ms", "gpu_small": "t2080ti_fp16_ms", "mobile": "s21_dsp_int8_ms"}
PAPER_DEVICE = {"gpu_large": "RTX 2080Ti FP16", "gpu_small": "RTX 2080Ti FP16", "mobile": "Samsung S21 DSP INT8"}


@dataclass(frozen=True)
class Claim:
    key: str
    title: str
    sides: tuple[str, str]  # names of side "a" and side "b"
    side: Callable[[Arch], str | None]  # "a", "b" or None (the point takes no part)
    paper: str = ""  # for a claim the paper's tables cannot answer: what the paper argues ...
    paper_winner: str | None = None  # ... and for which side
    # the paper claims "no worse" (matches): neither side leading here confirms it as well
    tie_holds: bool = False


def _head_width(a: Arch) -> str | None:
    if a.up_head not in FFNET_HEADS:
        return None
    return "a" if a.seg_head == "C" else "b"


def _stride(a: Arch) -> str | None:
    return {4: "a", 8: "b"}.get(a.output_stride)


CLAIMS: tuple[Claim, ...] = (
    Claim("blocks", "Basic vs bottleneck blocks", ("basic blocks", "bottleneck blocks"),
          lambda a: {"basic": "a", "bottleneck": "b"}.get(a.block)),
    Claim("stages", "3- vs 4-stage backbones", ("3-stage backbones", "4-stage backbones"),
          lambda a: {3: "a", 4: "b"}.get(a.num_stages)),
    Claim("heads", "Narrower vs wider heads", ("narrower heads (seg head C)", "wider heads (seg head A/B)"), _head_width),
    Claim("stride", "Stride-4 vs stride-8 outputs", ("output stride 4", "output stride 8"), _stride),
    # The paper's tables hold no peer design: its side is the one the paper argues for. A peer is any
    # point that is not plain FFNet (Arch.is_ffnet: a peer head such as SFNet's or FastFCN's, or a
    # MetaMixer block).
    Claim("peers", "Fussier heads vs FFNet's", ("peer designs (SFNet/FastFCN heads, MetaMixer blocks)", "plain FFNet"),
          lambda a: "b" if a.is_ffnet else "a",
          paper="the paper argues FFNet's simple design matches fussier ones (its tables hold no peer)", paper_winner="b",
          tie_holds=True),
)
LEAD = 0.6  # a side "wins" where it is the more accurate over at least this share of the latency range


@dataclass(frozen=True)
class Comparison:
    """Two sides' best-accuracy-within-a-latency curves, compared where both exist.

    A side's curve at latency t is the highest mIoU among its points no slower than t. Over the
    latencies both sides reach (from the slower of the two fastest points to the slowest point),
    `lead` is the share of that range (log scale) where each side's curve is higher, and `gap` the
    mean difference a - b in mIoU points: the paper's "which line is on top" reading, in numbers.
    """

    source: str  # e.g. "paper Fig. 6 (Samsung S21 DSP INT8)", "measured here", "predicted here"
    n: tuple[int, int]  # points per side
    span_ms: tuple[float, float]
    lead: tuple[float, float]  # share of the span where side a / side b is more accurate
    gap: float  # mean mIoU(a) - mIoU(b) over the span
    best: tuple[tuple[float, float], tuple[float, float]]  # (mIoU, ms) of each side's most accurate point

    @property
    def winner(self) -> str | None:
        a, b = self.lead
        return "a" if a >= LEAD else "b" if b >= LEAD else None

    def sentence(self, sides: tuple[str, str]) -> str:
        lo, hi = self.span_ms
        lead = (f"{sides[0]} lead on {100 * self.lead[0]:.0f}% of it, {sides[1]} on {100 * self.lead[1]:.0f}% "
                f"(mean gap {self.gap:+.1f} mIoU points)")
        best = "; ".join(f"best {name}: {m:.1f}% at {ms:.1f} ms (n={n})"
                         for name, (m, ms), n in zip(sides, self.best, self.n))
        return f"{self.source}, over {lo:.1f}–{hi:.1f} ms: {lead}; {best}"


def compare_sides(points: pd.DataFrame, side: Callable[[Arch], str | None], *, source: str) -> Comparison | None:
    """`points`: code, latency_ms, miou. None when one side has no point (nothing to compare)."""
    sides = []
    for code in points["code"]:
        try:
            sides.append(side(Arch.parse(code)))
        except (InvalidInput, ValueError):
            sides.append(None)
    frame = points.assign(side=sides).dropna(subset=["side", "latency_ms", "miou"])
    frame = frame[frame["latency_ms"] > 0]
    if frame.empty or frame["side"].nunique() < 2:
        return None
    parts = {s: frame[frame["side"] == s] for s in ("a", "b")}
    lo = max(float(p["latency_ms"].min()) for p in parts.values())
    hi = max(float(frame["latency_ms"].max()), lo)
    grid = np.geomspace(lo, hi, 400) if hi > lo else np.array([lo])

    def curve(p: pd.DataFrame) -> np.ndarray:
        lat, acc = p["latency_ms"].to_numpy(float), p["miou"].to_numpy(float)
        return np.array([acc[lat <= t].max() if (lat <= t).any() else np.nan for t in grid])

    a, b = curve(parts["a"]), curve(parts["b"])

    def best(p: pd.DataFrame) -> tuple[float, float]:
        r = p.loc[p["miou"].idxmax()]
        return float(r["miou"]), float(r["latency_ms"])

    return Comparison(source, (len(parts["a"]), len(parts["b"])), (lo, hi),
                      (float(np.mean(a > b)), float(np.mean(b > a))), float(np.mean(a - b)),
                      (best(parts["a"]), best(parts["b"])))


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    paper: tuple[Comparison, ...]  # one per paper figure that has both sides
    measured: Comparison | None
    predicted: Comparison | None
    paper_winner: str | None
    here_winner: str | None
    here_source: str  # "measured" | "predicted" | ""
    status: str  # holds | does not hold | undecided here | paper undecided | cannot be checked here
    sentence: str


def paper_table_points(key: str) -> pd.DataFrame:
    """The released FFNet rows of one paper figure: code, latency_ms (its device), miou."""
    rows = paper_points(key)
    rows = rows[(rows["kind"] == "ffnet") & rows["model_name"].fillna("").astype(bool)]
    codes = [get_variant(n).arch.code for n in rows["model_name"]]
    return pd.DataFrame({"code": codes, "latency_ms": rows[PAPER_LATENCY[key]].astype(float),
                         "miou": rows["miou"].astype(float)}).dropna()


def _paper_winner(claim: Claim, paper: tuple[Comparison, ...], family: str | None) -> tuple[str | None, str]:
    """The paper's answer: the figure of this workdir's family when it has one, else the figures' majority."""
    if claim.paper_winner:
        return claim.paper_winner, claim.paper
    number = PAPER_FIGURES[family].number if family in PAPER_FIGURES else None
    own = [c for c in paper if number and c.source.startswith(f"paper Fig. {number} ")]
    if own:
        return own[0].winner, own[0].source.split(" (")[0].removeprefix("paper ")
    votes = {c.winner for c in paper}
    if len(votes) == 1 and None not in votes:
        return votes.pop(), " and ".join(c.source.split(" (")[0].removeprefix("paper ") for c in paper)
    return None, ""


def check_claim(claim: Claim, *, measured: pd.DataFrame, predicted: pd.DataFrame | None,
                family: str | None = None) -> ClaimResult:
    paper = tuple(fc for key, spec in PAPER_FIGURES.items()
                  for fc in [compare_sides(paper_table_points(key), claim.side,
                                           source=f"paper Fig. {spec.number} ({PAPER_DEVICE[key]})")] if fc)
    paper_winner, where = _paper_winner(claim, paper, family)
    m = compare_sides(measured, claim.side, source="measured here") if not measured.empty else None
    p = compare_sides(predicted, claim.side, source="predicted here") if predicted is not None and not predicted.empty else None
    here, source = (m, "measured") if m is not None else (p, "predicted") if p is not None else (None, "")
    name = dict(a=claim.sides[0], b=claim.sides[1])
    if claim.paper_winner:
        paper_part = f"Paper: {claim.paper}"
    elif paper_winner:
        paper_part = f"Paper ({where}): {name[paper_winner]} ahead"
    elif where:
        paper_part = f"Paper ({where}): neither side leads on {LEAD:.0%} of the range"
    else:
        paper_part = "Paper: its figures do not agree on it" if paper else "Paper: its tables hold no such pair"
    here_winner = here.winner if here else None
    if here is None:
        in_m, in_p = _sides_in(measured, claim), _sides_in(predicted, claim)
        absent = [n for k, n in name.items() if k not in in_m | in_p]
        if absent:
            what = "peer points" if claim.key == "peers" and absent == [claim.sides[0]] else f"points with {' or '.join(absent)}"
            sentence = f"{paper_part}. No {what} in this workdir: cannot be checked here."
        elif len(in_m) == 1 and len(in_p) == 1 and in_m != in_p:  # one side only measured, the other only predicted
            (mk,), (pk,) = in_m, in_p
            sentence = (f"{paper_part}. Here {name[mk]} are only measured and {name[pk]} only predicted: a prediction "
                        "set against a measurement would compare the predictor's bias, not the designs; cannot be "
                        "checked here (evaluate points of both sides).")
        else:  # both sides are there, but without a usable latency and mIoU on one of them
            sentence = f"{paper_part}. No point of one side has a positive latency and an mIoU here: cannot be checked here."
        status = "cannot be checked here"
    else:
        basis = "measured" if source == "measured" else "PREDICTED only (nothing measured on one side)"
        here_part = f"here ({basis}): {name[here_winner] + ' ahead' if here_winner else f'neither side leads on {LEAD:.0%} of the range'}"
        if here_winner is None:
            status = "holds" if claim.tie_holds and paper_winner else "undecided here"
        elif paper_winner is None:
            status = "paper undecided"
        else:
            status = "holds" if here_winner == paper_winner else "does not hold"
        tie = (f" ({name[paper_winner]} keeps up with {name[{'a': 'b', 'b': 'a'}[paper_winner]]} at equal latency)"
               if status == "holds" and here_winner is None else "")
        verdict = {"holds": "the paper's claim holds on this device and data" + tie,
                   "does not hold": "the paper's claim does NOT hold on this device and data",
                   "paper undecided": "the paper's figure does not decide it, so there is no claim to confirm",
                   "undecided here": "undecided here"}[status]
        sentence = f"{paper_part}; {here_part}: {verdict}."
    return ClaimResult(claim, paper, m, p, paper_winner, here_winner, source, status, sentence)


def _sides_in(frame: pd.DataFrame | None, claim: Claim) -> set[str]:
    """The sides ("a", "b") that have at least one point in `frame`."""
    found: set[str] = set()
    for code in [] if frame is None else frame["code"]:
        try:
            side = claim.side(Arch.parse(code))
        except (InvalidInput, ValueError):
            continue
        if side:
            found.add(side)
    return found


def check_claims(*, measured: pd.DataFrame, predicted: pd.DataFrame | None, family: str | None = None,
                 claims: tuple[Claim, ...] = CLAIMS) -> tuple[ClaimResult, ...]:
    """`measured`: the evaluated points (code, latency_ms measured, miou measured); `predicted`:
    the search's trials (code, latency_ms, miou, both predicted), or None; `family`: the paper
    figure whose answer counts (the workdir's space: gpu_large, gpu_small, mobile), else all."""
    return tuple(check_claim(c, measured=measured, predicted=predicted, family=family) for c in claims)
