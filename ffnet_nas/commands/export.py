"""`ffnet-nas export NAME_OR_CODE --onnx out.onnx`: an ONNX file for deployment, checked if asked.

`--from-run WORKDIR` exports what a finished `ffnet-nas run` found: the best point of its
run_summary.json with the weights `ffnet-nas evaluate` fine-tuned for it (`--point CODE`: another
point that run evaluated). The file's metadata then also carries the class names, the data set and
the sizes the run trained and deployed at, so the .onnx file alone says how to feed it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ffnet_nas.commands._common import DEFAULT_EXPORTER, DEFAULT_OPSET, EXPORTERS, common_options

DEFAULT_INPUT_SIZE = "512x1024"  # the mobile resolution: a published name or a code exported on its own


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", parents=[common_options()],
        help="export a point (published name or arch code), or a run's best model with its weights, to ONNX",
        description="Export an FFNet to ONNX (fixed input shape 1x3xHxW, eval mode). Without --checkpoint the "
        "weights are random: useful for latency measurements, not for predictions. --from-run WORKDIR exports "
        "what 'ffnet-nas run' found there: its best point with its fine-tuned weights (--point CODE: another "
        "point it evaluated). The file's metadata names the arch code, the input size and the normalisation, "
        "and with --from-run the class names and the data set too.",
    )
    p.add_argument("name", metavar="NAME_OR_CODE", nargs="?", default=None,
                   help="published name or arch code (not with --from-run)")
    p.add_argument("--onnx", required=True, metavar="FILE", help="where to write the .onnx file")
    p.add_argument("--from-run", metavar="WORKDIR", default=None,
                   help="export the best point of a finished 'ffnet-nas run' in WORKDIR with its fine-tuned weights")
    p.add_argument("--point", metavar="CODE", default=None,
                   help="with --from-run: another point the run evaluated, instead of its best")
    p.add_argument("--input-size", metavar="HxW", default=None,
                   help=f"network input (default {DEFAULT_INPUT_SIZE}; with --from-run the run's deployment "
                        "size if it recorded one, else the size it trained at)")
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
    from ffnet_nas.found import from_run, normalisation
    from ffnet_nas.space.complexity import parse_hw
    from ffnet_nas.space.deploy import check_onnx, export_onnx, fold_bn
    from ffnet_nas.space.errors import InvalidInput

    if args.from_run is not None:
        clashes = [flag for flag, given in (("NAME_OR_CODE", args.name), ("--checkpoint", args.checkpoint),
                                            ("--num-classes", args.num_classes is not None)) if given]
        if clashes:
            raise InvalidInput(f"--from-run exports the run's own model: {' and '.join(clashes)} cannot be given with it "
                               "(use --point CODE for another point of the run)")
        found = from_run(Path(args.from_run), point=args.point)  # ffnet_nas.found
        model, weights, metadata = found.model, found.weights, found.metadata
        input_hw = parse_hw(args.input_size) if args.input_size else found.input_hw
    else:
        if args.point is not None:
            raise InvalidInput("--point CODE names a point of a run: expected --from-run WORKDIR with it "
                               "(or give the code as NAME_OR_CODE)")
        if args.name is None:
            raise InvalidInput("expected NAME_OR_CODE (a published name or an arch code) or --from-run WORKDIR")
        model, weights = _named(args)
        metadata = {"weights": weights, **normalisation()}
        input_hw = parse_hw(args.input_size or DEFAULT_INPUT_SIZE)
    model.eval()
    exported = fold_bn(model) if args.fold_bn else model
    path = export_onnx(exported, args.onnx, input_hw=input_hw, opset=args.opset, exporter=args.exporter,
                       metadata=metadata)
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


def _named(args: argparse.Namespace):
    from ffnet_nas.space.builder import build_model
    from ffnet_nas.space.checkpoint import infer_num_classes, load_state_dict_strict, read_state_dict

    num_classes = args.num_classes
    state = None
    if args.checkpoint:
        state = read_state_dict(args.checkpoint)
        if num_classes is None:
            num_classes = infer_num_classes(state)
    model = build_model(args.name, num_classes=num_classes)
    if state is not None:
        load_state_dict_strict(model, state, source=f"checkpoint {args.checkpoint!r}")
    return model, args.checkpoint or "random weights"
