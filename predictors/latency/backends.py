"""Backends: turn (module, inputs) into a zero-argument callable that runs one inference.

* ``eager``        the module as is.
* ``compile``      `torch.compile` (inductor), fixed shapes. Compilation happens in the
                   protocol's warm-up, so it is excluded from the timing. Dynamo caches are
                   reset per module: every unit is a new instance of the same class and
                   would otherwise exhaust the recompile limit and fall back to eager silently.
* ``onnxruntime``  exported to ONNX in memory, run by an `InferenceSession` with the same
                   thread count (CPU provider, or CUDA provider with I/O binding on GPU).

onnxruntime is imported lazily: eager users never pay for it.
"""

from __future__ import annotations

import io
import warnings
from typing import Callable

import torch
from torch import nn

from ffnet_nas.predictors.latency.protocol import torch_dtype
from ffnet_nas.space.errors import InvalidInput, closest

BACKENDS = ("eager", "compile", "onnxruntime")


def check_backend(backend: str, device: str) -> None:
    if backend not in BACKENDS:
        raise InvalidInput(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}{closest(backend, BACKENDS)}")
    if backend == "onnxruntime":
        try:
            import onnxruntime as ort
        except ImportError:
            raise InvalidInput("--backend onnxruntime: onnxruntime is not installed; expected `pip install onnxruntime`") from None
        if device.startswith("cuda") and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise InvalidInput(f"--backend onnxruntime on {device}: this onnxruntime has no CUDAExecutionProvider "
                               f"(has {', '.join(ort.get_available_providers())}); expected onnxruntime-gpu")


def backend_versions(backend: str) -> dict[str, str]:
    out = {"torch": torch.__version__}
    if backend == "onnxruntime":
        import onnxruntime as ort

        out["onnxruntime"] = ort.__version__
    if torch.version.cuda:
        out["cuda"] = torch.version.cuda
    if torch.backends.cudnn.is_available():
        out["cudnn"] = str(torch.backends.cudnn.version())
    return out


def prepare(module: nn.Module, inputs: tuple[torch.Tensor, ...], *, backend: str, device: str, dtype: str,
            threads: int) -> Callable[[], object]:
    """Move, convert and wrap; the returned callable runs one forward pass."""
    dt = torch_dtype(dtype)
    if backend == "onnxruntime":
        return _onnxruntime(module, inputs, device=device, dtype=dt, threads=threads)
    module = module.to(device=device, dtype=dt).eval()
    xs = tuple(x.to(device=device, dtype=dt) for x in inputs)
    if backend == "compile":
        import torch._dynamo

        torch._dynamo.reset()
        module = torch.compile(module, dynamic=False)
    elif backend != "eager":
        raise InvalidInput(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    return lambda: module(*xs)


def export_onnx(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> bytes:
    """ONNX bytes. The TorchScript exporter is tried first (50x faster per unit here); the
    torch.export-based one is the fallback for torch versions that dropped it."""
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, inputs, buf, dynamo=False, opset_version=17)
        return buf.getvalue()
    except Exception:  # noqa: BLE001 - any failure of the legacy path means "use the new one"
        program = torch.onnx.export(module, inputs, dynamo=True)
        return program.model_proto.SerializeToString()


def _onnxruntime(module: nn.Module, inputs: tuple[torch.Tensor, ...], *, device: str, dtype: torch.dtype,
                 threads: int) -> Callable[[], object]:
    import onnxruntime as ort

    module = module.to(dtype=dtype).eval()
    xs = tuple(x.to(dtype=dtype) for x in inputs)
    with torch.no_grad():
        model_bytes = export_onnx(module, xs)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if device.startswith("cuda"):
        index = int(device.split(":")[1])
        providers = [("CUDAExecutionProvider", {"device_id": index, "cudnn_conv_algo_search": "EXHAUSTIVE"})]
    else:
        providers = ["CPUExecutionProvider"]
    session = ort.InferenceSession(model_bytes, sess_options=opts, providers=providers)
    names = [i.name for i in session.get_inputs()]
    if device.startswith("cuda"):
        # I/O binding keeps inputs and outputs on the GPU: no host copies inside the timing.
        binding = session.io_binding()
        for name, x in zip(names, xs):
            value = ort.OrtValue.ortvalue_from_numpy(x.float().numpy().astype(_np_dtype(dtype)), "cuda", index)
            binding.bind_ortvalue_input(name, value)
        for out in session.get_outputs():
            binding.bind_output(out.name, "cuda", index)
        return lambda: session.run_with_iobinding(binding)
    feeds = {name: x.numpy() for name, x in zip(names, xs)}
    return lambda: session.run(None, feeds)


def _np_dtype(dtype: torch.dtype):
    import numpy as np

    return {torch.float32: np.float32, torch.float16: np.float16}[dtype]
