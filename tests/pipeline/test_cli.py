"""The command line itself: --version, help for every command without torch, closed choices as one-line
errors, the shared options and their defaults, and -q/-v on the library's log records."""

import importlib
import json
import logging
import subprocess
import sys
from importlib.metadata import version

import pytest

from ffnet_nas.cli import build_parser, main
from ffnet_nas.commands import _common

HEAVY = ("torch", "numpy", "pandas", "optuna", "plotly")

# In a fresh interpreter: build the parser, then `<command> --help` (and `space <sub> --help`) for every
# command through main(); report what each printed and which heavy libraries got imported.
HELP_SCRIPT = """
import argparse, contextlib, io, json, sys
from ffnet_nas.cli import build_parser, main

parser = build_parser()
after_build = [m for m in HEAVY if m in sys.modules]
commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
argvs = [[name] for name in commands] + [["space", sub] for sub in ("list", "show", "sample")]
helps = {}
for argv in argvs:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*argv, "--help"])
    helps[" ".join(argv)] = [code, out.getvalue()]
print(json.dumps({"after_build": after_build, "after_help": [m for m in HEAVY if m in sys.modules], "helps": helps}))
"""


@pytest.fixture(scope="module")
def help_run():
    proc = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{HELP_SCRIPT}"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_parser_and_every_command_help_import_no_heavy_library(help_run):
    assert help_run["after_build"] == [] and help_run["after_help"] == [], help_run
    helps = help_run["helps"]
    assert set(helps) == {"distill", "evaluate", "export", "fit-predictor", "import-latency", "measure-latency", "report", "run",
                          "search", "space", "train-teacher", "space list", "space show", "space sample"}
    for argv, (code, text) in helps.items():
        assert code == 0 and text.startswith(f"usage: ffnet-nas {argv}"), (argv, text[:200])


@pytest.mark.parametrize("argv", [
    "distill", "evaluate", "export", "fit-predictor", "measure-latency", "report", "search", "train-teacher",
    "space list", "space show", "space sample", "run",
])
def test_every_command_takes_the_common_options(help_run, argv):
    text = help_run["helps"][argv][1]
    assert "--workdir WORKDIR" in text and "-q, --quiet" in text and "-v, --verbose" in text, text


def test_version_prints_the_installed_version_and_exits_0(capsys):
    proc = subprocess.run([sys.executable, "-m", "ffnet_nas", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout == f"ffnet-nas {version('ffnet-nas')}\n" and proc.stderr == ""
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"ffnet-nas {version('ffnet-nas')}\n"


@pytest.mark.parametrize("argv, fragment", [
    (["search", "--sampler", "nsga3"], "unknown sampler 'nsga3': expected one of nsga2, tpe, random; did you mean: nsga2"),
    (["measure-latency", "--clock", "gpu"], "unknown clock 'gpu': expected one of wall, cpu"),
    (["measure-latency", "--estimator", "fastest"], "unknown estimator 'fastest'"),
    (["train-teacher", "--optimizer", "lion"], "unknown optimizer 'lion': expected one of adamw, sgd"),
    (["evaluate", "--init", "zeros"], "unknown init 'zeros': expected one of distilled, random"),
    (["export", "x", "--onnx", "x.onnx", "--exporter", "jit"], "unknown exporter 'jit'"),
    (["space", "list", "--task", "detection"], "unknown task 'detection'"),
    (["serch"], "unknown command 'serch'"),
    (["space", "lst"], "unknown space command 'lst'"),
    (["report", "-q", "-v"], "not allowed with argument"),
])
def test_bad_choice_is_one_line_and_exit_2(tmp_path, capsys, argv, fragment):
    code = main([*argv, "--workdir", str(tmp_path / "w")] if argv[0] != "serch" else argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("ffnet-nas") and ": error: " in err and "Traceback" not in err, err
    assert fragment in err and "--help" in err, err
    assert not (tmp_path / "w").exists()


def _constant(*homes: str):
    """The library's value at the first of its homes ("module:NAME") that defines it; some are moving."""
    for home in homes:
        module, name = home.split(":")
        value = getattr(importlib.import_module(module), name, None)
        if value is not None:
            return value
    raise AssertionError(f"none of {homes} defines it: point the copy in ffnet_nas/commands/_common.py at its home")


@pytest.mark.parametrize("copy, homes", [
    ("BUDGETS", ["ffnet_nas.budgets:BUDGETS", "ffnet_nas.pipeline:BUDGETS"]),
    ("SAMPLERS", ["ffnet_nas.search.study:SAMPLERS"]),
    ("DTYPES", ["ffnet_nas.predictors.latency.protocol:DTYPES"]),
    ("BACKENDS", ["ffnet_nas.predictors.latency.backends:BACKENDS"]),
    ("ESTIMATORS", ["ffnet_nas.predictors.latency.protocol:ESTIMATORS"]),
    ("CLOCKS", ["ffnet_nas.predictors.latency.protocol:CLOCKS"]),
    ("INITS", ["ffnet_nas.evaluate:INITS"]),
    ("FEATURE_SET_NAMES", ["ffnet_nas.predictors.accuracy:FEATURE_SETS"]),
    ("RERANK_BY", ["ffnet_nas.budgets:RERANK_BY"]),
    ("OPTIMIZERS", ["ffnet_nas.training:OPTIMIZERS"]),
    ("EXPORTERS", ["ffnet_nas.space.deploy:EXPORTERS"]),
    ("FORMATS", ["ffnet_nas.reports.export:FORMATS"]),
    ("DEFAULT_EXPORTER", ["ffnet_nas.space.deploy:DEFAULT_EXPORTER"]),
    ("DEFAULT_OPSET", ["ffnet_nas.space.deploy:DEFAULT_OPSET"]),
    ("DEFAULT_TEACHER", ["ffnet_nas.teacher:DEFAULT_TEACHER"]),
    ("DEFAULT_TEACHER_STEPS", ["ffnet_nas.teacher:DEFAULT_STEPS"]),
    ("FINETUNE_AVERAGE_TAIL", ["ffnet_nas.budgets:FINETUNE_AVERAGE_TAIL"]),
    ("FINETUNE_PRECISE_BN", ["ffnet_nas.budgets:FINETUNE_PRECISE_BN"]),
    ("TARGET_GRAMMAR", ["ffnet_nas.search.targets:GRAMMAR"]),
])
def test_cli_copies_equal_the_library(copy, homes):
    # _common copies them because importing the library loads torch; this keeps the copies honest
    library = _constant(*homes)
    ours = getattr(_common, copy)
    if isinstance(ours, tuple):  # a set of choices: same members (the CLI may order them for its help)
        assert sorted(ours) == sorted(library) and len(set(ours)) == len(ours), (ours, library)
    else:
        assert ours == library


def test_the_default_feature_set_comes_first_and_every_set_has_a_label():
    from ffnet_nas.predictors.accuracy import DEFAULT_FEATURE_SET, FEATURE_SET_LABELS, FEATURE_SETS

    assert _common.FEATURE_SET_NAMES[0] == DEFAULT_FEATURE_SET  # --help lists the default first
    assert set(FEATURE_SET_LABELS) == set(FEATURE_SETS)  # the check names every set's ridge in its table


def test_common_options_keep_each_commands_defaults():
    parser = build_parser()

    def parse(*argv):
        return vars(parser.parse_args(list(argv)))

    for argv in (["distill"], ["evaluate"], ["export", "x", "--onnx", "x.onnx"], ["fit-predictor"],
                 ["measure-latency"], ["report"], ["search"], ["space", "list"], ["train-teacher"]):
        args = parse(*argv)
        assert args["workdir"] == "runs/default" and args["log_level"] == logging.INFO, argv
    assert parse("train-teacher")["device"] == "auto"  # cuda if available: its own default, kept
    for argv in (["evaluate"], ["fit-predictor"], ["measure-latency"]):
        assert parse(*argv)["device"] == "cpu", argv  # and not leaked from train-teacher's parent
    for argv in (["distill"], ["measure-latency"], ["train-teacher"]):
        args = parse(*argv, "--threads", "1", "--no-progress")
        assert args["threads"] == 1 and args["no_progress"] is True, argv
        assert parse(*argv)["threads"] is None and parse(*argv)["no_progress"] is False, argv
    assert parse("report", "--no-progress", "-q")["log_level"] == logging.WARNING
    assert parse("search", "--verbose")["log_level"] == logging.DEBUG
    assert "device" not in parse("report") and "threads" not in parse("search")  # only where they act


@pytest.fixture
def journal_logging_command(monkeypatch, tmp_path):
    """`report` runs library code that logs: the workdir adopting two journals of older versions (one
    INFO record for the rename, one WARNING for the journal it leaves), plus a DEBUG record."""
    from ffnet_nas.commands import report
    from ffnet_nas.workspace import Workspace

    def run(args):
        ws = Workspace(args.workdir)
        ws.search_dir.mkdir(parents=True, exist_ok=True)
        for name in ("journal.log", "studies.journal"):
            (ws.search_dir / name).write_text("{}\n")
        ws.adopt_legacy_journal()
        logging.getLogger("ffnet_nas.workspace").debug("debug detail from the library")
        print("the command's own result line")
        return 0

    monkeypatch.setattr(report, "run", run)
    return ["report", "--workdir", str(tmp_path / "w")]


@pytest.mark.parametrize("flag, info, warning, debug", [
    (None, True, True, False),
    ("--quiet", False, True, False),
    ("-q", False, True, False),
    ("--verbose", True, True, True),
    ("-v", True, True, True),
])
def test_quiet_and_verbose_set_the_library_log_level(journal_logging_command, capsys, flag, info, warning, debug):
    logger = logging.getLogger("ffnet_nas")
    handlers, level = list(logger.handlers), logger.level
    assert main(journal_logging_command + ([flag] if flag else [])) == 0
    out, err = capsys.readouterr()
    assert "the command's own result line" in out  # results are not log records: -q keeps them
    # plain messages: INFO/DEBUG on stdout with the results, warnings on stderr
    assert ("renamed the Optuna journal" in out) is info and "renamed" not in err
    assert ("is another journal from an older version" in err) is warning and "older version" not in out
    assert ("debug detail from the library\n" in out) is debug
    assert "INFO" not in out + err and "WARNING" not in out + err
    assert logger.handlers == handlers and logger.level == level  # main() leaves the logger as it was
