"""Fixtures of the faults layer's tests (helpers are in faults_support)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import wspframe
from wspframe import Host


@pytest.fixture
def make_host() -> Iterator[Callable[..., Host]]:
    """``make_host("faults[latency=5ms],memory")``: a started host, cleaned up after."""
    hosts: list[Host] = []

    def make(*chains: str) -> Host:
        host = wspframe.Host(chains=list(chains), config=False)
        host.startup()
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        if host.started:
            host.cleanup()
