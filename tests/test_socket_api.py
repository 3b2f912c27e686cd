"""One behavioural suite for the Socket API, run against both base providers,
directly and through a full-length chain of pass-through layers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import wspframe
from wspframe import AF_INET, AF_INET6, SOCK_DGRAM, SOCK_STREAM, WSAErrorCode
from wspframe._spi import LayeredProvider

C = WSAErrorCode


class Relay(LayeredProvider):
    """Overrides every operation with the default pass-through, so each one
    really runs through the layer (the ``passthrough`` layer is skipped)."""

    name = "relay"

    def configure(self, options: Any) -> None:
        pass

    def bind(self, s, address):  # type: ignore[no-untyped-def]
        return super().bind(s, address)

    def listen(self, s, backlog):  # type: ignore[no-untyped-def]
        return super().listen(s, backlog)

    def connect(self, s, address):  # type: ignore[no-untyped-def]
        return super().connect(s, address)

    def send(self, s, data, flags):  # type: ignore[no-untyped-def]
        return super().send(s, data, flags)

    def recv(self, s, bufsize, flags):  # type: ignore[no-untyped-def]
        return super().recv(s, bufsize, flags)

    def recv_into(self, s, buffer, nbytes, flags):  # type: ignore[no-untyped-def]
        return super().recv_into(s, buffer, nbytes, flags)

    def sendto(self, s, data, flags, address):  # type: ignore[no-untyped-def]
        return super().sendto(s, data, flags, address)

    def recvfrom(self, s, bufsize, flags):  # type: ignore[no-untyped-def]
        return super().recvfrom(s, bufsize, flags)

    def recvfrom_into(self, s, buffer, nbytes, flags):  # type: ignore[no-untyped-def]
        return super().recvfrom_into(s, buffer, nbytes, flags)

    def shutdown(self, s, how):  # type: ignore[no-untyped-def]
        return super().shutdown(s, how)

    def getsockname(self, s):  # type: ignore[no-untyped-def]
        return super().getsockname(s)

    def getpeername(self, s):  # type: ignore[no-untyped-def]
        return super().getpeername(s)

    def getsockopt(self, s, level, option, buflen):  # type: ignore[no-untyped-def]
        return super().getsockopt(s, level, option, buflen)

    def setsockopt(self, s, level, option, value):  # type: ignore[no-untyped-def]
        return super().setsockopt(s, level, option, value)

    def ioctl(self, s, code, arg):  # type: ignore[no-untyped-def]
        return super().ioctl(s, code, arg)

    def settimeout(self, s, timeout):  # type: ignore[no-untyped-def]
        return super().settimeout(s, timeout)

    def select(self, next, r, w, x, timeout):  # type: ignore[no-untyped-def]
        return super().select(next, r, w, x, timeout)


SIX_LAYERS = "relay[n=1],passthrough[tag=2],relay[n=3],observe,relay[n=5],passthrough[tag=6]"
CHAINS = ["{base}", f"{SIX_LAYERS},{{base}}"]
LOOPBACK = {AF_INET: "127.0.0.1", AF_INET6: "::1"}


@pytest.fixture(params=["tcpip", "memory"])
def base(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=CHAINS, ids=["bare", "7-long"])
def spec(request: pytest.FixtureRequest, base: str) -> str:
    return str(request.param).format(base=base)


@pytest.fixture
def host(spec: str) -> Iterator[wspframe.Host]:
    with wspframe.Host(chains=[spec], config=False, providers=[Relay]) as h:
        yield h


@pytest.fixture
def make(host: wspframe.Host, spec: str) -> Callable[..., wspframe.Socket]:
    entries = host.entries_for(spec)

    def factory(af: int = AF_INET, type_: int = SOCK_STREAM) -> wspframe.Socket:
        entry = next(e for e in entries if e.address_family == af and e.socket_type == type_)
        return host.socket(af, type_, 0, protocol_info=entry)

    return factory


def pair(make: Callable[..., wspframe.Socket], af: int = AF_INET) -> tuple[Any, Any, Any]:
    srv = make(af)
    srv.bind((LOOPBACK[af], 0))
    srv.listen(4)
    cli = make(af)
    cli.settimeout(5)
    cli.connect(srv.getsockname())
    conn, _ = srv.accept()
    conn.settimeout(5)
    return srv, cli, conn


def code_of(fn: Callable[[], object]) -> int:
    with pytest.raises(wspframe.WSAError) as info:
        fn()
    return info.value.wsa_code


# -- streams ---------------------------------------------------------------------------
@pytest.mark.parametrize("af", [AF_INET, AF_INET6])
def test_stream_conversation(make: Callable[..., wspframe.Socket], spec: str, af: int) -> None:
    srv, cli, conn = pair(make, af)
    assert cli.getpeername()[:2] == srv.getsockname()[:2]
    assert conn.getpeername()[:2] == cli.getsockname()[:2]
    cli.sendall(b"ping" * 1000)
    got = b""
    while len(got) < 4000:
        got += conn.recv(65536)
    assert got == b"ping" * 1000
    assert conn.send(b"pong") == 4
    buf = bytearray(16)
    assert cli.recv_into(buf) == 4 and bytes(buf[:4]) == b"pong"
    conn.sendall(b"xyz")
    data, _ = cli.recvfrom(3)
    assert data == b"xyz"
    assert cli.chain[-1] == spec.split(",")[-1]
    for s in (cli, conn, srv):
        s.close()


def test_large_transfer_with_flow_control(make: Callable[..., wspframe.Socket]) -> None:
    srv, cli, conn = pair(make)
    payload = bytes(range(256)) * 4096  # 1 MiB: more than any buffer holds
    received = bytearray()

    def reader() -> None:
        while len(received) < len(payload):
            chunk = conn.recv(65536)
            if not chunk:
                break
            received.extend(chunk)

    t = threading.Thread(target=reader)
    t.start()
    cli.sendall(payload)
    t.join(20)
    assert not t.is_alive()
    assert bytes(received) == payload
    for s in (cli, conn, srv):
        s.close()


def test_shutdown_each_direction(make: Callable[..., wspframe.Socket]) -> None:
    srv, cli, conn = pair(make)
    cli.sendall(b"last")
    cli.shutdown(wspframe.SD_SEND)
    assert conn.recv(10) == b"last"
    assert conn.recv(10) == b""  # end of stream
    assert code_of(lambda: cli.send(b"more")) == C.WSAESHUTDOWN
    conn.sendall(b"still open")  # the other direction still works
    assert cli.recv(10) == b"still open"
    with pytest.raises(wspframe.WSAError) as info:
        cli.shutdown(7)
    assert info.value.wsa_code == C.WSAEINVAL
    for s in (cli, conn, srv):
        s.close()


def test_close_with_unread_data_resets_the_peer(make: Callable[..., wspframe.Socket]) -> None:
    srv, cli, conn = pair(make)
    cli.sendall(b"unread")
    conn.recv(1)  # make sure it arrived, then leave the rest unread
    conn.close()
    with pytest.raises(ConnectionResetError) as info:
        for _ in range(100):  # the reset shows on the next recv (or send)
            cli.sendall(b"x" * 1024)
            cli.recv(1)
    assert info.value.wsa_code == C.WSAECONNRESET  # type: ignore[attr-defined]
    cli.close()
    srv.close()


def test_connection_refused(make: Callable[..., wspframe.Socket]) -> None:
    probe = make()
    probe.bind(("127.0.0.1", 0))
    address = probe.getsockname()
    probe.close()  # nobody listens there now
    cli = make()
    assert code_of(lambda: cli.connect(address)) == C.WSAECONNREFUSED
    cli.close()
    cli = make()
    assert cli.connect_ex(address) == C.WSAECONNREFUSED
    cli.close()


def test_address_in_use_and_names(make: Callable[..., wspframe.Socket]) -> None:
    a = make()
    a.bind(("127.0.0.1", 0))
    a.listen()
    b = make()
    assert code_of(lambda: b.bind(a.getsockname())) == C.WSAEADDRINUSE
    assert code_of(b.getpeername) == C.WSAENOTCONN
    assert a.getsockname()[1] > 0
    a.close()
    b.close()


# -- blocking, non-blocking, timeouts ------------------------------------------------------
def test_nonblocking_and_timeouts(make: Callable[..., wspframe.Socket]) -> None:
    srv, cli, conn = pair(make)
    cli.setblocking(False)
    assert not cli.getblocking() and cli.gettimeout() == 0.0
    with pytest.raises(BlockingIOError) as info:
        cli.recv(10)
    assert info.value.wsa_code == C.WSAEWOULDBLOCK  # type: ignore[attr-defined]
    cli.settimeout(0.05)
    assert cli.gettimeout() == 0.05
    with pytest.raises(TimeoutError) as tinfo:
        cli.recv(10)
    assert tinfo.value.wsa_code == C.WSAETIMEDOUT  # type: ignore[attr-defined]
    srv.settimeout(0.05)
    assert code_of(srv.accept) == C.WSAETIMEDOUT
    cli.setblocking(True)
    assert cli.gettimeout() is None and cli.getblocking()
    assert code_of(lambda: cli.settimeout(-1)) == C.WSAEINVAL
    for s in (cli, conn, srv):
        s.close()


def test_ioctl_fionbio_and_fionread(make: Callable[..., wspframe.Socket]) -> None:
    srv, cli, conn = pair(make)
    cli.sendall(b"12345")
    for _ in range(200):  # data may take a moment to arrive over the OS
        if conn.ioctl(wspframe.FIONREAD) == 5:
            break
        threading.Event().wait(0.005)
    assert conn.ioctl(wspframe.FIONREAD) == 5
    conn.ioctl(wspframe.FIONBIO, 1)
    assert conn.recv(5) == b"12345"
    assert code_of(lambda: conn.recv(5)) == C.WSAEWOULDBLOCK
    assert code_of(lambda: conn.ioctl(0x12345678)) == C.WSAEINVAL
    for s in (cli, conn, srv):
        s.close()


def test_socket_options(make: Callable[..., wspframe.Socket]) -> None:
    s = make()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == SOCK_STREAM
    s.close()


# -- datagrams -------------------------------------------------------------------------------
@pytest.mark.parametrize("af", [AF_INET, AF_INET6])
def test_datagrams_keep_their_boundaries(make: Callable[..., wspframe.Socket], af: int) -> None:
    a = make(af, SOCK_DGRAM)
    b = make(af, SOCK_DGRAM)
    a.bind((LOOPBACK[af], 0))
    b.bind((LOOPBACK[af], 0))
    b.settimeout(5)
    for message in (b"one", b"two-two", b"3"):
        assert a.sendto(message, b.getsockname()) == len(message)
    got = [b.recvfrom(100) for _ in range(3)]
    assert [g[0] for g in got] == [b"one", b"two-two", b"3"]
    assert got[0][1][:2] == a.getsockname()[:2]
    a.sendto(b"into", 0, b.getsockname())
    buf = bytearray(10)
    n, addr = b.recvfrom_into(buf)
    assert bytes(buf[:n]) == b"into" and addr[:2] == a.getsockname()[:2]
    a.connect(b.getsockname())
    a.send(b"connected")
    assert b.recv(100) == b"connected"
    a.close()
    b.close()


def test_datagram_size_limit(make: Callable[..., wspframe.Socket]) -> None:
    a = make(AF_INET, SOCK_DGRAM)
    limit = a.protocol_info.message_size
    assert limit > 0
    with pytest.raises(wspframe.WSAError) as info:
        a.sendto(b"x" * (limit + 1), ("127.0.0.1", 9))
    assert info.value.wsa_code == C.WSAEMSGSIZE
    a.close()


# -- bad input -------------------------------------------------------------------------------
def test_bad_input_gets_the_right_error(make: Callable[..., wspframe.Socket]) -> None:
    s = make()
    with pytest.raises(wspframe.WSAError, match=r"\('127\.0\.0\.1',\)") as info:
        s.connect(("127.0.0.1",))
    assert info.value.wsa_code == C.WSAEFAULT
    with pytest.raises(wspframe.WSAError, match="-1") as info:
        s.recv(-1)
    assert info.value.wsa_code == C.WSAEINVAL
    assert code_of(lambda: s.sendto(b"x", ("127.0.0.1", 9))) == C.WSAENOTCONN
    assert code_of(lambda: s.listen(-3)) == C.WSAEINVAL
    s.close()


def test_closed_socket(make: Callable[..., wspframe.Socket]) -> None:
    s = make()
    handle = s.fileno()
    s.close()
    s.close()  # idempotent
    assert s.fileno() == -1 and s.closed
    assert "closed" in repr(s)
    for op in (
        lambda: s.send(b"x"),
        lambda: s.recv(1),
        lambda: s.bind(("127.0.0.1", 0)),
        s.getsockname,
        lambda: s.sendto(b"x", ("127.0.0.1", 9)),
    ):
        assert code_of(op) == C.WSAENOTSOCK
    assert handle not in s.protocol_info.chain  # sanity: ids and handles differ


# -- identity, duplicate, select ---------------------------------------------------------------------
def test_repr_and_identity(make: Callable[..., wspframe.Socket], host: wspframe.Host) -> None:
    with make() as s:
        text = repr(s)
        assert f"handle={s.fileno()}" in text
        assert f"entry={s.protocol_info.catalog_entry_id}" in text
        assert str(s.protocol_info.chain) in text
        assert (s.family, s.type) == (AF_INET, SOCK_STREAM)
        assert s.is_ifs == (s.chain[-1] == "tcpip")
    assert s.closed


def test_duplicate_shares_the_socket_once(
    make: Callable[..., wspframe.Socket], host: wspframe.Host
) -> None:
    srv, cli, conn = pair(make)
    shared = cli.duplicate()
    dup = host.socket(protocol_info=shared)
    assert code_of(lambda: host.socket(protocol_info=shared)) == C.WSAEINVAL  # usable once
    assert dup.fileno() != cli.fileno()
    cli.close()  # the socket lives on through the other descriptor
    dup.sendall(b"via dup")
    assert conn.recv(7) == b"via dup"
    dup.close()  # the last descriptor closes the socket
    assert conn.recv(1) == b""
    conn.close()
    srv.close()
    assert host.open_handles() == []


def test_select(make: Callable[..., wspframe.Socket], host: wspframe.Host) -> None:
    srv, cli, conn = pair(make)
    r, w, _ = host.select([conn, cli], [cli], [], 0)
    assert r == [] and w == [cli]
    cli.sendall(b"!")
    r, _, _ = host.select([conn, cli], [], [], 5)
    assert r == [conn]
    assert code_of(lambda: host.select([], [], [], 0)) == C.WSAEINVAL
    for s in (cli, conn, srv):
        s.close()


def test_address_strings(host: wspframe.Host, spec: str) -> None:
    entry = host.entries_for(spec)[0]
    assert host.address_to_string(("127.0.0.1", 80), entry) == "127.0.0.1:80"
    assert host.string_to_address("127.0.0.1:80", AF_INET, entry) == ("127.0.0.1", 80)
    v6 = next(e for e in host.entries_for(spec) if e.address_family == AF_INET6)
    assert host.address_to_string(("::1", 80, 0, 0), v6) == "[::1]:80"
    assert host.string_to_address("[::1]:80", AF_INET6, v6) == ("::1", 80, 0, 0)
    assert code_of(lambda: host.string_to_address("nonsense", AF_INET, entry)) == C.WSAEINVAL


# -- leaks -------------------------------------------------------------------------------
def test_nothing_leaks_after_cleanup(spec: str, no_leaks: None) -> None:
    with wspframe.Host(chains=[spec], config=False, providers=[Relay]) as host:
        entry = host.entries_for(spec)[0]
        srv = host.socket(protocol_info=entry)
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        cli = host.socket(protocol_info=entry)
        cli.connect(srv.getsockname())
        conn, _ = srv.accept()
        cli.sendall(b"left open on purpose")
        # No close: the host's last cleanup must close everything.
    assert cli.closed and conn.closed and srv.closed
    assert host.open_handles() == []


# -- interop with plain sockets ----------------------------------------------------------------
def test_tcpip_interoperates_with_plain_sockets() -> None:
    with wspframe.Host(config=False) as host:
        # wspframe server, plain client
        srv = host.socket(AF_INET, SOCK_STREAM, protocol_info=host.entries_for("tcpip")[0])
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        plain = socket.create_connection(srv.getsockname(), timeout=5)
        conn, _ = srv.accept()
        plain.sendall(b"from plain")
        assert conn.recv(10) == b"from plain"
        conn.sendall(b"from wsp")
        assert plain.recv(8) == b"from wsp"
        plain.close()
        conn.close()
        srv.close()
        # plain server, wspframe client
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        cli = host.socket(AF_INET, SOCK_STREAM, protocol_info=host.entries_for("tcpip")[0])
        cli.connect(listener.getsockname())
        other, _ = listener.accept()
        cli.sendall(b"hello")
        assert other.recv(5) == b"hello"
        other.sendall(b"back")
        assert cli.recv(4) == b"back"
        other.close()
        listener.close()
        cli.close()
        # datagrams both ways
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        u.settimeout(5)
        d = host.socket(AF_INET, SOCK_DGRAM, protocol_info=host.entries_for("tcpip")[1])
        d.bind(("127.0.0.1", 0))
        d.settimeout(5)
        d.sendto(b"dgram", u.getsockname())
        data, addr = u.recvfrom(10)
        assert data == b"dgram" and addr == d.getsockname()
        u.sendto(b"reply", d.getsockname())
        assert d.recvfrom(10) == (b"reply", u.getsockname())
        u.close()
        d.close()
