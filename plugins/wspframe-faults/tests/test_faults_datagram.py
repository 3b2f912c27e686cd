"""Datagram toxics over 10,000 datagrams with a fixed seed: rates within
statistical bounds, effects matching the recorded events exactly, and the same
seed giving the same event sequence."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable

import pytest
from faults_support import datagram_pair
from wspframe_faults import FaultEvent

from wspframe import Host, WSAError

COUNT = 10_000


def exchange(host: Host, count: int = COUNT) -> list[bytes]:
    """Send ``count`` numbered datagrams from one socket to another, reading as
    they arrive; returns what arrived, in order."""
    sender, receiver = datagram_pair(host)
    receiver.settimeout(0)
    destination = receiver.getsockname()
    got: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                got.append(receiver.recv(100))
            except (BlockingIOError, TimeoutError):  # WSAEWOULDBLOCK, WSAETIMEDOUT
                return

    for i in range(count):
        sender.sendto(b"%05d:datagram" % i, destination)
        drain()
    sender.close()  # sends a datagram still held back by reorder
    receiver.settimeout(0.05)
    drain()
    receiver.close()
    return got


def numbers(got: list[bytes]) -> list[int]:
    return [int(d[:5]) for d in got if d[:5].isdigit()]


def within(observed: int, p: float, n: int = COUNT, sigmas: float = 4.5) -> bool:
    expected = n * p
    return abs(observed - expected) <= sigmas * math.sqrt(n * p * (1 - p))


def fault_counts(host: Host) -> Counter[str]:
    return Counter(e.fault for e in host.provider("faults").events)


@pytest.mark.parametrize("direction", ["up", "down"])
def test_drop(make_host: Callable[..., Host], direction: str) -> None:
    host = make_host(f"faults[drop=0.1,seed=1,direction={direction}],memory")
    got = exchange(host)
    dropped = fault_counts(host)["drop"]
    assert within(dropped, 0.1)
    assert len(got) == COUNT - dropped
    assert numbers(got) == sorted(numbers(got))  # drop never reorders


@pytest.mark.parametrize("direction", ["up", "down"])
def test_duplicate(make_host: Callable[..., Host], direction: str) -> None:
    host = make_host(f"faults[duplicate=0.05,seed=2,direction={direction}],memory")
    got = exchange(host)
    duplicated = fault_counts(host)["duplicate"]
    assert within(duplicated, 0.05)
    assert len(got) == COUNT + duplicated
    assert set(numbers(got)) == set(range(COUNT))
    assert sum(1 for n in Counter(numbers(got)).values() if n == 2) == duplicated


@pytest.mark.parametrize("direction", ["up", "down"])
def test_reorder(make_host: Callable[..., Host], direction: str) -> None:
    host = make_host(f"faults[reorder=0.05,seed=3,direction={direction}],memory")
    got = exchange(host)
    reordered = fault_counts(host)["reorder"]
    assert within(reordered, 0.05 * (1 - 0.05), sigmas=5)
    order = numbers(got)
    assert sorted(order) == list(range(COUNT))  # nothing lost or duplicated
    swaps = sum(1 for a, b in itertools.pairwise(order) if b < a)
    assert swaps == reordered


@pytest.mark.parametrize("direction", ["up", "down"])
def test_corrupt(make_host: Callable[..., Host], direction: str) -> None:
    host = make_host(f"faults[corrupt=0.02,seed=4,direction={direction}],memory")
    got = exchange(host)
    corrupted = fault_counts(host)["corrupt"]
    assert within(corrupted, 0.02)
    assert len(got) == COUNT
    # Nothing is dropped or reordered: compare position by position.
    assert sum(1 for i, d in enumerate(got) if d != b"%05d:datagram" % i) == corrupted


def test_same_seed_same_event_sequence(make_host: Callable[..., Host]) -> None:
    spec = "faults[drop=0.1,duplicate=0.05,reorder=0.05,corrupt=0.02,direction=both,seed={}],memory"

    def run(seed: int) -> tuple[list[FaultEvent], list[bytes]]:
        host = make_host(spec.format(seed))
        got = exchange(host, 3000)
        events = host.provider("faults").events
        host.cleanup()
        return events, got

    first, second, other = run(42), run(42), run(43)
    assert first == second
    assert len(first[0]) > 500
    assert first[0] != other[0]


def test_seed_set_at_run_time_restarts_the_numbering(make_host: Callable[..., Host]) -> None:
    host = make_host("faults[drop=0.3],memory")
    layer = host.provider("faults")
    runs = []
    for _ in range(2):
        layer.set(seed=9)
        layer.clear_events()
        exchange(host, 500)
        runs.append(layer.events)
    assert runs[0] == runs[1]
    assert {e.socket for e in runs[0]} == {1}  # the sender is socket 1 both times


def test_toxicity_affects_that_share_of_sockets(make_host: Callable[..., Host]) -> None:
    host = make_host("faults[drop=1,toxicity=0.3,seed=6],memory")
    layer = host.provider("faults")
    affected = 0
    for _ in range(200):
        sender, receiver = datagram_pair(host)
        sender.sendto(b"x", receiver.getsockname())
        receiver.settimeout(0)
        try:
            receiver.recv(10)
        except WSAError:
            affected += 1  # dropped: the sender was affected
        sender.close()
        receiver.close()
    stats = layer.stats()
    assert stats["sockets"] == 400
    assert within(stats["affected"], 0.3, n=400)
    assert within(affected, 0.3, n=200)
