"""A model a finished `ffnet-nas run` found, ready to take away: its weights and what its
deployment file should say about it (`ffnet-nas export --from-run`, or a notebook).

    found = from_run(Path("runs/default"))              # the run's best point
    found = from_run(Path("runs/default"), point=CODE)  # another point it evaluated
    found.model, found.input_hw, found.metadata         # FFNet (weights loaded), deployment size, ONNX metadata

The metadata carries the arch code, the class names, the data set, the sizes the run trained and
deployed at and the input normalisation, so the exported file alone says how to feed it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# How the images the networks were trained on were fed to them (ffnet_nas.data.transforms.normalize)
NORMALISATION = "RGB scaled to [0, 1], then (x - mean) / std per channel"


@dataclass(frozen=True)
class Found:
    """A model of a finished run, and what its ONNX file says about it."""

    model: object  # the FFNet, weights loaded
    weights: str  # where they came from, for the printed line
    input_hw: tuple[int, int]  # the default export size: the deployment size, else the training size
    metadata: dict


def normalisation() -> dict:
    from ffnet_nas.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    # the one normalisation every data set here applies (ffnet_nas.data.transforms.normalize)
    return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "normalisation": NORMALISATION}


def from_run(workdir: Path, *, point: str | None = None) -> Found:
    """The best point of the finished run in `workdir` (or `point`, which it evaluated), its weights loaded.

    One InvalidInput line naming what is missing when the folder holds no finished run, no best
    point, or no readable fine-tuned model for it.
    """
    from ffnet_nas.evaluate import INITS, read_evaluated
    from ffnet_nas.run_summary import read_summary
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
    record = read_json(ws.run_summary_path, what="run summary")
    # rows and summaries since the two sizes were kept apart say both; before, a row's input_hw
    # was the one size the run trained and timed at
    train_hw = (_hw(row.get("train_hw")) or _hw(record.get("train_hw")) or _hw(row.get("input_hw"))
                or (teacher.input_hw if teacher is not None else None))
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
        **_int8_record(row, record),
        **normalisation(),
    }
    input_hw = deploy_hw or train_hw
    if input_hw is None:
        raise InvalidInput(f"--from-run {str(workdir)!r}: neither the run nor its teacher records the size "
                           f"{arch.code} trained at: pass --input-size HxW")
    return Found(model=model, weights=str(model_path), input_hw=input_hw, metadata=metadata)


def _int8_record(row: dict, record: dict) -> dict:
    """The quantised model's mIoU when the point was scored in INT8, and which mIoU the run judged
    by (an INT8 run: int8_miou); nothing for a float run, whose metadata stays as it was."""
    int8 = row.get("int8_miou")
    out = {"int8_miou": f"{float(int8):.2f}"} if isinstance(int8, (int, float)) and int8 == int8 else {}
    if record.get("accuracy") not in (None, "measured_miou"):
        out["judged_by"] = record["accuracy"]
    return out


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
    """The deployment input size a run recorded (`input_hw`, written since the training and the
    deployment sizes were kept apart); None for older runs, which used one size for both."""
    return _hw(record.get("input_hw")) if isinstance(record, dict) else None


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


__all__ = ["Found", "NORMALISATION", "from_run", "normalisation"]
