"""The peer designs in blockwise distillation and assembly: a peer head learns the teacher's logits
from the teacher's features, a metamixer stage is a student block, and adapters fold exactly.

Like test_distill_library's assembly test, on a tiny space holding every peer choice.
"""

from __future__ import annotations

import pytest
import torch

from ffnet_nas.distill.assemble import assemble, run_chain, student_chain
from ffnet_nas.distill.choices import ChoiceSpec, arch_choices, space_choices
from ffnet_nas.distill.features import compute_features
from ffnet_nas.distill.dispatch import distill_library
from ffnet_nas.distill.library import BlockLibrary, TeacherInfo
from ffnet_nas.settings import BlockTrainConfig
from ffnet_nas.space.builder import build_model
from ffnet_nas.space.searchspace import from_dict
from tests.helpers.distill import NUM_CLASSES, RandomImages, one_thread, tiny_teacher

FAST = BlockTrainConfig(steps=2, batch_size=4)
# every peer choice; widths differ from the teacher's so every adapter is a real (non-square) map;
# the 3-stage option makes the s4 block a bare stem, whose adapter JPU does not read
PEERS = {"base": "mobile_peers", "name": "tiny_peers", "stems": ["B"], "seg_heads": ["B"],
         "up_heads": ["B", "FAM", "FAM2", "JPU"], "blocks": ["basic", "metamixer"],
         "stages": {3: {"depths": [[1], [1], [1]], "widths": [[16], [24], [32]]},
                    4: {"depths": [[1], [2], [1], [1]], "widths": [[24], [40], [56], [72]]}},
         "first_strides": [1], "pre_downs": [False], "input_size": "32x64"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_thread()


@pytest.fixture(scope="module")
def space():
    return from_dict(PEERS)


@pytest.fixture(scope="module")
def library(tmp_path_factory, space):
    teacher = tiny_teacher()
    train = compute_features(teacher, RandomImages(8), progress=False)
    val = compute_features(teacher, RandomImages(4, seed=1), progress=False)
    lib = BlockLibrary(tmp_path_factory.mktemp("peerlib"))
    rows = distill_library(space_choices(space), library=lib, teacher=TeacherInfo.of(teacher, digest="t0"),
                           train=train, val=val, config=FAST, progress=False)
    assert rows and {r["status"] for r in rows} == {"ok"}
    return lib


def test_peer_choices_are_parsed_back_from_their_text(space):
    for arch in space:
        for spec, block in zip(arch_choices(arch), arch.blocks()):
            assert ChoiceSpec.parse(spec.position, spec.choice) == spec
    assert ChoiceSpec.parse("head", "upFAM2-segB-nearest").up_head == "FAM2"
    assert ChoiceSpec.parse("s16", "metamixer.d2.w56.s2").block == "metamixer"


def test_every_peer_choice_distils_with_a_finite_nsr(library, space):
    table = library.table()
    choices = set(zip(table.position, table.choice))
    assert {("head", f"up{u}-segB-nearest") for u in ("FAM", "FAM2", "JPU")} <= choices
    assert ("s16", "metamixer.d1.w56.s2") in choices and ("s4", "stemB+metamixer.d1.w24.s1") in choices
    assert table.nsr_val.between(0, 1e6).all() and set(table.status) == {"ok"}


def test_assembled_peer_models_equal_the_chain_of_distilled_blocks(library, space):
    """assemble.py's claim for the peer choices: adapters fold exactly, shapes and keys are the arch's own."""
    for arch in space:
        model = assemble(arch, library)
        reference = build_model(arch, num_classes=NUM_CLASSES).state_dict()
        assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in reference.items()}
        chain = student_chain(arch, library)
        x = torch.randn(2, 3, 32, 64)
        with torch.no_grad():
            got, want = model(x), run_chain(chain, x)
        assert got.shape[-2:] == (32 // arch.output_stride, 64 // arch.output_stride)
        rel = ((got - want).norm() / want.norm()).item()
        assert rel < 1e-4, (arch.code, rel)
        assert chain[1].out_adapter.weight.shape[0] != chain[1].out_adapter.weight.shape[1]
