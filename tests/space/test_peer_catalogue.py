"""The peer reference points of the catalogue (NOT FFNets), the `mobile_peers` space, and the CLI listing."""

import re
from pathlib import Path

import pytest

from ffnet_nas.cli import main
from ffnet_nas.space import Arch, InvalidInput, build_model, published_variants
from ffnet_nas.space.peers import ffnet_twins, get_peer, peer_points
from ffnet_nas.space.searchspace import get_space

ANCHORS = Path("/work/shared/reference/ANCHORS.md")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_peer_points_are_marked_and_kept_out_of_the_published_ffnets():
    peers = peer_points()
    assert {"peer_sfnet_r18", "peer_fastfcn_r50", "peer_metamixer_mobile"} <= {p.name for p in peers}
    assert all(p.family == "peer" and not p.is_ffnet and not p.arch.is_ffnet for p in peers)
    assert {p.design for p in peers} == {"upFAM", "upFAM2", "upJPU", "metamixer"}
    published = published_variants()
    assert len(published) == 94 and not any(v.name.startswith("peer_") for v in published)
    assert not {p.arch for p in peers} & {v.arch for v in published}


def test_peer_points_resolve_by_name_and_build():
    for p in peer_points():
        assert Arch.from_name(p.name) == p.arch == Arch.parse(p.arch.code)
    assert get_peer("peer_sfnet_r18").arch.code == "stemA-basic-d2.2.2.2-w64.128.256.512-s1-upFAM-segC-bilinear"
    assert get_peer("peer_fastfcn_r50").arch.block == "bottleneck"
    build_model("peer_metamixer_mobile", num_classes=3)
    with pytest.raises(InvalidInput, match="unknown peer point 'peer_sfnet_r19'.*peer_sfnet_r18"):
        get_peer("peer_sfnet_r19")
    with pytest.raises(InvalidInput, match="unknown peer point 'peer_sfnet_r18x'.*did you mean: peer_sfnet_r18"):
        Arch.from_name("peer_sfnet_r18x")


@pytest.mark.skipif(not ANCHORS.is_file(), reason="the shared reference file is not on this machine")
def test_every_published_number_is_in_anchors():
    """Only figures the reference file really holds: every number a peer quotes appears in ANCHORS.md."""
    text = ANCHORS.read_text()
    for p in peer_points():
        quoted = " ".join(v for _, v in p.figures)
        for number in re.findall(r"\d+\.\d+", quoted):
            assert number in text, (p.name, number)
        if p.miou is not None:
            assert f"{p.miou:.1f}" in text and f"{p.miou:.1f}" in quoted


def test_mobile_peers_is_mobile_plus_the_peer_choices():
    mobile, peers = get_space("mobile"), get_space("mobile_peers")
    assert peers.blocks == mobile.blocks + ("metamixer",)
    assert peers.up_heads == mobile.up_heads + ("FAM", "FAM2", "JPU")
    assert peers.size == mobile.size * 2 * 5 // 2
    assert all(v.arch in peers for v in published_variants() if v.family == "mobile" and v.task == "segmentation")
    inside = {p.name for p in peer_points() if p.arch in peers}
    assert inside == {"peer_metamixer_mobile", "peer_sfnet_mobile", "peer_sfnet_lite_mobile", "peer_fastfcn_mobile"}
    # the transplants share FFNet-40S's backbone: the FFNet they are compared with
    assert "segmentation_ffnet40S_BBB_mobile" in ffnet_twins("peer_sfnet_mobile")


def test_list_published_shows_the_peers_marked_not_ffnet(capsys):
    code, out, err = run(capsys, "space", "list", "--published")
    assert code == 0 and err == ""
    head, _, peers = out.partition("peer reference points: NOT FFNets")
    assert "peer_" not in head and "segmentation_ffnet40S_BBB_mobile" in head
    rows = {line.split()[0]: line for line in peers.splitlines()[2:] if line.strip()}
    assert set(rows) == {p.name for p in peer_points()}
    assert "peer (not FFNet)" in rows["peer_sfnet_r18"] and "79.0 (78.4 without balanced sampling)" in rows["peer_sfnet_r18"]
    assert "no results published" in rows["peer_fastfcn_r50"]
    code, out, _ = run(capsys, "space", "list", "--published", "--space", "mobile_peers")
    assert code == 0 and "peer_sfnet_mobile" in out and "segmentation_ffnet40S_BBB_mobile " in out
    assert "gpu_large" not in out
    code, out, _ = run(capsys, "space", "list", "--published", "--space", "mobile")
    assert code == 0 and "peer_" not in out


def test_show_a_peer_point(capsys):
    code, out, _ = run(capsys, "space", "show", "peer_sfnet_r18")
    assert code == 0
    assert out.splitlines()[0].startswith("peer_sfnet_r18  (SFNet") and "NOT an FFNet" in out.splitlines()[0]
    assert "FAM (SFNet)" in out and "1024x2048 (the peer point's input)" in out and "79.0" in out
    code, out, _ = run(capsys, "space", "show", "stemB-metamixer-d2.2.6.2-w64.128.192.320-s1-upB-segB-nearest",
                       "--input-size", "64x128")
    assert code == 0 and "not an FFNet" in out.splitlines()[0] and "metamixer" in out
