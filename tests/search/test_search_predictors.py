import pytest

from ffnet_nas.predictors.load import find_lut, load_predictors
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.searchspace import get_space


def _table(lut_dir, stem):
    lut_dir.mkdir(exist_ok=True)
    (lut_dir / f"{stem}.csv").write_text("key\n")
    (lut_dir / f"{stem}.json").write_text("{}")
    return lut_dir / f"{stem}.csv"


def test_find_lut_picks_the_table_measured_at_the_space_size(tmp_path):
    space = get_space("mobile")  # 512x1024
    lut = tmp_path / "lut"
    assert find_lut(lut, space) is None  # no folder: nothing (the caller names the command)
    want = _table(lut, "cpu-fp32-eager-b1-512x1024-t2")
    _table(lut, "cpu-fp32-eager-b1-1024x2048-t2")
    (lut / "cpu-fp32-eager-b1-512x1024-t2.calibration.json").write_text("{}")
    assert find_lut(lut, space) == want
    _table(lut, "cpu-fp16-eager-b1-512x1024-t2")
    with pytest.raises(InvalidInput, match="several latency tables.*--lut NAME"):
        find_lut(lut, space)
    assert find_lut(lut, space, lut="cpu-fp32-eager-b1-512x1024-t2") == want
    with pytest.raises(InvalidInput, match="no latency table 'cpu-fp32'.*did you mean"):
        find_lut(lut, space, lut="cpu-fp32")


def test_table_at_another_size_is_refused_with_the_fix(tmp_path):
    _table(tmp_path / "lut", "cpu-fp32-eager-b1-64x128-t2")
    with pytest.raises(InvalidInput, match="measured at 512x1024.*measure-latency --space mobile"):
        find_lut(tmp_path / "lut", get_space("mobile"))


def test_load_names_every_missing_piece(tmp_path):
    with pytest.raises(InvalidInput) as e:
        load_predictors(lut_dir=tmp_path / "lut", predictor_dir=tmp_path / "predictor", space=get_space("mobile"))
    msg = str(e.value)
    assert "ffnet-nas measure-latency --space mobile" in msg and "ffnet-nas fit-predictor" in msg and "\n" not in msg


def test_latency_table_is_wired_to_the_latency_predictor(tmp_path):
    """A table whose every unit takes 1 ms (written in the latency package's format): the search's
    latency callable must give each point its number of unit runs, through the real predictor."""
    from ffnet_nas.predictors.latency.keys import units_of
    from ffnet_nas.predictors.load import load_latency
    from tests.helpers.predictor_files import write_unit_latency_table
    from tests.helpers.search_standins import tiny_space

    space = tiny_space()
    archs = space.sample_many(3, seed=0)
    csv = write_unit_latency_table(tmp_path / "lut", space)
    latency_ms, ident = load_latency(csv)
    for a in archs:
        assert latency_ms(a) == pytest.approx(sum(units_of(a, space.input_hw, num_classes=19).values()))
    assert ident.startswith(f"lut:{csv.stem}:")


def test_cli_runs_on_the_real_predictor_files(tmp_path, capsys):
    """`ffnet-nas search` end to end through the real loaders: a latency table whose every unit takes
    1 ms and an accuracy predictor with made-up coefficients, both in the formats their packages write."""
    import pandas as pd

    from ffnet_nas import cli
    from tests.helpers.predictor_files import write_made_up_predictor, write_unit_latency_table
    from tests.helpers.search_standins import tiny_space, write_tiny_space

    space = tiny_space()
    write_unit_latency_table(tmp_path / "lut", space)
    write_made_up_predictor(tmp_path / "predictor", space)
    code = cli.main(["search", "--space", write_tiny_space(tmp_path / "tiny.yaml"), "--target", "latency<60ms",
                     "--trials", "15", "--no-progress", "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    front = pd.read_csv(tmp_path / "search" / "tiny.latency_lt_60" / "pareto.csv")
    assert len(front) and (front["latency_ms"] < 60).all() and (front["latency_ms"] == front["latency_ms"].round()).all()
