"""Assemble a full FFNet for any point from the block library, adapters folded away.

Every student block ends in a bias-free 1x1 `out_adapter` A (its width -> the teacher's width
at that position), and every following block was trained on the teacher's width. In the chain
of students, the next convolution W therefore sees A·x: conv(A·x; W) = conv(x; W·A) with
(W·A)[o, i, :, :] = sum_j W[o, j, :, :] A[j, i] — for any kernel size, because zero padding
commutes with a per-pixel linear map. Folding A into W is exact, and the result has exactly
the arch's shapes and state-dict keys.

Where A is folded: into the convs of the next stage's first block that read its input (its
`INPUT_CONVS`: conv1 AND the projection shortcut of a basic or bottleneck block; the strided
`downsample` conv of a metamixer block, which nothing else reads past) and into the head's convs
that read each feature (`space.builder.head_input_convs`: FFNet's 1x1 adapters, a FAM head's
1x1 adapters, a JPU head's 3x3 convs; JPU reads no stride-4 feature, so the s4 adapter is folded
only into the s8 stage).
This needs that first block to HAVE a projection: an identity shortcut would add the raw A·x.
Stages at s8, s16, s32 always start with stride 2 (only the first stage may have stride 1,
and it sits inside the s4 block, after no adapter), so they always have one; `fold_into`
still checks it and refuses rather than assembling something inexact.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ffnet_nas.distill.blocks import StudentBlock
from ffnet_nas.distill.choices import arch_choices
from ffnet_nas.distill.library import BlockLibrary
from ffnet_nas.distill.train import OK
from ffnet_nas.space.arch import Arch, resolve
from ffnet_nas.space.builder import FFNet, build_model, head_input_convs
from ffnet_nas.space.errors import InvalidInput


def fold(weight: torch.Tensor, adapter: torch.Tensor) -> torch.Tensor:
    """W [o, j, kh, kw] after a 1x1 map A [j, i, 1, 1] -> one conv [o, i, kh, kw]."""
    # a plain matmul over the channel axis (einsum's path planning costs more than the math here)
    return (weight.movedim(1, -1) @ adapter[:, :, 0, 0]).movedim(-1, 1).contiguous()


def student_chain(arch: Arch | str, library: BlockLibrary | str | Path) -> list[StudentBlock]:
    """The five distilled students of `arch` (eval mode); InvalidInput names every missing/failed one."""
    arch = resolve(arch)
    library = library if isinstance(library, BlockLibrary) else BlockLibrary(library)
    specs = arch_choices(arch)
    rows = library.rows()
    missing = [f"{s.position}:{s.choice} ({'missing' if (s.position, s.choice) not in rows else rows[(s.position, s.choice)]['status']})"
               for s in specs if (s.position, s.choice) not in rows or rows[(s.position, s.choice)]["status"] != OK]
    if missing:
        raise InvalidInput(f"cannot assemble {arch.code} from {str(library.root)!r}: blocks not usable: "
                           f"{', '.join(missing)}; expected status 'ok' for all five (run 'ffnet-nas distill' over a space containing {arch.code})")
    return [library.load_block(s.position, s.choice) for s in specs]


def run_chain(chain: list[StudentBlock], x: torch.Tensor) -> torch.Tensor:
    """The chain of students as trained: each block reads the previous block's adapted output."""
    feats, h = [], x
    for block in chain[:4]:
        h = block(h)
        feats.append(h)
    return chain[4](feats)


def assemble(arch: Arch | str, library: BlockLibrary | str | Path) -> FFNet:
    """A full FFNet of `arch` whose weights are the distilled blocks (eval mode)."""
    arch = resolve(arch)
    chain = student_chain(arch, library)
    info = (library if isinstance(library, BlockLibrary) else BlockLibrary(library)).teacher()
    model = build_model(arch, num_classes=info.num_classes)
    state: dict[str, torch.Tensor] = {}
    s4 = chain[0].body
    state.update({f"backbone_model.{k}": v for k, v in s4.stem.state_dict().items()})
    first_stage = 1
    if s4.layer1 is not None:
        state.update({f"backbone_model.layer1.{k}": v for k, v in s4.layer1.state_dict().items()})
        first_stage = 2
    if s4.smoothing is not None:
        state["smoothing.weight"] = s4.smoothing.weight
    adapters = [b.out_adapter.weight.detach() for b in chain[:4]]
    for k, (block, adapter) in enumerate(zip(chain[1:4], adapters[:3]), start=first_stage):
        stage = block.body
        if stage[0].downsample is None:
            raise InvalidInput(f"{arch.code}: stage {k} starts without a projection shortcut, so the adapter "
                               "in front of it cannot be folded exactly")
        sd = dict(stage.state_dict())
        for conv in type(stage[0]).INPUT_CONVS:
            sd[f"0.{conv}.weight"] = fold(sd[f"0.{conv}.weight"], adapter)
        state.update({f"backbone_model.layer{k}.{key}": v for key, v in sd.items()})
    head = dict(chain[4].body.state_dict())
    for conv, adapter in zip(head_input_convs(arch.up_head), adapters):
        if conv is not None:  # None: the head does not read this feature
            head[f"{conv}.weight"] = fold(head[f"{conv}.weight"], adapter)
    state.update({f"head.{k}": v for k, v in head.items()})
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:  # a bug here, not bad input: the keys are derived from the arch
        raise RuntimeError(f"assembly of {arch.code} left keys missing={missing[:5]} unexpected={unexpected[:5]}")
    return model.eval()
