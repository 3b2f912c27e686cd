"""Overlapped I/O through the chain: every operation completes exactly once,
through the mechanism it was started with (A14, A15): the overlapped's event,
a completion routine run as an APC in the issuing thread only during its
alertable waits, or the completion port associated with the *top* handle
(bug 1: lost completions; bug 2: completions skipped on immediate success)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import wspframe
from wspframe import (
    FIONREAD,
    SOCK_DGRAM,
    SOCK_STREAM,
    WSA_FLAG_OVERLAPPED,
    CompletionPort,
    Event,
    Overlapped,
)
from wspframe._overlapped import pending_apcs

from ._support import GRACE, PATIENCE, check_handles, close_all, loopback, name_of, open_socket

MECHANISMS = ["event", "apc", "port"]


class Scenario:
    """Sockets for every operation, and the expectations of each."""

    def __init__(self, host: Any, chain: Any) -> None:
        self.host = host
        stream = chain.entry(type=SOCK_STREAM)
        dgram = chain.entry(type=SOCK_DGRAM)
        self.stream_entry = stream
        self.listener = open_socket(host, stream, flags=WSA_FLAG_OVERLAPPED)
        self.listener.bind((loopback(stream), 0))
        self.listener.listen(4)
        self.client = open_socket(host, stream, flags=WSA_FLAG_OVERLAPPED)
        self.client.settimeout(PATIENCE)
        self.client.connect(self.listener.getsockname())
        self.listener.settimeout(PATIENCE)
        self.server, _ = self.listener.accept()
        self.server.settimeout(PATIENCE)
        self.a = open_socket(host, dgram, flags=WSA_FLAG_OVERLAPPED)
        self.b = open_socket(host, dgram, flags=WSA_FLAG_OVERLAPPED)
        self.a.bind((loopback(dgram), 0))
        self.b.bind((loopback(dgram), 0))
        self.b.settimeout(PATIENCE)
        self.extra: list[Any] = []

    def sockets(self) -> list[Any]:
        return [self.listener, self.client, self.server, self.a, self.b]

    def close(self) -> None:
        close_all(*self.extra, self.client, self.server, self.listener, self.a, self.b)

    # Each operation: start(ov, **routine) on a socket; then whatever makes it
    # finish; returns (socket it was started on, check of the finished ov).
    def op_send(self, ov: Overlapped, **kw: Any) -> tuple[Any, Callable[[], None]]:
        self.client.send_overlapped(b"overlapped send", ov, **kw)

        def check() -> None:
            assert ov.nbytes == 15, f"bug 10: send_overlapped of 15 bytes reported {ov.nbytes}"
            got = b""
            while len(got) < 15:
                got += self.server.recv(15 - len(got))
            assert got == b"overlapped send", "bug 10: the peer received other bytes"

        return self.client, check

    def op_recv(self, ov: Overlapped, **kw: Any) -> tuple[Any, Callable[[], None]]:
        self.server.recv_overlapped(100, ov, **kw)
        self.client.sendall(b"overlapped recv")

        def check() -> None:
            assert (ov.data, ov.nbytes) == (b"overlapped recv", 15), (
                f"bug 10: recv_overlapped got {ov.data!r} with nbytes {ov.nbytes}"
            )

        return self.server, check

    def op_sendto(self, ov: Overlapped, **kw: Any) -> tuple[Any, Callable[[], None]]:
        self.a.sendto_overlapped(b"datagram", self.b.getsockname(), ov, **kw)

        def check() -> None:
            assert ov.nbytes == 8, f"bug 10: sendto_overlapped of 8 bytes reported {ov.nbytes}"
            assert self.b.recvfrom(100)[0] == b"datagram", "bug 10: another datagram arrived"

        return self.a, check

    def op_recvfrom(self, ov: Overlapped, **kw: Any) -> tuple[Any, Callable[[], None]]:
        self.b.recvfrom_overlapped(100, ov, **kw)
        self.a.sendto(b"from a", self.b.getsockname())

        def check() -> None:
            assert (ov.data, ov.nbytes) == (b"from a", 6), (
                f"bug 10: recvfrom_overlapped got {ov.data!r} with nbytes {ov.nbytes}"
            )
            assert ov.address[:2] == self.a.getsockname()[:2], (
                f"bug 10: recvfrom_overlapped reported sender {ov.address!r}"
            )

        return self.b, check

    def op_connect(self, ov: Overlapped, **kw: Any) -> tuple[Any, Callable[[], None]]:
        sock = open_socket(self.host, self.stream_entry, flags=WSA_FLAG_OVERLAPPED)
        self.extra.append(sock)
        sock.connect_overlapped(self.listener.getsockname(), ov, **kw)

        def check() -> None:
            accepted, _ = self.listener.accept()
            self.extra.append(accepted)
            sock.sendall(b"connected")
            accepted.settimeout(PATIENCE)
            assert accepted.recv(9) == b"connected", (
                "A14: connect_overlapped completed without a working connection"
            )

        return sock, check

    def op_accept(self, ov: Overlapped, **kw: Any) -> tuple[Any, Callable[[], None]]:
        self.listener.accept_overlapped(ov, **kw)
        peer = open_socket(self.host, self.stream_entry, flags=WSA_FLAG_OVERLAPPED)
        self.extra.append(peer)
        peer.settimeout(PATIENCE)
        peer.connect(self.listener.getsockname())

        def check() -> None:
            accepted = ov.data
            assert isinstance(accepted, wspframe.Socket), (
                f"A14: accept_overlapped completed with {accepted!r}, not a Socket"
            )
            self.extra.append(accepted)
            check_handles(self.host, accepted, "a socket accepted overlapped")
            peer.sendall(b"accepted")
            accepted.settimeout(PATIENCE)
            assert accepted.recv(8) == b"accepted", (
                "A14: accept_overlapped completed without a working connection"
            )

        return self.listener, check

    def op_ioctl(self, ov: Overlapped, **kw: Any) -> tuple[Any, Callable[[], None]]:
        self.server.ioctl_overlapped(FIONREAD, 0, ov, **kw)

        def check() -> None:
            assert ov.data == 0, (
                f"bug 10: ioctl_overlapped(FIONREAD) returned {ov.data!r}, expected 0"
            )

        return self.server, check


OPERATIONS = ["send", "recv", "sendto", "recvfrom", "connect", "accept", "ioctl"]


@pytest.fixture
def scenario(wsp_host: Any, wsp_chain: Any) -> Any:
    s = Scenario(wsp_host, wsp_chain)
    yield s
    s.close()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_every_operation_completes_exactly_once(scenario: Scenario, mechanism: str) -> None:
    """A14/A15, bugs 1 and 2: each overlapped operation completes once, with its
    result, through the mechanism it was started with and no other."""
    port = CompletionPort()
    try:
        if mechanism == "port":
            for key, sock in enumerate(scenario.sockets(), start=100):
                port.associate(sock, key=key)
        for op in OPERATIONS:
            _one_operation(scenario, op, mechanism, port)
        if mechanism == "port":
            try:
                extra = port.get(0.1)
            except TimeoutError:
                pass
            else:
                pytest.fail(f"A14: a completion was delivered twice: {extra!r}", pytrace=False)
    finally:
        port.close()


def _one_operation(scenario: Scenario, op: str, mechanism: str, port: CompletionPort) -> None:
    calls: list[tuple[int, int, Overlapped, int]] = []
    event = Event() if mechanism == "event" else None
    ov = Overlapped(event)
    kw: dict[str, Any] = {}
    if mechanism == "apc":

        def routine(error: int, nbytes: int, o: Overlapped, flags: int) -> None:
            calls.append((error, nbytes, o, threading.get_ident()))

        kw["routine"] = routine
    if op == "connect" and mechanism == "port":
        # The socket is new: associate it before the operation starts.
        sock = open_socket(scenario.host, scenario.stream_entry, flags=WSA_FLAG_OVERLAPPED)
        scenario.extra.append(sock)
        port.associate(sock, key=200)
        sock.connect_overlapped(scenario.listener.getsockname(), ov)

        def check() -> None:
            accepted, _ = scenario.listener.accept()
            scenario.extra.append(accepted)

        started_on = sock
    else:
        started_on, check = getattr(scenario, f"op_{op}")(ov, **kw)
    if not ov.wait(PATIENCE):
        pytest.fail(f"A14: {op}_overlapped never completed ({ov!r})", pytrace=False)
    what = f"{op}_overlapped ({mechanism})"
    if mechanism == "event":
        assert event is not None
        assert event.is_set(), f"A15: {what}: the event was not set"
        assert pending_apcs() == 0, f"A15: {what}: an APC was queued without a routine"
    elif mechanism == "apc":
        time.sleep(0.01)
        assert calls == [], f"A15: {what}: the routine ran outside an alertable wait"
        wspframe.sleep_ex(0, alertable=False)
        assert calls == [], f"A15: {what}: the routine ran in a non-alertable wait"
        assert wspframe.sleep_ex(GRACE) == wspframe.WAIT_IO_COMPLETION, (
            f"A15/bug 1: {what}: no completion routine was queued to the issuing thread"
        )
        assert len(calls) == 1, f"A14: {what}: the routine ran {len(calls)} times"
        error, nbytes, o, thread = calls[0]
        assert o is ov, f"A15: {what}: the routine ran for {o!r}, not for {ov!r}"
        assert thread == threading.get_ident(), (
            f"A15: {what}: the routine ran in thread {thread}, not in the issuing thread "
            f"{threading.get_ident()}"
        )
        assert (error, nbytes) == (ov.error, ov.nbytes), (
            f"bug 10: {what}: the routine got ({error}, {nbytes}), the overlapped says "
            f"({ov.error}, {ov.nbytes})"
        )
    else:
        try:
            c = port.get(GRACE)
        except TimeoutError:
            pytest.fail(
                f"bug 1 (lost completion): {what} completed ({ov!r}) but the port associated "
                f"with the top handle {started_on.fileno()} never heard of it",
                pytrace=False,
            )
        assert c.overlapped is ov, f"A14: {what}: the port delivered {c!r}, not {ov!r}"
        assert (c.nbytes, c.error) == (ov.nbytes, ov.error), (
            f"bug 10: {what}: the packet says ({c.nbytes}, {c.error}), "
            f"the overlapped ({ov.nbytes}, {ov.error})"
        )
    assert ov.error == 0, f"A14: {what} failed with {name_of(ov.error)}"
    check()


def test_immediate_success_is_still_reported_to_the_port(
    wsp_stream_pair: tuple[Any, Any], wsp_completion_port: Any, wsp_completions: Any
) -> None:
    """bug 2: an operation that can complete at once (the data is already there)
    still posts its completion to the port, whether the handle is IFS or not."""
    client, server = wsp_stream_pair
    wsp_completion_port.associate(server, key=5)
    client.sendall(b"already here")
    deadline = time.monotonic() + PATIENCE
    while server.ioctl(FIONREAD) < 12 and time.monotonic() < deadline:
        time.sleep(0.002)
    ov = Overlapped()
    server.recv_overlapped(100, ov)
    assert ov.wait(PATIENCE), f"A14: a receive with data waiting never completed ({ov!r})"
    try:
        c = wsp_completion_port.get(GRACE)
    except TimeoutError:
        pytest.fail(
            f"bug 2: a receive that could complete at once ({ov!r}) never reached the port "
            f"of the top handle ({'IFS' if server.is_ifs else 'non-IFS'})",
            pytrace=False,
        )
    assert (c.key, c.overlapped, c.nbytes) == (5, ov, 12), f"bug 2/10: got {c!r}"
    assert ov.data == b"already here", f"bug 10: the receive got {ov.data!r}"
    wsp_completions.expect_none(wsp_completion_port, within=0.05)


def test_many_in_flight_on_the_top_handle(
    wsp_stream_pair: tuple[Any, Any], wsp_completion_port: Any, wsp_completions: Any
) -> None:
    """A14/bug 1: many operations in flight on both sockets each complete once,
    with the key of their own socket's association."""
    client, server = wsp_stream_pair
    port = wsp_completion_port
    port.associate(client, key=1)
    port.associate(server, key=2)
    receives = [Overlapped() for _ in range(40)]
    for ov in receives:
        server.recv_overlapped(4, ov)
    sends = [Overlapped() for _ in range(40)]
    for i, ov in enumerate(sends):
        client.send_overlapped(b"%04d" % i, ov)
    for ov in (*receives, *sends):
        assert ov.wait(PATIENCE), f"A14: {ov!r} never completed"
    got = [wsp_completions.expect(port, timeout=GRACE) for _ in range(80)]
    wsp_completions.expect_none(port, within=0.05)
    by_key: dict[int, set[int]] = {1: set(), 2: set()}
    for c in got:
        assert c.key in by_key, f"A15: a completion came with key {c.key!r}"
        by_key[c.key].add(id(c.overlapped))
    assert by_key[1] == {id(ov) for ov in sends}, "A14: the sends did not complete exactly once"
    assert by_key[2] == {id(ov) for ov in receives}, (
        "A14: the receives did not complete exactly once"
    )
    data = b"".join(ov.data for ov in receives)
    assert data == b"".join(b"%04d" % i for i in range(40)), "bug 10: the stream was reordered"
