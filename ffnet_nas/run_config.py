"""Everything one `ffnet-nas run` uses, as one value, and its YAML form.

    config = RunConfig(budget=get_budget("quick"))
    text = to_yaml(config)                  # `ffnet-nas run --print-config`
    config = load_config("run.yaml")        # `ffnet-nas run --config run.yaml`

`to_yaml` writes every setting (budget name, sizes, step counts, trials, seeds, target, space,
data, teacher, init, device, amp, workers, threads, formats), so the file a user edits is complete and `load_config(to_yaml(c))`
gives back `c`. A file may also be partial: what it leaves out comes from the budget it names
(`budget: {name: micro, search: {trials: 50}}`, or just `budget: micro`; default quick).

A key the run does not know, a value of the wrong type or out of range is refused in one line
that names the key (`run.yaml: budget.search.trials=0: expected a positive integer`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ffnet_nas.budgets import DEFAULT_BUDGET, Budget, budget_dict, get_budget
from ffnet_nas.settings import AMP_DTYPES, RUN_AMPS, autocast_dtype
from ffnet_nas.space.errors import InvalidInput, closest

HEADER = """\
# ffnet-nas run configuration: every setting the run uses. Edit it and run
#   ffnet-nas run --config THIS_FILE [--workdir DIR]
# Flags given on the command line override the file. Leave a key out to take the value of the
# budget named in budget.name. target: null means the median predicted latency of the space's
# published variants; threads: null means torch's default. budget.train_hw is the crop every
# training step uses; budget.input_hw the deployment input (latency, target, MACs), null: the
# space's paper resolution. teacher: a teacher file or official weights (no teacher training);
# init: imagenet:FILE starts the teacher's backbone there. amp: bf16 | fp16 | fp32 | null (null: the
# budget's: bf16 where budget.cpu_amp says so and the CPU runs bf16 natively, else float32).
"""


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    budget: Budget
    space: str = "mobile"  # built-in space name or YAML file
    # the data every step uses: teacher, distillation, fine-tuning, scoring and the held-out check
    data: str = "synthetic"
    # a teacher the user already has (one of our teacher files, or official FFNet weights for the
    # budget's teacher arch, loaded strictly): no teacher training
    teacher: str | None = None
    # where a trained teacher's backbone starts: "imagenet:FILE" (an official classification checkpoint)
    init: str | None = None
    target: str | None = None  # e.g. "latency<25ms"; None: the median of the published variants
    device: str = "cpu"  # every step: teacher, distillation, fine-tuning, scoring, latency
    # mixed precision of every training step: bf16 | fp16 (CUDA only) | fp32 (none) | None: the
    # budget's (`training_precision`)
    amp: str | None = None
    workers: int = 0  # DataLoader worker processes of every training step
    threads: int | None = None
    formats: tuple[str, ...] = ("html",)  # report formats

    def __post_init__(self) -> None:
        if self.threads is not None and (isinstance(self.threads, bool) or self.threads < 1):
            raise InvalidInput(f"threads={self.threads!r}: expected a positive integer or null")
        if self.amp is not None and self.amp not in RUN_AMPS:
            raise InvalidInput(f"amp={self.amp!r}: expected {', '.join(RUN_AMPS)} or null (the budget's)")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise InvalidInput(f"workers={self.workers!r}: expected 0 or more data-loader workers")
        if self.init is not None and not (isinstance(self.init, str) and self.init.startswith("imagenet:")
                                          and len(self.init) > len("imagenet:")):
            raise InvalidInput(f"init={self.init!r}: expected imagenet:FILE (an official ImageNet checkpoint)")
        if self.teacher is not None and self.init is not None:
            raise InvalidInput("teacher and init both given: expected one (a given teacher is not trained, so it "
                               "has no initialisation)")
        if not self.formats:
            raise InvalidInput("formats=[]: expected at least one of html, png, svg")


def training_precision(config: RunConfig, *, native_bf16: bool | None = None) -> str | None:
    """The autocast dtype of every training step of the run (None: float32): `config.amp` when
    given (fp32: none), else the budget's `cpu_amp` when the run trains on a CPU that runs it
    natively (`native_bf16`: asked of `settings.native_bf16_cpu` when None), else None."""
    if config.amp is not None:
        return autocast_dtype(config.amp)
    if config.budget.cpu_amp is None or config.device != "cpu":
        return None
    if native_bf16 is None:
        from ffnet_nas.settings import native_bf16_cpu

        native_bf16 = native_bf16_cpu()
    return config.budget.cpu_amp if native_bf16 else None


def config_dict(config: RunConfig) -> dict:
    return {"space": config.space, "data": config.data, "teacher": config.teacher, "init": config.init,
            "target": config.target, "device": config.device, "amp": config.amp, "workers": config.workers,
            "threads": config.threads, "formats": list(config.formats), "budget": budget_dict(config.budget)}


def to_yaml(config: RunConfig) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    # one section per block, short lists ([64, 128], [html]) on their key's line
    Dumper.add_representer(list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
    return HEADER + yaml.dump(config_dict(config), Dumper=Dumper, sort_keys=False, default_flow_style=False)


def load_config(path: str | Path) -> RunConfig:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InvalidInput(f"config file {str(path)!r} not found: expected a file written by 'ffnet-nas run "
                           "--print-config'") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise InvalidInput(f"config file {str(path)!r} is not valid YAML{line}: expected the output of "
                           "'ffnet-nas run --print-config'") from None
    try:
        return config_from_dict(data if data is not None else {})
    except InvalidInput as e:
        raise InvalidInput(f"{path}: {e}") from None


def config_from_dict(data: Any) -> RunConfig:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"expected a mapping of settings at the top level, got {type(data).__name__}")
    data = dict(data)
    budget = data.pop("budget", DEFAULT_BUDGET)
    if isinstance(budget, str):
        budget = {"name": budget}
    if not isinstance(budget, Mapping):
        raise InvalidInput(f"budget: expected a budget name or a mapping, got {budget!r}")
    name = budget.get("name", DEFAULT_BUDGET)
    if not isinstance(name, str):
        raise InvalidInput(f"budget.name: expected a string, got {name!r}")
    try:
        base = get_budget(name)
    except InvalidInput as e:
        raise InvalidInput(f"budget.name: {e}") from None
    defaults = RunConfig(budget=base)
    return _build(RunConfig, {**data, "budget": budget}, base=defaults, path="")


def with_overrides(config: RunConfig, *, train_hw: tuple[int, int] | None = None,
                   input_hw: tuple[int, int] | None = None, **given: Any) -> RunConfig:
    """`config` with the settings given on the command line (None: not given) put in; `budget` is a
    name: that budget replaces the file's. `train_hw` / `input_hw` (--train-size / --input-size)
    replace the budget's sizes, after any budget change."""
    changes = {k: v for k, v in given.items() if v is not None}
    if "budget" in changes:
        changes["budget"] = get_budget(changes["budget"])
    config = dataclasses.replace(config, **changes)
    sizes = {k: v for k, v in (("train_hw", train_hw), ("input_hw", input_hw)) if v is not None}
    return dataclasses.replace(config, budget=dataclasses.replace(config.budget, **sizes)) if sizes else config


# ---- the generic part: a dataclass from plain values, with the key path in every error -----------

def _build(cls: type, data: Any, *, base: Any, path: str) -> Any:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{path or 'config'}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise InvalidInput(f"{_join(path, str(key))}: unknown key; expected one of {', '.join(fields)}"
                               f"{closest(str(key), list(fields))}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name in fields:
        where = _join(path, name)
        default = getattr(base, name)
        values[name] = _value(hints[name], data[name], base=default, path=where) if name in data else default
    try:
        return cls(**values)
    except InvalidInput as e:
        message = str(e)
        field_first = message.split("=", 1)[0] in fields
        raise InvalidInput(_join(path, message) if field_first else f"{path or 'config'}: {message}") from None
    except TypeError as e:  # a class that checks no types itself
        raise InvalidInput(f"{path or 'config'}: {e}") from None


def _value(kind: Any, value: Any, *, base: Any, path: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, base=base, path=path)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _value(inner, value, base=base, path=path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise InvalidInput(f"{path}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v, base=None, path=f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise InvalidInput(f"{path}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_value(a, v, base=None, path=f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if kind is bool:
        if not isinstance(value, bool):
            raise InvalidInput(f"{path}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidInput(f"{path}: expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, str) and _YAML11_EXPONENT.match(value.strip()):
            # PyYAML reads YAML 1.1, where `1e-3` (no dot) is a string; everyone means a number
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidInput(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise InvalidInput(f"{path}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{path}: no YAML reading for {kind!r}")  # a new field type: teach _value about it


_YAML11_EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


__all__ = ["AMP_DTYPES", "RUN_AMPS", "RunConfig", "config_dict", "config_from_dict", "load_config", "to_yaml", "training_precision",
           "with_overrides"]
