import pytest

from ffnet_nas.search.targets import canonical, parse_targets, violations
from ffnet_nas.space.errors import InvalidInput


@pytest.mark.parametrize("text, metric, op, bound", [
    ("latency<25ms", "latency", "<", 25.0),
    ("latency <= 2500us", "latency", "<=", 2.5),
    ("Latency<0.5s", "latency", "<", 500.0),
    ("params<10M", "params", "<", 10e6),
    ("params<=800k", "params", "<=", 800e3),
    ("params<1200000", "params", "<", 1.2e6),
    ("macs<50G", "macs", "<", 50e9),
    ("macs<1.5T", "macs", "<", 1.5e12),
    ("miou>75", "miou", ">", 75.0),
    ("mIoU>=70.5%", "miou", ">=", 70.5),
])
def test_each_metric_and_unit(text, metric, op, bound):
    (t,) = parse_targets(text)
    assert (t.metric, t.op) == (metric, op)
    assert t.bound == pytest.approx(bound)


def test_several_targets_and_empty():
    ts = parse_targets("latency<25ms, params<10M,miou>75")
    assert [t.metric for t in ts] == ["latency", "params", "miou"]
    assert parse_targets("") == () and parse_targets(None) == ()
    assert canonical(ts) == "latency<25ms,params<1e+07,miou>75%"


@pytest.mark.parametrize("text, where, expect", [
    ("latency<25", 11, "unit for latency: us/ms/s"),
    ("latency<25mss", 11, "unit for latency"),
    ("latncy<25ms", 1, "did you mean: latency"),
    ("latency=25ms", 8, "comparison < <= > >="),
    ("latency<ms", 9, "non-negative number"),
    ("latency<25ms,", 14, "a target between commas"),
    ("params<10X", 10, "unit for params: k/m/g or none"),
    ("miou>175", 1, "mIoU bound in 0..100"),
    ("latency<25ms foo", 14, "',' or the end"),
])
def test_malformed_targets_say_where_and_what(text, where, expect):
    with pytest.raises(InvalidInput) as e:
        parse_targets(text)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"at character {where} " in msg
    assert expect in msg
    assert "accepted: METRIC OP NUMBER[UNIT]" in msg  # the grammar is always shown


def test_duplicate_bound_refused():
    with pytest.raises(InvalidInput, match="twice"):
        parse_targets("latency<25ms,latency<=20ms")
    assert len(parse_targets("latency<25ms,latency>5ms")) == 2  # a window is fine


def test_violation_is_relative_and_strictness_counts():
    lat, miou = parse_targets("latency<20ms,miou>=70")
    assert lat.violation(10.0) == pytest.approx(-0.5)
    assert lat.violation(30.0) == pytest.approx(0.5)
    assert lat.violation(20.0) > 0  # strict: equality does not meet '<'
    assert miou.violation(70.0) == 0  # '>=' met at equality
    assert miou.violation(63.0) == pytest.approx(0.1)
    assert violations((lat, miou), {"latency": 10.0, "miou": 80.0}) == [pytest.approx(-0.5), pytest.approx(-1 / 7)]
