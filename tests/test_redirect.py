"""The redirector (``_redirect.py``): ``os.read``/``os.write`` on redirected
minted handles keep the stream whole and in order both ways, carry end of
stream and errors across, apply flow control, and leave nothing behind."""

from __future__ import annotations

import os
import random
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import wspframe
from wspframe import LayeredProvider, _redirect

CHAINS = ["memory", "hop,memory"]


class Hop(LayeredProvider):
    """A non-IFS layer: its own minted handle, completions relayed by substitutes."""

    name = "hop"
    ifs = False


@pytest.fixture(params=CHAINS)
def chain(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def host(chain: str) -> Iterator[wspframe.Host]:
    with wspframe.Host(chains=[chain], config=False, providers=[Hop]) as h:
        yield h


def pair(host: wspframe.Host, chain: str) -> tuple[Any, Any]:
    entry = host.entries_for(chain)[0]
    with host.socket(protocol_info=entry) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        cli = host.socket(protocol_info=entry)
        cli.connect(srv.getsockname())
        conn, _ = srv.accept()
    for s in (cli, conn):
        s.settimeout(20)
    return cli, conn


def read_exactly(fd: int, n: int, timeout: float = 20) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout
    while len(out) < n:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            raise TimeoutError(f"got {len(out)} of {n} bytes")
        chunk = os.read(fd, min(n - len(out), 1 << 20))
        if not chunk:
            raise EOFError(f"end of stream after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def read_to_eof(fd: int, timeout: float = 20) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            raise TimeoutError(f"no end of stream after {len(out)} bytes")
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return bytes(out)
        out += chunk


def write_all(fd: int, data: bytes, sizes: random.Random | None = None) -> None:
    view = memoryview(data)
    while view:
        n = sizes.randint(1, 200_000) if sizes is not None else len(view)
        view = view[os.write(fd, view[:n]) :]


def shut_wr(fd: int) -> None:
    s = socket.socket(fileno=os.dup(fd))
    try:
        s.shutdown(socket.SHUT_WR)
    finally:
        s.close()


def payload(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


# -- the stream -----------------------------------------------------------------------------
def test_a_stream_both_ways_at_once_arrives_whole_and_in_order(
    host: wspframe.Host, chain: str
) -> None:
    cli, conn = pair(host, chain)
    assert cli.redirect() and conn.redirect()
    a, b = cli.fileno(), conn.fileno()
    up, down = payload(3_000_000, 1), payload(2_000_000, 2)
    got: dict[str, bytes] = {}

    def reader(name: str, fd: int, n: int) -> None:
        got[name] = read_exactly(fd, n)

    threads = [
        threading.Thread(target=write_all, args=(a, up, random.Random(3))),
        threading.Thread(target=write_all, args=(b, down, random.Random(4))),
        threading.Thread(target=reader, args=("up", b, len(up))),
        threading.Thread(target=reader, args=("down", a, len(down))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert got.get("up") == up
    assert got.get("down") == down
    cli.close()
    conn.close()


def test_redirected_handle_against_the_socket_api(host: wspframe.Host, chain: str) -> None:
    cli, conn = pair(host, chain)
    cli.redirect()
    fd = cli.fileno()
    data = payload(1_500_000, 5)
    writer = threading.Thread(target=write_all, args=(fd, data, random.Random(6)))
    writer.start()
    received = bytearray()
    while len(received) < len(data):
        received += conn.recv(1 << 20)
    writer.join(20)
    assert bytes(received) == data
    sender = threading.Thread(target=conn.sendall, args=(data,))
    sender.start()
    assert read_exactly(fd, len(data)) == data
    sender.join(20)
    cli.close()
    conn.close()


def test_many_small_round_trips_stay_in_step(host: wspframe.Host, chain: str) -> None:
    cli, conn = pair(host, chain)
    cli.redirect()
    conn.redirect()
    a, b = cli.fileno(), conn.fileno()
    for i in range(300):
        msg = i.to_bytes(4, "big") * (1 + i % 7)
        assert os.write(a, msg) == len(msg)
        assert read_exactly(b, len(msg)) == msg
        assert os.write(b, msg[::-1]) == len(msg)
        assert read_exactly(a, len(msg)) == msg[::-1]
    cli.close()
    conn.close()


def test_several_redirected_pairs_do_not_mix(host: wspframe.Host, chain: str) -> None:
    pairs = [pair(host, chain) for _ in range(6)]
    for cli, conn in pairs:
        cli.redirect()
        conn.redirect()
    datas = [payload(300_000, 10 + i) for i in range(len(pairs))]
    writers = [
        threading.Thread(target=write_all, args=(cli.fileno(), d, random.Random(i)))
        for i, ((cli, _), d) in enumerate(zip(pairs, datas, strict=True))
    ]
    for w in writers:
        w.start()
    for (_, conn), d in zip(pairs, datas, strict=True):
        assert read_exactly(conn.fileno(), len(d)) == d
    for w in writers:
        w.join(20)
    for cli, conn in pairs:
        cli.close()
        conn.close()


# -- flow control ---------------------------------------------------------------------------
def test_a_peer_that_does_not_read_stops_the_writer_then_everything_arrives(
    host: wspframe.Host, chain: str
) -> None:
    cli, conn = pair(host, chain)
    cli.redirect()
    fd = cli.fileno()
    os.set_blocking(fd, False)
    data = payload(64 * 1024 * 1024, 7)
    sent = 0
    deadline = time.monotonic() + 20
    while sent < len(data):  # fills the handle, the pump and the provider
        try:
            sent += os.write(fd, data[sent : sent + 65536])
        except BlockingIOError:
            if select.select([], [fd], [], 0.5)[1]:
                continue
            break
        assert time.monotonic() < deadline
    assert 0 < sent < len(data), "the writer was never held back"
    received = bytearray()
    while len(received) < sent:
        received += conn.recv(1 << 20)
    assert bytes(received) == data[:sent]
    cli.close()
    conn.close()


def test_an_application_that_does_not_read_holds_the_stream_back(
    host: wspframe.Host, chain: str
) -> None:
    cli, conn = pair(host, chain)
    cli.redirect()
    conn.settimeout(0.0)
    data = payload(64 * 1024 * 1024, 8)
    sent = 0
    deadline = time.monotonic() + 20
    while sent < len(data) and time.monotonic() < deadline:
        try:
            sent += conn.send(data[sent : sent + 262144])
        except wspframe.WSAError:
            time.sleep(0.05)
            try:
                sent += conn.send(data[sent : sent + 262144])
            except wspframe.WSAError:
                break
    assert 0 < sent < len(data), "the sender was never held back"
    assert read_exactly(cli.fileno(), sent) == data[:sent]
    cli.close()
    conn.close()


# -- end of stream and errors ---------------------------------------------------------------
def test_end_of_stream_follows_the_data_both_ways(host: wspframe.Host, chain: str) -> None:
    cli, conn = pair(host, chain)
    cli.redirect()
    fd = cli.fileno()
    data = payload(700_000, 9)

    def write_then_shut() -> None:
        write_all(fd, data)
        shut_wr(fd)  # the application's end of file becomes shutdown(SD_SEND)

    writer = threading.Thread(target=write_then_shut)
    writer.start()
    received = bytearray()
    while chunk := conn.recv(1 << 20):
        received += chunk
    writer.join(20)
    assert bytes(received) == data

    def send_then_shut() -> None:
        conn.sendall(data[::-1])
        conn.shutdown(wspframe.SD_SEND)

    sender = threading.Thread(target=send_then_shut)
    sender.start()
    assert read_to_eof(fd) == data[::-1]
    sender.join(20)
    cli.close()
    conn.close()


def test_closing_the_peer_ends_the_stream_on_both_redirected_ends(
    host: wspframe.Host, chain: str
) -> None:
    cli, conn = pair(host, chain)
    cli.redirect()
    conn.redirect()
    a, b = cli.fileno(), conn.fileno()
    os.write(b, b"last words")
    shut_wr(b)
    assert read_to_eof(a) == b"last words"
    shut_wr(a)
    assert read_to_eof(b) == b""
    cli.close()
    conn.close()


def test_a_reset_connection_refuses_the_applications_writes(
    host: wspframe.Host, chain: str
) -> None:
    cli, conn = pair(host, chain)
    cli.redirect()
    fd = cli.fileno()
    conn.sendall(b"delivered")
    conn.close()  # the redirector took the data: a clean close, then a reset on sending
    deadline = time.monotonic() + 20
    with pytest.raises(BrokenPipeError):
        while time.monotonic() < deadline:
            os.write(fd, b"x" * 1000)
            time.sleep(0.01)
    assert read_to_eof(fd) == b"delivered"  # then end of stream
    cli.close()


# -- going away -----------------------------------------------------------------------------
def test_closing_while_data_flows_leaves_nothing_behind(no_leaks: None, chain: str) -> None:
    with wspframe.Host(chains=[chain], config=False, providers=[Hop]) as host:
        cli, conn = pair(host, chain)
        cli.redirect()
        conn.redirect()
        a = cli.fileno()
        stop = threading.Event()

        def pump() -> None:
            try:
                while not stop.is_set():
                    os.write(a, b"y" * 65536)
            except OSError:
                pass

        writer = threading.Thread(target=pump)
        writer.start()
        time.sleep(0.2)
        conn.close()  # resets the stream under the writer
        stop.set()
        writer.join(20)
        assert not writer.is_alive()
        cli.close()


def test_host_cleanup_stops_the_redirector_with_sockets_open(no_leaks: None) -> None:
    with wspframe.Host(config=False) as host:
        cli, conn = pair(host, "memory")
        cli.redirect()
        conn.redirect()
        os.write(cli.fileno(), b"in flight")
        assert read_exactly(conn.fileno(), 9) == b"in flight"
        os.write(cli.fileno(), b"left unread")
    assert host._redirector is None


def test_redirect_twice_is_one_redirection(host: wspframe.Host, chain: str) -> None:
    cli, conn = pair(host, chain)
    assert cli.redirect() and cli.redirect()
    os.write(cli.fileno(), b"once")
    assert conn.recv(100) == b"once"
    cli.close()
    conn.close()


def test_the_selectors_fallback_where_epoll_is_missing(
    monkeypatch: pytest.MonkeyPatch, no_leaks: None
) -> None:
    monkeypatch.setattr(_redirect, "_new_poller", _redirect._Selector)
    with wspframe.Host(config=False) as host:
        cli, conn = pair(host, "memory")
        cli.redirect()
        conn.redirect()
        assert isinstance(host._redirector._poller, _redirect._Selector)  # type: ignore[union-attr]
        a, b = cli.fileno(), conn.fileno()
        for i in range(50):
            os.write(a, b"ping %d" % i)
            assert read_exactly(b, len(b"ping %d" % i)) == b"ping %d" % i
        data = payload(3_000_000, 12)
        writer = threading.Thread(target=write_all, args=(a, data, random.Random(13)))
        writer.start()
        assert read_exactly(b, len(data)) == data
        writer.join(20)
        shut_wr(a)
        assert read_to_eof(b) == b""
        cli.close()
        conn.close()
