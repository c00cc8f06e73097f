"""Backends: turn (module, inputs) into a zero-argument callable that runs one inference.

* ``eager``        the module as is.
* ``compile``      `torch.compile` (inductor), fixed shapes. Compilation happens in the
                   protocol's warm-up, so it is excluded from the timing. Dynamo caches are
                   reset per module: every unit is a new instance of the same class and
                   would otherwise exhaust the recompile limit and fall back to eager silently.
* ``onnxruntime``  exported to ONNX in memory, run by an `InferenceSession` with the same
                   thread count (CPU provider, or CUDA provider with I/O binding on GPU).
                   The export is `ffnet-nas export`'s own (`space.deploy.onnx_model` with its
                   defaults, `SHIPPED_EXPORT`): the table times the graph a user ships. A table
                   records it with its versions (`onnx_exporter`, `onnx_opset`, `onnx_fold_bn`);
                   tables written before that timed a TorchScript/opset-17 graph (`LEGACY_EXPORT`),
                   which `table_export` reports for them.

onnxruntime is imported lazily: eager users never pay for it.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import torch
from ffnet_nas.predictors.latency.protocol import torch_dtype
from ffnet_nas.space.deploy import OnnxExport, fold_bn, onnx_model
from ffnet_nas.space.errors import InvalidInput, closest
from torch import nn

BACKENDS = ("eager", "compile", "onnxruntime")
SHIPPED_EXPORT = OnnxExport()  # what `ffnet-nas export` writes by default: dynamo, opset 18, BN not folded
LEGACY_EXPORT = OnnxExport(exporter="torchscript", opset=17)  # what this backend timed before it recorded it


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
        if SHIPPED_EXPORT.exporter == "dynamo":
            try:
                importlib.import_module("onnxscript")  # the dynamo exporter writes the graph with it
            except ImportError:
                raise InvalidInput("--backend onnxruntime exports like `ffnet-nas export` (dynamo exporter), which "
                                   "needs onnxscript; expected `pip install onnxscript`") from None


def backend_versions(backend: str, dtype: str = "fp32") -> dict[str, str]:
    """Library versions behind a table's times; for onnxruntime also the export that made the graph,
    and for int8 the quantisation recipe."""
    out = {"torch": torch.__version__}
    if dtype == "int8":
        from ffnet_nas.predictors.latency.int8 import RECIPE

        out["int8"] = ", ".join(f"{k}={v}" for k, v in RECIPE.items())
    if backend == "onnxruntime":
        import onnxruntime as ort

        out["onnxruntime"] = ort.__version__
        out.update(export_record(SHIPPED_EXPORT))
        if SHIPPED_EXPORT.exporter == "dynamo":
            import onnxscript

            out["onnxscript"] = onnxscript.__version__
    if torch.version.cuda:
        out["cuda"] = torch.version.cuda
    if torch.backends.cudnn.is_available():
        out["cudnn"] = str(torch.backends.cudnn.version())
    return out


def export_record(export: OnnxExport) -> dict[str, str]:
    """The export as the strings a table's `versions` holds."""
    return {"onnx_exporter": export.exporter, "onnx_opset": str(export.opset),
            "onnx_fold_bn": str(export.fold_bn).lower()}


def table_export(meta: Mapping[str, Any]) -> OnnxExport | None:
    """The export whose graphs a table's times are of (None: its backend does not export).

    A table written before the export was recorded reads as `LEGACY_EXPORT`, field by field.
    """
    if (meta.get("spec") or {}).get("backend") != "onnxruntime":
        return None
    versions = meta.get("versions") or {}
    return OnnxExport(
        exporter=str(versions.get("onnx_exporter", LEGACY_EXPORT.exporter)),
        opset=int(versions.get("onnx_opset", LEGACY_EXPORT.opset)),
        fold_bn=str(versions.get("onnx_fold_bn", str(LEGACY_EXPORT.fold_bn))).lower() == "true",
    )


# ONNX graphs already exported (and quantised) in this process, by the caller's key: a table times
# every key in 2 rounds and every network in 2 passes, and the export (~1-5 s on this CPU, plus the
# quantisation for int8) cost more than the timing. Bounded by size, oldest dropped first.
_GRAPHS: OrderedDict = OrderedDict()
_GRAPHS_MAX_BYTES = 1 << 30


def _cached_graph(key, make: Callable[[], bytes]) -> bytes:
    if key is None:
        return make()
    if key in _GRAPHS:
        _GRAPHS.move_to_end(key)
        return _GRAPHS[key]
    data = _GRAPHS[key] = make()
    while sum(len(v) for v in _GRAPHS.values()) > _GRAPHS_MAX_BYTES and len(_GRAPHS) > 1:
        _GRAPHS.popitem(last=False)
    return data


def prepare(module: nn.Module, inputs: tuple[torch.Tensor, ...], *, backend: str, device: str, dtype: str,
            threads: int, form: str = "module", cache_key=None) -> Callable[[], object]:
    """Move, convert and wrap; the returned callable runs one forward pass. `form`: form.py (eager/compile).
    `cache_key` (onnxruntime): names the graph, so a second call with it reuses the export -- the caller
    promises the same module structure and shapes (the weights may differ: random ones time the same)."""
    from ffnet_nas.predictors.latency.form import apply_form

    dt = torch_dtype(dtype)
    if backend == "onnxruntime":
        return _onnxruntime(module, inputs, device=device, dtype=dt, threads=threads, int8=dtype == "int8",
                            cache_key=None if cache_key is None else (cache_key, dtype, device))
    module = module.to(device=device, dtype=dt).eval()
    xs = tuple(x.to(device=device, dtype=dt) for x in inputs)
    module, xs = apply_form(module, xs, form)
    if backend == "compile":
        import torch._dynamo

        torch._dynamo.reset()
        module = torch.compile(module, dynamic=False)
    elif backend != "eager":
        raise InvalidInput(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    return lambda: module(*xs)


def export_onnx(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> bytes:
    """ONNX bytes of `module` at the shapes of `inputs`, exported as `ffnet-nas export` does (`SHIPPED_EXPORT`)."""
    if SHIPPED_EXPORT.fold_bn:  # off, as in `ffnet-nas export`; here so the record and the graph cannot disagree
        module = fold_bn(module)
    return onnx_model(module, inputs, exporter=SHIPPED_EXPORT.exporter, opset=SHIPPED_EXPORT.opset).SerializeToString()


def _onnxruntime(module: nn.Module, inputs: tuple[torch.Tensor, ...], *, device: str, dtype: torch.dtype,
                 threads: int, int8: bool = False, cache_key=None) -> Callable[[], object]:
    import onnxruntime as ort

    module = module.to(dtype=dtype).eval()
    xs = tuple(x.to(dtype=dtype) for x in inputs)

    def make() -> bytes:
        with torch.no_grad():
            data = export_onnx(module, xs)
        if int8:  # the graph `ffnet-nas export` writes, quantised by the one recipe (int8.py), calibrated on its input
            from ffnet_nas.predictors.latency.int8 import quantize_onnx, session

            names = [i.name for i in session(data).get_inputs()]
            data = quantize_onnx(data, [{n: x.numpy() for n, x in zip(names, xs)}])
        return data

    model_bytes = _cached_graph(cache_key, make)
    opts = ort_session_options(threads)
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


def ort_session_options(threads: int):
    """The ONNX Runtime settings every timed or scored graph runs under: `threads` intra-op threads,
    sequential execution, all graph optimisations, warnings off. One home, so the latency table,
    the INT8 scores and the exported units' timing see the same runtime."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return opts
