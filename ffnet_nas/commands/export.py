"""`ffnet-nas export NAME_OR_CODE --onnx out.onnx`: an ONNX file for deployment, checked if asked."""

from __future__ import annotations

import argparse

from ffnet_nas.commands._common import DEFAULT_EXPORTER, DEFAULT_OPSET, EXPORTERS, common_options


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", parents=[common_options()],
        help="export a point (published name or arch code) to ONNX",
        description="Export an FFNet to ONNX (fixed input shape 1x3xHxW, eval mode). Without --checkpoint the "
        "weights are random: useful for latency measurements, not for predictions.",
    )
    p.add_argument("name", metavar="NAME_OR_CODE", help="published name or arch code")
    p.add_argument("--onnx", required=True, metavar="FILE", help="where to write the .onnx file")
    p.add_argument("--input-size", metavar="HxW", default="512x1024", help="network input (default 512x1024)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classes of the head (default: the checkpoint's, else 19 / 1000 for classifiers)")
    p.add_argument("--checkpoint", metavar="FILE", default=None, help="weights: official state dict or a saved ffnet-nas checkpoint")
    p.add_argument("--fold-bn", action="store_true", help="fold BatchNorm into the convolutions before export")
    p.add_argument("--check", action="store_true", help="run the file under ONNX Runtime and report the difference to torch")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--exporter", choices=EXPORTERS, default=DEFAULT_EXPORTER,
                   help="torch.export-based exporter (default) or the legacy TorchScript tracer")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ffnet_nas.space.builder import build_model
    from ffnet_nas.space.checkpoint import infer_num_classes, load_state_dict_strict, read_state_dict
    from ffnet_nas.space.complexity import parse_hw
    from ffnet_nas.space.deploy import check_onnx, export_onnx, fold_bn

    input_hw = parse_hw(args.input_size)
    num_classes = args.num_classes
    state = None
    if args.checkpoint:
        state = read_state_dict(args.checkpoint)
        if num_classes is None:
            num_classes = infer_num_classes(state)
    model = build_model(args.name, num_classes=num_classes)
    if state is not None:
        load_state_dict_strict(model, state, source=f"checkpoint {args.checkpoint!r}")
    model.eval()
    exported = fold_bn(model) if args.fold_bn else model
    path = export_onnx(exported, args.onnx, input_hw=input_hw, opset=args.opset, exporter=args.exporter)
    weights = args.checkpoint or "random weights"
    print(f"wrote {path} ({model.arch.code}, input 1x3x{input_hw[0]}x{input_hw[1]}, {weights}"
          f"{', BN folded' if args.fold_bn else ''}, opset {args.opset})")
    if args.check:
        # compare against the unfolded torch model: the check covers folding and export together
        c = check_onnx(path, model, input_hw=input_hw)
        verdict = "OK" if c.ok else "MISMATCH (expected within 1e-4 of the output scale)"
        print(f"check under ONNX Runtime: output {'x'.join(map(str, c.output_shape))}, "
              f"max abs diff {c.max_abs_diff:.3g}, max rel diff {c.max_rel_diff:.3g} (vs max |output|): {verdict}")
        return 0 if c.ok else 1
    return 0
