"""INT8 through ONNX Runtime static quantisation: one recipe for the latency table and for accuracy.

`quantize_onnx` turns an fp32 ONNX graph (the one `ffnet-nas export` writes) into a QDQ graph:
activations uint8 and weights int8 per output channel, scales and zero points from MinMax
calibration on the given inputs. ONNX Runtime's CPU provider fuses each QuantizeLinear ->
DequantizeLinear -> Conv pattern into an integer convolution (VNNI/AMX where the CPU has them). The
latency table (`--precision int8`, backend onnxruntime) times graphs made by it, and
`quantize_model` + `score_int8` apply the very same recipe to a fine-tuned model and measure its
mIoU, so a search under an INT8 target ranks by INT8 latency and INT8 accuracy of one recipe.

Calibration data: for accuracy, images of the workdir's data (`calibration_images`); for the
table's timings, each unit's or network's own random input -- an integer kernel's run time does not
depend on the scale values, only on the graph (which ops are quantised), and the table's units
are built from random weights anyway, so their activations carry no image statistics to calibrate.

onnxruntime (with its `quantization` package) is a dependency of the project; imported lazily.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# The recipe, recorded in an int8 table's metadata (versions["int8"]) so a table says how it was made.
RECIPE = {"format": "QDQ", "activations": "QUInt8", "weights": "QInt8", "per_channel": True,
          "calibration": "MinMax", "tool": "onnxruntime.quantization.quantize_static"}


def quantize_onnx(model: bytes, calibration: Sequence[Mapping[str, object]]) -> bytes:
    """QDQ int8 bytes of the fp32 ONNX `model`, calibrated on `calibration` (feeds: input name -> array)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if not calibration:
        raise ValueError("quantize_onnx needs at least one calibration input")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calibration)

        def get_next(self):
            return next(self._it, None)

    with tempfile.TemporaryDirectory(prefix="ffnet-int8-") as tmp, _quiet_advice():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model)
        quantize_static(str(src), str(dst), _Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.MinMax)
        return dst.read_bytes()


class _DropAdvice(logging.Filter):
    # quantize_static logs "Please consider to run pre-processing before quantization" to the root
    # logger on every call (once per unit); the advice is about accuracy of shape inference, and the
    # session applies the same graph optimisations anyway
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _quiet_advice():
    root, f = logging.getLogger(), _DropAdvice()
    root.addFilter(f)
    try:
        yield
    finally:
        root.removeFilter(f)


def session(model: bytes, *, threads: int = 1):
    """A CPU `InferenceSession` with the backend's settings (sequential, all graph optimisations)."""
    import onnxruntime as ort

    from ffnet_nas.predictors.latency.backends import ort_session_options

    return ort.InferenceSession(model, sess_options=ort_session_options(threads), providers=["CPUExecutionProvider"])


def calibration_images(data: str, *, size_hw: tuple[int, int], n: int = 16, cache_dir: str | Path | None = None):
    """`n` evaluation-transformed images of the training split of `data` (a `--data` spec), evenly
    spread over it, as a (n, 3, H, W) float tensor: what quantisation calibrates on."""
    import torch

    from ffnet_nas.data import make_dataset

    ds = make_dataset(data, "train", size_hw=size_hw, cache_dir=cache_dir)
    n = max(1, min(n, len(ds)))
    picks = sorted({round(i * (len(ds) - 1) / max(n - 1, 1)) for i in range(n)})
    return torch.stack([ds[i][0] for i in picks])


def quantize_model(model, calibration) -> bytes:
    """INT8 QDQ ONNX bytes of a torch `model` (eval mode, fixed input shape of one calibration image),
    exported as `ffnet-nas export` does, calibrated on `calibration` ((N, 3, H, W) images)."""
    import torch
    from ffnet_nas.predictors.latency.backends import export_onnx

    model = model.eval().float()
    x = calibration[:1].float()
    with torch.no_grad():
        fp32 = export_onnx(model, (x,))
    name = session(fp32).get_inputs()[0].name
    return quantize_onnx(fp32, [{name: calibration[i:i + 1].float().numpy()} for i in range(len(calibration))])


@dataclass(frozen=True)
class Int8Score:
    miou: float  # in [0, 1], of the INT8 graph
    fp32_miou: float | None  # the same images through the fp32 ONNX graph, when asked
    n_images: int

    @property
    def cost(self) -> float | None:
        """fp32 mIoU minus INT8 mIoU (points in [0, 1]); None without the fp32 score."""
        return None if self.fp32_miou is None else self.fp32_miou - self.miou


def onnx_miou(model: bytes, images: Iterable, *, num_classes: int, ignore_index: int = 255, threads: int = 1) -> tuple[float, int]:
    """mIoU of an ONNX graph with one fixed input shape over (image (3,H,W), mask (H,W)) pairs."""
    import torch

    from ffnet_nas.metrics import ConfusionMeter

    sess = session(model, threads=threads)
    name = sess.get_inputs()[0].name
    meter = ConfusionMeter(num_classes=num_classes, ignore_index=ignore_index)
    n = 0
    for image, mask in images:
        logits = sess.run(None, {name: image[None].float().numpy()})[0]
        meter.update(torch.from_numpy(logits), mask[None])
        n += 1
    return meter.score().miou, n


def score_int8(model, *, calibration, images: Sequence, num_classes: int, ignore_index: int = 255,
               threads: int = 1, fp32_too: bool = True) -> Int8Score:
    """Quantise `model` (calibrated on `calibration`) and score its mIoU on `images` ((image, mask) pairs
    at the calibration images' size); with `fp32_too`, also the fp32 graph on the same images."""
    import torch
    from ffnet_nas.predictors.latency.backends import export_onnx

    int8 = quantize_model(model, calibration)
    miou, n = onnx_miou(int8, images, num_classes=num_classes, ignore_index=ignore_index, threads=threads)
    fp32_miou = None
    if fp32_too:
        with torch.no_grad():
            fp32 = export_onnx(model.eval().float(), (calibration[:1].float(),))
        fp32_miou, _ = onnx_miou(fp32, images, num_classes=num_classes, ignore_index=ignore_index, threads=threads)
    logger.info("int8 mIoU %.4f (fp32 %s) on %d images", miou, "n/a" if fp32_miou is None else f"{fp32_miou:.4f}", n)
    return Int8Score(miou=miou, fp32_miou=fp32_miou, n_images=n)


__all__ = ["RECIPE", "Int8Score", "calibration_images", "onnx_miou", "quantize_model", "quantize_onnx", "score_int8",
           "session"]
