"""Overlapped I/O through the host: events, completion routines (APCs) and
completion ports, on both base providers, bare and under chains of length 3
and 7 (SPI rules A14/A15, the seed's layered-provider paragraph, bugs 1 and 9)."""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import wspframe
from wspframe import (
    WSA_FLAG_OVERLAPPED,
    CompletionPort,
    Event,
    LayeredProvider,
    Overlapped,
    WSAError,
    WSAErrorCode,
)

C = WSAErrorCode


class Hop(LayeredProvider):
    """A non-IFS layer: it mints its own handles, so completions must be relayed."""

    name = "hop"
    ifs = False

    def configure(self, options: Any) -> None:
        pass


class Shout(LayeredProvider):
    """Post-processes completed receives: upper-cases the bytes."""

    name = "shout"

    def on_complete(self, s: Any, ov: Overlapped) -> None:
        if ov.op == "recv" and ov.data:
            ov.data = bytes(ov.data).upper()


class Careless(LayeredProvider):
    """Bug 1 on purpose: hands the client's overlapped straight to the layer below."""

    name = "careless"
    ifs = False

    def recv_overlapped(self, s: Any, bufsize: int, flags: int, ov: Overlapped) -> None:
        s.lower.recv_overlapped(bufsize, flags, ov)


LAYERS = {
    1: "",
    3: "hop[n=1],passthrough[tag=2],",
    7: "hop[n=1],passthrough[tag=2],hop[n=3],observe,hop[n=5],passthrough[tag=6],",
}
PROVIDERS = [Hop, Shout, Careless]


@pytest.fixture(params=["memory", "tcpip"])
def base(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[1, 3, 7], ids=lambda n: f"len{n}")
def spec(request: pytest.FixtureRequest, base: str) -> str:
    return LAYERS[request.param] + base


@pytest.fixture
def host(spec: str) -> Iterator[wspframe.Host]:
    with wspframe.Host(chains=[spec], config=False, providers=PROVIDERS) as h:
        yield h


def stream_pair(
    host: wspframe.Host, spec: str, flags: int = WSA_FLAG_OVERLAPPED
) -> tuple[Any, Any, Any]:
    entry = host.entries_for(spec)[0]
    srv = host.socket(protocol_info=entry, flags=flags)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cli = host.socket(protocol_info=entry, flags=flags)
    cli.connect(srv.getsockname())
    conn, _ = srv.accept()
    for s in (cli, conn):
        s.settimeout(10)
    return srv, cli, conn


def close_all(*sockets: Any) -> None:
    for s in sockets:
        s.close()


# -- the three mechanisms -------------------------------------------------------------------
def test_event_completion(host: wspframe.Host, spec: str) -> None:
    srv, cli, conn = stream_pair(host, spec)
    ev = Event()
    ov = Overlapped(ev)
    conn.recv_overlapped(100, ov)
    assert not ov.done()
    with pytest.raises(WSAError) as info:
        conn.get_overlapped_result(ov)
    assert info.value.wsa_code == C.WSA_IO_INCOMPLETE
    cli.sendall(b"hello")
    assert ev.wait(10) == 0
    assert ov.result(1) == b"hello"
    assert conn.get_overlapped_result(ov) == (5, 0)
    close_all(cli, conn, srv)


def test_completion_port_hears_every_completion_of_the_top_handle(
    host: wspframe.Host, spec: str
) -> None:
    srv, cli, conn = stream_pair(host, spec)
    port = CompletionPort()
    port.associate(conn, key=7)
    port.associate(cli, key=8)
    r = Overlapped()
    conn.recv_overlapped(100, r)
    s = Overlapped()
    cli.send_overlapped(b"abc", s)
    got = {port.get(10).key: None for _ in range(2)}
    assert set(got) == {7, 8}
    assert r.result(1) == b"abc" and s.result(1) == 3
    with pytest.raises(TimeoutError) as info:
        port.get(0.05)  # exactly once each: nothing more
    assert info.value.wsa_code == C.WAIT_TIMEOUT  # type: ignore[attr-defined]
    close_all(cli, conn, srv)
    port.close()


def test_immediate_completion_is_still_reported(host: wspframe.Host, spec: str) -> None:
    srv, cli, conn = stream_pair(host, spec)
    cli.sendall(b"early")
    time.sleep(0.05)  # the data is there before the receive starts
    port = CompletionPort().associate(conn, key=1)
    ov = Overlapped()
    conn.recv_overlapped(100, ov)
    c = port.get(10)
    assert (c.key, c.overlapped, c.nbytes, c.error) == (1, ov, 5, 0)
    assert ov.data == b"early"
    close_all(cli, conn, srv)
    port.close()


def test_completion_routine_runs_in_the_issuing_thread_only_when_alertable(
    host: wspframe.Host, spec: str
) -> None:
    srv, cli, conn = stream_pair(host, spec)
    calls: list[tuple[int, int, int]] = []

    def routine(error: int, nbytes: int, ov: Overlapped, flags: int) -> None:
        calls.append((error, nbytes, threading.get_ident()))

    ov = Overlapped()
    conn.recv_overlapped(100, ov, routine=routine)
    cli.sendall(b"apc")
    assert ov.wait(10)
    time.sleep(0.02)
    assert calls == []  # done, but not before an alertable wait
    assert wspframe.sleep_ex(0, alertable=False) == 0 and calls == []
    assert wspframe.sleep_ex(5) == wspframe.WAIT_IO_COMPLETION
    assert calls == [(0, 3, threading.get_ident())]
    close_all(cli, conn, srv)


def test_datagrams_and_ioctl_overlapped(host: wspframe.Host, spec: str) -> None:
    udp = next(e for e in host.entries_for(spec) if e.socket_type == wspframe.SOCK_DGRAM)
    a = host.socket(protocol_info=udp, flags=WSA_FLAG_OVERLAPPED)
    b = host.socket(protocol_info=udp, flags=WSA_FLAG_OVERLAPPED)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    port = CompletionPort().associate(a, key=1).associate(b, key=2)
    r = Overlapped()
    b.recvfrom_overlapped(100, r)
    s = Overlapped()
    a.sendto_overlapped(b"datagram", b.getsockname(), s)
    assert sorted(port.get(10).key for _ in range(2)) == [1, 2]
    assert r.result(0) == (b"datagram", a.getsockname())
    assert s.result(0) == 8
    i = Overlapped()
    b.ioctl_overlapped(wspframe.FIONREAD, 0, i)
    assert port.get(10).overlapped is i and i.result(0) == 0
    r2 = Overlapped()
    b.recvfrom_overlapped(100, r2)
    a.sendto_overlapped(b"wait", b.getsockname(), Overlapped())
    assert b.get_overlapped_result(r2, wait=True) == (4, 0)
    for _ in range(2):
        port.get(10)
    close_all(a, b)
    port.close()


def test_overlapped_needs_the_flag(host: wspframe.Host, spec: str) -> None:
    srv, cli, conn = stream_pair(host, spec, flags=0)
    with pytest.raises(WSAError) as info:
        conn.recv_overlapped(10, Overlapped())
    assert info.value.wsa_code == C.WSAEINVAL
    close_all(cli, conn, srv)


def test_many_operations_in_flight_keep_stream_order(host: wspframe.Host, spec: str) -> None:
    srv, cli, conn = stream_pair(host, spec)
    port = CompletionPort().associate(conn, key=3).associate(cli, key=4)
    recvs = [Overlapped() for _ in range(50)]
    for ov in recvs:
        conn.recv_overlapped(10, ov)
    sends = [Overlapped() for _ in range(50)]
    payload = [bytes([65 + i % 26]) * 10 for i in range(50)]
    for ov, data in zip(sends, payload, strict=True):
        cli.send_overlapped(data, ov)
    completions = [port.get(10) for _ in range(100)]
    assert sorted(c.key for c in completions) == [3] * 50 + [4] * 50
    assert b"".join(ov.data for ov in recvs) == b"".join(payload)
    assert all(ov.result(0) == 10 for ov in sends)
    close_all(cli, conn, srv)
    port.close()


def test_accept_and_connect_overlapped(host: wspframe.Host, spec: str) -> None:
    entry = host.entries_for(spec)[0]
    srv = host.socket(protocol_info=entry, flags=WSA_FLAG_OVERLAPPED)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = CompletionPort().associate(srv, key=1)
    a = Overlapped()
    srv.accept_overlapped(a)
    cli = host.socket(protocol_info=entry, flags=WSA_FLAG_OVERLAPPED)
    port.associate(cli, key=2)
    c = Overlapped()
    cli.connect_overlapped(srv.getsockname(), c)
    assert {port.get(10).key, port.get(10).key} == {1, 2}
    conn = a.result(0)
    assert isinstance(conn, wspframe.Socket) and conn.protocol_info == entry
    assert a.address[:2] == cli.getsockname()[:2]
    cli.sendall(b"via accept_overlapped")
    conn.settimeout(10)
    assert conn.recv(100) == b"via accept_overlapped"
    close_all(cli, conn, srv)
    port.close()


def test_close_with_100_pending_aborts_each_exactly_once(spec: str, no_leaks: None) -> None:
    with wspframe.Host(chains=[spec], config=False, providers=PROVIDERS) as host:
        srv, cli, conn = stream_pair(host, spec)
        port = CompletionPort().associate(conn, key=9)
        pending = [Overlapped() for _ in range(100)]
        for ov in pending:
            conn.recv_overlapped(10, ov)
        conn.close()
        got = [port.get(10) for _ in range(100)]
        assert {id(c.overlapped) for c in got} == {id(ov) for ov in pending}
        assert {c.error for c in got} == {C.WSA_OPERATION_ABORTED}
        with pytest.raises(TimeoutError):
            port.get(0.05)
        for ov in pending:
            with pytest.raises(WSAError) as info:
                ov.result(0)
            assert info.value.wsa_code == C.WSA_OPERATION_ABORTED
        close_all(cli, srv)
        port.close()
    assert host.open_handles() == []


def test_host_cleanup_aborts_pending_io(spec: str, no_leaks: None) -> None:
    with wspframe.Host(chains=[spec], config=False, providers=PROVIDERS) as host:
        entries = host.entries_for(spec)
        srv = host.socket(protocol_info=entries[0], flags=WSA_FLAG_OVERLAPPED)
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        a = Overlapped()
        srv.accept_overlapped(a)  # nobody connects
        udp = host.socket(protocol_info=entries[1], flags=WSA_FLAG_OVERLAPPED)
        udp.bind(("127.0.0.1", 0))
        ev = Event()
        ov = Overlapped(ev)
        udp.recvfrom_overlapped(10, ov)  # nobody sends
        assert not ov.done() and not a.done()
        # No close: the last cleanup must abort both.
    assert ev.is_set() and ov.error == C.WSA_OPERATION_ABORTED
    assert a.error == C.WSA_OPERATION_ABORTED


# -- the layered-provider rules -------------------------------------------------------------
@pytest.mark.parametrize("base_name", ["memory", "tcpip"])
def test_a_layer_post_processes_completed_receives(base_name: str) -> None:
    spec = f"hop,shout,{base_name}"
    with wspframe.Host(chains=[spec], config=False, providers=PROVIDERS) as host:
        srv, cli, conn = stream_pair(host, spec)
        port = CompletionPort().associate(conn, key=5)
        ov = Overlapped()
        conn.recv_overlapped(100, ov)
        cli.sendall(b"quiet words")
        c = port.get(10)
        assert c.overlapped is ov and c.nbytes == 11
        assert ov.data == b"QUIET WORDS"
        close_all(cli, conn, srv)
        port.close()


def test_a_layer_that_skips_substitution_loses_the_port_notification() -> None:
    spec = "careless,memory"
    with wspframe.Host(chains=[spec, "hop,memory"], config=False, providers=PROVIDERS) as host:
        # The careless layer: the base completes the client's overlapped against
        # its own handle, which no port is associated with.
        srv, cli, conn = stream_pair(host, spec)
        port = CompletionPort().associate(conn, key=1)
        ov = Overlapped()
        conn.recv_overlapped(100, ov)
        cli.sendall(b"lost?")
        assert ov.wait(10) and ov.data == b"lost?"
        with pytest.raises(TimeoutError):
            port.get(0.2)  # the port never hears of it
        close_all(cli, conn, srv)
        # The same through a layer that keeps the default: the port hears.
        srv, cli, conn = stream_pair(host, "hop,memory")
        port.close()
        port = CompletionPort().associate(conn, key=2)
        ov = Overlapped()
        conn.recv_overlapped(100, ov)
        cli.sendall(b"heard")
        assert port.get(10).overlapped is ov
        close_all(cli, conn, srv)
        port.close()


# -- stress ---------------------------------------------------------------------------------
@pytest.mark.parametrize("base_name", ["memory", "tcpip"])
def test_stress_four_threads_two_thousand_operations_each(base_name: str, no_leaks: None) -> None:
    spec = f"hop[n=1],observe,passthrough,{base_name}"  # a 3-layer chain
    threads_n, ops = 4, 2000
    with wspframe.Host(chains=[spec], config=False, providers=PROVIDERS) as host:
        port = CompletionPort()
        pairs = []
        for i in range(threads_n):
            srv, cli, conn = stream_pair(host, spec)
            port.associate(cli, key=100 + i)
            port.associate(conn, key=200 + i)
            pairs.append((srv, cli, conn))
        errors: list[BaseException] = []
        sent = [bytearray() for _ in range(threads_n)]

        def worker(i: int) -> None:
            try:
                _, cli, conn = pairs[i]
                for n in range(ops // 2):
                    data = f"{i}:{n};".encode()
                    sent[i] += data
                    cli.send_overlapped(data, Overlapped())
                    conn.recv_overlapped(len(data), Overlapped())
            except BaseException as exc:  # reported below
                errors.append(exc)

        workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
        for t in workers:
            t.start()
        received = {200 + i: bytearray() for i in range(threads_n)}
        counts: dict[int, int] = {}
        seen: set[Overlapped] = set()  # holds them, so ids cannot be reused
        deadline = time.monotonic() + 60
        total = threads_n * ops
        done = 0
        while done < total and time.monotonic() < deadline:
            for c in port.get_many(256, timeout=10):
                assert c.overlapped not in seen, "a completion was delivered twice"
                seen.add(c.overlapped)
                assert c.error == 0, c
                counts[c.key] = counts.get(c.key, 0) + 1
                if c.key >= 200:
                    received[c.key] += c.overlapped.data
                done += 1
        for t in workers:
            t.join(10)
        assert not errors
        assert done == total
        assert counts == {k: ops // 2 for k in [*range(100, 104), *range(200, 204)]}
        with pytest.raises(TimeoutError):
            port.get(0.05)
        # Byte-exact end to end, whatever order the receives completed in.
        for i in range(threads_n):
            assert sorted(received[200 + i]) == sorted(sent[i])
        for trio in pairs:
            close_all(*trio)
        port.close()


# -- redirected handles ----------------------------------------------------------------------
def test_os_read_write_and_select_on_a_memory_handle(no_leaks: None) -> None:
    with wspframe.Host(config=False) as host:
        entry = host.entries_for("memory")[0]
        srv = host.socket(protocol_info=entry)
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        cli = host.socket(protocol_info=entry)
        cli.connect(srv.getsockname())
        conn, _ = srv.accept()
        conn.settimeout(10)
        assert not cli.is_ifs and cli.redirect()
        fd = cli.fileno()
        assert os.write(fd, b"written with os.write") == 21
        assert conn.recv(100) == b"written with os.write"
        assert select.select([fd], [], [], 0)[0] == []
        conn.sendall(b"read with os.read")
        assert select.select([fd], [], [], 10)[0] == [fd]
        assert os.read(fd, 100) == b"read with os.read"
        conn.close()  # end of stream reaches os.read as EOF
        assert select.select([fd], [], [], 10)[0] == [fd]
        assert os.read(fd, 100) == b""
        cli.close()
        srv.close()


def test_ifs_handles_need_no_redirection(host: wspframe.Host, spec: str) -> None:
    with host.socket(protocol_info=host.entries_for(spec)[0]) as s:
        assert s.redirect() is (not s.is_ifs)
