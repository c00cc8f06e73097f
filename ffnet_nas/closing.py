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
from ffnet_nas.stats import finite_or_none
from ffnet_nas.win_check import WinCheck


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
        # the verdict's latencies were timed minutes apart; when the side-by-side pair says otherwise, say so
        best_acc, ref_acc = finite_or_none((summary.best or {}).get(column)), finite_or_none(r.get(column))
        more_accurate = best_acc is not None and ref_acc is not None and best_acc > ref_acc
        if summary.beats_reference and summary.latency_confirms is False:
            verdict = "yes on the evaluate step's timings, but NOT faster side by side (below)"
        elif not summary.beats_reference and summary.latency_confirms and more_accurate:
            verdict = "no on the evaluate step's timings, but faster side by side (below)"
        lines.append(f"beats it (higher measured {unit} at lower measured latency, same device and data): {verdict}")
        if summary.held_out_confirms is not None and summary.best:
            held = "more" if summary.held_out_confirms else "NOT more"
            lines.append(f"on the held-out validation images (not used to pick it): {unit} "
                         f"{summary.best['held_out_miou']:.2f} vs {r['held_out_miou']:.2f}, {held} accurate there too")
        if summary.latency_pair:
            p = summary.latency_pair
            faster = ("NOT faster there" if not summary.latency_confirms
                      else "faster there too" if summary.beats_reference else "faster there")
            from ffnet_nas.evaluate import rounds_text

            rounds = rounds_text(p.get("ratios"))
            lines.append(f"timed side by side ({p['rounds']} interleaved rounds, the lowest of each): "
                         f"{p['best_ms']:.2f} vs {p['reference_ms']:.2f} ms, {faster} "
                         f"({p['reference_ms'] / p['best_ms']:.2f}x{'; ' + rounds if rounds else ''})")
        if summary.side_by_side_tried:
            passed = "; ".join(f"{t['code']} {t['best_ms']:.2f} vs {t['reference_ms']:.2f} ms"
                               for t in summary.side_by_side_tried)
            lines.append(f"passed over: {len(summary.side_by_side_tried)} more accurate winner(s) on the evaluate "
                         f"step's timings that were NOT faster side by side ({passed})")
        if summary.win_check:
            lines.append(summary.win_check["text"])
    if summary.published_rivals:
        # the rival's own check when it ran (the reference's spread says nothing about the rival's)
        noise = (summary.rival_check or summary.win_check or {}).get("largest_same_point")
        lines.append(PublishedRivals.from_dict(summary.published_rivals).text(unit=unit, noise=noise))
    if summary.rival_check:
        lines.append(summary.rival_check["text"])
    if (short := in_short(summary)) is not None:
        lines.append(short)
    if summary.rounds:
        n = sum(len(r["points"]) for r in summary.rounds)
        last = summary.rounds[-1]
        tau = "undefined" if last["kendall_tau"] is None else f"{last['kendall_tau']:.2f}"
        lines.append(f"refine rounds: {len(summary.rounds)}, {n} more point(s) evaluated; last predictor fitted on "
                     f"{last['fitted_on']} points (LOO Kendall tau {tau})")
        if last.get("stopped"):  # (a summary written before stalled chases stopped has no such key)
            lines.append(f"the rival chase stopped after round {last['index']}: it {last['stopped']} "
                         "(evaluate.stop_stalled_chase: false runs them)")
    if summary.latency_drift:
        from ffnet_nas.predictors.latency.validate import DRIFT_MIN_POINTS, TableDrift

        drift = TableDrift(**{k: summary.latency_drift[k] for k in ("n", "ratio", "low", "high")})
        if drift.n >= DRIFT_MIN_POINTS:  # too few: no line (the run logged why)
            lines.append(drift.text())
    lines.append("time per step (s): " + ", ".join(f"{k} {v}" for k, v in summary.seconds.items()))
    lines += [f"wrote {k}: {v}" for k, v in summary.files.items()]
    return lines


def in_short(summary: RunSummary) -> str | None:
    """What the user should take away, against the strongest published variant measured within the
    target: the found point is more accurate by more than the noise, ties it, or loses to it, by the
    check under several seeds (the rival's own, or the reference's when the two are one), and whether
    it is faster side by side. None when there is no rival or no such check (`check_win` off)."""
    rivals = summary.published_rivals or {}
    strongest = rivals.get("strongest")
    if not summary.best or not strongest:
        return None
    record = summary.rival_check or (summary.win_check if strongest["name"] == summary.reference else None)
    if not record or not record.get("wins"):
        return None
    check = WinCheck.from_dict(record)
    name, seeds = strongest["name"], len(check.seeds)
    found_ms, rival_ms = rivals.get("paired_found_ms"), rivals.get("paired_rival_ms")
    faster = None if found_ms is None or rival_ms is None else found_ms < rival_ms
    from ffnet_nas.evaluate import rounds_text

    rounds = rounds_text(rivals.get("paired_ratios"))
    speed = "" if faster is None else (f", {'faster' if faster else 'NOT faster'} side by side "
                                       f"({found_ms:.2f} vs {rival_ms:.2f} ms{'; ' + rounds if rounds else ''})")
    cover = f"; {len(rivals.get('measured') or ())} of the {rivals.get('within')} published variants within the target measured"
    if check.exceeds_noise:
        return (f"in short: the found point is more accurate than {name}, the strongest published variant measured "
                f"within the target, by more than the noise over {seeds} seeds{speed}{cover}")
    if check.loses_beyond_noise:
        return (f"in short: {name} (published) is more accurate than the found point by more than the noise over "
                f"{seeds} seeds{speed}: at this budget the search found nothing better within the target{cover}")
    if check.smallest_win > 0:
        # ahead on every measurement, yet by less than one point's seed spread: say both, not "a tie"
        held = (f", mean held-out {check.held_out_win:+.2f} [{check.held_out_low:+.2f}, {check.held_out_high:+.2f}]"
                if finite_or_none(check.held_out_win) is not None else "")  # NaN, or null in an old summary
        return (f"in short: the found point scored above {name} (published) on all {len(check.wins)} measurements"
                f"{held}, but not by more than one point's seed spread ({check.largest_same_point:.2f}){speed}{cover}")
    if faster:
        return (f"in short: the found point is as accurate as {name}, the strongest published variant measured within "
                f"the target (a tie within the noise over {seeds} seeds){speed}{cover}")
    return (f"in short: the found point is no better than {name} (published): as accurate within the noise over "
            f"{seeds} seeds{speed}; at this budget the search found nothing that beats it{cover}")


def _hw(hw) -> str:
    return f"{hw[0]}x{hw[1]}" if hw else "?"


def _ms(value) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def _miou(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


__all__ = ["describe", "in_short"]
