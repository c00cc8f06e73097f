"""The verdict's latency, side by side: the best point and the reference timed in interleaved
rounds under the table's protocol (evaluate.paired_latency), and the line the run prints."""

from __future__ import annotations

import pytest

from ffnet_nas.evaluate import PairedTiming, paired_latency, rounds_text
from ffnet_nas.pipeline import describe
from ffnet_nas.predictors.load import load_latency_table
from ffnet_nas.run_summary import RunSummary
from ffnet_nas.space import Arch

SMALL = Arch.parse("stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest")
LARGE = Arch.parse("stemC-basic-d16.24.20-w64.128.256-s2-upB-segB-nearest")  # ~1,000x the MACs of SMALL
# between the two, far from both side by side: medians at 32x64, 1 thread, two other busy processes on
# two cores: SMALL 5.5-6.4 ms, MEDIUM 14 ms, LARGE 76-85 ms (at w32 MEDIUM took 8-16 ms, and its pair
# with SMALL once flipped under such load)
MEDIUM = Arch.parse("stemB-basic-d2.2.2.2-w64.128.192.320-s1-upB-segB-nearest")


def test_side_by_side_times_both_under_the_tables_protocol_and_keeps_the_order(micro_run):
    table = load_latency_table(micro_run.workdir / "lut" / "cpu-fp32-eager-b1-32x64-t1.csv")  # the micro run's
    pair = paired_latency(SMALL, LARGE, table, rounds=2)
    assert 0 < pair.first_ms < pair.second_ms  # the returned pair is (first, second), whatever order each round timed
    # one ratio per round, second / first: ~1,000x the MACs is slower in every round
    assert pair.rounds == 2 and all(r > 1 for r in pair.ratios)
    again = paired_latency(LARGE, SMALL, table, rounds=3)
    assert 0 < again.second_ms < again.first_ms and again.rounds == 3 and all(r < 1 for r in again.ratios)
    twice = paired_latency(SMALL, SMALL, table, rounds=2)  # one network against itself: still one ratio a round
    assert twice.rounds == 2 and twice.first_ms > 0 and twice.second_ms > 0


def test_the_rounds_say_whether_they_agree():
    assert rounds_text([1.2, 0.9, 1.1, 1.05, 1.3]) == "faster in 4 of 5 rounds, 0.90-1.30x"
    assert rounds_text([0.8, 0.7]) == "faster in 0 of 2 rounds, 0.70-0.80x"
    assert rounds_text(None) == rounds_text([]) == ""  # an older summary kept no ratios


def test_the_kept_pair_reads_back_as_it_was_written():
    pair = PairedTiming(first_ms=9.0, second_ms=13.5, ratios=(1.4, 1.6, 0.95))
    record = pair.record()
    assert record == {"best_ms": 9.0, "reference_ms": 13.5, "rounds": 3, "ratios": [1.4, 1.6, 0.95]}
    assert PairedTiming.from_record(record) == pair
    assert PairedTiming.from_record(None) is None
    # a summary written before the rounds' ratios were kept: that pair is timed again, not read without them
    assert PairedTiming.from_record({"best_ms": 9.0, "reference_ms": 13.5, "rounds": 5}) is None


def test_the_run_says_whether_the_best_point_is_faster_side_by_side():
    summary = RunSummary(budget="quick", space="mobile", device="cpu", target="latency<=12ms", reference="ffnet_ref",
                         best={"code": SMALL.code, "measured_miou": 47.0, "measured_latency_ms": 10.0,
                               "predicted_latency_ms": 10.5},
                         reference_row={"code": LARGE.code, "measured_miou": 46.0, "measured_latency_ms": 12.0},
                         beats_reference=True, latency_pair={"best_ms": 9.0, "reference_ms": 13.5, "rounds": 5},
                         latency_confirms=True)
    lines = "\n".join(describe(summary))
    assert "timed side by side (5 interleaved rounds, the lowest of each): 9.00 vs 13.50 ms, faster there too (1.50x)" \
        in lines  # a summary written before the rounds' ratios were kept
    summary.latency_pair["ratios"] = [1.4, 1.6, 0.95, 1.5, 1.45]
    assert "9.00 vs 13.50 ms, faster there too (1.50x; faster in 4 of 5 rounds, 0.95-1.60x)" in "\n".join(describe(summary))
    summary.latency_pair, summary.latency_confirms = {"best_ms": 12.5, "reference_ms": 12.0, "rounds": 5}, False
    assert "12.50 vs 12.00 ms, NOT faster there (0.96x)" in "\n".join(describe(summary))
    summary.latency_pair = summary.latency_confirms = None  # an older summary, or no reference: no line
    assert "side by side" not in "\n".join(describe(summary))


def test_the_strongest_published_rival_is_timed_beside_the_best_point_too(micro_run):
    from ffnet_nas.pipeline import _time_side_by_side

    table = load_latency_table(micro_run.workdir / "lut" / "cpu-fp32-eager-b1-32x64-t1.csv")
    medium = MEDIUM
    rival = {"name": "rival", "code": LARGE.code, "accuracy": 47.5, "predicted_latency_ms": 11.0}
    summary = RunSummary(budget="quick", space="mobile", device="cpu", target="latency<=12ms", reference="ref",
                         best={"code": SMALL.code}, reference_row={"code": medium.code},
                         published_rivals={"strongest": rival})
    _time_side_by_side(summary, table, published={"ref": medium, "rival": LARGE})
    found_ms, rival_ms = summary.published_rivals["paired_found_ms"], summary.published_rivals["paired_rival_ms"]
    assert 0 < found_ms < rival_ms  # the large rival, timed beside the small point
    assert len(summary.published_rivals["paired_ratios"]) == len(summary.latency_pair["ratios"]) > 1
    assert all(r > 1 for r in summary.published_rivals["paired_ratios"])
    assert summary.latency_pair["best_ms"] > 0 and summary.latency_pair["reference_ms"] != rival_ms
    # the strongest rival is the reference itself: its pair is the reference's, not timed twice
    same = RunSummary(budget="quick", space="mobile", device="cpu", target="latency<=12ms", reference="ref",
                      best={"code": SMALL.code}, reference_row={"code": medium.code},
                      published_rivals={"strongest": {**rival, "name": "ref", "code": medium.code}})
    _time_side_by_side(same, table, published={"ref": medium})
    assert (same.published_rivals["paired_found_ms"], same.published_rivals["paired_rival_ms"]) == \
        (same.latency_pair["best_ms"], same.latency_pair["reference_ms"])


def test_the_verdict_passes_over_a_winner_that_is_not_faster_side_by_side(micro_run):
    """Two candidates beat the reference on the evaluate step's timings (the rows say so); timed
    beside it under the table's protocol the more accurate one is ~1,000x the MACs and slower, so
    the verdict takes the next one, which is faster there."""
    from ffnet_nas.refine import best_candidate, first_faster_side_by_side, winners

    table = load_latency_table(micro_run.workdir / "lut" / "cpu-fp32-eager-b1-32x64-t1.csv")
    medium = MEDIUM
    rows = {LARGE.code: {"code": LARGE.code, "measured_miou": 48.0, "measured_latency_ms": 1.0},
            SMALL.code: {"code": SMALL.code, "measured_miou": 47.0, "measured_latency_ms": 1.5},
            "slow": {"code": "slow", "measured_miou": 49.0, "measured_latency_ms": 9.0},  # slower: no winner
            medium.code: {"code": medium.code, "measured_miou": 46.0, "measured_latency_ms": 2.0}}
    candidates = [SMALL.code, "slow", LARGE.code]
    assert [r["code"] for r in winners(rows, candidates, medium)] == [LARGE.code, SMALL.code]  # most accurate first
    assert best_candidate(rows, candidates, medium) == (rows[LARGE.code], True)
    assert winners(rows, candidates, None) == []

    chosen, timed = first_faster_side_by_side(winners(rows, candidates, medium), medium, table, rounds=2)
    assert chosen is rows[SMALL.code]
    assert [row["code"] for row, _ in timed] == [LARGE.code, SMALL.code]
    assert timed[0][1].first_ms > timed[0][1].second_ms and timed[1][1].first_ms < timed[1][1].second_ms
    # only one try allowed: the most accurate winner stays, and its pair says it is not faster
    chosen, timed = first_faster_side_by_side(winners(rows, candidates, medium), medium, table, tries=1, rounds=2)
    assert chosen is rows[LARGE.code] and len(timed) == 1 and timed[0][1].first_ms > timed[0][1].second_ms
    with pytest.raises(ValueError, match="no winner to time"):
        first_faster_side_by_side([], medium, table)


def test_the_run_names_the_winners_it_passed_over():
    summary = RunSummary(budget="quick", space="mobile", device="cpu", target="latency<=12ms", reference="ffnet_ref",
                         best={"code": SMALL.code, "measured_miou": 47.0, "measured_latency_ms": 10.0},
                         reference_row={"code": LARGE.code, "measured_miou": 46.0, "measured_latency_ms": 12.0},
                         beats_reference=True, latency_pair={"best_ms": 9.0, "reference_ms": 13.5, "rounds": 5},
                         latency_confirms=True,
                         side_by_side_tried=[{"code": "stemC-x", "best_ms": 14.0, "reference_ms": 13.0}])
    lines = "\n".join(describe(summary))
    assert ("passed over: 1 more accurate winner(s) on the evaluate step's timings that were NOT faster side by "
            "side (stemC-x 14.00 vs 13.00 ms)") in lines
    summary.side_by_side_tried = []  # none passed over: no line
    assert "passed over" not in "\n".join(describe(summary))


def test_the_run_keeps_the_pair_of_the_point_it_picks_and_names_only_the_more_accurate_passed_over(micro_run):
    """pipeline._pick_side_by_side on real timings (the micro run's table): the first winner faster,
    the second, or none (then the most accurate stays, nothing counts as passed over); and the pair
    kept is the one `_time_side_by_side` reuses instead of timing the pair again."""
    from ffnet_nas.pipeline import _pick_side_by_side, _time_side_by_side

    table = load_latency_table(micro_run.workdir / "lut" / "cpu-fp32-eager-b1-32x64-t1.csv")
    medium = MEDIUM
    larger = Arch.parse("stemC-basic-d16.24.16-w64.128.256-s2-upB-segB-nearest")  # also far slower than medium
    small, large, big = ({"code": a.code, "measured_miou": m} for a, m in ((SMALL, 47.0), (LARGE, 48.0), (larger, 46.5)))

    def pick(winning):
        summary = RunSummary(budget="quick", space="mobile", device="cpu", reference="ref")
        return _pick_side_by_side(summary, winning, medium, table), summary

    best, summary = pick([small, large])  # the most accurate is faster: nothing passed over
    assert best is small and summary.side_by_side_tried == [] and summary.latency_confirms is True
    best, summary = pick([large, small])
    assert best is small and summary.latency_confirms is True
    assert [t["code"] for t in summary.side_by_side_tried] == [LARGE.code]
    assert summary.side_by_side_tried[0]["best_ms"] > summary.side_by_side_tried[0]["reference_ms"]
    best, summary = pick([large, big])  # none faster: the most accurate stays, and none was passed over
    assert best is large and summary.side_by_side_tried == [] and summary.latency_confirms is False
    assert summary.latency_pair["best_ms"] > summary.latency_pair["reference_ms"]

    # the verdict's pair is reused, not timed again (a new timing would not repeat these floats)
    kept = dict(summary.latency_pair)
    summary.best, summary.reference_row = {"code": LARGE.code}, {"code": medium.code}
    summary.published_rivals = {"strongest": {"name": "ref", "code": medium.code, "accuracy": 47.0,
                                              "predicted_latency_ms": 1.0}}
    _time_side_by_side(summary, table, published={"ref": medium})
    assert summary.latency_pair == kept
    assert (summary.published_rivals["paired_found_ms"], summary.published_rivals["paired_rival_ms"]) == \
        (kept["best_ms"], kept["reference_ms"])
