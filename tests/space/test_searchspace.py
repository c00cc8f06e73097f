import random
import re

import optuna
import pytest

from ffnet_nas.space import Arch, InvalidInput
from ffnet_nas.space.catalogue import variants
from ffnet_nas.space.searchspace import BUILTIN, FAMILIES, from_dict, from_yaml, get_space


@pytest.mark.parametrize("family", FAMILIES)
def test_family_space_contains_every_published_variant(family):
    space = get_space(family)
    members = variants(family=family)
    assert members
    for v in members:
        assert v.arch in space, (v.name, space.why_not(v.arch))


def test_union_contains_all_segmentation_variants():
    space = get_space("all")
    assert all(v.arch in space for v in variants())
    assert len(variants()) == 66  # 73 registered minus the 7 _train duplicates
    assert space.size > max(get_space(f).size for f in FAMILIES)


def test_size_counts_exactly_on_a_small_space():
    space = from_dict({"base": "mobile", "name": "small",
                       "stages": {3: {"depths": [[1, 2], [1], [1, 3]], "widths": [[16], [32], [48]]},
                                  4: {"depths": [[1], [1], [1], [1, 2]], "widths": [[16], [32], [48], [64]]}},
                       "stems": ["B", "C"], "up_heads": ["B"], "seg_heads": ["B", "C"], "pre_downs": [False]})
    points = list(space)
    assert len(points) == len(set(points)) == space.size
    # 3-stage: 2 stems * 4 stage combos * 2 seg ; 4-stage: 2 stems * 2 combos * 2 strides * 2 seg
    assert space.size == 2 * 4 * 2 + 2 * 2 * 2 * 2
    assert all(p in space for p in points)


def test_sampling_is_uniform_over_points():
    space = from_dict({"base": "mobile", "name": "small",
                       "stages": {3: {"depths": [[1], [1], [1]], "widths": [[16], [32], [48]]},
                                  4: {"depths": [[1], [1], [1], [1, 2, 3]], "widths": [[16], [32], [48], [64]]}},
                       "stems": ["B"], "up_heads": ["B"], "seg_heads": ["B"], "pre_downs": [False],
                       "first_strides": [1]})
    assert space.size == 4
    rng = random.Random(0)
    counts = {}
    for _ in range(4000):
        a = space.sample(rng)
        counts[a] = counts.get(a, 0) + 1
    assert len(counts) == 4
    assert all(800 < c < 1200 for c in counts.values()), counts  # 1000 each expected


def test_sample_many_is_deterministic_and_unique():
    space = get_space("mobile")
    a = space.sample_many(50, seed=3)
    assert a == space.sample_many(50, seed=3)
    assert len(set(a)) == 50 and all(x in space for x in a)


@pytest.mark.parametrize("name", BUILTIN)
def test_encoding_round_trips_and_has_fixed_length(name):
    space = get_space(name)
    dists = space.distributions()
    for arch in space.sample_many(30, seed=1):
        params = space.encode(arch)
        assert set(params) == set(dists)
        assert all(params[k] in dists[k] for k in params)
        assert space.decode(params) == arch


def test_encoding_drives_optuna_categoricals():
    space = get_space("mobile")
    dists = {k: optuna.distributions.CategoricalDistribution(v) for k, v in space.distributions().items()}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask(dists)
        assert space.decode(trial.params) in space
        study.tell(trial, 0.0)


def test_membership_explains_why_not():
    space = get_space("mobile")
    arch = Arch.from_name("segmentation_ffnet150_AAA")
    reasons = space.why_not(arch)
    assert arch not in space
    assert any("stem='A'" in r for r in reasons) and any("upsample" in r for r in reasons)
    with pytest.raises(InvalidInput, match="not in space 'mobile'"):
        space.encode(arch)


def test_yaml_space(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: mobile\nstems: [B]\npre_downs: [false]\ninput_size: 128x256\n")
    space = from_yaml(path)
    assert space.name == "mine" and space.stems == ("B",) and space.input_hw == (128, 256)
    assert get_space(str(path)) == space
    assert Arch.from_name("segmentation_ffnet40S_BBB_mobile") in space
    assert Arch.from_name("segmentation_ffnet40S_BBB_mobile_pre_down") not in space


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("stems: [B]\n", "missing"),
        ("base: mobile\nstems: [Q]\n", "stems has 'Q'"),
        ("base: mobile\nstemz: [B]\n", "unknown space field 'stemz'"),
        ("base: mobile\nstages: {4: {depths: [[1]]}}\n", "stages"),
        ("base: mobile\nstages: {4: {depths: [[0], [1], [1], [1]], widths: [[16], [32], [48], [64]]}}\n", "depths[0]"),
        ("[1, 2", "not valid YAML"),
        ("- a\n- b\n", "mapping"),
        ("base: nosuch\n", "unknown space 'nosuch'"),
    ],
)
def test_bad_yaml_spaces_are_one_line_errors(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as e:
        from_yaml(path)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_unknown_space_name_suggests():
    with pytest.raises(InvalidInput, match="did you mean: mobile"):
        get_space("mobil")


@pytest.mark.parametrize("field, value, fragment", [
    ("stems", ["B", "B"], "stems repeats 'B'"),
    ("pre_downs", ["false"], "pre_downs has 'false'"),
    ("pre_downs", [0], "pre_downs has 0"),
    ("stems", "B", "stems is 'B' (str); expected a list"),
    ("first_strides", [True], "first_strides has True"),
    ("stages", {4: {"depths": [[1, 2], [], [1], [1]], "widths": [[64], [128], [256], [512]]}}, "depths[1] is empty"),
    ("stages", {4: {"depths": [[1, "a"], [1], [1], [1]], "widths": [[64], [128], [256], [512]]}}, "expected whole numbers"),
    ("stages", {4: {"depths": [[1, 1], [1], [1], [1]], "widths": [[64], [128], [256], [512]]}}, "depths[0] repeats 1"),
])
def test_a_yaml_space_with_a_bad_domain_is_refused_in_one_line(tmp_path, field, value, fragment):
    """Before: a repeated value overcounted the space and `space sample` looped forever; "false" became True;
    an empty or non-integer depth list was a traceback."""
    import yaml

    from ffnet_nas.space.errors import InvalidInput
    from ffnet_nas.space.searchspace import from_yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"base": "mobile", field: value}))
    with pytest.raises(InvalidInput, match=re.escape(fragment)) as err:
        from_yaml(path)
    assert "\n" not in str(err.value)


def test_space_sample_of_a_repeated_value_space_ends_with_an_error(tmp_path, capsys):
    import yaml

    from ffnet_nas.cli import main

    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump({"base": "mobile", "stems": ["B", "B"]}))
    assert main(["space", "sample", "--space", str(path), "-n", "5"]) == 2
    assert "repeats 'B'" in capsys.readouterr().err
