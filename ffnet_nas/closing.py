"""The closing lines of `ffnet-nas run`: a finished run's summary in words.

    for line in describe(summary): print(line)

Pure: it reads the `RunSummary` the pipeline filled (the best point, the reference, the held-out
check, the side-by-side timing, the win check, the published rivals, the refine rounds, where each
step wrote) and decides nothing; `run_summary.json` keeps the same lines under "closing".
"""

from __future__ import annotations

from ffnet_nas.rivals import PublishedRivals
from ffnet_nas.run_summary import RunSummary
from ffnet_nas.settings import accuracy_label


def describe(summary: RunSummary) -> list[str]:
    """The closing lines the CLI prints."""
    lines = [f"space {summary.space}, budget {summary.budget}, device {summary.device}, target {summary.target}"]
    if summary.input_hw:
        lines.append(f"data {summary.data}, trained at {_hw(summary.train_hw)}, deployment input {_hw(summary.input_hw)} "
                     "(latency, target and MACs are at this size)")
    column = summary.accuracy
    unit = accuracy_label(column)
    if summary.best:
        b = summary.best
        lines.append(f"best found: {b['code']}  {unit} {_miou(b.get(column))}  "
                     f"{_ms(b.get('measured_latency_ms'))} (predicted {_ms(b.get('predicted_latency_ms'))})")
    if summary.reference_row:
        r = summary.reference_row
        lines.append(f"published nearest the target: {summary.reference}  {unit} {_miou(r.get(column))}  "
                     f"{_ms(r.get('measured_latency_ms'))}")
        verdict = "yes" if summary.beats_reference else "no"
        lines.append(f"beats it (higher measured {unit} at lower measured latency, same device and data): {verdict}")
        if summary.held_out_confirms is not None and summary.best:
            held = "more" if summary.held_out_confirms else "NOT more"
            lines.append(f"on the held-out validation images (not used to pick it): {unit} "
                         f"{summary.best['held_out_miou']:.2f} vs {r['held_out_miou']:.2f}, {held} accurate there too")
        if summary.latency_pair:
            p = summary.latency_pair
            faster = "faster there too" if summary.latency_confirms else "NOT faster there"
            lines.append(f"timed side by side ({p['rounds']} interleaved rounds, the lowest of each): "
                         f"{p['best_ms']:.2f} vs {p['reference_ms']:.2f} ms, {faster} "
                         f"({p['reference_ms'] / p['best_ms']:.2f}x)")
        if summary.win_check:
            lines.append(summary.win_check["text"])
    if summary.published_rivals:
        noise = (summary.win_check or {}).get("largest_same_point")
        lines.append(PublishedRivals.from_dict(summary.published_rivals).text(unit=unit, noise=noise))
    if summary.rival_check:
        lines.append(summary.rival_check["text"])
    if summary.rounds:
        n = sum(len(r["points"]) for r in summary.rounds)
        last = summary.rounds[-1]
        tau = "undefined" if last["kendall_tau"] is None else f"{last['kendall_tau']:.2f}"
        lines.append(f"refine rounds: {len(summary.rounds)}, {n} more point(s) evaluated; last predictor fitted on "
                     f"{last['fitted_on']} points (LOO Kendall tau {tau})")
    lines.append("time per step (s): " + ", ".join(f"{k} {v}" for k, v in summary.seconds.items()))
    lines += [f"wrote {k}: {v}" for k, v in summary.files.items()]
    return lines


def _hw(hw) -> str:
    return f"{hw[0]}x{hw[1]}" if hw else "?"


def _ms(value) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def _miou(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


__all__ = ["describe"]
