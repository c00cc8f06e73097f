"""The one error type users see.

Everything a user can get wrong (a name, a code, a target, a path, a file) raises
`InvalidInput`. The CLI turns it into one line on stderr and exit status 2; a notebook
gets an ordinary exception (it subclasses ValueError) with the same message.
`space` is the bottom layer, so the class lives here and every other package imports it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InvalidInput(ValueError):
    """Bad input from the user: the message says what is wrong and what is expected."""


def closest(word: str, candidates: Iterable[str], *, n: int = 3) -> str:
    """'did you mean: a, b, c' for the closest candidates, or '' when nothing is close."""
    candidates = list(candidates)
    matches = difflib.get_close_matches(word, candidates, n=n, cutoff=0.5)
    if not matches:
        lowered = word.lower()
        matches = [c for c in candidates if lowered and lowered in c.lower()][:n]
    return f"; did you mean: {', '.join(matches)}" if matches else ""
