"""Deployment helpers: BatchNorm folding, channels_last, ONNX export and its check under ONNX Runtime.

This module owns the ONNX export (`onnx_model`, `export_onnx`) and its defaults (`DEFAULT_EXPORTER`,
`DEFAULT_OPSET`, no folding): `ffnet-nas export` and the onnxruntime latency backend both use them.
Every file `export_onnx` writes names its arch code, classes and input size in its `metadata_props`
(`read_onnx_metadata`), plus whatever the caller knows about the data (normalisation, class names).

Folding rewrites every convolution that is immediately followed by a BatchNorm into one
convolution with a bias (W' = W * g / sqrt(v + eps), b' = (b - m) * g / sqrt(v + eps) + beta)
and replaces the BatchNorm by Identity. The fold is computed in float64 and cast back, so
the folded model differs from the unfolded eval model only by float32 rounding of the
convolution arithmetic itself.

Which convolution feeds which BatchNorm is read from the module structure, not guessed:
inside an `nn.Sequential` (ConvBNReLU, projections, seg head) adjacent children run in
order; elsewhere (residual blocks, the stem) the torchvision naming `convK` -> `bnK` is the
pairing the forward passes use. `fold_batchnorm` reports any BatchNorm it could not fold.

Folding also re-parameterises the metamixer block's depthwise convs (`space.metamixer`): each
kxk + 3x3 pair of branches with their BNs becomes one kxk conv, the deployment form the paper
describes. Both are inference-only rewrites of the same eval-mode function.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ffnet_nas.space.arch import Arch
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import atomic_write_bytes
from ffnet_nas.space.metamixer import reparameterize

EXPORTERS = ("dynamo", "torchscript")
DEFAULT_EXPORTER = "dynamo"  # torch's default since 2.9; what `ffnet-nas export` uses unless told otherwise
DEFAULT_OPSET = 18  # the dynamo exporter's lowest native opset in torch >= 2.9
ONNX_PROTOBUF_LIMIT = 2**31 - 1


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d (with bias) equal to bn(conv(x)) in eval mode; computed in float64."""
    if bn.running_mean is None or bn.running_var is None:
        raise InvalidInput("cannot fold a BatchNorm without running statistics (track_running_stats=False)")
    dtype = conv.weight.dtype
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64, device=w.device)
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(b)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(b)
    scale = gamma / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
        device=conv.weight.device, dtype=dtype,
    )
    with torch.no_grad():
        fused.weight.copy_((w * scale.view(-1, 1, 1, 1)).to(dtype))
        fused.bias.copy_(((b - bn.running_mean.detach().double()) * scale + beta).to(dtype))
    return fused


def _fusable_pairs(module: nn.Module) -> list[tuple[str, str]]:
    children = dict(module.named_children())
    if isinstance(module, nn.Sequential):
        names = list(children)
        return [
            (a, b) for a, b in zip(names, names[1:])
            if type(children[a]) is nn.Conv2d and type(children[b]) is nn.BatchNorm2d
        ]
    pairs = []
    for name, child in children.items():
        if type(child) is nn.Conv2d and name.startswith("conv"):
            bn_name = "bn" + name[len("conv"):]
            if type(children.get(bn_name)) is nn.BatchNorm2d:
                pairs.append((name, bn_name))
    return pairs


@dataclass(frozen=True)
class FoldResult:
    model: nn.Module
    folded: int  # conv+BN pairs fused
    unfolded: tuple[str, ...]  # BatchNorms left as they were (no preceding conv)
    reparameterized: int = 0  # metamixer branch pairs merged into one conv each


def fold_batchnorm(model: nn.Module) -> FoldResult:
    """An eval-mode copy of `model` with every conv+BN pair fused; the input is left untouched."""
    folded_model = copy.deepcopy(model).eval()
    merged = reparameterize(folded_model)
    count = 0
    for module in list(folded_model.modules()):
        for conv_name, bn_name in _fusable_pairs(module):
            conv, bn = getattr(module, conv_name), getattr(module, bn_name)
            if conv.out_channels != bn.num_features:
                continue
            setattr(module, conv_name, fuse_conv_bn(conv, bn))
            setattr(module, bn_name, nn.Identity())
            count += 1
    left = tuple(n for n, m in folded_model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    return FoldResult(model=folded_model, folded=count, unfolded=left, reparameterized=merged)


def fold_bn(model: nn.Module) -> nn.Module:
    """`fold_batchnorm(model).model`: the folded eval-mode copy."""
    return fold_batchnorm(model).model


def to_channels_last(model: nn.Module) -> nn.Module:
    """The model with 4-D weights in channels_last (NHWC) memory format, in place; feed it NHWC inputs."""
    return model.to(memory_format=torch.channels_last)


def prepare_for_inference(model: nn.Module, *, fold: bool = True, channels_last: bool = False) -> nn.Module:
    out = fold_bn(model) if fold else copy.deepcopy(model).eval()
    return to_channels_last(out) if channels_last else out


# ---- ONNX -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class OnnxCheck:
    max_abs_diff: float
    max_rel_diff: float  # max |onnx - torch| / max |torch|: relative to the output's scale
    output_shape: tuple[int, ...]

    @property
    def ok(self) -> bool:
        return self.max_rel_diff <= 1e-4


@dataclass(frozen=True)
class OnnxExport:
    """How a graph was exported: the settings a latency table records next to its times."""

    exporter: str = DEFAULT_EXPORTER
    opset: int = DEFAULT_OPSET
    fold_bn: bool = False  # `ffnet-nas export` folds only when asked (--fold-bn)

    def __str__(self) -> str:
        return f"{self.exporter} exporter, opset {self.opset}{', BN folded' if self.fold_bn else ''}"


def onnx_model(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    *,
    exporter: str = DEFAULT_EXPORTER,
    opset: int = DEFAULT_OPSET,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
):
    """The ONNX `ModelProto` of `model` (put in eval mode for the export) at the shapes of `inputs`.

    The one exporter call of the project: `export_onnx` (what `ffnet-nas export` ships) and the
    onnxruntime latency backend both go through it, so a latency table times the graph a user ships.
    exporter="dynamo" uses torch.export + onnxscript (torch's default since 2.9);
    exporter="torchscript" the legacy tracer (faster to export, deprecated by torch).
    """
    if exporter not in EXPORTERS:
        raise InvalidInput(f"exporter {exporter!r}: expected one of {', '.join(EXPORTERS)}")
    if not (isinstance(opset, int) and 7 <= opset <= 30):
        raise InvalidInput(f"opset {opset!r}: expected an ONNX opset number such as {DEFAULT_OPSET}")
    was_training = model.training
    model.eval()
    names = dict(input_names=input_names, output_names=output_names)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation chatter of the exporters, not about the model
            if exporter == "dynamo":
                program = torch.onnx.export(model, tuple(inputs), None, dynamo=True, opset_version=opset,
                                            verbose=False, **names)
                return program.model_proto
            buf = io.BytesIO()
            torch.onnx.export(model, tuple(inputs), buf, dynamo=False, opset_version=opset,
                              do_constant_folding=True, **names)
            import onnx

            return onnx.load_from_string(buf.getvalue())
    finally:
        model.train(was_training)


def onnx_metadata_of(model: nn.Module, *, input_hw: tuple[int, int]) -> dict[str, str]:
    """What any exported FFNet's file says about itself: its arch code, classes and input size.

    Everything else a user needs to feed the file (normalisation, class names, the data it was
    trained on) belongs to the data, not to the network: callers that know it pass it to
    `export_onnx(metadata=...)` (`ffnet-nas export` does).
    """
    out = {"input_size": f"{int(input_hw[0])}x{int(input_hw[1])}"}
    arch = getattr(model, "arch", None)
    if isinstance(arch, Arch):
        out["arch"] = arch.code
    num_classes = getattr(model, "num_classes", None)
    if isinstance(num_classes, int):
        out["num_classes"] = str(num_classes)
    return out


def _set_metadata(proto, metadata: Mapping[str, object]) -> None:
    """Add `metadata` to the proto's `metadata_props`, replacing entries of the same key.

    Values that are not text are written as JSON (lists of class names, mean/std), so a reader
    in any language gets them back with one json parse.
    """
    texts = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items() if v is not None}
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in texts]
    del proto.metadata_props[:]
    for key, value in [*kept, *texts.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The `metadata_props` of an ONNX file as a dict of strings (JSON values stay text)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    input_hw: tuple[int, int],
    opset: int = DEFAULT_OPSET,
    batch: int = 1,
    exporter: str = DEFAULT_EXPORTER,
    metadata: Mapping[str, object] | None = None,
) -> Path:
    """Export `model` (eval mode, fixed input shape 1x3xHxW) to ONNX at `path`, atomically.

    See `onnx_model` for the exporters. Input and output are named "image" and "logits".
    The file's `metadata_props` carry `onnx_metadata_of(model)` (arch code, classes, input size)
    plus `metadata` (non-text values as JSON); `read_onnx_metadata` reads them back.
    """
    x = torch.randn(batch, 3, *input_hw)
    proto = onnx_model(model, (x,), exporter=exporter, opset=opset, input_names=["image"], output_names=["logits"])
    _set_metadata(proto, {**onnx_metadata_of(model, input_hw=input_hw), **dict(metadata or {})})
    if proto.ByteSize() > ONNX_PROTOBUF_LIMIT:
        raise InvalidInput(f"model too large for a single ONNX file ({proto.ByteSize() / 2**30:.1f} GiB > 2 GiB)")
    return atomic_write_bytes(path, proto.SerializeToString())


def run_onnx(path: str | Path, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def check_onnx(path: str | Path, model: nn.Module, *, input_hw: tuple[int, int], seed: int = 0) -> OnnxCheck:
    """Run the ONNX file under ONNX Runtime (CPU) and the torch model (eval) on one random input."""
    x = torch.randn(1, 3, *input_hw, generator=torch.Generator().manual_seed(seed))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ref = model(x)
    finally:
        model.train(was_training)
    got = run_onnx(path, x)
    if tuple(got.shape) != tuple(ref.shape):
        raise InvalidInput(f"ONNX output shape {tuple(got.shape)} differs from torch's {tuple(ref.shape)}")
    diff = (got.double() - ref.double()).abs().max().item()
    scale = ref.double().abs().max().item()
    return OnnxCheck(max_abs_diff=diff, max_rel_diff=diff / scale if scale > 0 else diff, output_shape=tuple(ref.shape))
