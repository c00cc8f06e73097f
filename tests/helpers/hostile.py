"""Files a hostile workdir could hold, for tests that check nothing read from a workdir runs code."""

from __future__ import annotations


class Planted:
    """A pickle that creates the file `marker` when unpickled (the classic `__reduce__` payload)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def flip_a_weight_byte(path, tensor) -> None:
    """Damage `path` inside the stored bytes of `tensor` (one of its values): the zip container
    stays valid, so `torch.load` still succeeds and returns a different value; only a recorded
    digest can tell."""
    from pathlib import Path

    data = bytearray(Path(path).read_bytes())
    raw = tensor.detach().cpu().contiguous().reshape(-1).view(__import__("torch").uint8).numpy().tobytes()
    assert len(raw) >= 16, "pick a tensor of at least 16 bytes"
    at = bytes(data).find(raw)
    assert at >= 0, "the tensor's bytes are not stored verbatim in the file"
    data[at + len(raw) // 2] ^= 0xFF
    Path(path).write_bytes(bytes(data))
