"""`ffnet-nas export NAME_OR_CODE --onnx out.onnx`: an ONNX file for deployment, checked if asked.

`--from-run WORKDIR` exports what a finished `ffnet-nas run` found: the best point of its
run_summary.json with the weights `ffnet-nas evaluate` fine-tuned for it (`--point CODE`: another
point that run evaluated). The file's metadata then also carries the class names, the data set and
the sizes the run trained and deployed at, so the .onnx file alone says how to feed it.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from ffnet_nas.commands._common import DEFAULT_EXPORTER, DEFAULT_OPSET, EXPORTERS, common_options

logger = logging.getLogger(__name__)

DEFAULT_INPUT_SIZE = "512x1024"  # the mobile resolution: a published name or a code exported on its own
# How the images the networks were trained on were fed to them (ffnet_nas.data.transforms.normalize)
NORMALISATION = "RGB scaled to [0, 1], then (x - mean) / std per channel"


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


@dataclass(frozen=True)
class Found:
    """A model of a finished run, and what its ONNX file says about it."""

    model: object  # the FFNet, weights loaded
    weights: str  # where they came from, for the printed line
    input_hw: tuple[int, int]  # the default export size: the deployment size, else the training size
    metadata: dict


def run(args: argparse.Namespace) -> int:
    from ffnet_nas.space.complexity import parse_hw
    from ffnet_nas.space.deploy import check_onnx, export_onnx, fold_bn
    from ffnet_nas.space.errors import InvalidInput

    if args.from_run is not None:
        clashes = [flag for flag, given in (("NAME_OR_CODE", args.name), ("--checkpoint", args.checkpoint),
                                            ("--num-classes", args.num_classes is not None)) if given]
        if clashes:
            raise InvalidInput(f"--from-run exports the run's own model: {' and '.join(clashes)} cannot be given with it "
                               "(use --point CODE for another point of the run)")
        found = from_run(Path(args.from_run), point=args.point)
        model, weights, metadata = found.model, found.weights, found.metadata
        input_hw = parse_hw(args.input_size) if args.input_size else found.input_hw
    else:
        if args.point is not None:
            raise InvalidInput("--point CODE names a point of a run: expected --from-run WORKDIR with it "
                               "(or give the code as NAME_OR_CODE)")
        if args.name is None:
            raise InvalidInput("expected NAME_OR_CODE (a published name or an arch code) or --from-run WORKDIR")
        model, weights = _named(args)
        metadata = {"weights": weights, **_normalisation()}
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


def _normalisation() -> dict:
    from ffnet_nas.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    # the one normalisation every data set here applies (ffnet_nas.data.transforms.normalize)
    return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "normalisation": NORMALISATION}


def from_run(workdir: Path, *, point: str | None = None) -> Found:
    """The best point of the finished run in `workdir` (or `point`, which it evaluated), its weights loaded.

    One InvalidInput line naming what is missing when the folder holds no finished run, no best
    point, or no readable fine-tuned model for it.
    """
    from ffnet_nas.evaluate import INITS, read_evaluated
    from ffnet_nas.pipeline import read_summary
    from ffnet_nas.space.arch import resolve
    from ffnet_nas.space.checkpoint import load_model
    from ffnet_nas.space.errors import InvalidInput
    from ffnet_nas.space.io import read_json
    from ffnet_nas.workspace import Workspace

    ws = Workspace(workdir)
    if not ws.root.is_dir():
        raise InvalidInput(f"--from-run {str(workdir)!r}: no such folder; expected the --workdir of a finished 'ffnet-nas run'")
    if not ws.run_summary_path.is_file():
        raise InvalidInput(f"--from-run {str(workdir)!r} holds no finished run: {str(ws.run_summary_path)!r} is missing "
                           "(expected the folder where 'ffnet-nas run' finished; run it, or re-run it to finish)")
    summary = read_summary(ws.run_summary_path)
    if point is None:
        row = summary.best
        if not isinstance(row, dict) or not isinstance(row.get("code"), str):
            raise InvalidInput(f"run summary {str(ws.run_summary_path)!r} records no best point (the run evaluated "
                               "none it could pick): export an evaluated point with --point CODE")
        arch = resolve(row["code"])
        what = "the best point"
    else:
        arch = resolve(point)
        # the evaluated row, when the table has it: the size the point trained at and its score
        table = read_evaluated(ws.evaluated_path)
        rows = table[table["code"] == arch.code].to_dict("records") if len(table) else []
        row = next((r for r in rows if r.get("init") == "distilled"), rows[0] if rows else {"code": arch.code})
        what = "point"
    init = row.get("init") or "distilled"
    if init not in INITS:
        raise InvalidInput(f"run summary {str(ws.run_summary_path)!r}: init {init!r} of {arch.code}: expected one of "
                           f"{', '.join(INITS)} (the file is damaged: re-run 'ffnet-nas run')")
    model_path = ws.point_model_path(arch.stable_hash, init)
    if not model_path.is_file():
        raise InvalidInput(f"--from-run {str(workdir)!r}: {what} {arch.code} has no fine-tuned model: "
                           f"{str(model_path)!r} is missing (expected the file 'ffnet-nas evaluate' writes; make it again "
                           f"with 'ffnet-nas evaluate {arch.code} --workdir {workdir}')")
    model = load_model(model_path)  # reads the digest too: a damaged file is one line
    if model.arch.code != arch.code:
        raise InvalidInput(f"{str(model_path)!r} holds {model.arch.code}, not {arch.code}: the file does not belong "
                           f"there (make it again with 'ffnet-nas evaluate {arch.code} --workdir {workdir} --redo')")

    teacher = _teacher_info(ws)
    train_hw = _hw(row.get("input_hw")) or (teacher.input_hw if teacher is not None else None)
    record = read_json(ws.run_summary_path, what="run summary")
    deploy_hw = _deployment_hw(record)
    data = (teacher.data if teacher is not None else None) or _recorded_data(record)
    names = _class_names(teacher, data, num_classes=model.num_classes)
    miou = row.get("measured_miou")
    metadata = {
        "weights": ws.relative(model_path),
        "data": data,
        "class_names": list(names) if names else None,
        "train_input_size": f"{train_hw[0]}x{train_hw[1]}" if train_hw else None,
        "deploy_input_size": f"{deploy_hw[0]}x{deploy_hw[1]}" if deploy_hw else None,
        "measured_miou": f"{float(miou):.2f}" if isinstance(miou, (int, float)) else None,
        **_normalisation(),
    }
    input_hw = deploy_hw or train_hw
    if input_hw is None:
        raise InvalidInput(f"--from-run {str(workdir)!r}: neither the run nor its teacher records the size "
                           f"{arch.code} trained at: pass --input-size HxW")
    return Found(model=model, weights=str(model_path), input_hw=input_hw, metadata=metadata)


def _teacher_info(ws):
    """The teacher's metadata (data set, class names, size), or None when the workdir has no readable teacher:
    the export does not need the teacher, only what it says about the data."""
    from ffnet_nas.distill.teacher import read_teacher_info
    from ffnet_nas.space.errors import InvalidInput

    try:
        return read_teacher_info(ws.teacher_path)
    except InvalidInput as e:
        logger.warning("no class names or data set from the teacher: %s", e)
        return None


def _class_names(teacher, data: str | None, *, num_classes: int) -> tuple[str, ...]:
    """The names of the classes the model predicts, in order: as the teacher recorded them (train-teacher
    writes its validation set's), else the data set's own list. None fits: () and a warning, since a
    wrong list in the file would be worse than none."""
    names = tuple(teacher.class_names) if teacher is not None and teacher.class_names else ()
    if not names and data:
        names = _data_class_names(data)
    if names and len(names) != num_classes:
        logger.warning("the data set names %d classes but the model predicts %d: class names left out of the file",
                       len(names), num_classes)
        return ()
    if not names:
        logger.warning("class names unknown (the teacher does not record them, data %r): left out of the file", data)
    return names


def _data_class_names(spec: str) -> tuple[str, ...]:
    from ffnet_nas.data import parse_spec
    from ffnet_nas.space.errors import InvalidInput

    try:
        kind, arg = parse_spec(spec)
        if kind == "synthetic":
            from ffnet_nas.data.synthetic import CLASS_NAMES
        elif kind == "cityscapes":
            from ffnet_nas.data.cityscapes import CLASS_NAMES
        elif kind == "ade20k":
            from ffnet_nas.data.ade20k import CLASS_NAMES
        else:
            from ffnet_nas.data.folder import class_names

            return tuple(class_names(Path(arg).expanduser()))  # needs the folder: it names its classes
        return tuple(CLASS_NAMES)
    except (InvalidInput, OSError) as e:
        logger.warning("class names of data %r unavailable: %s", spec, e)
        return ()


def _deployment_hw(record: object) -> tuple[int, int] | None:
    """The deployment input size a run recorded (`input_size`, at the top or in its configuration), if any.

    Runs that train and deploy at one size record none; the export then uses the training size."""
    if not isinstance(record, dict):
        return None
    config = (record.get("provenance") or {}).get("config") if isinstance(record.get("provenance"), dict) else None
    for where in (record, config if isinstance(config, dict) else {}):
        for key in ("input_size", "input_hw"):
            hw = _hw(where.get(key))
            if hw is not None:
                return hw
    return None


def _recorded_data(record: object) -> str | None:
    config = record.get("provenance", {}).get("config") if isinstance(record, dict) and isinstance(record.get("provenance"), dict) else None
    data = config.get("data") if isinstance(config, dict) else None
    return data if isinstance(data, str) else None


def _hw(value: object) -> tuple[int, int] | None:
    """'HxW' or [H, W] as recorded in a table or summary; None for anything else."""
    if isinstance(value, str):
        h, sep, w = value.lower().partition("x")
        value = [h, w] if sep else None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        try:
            h, w = (int(v) for v in value)
        except (TypeError, ValueError):
            return None
        return (h, w) if h > 0 and w > 0 else None
    return None
