"""Files a hostile workdir could hold, for tests that check nothing read from a workdir runs code."""

from __future__ import annotations


class Planted:
    """A pickle that creates the file `marker` when unpickled (the classic `__reduce__` payload)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))
