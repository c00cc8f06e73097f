"""The weights a training run ends with: the tail average and precise BatchNorm statistics
(ffnet_nas.averaging); and a run with BatchNorm held (TrainConfig.freeze_bn): statistics
recomputed once before the first step, kept through training, a resume and the averaged ending,
while scale and shift still train."""

import copy

import pytest
import torch

from ffnet_nas.averaging import batch_norms, recalibrate_bn
from ffnet_nas.data import fixed_batches, make_dataset
from ffnet_nas.settings import TrainConfig
from ffnet_nas.space.builder import build_model
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.training import _fingerprint, load_train_state, train
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


def _params(model):
    return {k: p.detach().clone() for k, p in model.named_parameters()}


def _recorder(steps_wanted, seen):
    model_ref = {}

    def on_step(step, _loss):
        if step in steps_wanted:
            seen[step] = _params(model_ref["model"])
    return model_ref, on_step


def test_the_run_ends_with_the_mean_of_its_last_steps_and_statistics_over_fixed_crops(train_ds):
    config = TrainConfig(steps=6, batch_size=2, average_tail=0.5, precise_bn=4)
    seen: dict = {}
    model = _model()
    ref, on_step = _recorder({4, 5, 6}, seen)
    ref["model"] = model
    train(model, train_ds, config=config, progress=False, on_step=on_step)
    assert model.training  # as a run without the settings leaves it
    for name, p in model.named_parameters():
        assert torch.allclose(p, (seen[4][name] + seen[5][name] + seen[6][name]) / 3, atol=1e-6), name
    # the statistics are those of the averaged weights over the first 4 crops, drawn under seed 0
    expected = copy.deepcopy(model)
    recalibrate_bn(expected, fixed_batches(train_ds, batch_size=2, n_batches=2, seed=0))
    for (name, a), b in zip(model.named_buffers(), expected.buffers()):
        assert torch.equal(a, b), name
    # without the settings the run ends at its last step's weights
    plain = _model()
    train(plain, train_ds, config=TrainConfig(steps=6, batch_size=2), progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(plain.parameters(), model.parameters()))


def test_precise_bn_alone_keeps_the_weights_and_replaces_only_the_statistics(train_ds):
    plain, precise = _model(), _model()
    train(plain, train_ds, config=TrainConfig(steps=3, batch_size=2), progress=False)
    train(precise, train_ds, config=TrainConfig(steps=3, batch_size=2, precise_bn=4), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), precise.parameters()))
    means = [(a, b) for (n, a), b in zip(plain.named_buffers(), precise.buffers()) if n.endswith("running_mean")]
    assert means and any(not torch.equal(a, b) for a, b in means)


def test_a_kill_inside_the_tail_resumes_to_the_same_average(train_ds, tmp_path):
    config = TrainConfig(steps=6, batch_size=2, checkpoint_every=2, average_tail=0.5, precise_bn=4)
    straight = _model()
    train(straight, train_ds, config=config, progress=False)
    ckpt = tmp_path / "state.pt"
    with pytest.raises(Killed):
        train(_model(), train_ds, config=config, checkpoint_path=ckpt, progress=False, on_step=kill_at(5))
    saved = load_train_state(ckpt)
    assert saved["step"] == 4 and saved["average_steps"] == 6 and set(saved["average"]) == set(_params(straight)) | {"__steps__"}
    assert saved["average"]["__steps__"].item() == 1  # step 4 of the tail 4-6
    resumed = _model(seed=7)
    train(resumed, train_ds, config=config, checkpoint_path=ckpt, progress=False)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    # resuming the finished run applies the same average again
    again = _model(seed=8)
    assert train(again, train_ds, config=config, checkpoint_path=ckpt, progress=False).start_step == 6
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), again.state_dict().values()))


def test_a_damaged_partial_sum_is_refused(train_ds, tmp_path):
    config = TrainConfig(steps=4, batch_size=2, checkpoint_every=4, average_tail=0.5, precise_bn=2)
    ckpt = tmp_path / "state.pt"
    train(_model(), train_ds, config=config, checkpoint_path=ckpt, progress=False)
    state = torch.load(ckpt, weights_only=True)
    name = next(iter(state["average"]))
    state["average"][name] = state["average"][name] + 1
    torch.save(state, ckpt)
    with pytest.raises(InvalidInput, match="is damaged"):
        load_train_state(ckpt)


def test_resuming_to_more_steps_starts_a_new_tail(train_ds, tmp_path):
    ckpt = tmp_path / "state.pt"
    short = TrainConfig(steps=4, batch_size=2, checkpoint_every=2, average_tail=0.5, precise_bn=2)
    train(_model(), train_ds, config=short, checkpoint_path=ckpt, progress=False)
    seen: dict = {}
    model = _model(seed=3)
    ref, on_step = _recorder({5, 6}, seen)
    ref["model"] = model
    longer = TrainConfig(steps=6, batch_size=2, checkpoint_every=2, average_tail=0.5, precise_bn=2)
    assert train(model, train_ds, config=longer, checkpoint_path=ckpt, progress=False, on_step=on_step).start_step == 4
    # the 6-step tail is steps 4-6, but step 4 ran before the resume: the mean is over 5 and 6, not
    # the 4-step run's tail (steps 3 and 4) nor a sum of two steps divided by three
    for name, p in model.named_parameters():
        assert torch.allclose(p, (seen[5][name] + seen[6][name]) / 2, atol=1e-6), name


def test_settings_are_checked_and_off_keeps_older_fingerprints():
    with pytest.raises(InvalidInput, match=r"average_tail=1.5: expected a fraction of the steps in \[0, 1\]"):
        TrainConfig(steps=4, average_tail=1.5, precise_bn=8)
    with pytest.raises(InvalidInput, match="average_tail=0.5: expected 0 unless precise_bn or freeze_bn is set too"):
        TrainConfig(steps=4, average_tail=0.5)
    with pytest.raises(InvalidInput, match="precise_bn=-1"):
        TrainConfig(precise_bn=-1)
    off = TrainConfig(steps=4)
    assert "average_tail" not in off.to_dict() and "precise_bn" not in off.to_dict()
    assert TrainConfig.from_dict(off.to_dict()) == off
    on = TrainConfig(steps=4, average_tail=0.5, precise_bn=8)
    assert on.average_steps == 2 and TrainConfig(steps=100, average_tail=0.5, precise_bn=8).average_steps == 50
    assert TrainConfig(steps=1, average_tail=0.1, precise_bn=8).average_steps == 1  # at least the last step
    assert TrainConfig.from_dict(on.to_dict()) == on
    model = _model()
    assert _fingerprint(model, on, {}) != _fingerprint(model, off, {})
    assert "precise_bn" not in _fingerprint(model, off, {})["config"]


def test_a_checkpoint_past_the_configured_steps_keeps_its_weights(train_ds, tmp_path, caplog):
    ckpt = tmp_path / "state.pt"
    longer = TrainConfig(steps=4, batch_size=2, checkpoint_every=2, average_tail=0.5, precise_bn=2)
    train(_model(), train_ds, config=longer, checkpoint_path=ckpt, progress=False)
    raw = load_train_state(ckpt)["model"]
    model = _model(seed=5)
    shorter = TrainConfig(steps=2, batch_size=2, checkpoint_every=2, average_tail=0.5, precise_bn=2)
    train(model, train_ds, config=shorter, checkpoint_path=ckpt, progress=False)
    assert "no step of the averaged tail ran" in caplog.text
    assert all(torch.equal(p, raw[name]) for name, p in model.named_parameters())


# BatchNorm held (TrainConfig.freeze_bn)

def _stats(model):
    return {k: v.detach().clone() for k, v in model.named_buffers() if "running" in k}


def _recalibrated_start(train_ds):
    """The model a held-BatchNorm run starts from: statistics over its first 4 crops, drawn under seed 0."""
    m = _model()
    recalibrate_bn(m, fixed_batches(train_ds, batch_size=2, n_batches=2, seed=0))
    return m


def test_statistics_are_recomputed_once_and_held_while_scale_and_shift_train(train_ds):
    config = TrainConfig(steps=4, batch_size=2, freeze_bn=True, precise_bn=4, grad_clip=1.0)
    start = _model()
    expected = _recalibrated_start(train_ds)
    seen = []
    model = copy.deepcopy(start)

    def on_step(step, _loss):
        seen.append((all(not m.training for m in batch_norms(model)), _stats(model)))
        model.train()  # what an on_step that evaluates leaves behind: the next step holds BatchNorm again

    # the layers normalise with the held statistics at every step, not with the batch's
    train(model, train_ds, config=config, progress=False, on_step=on_step)
    assert len(seen) == 4 and all(held for held, _ in seen)
    for _, stats in seen:
        assert all(torch.equal(stats[k], v) for k, v in _stats(expected).items())
    assert all(torch.equal(a, b) for a, b in zip(_stats(model).values(), _stats(expected).values()))  # the ending keeps them
    weights = [m.weight for m in batch_norms(model)]
    assert any(not torch.equal(a, b) for a, b in zip(weights, [m.weight for m in batch_norms(start)]))  # scale still trains
    assert model.training and all(m.training for m in batch_norms(model))  # the model is left as a plain run leaves it


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


def test_freeze_bn_is_checked_and_off_keeps_older_fingerprints():
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
