"""The form of the model an eager/compile table times: as built, or as it would ship.

    module     the nn.Module as `space.builder` builds it (BN separate, NCHW): every table before
               `form` existed, and the default of `make_spec` (what `run` builds)
    folded     BatchNorm folded into the convolutions (`space.deploy.fold_bn`), NCHW
    folded_cl  folded and channels_last (NHWC weights and inputs), as `bench/bench_deploy.py` measured
               0.69-0.90x of `module` on this CPU

`deploy` (the default of `measure-latency`) is not a form but a request: a new table takes
whichever of `folded` / `folded_cl` runs its probe networks faster here (the choice and both
times land in the table's metadata, `form_probe`); an existing table keeps the form it was
measured in, so its keys stay comparable (an older table without the field reads as `module`).
The form is a field of the table's spec, not of its name or keys: old tables load unchanged.
The onnxruntime backend times the graph `ffnet-nas export` writes (ONNX Runtime fuses BN itself),
so its tables are always `module`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ffnet_nas.space.errors import InvalidInput, closest

logger = logging.getLogger(__name__)

FORMS = ("module", "folded", "folded_cl")
REQUESTS = (*FORMS, "deploy")
PROBE_POINTS = 2  # networks the deploy probe times both ways (the space's first calibration points)


def check_form(form: str, backend: str) -> str:
    """The form a spec gets for `form` as asked; `deploy` stays a request until `resolve_form`."""
    if form not in REQUESTS:
        raise InvalidInput(f"unknown form {form!r}: expected one of {', '.join(REQUESTS)}{closest(form, REQUESTS)}")
    if backend == "onnxruntime":
        if form in ("folded", "folded_cl"):
            raise InvalidInput(f"--form {form} with --backend onnxruntime: it times the graph `ffnet-nas export` "
                               "writes (ONNX Runtime folds BN itself); expected --form module or deploy")
        return "module"
    return form


def apply_form(module, inputs: tuple, form: str) -> tuple:
    """(module, inputs) in `form`; `module` must already be on its device and dtype."""
    if form == "module":
        return module, inputs
    import torch
    from ffnet_nas.space.deploy import fold_bn, to_channels_last

    module = fold_bn(module)
    if form == "folded_cl":
        module = to_channels_last(module)
        inputs = tuple(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x for x in inputs)
    return module, inputs


def resolve_form(*, lut_dir: str | Path, spec, protocol, space) -> tuple[object, dict | None]:
    """(spec with a concrete form, the probe record or None) for a spec whose form is `deploy`."""
    from dataclasses import replace

    from ffnet_nas.predictors.latency.lut import table_paths
    from ffnet_nas.space.io import read_json

    if spec.form != "deploy":
        return spec, None
    _, meta_path = table_paths(lut_dir, spec)
    if meta_path.exists():
        try:
            stored = (read_json(meta_path, what="latency table metadata").get("spec") or {}).get("form", "module")
        except (InvalidInput, AttributeError):
            stored = None  # open_table reports a damaged file in its own words
        if stored in FORMS:
            if stored == "module":
                logger.warning("latency table %s was measured as built (form module); it is extended in that form "
                               "so its keys add up (delete it to measure the deployable form)", meta_path.stem)
            return replace(spec, form=stored), None
    return _probe(spec, protocol, space)


def _probe(spec, protocol, space) -> tuple[object, dict]:
    from dataclasses import replace

    from ffnet_nas.predictors.latency.backends import prepare
    from ffnet_nas.predictors.latency.modules import network
    from ffnet_nas.predictors.latency.protocol import measurement_context, time_callable
    from ffnet_nas.predictors.latency.validate import calibration_points

    archs = calibration_points(space, PROBE_POINTS)
    totals = {"folded": 0.0, "folded_cl": 0.0}
    with measurement_context(spec.device, spec.threads):
        for arch in archs:
            model, inputs = network(arch, spec.input_hw, spec.batch, num_classes=spec.num_classes)
            for form in totals:  # both forms of one network back to back: drift hits both alike
                fn = prepare(model, inputs, backend=spec.backend, device=spec.device, dtype=spec.dtype,
                             threads=spec.threads, form=form)
                totals[form] += time_callable(fn, device=spec.device, protocol=protocol).estimate_ms
    chosen = min(totals, key=totals.get)
    probe = {"chosen": chosen, "ms": {k: round(v, 4) for k, v in totals.items()}, "codes": [a.code for a in archs]}
    logger.info("deployable form: %s (probe %s)", chosen, probe["ms"])
    return replace(spec, form=chosen), probe
