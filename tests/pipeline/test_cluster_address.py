"""Which Dask scheduler a command uses (ffnet_nas.cluster): the flag, else $DASK_SCHEDULER_ADDRESS."""

from __future__ import annotations

import pytest

from ffnet_nas.cluster import SCHEDULER_ENV, connect, scheduler_address
from ffnet_nas.space.errors import InvalidInput


def test_the_flag_wins_then_the_environment_and_an_empty_flag_turns_it_off(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert scheduler_address(None) is None
    assert scheduler_address("tcp://a:8786") == "tcp://a:8786"
    monkeypatch.setenv(SCHEDULER_ENV, " tcp://env:8786 ")
    assert scheduler_address(None) == "tcp://env:8786"
    assert scheduler_address("tcp://flag:1") == "tcp://flag:1"
    assert scheduler_address("") is None  # --scheduler '' : run here despite the environment


@pytest.mark.parametrize("address", ["nowhere", "tcp://host", "tcp://h:1:2", "http://h:8786", "tcp://h:80x"])
def test_a_malformed_address_is_refused_before_dask_is_asked(address):
    # a distributed.Client on such an address fails, then hangs 40 s in its finaliser
    with pytest.raises(InvalidInput, match="expected PROTOCOL://HOST:PORT"):
        connect(address)
