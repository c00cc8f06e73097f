import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE_KEYS = REPO / "tests" / "data" / "state_dict_keys"


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    # Two cores on the CI machine: keep each test from oversubscribing them.
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield
