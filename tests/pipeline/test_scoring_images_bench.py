"""bench/bench_scoring_images.py on a finished micro run: scoring time per point at several sizes of
the scoring set, beside the fine-tune's, with the run's own files untouched."""

from __future__ import annotations

import re

import pytest

from bench import bench_scoring_images as bench


def test_the_bench_times_every_scoring_size_beside_the_fine_tune_in_a_copy(micro_run, tmp_path, capsys):
    evaluated = (micro_run.workdir / "evaluated.csv").read_bytes()
    out = tmp_path / "copy"
    bench.main(["--workdir", str(micro_run.workdir), "--out", str(out), "--points", "1", "--images", "4,8",
                "--repeats", "2"])
    printed = capsys.readouterr().out
    rows = dict(re.findall(r"^\| (\d+) \| ([\d.]+) \|", printed, flags=re.M))
    assert set(rows) == {"4", "8"} and all(float(v) > 0 for v in rows.values())
    assert re.search(r"^1 points, \d+-step fine-tune: median [\d.]+ s$", printed, flags=re.M)
    assert "| 4 |" in printed and "| 1.00x |" in printed  # the first size is its own ratio's base
    # the fine-tune and the larger split went to the copy, not the run
    assert (micro_run.workdir / "evaluated.csv").read_bytes() == evaluated
    assert (out / "run_summary.json").exists()


@pytest.mark.parametrize("argv", [["--points", "0"], ["--images", "0,64"], ["--repeats", "0"]])
def test_nonsense_sizes_are_refused_before_any_work(argv, tmp_path):
    with pytest.raises(SystemExit, match="expected --points, --repeats and every --images size >= 1"):
        bench.main(["--workdir", str(tmp_path / "none"), "--out", str(tmp_path / "out"), *argv])
    assert not (tmp_path / "out").exists()
