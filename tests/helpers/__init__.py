"""Helpers shared by several test areas: tiny spaces and teachers (`distill`), BN randomisation (`bn`),
report work folders (`report`) and stand-in search objectives (`search_standins`)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REFERENCE_KEYS = REPO / "tests" / "data" / "state_dict_keys"
