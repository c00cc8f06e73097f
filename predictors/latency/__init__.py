"""Latency lookup tables measured on the device, and the calibrated predictor built on them.

    keys.py      what is measured: units (stem, first/repeat residual block, head) and their keys
    protocol.py  how: device/dtype checks, warm-up, repeats until stable, estimator
    backends.py  eager, torch.compile, ONNX Runtime
    modules.py   the nn.Modules and inputs that get timed
    lut.py       the table, its metadata, resumable measurement
    predict.py   predict_latency(arch, lut): sum + calibration; refuses mismatched settings
    validate.py  end-to-end calibration and validation against measured networks
    build.py     the whole pipeline the CLI runs
"""

from ffnet_nas.predictors.latency.keys import Unit, space_units, units_of
from ffnet_nas.predictors.latency.lut import LatencyTable, LutSpec, load_table
from ffnet_nas.predictors.latency.predict import Calibration, predict_latency
from ffnet_nas.predictors.latency.protocol import Protocol

__all__ = ["Calibration", "LatencyTable", "LutSpec", "Protocol", "Unit", "load_table", "predict_latency",
           "space_units", "units_of"]
