"""Re-export of `ffnet_nas.predictors.load`, the one loader of the latency table and the accuracy
predictor (kept while `commands/search.py` and tests import it from here; `load` is `load_predictors`)."""

from __future__ import annotations

from ffnet_nas.predictors.load import (  # noqa: F401
    Predictors,
    accuracy_file,
    choose_lut,
    find_lut,
    load_accuracy,
    load_latency,
    load_predictors,
    lut_candidates,
)

load = load_predictors

__all__ = ["Predictors", "accuracy_file", "choose_lut", "find_lut", "load", "load_accuracy", "load_latency",
           "load_predictors", "lut_candidates"]
