"""Model files for devices this process cannot reach: one ONNX graph per table key, plus networks.

`export_units` writes, into a folder a user copies to a phone (or uploads to a device farm):

    units/<key as a file name>.onnx       one per table key (stem, block, head, predown)
    networks/net_<code>.onnx              the calibration networks (`validate.calibration_points`),
                                          and, once `import-latency --validate N` asked, validation ones
    manifest.json                         key, kind, file, input names and shapes, the table's settings

The graphs are `ffnet-nas export`'s own (`backends.export_onnx`, the export `SHIPPED_EXPORT`
records), fp32 at the table's input size, batch and class count: the same graphs the
onnxruntime backend times here. A device toolchain converts and quantises them itself (AI Hub
compiles ONNX to TFLite/QNN and quantises with its own calibration), so `--precision` says what
the times will be of, not what the files hold. Every file and the manifest are written
atomically; the manifest last, so a folder with a manifest is complete.

Networks have the key `net:<code>` in the manifest and in a CSV of times; units their table key.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import (
    atomic_write_bytes,
    atomic_write_json,
    provenance,
    read_json,
)

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "ffnet-nas-latency-units/1"
NET_PREFIX = "net:"


@dataclass(frozen=True, kw_only=True)
class Entry:
    key: str  # a table key, or net:<code>
    kind: str  # predown | stem | block | head | calibration | validation
    file: str  # relative to the manifest's folder
    inputs: tuple[tuple[str, tuple[int, ...]], ...]  # (ONNX input name, shape)

    def to_dict(self) -> dict:
        return {"key": self.key, "kind": self.kind, "file": self.file,
                "inputs": [{"name": n, "shape": list(s)} for n, s in self.inputs]}

    @classmethod
    def from_dict(cls, d: dict) -> Entry:
        return cls(key=str(d["key"]), kind=str(d["kind"]), file=str(d["file"]),
                   inputs=tuple((str(i["name"]), tuple(int(v) for v in i["shape"])) for i in d["inputs"]))


@dataclass(frozen=True, kw_only=True)
class Manifest:
    path: Path
    space: str
    input_hw: tuple[int, int]
    batch: int
    num_classes: int
    entries: tuple[Entry, ...]
    meta: dict

    @property
    def folder(self) -> Path:
        return self.path.parent

    def units(self) -> list[Entry]:
        return [e for e in self.entries if not e.key.startswith(NET_PREFIX)]

    def networks(self, kind: str) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind]


def file_name(key: str) -> str:
    # keys hold ':' (not allowed on Windows/FAT phones' storage) and nothing else awkward
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", key) + ".onnx"


def _export(module, inputs, path: Path) -> tuple[tuple[str, tuple[int, ...]], ...]:
    import onnx
    import torch
    from ffnet_nas.predictors.latency.backends import export_onnx

    with torch.no_grad():
        data = export_onnx(module.eval(), inputs)
    names = [i.name for i in onnx.load_from_string(data).graph.input]
    atomic_write_bytes(path, data)
    return tuple((n, tuple(x.shape)) for n, x in zip(names, inputs))


def _network_entries(folder: Path, archs: Iterable, *, kind: str, input_hw, batch: int, num_classes: int,
                     done: dict[str, Entry]) -> list[Entry]:
    from ffnet_nas.predictors.latency.modules import network

    out = []
    for arch in archs:
        key = NET_PREFIX + arch.code
        if key in done and (folder / done[key].file).exists():
            out.append(done[key])
            continue
        rel = f"networks/{file_name('net_' + arch.code)}"
        model, inputs = network(arch, input_hw, batch, num_classes=num_classes)
        logger.info("exporting %s", rel)
        out.append(Entry(key=key, kind=kind, file=rel, inputs=_export(model, inputs, folder / rel)))
    return out


def export_units(*, out_dir: str | Path, space, input_hw: tuple[int, int], batch: int, num_classes: int,
                 calibrate_n: int, space_ref: str | None = None) -> Manifest:
    """Write every unit of `space` and its `calibrate_n` calibration networks as ONNX, then the manifest."""
    from ffnet_nas.predictors.latency.backends import (
        SHIPPED_EXPORT,
        check_backend,
        export_record,
    )
    from ffnet_nas.predictors.latency.keys import space_units
    from ffnet_nas.predictors.latency.modules import unit_inputs, unit_module
    from ffnet_nas.predictors.latency.validate import calibration_points

    check_backend("onnxruntime", "cpu")  # onnx + onnxscript present, in one line if not
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"--export-units {str(folder)!r} is a file: expected a folder (new or one it wrote before)")
    units = space_units(space, tuple(input_hw), num_classes=num_classes)
    entries: list[Entry] = []
    files = set()
    for unit in units:
        rel = f"units/{file_name(unit.key)}"
        if rel in files:  # two keys one file name: would silently time one graph for both
            raise RuntimeError(f"file name collision for {unit.key!r}")
        files.add(rel)
        logger.info("exporting %s", rel)
        shapes = _export(unit_module(unit), unit_inputs(unit, batch), folder / rel)
        entries.append(Entry(key=unit.key, kind=unit.kind, file=rel, inputs=shapes))
    entries += _network_entries(folder, calibration_points(space, calibrate_n) if calibrate_n > 0 else [],
                                kind="calibration", input_hw=input_hw, batch=batch, num_classes=num_classes, done={})
    meta = {"format": FORMAT, "space": space_ref or space.name, "space_name": space.name,
            "input_hw": list(input_hw), "batch": batch, "num_classes": num_classes,
            "export": export_record(SHIPPED_EXPORT), "dtype_of_files": "fp32",
            "provenance": provenance(what="ffnet-nas measure-latency --export-units")}
    manifest = Manifest(path=folder / MANIFEST, space=meta["space"], input_hw=tuple(input_hw), batch=batch,
                        num_classes=num_classes, entries=tuple(entries), meta=meta)
    return save_manifest(manifest)


def save_manifest(manifest: Manifest) -> Manifest:
    atomic_write_json(manifest.path, {**manifest.meta, "entries": [e.to_dict() for e in manifest.entries]})
    return manifest


def add_networks(manifest: Manifest, archs: Iterable, *, kind: str) -> Manifest:
    """The manifest with `archs` exported as `kind` networks (those already there kept), saved."""
    done = {e.key: e for e in manifest.entries}
    new = _network_entries(manifest.folder, archs, kind=kind, input_hw=manifest.input_hw, batch=manifest.batch,
                           num_classes=manifest.num_classes, done=done)
    keys = {e.key for e in new}
    entries = tuple(e for e in manifest.entries if e.key not in keys) + tuple(new)
    if entries == manifest.entries:
        return manifest
    from dataclasses import replace

    return save_manifest(replace(manifest, entries=entries))


def load_manifest(path: str | Path) -> Manifest:
    """The manifest at `path` (a file, or the folder holding manifest.json)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.exists():
        raise InvalidInput(f"no unit manifest {str(path)!r}: expected the folder `ffnet-nas measure-latency "
                           "--export-units DIR` wrote (--units DIR)")
    meta = read_json(path, what="unit manifest")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("entries"), list):
        raise InvalidInput(f"{str(path)!r} is not a unit manifest ({FORMAT}): expected the manifest.json "
                           "`ffnet-nas measure-latency --export-units DIR` wrote")
    try:
        entries = tuple(Entry.from_dict(e) for e in meta.pop("entries"))
        return Manifest(path=path, space=str(meta["space"]), input_hw=tuple(int(v) for v in meta["input_hw"]),
                        batch=int(meta["batch"]), num_classes=int(meta["num_classes"]), entries=entries, meta=meta)
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidInput(f"unit manifest {str(path)!r} is damaged ({e!r}): expected it as --export-units "
                           "wrote it; export again") from None
