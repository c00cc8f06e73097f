"""A kill in the middle of a training run, for the resume tests: `train(..., on_step=kill_at(3))`."""

from __future__ import annotations


class Killed(Exception):
    """Stands for the process dying after a step (the step's checkpoint, if any, is on disk)."""


def kill_at(step: int):
    """An `on_step` callback that raises `Killed` once step `step` has finished."""
    def on_step(done: int, _loss: float) -> None:
        if done == step:
            raise Killed
    return on_step
