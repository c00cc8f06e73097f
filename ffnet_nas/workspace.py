"""The run folder (`--workdir`, default ./runs/default): one place per artifact.

This class is the one place that knows the workdir's file and folder names. Library code in
`predictors/`, `distill/` and `reports/` takes explicit paths (and owns the names inside the
folder it is given: a table's `<slug>.csv`, the predictor's `accuracy.json`, the library's
`blocks.csv`); the commands and the step functions (`ffnet_nas.steps`) ask this class, so a
notebook can point the library anywhere.

Stdlib only: the command-line parser imports it to show defaults without loading torch.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WORKDIR = Path("runs/default")
JOURNAL_NAME = "study.journal"
# names older versions gave the journal: `run` wrote journal.log, `search` studies.journal
LEGACY_JOURNAL_NAMES = ("journal.log", "studies.journal")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workspace:
    root: Path = DEFAULT_WORKDIR

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def relative(self, path: str | Path) -> str:
        """`path` as it is recorded in the workdir's own tables and summaries: relative to the
        workdir when inside it (so a copied or moved workdir reads its own files, never the
        original's), else as given (a URL, a file the user keeps elsewhere)."""
        text = str(path)
        if "://" in text:
            return text
        try:
            return Path(os.path.relpath(Path(text).resolve(), self.root.resolve())).as_posix() \
                if Path(text).resolve().is_relative_to(self.root.resolve()) else text
        except (OSError, ValueError):
            return text

    def resolve(self, recorded: str | Path) -> Path:
        """A path recorded by `relative`, as a path to open: relative ones are inside this workdir."""
        path = Path(recorded)
        return path if path.is_absolute() else self.root / path

    @property
    def data_dir(self) -> Path:  # generated embedded data set (cached)
        return self.root / "data"

    @property
    def teacher_dir(self) -> Path:  # teacher.pt + training checkpoints
        return self.root / "teacher"

    @property
    def teacher_path(self) -> Path:
        return self.teacher_dir / "teacher.pt"

    @property
    def teacher_state_path(self) -> Path:  # the teacher's training checkpoint (resume state)
        return self.teacher_dir / "train_state.pt"

    @property
    def lut_dir(self) -> Path:  # one latency table (+ metadata) per device/dtype/backend/size
        return self.root / "lut"

    @property
    def library_dir(self) -> Path:  # block library: table + one weight file per trained choice
        return self.root / "library"

    @property
    def evaluated_path(self) -> Path:  # one row per fully fine-tuned and evaluated point
        return self.root / "evaluated.csv"

    @property
    def zero_shot_path(self) -> Path:  # the assembled distilled points' mIoU with no fine-tuning (ffnet_nas.zero_shot)
        return self.root / "zero_shot.csv"

    @property
    def second_seed_path(self) -> Path:  # the verdict's two points fine-tuned again (ffnet_nas.win_check)
        return self.root / "second_seed.csv"

    @property
    def evaluated_dir(self) -> Path:  # one folder per evaluated (point, init): model.pt + resume state
        return self.root / "evaluated"

    def point_dir(self, point_hash: str, init: str) -> Path:
        return self.evaluated_dir / f"{point_hash}-{init}"

    def point_model_path(self, point_hash: str, init: str) -> Path:  # the fine-tuned network (kept)
        return self.point_dir(point_hash, init) / "model.pt"

    def point_resume_path(self, point_hash: str, init: str) -> Path:  # fine-tuning state (deleted when done)
        return self.point_dir(point_hash, init) / "finetune_state.pt"

    def point_row_path(self, point_hash: str, init: str) -> Path:
        """A Dask worker's row for a point it finished (deleted once the row is in evaluated.csv)."""
        return self.point_dir(point_hash, init) / "row.json"

    def point_claim_path(self, point_hash: str, init: str) -> Path:  # held (flock) while a worker fine-tunes it
        return self.point_dir(point_hash, init) / "claim.lock"

    @property
    def predictor_dir(self) -> Path:  # the accuracy predictor the first search used
        return self.root / "predictor"

    @property
    def predictor_check_dir(self) -> Path:  # `fit-predictor --check`: held-out points, their scores, the summary
        return self.predictor_dir / "check"

    def round_predictor_dir(self, index: int) -> Path:  # refine round `index`'s refitted predictor
        return self.predictor_dir / f"round{index}"

    @property
    def search_dir(self) -> Path:  # study journal + Pareto table
        return self.root / "search"

    @property
    def to_evaluate_path(self) -> Path:
        """The latest search's best points, for `evaluate --from-search` (search.api.write_outputs writes it)."""
        return self.search_dir / "to_evaluate.csv"

    @property
    def pareto_path(self) -> Path:  # the latest search's front (search.api.write_outputs writes it)
        return self.search_dir / "pareto.csv"

    def round_search_dir(self, index: int) -> Path:
        return self.search_dir / f"round{index}"

    def round_to_evaluate_path(self, index: int) -> Path:
        """The points refine round `index` evaluates, written once so that a resumed round evaluates the same."""
        return self.round_search_dir(index) / "to_evaluate.csv"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def training_precision_path(self) -> Path:  # what `ffnet-nas run` trains in here: {"amp": "bf16" | "fp16" | "fp32"}
        return self.root / "training_precision.json"

    @property
    def run_summary_path(self) -> Path:  # what `ffnet-nas run` found (RunSummary as JSON)
        return self.root / "run_summary.json"

    @property
    def lock_path(self) -> Path:  # one writer at a time (ffnet_nas.lock); holds the holder's pid and host
        return self.root / ".ffnet-nas.lock"

    @property
    def journal_path(self) -> Path:
        """The Optuna journal every search in this workdir shares (`search`, `run` and its refine rounds).

        Older workdirs named it `search/journal.log` (`run`) or `search/studies.journal` (`search`);
        `adopt_legacy_journal` renames such a file here so that their studies resume."""
        return self.search_dir / JOURNAL_NAME

    def adopt_legacy_journal(self) -> Path:
        """`journal_path`, after renaming a journal written under an older name to it (once, atomically)."""
        target = self.journal_path
        if target.exists():
            return target
        legacy = [self.search_dir / name for name in LEGACY_JOURNAL_NAMES if (self.search_dir / name).is_file()]
        if legacy:
            os.replace(legacy[0], target)
            logger.info("renamed the Optuna journal %s -> %s (one journal per workdir)", legacy[0], target)
            for other in legacy[1:]:
                logger.warning("%s is another journal from an older version; it is left in place "
                               "(read it with --storage %s)", other, other)
        return target
