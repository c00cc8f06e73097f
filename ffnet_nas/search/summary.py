"""Plain-text rendering of a `SearchResult` for the terminal (the CSV files hold everything)."""

from __future__ import annotations

from typing import Any

from ffnet_nas.search.api import SearchResult


def _short(name: str) -> str:
    return name.removeprefix("segmentation_")


def _num(v: Any, scale: float, fmt: str) -> str:
    try:
        return format(float(v) / scale, fmt)
    except (TypeError, ValueError):
        return "-"


def _dominates(text: Any) -> str:
    names = [n for n in str(text or "").split(";") if n]
    if not names:
        return "-"
    shown = ", ".join(_short(n) for n in names[:2])
    return f"{len(names)}: {shown}" + (", ..." if len(names) > 2 else "")


def pareto_text(result: SearchResult, *, max_rows: int = 25) -> str:
    frame = result.pareto
    head = f"{'latency_ms':>10} {'mIoU':>6} {'params_M':>8} {'GMACs':>7}  {'nearest published (dist)':<36} {'dominates':<40} code"
    lines = [head]
    for r in frame.head(max_rows).to_dict("records"):
        near = f"{_short(r['nearest_published'] or '-')} ({_num(r['nearest_distance'], 1, '.2f')})"
        lines.append(f"{r['latency_ms']:>10.3f} {r['miou']:>6.2f} {_num(r['params'], 1e6, '8.2f')} "
                     f"{_num(r['macs'], 1e9, '7.1f')}  {near:<36} {_dominates(r['dominates']):<40} {r['code']}")
    if len(frame) > max_rows:
        lines.append(f"... {len(frame) - max_rows} more rows in pareto.csv")
    return "\n".join(lines)


def dominance_text(result: SearchResult) -> str:
    pub = result.published
    if pub.empty:
        return "no published variant is a point of this space"
    beaten = pub[pub["dominated_by"] > 0]
    lines = [f"the front dominates {len(beaten)} of {len(pub)} published variants of the space (predicted values):"]
    for r in beaten.to_dict("records"):
        lines.append(f"  {_short(r['name']):<34} {r['latency_ms']:9.3f} ms {r['miou']:6.2f} mIoU  -> "
                     f"{r['faster_by_pct']:5.1f}% faster at >= mIoU, {r['miou_gain']:+.2f} mIoU at <= latency")
    return "\n".join(lines)


def closest_text(result: SearchResult) -> str:
    lines = [(f"no evaluated point meets {', '.join(t.text for t in result.targets)}; the closest "
             "(smallest total relative violation):"),
             f"{'violation':>9} {'latency_ms':>10} {'mIoU':>6} {'params_M':>8} {'GMACs':>7}  code"]
    for r in result.closest.to_dict("records"):
        lines.append(f"{100 * r['violation']:8.1f}% {r['latency_ms']:>10.3f} {r['miou']:>6.2f} "
                     f"{_num(r['params'], 1e6, '8.2f')} {_num(r['macs'], 1e9, '7.1f')}  {r['code']}")
    return "\n".join(lines)


def best_text(result: SearchResult) -> str:
    b = result.best
    if b is None:
        return "best point under the target: none"
    under = f" under {', '.join(t.text for t in result.targets)}" if result.targets else ""
    return (f"best point{under}: {b['code']}  predicted {b['miou']:.2f} mIoU at {b['latency_ms']:.3f} ms, "
            f"{_num(b['params'], 1e6, '.2f')} M params, {_num(b['macs'], 1e9, '.1f')} GMACs "
            f"(nearest published: {_short(b['nearest_published'] or '-')})")



def reranked_text(frame, *, max_rows: int = 10) -> str:
    """The re-ranking (steps.search `rerank`, by the search's predictor or the zero-shot stage): the
    largest expected gain over the reference first."""
    by_zero_shot = bool(frame["zero_shot_miou"].notna().any())
    lines = ["re-ranked by the zero-shot stage (the distilled model's mIoU, BatchNorm recalibrated, no fine-tuning):"
             if by_zero_shot else
             "re-ranked by the search's predictor with its spread (the expected gain over the reference):",
             f"{'rank':>4} {'latency_ms':>10} {'search':>8} {'zero-shot':>9} {'mIoU':>6} {'+-':>5} "
             f"{'P(beats ref)':>12} {'exp. gain':>9}  code"]
    for r in frame.head(max_rows).to_dict("records"):
        p = _num(r["p_beats_reference"], 1, "12.2f").replace("nan", "-")
        gain = _num(r["expected_gain"], 1, "9.2f").replace("nan", "-")
        zero_shot = _num(r["zero_shot_miou"], 1, "9.2f").replace("nan", "-")
        lines.append(f"{r['rank']:>4} {r['latency_ms']:>10.3f} {r['search_miou']:>8.2f} {zero_shot:>9} "
                     f"{r['miou']:>6.2f} {r['miou_std']:>5.2f} {p:>12} {gain:>9}  {r['code']}")
    if len(frame) > max_rows:
        lines.append(f"... {len(frame) - max_rows} more rows in reranked.csv")
    return "\n".join(lines)
