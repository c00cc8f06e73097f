"""bench_session_repeatability: each point's fp32 and int8 network timed in fresh sessions and in one."""

from __future__ import annotations

import re

from bench.bench_session_repeatability import main, spread_pct


def test_spread_is_relative_to_the_fastest():
    assert spread_pct([10.0, 11.0, 10.5]) == 10.0
    assert spread_pct([5.0, 5.0]) == 0.0


def test_times_every_point_and_precision_both_ways_and_summarises(capsys):
    # int8 only: the export and quantisation are the test's cost, and fp32 takes the same path minus the latter
    assert main(["--input-size", "32x64", "--points", "1", "--sessions", "2", "--precisions", "int8"]) == 0
    out = capsys.readouterr().out
    assert "fp32" not in out.split("\n", 1)[1]
    for dtype in ("int8",):
        for label in ("fresh sessions", "one session"):
            line = re.search(rf"^{dtype}\s+{label}\s+spread over 1 points: ([\d.]+)-([\d.]+)%$", out, re.M)
            assert line, out
            assert 0 <= float(line.group(1)) <= float(line.group(2))
    rows = re.findall(r"^  (fresh sessions|one session)\s+((?:\s*[\d.]+){2})\s+spread", out, re.M)
    assert len(rows) == 2 and all(float(x) > 0 for _, xs in rows for x in xs.split())
