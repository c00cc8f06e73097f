"""The peer designs in the latency table: a FAM/JPU head is one head unit, a metamixer block a block key.

Keys match the shapes the real network sees; every peer unit builds, runs and exports (ONNX Runtime,
the JPU head included though it never reads its stride-4 input).
"""

from collections import Counter

import pytest
import torch
from ffnet_nas.predictors.latency.backends import prepare
from ffnet_nas.predictors.latency.keys import space_units, units_of
from ffnet_nas.predictors.latency.modules import unit_inputs, unit_module
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.searchspace import get_space

from tests.helpers.lut_keys import traced_keys

CODES = ["stemB-metamixer-d2.1.3.1-w16.24.32.40-s1-upFAM-segB-nearest",
         "stemC-metamixer-d1.2.1-w16.24.32-s2-upJPU-segC-bilinear-predown",
         "stemB-basic-d1.1.1.2-w16.24.32.40-s2-upFAM2-segB-nearest",
         "stemA-bottleneck-d1.1.2.1-w16.24.32.40-s1-upJPU-segA-bilinear"]  # peer_fastfcn_r50's shape, narrowed


@pytest.mark.parametrize("code", CODES)
def test_peer_units_match_the_real_network(code):
    arch = Arch.parse(code)
    ours = Counter({u.key: n for u, n in units_of(arch, (64, 128)).items()})
    assert ours == traced_keys(arch, (64, 128))  # every unit: stem, blocks of each type, the peer head
    heads = [u for u in units_of(arch, (64, 128)) if u.kind == "head"]
    assert len(heads) == 1 and heads[0].spec.startswith(f"up{arch.up_head}-")  # the whole peer head: one unit


def test_mobile_peers_units_cover_samples_and_hold_the_peer_keys():
    space = get_space("mobile_peers")
    units = space_units(space, (64, 128))
    keys = {u.key for u in units}
    for arch in space.sample_many(100, seed=5):
        assert {u.key for u in units_of(arch, (64, 128))} <= keys
    specs = {u.spec.split("-")[0] for u in units if u.kind == "head"}
    assert specs == {"upB", "upC", "upFAM", "upFAM2", "upJPU"}
    assert any(u.spec.startswith("metamixer:") for u in units if u.kind == "block")
    assert len(keys) < 3 * len(space_units(get_space("mobile"), (64, 128)))  # a few dozen more, not a blow-up


def test_peers_paper_holds_every_unit_of_the_paper_shaped_peers():
    """`measure-latency --space peers_paper` is how their latency gets into a table: it must time all
    their units, at any input size, and only a few dozen."""
    from ffnet_nas.space.peers import peer_points

    space = get_space("peers_paper")
    for hw in ((64, 128), (1024, 2048)):
        keys = {u.key for u in space_units(space, hw)}
        inside = [p for p in peer_points() if p.arch in space]
        assert len(inside) == 4 and all({u.key for u in units_of(p.arch, hw)} <= keys for p in inside)
        assert len(keys) <= 30


@pytest.mark.parametrize("code", CODES)
def test_peer_units_build_run_and_export(code):
    torch.set_num_threads(1)
    arch = Arch.parse(code)
    for unit in units_of(arch, (32, 64), num_classes=5):
        # FFNet's own blocks are exported and timed elsewhere (tests/latency): here the peer units
        if unit.kind not in ("head", "block") or (unit.kind == "block" and not unit.spec.startswith("metamixer:")):
            continue
        module, xs = unit_module(unit), unit_inputs(unit, 1)
        with torch.no_grad():
            want = module(*xs)
        if unit.kind == "head":
            run = prepare(module, xs, backend="onnxruntime", device="cpu", dtype="fp32", threads=1)
            got = torch.from_numpy(run()[0])
            assert got.shape == want.shape
            assert (got - want).abs().max() <= 1e-4 * want.abs().max()
        else:
            assert want.shape[1] == int(unit.spec.split(":p")[1].split("-")[0])
