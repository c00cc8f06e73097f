"""Training settings, one home: what a training run is told, validated where it is made.

    TrainConfig        full networks: the teacher and the fine-tuning of searched points
                       (optimiser, LR schedule, KD weight/temperature, checkpointing, seed)
    BlockTrainConfig   one student block's distillation on cached teacher features

Both are frozen, keyword-only dataclasses. A bad value raises `InvalidInput` in one line that
names the field, the value and what is expected, at construction time, so nothing fails an
hour into a run. `to_dict()` / `from_dict()` carry them through YAML or JSON; `from_dict`
refuses keys it does not know rather than silently dropping a typo'd setting.

This module owns only the values; `ffnet_nas.training` and `ffnet_nas.distill.train` own the
loops that read them. It also says which accuracy a point is judged by per precision
(`accuracy_column`: the fine-tuned model's `measured_miou`, or `int8_miou` under an INT8 latency
table), a value every step that ranks or compares points reads.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, TypeVar

from ffnet_nas.space.errors import InvalidInput

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("poly", "cosine", "constant")
AMP_DTYPES = ("bf16", "fp16")  # mixed precision (torch.autocast dtypes)
# what a run may be told (RunConfig.amp): an autocast dtype, or fp32 (none, where the budget would use one)
RUN_AMPS = (*AMP_DTYPES, "fp32")


def autocast_dtype(amp: str | None) -> str | None:
    """The autocast dtype a precision word means (`RUN_AMPS`): fp32, like None, is float32, no autocast."""
    return None if amp in (None, "fp32") else amp


def native_bf16_cpu() -> bool:
    """Whether this CPU runs bf16 arithmetic natively (AVX512-BF16 or AMX): there autocast runs the
    convolutions in bf16 and is faster than float32 (1.35x for one quick fine-tune on an AMD EPYC
    with avx512_bf16, docs/results.md); elsewhere torch emulates bf16 and is slower. Torch is
    imported here, not at module level."""
    import torch

    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name)()) for name in checks if cpu is not None and hasattr(cpu, name))


def check_amp(amp: str | None, device: object) -> None:
    """fp16 autocast needs CUDA (bf16 runs anywhere): one line, from the CLI before any work and from
    the training loops that would otherwise fail inside torch. `device`: a name or a torch.device."""
    if amp == "fp16" and not str(device).startswith("cuda"):
        raise InvalidInput(f"amp fp16 on {device}: float16 autocast needs a CUDA device; expected --amp bf16 on the CPU")


def autocast_factory(amp: str | None, device: object):
    """A zero-argument factory of the autocast context for `amp` on `device` (a no-op context for
    float32): the one recipe of the fine-tuning and block-training loops. Torch is imported here,
    not at module level, so the CLI can build its parser without it."""
    import contextlib

    import torch

    if amp is None:
        return contextlib.nullcontext
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    device_type = torch.device(device).type
    return lambda: torch.autocast(device_type=device_type, dtype=dtype)
# A learning rate above this is a typo (1e2 for 1e-2), not a setting: no recipe here comes near it.
MAX_LR = 10.0

_T = TypeVar("_T", bound="_Settings")


def _is_int(value: Any) -> bool:
    # bool is an int subclass; True as a step count is a mistake, not 1
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))


class _Settings:
    """to_dict/from_dict and the one-line error shared by both settings classes."""

    def _bad(self, name: str, expected: str) -> InvalidInput:
        return InvalidInput(f"{name}={getattr(self, name)!r}: expected {expected}")

    def _need_int(self, name: str, *, minimum: int, expected: str) -> None:
        value = getattr(self, name)
        if not _is_int(value) or value < minimum:
            raise self._bad(name, expected)

    def _need_real(self, name: str, *, low: float, high: float = math.inf, low_open: bool = False,
                   high_open: bool = False, expected: str) -> None:
        value = getattr(self, name)
        if not _is_real(value):
            raise self._bad(name, expected)
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (above and below):
            raise self._bad(name, expected)

    def to_dict(self) -> dict[str, Any]:
        """Plain values by field name (what `from_dict` takes back). `amp`, `average_tail` and
        `precise_bn` only when set: settings without them keep the dict, and so the block files and
        resume fingerprints, they had before the fields existed."""
        out = dataclasses.asdict(self)  # type: ignore[call-overload]
        if out.get("amp", "") is None:
            del out["amp"]
        for name in ("average_tail", "precise_bn", "freeze_bn"):  # the same for the end-of-run settings when off
            if name in out and not out[name]:
                del out[name]
        return out

    @classmethod
    def from_dict(cls: type[_T], data: Mapping[str, Any]) -> _T:
        """The settings in `data`; missing fields take their defaults, unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"{cls.__name__} settings {data!r}: expected a mapping of field names to values")
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(str(k) for k in data if k not in names)
        if unknown:
            raise InvalidInput(f"{cls.__name__}: unknown keys {unknown}; expected some of: {', '.join(names)}")
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class TrainConfig(_Settings):
    """Training a whole network (the teacher, or fine-tuning a searched point).

    The field set is part of the resume fingerprint of a training checkpoint
    (`ffnet_nas.training._fingerprint`): adding a field makes older checkpoints refuse to
    resume, so add one only with a reason.
    """

    steps: int = 1000
    batch_size: int = 8
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "poly"
    poly_power: float = 0.9
    warmup_steps: int = 0
    kd_weight: float = 0.0
    kd_temperature: float = 1.0
    checkpoint_every: int = 50
    seed: int = 0
    num_workers: int = 0
    grad_clip: float | None = None  # None or 0: no clipping
    # mixed precision: None (float32), "bf16" (autocast; CPU and GPU) or "fp16" (autocast with a
    # gradient scaler; CUDA only). Part of the resume fingerprint only when set, so checkpoints
    # from before the field resume.
    amp: str | None = None
    # The weights a run ends with (ffnet_nas.averaging): the mean of the weights over the last
    # `average_tail` of the steps (a fraction, so a config keeps its meaning when only the steps
    # change; 0: the last step's weights; 0.5: the second half), and BatchNorm statistics recomputed
    # on the first `precise_bn` training crops (0: the running averages training left). Part of the
    # resume fingerprint only when set, so checkpoints from before the fields resume.
    average_tail: float = 0.0
    precise_bn: int = 0
    # BatchNorm held fixed while training: its statistics are recomputed once, before the first
    # step, on the first `precise_bn` training crops (0: the model's own are kept), and then
    # normalise every batch as at inference; the layers' scale and shift still train. Statistics of
    # 8 crops change with every batch the seed draws; fixed ones take that noise out of a fine-tune.
    # Without batch statistics nothing rescales a layer whose weights grow, so set `grad_clip` too.
    # The ending keeps these statistics (only the weights are averaged). Part of the resume
    # fingerprint only when set.
    freeze_bn: bool = False

    @property
    def average_steps(self) -> int:
        """How many of the last steps' weights are averaged (0: none)."""
        return max(1, round(self.average_tail * self.steps)) if self.average_tail else 0

    def __post_init__(self) -> None:
        self._need_int("steps", minimum=1, expected="a positive number of steps")
        self._need_int("batch_size", minimum=1, expected="a positive integer")
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise self._bad("amp", f"{' or '.join(AMP_DTYPES)} or None (float32)")
        if self.optimizer not in OPTIMIZERS:
            raise self._bad("optimizer", " or ".join(OPTIMIZERS))
        if self.schedule not in SCHEDULES:
            raise self._bad("schedule", ", ".join(SCHEDULES))
        self._need_real("lr", low=0, high=MAX_LR, low_open=True,
                        expected=f"a positive learning rate, at most {MAX_LR:g}")
        self._need_real("momentum", low=0, high=1, high_open=True, expected="a number in [0, 1)")
        self._need_real("weight_decay", low=0, expected="a finite number >= 0")
        self._need_real("poly_power", low=0, low_open=True, expected="a finite number > 0")
        self._need_int("warmup_steps", minimum=0, expected="0 or more")
        if not (_is_real(self.kd_weight) and _is_real(self.kd_temperature)) or self.kd_weight < 0 or self.kd_temperature <= 0:
            # one message for the pair (its text predates this module; callers match on it)
            raise InvalidInput(f"kd_weight={self.kd_weight}, kd_temperature={self.kd_temperature}: "
                               "expected weight >= 0 and temperature > 0")
        self._need_int("checkpoint_every", minimum=1, expected="a positive number of steps")
        self._need_int("seed", minimum=0, expected="an integer >= 0")
        self._need_int("num_workers", minimum=0, expected="0 or more data-loader workers")
        if self.grad_clip is not None:
            self._need_real("grad_clip", low=0, expected="None or a finite gradient norm >= 0 (0: no clipping)")
        self._need_int("precise_bn", minimum=0, expected="0 (off) or a number of training crops")
        self._need_real("average_tail", low=0, high=1, expected="a fraction of the steps in [0, 1] (0: off)")
        if not isinstance(self.freeze_bn, bool):
            raise self._bad("freeze_bn", "true or false")
        if self.average_tail and not (self.precise_bn or self.freeze_bn):
            raise self._bad("average_tail", "0 unless precise_bn or freeze_bn is set too: averaged weights need "
                                            "BatchNorm statistics of their own, or fixed ones")

    def lr_at(self, step: int) -> float:
        """Learning rate for optimisation step `step` (0-based): linear warm-up, then the schedule."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        t = min(1.0, (step - self.warmup_steps) / span)
        if self.schedule == "poly":
            return self.lr * (1 - t) ** self.poly_power
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * t))
        return self.lr


@dataclass(frozen=True, kw_only=True)
class BlockTrainConfig(_Settings):
    """Distilling one student block on cached teacher features (AdamW + cosine decay).

    Stored in every block's weight file (`ffnet_nas.distill.library`) as `to_dict()`.
    """

    steps: int = 300
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 0.0
    seed: int = 0
    eval_batch_size: int = 16
    amp: str | None = None  # as TrainConfig.amp

    def __post_init__(self) -> None:
        self._need_int("steps", minimum=1, expected="a positive number of steps")
        self._need_int("batch_size", minimum=1, expected="a positive integer")
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise self._bad("amp", f"{' or '.join(AMP_DTYPES)} or None (float32)")
        self._need_real("lr", low=0, high=MAX_LR, low_open=True,
                        expected=f"a positive learning rate, at most {MAX_LR:g}")
        self._need_real("weight_decay", low=0, expected="a finite number >= 0")
        self._need_int("seed", minimum=0, expected="an integer >= 0")
        self._need_int("eval_batch_size", minimum=1, expected="a positive integer")


PRECISIONS = ("fp32", "int8")  # what a point's accuracy is scored in
# The column a run ranks and judges points by, per precision. Under an INT8 latency table the run
# ships INT8 models, so their accuracy is the quantised model's (int8_miou), not the float one's.
ACCURACY_COLUMNS = {"fp32": "measured_miou", "int8": "int8_miou"}


def accuracy_column(precision: str) -> str:
    """The evaluated table's column that holds a point's accuracy in `precision` (`PRECISIONS`)."""
    if precision not in ACCURACY_COLUMNS:
        raise InvalidInput(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return ACCURACY_COLUMNS[precision]


def accuracy_label(precision_or_column: str) -> str:
    """How the CLI and the report name that accuracy ("mIoU", or "INT8 mIoU"), from a precision or
    from the column itself (what a run summary records)."""
    column = ACCURACY_COLUMNS.get(precision_or_column, precision_or_column)
    return "INT8 mIoU" if column == "int8_miou" else "mIoU"
