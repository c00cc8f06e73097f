"""Peer points (NOT FFNets) in the report: the Pareto figure places them from the workdir's tables,
and the claim "at equal latency, does the fussier head or block buy accuracy?" is answered from them.

The tables are written in the formats the other layers write (tests/helpers/report.py, plus a latency
table with real unit keys and trials added to the real Optuna journal); the report itself runs unmocked.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage

from ffnet_nas.predictors.latency.keys import units_of
from ffnet_nas.predictors.latency.lut import COLUMNS
from ffnet_nas.reports import claims, inputs as inp
from ffnet_nas.reports.build import build_report, claim_inputs
from ffnet_nas.reports.pareto import PEER_COLOUR, PEER_LATENCY_ONLY, render_pareto
from ffnet_nas.reports.pareto_data import GROUP_OWN, GROUP_PEER, pareto_data
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.peers import get_peer, peer_points
from ffnet_nas.space.searchspace import get_space

from tests.helpers.report import SLUG, SPEC, make_workdir

PEERS = next(c for c in claims.CLAIMS if c.key == "peers")
MEASURED_PEER = "peer_metamixer_mobile"  # evaluated in full here
SCORED_PEER = "peer_sfnet_mobile"  # scored by the search (a trial), never evaluated
LATENCY_ONLY_PEER = "peer_sfnet_r18"  # its units are in the table, nothing scored it
IN_TABLE = (SCORED_PEER, LATENCY_ONLY_PEER, "peer_fastfcn_mobile")


def _inputs(root: Path) -> inp.ReportInputs:
    return inp.ReportInputs(lut_dir=root / "lut", library_dir=root / "library", search_dir=root / "search",
                            evaluated_path=root / "evaluated.csv", predictor_dir=root / "predictor",
                            run_summary_path=root / "run_summary.json")


def _key_ms(key: str) -> float:
    return 0.5 + (sum(map(ord, key)) % 97) / 10  # made up, but fixed per key


def _write_table(root: Path, names=IN_TABLE) -> None:
    """The workdir's latency table holding the units of `names` (as measure-latency writes it)."""
    hw = tuple(SPEC["input_hw"])
    keys = sorted({u.key: u for n in names for u in units_of(get_peer(n).arch, hw, num_classes=SPEC["num_classes"])}.items())
    rows = [{"key": k, "kind": u.kind, "estimate_ms": _key_ms(k), "median_ms": _key_ms(k), "p25_ms": _key_ms(k),
             "min_ms": _key_ms(k), "max_ms": _key_ms(k), "iqr_ms": 0.0, "n": 10, "stable": True, "seconds": 0.1,
             "rounds": 2, "round_ms": f"{_key_ms(k)};{_key_ms(k)}"} for k, u in keys]
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(root / "lut" / f"{SLUG}.csv", index=False)


def _lut_ms(name: str) -> float:
    counts = units_of(get_peer(name).arch, tuple(SPEC["input_hw"]), num_classes=SPEC["num_classes"])
    return sum(n * _key_ms(u.key) for u, n in counts.items())  # no calibration file: the raw sum


def _add_trials(root: Path, rows: list[tuple[str, float, float]]) -> None:
    """(code, latency_ms, miou) scored by the search, appended to the study's real journal."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="mobile.latency_lt_20",
                              storage=JournalStorage(JournalFileBackend(str(root / "search" / "study.journal"))))
    for code, lat, miou in rows:
        study.add_trial(optuna.trial.create_trial(values=[miou, lat], user_attrs={"code": code},
                                                  constraints={"latency<20ms": lat / 20 - 1}))


def _add_evaluated(root: Path, rows: list[tuple[str, float, float]]) -> None:
    """(code, measured latency, measured mIoU) as evaluate appends them (predicted first)."""
    old = pd.read_csv(root / "evaluated.csv")
    new = pd.DataFrame([{"code": c, "name": "", "init": "distilled", "params": 1e7, "macs": 1e9, "predicted_latency_ms": lat * 0.95,
                         "measured_latency_ms": lat, "predicted_miou": miou + 1.0, "measured_miou": miou} for c, lat, miou in rows])
    pd.concat([old, new], ignore_index=True).to_csv(root / "evaluated.csv", index=False)


def _ffnet_evaluated(root: Path) -> pd.DataFrame:
    ev = pd.read_csv(root / "evaluated.csv")
    return ev[ev["init"] == "distilled"].sort_values("measured_latency_ms").reset_index(drop=True)


def _peer_twins(ev: pd.DataFrame, gain: float) -> list[tuple[str, float, float]]:
    """A peer design (FAM head) beside every measured FFNet point: same latency, mIoU + gain."""
    return [(Arch.parse(r["code"]).replace(up_head="FAM").code, float(r["measured_latency_ms"]), float(r["measured_miou"]) + gain)
            for _, r in ev.iterrows()]


@pytest.fixture
def workdir(tmp_path) -> Path:
    return make_workdir(tmp_path / "w")


# ---- the Pareto figure ---------------------------------------------------------------------------

def test_pareto_places_peers_measured_predicted_latency_only_and_names_the_rest(workdir):
    _write_table(workdir)
    measured_code = get_peer(MEASURED_PEER).arch.code
    _add_evaluated(workdir, [(measured_code, 14.0, 66.0)])
    _add_trials(workdir, [(get_peer(SCORED_PEER).arch.code, 99.0, 61.5)])  # the trial's latency is not the figure's
    data = pareto_data(_inputs(workdir))
    pts = data.points.set_index("code")
    peers = data.points[data.points["peer"].fillna(False).astype(bool)]
    assert set(peers["group"]) == {GROUP_PEER} and not (data.points["group"] == GROUP_OWN).any()

    measured = pts.loc[measured_code]
    assert measured["role"] == "evaluated" and measured["measured"] and measured["miou"] == 66.0
    # today's family labels spell FFNet letters ("FFNet BFAMB"): a peer's never starts with FFNet
    assert measured["peer_name"] == MEASURED_PEER
    assert "not FFNet" in measured["family_label"] and not measured["family_label"].startswith("FFNet")

    scored = pts.loc[get_peer(SCORED_PEER).arch.code]
    assert scored["role"] == "peer" and not scored["measured"] and scored["latency_source"] == "LUT prediction"
    assert scored["latency_ms"] == pytest.approx(_lut_ms(SCORED_PEER)) and scored["miou"] == 61.5

    only = pts.loc[get_peer(LATENCY_ONLY_PEER).arch.code]
    assert only["latency_ms"] == pytest.approx(_lut_ms(LATENCY_ONLY_PEER)) and pd.isna(only["miou"])
    assert "not known here" in only["miou_source"]

    # the fastfcn transplant has units but no mIoU: latency only as well; the rest are named, not guessed
    unplaced = {n.split(":")[0] for n in data.peer_notes}
    assert unplaced == {p.name for p in peer_points()} - set(IN_TABLE) - {MEASURED_PEER}
    assert all("lacks its units" in n for n in data.peer_notes)
    line = data.produced_by["peer points (NOT FFNet)"]
    assert line.startswith("4 placed (1 measured, 1 predicted, 2 latency only)") and "--space peers_paper" in line and "--space mobile_peers" in line

    fig = render_pareto(data)
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert GROUP_PEER in legend and PEER_LATENCY_ONLY in legend and "▲ peer design: NOT FFNet" in legend
    marker_traces = [t for t in fig.data if t.name == GROUP_PEER]
    by_fill = {t.opacity == 1.0: t for t in marker_traces}
    assert set(by_fill) == {True, False}  # filled (measured) and hollow (predicted), one legend entry
    assert list(by_fill[True].x) == [14.0] and by_fill[True].marker.symbol == "triangle-up"
    assert list(by_fill[False].y) == [61.5] and by_fill[False].marker.symbol == "triangle-up-open"
    assert all(t.marker.color == PEER_COLOUR for t in marker_traces)
    assert all("NOT an FFNet" in h for t in marker_traces for h in t.hovertext)
    lines = next(t for t in fig.data if t.name == PEER_LATENCY_ONLY)
    xs = sorted({x for x in lines.x if x is not None})
    assert xs == pytest.approx(sorted([_lut_ms(LATENCY_ONLY_PEER), _lut_ms("peer_fastfcn_mobile")]))
    texts = [a.text for a in fig.layout.annotations if a.text]
    assert any(t.startswith(f"{SCORED_PEER} (not FFNet)") for t in texts)
    assert f"{LATENCY_ONLY_PEER} (not FFNet)" in texts
    assert "NOT FFNet" in fig.layout.title.subtitle.text and "4 peer point(s) not placed" in fig.layout.title.subtitle.text


def test_pareto_without_peer_units_draws_no_peer(workdir):
    # the helper's table holds no unit at all: nothing placed, every peer named with the reason
    data = pareto_data(_inputs(workdir))
    assert not data.points["peer"].fillna(False).astype(bool).any()
    assert len(data.peer_notes) == len(peer_points())
    fig = render_pareto(data)
    assert not any(t.name in (GROUP_PEER, PEER_LATENCY_ONLY) for t in fig.data)
    assert "NOT FFNet" not in fig.layout.title.subtitle.text


def test_peers_paper_space_holds_the_paper_shapes_and_leaves_mobile_peers_alone():
    space = get_space("peers_paper")
    others = [get_space(n) for n in ("gpu_large", "gpu_small", "mobile", "all", "mobile_peers")]
    outside = {p.name for p in peer_points() if not any(p.arch in s for s in others)}
    assert outside == {"peer_sfnet_r18", "peer_sfnet_r50", "peer_sfnet_lite_r18", "peer_fastfcn_r50"}
    assert {p.name for p in peer_points() if p.arch in space} == outside
    assert space.input_hw == (1024, 2048) and space.size == 192
    mobile = get_space("mobile").to_dict()  # the run on mobile_peers resumes: its domains must not move
    assert get_space("mobile_peers").to_dict() == {**mobile, "name": "mobile_peers", "blocks": mobile["blocks"] + ["metamixer"],
                                                   "up_heads": mobile["up_heads"] + ["FAM", "FAM2", "JPU"]}


# ---- the claim -----------------------------------------------------------------------------------

def _peer_result(root: Path, run: dict | None = None) -> claims.ClaimResult:
    results = claims.check_claims(**claim_inputs(_inputs(root), run))
    return next(r for r in results if r.claim.key == "peers")


def test_peers_winning_at_equal_latency_refute_the_claim(workdir):
    ev = _ffnet_evaluated(workdir)
    _add_evaluated(workdir, _peer_twins(ev, gain=+4.0))
    r = _peer_result(workdir)
    assert r.here_source == "measured" and r.here_winner == "a" and r.paper_winner == "b"
    assert r.status == "does not hold"
    assert r.measured.lead == (1.0, 0.0) and r.measured.gap == pytest.approx(4.0)
    assert r.measured.n == (len(ev), len(ev))
    best_ffnet = ev.loc[ev["measured_miou"].idxmax()]
    assert r.measured.best[1] == pytest.approx((best_ffnet["measured_miou"], best_ffnet["measured_latency_ms"]))
    assert r.measured.best[0][0] == pytest.approx(best_ffnet["measured_miou"] + 4.0)
    assert "here (measured): peer designs (SFNet/FastFCN heads, MetaMixer blocks) ahead" in r.sentence
    assert "does NOT hold on this device and data" in r.sentence and "PREDICTED" not in r.sentence


def test_peers_losing_at_equal_latency_confirm_the_claim(workdir):
    _add_evaluated(workdir, _peer_twins(_ffnet_evaluated(workdir), gain=-3.0))
    r = _peer_result(workdir)
    assert (r.here_source, r.here_winner, r.status) == ("measured", "b", "holds")
    assert r.measured.lead == (0.0, 1.0) and r.measured.gap == pytest.approx(-3.0)
    assert "here (measured): plain FFNet ahead: the paper's claim holds on this device and data." in r.sentence


def test_a_tie_confirms_the_claim_that_ffnet_matches_the_peers():
    # peers ahead from 10 to 20 ms, FFNet from 20 to 40 ms: each leads on half the (log) range
    ffnet = ["stemB-basic-d4.5.6.4-w64.128.192.320-s1-upB-segB-nearest", "stemB-basic-d5.8.8.5-w64.128.192.320-s1-upB-segB-nearest",
             "stemC-basic-d6.8.8-w64.128.256-s2-upC-segC-nearest"]
    peers = [Arch.parse(c).replace(up_head="FAM").code for c in ffnet]
    measured = pd.DataFrame({"code": ffnet + peers, "latency_ms": [10.0, 20.0, 40.0] * 2,
                             "miou": [50.0, 55.0, 56.0, 52.0, 53.0, 54.0]})
    r = claims.check_claim(PEERS, measured=measured, predicted=None, family="mobile")
    assert r.measured.lead[0] == pytest.approx(0.5, abs=0.01) and r.measured.lead[1] == pytest.approx(0.5, abs=0.01)
    assert r.here_winner is None and r.status == "holds"
    assert "neither side leads on 60% of the range" in r.sentence and "keeps up with" in r.sentence
    # the other claims keep their old reading of a tie
    other = claims.check_claim(claims.CLAIMS[1], measured=pd.DataFrame({
        "code": ["stemC-basic-d6.8.8-w64.128.256-s2-upC-segC-nearest", "stemB-basic-d4.5.6.4-w64.128.192.320-s1-upB-segB-nearest"],
        "latency_ms": [10.0, 10.0], "miou": [50.0, 50.0]}), predicted=None, family="mobile")
    assert other.status == "undecided here"


def test_peers_only_predicted_are_compared_on_predictions_and_say_so(workdir):
    ev = _ffnet_evaluated(workdir)
    # the search scored peer designs; nothing of them was evaluated
    _add_trials(workdir, [(c, lat * 0.9, m + 6.0) for c, lat, m in _peer_twins(ev, 0.0)])
    r = _peer_result(workdir)
    assert r.measured is None and r.here_source == "predicted" and r.predicted is not None
    assert r.predicted.n[0] == len(ev) and r.predicted.source == "predicted here"
    assert r.here_winner == "a" and r.status == "does not hold"
    assert "here (PREDICTED only (nothing measured on one side)): peer designs" in r.sentence


def test_peers_measured_only_against_predicted_ffnet_is_not_compared():
    peer = Arch.parse(get_peer(MEASURED_PEER).arch.code)
    ffnet = Arch.parse("stemB-basic-d4.5.6.4-w64.128.192.320-s1-upB-segB-nearest")
    measured = pd.DataFrame({"code": [peer.code], "latency_ms": [10.0], "miou": [60.0]})
    predicted = pd.DataFrame({"code": [ffnet.code], "latency_ms": [10.0], "miou": [70.0]})
    r = claims.check_claim(PEERS, measured=measured, predicted=predicted, family="mobile")
    assert r.status == "cannot be checked here" and r.here_winner is None
    assert "peer designs (SFNet/FastFCN heads, MetaMixer blocks) are only measured and plain FFNet only predicted" in r.sentence
    assert "No peer points" not in r.sentence


def test_no_peer_or_no_ffnet_point_says_which_side_is_missing(workdir):
    r = _peer_result(workdir)  # the helper's workdir: FFNets only
    assert r.status == "cannot be checked here" and "No peer points in this workdir" in r.sentence
    peer = get_peer(MEASURED_PEER).arch.code
    only_peers = pd.DataFrame({"code": [peer], "latency_ms": [10.0], "miou": [60.0]})
    r = claims.check_claim(PEERS, measured=only_peers, predicted=None, family="mobile")
    assert r.status == "cannot be checked here"
    assert "No points with plain FFNet in this workdir" in r.sentence and "No peer points" not in r.sentence


def test_report_on_a_mobile_peers_run_checks_the_peers_and_answers_with_fig_6(workdir):
    _write_table(workdir)
    _add_evaluated(workdir, _peer_twins(_ffnet_evaluated(workdir), gain=-3.0))
    summary = json.loads((workdir / "search" / "mobile.latency_lt_20" / "summary.json").read_text())
    (workdir / "search" / "mobile.latency_lt_20" / "summary.json").write_text(json.dumps({**summary, "space": "mobile_peers"}))
    assert claim_inputs(_inputs(workdir), None)["family"] == "mobile"  # the family's paper figure, not "all figures"
    result = build_report(inputs=_inputs(workdir), out_dir=workdir / "report", paper=False, formats=("html",), progress=False)
    manifest = json.loads((workdir / "report" / "report.json").read_text())
    peers = next(c for c in manifest["claims"] if c["claim"] == "peers")
    assert peers["status"] == "holds" and "plain FFNet ahead" in peers["sentence"]
    pareto = next(f for f in manifest["figures"] if f["slug"] == "pareto")
    placed = pareto_data(_inputs(workdir)).points
    placed = placed[placed["peer"].fillna(False).astype(bool)]
    n_measured = int((placed["role"] == "evaluated").sum())
    assert n_measured == len(_ffnet_evaluated(workdir)) // 2  # every twin of an FFNet: half the evaluated rows now
    assert pareto["drawn"] and pareto["produced_by"]["peer points (NOT FFNet)"].startswith(
        f"{len(placed)} placed ({n_measured} measured, 0 predicted, {len(placed) - n_measured} latency only)")
    assert next(r for r in result.claims if r.claim.key == "peers").here_source == "measured"


def test_a_peer_design_on_the_search_front_keeps_its_triangle(workdir):
    front_csv = workdir / "search" / "mobile.latency_lt_20" / "pareto.csv"
    front = pd.read_csv(front_csv)
    peer = Arch.parse(front.loc[0, "code"]).replace(up_head="JPU").code
    front.loc[0, "code"] = peer
    front.to_csv(front_csv, index=False)
    data = pareto_data(_inputs(workdir))
    row = data.points[data.points["code"] == peer].iloc[0]
    assert row["role"] == "front" and row["peer"] and "not FFNet" in row["family_label"]
    trace = next(t for t in render_pareto(data).data if (t.name or "").startswith("search front"))
    symbols = dict(zip(trace.x, trace.marker.symbol))
    assert symbols[row["latency_ms"]] == "triangle-up-open"
    assert sum(s == "triangle-up-open" for s in trace.marker.symbol) == 1
    assert "NOT an FFNet" in trace.hovertext[list(trace.x).index(row["latency_ms"])]
