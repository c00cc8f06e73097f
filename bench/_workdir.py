"""A benchmark's own copy of a finished workdir, so what it adds never lands in the run's files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def link_copy(src: str | Path, dst: str | Path, *, ignore: tuple[str, ...] = ()) -> Path:
    """`dst` as a hard-linked copy of `src` (patterns in `ignore` left out); an existing `dst` is
    kept as it is, so a killed benchmark resumes in it. Hard links are safe to share: every workdir
    file is replaced atomically, never written in place."""
    dst = Path(dst)
    if not dst.exists():
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*ignore) if ignore else None, copy_function=os.link)
    return dst
