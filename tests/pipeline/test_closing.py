"""The run's last word against the strongest published rival (closing.in_short): more accurate by more
than the noise, a tie, or a loss, from the check under several seeds, and faster or not side by side."""

from __future__ import annotations

import dataclasses

from ffnet_nas.closing import describe, in_short
from ffnet_nas.run_summary import RunSummary
from ffnet_nas.win_check import judge

RIVAL = {"name": "segmentation_ffnet40S_BCC_mobile", "code": "rival", "accuracy": 46.49, "predicted_latency_ms": 21.8}
RIVALS = {"limit_ms": 31.4, "within": 18, "measured": ["a", "b", "c", "segmentation_ffnet40S_BCC_mobile"],
          "strongest": RIVAL, "margin": 0.23, "beats": True, "paired_found_ms": 19.10, "paired_rival_ms": 17.17}


def _check(best: tuple, rival: tuple) -> dict:
    """A rival check as run_summary.json holds it, from two seeds' (scoring, held-out) scores."""
    check = judge([{"b": best[0], "r": rival[0]}, {"b": best[1], "r": rival[1]}], best="b", reference="r", seeds=(0, 1))
    return {**dataclasses.asdict(check), "text": check.text(against="the strongest published rival")}


def _summary(**changes) -> RunSummary:
    summary = RunSummary(budget="quick", space="mobile", device="cpu", target="latency<=31.4ms",
                         reference="segmentation_ffnet54S_BCC_mobile_pre_down",
                         best={"code": "found", "measured_miou": 46.71}, published_rivals=RIVALS)
    return dataclasses.replace(summary, **changes)


TIE = _check(((46.7, 44.6), (46.5, 44.0)), ((46.5, 44.6), (46.9, 44.5)))
WIN = _check(((49.0, 48.0), (49.2, 48.1)), ((46.5, 44.6), (46.9, 44.5)))
LOSS = _check(((44.0, 42.0), (44.1, 42.3)), ((46.5, 44.6), (46.9, 44.5)))
AHEAD = _check(((47.5, 45.6), (48.9, 45.9)), ((46.5, 44.6), (46.9, 44.5)))  # every win > 0, the smallest under the spread


def test_ahead_on_every_measurement_but_inside_the_spread_says_both():
    text = in_short(_summary(rival_check=AHEAD))
    assert text.startswith("in short: the found point scored above segmentation_ffnet40S_BCC_mobile (published) on all "
                           "4 measurements, mean held-out +1.20 [")
    assert "but not by more than one point's seed spread (1.40), NOT faster side by side (19.10 vs 17.17 ms); 4 of" in text


def test_a_tie_with_a_faster_rival_says_the_search_found_nothing_better():
    text = in_short(_summary(rival_check=TIE))
    assert text == ("in short: the found point is no better than segmentation_ffnet40S_BCC_mobile (published): as "
                    "accurate within the noise over 2 seeds, NOT faster side by side (19.10 vs 17.17 ms); at this budget "
                    "the search found nothing that beats it; 4 of the 18 published variants within the target measured")
    assert describe(_summary(rival_check=TIE))[-2] == text  # after the rival's check, before the times


def test_a_tie_with_a_slower_rival_and_a_clear_win_and_a_clear_loss():
    faster = {**RIVALS, "paired_found_ms": 15.0, "paired_rival_ms": 17.17}
    assert in_short(_summary(rival_check=TIE, published_rivals=faster)).startswith(
        "in short: the found point is as accurate as segmentation_ffnet40S_BCC_mobile, the strongest published variant "
        "measured within the target (a tie within the noise over 2 seeds), faster side by side (15.00 vs 17.17 ms)")
    rounds = {**faster, "paired_ratios": [1.2, 0.95, 1.1, 1.15, 1.05]}  # the rounds, where the summary kept them
    assert "faster side by side (15.00 vs 17.17 ms; faster in 4 of 5 rounds, 0.95-1.20x)" in \
        in_short(_summary(rival_check=TIE, published_rivals=rounds))
    assert in_short(_summary(rival_check=WIN)).startswith(
        "in short: the found point is more accurate than segmentation_ffnet40S_BCC_mobile, the strongest published "
        "variant measured within the target, by more than the noise over 2 seeds, NOT faster side by side")
    assert in_short(_summary(rival_check=LOSS)).startswith(
        "in short: segmentation_ffnet40S_BCC_mobile (published) is more accurate than the found point by more than "
        "the noise over 2 seeds")
    untimed = {k: v for k, v in RIVALS.items() if not k.startswith("paired")}  # a summary from before the pair
    assert "side by side" not in in_short(_summary(rival_check=WIN, published_rivals=untimed))


def test_the_reference_as_the_strongest_rival_is_judged_by_the_win_check():
    as_reference = {**RIVALS, "strongest": {**RIVAL, "name": "segmentation_ffnet54S_BCC_mobile_pre_down"}}
    text = in_short(_summary(published_rivals=as_reference, win_check=WIN))
    assert text.startswith("in short: the found point is more accurate than segmentation_ffnet54S_BCC_mobile_pre_down")


def test_the_rivals_line_sets_the_margin_beside_the_rivals_own_check_when_it_ran():
    rivals = {**RIVALS, "paired_found_ms": None, "paired_rival_ms": None}
    reference_check = {"text": "w", "largest_same_point": 3.87}
    line = [x for x in describe(_summary(published_rivals=rivals, win_check=reference_check, rival_check=WIN))
            if x.startswith("published variants")][0]
    assert line.endswith(f"up to {WIN['largest_same_point']:.2f} between seeds: the margin is NOT larger than that")
    alone = [x for x in describe(_summary(published_rivals=rivals, win_check=reference_check))
             if x.startswith("published variants")][0]
    assert alone.endswith("up to 3.87 between seeds: the margin is NOT larger than that")


def test_nothing_to_say_without_a_rival_or_a_check():
    assert in_short(_summary()) is None  # check_win off: one seed is no ground for a last word
    assert in_short(_summary(rival_check=TIE, published_rivals={**RIVALS, "strongest": None})) is None
    assert in_short(_summary(rival_check=TIE, best=None)) is None
    assert not any(line.startswith("in short") for line in describe(_summary()))


def test_the_verdict_says_so_when_the_side_by_side_timing_disagrees_with_the_evaluate_steps():
    reference = {"code": "ref", "measured_miou": 40.0, "measured_latency_ms": 30.0, "held_out_miou": 39.0}
    best = {"code": "found", "measured_miou": 46.71, "measured_latency_ms": 26.6, "held_out_miou": 45.0}

    def verdict(confirms: bool | None, pair: dict | None) -> str:
        lines = describe(_summary(best=best, reference_row=reference, beats_reference=True,
                                  latency_confirms=confirms, latency_pair=pair))
        return next(line for line in lines if line.startswith("beats it"))

    slower = {"best_ms": 26.79, "reference_ms": 25.37, "rounds": 5, "ratios": [0.95] * 5}
    assert verdict(False, slower).endswith(": yes on the evaluate step's timings, but NOT faster side by side (below)")
    faster = {"best_ms": 24.0, "reference_ms": 25.37, "rounds": 5, "ratios": [1.06] * 5}
    assert verdict(True, faster).endswith(": yes")
    assert verdict(None, None).endswith(": yes")  # an older summary, timed before the side-by-side check existed
    lines = describe(_summary(best=best, reference_row=reference, beats_reference=False, latency_confirms=False,
                              latency_pair=slower))
    assert next(line for line in lines if line.startswith("beats it")).endswith(": no")
    # the mirror case: more accurate, timed slower minutes apart, faster side by side
    lines = describe(_summary(best=best, reference_row=reference, beats_reference=False, latency_confirms=True,
                              latency_pair=faster))
    assert next(line for line in lines if line.startswith("beats it")).endswith(
        ": no on the evaluate step's timings, but faster side by side (below)")
    assert any(line.startswith("timed side by side") and "faster there (" in line for line in lines)  # no "too"
    assert any("faster there too" in line for line in describe(_summary(
        best=best, reference_row=reference, beats_reference=True, latency_confirms=True, latency_pair=faster)))
    # less accurate and faster side by side: a plain no
    worse = {**best, "measured_miou": 39.0}
    lines = describe(_summary(best=worse, reference_row=reference, beats_reference=False, latency_confirms=True,
                              latency_pair=faster))
    assert next(line for line in lines if line.startswith("beats it")).endswith(": no")
