"""ffnet_nas.rivals: the published variants within the target, the strongest one measured, the
rivals added to a run's evaluation, and the closing line that compares the found point with them."""

import dataclasses
import math

from ffnet_nas.rivals import (PublishedRivals, Rival, compare, nearest_published, rivals_to_measure, strongest_rival,
                              with_rivals)

MS = {"fast": 10.0, "twin": 19.6, "twin_pre_down": 20.0, "slow": 40.0}
CODES = {name: f"code-{name}" for name in MS}
PREDICTED = [{"name": n, "code": CODES[n], "miou": m} for n, m in
             (("fast", 40.0), ("twin", 51.0), ("twin_pre_down", 51.0), ("slow", 70.0))]


def _row(name, miou):
    return {"code": CODES[name], "measured_miou": miou, "int8_miou": miou - 1}


def test_the_strongest_measured_rival_within_the_target_not_the_nearest():
    rows = {CODES[n]: _row(n, m) for n, m in (("fast", 38.0), ("twin", 46.0), ("twin_pre_down", 36.0), ("slow", 60.0))}
    best = {"code": "found", "measured_miou": 44.5, "predicted_latency_ms": 15.5}
    r = compare(best, rows, published_codes=CODES, published_ms=MS, limit_ms=27.7)
    # the nearest (twin_pre_down, 20.0 ms) is the weakest; slow is outside the target and does not count
    assert nearest_published(MS, 27.7) == "twin_pre_down"
    assert r.within == 3 and r.measured == ("fast", "twin", "twin_pre_down")
    assert r.strongest == Rival(name="twin", code="code-twin", accuracy=46.0, predicted_latency_ms=19.6)
    assert r.margin == -1.5 and r.beats is False
    line = r.text(noise=0.79)
    assert "published variants within the target: 3, 3 of them measured in this workdir" in line
    assert ("the most accurate: twin  mIoU 46.00  19.60 ms (table); the found point is more accurate: NO (-1.50), "
            "and it is faster (15.50 ms, table)") in line
    assert line.endswith("the same point differed by up to 0.79 between seeds: the margin is larger than that")
    assert r.text(noise=1.5).endswith("up to 1.50 between seeds: the margin is NOT larger than that")  # a tie with the noise
    held = dataclasses.replace(r, held_out_found=42.0, held_out_rival=44.9).text()
    assert "; on the held-out images 42.00 vs 44.90, NOT more accurate" in held
    assert "more accurate;" not in dataclasses.replace(r, held_out_found=42.0).text()  # one side unscored: no claim
    slower = compare({**best, "predicted_latency_ms": 25.0}, rows, published_codes=CODES, published_ms=MS, limit_ms=27.7)
    assert "NO (-1.50), and it is NOT faster (25.00 ms, table)" in slower.text()
    assert dataclasses.replace(r, margin=2.0, beats=True).text().endswith("more accurate: yes (+2.00)")
    # timed side by side after the verdict: the measured pair replaces the table's word on speed
    paired = dataclasses.replace(r, paired_found_ms=16.0, paired_rival_ms=20.0).text()
    assert "(table); the found point is more accurate: NO (-1.50); timed side by side 16.00 vs 20.00 ms, faster (1.25x)" \
        in paired and "(15.50 ms, table)" not in paired
    assert "20.00 vs 16.00 ms, NOT faster (0.80x)" in dataclasses.replace(r, paired_found_ms=20.0, paired_rival_ms=16.0).text()
    # each round's ratio says whether the rounds agree on it
    rounds = dataclasses.replace(r, paired_found_ms=16.0, paired_rival_ms=20.0, paired_ratios=(1.3, 0.9, 1.25)).text()
    assert "16.00 vs 20.00 ms, faster (1.25x; faster in 2 of 3 rounds, 0.90-1.30x)" in rounds
    assert PublishedRivals.from_dict({**dataclasses.asdict(r), "paired_ratios": [1.3, 0.9]}).paired_ratios == (1.3, 0.9)
    # run_summary.json written before the pair existed still reads
    assert PublishedRivals.from_dict({k: v for k, v in dataclasses.asdict(r).items()
                                      if not k.startswith("paired")}).paired_found_ms is None
    tie = compare({**best, "measured_miou": 46.0}, rows, published_codes=CODES, published_ms=MS, limit_ms=27.7)
    assert tie.beats is False  # a tie is not a win
    # the accuracy the verdict judges by (INT8 under an INT8 table); a row without it is not measured
    assert compare({"code": "found", "int8_miou": 45.2}, rows, published_codes=CODES, published_ms=MS, limit_ms=27.7,
                   accuracy="int8_miou").beats is True
    unscored = {**rows, CODES["twin"]: {**rows[CODES["twin"]], "int8_miou": math.nan}}
    int8 = compare({"code": "found", "int8_miou": 44.0}, unscored, published_codes=CODES, published_ms=MS,
                   limit_ms=27.7, accuracy="int8_miou")
    assert int8.measured == ("fast", "twin_pre_down") and int8.strongest.name == "fast" and int8.margin == 7.0


def test_the_line_when_nothing_can_be_compared():
    none = compare({"code": "found", "measured_miou": 44.5}, {}, published_codes=CODES, published_ms=MS, limit_ms=27.7)
    assert none.strongest is None and none.beats is None and "3, 0 of them measured" in none.text()
    assert "none measured" in none.text()
    empty = compare({"code": "found", "measured_miou": 44.5}, {}, published_codes={}, published_ms={}, limit_ms=27.7)
    assert empty.text() == "published variants within the target: none, so there is no published rival to compare with"
    # a run that found no point still names the strongest rival, and says so
    rows = {CODES["twin"]: _row("twin", 46.0)}
    lonely = compare(None, rows, published_codes=CODES, published_ms=MS, limit_ms=27.7)
    assert lonely.margin is None and lonely.text().endswith("19.60 ms (table); no found point to compare with it")


def test_a_run_summary_record_reads_back_whatever_wrote_it():
    rows = {CODES["twin"]: _row("twin", 46.0)}
    r = compare({"code": "found", "measured_miou": 47.0}, rows, published_codes=CODES, published_ms=MS, limit_ms=27.7)
    record = dataclasses.asdict(r)  # as run_summary.json holds it (JSON turns the tuple into a list)
    assert PublishedRivals.from_dict({**record, "measured": list(record["measured"])}) == r
    assert PublishedRivals.from_dict({**record, "a_newer_key": 1}) == r
    older = {k: v for k, v in record.items() if k != "found_ms"}
    assert PublishedRivals.from_dict(older).text() == r.text()


def test_the_rivals_are_the_predicted_most_accurate_within_the_target_whatever_is_measured():
    args = dict(published_ms=MS, limit_ms=27.7)
    assert rivals_to_measure(PREDICTED, k=1, **args) == ["twin"]  # a tie: the faster; slow is outside the target
    assert rivals_to_measure(PREDICTED, k=5, **args) == ["twin", "twin_pre_down", "fast"]
    assert rivals_to_measure(PREDICTED, k=0, **args) == []
    assert rivals_to_measure(PREDICTED, k=1, published_ms=MS, limit_ms=5.0) == []


def test_the_points_to_evaluate_gain_the_rival_once():
    published = {n: f"arch-{n}" for n in MS}  # stands in for Archs: compared by value, as Arch is
    args = dict(predicted=PREDICTED, published=published, published_ms=MS, limit_ms=27.7)
    assert with_rivals(["cand"], k=1, **args) == ["cand", "arch-twin"]
    assert with_rivals(["cand", "arch-twin"], k=1, **args) == ["cand", "arch-twin"]  # the reference already: not twice
    assert with_rivals(["cand"], k=2, **args) == ["cand", "arch-twin", "arch-twin_pre_down"]
    assert with_rivals(["cand"], k=0, **args) == ["cand"]  # evaluate.rivals: 0
    assert with_rivals(["cand"], k=1, predicted=PREDICTED, published=published, published_ms=MS, limit_ms=None) == ["cand"]


def test_the_rival_the_rounds_chase_is_the_strongest_measured_unless_it_is_the_reference():
    rows = {CODES[n]: _row(n, m) for n, m in (("fast", 38.0), ("twin", 46.0), ("twin_pre_down", 36.0), ("slow", 60.0))}
    args = dict(published_codes=CODES, published_ms=MS, limit_ms=27.7)
    assert strongest_rival(rows, **args, reference="twin_pre_down") == "twin"
    assert strongest_rival(rows, **args, reference="twin") is None  # out-scoring the reference is the rule already
    assert strongest_rival({}, **args) is None and strongest_rival(rows, **{**args, "limit_ms": None}) is None
