"""bench/bench_zero_shot_images.py: the zero-shot stage's score on fewer images, beside the stored one."""

from __future__ import annotations

import pandas as pd
import pytest

from bench import bench_zero_shot_images as bench
from ffnet_nas.budgets import finetune_config
from ffnet_nas.evaluate import Resources, evaluate_points
from ffnet_nas.fit_predictor import fit_from_table
from ffnet_nas.predictor_check import check_predictor, latest_predictor_dir
from ffnet_nas.space import Arch
from ffnet_nas.space.searchspace import from_dict
from ffnet_nas.zero_shot import STAGE_BN_BATCHES, score_point
from tests.helpers.micro import TINY_SPACE, micro_workdir

VAL_IMAGES = 4


@pytest.fixture(scope="module")
def check(tmp_path_factory):
    space = from_dict(TINY_SPACE)
    ws = micro_workdir(tmp_path_factory.mktemp("zimages"), TINY_SPACE, hw=(32, 64))
    config = finetune_config(steps=2, batch_size=2, checkpoint_every=1)
    design = list(dict.fromkeys(space.sample(i) for i in range(8)))[:4]
    evaluate_points(design, workspace=ws, config=config, val_images=VAL_IMAGES, progress=False)
    fit_from_table(ws, val_images=VAL_IMAGES, progress=False)
    check_predictor(workspace=ws, space=space, k=4, config=config, val_images=VAL_IMAGES, short_steps=1, progress=False)
    return ws


def test_the_bench_rescores_the_stored_z_and_scores_the_first_images_and_resumes(check, capsys):
    ws = check
    points = bench.measure(ws.root, fewer=2)
    assert len(points) == 4
    # all the images: the check's stored score, to the bit (measure refuses a drift)
    assert (points["z_full"] == points["zero_shot_bn"]).all()
    # the first 2: what the zero-shot stage itself scores on 2 images
    r = Resources.load(ws, predictor_dir=latest_predictor_dir(ws), val_images=VAL_IMAGES)
    code = points["code"].iloc[0]
    direct = score_point(Arch.parse(code), library=ws.library_dir, val_ds=r.val_ds, val_images=2, train_ds=r.train_ds,
                         bn_batches=STAGE_BN_BATCHES)
    assert points["z_fewer"].iloc[0] == direct
    assert (points["s_full"] > 0).all() and (points["s_fewer"] > 0).all()
    kept = pd.read_csv(ws.predictor_check_dir / bench.FILE)
    assert len(kept) == 8 and set(kept["images"]) == {2, VAL_IMAGES}
    # resume: nothing scored again, the same seconds read back
    again = bench.measure(ws.root, fewer=2)
    assert list(again["s_full"]) == list(points["s_full"])
    bench.main([str(ws.root), str(ws.root), "--images", "2"])
    out = capsys.readouterr().out
    assert out.count("| fewer minus all (paired) |") == 3 and "pooled over 2 checks" in out


def test_the_bench_refuses_as_many_images_as_the_check_scored(check):
    with pytest.raises(SystemExit, match=f"--images {VAL_IMAGES}: expected fewer than the {VAL_IMAGES} images"):
        bench.measure(check.root, fewer=VAL_IMAGES)
