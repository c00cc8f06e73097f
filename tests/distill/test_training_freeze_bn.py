"""A fine-tune with BatchNorm held fixed (TrainConfig.freeze_bn): statistics recomputed once before
the first step, kept through training, a resume and the averaged ending; scale and shift still train."""

import copy

import pytest
import torch
from torch import nn

from ffnet_nas.averaging import recalibrate_bn
from ffnet_nas.data import fixed_batches, make_dataset
from ffnet_nas.settings import TrainConfig
from ffnet_nas.space.builder import build_model
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.training import _fingerprint, train
from tests.helpers.kill import Killed, kill_at

TINY = "stemC-basic-d1.1.1-w16.24.32-s2-upC-segC-nearest"
HW = (32, 64)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def train_ds():
    return make_dataset("synthetic:1", "train", size_hw=HW, augment=True, num_images=16, scale_range=(0.75, 1.5))


def _model(seed=0):
    torch.manual_seed(seed)
    return build_model(TINY, num_classes=8)


def _norms(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _stats(model):
    return {k: v.detach().clone() for k, v in model.named_buffers() if "running" in k}


def test_statistics_are_recomputed_once_and_held_while_scale_and_shift_train(train_ds):
    config = TrainConfig(steps=4, batch_size=2, freeze_bn=True, precise_bn=4, grad_clip=1.0)
    start = _model()
    expected = copy.deepcopy(start)
    recalibrate_bn(expected, fixed_batches(train_ds, batch_size=2, n_batches=2, seed=0))
    seen = []
    model = copy.deepcopy(start)

    def on_step(step, _loss):
        seen.append((all(not m.training for m in _norms(model)), _stats(model)))
        model.train()  # what an on_step that evaluates leaves behind: the next step holds BatchNorm again

    # the layers normalise with the held statistics at every step, not with the batch's
    train(model, train_ds, config=config, progress=False, on_step=on_step)
    assert len(seen) == 4 and all(held for held, _ in seen)
    for _, stats in seen:
        assert all(torch.equal(stats[k], v) for k, v in _stats(expected).items())
    assert all(torch.equal(a, b) for a, b in zip(_stats(model).values(), _stats(expected).values()))  # the ending keeps them
    weights = [m.weight for m in _norms(model)]
    assert any(not torch.equal(a, b) for a, b in zip(weights, [m.weight for m in _norms(start)]))  # scale still trains
    assert model.training and all(m.training for m in _norms(model))  # the model is left as a plain run leaves it


def test_without_precise_bn_the_model_keeps_its_own_statistics(train_ds):
    model = _model()
    own = _stats(model)
    train(model, train_ds, config=TrainConfig(steps=3, batch_size=2, freeze_bn=True), progress=False)
    assert all(torch.equal(own[k], v) for k, v in _stats(model).items())


def test_the_averaged_ending_keeps_the_held_statistics_and_averages_the_weights(train_ds):
    config = TrainConfig(steps=4, batch_size=2, freeze_bn=True, precise_bn=4, average_tail=0.5, grad_clip=1.0)
    seen = {}
    model = _model()
    train(model, train_ds, config=config, progress=False,
          on_step=lambda step, _l: seen.__setitem__(step, {k: p.detach().clone() for k, p in model.named_parameters()}))
    for name, p in model.named_parameters():
        assert torch.allclose(p, (seen[3][name] + seen[4][name]) / 2, atol=1e-6), name
    assert all(torch.equal(a, b) for a, b in zip(_stats(model).values(),
                                                   _stats(_recalibrated_start(train_ds)).values()))


def _recalibrated_start(train_ds):
    m = _model()
    recalibrate_bn(m, fixed_batches(train_ds, batch_size=2, n_batches=2, seed=0))
    return m


def test_a_killed_fine_tune_resumes_with_the_statistics_it_started_with(train_ds, tmp_path):
    config = TrainConfig(steps=6, batch_size=2, checkpoint_every=2, freeze_bn=True, precise_bn=4, average_tail=0.5,
                         grad_clip=1.0)
    straight = _model()
    train(straight, train_ds, config=config, progress=False)
    ckpt = tmp_path / "state.pt"
    with pytest.raises(Killed):
        train(_model(), train_ds, config=config, checkpoint_path=ckpt, progress=False, on_step=kill_at(5))
    # another starting model: a resume must take the statistics from the checkpoint, not recompute them
    resumed = _model(seed=7)
    train(resumed, train_ds, config=config, checkpoint_path=ckpt, progress=False)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_the_setting_is_checked_and_off_keeps_older_fingerprints():
    with pytest.raises(InvalidInput, match="freeze_bn='yes': expected true or false"):
        TrainConfig(freeze_bn="yes")
    # held statistics serve averaged weights as recomputed ones do
    assert TrainConfig(steps=4, average_tail=0.5, freeze_bn=True).average_steps == 2
    off, on = TrainConfig(steps=4), TrainConfig(steps=4, freeze_bn=True, precise_bn=8)
    assert "freeze_bn" not in off.to_dict() and on.to_dict()["freeze_bn"] is True
    assert TrainConfig.from_dict(on.to_dict()) == on
    model = _model()
    assert "freeze_bn" not in _fingerprint(model, off, {})["config"]
    assert _fingerprint(model, on, {}) != _fingerprint(model, TrainConfig(steps=4, precise_bn=8), {})
