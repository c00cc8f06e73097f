"""ffnet_nas.settings: the two training-settings classes, their checks and their dict form."""

from __future__ import annotations

import dataclasses
import math

import pytest

from ffnet_nas.settings import BlockTrainConfig, TrainConfig
from ffnet_nas.space.errors import InvalidInput


def test_defaults_are_unchanged():
    # the defaults are part of existing runs' resume fingerprints and the block weight files
    assert BlockTrainConfig().to_dict() == {"steps": 300, "batch_size": 8, "lr": 2e-3, "weight_decay": 0.0, "seed": 0,
                                            "eval_batch_size": 16}
    full = TrainConfig()
    assert (full.steps, full.batch_size, full.optimizer, full.lr, full.schedule, full.kd_weight, full.grad_clip) == \
        (1000, 8, "sgd", 0.01, "poly", 0.0, None)


@pytest.mark.parametrize("cls", [TrainConfig, BlockTrainConfig])
def test_frozen_and_keyword_only(cls):
    with pytest.raises(TypeError):
        cls(10)
    config = cls(steps=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.steps = 6


@pytest.mark.parametrize("cls", [TrainConfig, BlockTrainConfig])
def test_dict_round_trip(cls):
    config = cls(steps=7, batch_size=3, lr=0.05, seed=4)
    assert cls.from_dict(config.to_dict()) == config
    assert cls.from_dict({}) == cls()


@pytest.mark.parametrize("cls", [TrainConfig, BlockTrainConfig])
def test_from_dict_refuses_unknown_keys_in_one_line(cls):
    with pytest.raises(InvalidInput, match=r"unknown keys \['lr_rate', 'stepz'\]") as err:
        cls.from_dict({"stepz": 3, "lr_rate": 0.1, "batch_size": 2})
    assert "\n" not in str(err.value) and "steps" in str(err.value)
    with pytest.raises(InvalidInput, match="expected a mapping"):
        cls.from_dict([("steps", 3)])


@pytest.mark.parametrize("cls", [TrainConfig, BlockTrainConfig])
@pytest.mark.parametrize("field, value, expected", [
    ("steps", 0, "steps=0: expected a positive number of steps"),
    ("steps", 2.5, "steps=2.5: expected a positive number of steps"),
    ("steps", True, "steps=True: expected"),
    ("batch_size", 0, "batch_size=0: expected a positive integer"),
    ("lr", 0.0, "lr=0.0: expected a positive learning rate"),
    ("lr", math.nan, "lr=nan: expected a positive learning rate"),
    ("lr", math.inf, "lr=inf: expected"),
    ("lr", 100.0, "lr=100.0: expected a positive learning rate, at most 10"),
    ("lr", "1e-3", "lr='1e-3': expected"),  # YAML 1.1 reads 1e-3 as a string
    ("weight_decay", -1e-4, "weight_decay=-0.0001: expected a finite number >= 0"),
    ("weight_decay", math.inf, "weight_decay=inf: expected"),
    ("seed", -1, "seed=-1: expected an integer >= 0"),
])
def test_shared_fields_are_checked(cls, field, value, expected):
    with pytest.raises(InvalidInput, match="^" + expected.replace("(", r"\(").replace("[", r"\[")) as err:
        cls(**{field: value})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs, expected", [
    ({"optimizer": "lion"}, "optimizer='lion': expected sgd or adamw"),
    ({"schedule": "step"}, "schedule='step': expected poly, cosine, constant"),
    ({"momentum": 1.0}, "momentum=1.0: expected a number in [0, 1)"),
    ({"poly_power": 0.0}, "poly_power=0.0: expected a finite number > 0"),
    ({"warmup_steps": -1}, "warmup_steps=-1: expected 0 or more"),
    ({"kd_weight": -1.0}, "kd_weight=-1.0, kd_temperature=1.0: expected weight >= 0 and temperature > 0"),
    ({"kd_temperature": 0.0}, "kd_weight=0.0, kd_temperature=0.0: expected weight >= 0 and temperature > 0"),
    ({"checkpoint_every": 0}, "checkpoint_every=0: expected a positive number of steps"),
    ({"num_workers": -1}, "num_workers=-1: expected 0 or more"),
    ({"grad_clip": -1.0}, "grad_clip=-1.0: expected None or a finite gradient norm"),
])
def test_full_network_fields_are_checked(kwargs, expected):
    with pytest.raises(InvalidInput) as err:
        TrainConfig(**kwargs)
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)


def test_block_eval_batch_size_is_checked():
    with pytest.raises(InvalidInput, match="^eval_batch_size=0: expected a positive integer"):
        BlockTrainConfig(eval_batch_size=0)


def test_grad_clip_zero_still_means_no_clipping():
    assert TrainConfig(grad_clip=0.0).grad_clip == 0.0 and TrainConfig(grad_clip=None).grad_clip is None
