"""The verdict's noise check: the best point and the reference fine-tuned again under the next seed."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ffnet_nas.budgets import finetune_config
from ffnet_nas.evaluate import evaluate_points, held_out_miou, read_evaluated
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.searchspace import from_dict
from ffnet_nas.win_check import WinCheck, check_win, judge, second_seed_scores
from tests.helpers.micro import TINY_SPACE, micro_workdir

HW = (32, 64)
TINY = TINY_SPACE
CONFIG = finetune_config(steps=2, batch_size=2, checkpoint_every=1)
VAL_IMAGES = 4


def test_the_win_is_larger_than_the_noise_only_when_every_win_beats_every_same_point_difference():
    first = {"b": (50.0, 48.0), "r": (40.0, 39.0)}
    close = {"b": (49.0, 48.5), "r": (41.0, 39.5)}
    check = judge([first, close], best="b", reference="r", seeds=(0, 1))
    assert check.wins == {"seed 0, scoring images": 10.0, "seed 0, held-out images": 9.0,
                          "seed 1, scoring images": 8.0, "seed 1, held-out images": 9.0}
    assert check.same_point == {"b": 1.0, "r": 1.0} and check.exceeds_noise and "8.0x" in check.text()
    noisy = judge([first, {"b": (41.0, 38.0), "r": (40.0, 39.0)}], best="b", reference="r", seeds=(0, 1))
    assert noisy.smallest_win == -1.0 and not noisy.exceeds_noise and "NO" in noisy.text()
    # no held-out images (the scores used the whole split): the scoring images alone
    alone = judge([{"b": (50.0, math.nan), "r": (40.0, math.nan)}, {"b": (45.0, math.nan), "r": (41.0, math.nan)}],
                  best="b", reference="r", seeds=(0, 1))
    assert list(alone.wins) == ["seed 0, scoring images", "seed 1, scoring images"]
    assert alone.largest_same_point == 5.0 and not alone.exceeds_noise  # 4 < 5: within the noise
    assert math.isnan(alone.held_out_low) and "interval" not in alone.text()  # no held-out images: no interval


def test_a_third_seed_compares_every_pair_of_seeds_and_can_overturn_two_that_agreed():
    first, second = {"b": (50.0, 49.0), "r": (45.0, 44.0)}, {"b": (50.2, 49.1), "r": (45.1, 44.2)}
    two = judge([first, second], best="b", reference="r", seeds=(0, 1))
    assert two.exceeds_noise and two.largest_same_point == pytest.approx(0.2)
    # the third seed moves the best point 4.5 mIoU on the held-out images: seeds 1 and 2 differ most
    third = {"b": (48.0, 44.6), "r": (45.0, 44.0)}
    three = judge([first, second, third], best="b", reference="r", seeds=(0, 1, 2))
    assert three.seeds == (0, 1, 2) and len(three.wins) == 6
    assert three.same_point["b"] == pytest.approx(4.5) and three.same_point["r"] == pytest.approx(0.2)
    assert three.smallest_win == pytest.approx(0.6) and not three.exceeds_noise
    # held-out wins 5.0, 4.9, 0.6: mean 3.5, sd 2.51, t(0.975, 2) = 4.303 -> half-width 6.24
    assert three.held_out_win == pytest.approx(3.5)
    assert (three.held_out_low, three.held_out_high) == (pytest.approx(-2.74, abs=0.01), pytest.approx(9.74, abs=0.01))
    assert "under 3 seeds" in three.text() and "[-2.74, +9.74]" in three.text()
    with pytest.raises(ValueError, match="one score table per seed"):
        judge([first], best="b", reference="r", seeds=(0,))


def test_a_point_that_loses_by_more_than_the_noise_is_told_apart_from_a_tie():
    worse = judge([{"b": (40.0, 39.0), "r": (45.0, 44.5)}, {"b": (40.5, 39.2), "r": (45.3, 44.0)}], best="b",
                  reference="r", seeds=(0, 1), precision="fp32")
    assert worse.loses_beyond_noise and not worse.exceeds_noise
    text = worse.text(against="the strongest published rival")
    assert text.startswith("win over the strongest published rival measured under 2 seeds")
    assert text.endswith("larger than the noise: NO: the strongest published rival is the more accurate, by more than the noise")
    tie = judge([{"b": (40.0, 39.0), "r": (40.5, 39.4)}, {"b": (40.6, 39.2), "r": (40.1, 39.0)}], best="b",
                reference="r", seeds=(0, 1))
    assert not tie.loses_beyond_noise and tie.text().endswith("NO: the win is within the yardstick's noise")
    # as run_summary.json keeps it (seeds a list, the text beside the fields) and reads it back
    import dataclasses
    import json

    kept = json.loads(json.dumps({**dataclasses.asdict(worse), "text": worse.text()}))
    assert WinCheck.from_dict(kept) == worse and WinCheck.from_dict(kept).loses_beyond_noise


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    space = from_dict(TINY)
    ws = micro_workdir(tmp_path_factory.mktemp("win"), TINY, hw=HW)
    points = list(dict.fromkeys(space.sample(i) for i in range(6)))[:3]
    evaluate_points(points, workspace=ws, config=CONFIG, val_images=VAL_IMAGES, progress=False)
    return ws, points


def _rows(ws, points):
    rows = read_evaluated(ws.evaluated_path).set_index("code")
    held = held_out_miou([a.code for a in points], workspace=ws, val_images=VAL_IMAGES)
    return [{"code": a.code, "measured_miou": rows.loc[a.code, "measured_miou"], "held_out_miou": held[a.code]}
            for a in points]


def test_the_two_points_are_fine_tuned_again_once_and_the_run_files_stay(workdir):
    ws, points = workdir
    points = points[:2]
    evaluated = ws.evaluated_path.read_bytes()
    best, ref = _rows(ws, points)
    check = check_win(workspace=ws, best=best, reference=ref, config=CONFIG, val_images=VAL_IMAGES, progress=False)
    assert check.seeds == (0, 1) and len(check.wins) == 4  # the default: the run's seed and one more
    assert ws.evaluated_path.read_bytes() == evaluated  # the run's rows and models are not replaced
    table = pd.read_csv(ws.second_seed_path)
    assert len(table) == 2 and table["held_out_miou"].notna().all()
    assert not list(ws.evaluated_dir.rglob("seed1_state.pt"))  # resume states deleted once scored
    stamp = ws.second_seed_path.stat().st_mtime_ns
    again = check_win(workspace=ws, best=best, reference=ref, config=CONFIG, val_images=VAL_IMAGES, progress=False)
    assert again == check and ws.second_seed_path.stat().st_mtime_ns == stamp  # nothing fine-tuned again
    # another setting is another measurement, beside the first
    second_seed_scores(points[:1], workspace=ws, config=finetune_config(steps=1, batch_size=2, seed=1),
                       val_images=VAL_IMAGES, progress=False)
    assert len(pd.read_csv(ws.second_seed_path)) == 3
    # a third seed fine-tunes only what it lacks: the seed-1 rows are reused
    three = check_win(workspace=ws, best=best, reference=ref, config=CONFIG, val_images=VAL_IMAGES, seeds=3,
                      progress=False)
    assert three.seeds == (0, 1, 2) and len(three.wins) == 6 and len(pd.read_csv(ws.second_seed_path)) == 5
    assert {k: v for k, v in three.wins.items() if "seed 2" not in k} == check.wins
    assert math.isfinite(three.held_out_low)
    with pytest.raises(InvalidInput, match="seeds=1: expected at least 2"):
        check_win(workspace=ws, best=best, reference=ref, config=CONFIG, val_images=VAL_IMAGES, seeds=1, progress=False)


def test_checking_the_best_point_against_a_rival_too_fine_tunes_only_the_rival(workdir):
    """The run checks the best point against the reference and then against the strongest published
    rival: the best point's other seeds are on file by then, so the rival's check costs its own fine-tunes only."""
    ws, points = workdir
    best, ref, rival = _rows(ws, points)
    against_ref = check_win(workspace=ws, best=best, reference=ref, config=CONFIG, val_images=VAL_IMAGES, progress=False)
    rows = len(pd.read_csv(ws.second_seed_path))
    against_rival = check_win(workspace=ws, best=best, reference=rival, config=CONFIG, val_images=VAL_IMAGES,
                              progress=False)
    assert len(pd.read_csv(ws.second_seed_path)) == rows + 1  # the rival under seed 1, nothing else
    assert against_rival.same_point[best["code"]] == against_ref.same_point[best["code"]]  # the same best-point rows
    assert set(against_rival.same_point) == {best["code"], rival["code"]}


def test_an_int8_check_scores_the_quantised_models_under_its_own_setting(workdir):
    """In an INT8 run the other seeds are scored as the verdict is: the fine-tuned model quantised
    (evaluate.int8.Int8Scorer). Their rows carry the precision in their setting, so a float check of the
    same points never reuses them, and the reverse."""
    import json

    ws, points = workdir
    points = points[:2]
    config = finetune_config(steps=1, batch_size=2, seed=5)
    before = len(pd.read_csv(ws.second_seed_path)) if ws.second_seed_path.exists() else 0
    int8 = second_seed_scores(points, workspace=ws, config=config, val_images=VAL_IMAGES, progress=False,
                              precision="int8")
    table = pd.read_csv(ws.second_seed_path)
    assert len(table) == before + 2
    settings = [json.loads(s) for s in table["setting"]]
    assert sum(s.get("precision") == "int8" for s in settings) == 2
    assert all(0 <= a <= 100 and 0 <= b <= 100 for a, b in int8.values())
    fp32 = second_seed_scores(points, workspace=ws, config=config, val_images=VAL_IMAGES, progress=False)
    assert len(pd.read_csv(ws.second_seed_path)) == before + 4 and set(fp32) == set(int8)
    with pytest.raises(InvalidInput, match="precision 'int4'"):
        second_seed_scores(points, workspace=ws, config=config, val_images=VAL_IMAGES, progress=False, precision="int4")


def test_a_rows_setting_names_held_batchnorm_only_when_it_is_on():
    """Rows written before TrainConfig.freeze_bn existed keep matching (a finished run resumed does
    not fine-tune its verdict's points again); a held-BatchNorm fine-tune is another setting."""
    import dataclasses
    import json

    from ffnet_nas.win_check import _setting

    before = json.dumps({"finetune": {k: v for k, v in dataclasses.asdict(CONFIG).items() if k != "freeze_bn"},
                         "val_images": VAL_IMAGES, "score_hw": HW}, sort_keys=True, default=str)
    assert _setting(CONFIG, VAL_IMAGES, HW) == before
    held = dataclasses.replace(CONFIG, freeze_bn=True, grad_clip=5.0)
    assert _setting(held, VAL_IMAGES, HW) != before and '"freeze_bn": true' in _setting(held, VAL_IMAGES, HW)
