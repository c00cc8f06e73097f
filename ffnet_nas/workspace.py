"""The run folder (`--workdir`, default ./runs/default): one place per artifact.

Library code in `predictors/`, `distill/` and `reports/` takes explicit paths; only the CLI
layer knows this layout, so a notebook can point the library anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_WORKDIR = Path("runs/default")


@dataclass(frozen=True)
class Workspace:
    root: Path = DEFAULT_WORKDIR

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

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
    def lut_dir(self) -> Path:  # one latency table (+ metadata) per device/dtype/backend/size
        return self.root / "lut"

    @property
    def library_dir(self) -> Path:  # block library: table + one weight file per trained choice
        return self.root / "library"

    @property
    def evaluated_path(self) -> Path:  # one row per fully fine-tuned and evaluated point
        return self.root / "evaluated.csv"

    @property
    def predictor_dir(self) -> Path:
        return self.root / "predictor"

    @property
    def search_dir(self) -> Path:  # study journal + Pareto table
        return self.root / "search"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"
