"""Human-readable views of the space: published tables, space summaries, one point's structure.

The CLI (`ffnet-nas space ...`) prints these; they return DataFrames or text so a notebook
can use them too. Figures marked "published" come from the reference file; params and MACs
are counted from the built model (meta device, no weights allocated).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ffnet_nas.space.arch import EXPANSION, PEER_UP_HEADS, STEM_CHANNELS, Arch, resolve
from ffnet_nas.space.builder import SEG_HEAD, STEM_CONVS, UP_HEAD_BASE, UP_HEAD_OUT
from ffnet_nas.space.catalogue import PublishedVariant, get_variant, name_of, variants
from ffnet_nas.space.complexity import complexity
from ffnet_nas.space.peers import PeerPoint, ffnet_twins, get_peer, is_peer_name, peer_of, peer_points
from ffnet_nas.space.searchspace import SearchSpace

# how `space show` describes the peer up-heads (space.peer_heads) and blocks (space.metamixer)
_PEER_UP_TEXT = {
    "FAM": "FAM (SFNet): 1x1 adapters to 128, flow-aligned top-down fusion (grid_sample), outputs 128 each",
    "FAM2": "FAM2 (SFNet-Lite): as FAM with a 4-channel flow warping both inputs and a sigmoid gate",
    "JPU": "JPU (FastFCN): 3x3 convs on strides 8/16/32 to 128, dilated separable convs 1/2/4/8 -> 512 ch at stride 8",
}

DEFAULT_INPUT_HW = (512, 1024)  # the mobile paper resolution; GPU figures use 1024x2048
# The catalogue keeps README and paper latencies apart; the README repeats the paper's 2080Ti
# figures, so a table shows one column per device and precision (README first where both exist).
_LATENCY_COLUMN = {
    "README fp32 (2080Ti)": "2080Ti fp32 ms",
    "paper 2080Ti fp32": "2080Ti fp32 ms",
    "README fp16 (2080Ti)": "2080Ti fp16 ms",
    "paper 2080Ti fp16": "2080Ti fp16 ms",
    "paper 1080Ti fp32": "1080Ti fp32 ms",
    "paper S21 DSP int8": "S21 DSP int8 ms",
}


def _hw(hw: tuple[int, int] | None) -> str:
    return "-" if hw is None else f"{hw[0]}x{hw[1]}"


def _dots(values) -> str:
    return ".".join(map(str, values))


def published_table(
    *, space: SearchSpace | None = None, family: str | None = None, task: str | None = "segmentation", include_train: bool = False
) -> pd.DataFrame:
    """One row per published variant (of `family`, inside `space`, if given): params, GMACs, mIoU, latencies."""
    rows = []
    for v in variants(task=task, family=family, include_train=include_train):
        if space is not None and v.arch not in space:
            continue
        row = {
            "name": v.name,
            "family": v.family,
            "input": _hw(v.input_hw),
            "params (M)": round(v.n_params / 1e6, 2),
            "GMACs": round(v.macs / 1e9, 1),
            "mIoU README": v.miou_readme,
            "mIoU paper": v.miou_paper,
        }
        for label, ms in v.latency_ms.items():
            row.setdefault(_LATENCY_COLUMN.get(label, f"{label} ms"), ms)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["family", "params (M)", "name"], kind="stable", ignore_index=True)
    if not frame.empty:
        # drop columns no shown variant has (e.g. classification rows have no mIoU)
        frame = frame.dropna(axis=1, how="all")
    return frame


def peer_table(*, space: SearchSpace | None = None) -> pd.DataFrame:
    """One row per peer reference point (NOT FFNets; `space.peers`), inside `space` if given:
    its design, params and GMACs at its input, and the figures its paper publishes (their hardware)."""
    rows = []
    for p in peer_points():
        if space is not None and p.arch not in space:
            continue
        c = complexity(p.arch, p.input_hw)
        rows.append({
            "name": p.name,
            "family": "peer (not FFNet)",
            "design": p.design,
            "input": _hw(p.input_hw),
            "params (M)": round(c.params / 1e6, 2),
            "GMACs": round(c.macs / 1e9, 1),
            "Cityscapes mIoU (published)": p.miou,
            "published figures (their hardware and data)": "; ".join(f"{k}: {v}" for k, v in p.figures),
        })
    return pd.DataFrame(rows)


def format_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(none)"
    # text columns read better left-aligned (pandas right-aligns everything)
    text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c]) or frame[c].dtype == object]
    width = {c: max(len(str(c)), frame[c].astype(str).str.len().max()) for c in text}
    formatters = {c: (lambda w: lambda v: f"{v:<{w}}")(width[c]) for c in text}
    header = [f"{c:<{width[c]}}" if c in width else c for c in frame.columns]
    return frame.to_string(index=False, na_rep="-", float_format=lambda x: f"{x:g}", formatters=formatters, header=header)


def space_summary(space: SearchSpace) -> str:
    """The domains of every dimension, the size, and the published variants inside."""
    scale_note = " (pre_down points take 2x)" if True in space.pre_downs else ""
    lines = [
        f"space {space.name}: {space.size:,} points; input {_hw(space.input_hw)}{scale_note}",
        "",
    ]
    dims = space.distributions()
    width = max(len(k) for k in dims)
    lines.append(f"{'dimension':<{width}}  choices")
    lines += [f"{k:<{width}}  {', '.join(map(str, v))}" for k, v in dims.items()]
    members = published_table(space=space)
    lines += ["", f"published variants in this space: {len(members)}", format_table(members)]
    peers = [p.name for p in peer_points() if p.arch in space]
    if peers:
        lines += ["", f"peer reference points in this space (NOT FFNets): {', '.join(peers)}"]
    return "\n".join(lines)


@dataclass(frozen=True)
class PointReport:
    """Everything `space show` prints, as values (tests read these, not the text)."""

    arch: Arch
    published: PublishedVariant | None
    num_classes: int
    input_hw: tuple[int, int]
    input_source: str  # why this input size (given / published / default)
    params: int
    macs: int
    output_hw: tuple[int, int] | None
    peer: PeerPoint | None = None  # a peer reference point (not an FFNet) with this structure


def describe(name_or_code: "str | Arch", *, input_hw: tuple[int, int] | None = None, num_classes: int | None = None) -> PointReport:
    arch = resolve(name_or_code)
    published = None
    peer = get_peer(name_or_code.strip()) if isinstance(name_or_code, str) and is_peer_name(name_or_code.strip()) \
        else peer_of(arch)
    if peer is not None:
        pass  # a peer point is no published FFNet (a peer never shares a published code: FAM/JPU/metamixer)
    elif isinstance(name_or_code, str) and not name_or_code.strip().startswith("stem"):
        published = get_variant(name_or_code.strip())
    else:
        name = name_of(arch)
        published = get_variant(name) if name else None
    if num_classes is None:
        num_classes = published.num_classes if published else (1000 if arch.is_classifier else 19)
    if input_hw is not None:
        source = "given"
    elif published is not None:
        input_hw, source = published.input_hw, "published input"
    elif peer is not None:
        input_hw, source = peer.input_hw, "the peer point's input"
    else:
        scale = arch.input_scale
        input_hw = (DEFAULT_INPUT_HW[0] * scale, DEFAULT_INPUT_HW[1] * scale)
        source = "default" + (", doubled for pre_down" if scale > 1 else "")
    c = complexity(arch, input_hw, num_classes=num_classes)
    return PointReport(arch, published, num_classes, tuple(input_hw), source, c.params, c.macs, c.output_hw, peer)


def _stem_text(arch: Arch) -> str:
    convs = " -> ".join(f"conv{k}x{k}/{s} ({c})" for c, k, s in STEM_CONVS[arch.stem])
    pool = " -> maxpool3x3/2" if arch.stem == "A" else ""
    return f"{arch.stem}: {convs}{pool}; {STEM_CHANNELS} ch at stride {4 * arch.input_scale}"


def stage_table(arch: Arch) -> pd.DataFrame:
    rows = []
    stride = 4 * arch.input_scale
    for i, (d, w, s, out) in enumerate(zip(arch.depths, arch.widths, arch.stage_strides, arch.stage_out_channels), start=1):
        stride *= s
        rows.append({"stage": f"layer{i}", "depth": d, "width": w, "stride": s, "out ch": out, "feature stride": stride})
    return pd.DataFrame(rows)


def blocks_table(arch: Arch) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "position": b.position,
                "choice": b.choice,
                "in ch": _dots(b.in_channels),
                "out ch": _dots(b.out_channels) if b.out_channels != (0,) else "classes",
                "in stride": b.in_stride,
                "out stride": b.out_stride,
            }
            for b in arch.blocks()
        ]
    )


def format_point(r: PointReport) -> str:
    a, v = r.arch, r.published
    title = v.name if v else (name_of(a) or "(not a published variant)")
    if v and v.display_name:
        title += f"  ({v.display_name}, {v.family} family)"
    if r.peer is not None:
        title = f"{r.peer.name}  ({r.peer.system}; NOT an FFNet: a peer reference point)"
    elif not a.is_ffnet:
        title += "  (with a peer design: not an FFNet)"
    if a.is_classifier:
        head = "X: ImageNet classification head (bottleneck fusion, 2048-d pooled features, linear)"
    else:
        mid, k2 = SEG_HEAD[a.seg_head]
        head = f"{a.seg_head}: conv3x3 -> {mid} ch -> conv{k2}x{k2} -> {r.num_classes} classes"
    fields = [
        ("code", a.code),
        ("published name", (v.name if v else name_of(a)) or "-"),
        ("hash", a.stable_hash),
        ("stem", _stem_text(a)),
        ("blocks", f"{a.block} (output = {EXPANSION[a.block]}x width)"),
        ("first stride", f"{a.first_stride}" + (" (stride-64 head)" if a.first_stride == 2 and a.num_stages == 4 else "")),
        ("up head", _PEER_UP_TEXT[a.up_head] if a.up_head in PEER_UP_HEADS else
         f"{a.up_head}: adapters to {_dots(UP_HEAD_BASE[a.up_head])}, outputs {_dots(UP_HEAD_OUT[a.up_head])}"),
        ("task head", head),
        ("upsampling", a.upsample),
        ("pre_down", "yes (5x5 Gaussian, stride 2, before the stem)" if a.pre_down else "no"),
        ("features", f"channels {_dots(a.feature_channels)} at strides {_dots(a.feature_strides)}"),
        ("classes", str(r.num_classes)),
        ("input", f"{_hw(r.input_hw)} ({r.input_source})"),
        ("output", _hw(r.output_hw) + (f" (stride {a.output_stride})" if r.output_hw else " (class scores)")),
        ("params", f"{r.params / 1e6:.2f}M ({r.params:,})"),
        ("MACs", f"{r.macs / 1e9:.2f}G at {_hw(r.input_hw)}"),
    ]
    width = max(len(k) for k, _ in fields)
    lines = [title, ""] + [f"{k:<{width}}  {val}" for k, val in fields]
    lines += ["", "stages", format_table(stage_table(a)), "", "blocks (the cut shared by latency LUT and distillation)", format_table(blocks_table(a))]
    if v is not None:
        lines += ["", "published figures"]
        pub = [
            ("params", f"{v.n_params:,}"),
            ("MACs", f"{v.macs / 1e9:.2f}G at {_hw(v.macs_input_hw)}"),
            ("mIoU README", "-" if v.miou_readme is None else f"{v.miou_readme:g}"),
            ("mIoU paper", "-" if v.miou_paper is None else f"{v.miou_paper:g}"),
        ]
        pub += [(f"latency {label}", f"{ms:g} ms") for label, ms in v.latency_ms.items()]
        pub += [("weights file", v.weights_file or "-")]
        w2 = max(len(k) for k, _ in pub)
        lines += [f"  {k:<{w2}}  {val}" for k, val in pub]
    if r.peer is not None:
        p = r.peer
        pub = list(p.figures) + [("source", p.source), ("departs from the paper", p.note),
                                 ("FFNet with this backbone", ", ".join(ffnet_twins(p)) or "none published")]
        w2 = max(len(k) for k, _ in pub)
        lines += ["", "published figures (their hardware and data, not measured here)"]
        lines += [f"  {k:<{w2}}  {val}" for k, val in pub]
    return "\n".join(lines)


def sample_table(space: SearchSpace, n: int, *, seed: int = 0) -> pd.DataFrame:
    from ffnet_nas.space.complexity import count_params

    archs = space.sample_many(n, seed=seed)
    return pd.DataFrame([{"code": a.code, "params (M)": round(count_params(a) / 1e6, 2), "published name": name_of(a) or ""} for a in archs])
