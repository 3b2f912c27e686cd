"""Tests of how blocked calls of the ``memory`` provider sleep and wake.

The parkers live in ``wspframe._memwait``, their use in ``wspframe._memnet``.

A blocked call sleeps on a parker of its socket (an eventfd on Linux, else a
lock) and is woken only when its operation is done.  These tests pin down the
parkers themselves, that both kinds carry the blocking semantics, that a wake
from a send comes after the network lock is released, and that parkers hold
no descriptor beyond their socket's life.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.test_memory_provider import (
    JOIN,
    SHORT,
    Env,
    Worker,
    wait_blocked,
    wsa,
)
from wspframe import _memwait
from wspframe._errors import WSAErrorCode

E = WSAErrorCode

KINDS: dict[str, Callable[[], Any]] = {"lock": _memwait.LockParker}
if hasattr(os, "eventfd"):
    KINDS["eventfd"] = _memwait.EventfdParker


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    for thread in set(threading.enumerate()) - before:
        thread.join(JOIN)
        assert not thread.is_alive(), "a thread was left behind"


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.p.cleanup()
    assert len(e.table) == 0, "handles leaked"
    assert e.p.network._parked == 0


@pytest.fixture(params=sorted(KINDS))
def parker_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with each kind of parker the platform has."""
    kind: str = request.param
    monkeypatch.setattr(_memwait, "new_parker", KINDS[kind])
    return kind


# -- the parkers themselves --------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_unpark_before_the_park_is_kept(kind: str) -> None:
    parker = KINDS[kind]()
    parker.unpark()
    parker.unpark()
    parker.park(None)  # returns at once
    parker.park(SHORT)  # nothing left (or a wake left over): returns
    parker.unpark()
    parker.park(5.0)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_parker_wakes_a_thread_that_sleeps(kind: str) -> None:
    parker = KINDS[kind]()
    asleep = threading.Event()

    def sleeper() -> None:
        asleep.set()
        parker.park(None)

    w = Worker(sleeper)
    asleep.wait(5.0)
    parker.unpark()
    w.join()
    assert w.error is None


def test_without_descriptors_a_lock_parker_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fd() -> Any:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(_memwait, "new_parker", no_fd)
    assert type(_memwait.make_parker()) is _memwait.LockParker


# -- blocking semantics with each parker ---------------------------------------------------------


def test_blocked_recv_gets_the_data_of_a_send(env: Env, parker_kind: str) -> None:
    c, s = env.pair()
    env.p.settimeout(s, None)
    w = Worker(env.p.recv, s, 100, 0)
    wait_blocked(env.p)
    assert env.p.send(c, b"wake", 0) == 4
    w.join()
    assert (w.error, w.result) == (None, b"wake")
    assert env.p.network._parked == 0


def test_blocked_send_wakes_when_the_peer_reads(env: Env, parker_kind: str) -> None:
    c, s = env.pair()
    env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 8)  # room for 8 bytes at s
    env.p.settimeout(c, None)
    w = Worker(env.p.send, c, b"0123456789ab", 0)
    wait_blocked(env.p)
    assert env.p.recv(s, 100, 0) == b"01234567"
    w.join()
    assert (w.error, w.result) == (None, 12)
    assert env.p.recv(s, 100, 0) == b"89ab"


def test_blocked_recv_times_out(env: Env, parker_kind: str) -> None:
    _, s = env.pair()
    env.p.settimeout(s, SHORT)
    with wsa(E.WSAETIMEDOUT):
        env.p.recv(s, 1, 0)
    assert not s.rq and env.p.network._parked == 0


def test_blocked_recv_is_interrupted_by_close(env: Env, parker_kind: str) -> None:
    _, s = env.pair()
    env.p.settimeout(s, None)
    w = Worker(env.p.recv, s, 100, 0)
    wait_blocked(env.p)
    env.p.close_socket(s)
    w.join()
    assert w.error is not None and getattr(w.error, "wsa_code", None) == E.WSAEINTR


def test_blocked_recv_fails_when_the_network_goes_down(env: Env, parker_kind: str) -> None:
    _, s = env.pair()
    env.p.settimeout(s, None)
    w = Worker(env.p.recv, s, 100, 0)
    wait_blocked(env.p)
    env.p.network.down()
    w.join()
    env.p.network.up()
    assert w.error is not None and getattr(w.error, "wsa_code", None) == E.WSAENETDOWN


@pytest.mark.parametrize("timeout", [1e7, 1e12])
def test_a_timeout_beyond_what_one_park_sleeps_is_kept(
    env: Env, parker_kind: str, timeout: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, s = env.pair()
    env.p.settimeout(s, timeout)
    w = Worker(env.p.recv, s, 100, 0)
    wait_blocked(env.p)
    env.p.send(c, b"late", 0)
    w.join()
    assert (w.error, w.result) == (None, b"late")
    monkeypatch.setattr(_memwait, "LONGEST", SHORT / 5)  # several parks to one timeout
    env.p.settimeout(s, SHORT)
    with wsa(E.WSAETIMEDOUT):
        env.p.recv(s, 1, 0)


def test_two_threads_blocked_on_one_socket_are_served_in_order(env: Env, parker_kind: str) -> None:
    c, s = env.pair()
    env.p.settimeout(s, None)
    first = Worker(env.p.recv, s, 3, 0)
    wait_blocked(env.p)
    second = Worker(env.p.recv, s, 3, 0)
    wait_blocked(env.p, 2)
    env.p.send(c, b"abcdef", 0)
    first.join()
    second.join()
    assert (first.result, second.result) == (b"abc", b"def")


def test_a_stale_wake_does_not_end_a_blocked_call(env: Env, parker_kind: str) -> None:
    """A parker may carry a wake meant for an earlier sleep (one that timed out
    as it was served): the next call on it sleeps on until its own is done."""
    c, s = env.pair()
    env.p.settimeout(s, None)
    stale = _memwait.make_parker()
    stale.unpark()
    s.parker = stale
    w = Worker(env.p.recv, s, 100, 0)
    wait_blocked(env.p)
    assert w.thread.is_alive()
    env.p.send(c, b"late", 0)
    w.join()
    assert (w.error, w.result) == (None, b"late")


# -- a send hands its data to a blocked recv ------------------------------------------------------


def test_a_blocked_recv_smaller_than_the_send_leaves_the_rest_queued(env: Env) -> None:
    c, s = env.pair()
    env.p.settimeout(s, None)
    w = Worker(env.p.recv, s, 3, 0)
    wait_blocked(env.p)
    assert env.p.send(c, b"abcdefg", 0) == 7
    w.join()
    assert w.result == b"abc"
    assert env.p.recv(s, 100, 0) == b"defg"


def test_an_empty_send_does_not_wake_a_blocked_recv(env: Env) -> None:
    """An empty result would read as end of file."""
    c, s = env.pair()
    env.p.settimeout(s, None)
    w = Worker(env.p.recv, s, 100, 0)
    wait_blocked(env.p)
    assert env.p.send(c, b"", 0) == 0
    assert w.thread.is_alive() and s.rq
    env.p.send(c, b"data", 0)
    w.join()
    assert w.result == b"data"


@pytest.mark.parametrize("flag", ["MSG_PEEK", "MSG_WAITALL"])
def test_a_blocked_recv_with_flags_gets_its_own_semantics(env: Env, flag: str) -> None:
    c, s = env.pair()
    env.p.settimeout(s, None)
    w = Worker(env.p.recv, s, 6, getattr(socket, flag))
    wait_blocked(env.p)
    env.p.send(c, b"abc", 0)
    if flag == "MSG_WAITALL":
        assert w.thread.is_alive()
        env.p.send(c, b"defgh", 0)
        w.join()
        assert w.result == b"abcdef"
        assert env.p.recv(s, 100, 0) == b"gh"
    else:
        w.join()
        assert w.result == b"abc"
        assert env.p.recv(s, 100, 0) == b"abc"


# -- who wakes, and when -------------------------------------------------------------------------


class Recording:
    """A parker that notes whether the network lock was held at each unpark."""

    locks: list[threading.Lock] = []
    held: list[bool] = []

    def __init__(self) -> None:
        self._inner = _memwait.LockParker()

    def park(self, timeout: float | None) -> None:
        self._inner.park(timeout)

    def unpark(self) -> None:
        Recording.held.append(Recording.locks[0].locked())
        self._inner.unpark()


@pytest.fixture
def recording(env: Env, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    monkeypatch.setattr(_memwait, "new_parker", Recording)
    Recording.locks = [env.p.network._lock]
    Recording.held = []
    return Recording.held


def test_a_send_wakes_the_receiver_after_releasing_the_lock(
    env: Env, recording: list[bool]
) -> None:
    c, s = env.pair()
    env.p.settimeout(s, None)
    w = Worker(env.p.recv, s, 100, 0)
    wait_blocked(env.p)
    env.p.send(c, b"ping", 0)
    w.join()
    assert w.result == b"ping"
    assert recording == [False]


def test_a_recv_wakes_the_sender_after_releasing_the_lock(env: Env, recording: list[bool]) -> None:
    c, s = env.pair()
    env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 4)
    env.p.settimeout(c, None)
    w = Worker(env.p.send, c, b"12345678", 0)
    wait_blocked(env.p)
    assert env.p.recv(s, 4, 0) == b"1234"
    w.join()
    assert w.result == 8
    assert recording == [False]


def _blocked_recv(env: Env) -> tuple[Any, Any, Worker]:
    c, s = env.pair()
    env.p.settimeout(s, None)
    w = Worker(env.p.recv, s, 100, 0)
    wait_blocked(env.p)
    return c, s, w


def _wake_by_sendto(env: Env) -> Worker:
    u = env.udp_bound()
    env.p.settimeout(u, None)
    w = Worker(env.p.recvfrom, u, 100, 0)
    wait_blocked(env.p)
    env.p.sendto(env.udp(), b"dgram", 0, env.p.getsockname(u))
    return w


def _wake_by_peer_close(env: Env) -> Worker:
    c, _, w = _blocked_recv(env)
    env.p.close_socket(c)
    return w


def _wake_by_own_close(env: Env) -> Worker:
    _, s, w = _blocked_recv(env)
    env.p.close_socket(s)
    return w


def _wake_by_shutdown(env: Env) -> Worker:
    c, _, w = _blocked_recv(env)
    env.p.shutdown(c, socket.SHUT_WR)
    return w


def _wake_by_network_down(env: Env) -> Worker:
    _, _, w = _blocked_recv(env)
    env.p.network.down()
    w.join()
    env.p.network.up()
    return w


def _wake_by_connect(env: Env) -> Worker:
    lst = env.listener()
    env.p.settimeout(lst, None)
    w = Worker(env.p.accept, lst)
    wait_blocked(env.p)
    env.p.connect(env.tcp(), env.p.getsockname(lst))
    return w


@pytest.mark.parametrize(
    "wake",
    [
        _wake_by_sendto,
        _wake_by_peer_close,
        _wake_by_own_close,
        _wake_by_shutdown,
        _wake_by_network_down,
        _wake_by_connect,
    ],
    ids=lambda f: f.__name__.removeprefix("_wake_by_"),
)
def test_every_wake_comes_after_the_lock_is_released(
    env: Env, recording: list[bool], wake: Callable[[Env], Worker]
) -> None:
    w = wake(env)
    w.join()
    assert recording == [False]


def test_only_the_served_call_wakes(env: Env, recording: list[bool]) -> None:
    """Data for one socket does not wake a call blocked on another."""
    c1, s1 = env.pair()
    c2, s2 = env.pair()
    env.p.settimeout(s1, None)
    env.p.settimeout(s2, None)
    w1 = Worker(env.p.recv, s1, 100, 0)
    w2 = Worker(env.p.recv, s2, 100, 0)
    wait_blocked(env.p, 2)
    env.p.send(c1, b"one", 0)
    w1.join()
    assert len(recording) == 1 and w2.thread.is_alive()
    env.p.send(c2, b"two", 0)
    w2.join()
    assert (w1.result, w2.result) == (b"one", b"two")


# -- descriptors ----------------------------------------------------------------------------------


def eventfds() -> int:
    """How many eventfds this process has open."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[eventfd]"
        except OSError:  # closed meanwhile (listdir's own descriptor)
            pass
    return count


@pytest.mark.skipif(
    "eventfd" not in KINDS or not os.path.isdir("/proc/self/fd"), reason="Linux only"
)
def test_a_socket_keeps_one_eventfd_and_closes_it_with_the_socket(env: Env) -> None:
    before = eventfds()
    c, s = env.pair()
    env.p.settimeout(s, None)
    for n in range(3):
        w = Worker(env.p.recv, s, 100, 0)
        wait_blocked(env.p)
        env.p.send(c, b"x%d" % n, 0)
        w.join()
        assert w.result == b"x%d" % n
        assert eventfds() == before + 1
    assert isinstance(s.parker, _memwait.EventfdParker)
    env.p.close_socket(s)
    assert s.parker is None
    assert eventfds() == before
