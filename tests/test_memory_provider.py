"""Tests of the ``memory`` base provider (``wspframe._memory``), through its SPI.

The provider is driven directly, without the host: a :class:`HandleTable`
and :class:`Upcalls` stand in for it.  Blocking peers run in threads that
are always joined with a timeout, and a fixture checks that none is left.
"""

from __future__ import annotations

import array
import contextlib
import os
import random
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from wspframe._constants import (
    AF_INET,
    AF_INET6,
    FIONBIO,
    FIONREAD,
    FROM_PROTOCOL_INFO,
    IPPROTO_TCP,
    IPPROTO_UDP,
    PFL,
    SD_BOTH,
    SD_RECEIVE,
    SD_SEND,
    SOCK_DGRAM,
    SOCK_STREAM,
    XP1,
    IoctlCode,
)
from wspframe._errors import WSAError, WSAErrorCode
from wspframe._handles import HandleTable, Upcalls
from wspframe._memory import MemoryNetwork, MemoryProvider, MemorySocket
from wspframe._protocol import ProtocolInfo

E = WSAErrorCode
SHORT = 0.05  # seconds: every timeout under test
JOIN = 5.0  # seconds: the most any helper thread may take

# Catalog ids the fake catalog hands out, in the order of MemoryProvider.protocols.
IDS = {("tcp", 4): 1001, ("udp", 4): 1002, ("tcp", 6): 1003, ("udp", 6): 1004}
LOOP = {4: "127.0.0.1", 6: "::1"}
ANY = {4: "0.0.0.0", 6: "::"}
FAMILY = {4: AF_INET, 6: AF_INET6}


def info_for(kind: str, version: int) -> ProtocolInfo:
    """The installed form of one template: its catalog id and a one-id chain."""
    template = {
        ("tcp", 4): MemoryProvider.protocols[0],
        ("udp", 4): MemoryProvider.protocols[1],
        ("tcp", 6): MemoryProvider.protocols[2],
        ("udp", 6): MemoryProvider.protocols[3],
    }[kind, version]
    cid = IDS[kind, version]
    return template.replace(catalog_entry_id=cid, chain=(cid,))


def addr(version: int, port: int, host: str | None = None) -> tuple[Any, ...]:
    """The address Python would show: a 4-tuple for IPv6."""
    host = LOOP[version] if host is None else host
    return (host, port) if version == 4 else (host, port, 0, 0)


class CountingUpcalls(Upcalls):
    """Upcalls that count handle creation and release, and can fail creation."""

    __slots__ = ("closed", "created", "fail_create")

    def __init__(self, table: HandleTable) -> None:
        super().__init__(table)
        self.created: list[int] = []
        self.closed: list[int] = []
        self.fail_create = False

    def create_socket_handle(self, catalog_entry_id: int, context: Any) -> int:
        if self.fail_create:
            raise WSAError(E.WSAENOBUFS, "injected failure")
        handle = super().create_socket_handle(catalog_entry_id, context)
        self.created.append(handle)
        return handle

    def close_socket_handle(self, handle: int) -> None:
        self.closed.append(handle)
        super().close_socket_handle(handle)


class Env:
    """A started provider over a fake host table, with socket helpers.

    Sockets made by the helpers get a safety timeout (``JOIN``) so that a
    regression fails a test instead of hanging it; tests of blocking without a
    timeout set ``None`` themselves and block only in :class:`Worker` threads.
    """

    safety: float | None = JOIN

    def __init__(self) -> None:
        self.table = HandleTable(lambda cid: cid in IDS.values())
        self.upcalls = CountingUpcalls(self.table)
        self.p = MemoryProvider()
        self.p.startup(self.upcalls)

    def tcp(self, version: int = 4) -> MemorySocket:
        s = self.p.socket(0, 0, 0, info_for("tcp", version), 0, 0)
        self.p.settimeout(s, self.safety)
        return s

    def udp(self, version: int = 4) -> MemorySocket:
        s = self.p.socket(0, 0, 0, info_for("udp", version), 0, 0)
        self.p.settimeout(s, self.safety)
        return s

    def listener(self, version: int = 4, backlog: int = 5) -> MemorySocket:
        s = self.tcp(version)
        self.p.bind(s, (LOOP[version], 0))
        self.p.listen(s, backlog)
        return s

    def pair(self, version: int = 4) -> tuple[MemorySocket, MemorySocket]:
        """A connected (client, server) pair; the listener is closed."""
        lst = self.listener(version)
        c = self.tcp(version)
        self.p.connect(c, self.p.getsockname(lst))
        s, _ = self.p.accept(lst)
        self.p.settimeout(s, self.safety)
        self.p.close_socket(lst)
        return c, s

    def udp_bound(self, version: int = 4) -> MemorySocket:
        s = self.udp(version)
        self.p.bind(s, (LOOP[version], 0))
        return s


class Worker:
    """Run ``fn(*args)`` in a daemon thread; ``join()`` asserts it finished."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn, *args), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self.result = fn(*args)
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = JOIN) -> Worker:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker thread did not finish"
        return self


def wait_blocked(p: MemoryProvider, count: int = 1) -> None:
    """Wait until ``count`` threads are blocked on the provider's network
    (parked in a blocked call, or waiting in select)."""
    deadline = time.monotonic() + JOIN
    while p.network._waiting + p.network._parked < count:
        assert time.monotonic() < deadline, "no thread blocked in the provider"
        time.sleep(0.001)


@contextlib.contextmanager
def wsa(code: int, match: str | None = None) -> Iterator[pytest.ExceptionInfo[WSAError]]:
    """Expect a WSAError with ``code`` (and ``match`` in its message)."""
    with pytest.raises(WSAError) as info:
        yield info
    assert info.value.wsa_code == code, f"expected {E(code).name}, got {info.value}"
    if match is not None:
        assert match in str(info.value), str(info.value)


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + JOIN
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(threading.enumerate()) - before, "a thread was left behind"


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.p.cleanup()
    assert len(e.table) == 0, "handles leaked"
    assert sorted(e.upcalls.created) == sorted(e.upcalls.closed)


@pytest.fixture(params=[4, 6], ids=["ipv4", "ipv6"])
def v(request: pytest.FixtureRequest) -> int:
    version: int = request.param
    return version


# -- protocol entries -------------------------------------------------------------


def test_protocol_entries() -> None:
    entries = MemoryProvider.protocols
    assert MemoryProvider.name == "memory"
    assert [e.name for e in entries] == [
        "memory [TCP/IP]",
        "memory [UDP/IP]",
        "memory [TCP/IPv6]",
        "memory [UDP/IPv6]",
    ]
    expected = [
        (AF_INET, SOCK_STREAM, IPPROTO_TCP, 0x66, PFL.MATCHES_PROTOCOL_ZERO, 16, 0),
        (AF_INET, SOCK_DGRAM, IPPROTO_UDP, 0x609, PFL.MATCHES_PROTOCOL_ZERO, 16, 65507),
        (AF_INET6, SOCK_STREAM, IPPROTO_TCP, 0x66, PFL.MATCHES_PROTOCOL_ZERO, 28, 0),
        (AF_INET6, SOCK_DGRAM, IPPROTO_UDP, 0x609, PFL.MATCHES_PROTOCOL_ZERO, 28, 65527),
    ]
    for entry, (af, typ, proto, xp1, pfl, size, msg) in zip(entries, expected, strict=True):
        assert (entry.address_family, entry.socket_type, entry.protocol) == (af, typ, proto)
        assert int(entry.service_flags) == xp1
        assert not entry.service_flags & XP1.IFS_HANDLES
        assert not entry.ifs
        assert entry.provider_flags == pfl
        assert entry.max_sockaddr == entry.min_sockaddr == size
        assert entry.message_size == msg
        assert entry.catalog_entry_id == 0
        assert entry.chain == ()
    assert MemoryProvider.MAX_DATAGRAM_V4 == 65507
    assert MemoryProvider.MAX_DATAGRAM_V6 == 65527
    assert MemoryProvider.BUFFER_SIZE == 256 * 1024


def test_each_provider_has_its_own_network() -> None:
    a, b = MemoryProvider(), MemoryProvider()
    assert isinstance(a.network, MemoryNetwork)
    assert a.network is not b.network
    assert a.network.is_up


# -- socket() and handles -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tcp", "udp"])
@pytest.mark.parametrize("wild", [0, FROM_PROTOCOL_INFO])
def test_socket_wildcards_take_the_entry_values(env: Env, v: int, kind: str, wild: int) -> None:
    info = info_for(kind, v)
    s = env.p.socket(wild, wild, wild, info, 0, 0)
    assert isinstance(s, MemorySocket)
    assert (s.family, s.type, s.protocol) == (FAMILY[v], info.socket_type, info.protocol)
    assert s.protocol_info is info
    explicit = env.p.socket(FAMILY[v], info.socket_type, info.protocol, info, 0, 0)
    assert explicit.type == info.socket_type
    for ctx in (s, explicit):
        env.p.close_socket(ctx)


def test_socket_mismatches(env: Env) -> None:
    tcp = info_for("tcp", 4)
    with wsa(E.WSAEAFNOSUPPORT, "12345"):
        env.p.socket(12345, 0, 0, tcp, 0, 0)
    with wsa(E.WSAEAFNOSUPPORT):
        env.p.socket(AF_INET6, 0, 0, tcp, 0, 0)
    with wsa(E.WSAESOCKTNOSUPPORT, str(int(SOCK_DGRAM))):
        env.p.socket(AF_INET, SOCK_DGRAM, 0, tcp, 0, 0)
    with wsa(E.WSAEPROTOTYPE, str(int(IPPROTO_UDP))):
        env.p.socket(AF_INET, SOCK_STREAM, IPPROTO_UDP, tcp, 0, 0)
    with wsa(E.WSAEPROTONOSUPPORT, "99"):
        env.p.socket(AF_INET, SOCK_STREAM, 99, tcp, 0, 0)
    with wsa(E.WSAEPROTOTYPE):
        env.p.socket(0, 0, IPPROTO_TCP, info_for("udp", 6), 0, 0)
    assert len(env.table) == 0


def test_socket_with_a_foreign_entry_is_refused(env: Env) -> None:
    foreign = ProtocolInfo("other [RAW]", AF_INET, socket.SOCK_RAW, 255, catalog_entry_id=1001)
    with wsa(E.WSAEINVAL):
        env.p.socket(0, 0, 0, foreign, 0, 0)


def test_handles_are_real_descriptors_registered_with_the_context(env: Env, v: int) -> None:
    t, u = env.tcp(v), env.udp(v)
    assert t.handle != u.handle
    for s, kind in ((t, "tcp"), (u, "udp")):
        assert stat.S_ISSOCK(os.fstat(s.handle).st_mode)
        record = env.table.get(s.handle)
        assert record is not None
        assert not record.ifs
        assert record.owner == IDS[kind, v]
        assert env.upcalls.query_socket_handle_context(s.handle) is s
    assert len(env.table) == 2
    env.p.close_socket(t)
    env.p.close_socket(u)
    assert len(env.table) == 0
    assert env.upcalls.closed == [t.handle, u.handle]


def test_context_uses_slots(env: Env) -> None:
    s = env.tcp()
    assert not hasattr(s, "__dict__")
    with pytest.raises(AttributeError):
        s.anything = 1  # type: ignore[attr-defined]
    assert "MemorySocket" in repr(s)


def test_close_releases_the_handle_exactly_once(env: Env) -> None:
    s = env.tcp()
    env.p.close_socket(s)
    with wsa(E.WSAENOTSOCK):
        env.p.close_socket(s)
    assert env.upcalls.closed == [s.handle]


def test_accepted_socket_gets_its_own_handle_under_the_listener_id(env: Env, v: int) -> None:
    lst = env.listener(v)
    c = env.tcp(v)
    env.p.connect(c, env.p.getsockname(lst))
    assert len(env.table) == 2  # the server side has no handle before accept
    s, peer = env.p.accept(lst)
    assert s.handle not in (lst.handle, c.handle)
    assert stat.S_ISSOCK(os.fstat(s.handle).st_mode)
    record = env.table.get(s.handle)
    assert record is not None and record.owner == IDS["tcp", v]
    assert env.upcalls.query_socket_handle_context(s.handle) is s
    assert s.protocol_info is lst.protocol_info
    assert peer == env.p.getsockname(c) == env.p.getpeername(s)
    assert env.p.getpeername(c) == env.p.getsockname(lst) == env.p.getsockname(s)
    assert len(env.table) == 3


def test_failed_handle_creation_on_accept_resets_the_client(env: Env) -> None:
    lst = env.listener()
    c = env.tcp()
    env.p.connect(c, env.p.getsockname(lst))
    env.upcalls.fail_create = True
    with wsa(E.WSAENOBUFS):
        env.p.accept(lst)
    env.upcalls.fail_create = False
    with wsa(E.WSAECONNRESET):
        env.p.recv(c, 10, 0)
    assert len(env.table) == 2


def test_socket_fails_cleanly_when_no_handle(env: Env) -> None:
    env.upcalls.fail_create = True
    with wsa(E.WSAENOBUFS):
        env.tcp()
    assert env.p.network.sockets() == []


CLOSED_OPS: list[tuple[str, tuple[Any, ...]]] = [
    ("bind", (("127.0.0.1", 0),)),
    ("listen", (1,)),
    ("accept", ()),
    ("connect", (("127.0.0.1", 1),)),
    ("send", (b"x", 0)),
    ("recv", (1, 0)),
    ("recv_into", (bytearray(1), 0, 0)),
    ("sendto", (b"x", 0, ("127.0.0.1", 1))),
    ("recvfrom", (1, 0)),
    ("recvfrom_into", (bytearray(1), 0, 0)),
    ("shutdown", (SD_BOTH,)),
    ("getsockname", ()),
    ("getpeername", ()),
    ("getsockopt", (socket.SOL_SOCKET, socket.SO_TYPE, 0)),
    ("setsockopt", (socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)),
    ("ioctl", (FIONREAD, 0)),
    ("ioctl", (FIONBIO, 1)),
    ("settimeout", (1.0,)),
    ("duplicate_socket", ()),
]


@pytest.mark.parametrize("kind", ["tcp", "udp"])
@pytest.mark.parametrize(
    ("op", "args"), CLOSED_OPS, ids=[f"{o}-{i}" for i, (o, _) in enumerate(CLOSED_OPS)]
)
def test_operations_on_a_closed_socket(env: Env, kind: str, op: str, args: tuple[Any, ...]) -> None:
    s = env.tcp() if kind == "tcp" else env.udp()
    env.p.close_socket(s)
    with wsa(E.WSAENOTSOCK):
        getattr(env.p, op)(s, *args)


def test_operations_on_a_closed_connected_socket(env: Env) -> None:
    c, _ = env.pair()
    env.p.close_socket(c)
    for op, args in CLOSED_OPS:
        with wsa(E.WSAENOTSOCK):
            getattr(env.p, op)(c, *args)
    with wsa(E.WSAENOTSOCK):
        env.p.select([c], [], [], 0)


# -- bind and addresses -----------------------------------------------------------------


def test_bind_port_zero_gives_ephemeral_ports(env: Env, v: int) -> None:
    a, b, u = env.tcp(v), env.tcp(v), env.udp(v)
    env.p.bind(a, (LOOP[v], 0))
    env.p.bind(b, ("", 0))
    env.p.bind(u, ("localhost", 0))
    assert env.p.getsockname(a) == addr(v, 49152)
    assert env.p.getsockname(b) == addr(v, 49153, ANY[v])
    assert env.p.getsockname(u) == addr(v, 49154)


def test_bind_explicit_port_and_address_in_use(env: Env, v: int) -> None:
    a, b = env.tcp(v), env.tcp(v)
    env.p.bind(a, (LOOP[v], 5000))
    assert env.p.getsockname(a) == addr(v, 5000)
    with wsa(E.WSAEADDRINUSE, repr((LOOP[v], 5000))):
        env.p.bind(b, (LOOP[v], 5000))
    with wsa(E.WSAEADDRINUSE):
        env.p.bind(b, ("", 5000))  # the wildcard overlaps every address
    other = "127.0.0.2" if v == 4 else "fe80::1"
    env.p.bind(b, (other, 5000))  # another address on the same port is free
    assert env.p.getsockname(b)[:2] == (other, 5000)


def test_wildcard_bind_blocks_specific_addresses(env: Env) -> None:
    a, b = env.tcp(), env.tcp()
    env.p.bind(a, ("", 6000))
    with wsa(E.WSAEADDRINUSE):
        env.p.bind(b, ("10.1.2.3", 6000))


def test_port_spaces_are_separate_per_type_and_family(env: Env) -> None:
    socks = [env.tcp(4), env.udp(4), env.tcp(6), env.udp(6)]
    for s in socks:
        env.p.bind(s, ("", 7000))
    assert [env.p.getsockname(s)[1] for s in socks] == [7000] * 4


def test_port_is_free_again_after_close(env: Env) -> None:
    a = env.tcp()
    env.p.bind(a, ("127.0.0.1", 7100))
    env.p.close_socket(a)
    b = env.tcp()
    env.p.bind(b, ("127.0.0.1", 7100))


def test_reuseaddr(env: Env) -> None:
    a, b, c = env.tcp(), env.tcp(), env.tcp()
    for s in (a, b, c):
        env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    env.p.bind(a, ("127.0.0.1", 7200))
    env.p.bind(b, ("127.0.0.1", 7200))  # both reuse, nobody listens: allowed
    env.p.listen(a, 1)
    with wsa(E.WSAEADDRINUSE):
        env.p.listen(b, 1)  # one listener per address
    with wsa(E.WSAEADDRINUSE):
        env.p.bind(c, ("127.0.0.1", 7200))  # not over a listener
    d = env.tcp()
    env.p.setsockopt(d, socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    u1, u2 = env.udp(), env.udp()
    env.p.bind(u1, ("127.0.0.1", 7300))
    with wsa(E.WSAEADDRINUSE):
        env.p.bind(u2, ("127.0.0.1", 7300))  # only one of them asked for reuse


def test_connected_sockets_hold_their_port(env: Env) -> None:
    lst = env.tcp()
    env.p.bind(lst, ("127.0.0.1", 7400))
    env.p.listen(lst, 1)
    c = env.tcp()
    env.p.connect(c, ("127.0.0.1", 7400))
    s, _ = env.p.accept(lst)
    env.p.close_socket(lst)
    again = env.tcp()
    with wsa(E.WSAEADDRINUSE):
        env.p.bind(again, ("127.0.0.1", 7400))  # the accepted socket still uses it
    env.p.setsockopt(again, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with wsa(E.WSAEADDRINUSE):
        env.p.bind(again, ("127.0.0.1", 7400))  # the accepted socket did not ask for reuse
    env.p.close_socket(s)
    env.p.bind(again, ("127.0.0.1", 7400))


def test_bind_twice_is_invalid(env: Env) -> None:
    s = env.tcp()
    env.p.bind(s, ("127.0.0.1", 0))
    with wsa(E.WSAEINVAL, "('127.0.0.1', 0)"):
        env.p.bind(s, ("127.0.0.1", 0))


def test_connect_binds_then_bind_is_invalid(env: Env) -> None:
    lst = env.listener()
    c = env.tcp()
    env.p.connect(c, env.p.getsockname(lst))
    with wsa(E.WSAEINVAL):
        env.p.bind(c, ("127.0.0.1", 0))


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        ("x", "address must be a (host, port) tuple for AF_INET, got 'x'"),
        (("127.0.0.1",), "got ('127.0.0.1',)"),
        (["127.0.0.1", 80], "got ['127.0.0.1', 80]"),
        (("127.0.0.1", 80, 0, 0), "AF_INET, got"),
        (("127.0.0.1", "80"), "got '80'"),
        (("127.0.0.1", 65536), "got 65536"),
        (("127.0.0.1", -1), "got -1"),
        ((b"127.0.0.1", 80), "got b'127.0.0.1'"),
        (("example.com", 80), "got 'example.com'"),
        (("999.1.1.1", 80), "got '999.1.1.1'"),
    ],
)
def test_bad_ipv4_addresses(env: Env, address: Any, fragment: str) -> None:
    s = env.tcp()
    for op in (env.p.bind, env.p.connect):
        with wsa(E.WSAEFAULT, fragment):
            op(s, address)
    u = env.udp()
    with wsa(E.WSAEFAULT, fragment):
        env.p.sendto(u, b"x", 0, address)


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        ("x", "(host, port[, flowinfo[, scope_id]]) tuple for AF_INET6, got 'x'"),
        (("::1", 1, 0, 0, 0), "got ('::1', 1, 0, 0, 0)"),
        (("::1", 1, -1), "flowinfo must be an int in 0..1048575, got -1"),
        (("::1", 1, 0, "eth0"), "scope_id must be an int >= 0, got 'eth0'"),
    ],
)
def test_bad_ipv6_addresses(env: Env, address: Any, fragment: str) -> None:
    with wsa(E.WSAEFAULT, fragment):
        env.p.bind(env.tcp(6), address)


def test_address_of_the_wrong_family(env: Env) -> None:
    with wsa(E.WSAEFAULT, "is not an AF_INET6 address"):
        env.p.bind(env.tcp(6), ("127.0.0.1", 0))
    with wsa(E.WSAEFAULT, "is not an AF_INET address"):
        env.p.bind(env.tcp(4), ("::1", 0))
    with wsa(E.WSAEAFNOSUPPORT, "('127.0.0.1', 80)"):
        env.p.connect(env.tcp(6), ("127.0.0.1", 80))
    with wsa(E.WSAEAFNOSUPPORT):
        env.p.sendto(env.udp(4), b"x", 0, ("::1", 80))


def test_ipv6_addresses(env: Env) -> None:
    s = env.udp(6)
    env.p.bind(s, ("0:0:0:0:0:0:0:1", 8000, 0, 0))  # normalised
    assert env.p.getsockname(s) == ("::1", 8000, 0, 0)
    u = env.udp(6)
    env.p.bind(u, ("", 0))
    assert env.p.getsockname(u) == ("::", 49152, 0, 0)
    env.p.sendto(u, b"six", 0, ("::1", 8000, 5))
    data, sender = env.p.recvfrom(s, 10, 0)
    assert (data, sender) == (b"six", ("::1", 49152, 0, 0))


def test_getsockname_unbound_and_getpeername_unconnected(env: Env, v: int) -> None:
    for s in (env.tcp(v), env.udp(v)):
        with wsa(E.WSAEINVAL):
            env.p.getsockname(s)
        with wsa(E.WSAENOTCONN):
            env.p.getpeername(s)
    lst = env.listener(v)
    with wsa(E.WSAENOTCONN):
        env.p.getpeername(lst)


def test_address_conversions(env: Env) -> None:
    info4, info6 = info_for("tcp", 4), info_for("tcp", 6)
    assert env.p.address_to_string(("127.0.0.1", 80), info4) == "127.0.0.1:80"
    assert env.p.string_to_address("[::1]:80", 0, info6) == ("::1", 80, 0, 0)


# -- listen, accept, connect ---------------------------------------------------------------


def test_listen_requires_a_bound_stream_socket(env: Env) -> None:
    with wsa(E.WSAEINVAL, "not bound"):
        env.p.listen(env.tcp(), 1)
    with wsa(E.WSAEOPNOTSUPP):
        env.p.listen(env.udp_bound(), 1)
    c, _ = env.pair()
    with wsa(E.WSAEINVAL):
        env.p.listen(c, 1)
    with wsa(E.WSAEINVAL, "'x'"):
        env.p.listen(env.tcp(), "x")  # type: ignore[arg-type]


def test_accept_requires_a_listener(env: Env) -> None:
    s = env.tcp()
    env.p.bind(s, ("127.0.0.1", 0))
    with wsa(E.WSAEINVAL):
        env.p.accept(s)
    with wsa(E.WSAEOPNOTSUPP):
        env.p.accept(env.udp_bound())


def test_connect_refused_when_nobody_listens(env: Env, v: int) -> None:
    c = env.tcp(v)
    with wsa(E.WSAECONNREFUSED, repr((LOOP[v], 9))):
        env.p.connect(c, (LOOP[v], 9))
    assert env.p.getsockname(c) == addr(v, 49152)  # bound before failing
    bound = env.tcp(v)
    env.p.bind(bound, (LOOP[v], 9))  # bound but not listening
    with wsa(E.WSAECONNREFUSED):
        env.p.connect(c, (LOOP[v], 9))
    assert isinstance(WSAError(E.WSAECONNREFUSED), ConnectionRefusedError)


def test_connect_to_an_invalid_destination(env: Env, v: int) -> None:
    lst = env.listener(v)
    port = env.p.getsockname(lst)[1]
    with wsa(E.WSAEADDRNOTAVAIL):
        env.p.connect(env.tcp(v), (ANY[v], port))
    with wsa(E.WSAEADDRNOTAVAIL):
        env.p.connect(env.tcp(v), (LOOP[v], 0))


def test_listener_on_the_wildcard_takes_any_address(env: Env) -> None:
    lst = env.tcp()
    env.p.bind(lst, ("", 8080))
    env.p.listen(lst, 5)
    c = env.tcp()
    env.p.connect(c, ("10.0.0.7", 8080))
    s, peer = env.p.accept(lst)
    assert env.p.getsockname(s) == ("10.0.0.7", 8080)
    assert env.p.getsockname(c) == peer == ("10.0.0.7", 49152)


def test_wildcard_bound_client_takes_the_destination_address(env: Env, v: int) -> None:
    lst = env.listener(v)
    c = env.tcp(v)
    env.p.bind(c, ("", 0))
    assert env.p.getsockname(c) == addr(v, 49153, ANY[v])
    env.p.connect(c, env.p.getsockname(lst))
    _, peer = env.p.accept(lst)
    assert env.p.getsockname(c) == peer == addr(v, 49153)


def test_one_listener_per_address_even_with_reuseaddr(env: Env) -> None:
    wild, exact = env.tcp(), env.tcp()
    env.p.setsockopt(wild, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    env.p.setsockopt(exact, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    env.p.bind(wild, ("", 8081))
    env.p.bind(exact, ("127.0.0.1", 8081))
    env.p.listen(wild, 5)
    with wsa(E.WSAEADDRINUSE, "127.0.0.1:8081"):
        env.p.listen(exact, 5)
    c = env.tcp()
    env.p.connect(c, ("127.0.0.1", 8081))
    env.p.settimeout(wild, 0.0)
    env.p.accept(wild)


def test_backlog_is_enforced(env: Env, v: int) -> None:
    lst = env.listener(v, backlog=2)
    target = env.p.getsockname(lst)
    clients = [env.tcp(v) for _ in range(4)]
    env.p.connect(clients[0], target)
    env.p.connect(clients[1], target)
    with wsa(E.WSAECONNREFUSED, "backlog of 2"):
        env.p.connect(clients[2], target)
    env.p.accept(lst)
    env.p.connect(clients[3], target)  # room again
    env.p.listen(lst, 3)  # a second listen changes the backlog
    env.p.connect(clients[2], target)


def test_backlog_below_one_counts_as_one(env: Env) -> None:
    lst = env.listener(backlog=0)
    target = env.p.getsockname(lst)
    env.p.connect(env.tcp(), target)
    with wsa(E.WSAECONNREFUSED):
        env.p.connect(env.tcp(), target)


def test_connect_twice_and_on_a_listener(env: Env) -> None:
    lst = env.listener()
    c = env.tcp()
    env.p.connect(c, env.p.getsockname(lst))
    with wsa(E.WSAEINVAL, "already connected"):
        env.p.connect(c, env.p.getsockname(lst))
    with wsa(E.WSAEINVAL, "listening"):
        env.p.connect(lst, env.p.getsockname(lst))


def test_accepts_come_in_connect_order(env: Env) -> None:
    lst = env.listener()
    clients = [env.tcp() for _ in range(3)]
    for c in clients:
        env.p.connect(c, env.p.getsockname(lst))
    peers = [env.p.accept(lst)[1] for _ in clients]
    assert peers == [env.p.getsockname(c) for c in clients]


def test_accept_blocks_until_a_connection(env: Env) -> None:
    lst = env.listener()
    env.p.settimeout(lst, None)
    w = Worker(env.p.accept, lst)
    wait_blocked(env.p)
    c = env.tcp()
    env.p.connect(c, env.p.getsockname(lst))
    w.join()
    assert w.error is None
    s, peer = w.result
    assert peer == env.p.getsockname(c)
    env.p.settimeout(s, JOIN)
    env.p.send(c, b"hi", 0)
    assert env.p.recv(s, 2, 0) == b"hi"


def test_accept_non_blocking_and_timeout(env: Env) -> None:
    lst = env.listener()
    env.p.settimeout(lst, 0.0)
    with wsa(E.WSAEWOULDBLOCK):
        env.p.accept(lst)
    env.p.settimeout(lst, SHORT)
    start = time.monotonic()
    with wsa(E.WSAETIMEDOUT):
        env.p.accept(lst)
    assert time.monotonic() - start >= SHORT * 0.8


def test_accepted_socket_starts_blocking_and_inherits_options(env: Env) -> None:
    lst = env.listener()
    env.p.settimeout(lst, 0.0)
    env.p.setsockopt(lst, socket.SOL_SOCKET, socket.SO_RCVBUF, 1234)
    c = env.tcp()
    env.p.connect(c, env.p.getsockname(lst))
    s, _ = env.p.accept(lst)
    assert s.timeout is None
    assert env.p.getsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 0) == 1234


def test_closing_a_listener_resets_pending_connections(env: Env) -> None:
    lst = env.listener()
    c = env.tcp()
    env.p.connect(c, env.p.getsockname(lst))
    env.p.close_socket(lst)
    with wsa(E.WSAECONNRESET):
        env.p.recv(c, 1, 0)
    with wsa(E.WSAECONNRESET):
        env.p.send(c, b"x", 0)


def test_client_may_send_and_close_before_accept(env: Env) -> None:
    lst = env.listener()
    c = env.tcp()
    env.p.connect(c, env.p.getsockname(lst))
    env.p.send(c, b"early", 0)
    env.p.close_socket(c)
    s, _ = env.p.accept(lst)
    env.p.settimeout(s, JOIN)
    assert env.p.recv(s, 100, 0) == b"early"
    assert env.p.recv(s, 100, 0) == b""


# -- stream data ---------------------------------------------------------------------------


def test_stream_round_trip(env: Env, v: int) -> None:
    c, s = env.pair(v)
    assert env.p.send(c, b"hello", 0) == 5
    assert env.p.send(s, b"world", 0) == 5
    assert env.p.recv(s, 100, 0) == b"hello"
    assert env.p.recv(c, 100, 0) == b"world"


def test_stream_keeps_order_and_no_boundaries(env: Env) -> None:
    c, s = env.pair()
    rng = random.Random(7)
    sent = b""
    for _ in range(200):
        chunk = rng.randbytes(rng.randrange(0, 300))
        assert env.p.send(c, chunk, 0) == len(chunk)
        sent += chunk
    got = b""
    while len(got) < len(sent):
        got += env.p.recv(s, rng.randrange(1, 700), 0)
    assert got == sent
    env.p.settimeout(s, 0.0)
    with wsa(E.WSAEWOULDBLOCK):
        env.p.recv(s, 1, 0)


def test_partial_recv_then_rest(env: Env) -> None:
    c, s = env.pair()
    env.p.send(c, b"abcdef", 0)
    assert env.p.recv(s, 2, 0) == b"ab"
    assert env.p.recv(s, 2, 0) == b"cd"
    env.p.send(c, b"gh", 0)
    assert env.p.recv(s, 100, 0) == b"efgh"


def test_send_accepts_bytes_like_and_refuses_others(env: Env) -> None:
    c, s = env.pair()
    env.p.send(c, bytearray(b"ab"), 0)
    env.p.send(c, memoryview(b"cd"), 0)
    buf = bytearray(b"ef")
    env.p.send(c, buf, 0)
    buf[:] = b"XX"  # the provider copied it
    assert env.p.recv(s, 10, 0) == b"abcdef"
    assert env.p.send(c, array.array("H", [1, 2]), 0) == 4
    assert env.p.send(c, memoryview(b"a-b-c")[::2], 0) == 3
    assert env.p.recv(s, 10, 0) == array.array("H", [1, 2]).tobytes() + b"abc"
    env.p.shutdown(c, SD_SEND)
    with wsa(E.WSAESHUTDOWN):
        env.p.send(c, buf, 0)
    buf.extend(b"resizable")  # no buffer export outlives the call
    with wsa(E.WSAEFAULT, "'text'"):
        env.p.send(c, "text", 0)
    with wsa(E.WSAEFAULT, "12"):
        env.p.sendto(env.udp(), 12, 0, ("127.0.0.1", 1))


def test_recv_bufsize_validation(env: Env) -> None:
    c, s = env.pair()
    env.p.send(c, b"data", 0)
    with wsa(E.WSAEINVAL, "-1"):
        env.p.recv(s, -1, 0)
    with wsa(E.WSAEINVAL, "'4'"):
        env.p.recv(s, "4", 0)  # type: ignore[arg-type]
    assert env.p.recv(s, 0, 0) == b""
    assert env.p.recv(s, 4, 0) == b"data"
    with wsa(E.WSAEINVAL, "-5"):
        env.p.recvfrom(env.udp_bound(), -5, 0)


def test_recv_into_and_recvfrom(env: Env, v: int) -> None:
    c, s = env.pair(v)
    env.p.send(c, b"0123456789", 0)
    buf = bytearray(4)
    assert env.p.recv_into(s, buf, 0, 0) == 4
    assert buf == b"0123"
    big = bytearray(10)
    assert env.p.recv_into(s, big, 2, 0) == 2
    assert big[:2] == b"45"
    with wsa(E.WSAEINVAL):
        env.p.recv_into(s, big, 11, 0)
    with wsa(E.WSAEFAULT):
        env.p.recv_into(s, b"readonly", 0, 0)
    assert env.p.recvfrom(s, 2, 0) == (b"67", None)
    n, address = env.p.recvfrom_into(s, big, 0, 0)
    assert (n, address, bytes(big[:n])) == (2, None, b"89")


def test_msg_peek_and_waitall(env: Env) -> None:
    c, s = env.pair()
    env.p.send(c, b"abc", 0)
    env.p.send(c, b"def", 0)
    assert env.p.recv(s, 5, socket.MSG_PEEK) == b"abcde"
    assert env.p.recv(s, 2, 0) == b"ab"

    def later() -> None:
        wait_blocked(env.p)
        env.p.send(c, b"ghi", 0)

    w = Worker(later)
    assert env.p.recv(s, 7, socket.MSG_WAITALL) == b"cdefghi"
    w.join()
    assert w.error is None
    env.p.send(c, b"xy", 0)
    env.p.shutdown(c, SD_SEND)
    assert env.p.recv(s, 10, socket.MSG_WAITALL) == b"xy"  # end of file ends the wait
    with wsa(E.WSAEOPNOTSUPP):
        env.p.recv(s, 1, socket.MSG_OOB)
    with wsa(E.WSAEOPNOTSUPP):
        env.p.send(s, b"x", socket.MSG_OOB)


def test_recv_and_send_on_unconnected_stream(env: Env) -> None:
    s = env.tcp()
    with wsa(E.WSAENOTCONN):
        env.p.recv(s, 1, 0)
    with wsa(E.WSAENOTCONN):
        env.p.send(s, b"x", 0)
    lst = env.listener()
    with wsa(E.WSAENOTCONN):
        env.p.recv(lst, 1, 0)


def test_sendto_on_stream(env: Env) -> None:
    with wsa(E.WSAENOTCONN):
        env.p.sendto(env.tcp(), b"x", 0, ("127.0.0.1", 1))
    c, s = env.pair()
    assert env.p.sendto(c, b"ignored address", 0, ("10.9.9.9", 1)) == 15
    assert env.p.recv(s, 100, 0) == b"ignored address"


def test_large_transfer_through_threads(env: Env, v: int) -> None:
    c, s = env.pair(v)
    payload = random.Random(1).randbytes(3 * MemoryProvider.BUFFER_SIZE + 12345)

    def sender() -> None:
        view = memoryview(payload)
        while view:
            view = view[env.p.send(c, view, 0) :]
        env.p.shutdown(c, SD_SEND)

    w = Worker(sender)
    parts = []
    while True:
        data = env.p.recv(s, 65536, 0)
        if not data:
            break
        parts.append(data)
    w.join()
    assert w.error is None
    assert b"".join(parts) == payload


def test_concurrent_echo_clients(env: Env) -> None:
    lst = env.listener(backlog=8)
    target = env.p.getsockname(lst)

    def server() -> None:
        for _ in range(4):
            conn, _ = env.p.accept(lst)
            env.p.settimeout(conn, JOIN)
            while data := env.p.recv(conn, 4096, 0):
                env.p.send(conn, data, 0)
            env.p.close_socket(conn)

    def client(i: int) -> bytes:
        c = env.tcp()
        env.p.connect(c, target)
        msg = f"client {i} ".encode() * 100
        env.p.send(c, msg, 0)
        env.p.shutdown(c, SD_SEND)
        got = b""
        while data := env.p.recv(c, 4096, 0):
            got += data
        env.p.close_socket(c)
        return got

    srv = Worker(server)
    clients = [Worker(client, i) for i in range(4)]
    for i, w in enumerate(clients):
        w.join()
        assert w.error is None
        assert w.result == f"client {i} ".encode() * 100
    srv.join()
    assert srv.error is None


# -- flow control -------------------------------------------------------------------------


def test_buffer_bounds_each_direction(env: Env) -> None:
    c, s = env.pair()
    env.p.settimeout(c, 0.0)
    size = MemoryProvider.BUFFER_SIZE
    assert env.p.send(c, bytes(size + 1000), 0) == size  # partial
    with wsa(E.WSAEWOULDBLOCK):
        env.p.send(c, b"x", 0)
    assert env.p.ioctl(s, FIONREAD, 0) == size
    assert env.p.send(s, b"the other way", 0) == 13  # the reverse direction is free
    assert len(env.p.recv(s, 1000, 0)) == 1000
    assert env.p.send(c, bytes(5000), 0) == 1000


def test_rcvbuf_sets_the_bound(env: Env) -> None:
    c, s = env.pair()
    env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 100)
    env.p.settimeout(c, 0.0)
    assert env.p.send(c, bytes(150), 0) == 100
    r, w, x = env.p.select([s], [c], [c], 0)
    assert (r, w, x) == ([s], [], [])
    env.p.recv(s, 30, 0)
    assert env.p.select([], [c], [], 0)[1] == [c]


def test_blocking_send_waits_for_room(env: Env) -> None:
    c, s = env.pair()
    env.p.settimeout(c, None)
    env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 10)
    w = Worker(env.p.send, c, b"0123456789abcdefghij", 0)
    wait_blocked(env.p)
    assert w.thread.is_alive()
    got = b""
    while len(got) < 20:
        got += env.p.recv(s, 4, 0)
    w.join()
    assert (w.error, w.result) == (None, 20)
    assert got == b"0123456789abcdefghij"


def test_send_with_timeout(env: Env) -> None:
    c, s = env.pair()
    env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 10)
    env.p.settimeout(c, SHORT)
    start = time.monotonic()
    assert env.p.send(c, bytes(25), 0) == 10  # partial when the time is up
    assert time.monotonic() - start >= SHORT * 0.8
    with wsa(E.WSAETIMEDOUT):
        env.p.send(c, b"x", 0)


# -- shutdown and close ---------------------------------------------------------------------


def test_shutdown_send_gives_end_of_file_after_the_data(env: Env, v: int) -> None:
    c, s = env.pair(v)
    env.p.send(c, b"last words", 0)
    env.p.shutdown(c, SD_SEND)
    with wsa(E.WSAESHUTDOWN):
        env.p.send(c, b"more", 0)
    assert isinstance(WSAError(E.WSAESHUTDOWN), BrokenPipeError)
    assert env.p.recv(s, 100, 0) == b"last words"
    assert env.p.recv(s, 100, 0) == b""
    assert env.p.recv(s, 100, 0) == b""
    env.p.send(s, b"reply", 0)  # half-close: the other direction still works
    assert env.p.recv(c, 100, 0) == b"reply"
    assert env.p.getpeername(s) == env.p.getsockname(c)


def test_shutdown_receive(env: Env) -> None:
    c, s = env.pair()
    env.p.shutdown(s, SD_RECEIVE)
    with wsa(E.WSAESHUTDOWN):
        env.p.recv(s, 1, 0)
    env.p.send(s, b"still sending", 0)
    assert env.p.recv(c, 100, 0) == b"still sending"
    assert env.p.send(c, b"x", 0) == 1  # cannot be delivered: resets the connection
    with wsa(E.WSAECONNRESET):
        env.p.send(c, b"x", 0)
    with wsa(E.WSAECONNRESET):
        env.p.send(s, b"x", 0)


def test_shutdown_receive_with_queued_data_resets(env: Env) -> None:
    c, s = env.pair()
    env.p.send(c, b"unread", 0)
    env.p.shutdown(s, SD_RECEIVE)
    with wsa(E.WSAECONNRESET):
        env.p.recv(c, 1, 0)


def test_shutdown_both_and_errors(env: Env) -> None:
    c, s = env.pair()
    env.p.shutdown(c, SD_BOTH)
    with wsa(E.WSAESHUTDOWN):
        env.p.send(c, b"x", 0)
    with wsa(E.WSAESHUTDOWN):
        env.p.recv(c, 1, 0)
    assert env.p.recv(s, 1, 0) == b""
    with wsa(E.WSAEINVAL, "3"):
        env.p.shutdown(c, 3)
    with wsa(E.WSAENOTCONN):
        env.p.shutdown(env.tcp(), SD_SEND)


def test_clean_close_gives_end_of_file(env: Env, v: int) -> None:
    c, s = env.pair(v)
    env.p.send(c, b"bye", 0)
    env.p.close_socket(c)
    assert env.p.recv(s, 100, 0) == b"bye"
    assert env.p.recv(s, 100, 0) == b""
    assert env.p.select([s], [], [], 0)[0] == [s]


def test_close_with_unread_data_resets_the_peer(env: Env, v: int) -> None:
    c, s = env.pair(v)
    env.p.send(c, b"request", 0)
    env.p.send(s, b"reply", 0)
    env.p.close_socket(s)  # "request" was never read
    assert env.p.select([c], [c], [], 0)[:2] == ([c], [c])
    with wsa(E.WSAECONNRESET) as info:
        env.p.recv(c, 100, 0)
    assert isinstance(info.value, ConnectionResetError)
    with wsa(E.WSAECONNRESET):
        env.p.recv(c, 100, 0)  # it stays reset (the reply was lost)
    with wsa(E.WSAECONNRESET):
        env.p.send(c, b"x", 0)
    with wsa(E.WSAENOTCONN):
        env.p.getpeername(c)
    assert env.p.getsockopt(c, socket.SOL_SOCKET, socket.SO_ERROR, 0) == E.WSAECONNRESET
    assert env.p.getsockopt(c, socket.SOL_SOCKET, socket.SO_ERROR, 0) == 0
    with wsa(E.WSAECONNRESET):
        env.p.shutdown(c, SD_SEND)


def test_send_to_a_closed_peer_resets(env: Env) -> None:
    c, s = env.pair()
    env.p.close_socket(s)
    assert env.p.send(c, b"into the void", 0) == 13
    with wsa(E.WSAECONNRESET):
        env.p.recv(c, 1, 0)


# -- blocking, timeouts, wake-ups -------------------------------------------------------------


def test_recv_blocks_until_data(env: Env) -> None:
    c, s = env.pair()
    env.p.settimeout(s, None)
    w = Worker(env.p.recv, s, 100, 0)
    wait_blocked(env.p)
    env.p.send(c, b"wake", 0)
    w.join()
    assert (w.error, w.result) == (None, b"wake")


def test_recv_non_blocking_and_timeout(env: Env, v: int) -> None:
    _, s = env.pair(v)
    env.p.settimeout(s, 0.0)
    start = time.monotonic()
    with wsa(E.WSAEWOULDBLOCK) as info:
        env.p.recv(s, 1, 0)
    assert isinstance(info.value, BlockingIOError)
    assert time.monotonic() - start < 1.0
    env.p.settimeout(s, SHORT)
    start = time.monotonic()
    with wsa(E.WSAETIMEDOUT, "0.05") as tinfo:
        env.p.recv(s, 1, 0)
    assert isinstance(tinfo.value, TimeoutError)
    assert SHORT * 0.8 <= time.monotonic() - start < 2.0
    env.p.settimeout(s, None)
    assert s.timeout is None


def test_blocked_recv_wakes_on_peer_close(env: Env) -> None:
    c, s = env.pair()
    env.p.settimeout(s, None)
    w = Worker(env.p.recv, s, 100, 0)
    wait_blocked(env.p)
    env.p.close_socket(c)
    w.join()
    assert (w.error, w.result) == (None, b"")


def test_blocked_recv_wakes_on_own_close(env: Env) -> None:
    _, s = env.pair()
    env.p.settimeout(s, None)
    w = Worker(env.p.recv, s, 100, 0)
    wait_blocked(env.p)
    env.p.close_socket(s)
    w.join()
    assert isinstance(w.error, WSAError)
    assert w.error.wsa_code == E.WSAEINTR


def test_blocked_recv_wakes_on_reset(env: Env) -> None:
    c, s = env.pair()
    env.p.settimeout(s, None)
    env.p.send(s, b"unread by c", 0)
    w = Worker(env.p.recv, s, 100, 0)
    wait_blocked(env.p)
    env.p.close_socket(c)
    w.join()
    assert isinstance(w.error, WSAError)
    assert w.error.wsa_code == E.WSAECONNRESET


def test_blocked_datagram_recv_wakes_on_close(env: Env) -> None:
    u = env.udp_bound()
    env.p.settimeout(u, None)
    w = Worker(env.p.recvfrom, u, 100, 0)
    wait_blocked(env.p)
    env.p.close_socket(u)
    w.join()
    assert isinstance(w.error, WSAError)
    assert w.error.wsa_code == E.WSAEINTR


def test_settimeout_validation(env: Env) -> None:
    s = env.tcp()
    for bad in (-1, -0.5, "1", float("nan")):
        with wsa(E.WSAEINVAL, repr(bad)):
            env.p.settimeout(s, bad)  # type: ignore[arg-type]
    env.p.settimeout(s, 2)
    assert s.timeout == 2.0


# -- network down -----------------------------------------------------------------------------


def test_network_down_fails_every_call(env: Env) -> None:
    c, s = env.pair()
    u = env.udp_bound()
    lst = env.listener()
    fresh = env.tcp()
    net = env.p.network
    net.down()
    assert not net.is_up
    with wsa(E.WSAENETDOWN):
        env.tcp()
    calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        (env.p.bind, (fresh, ("127.0.0.1", 0))),
        (env.p.listen, (lst, 1)),
        (env.p.accept, (lst,)),
        (env.p.connect, (c, ("127.0.0.1", 1))),
        (env.p.send, (c, b"x", 0)),
        (env.p.recv, (c, 1, 0)),
        (env.p.recv_into, (c, bytearray(1), 0, 0)),
        (env.p.sendto, (u, b"x", 0, ("127.0.0.1", 1))),
        (env.p.recvfrom, (u, 1, 0)),
        (env.p.recvfrom_into, (u, bytearray(1), 0, 0)),
        (env.p.shutdown, (c, SD_SEND)),
        (env.p.getsockname, (c,)),
        (env.p.getpeername, (c,)),
        (env.p.getsockopt, (c, socket.SOL_SOCKET, socket.SO_TYPE, 0)),
        (env.p.setsockopt, (c, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)),
        (env.p.ioctl, (c, FIONREAD, 0)),
        (env.p.ioctl, (c, FIONBIO, 1)),
        (env.p.settimeout, (c, 1.0)),
        (env.p.duplicate_socket, (c,)),
        (env.p.select, ([c], [], [], 0)),
    ]
    for fn, args in calls:
        with wsa(E.WSAENETDOWN):
            fn(*args)
    net.up()
    assert net.is_up
    assert env.p.send(c, b"back", 0) == 4  # the connection survived
    assert env.p.recv(s, 10, 0) == b"back"


def test_network_down_with_data_queued(env: Env) -> None:
    c, s = env.pair()
    env.p.send(c, b"queued", 0)
    env.p.network.down()
    with wsa(E.WSAENETDOWN):
        env.p.recv(s, 10, 0)
    env.p.network.up()
    assert env.p.recv(s, 10, 0) == b"queued"


def test_close_works_while_down(env: Env) -> None:
    c, s = env.pair()
    env.p.network.down()
    env.p.close_socket(c)
    env.p.close_socket(s)
    assert len(env.table) == 0


@pytest.mark.parametrize("op", ["recv", "accept", "recvfrom", "send", "select"])
def test_network_down_wakes_blocked_calls(env: Env, op: str) -> None:
    env.safety = None
    c, s = env.pair()
    if op == "recv":
        w = Worker(env.p.recv, s, 1, 0)
    elif op == "accept":
        w = Worker(env.p.accept, env.listener())
    elif op == "recvfrom":
        w = Worker(env.p.recvfrom, env.udp_bound(), 1, 0)
    elif op == "send":
        env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        w = Worker(env.p.send, c, b"xy", 0)
    else:
        w = Worker(env.p.select, [s], [], [], None)
    wait_blocked(env.p)
    env.p.network.down()
    w.join()
    if op == "send":  # one byte got through before the wait
        assert (w.error, w.result) == (None, 1)
    else:
        assert isinstance(w.error, WSAError)
        assert w.error.wsa_code == E.WSAENETDOWN


# -- options and ioctls ----------------------------------------------------------------------


def test_socket_options(env: Env) -> None:
    t, u = env.tcp(), env.udp()
    sol = socket.SOL_SOCKET
    assert env.p.getsockopt(t, sol, socket.SO_TYPE, 0) == SOCK_STREAM
    assert env.p.getsockopt(t, sol, socket.SO_TYPE, None) == SOCK_STREAM
    assert env.p.getsockopt(u, sol, socket.SO_TYPE, 0) == SOCK_DGRAM
    assert env.p.getsockopt(t, sol, socket.SO_REUSEADDR, 0) == 0
    env.p.setsockopt(t, sol, socket.SO_REUSEADDR, True)
    assert env.p.getsockopt(t, sol, socket.SO_REUSEADDR, 0) == 1
    assert env.p.getsockopt(t, sol, socket.SO_RCVBUF, 0) == MemoryProvider.BUFFER_SIZE
    assert env.p.getsockopt(t, sol, socket.SO_SNDBUF, 0) == MemoryProvider.BUFFER_SIZE
    env.p.setsockopt(t, sol, socket.SO_SNDBUF, (4096).to_bytes(4, sys.byteorder))
    assert env.p.getsockopt(t, sol, socket.SO_SNDBUF, 0) == 4096
    assert env.p.getsockopt(t, sol, socket.SO_SNDBUF, 4) == (4096).to_bytes(4, sys.byteorder)
    assert env.p.getsockopt(t, sol, socket.SO_ERROR, 0) == 0
    env.p.setsockopt(t, socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert env.p.getsockopt(t, socket.IPPROTO_TCP, socket.TCP_NODELAY, 0) == 1
    for opt in (socket.SO_KEEPALIVE, socket.SO_BROADCAST):
        env.p.setsockopt(u, sol, opt, 1)
        assert env.p.getsockopt(u, sol, opt, 0) == 1


def test_socket_option_errors(env: Env) -> None:
    t, u = env.tcp(), env.udp()
    sol = socket.SOL_SOCKET
    with wsa(E.WSAEINVAL, "-1"):
        env.p.setsockopt(t, sol, socket.SO_RCVBUF, -1)
    with wsa(E.WSAEINVAL):
        env.p.setsockopt(t, sol, socket.SO_TYPE, SOCK_DGRAM)
    with wsa(E.WSAEINVAL):
        env.p.setsockopt(t, sol, socket.SO_ERROR, 0)
    with wsa(E.WSAEINVAL, "424242"):
        env.p.getsockopt(t, sol, 424242, 0)
    with wsa(E.WSAEINVAL, "424242"):
        env.p.setsockopt(t, 424242, socket.SO_REUSEADDR, 1)
    with wsa(E.WSAEINVAL):
        env.p.getsockopt(u, socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    with wsa(E.WSAEFAULT, "'yes'"):
        env.p.setsockopt(t, sol, socket.SO_REUSEADDR, "yes")
    with wsa(E.WSAEFAULT):
        env.p.setsockopt(t, sol, socket.SO_REUSEADDR, b"\x01")
    with wsa(E.WSAEFAULT):
        env.p.getsockopt(t, sol, socket.SO_TYPE, 2)
    with wsa(E.WSAEINVAL):
        env.p.getsockopt(t, sol, socket.SO_TYPE, -1)


def test_ioctls(env: Env) -> None:
    c, s = env.pair()
    assert env.p.ioctl(s, FIONREAD, 0) == 0
    env.p.send(c, b"12345", 0)
    env.p.send(c, b"678", 0)
    assert env.p.ioctl(s, FIONREAD, 0) == 8
    env.p.recv(s, 3, 0)
    assert env.p.ioctl(s, FIONREAD, 0) == 5
    assert env.p.ioctl(s, IoctlCode.SIOCATMARK, 0) is True
    env.p.recv(s, 5, 0)
    assert env.p.ioctl(s, FIONBIO, 1) == 0
    with wsa(E.WSAEWOULDBLOCK):
        env.p.recv(s, 1, 0)
    env.p.ioctl(s, FIONBIO, 0)
    assert s.timeout is None
    with wsa(E.WSAEINVAL, "305419896"):
        env.p.ioctl(s, 0x12345678, 0)
    u, r = env.udp(), env.udp_bound()
    env.p.sendto(u, b"abc", 0, env.p.getsockname(r))
    env.p.sendto(u, b"de", 0, env.p.getsockname(r))
    assert env.p.ioctl(r, FIONREAD, 0) == 5


def test_duplicate_socket(env: Env) -> None:
    s = env.tcp()
    env.p.duplicate_socket(s)
    env.p.close_socket(s)
    with wsa(E.WSAENOTSOCK):
        env.p.duplicate_socket(s)


# -- select ----------------------------------------------------------------------------------


def test_select_readiness(env: Env) -> None:
    c, s = env.pair()
    lst = env.listener()
    u = env.udp_bound()
    fresh = env.tcp()
    r, w, x = env.p.select([c, s, lst, u], [c, s, u, fresh], [c, s], 0)
    assert r == []
    assert w == [c, s, u]  # an unconnected stream socket is not writable
    assert x == []
    env.p.send(c, b"x", 0)
    env.p.connect(env.tcp(), env.p.getsockname(lst))
    env.p.sendto(env.udp(), b"d", 0, env.p.getsockname(u))
    r, _, _ = env.p.select([c, s, lst, u], [], [], 0)
    assert r == [s, lst, u]
    env.p.shutdown(s, SD_SEND)
    assert env.p.select([c], [], [], 0)[0] == [c]  # end of file is readable


def test_select_timeout_and_blocking(env: Env) -> None:
    c, s = env.pair()
    start = time.monotonic()
    assert env.p.select([s], [], [], SHORT) == ([], [], [])
    assert time.monotonic() - start >= SHORT * 0.8

    w = Worker(env.p.select, [s], [], [], None)
    wait_blocked(env.p)
    env.p.send(c, b"x", 0)
    w.join()
    assert (w.error, w.result) == (None, ([s], [], []))


def test_select_errors(env: Env) -> None:
    s = env.tcp()
    with wsa(E.WSAEINVAL):
        env.p.select([], [], [], 0)
    with wsa(E.WSAEINVAL, "-1"):
        env.p.select([s], [], [], -1)
    with wsa(E.WSAENOTSOCK):
        env.p.select([object()], [], [], 0)  # type: ignore[list-item]
    other = MemoryProvider()
    other.startup(Upcalls(env.table))
    foreign = other.socket(0, 0, 0, info_for("tcp", 4), 0, 0)
    with wsa(E.WSAENOTSOCK):
        env.p.select([foreign], [], [], 0)
    other.close_socket(foreign)


def test_select_wakes_when_a_selected_socket_closes(env: Env) -> None:
    _, s = env.pair()
    env.p.settimeout(s, None)
    w = Worker(env.p.select, [s], [], [], None)
    wait_blocked(env.p)
    env.p.close_socket(s)
    w.join()
    assert isinstance(w.error, WSAError)
    assert w.error.wsa_code == E.WSAEINTR


# -- datagrams --------------------------------------------------------------------------------


def test_datagram_round_trip(env: Env, v: int) -> None:
    a, b = env.udp_bound(v), env.udp_bound(v)
    assert env.p.sendto(a, b"ping", 0, env.p.getsockname(b)) == 4
    assert env.p.recvfrom(b, 100, 0) == (b"ping", env.p.getsockname(a))
    env.p.sendto(b, b"pong", 0, env.p.getsockname(a))
    buf = bytearray(10)
    n, sender = env.p.recvfrom_into(a, buf, 0, 0)
    assert (bytes(buf[:n]), sender) == (b"pong", env.p.getsockname(b))


def test_datagram_boundaries_and_truncation(env: Env, v: int) -> None:
    a, b = env.udp(v), env.udp_bound(v)
    dest = env.p.getsockname(b)
    for msg in (b"first", b"", b"abcdefgh", b"last"):
        env.p.sendto(a, msg, 0, dest)
    assert env.p.recv(b, 100, 0) == b"first"
    assert env.p.recv(b, 100, 0) == b""  # an empty datagram is a datagram
    assert env.p.recv(b, 3, 0) == b"abc"  # truncated; the rest is gone
    assert env.p.recv(b, 100, socket.MSG_PEEK) == b"last"
    assert env.p.recv(b, 100, 0) == b"last"
    with wsa(E.WSAEOPNOTSUPP):
        env.p.recv(b, 100, socket.MSG_WAITALL)


def test_datagram_size_limit(env: Env, v: int) -> None:
    limit = MemoryProvider.MAX_DATAGRAM_V4 if v == 4 else MemoryProvider.MAX_DATAGRAM_V6
    a, b = env.udp(v), env.udp_bound(v)
    dest = env.p.getsockname(b)
    assert env.p.sendto(a, bytes(limit), 0, dest) == limit
    with wsa(E.WSAEMSGSIZE, str(limit + 1)):
        env.p.sendto(a, bytes(limit + 1), 0, dest)
    assert len(env.p.recv(b, 70000, 0)) == limit
    env.p.settimeout(b, 0.0)
    with wsa(E.WSAEWOULDBLOCK):
        env.p.recv(b, 70000, 0)


def test_sendto_nobody_is_dropped_and_autobinds(env: Env, v: int) -> None:
    a = env.udp(v)
    assert env.p.sendto(a, b"lost", 0, (LOOP[v], 9999)) == 4
    assert env.p.getsockname(a) == addr(v, 49152, ANY[v])
    with wsa(E.WSAEADDRNOTAVAIL):
        env.p.sendto(a, b"x", 0, (LOOP[v], 0))
    with wsa(E.WSAEADDRNOTAVAIL):
        env.p.sendto(a, b"x", 0, (ANY[v], 9999))


def test_datagram_queue_is_bounded(env: Env) -> None:
    a, b = env.udp(), env.udp_bound()
    env.p.setsockopt(b, socket.SOL_SOCKET, socket.SO_RCVBUF, 1000)
    dest = env.p.getsockname(b)
    for i in range(20):
        assert env.p.sendto(a, bytes([i]) * 100, 0, dest) == 100
    env.p.settimeout(b, 0.0)
    got = []
    with contextlib.suppress(BlockingIOError):
        while True:
            got.append(env.p.recv(b, 1000, 0))
    assert got == [bytes([i]) * 100 for i in range(10)]  # the rest was dropped


def test_datagram_connect_sets_and_filters_the_peer(env: Env, v: int) -> None:
    a, b, stranger = env.udp_bound(v), env.udp_bound(v), env.udp_bound(v)
    with wsa(E.WSAENOTCONN):
        env.p.send(a, b"x", 0)
    env.p.connect(a, env.p.getsockname(b))
    assert env.p.getpeername(a) == env.p.getsockname(b)
    assert env.p.send(a, b"via send", 0) == 8
    assert env.p.recvfrom(b, 100, 0) == (b"via send", env.p.getsockname(a))
    env.p.sendto(stranger, b"filtered", 0, env.p.getsockname(a))
    env.p.sendto(b, b"from peer", 0, env.p.getsockname(a))
    assert env.p.recvfrom(a, 100, 0) == (b"from peer", env.p.getsockname(b))
    env.p.settimeout(a, 0.0)
    with wsa(E.WSAEWOULDBLOCK):
        env.p.recv(a, 100, 0)
    env.p.connect(a, (ANY[v], 0))  # dissolve the association
    with wsa(E.WSAENOTCONN):
        env.p.getpeername(a)
    env.p.sendto(stranger, b"welcome", 0, env.p.getsockname(a))
    assert env.p.recv(a, 100, 0) == b"welcome"


def test_datagram_connect_autobinds(env: Env, v: int) -> None:
    a = env.udp(v)
    env.p.connect(a, (LOOP[v], 4242))  # nobody there: fine for datagrams
    assert env.p.getsockname(a) == addr(v, 49152)
    assert env.p.send(a, b"dropped", 0) == 7


def test_datagram_recv_unbound_is_invalid(env: Env) -> None:
    with wsa(E.WSAEINVAL, "not bound"):
        env.p.recv(env.udp(), 10, 0)


def test_datagram_shutdown(env: Env) -> None:
    a, b = env.udp_bound(), env.udp_bound()
    env.p.sendto(a, b"queued", 0, env.p.getsockname(b))
    env.p.shutdown(b, SD_RECEIVE)
    with wsa(E.WSAESHUTDOWN):
        env.p.recvfrom(b, 10, 0)
    env.p.shutdown(a, SD_SEND)
    with wsa(E.WSAESHUTDOWN):
        env.p.sendto(a, b"x", 0, env.p.getsockname(b))


def test_datagram_broadcast(env: Env) -> None:
    r1, r2 = env.udp(), env.udp()
    for r in (r1, r2):
        env.p.setsockopt(r, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        env.p.bind(r, ("", 5353))
    a = env.udp()
    env.p.setsockopt(a, socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    env.p.sendto(a, b"all", 0, ("<broadcast>", 5353))
    assert env.p.recv(r1, 10, 0) == b"all"
    assert env.p.recv(r2, 10, 0) == b"all"
    env.p.sendto(a, b"one", 0, ("127.0.0.1", 5353))  # unicast reaches one socket
    env.p.settimeout(r1, 0.0)
    env.p.settimeout(r2, 0.0)
    got = []
    for r in (r1, r2):
        with contextlib.suppress(BlockingIOError):
            got.append(env.p.recv(r, 10, 0))
    assert got == [b"one"]


def test_datagram_blocking_recv_and_timeout(env: Env) -> None:
    a, b = env.udp(), env.udp_bound()
    env.p.settimeout(b, SHORT)
    start = time.monotonic()
    with wsa(E.WSAETIMEDOUT):
        env.p.recvfrom(b, 10, 0)
    assert time.monotonic() - start >= SHORT * 0.8
    env.p.settimeout(b, None)
    w = Worker(env.p.recvfrom, b, 10, 0)
    wait_blocked(env.p)
    env.p.sendto(a, b"late", 0, env.p.getsockname(b))
    w.join()
    assert w.error is None
    assert w.result[0] == b"late"


# -- determinism and cleanup -------------------------------------------------------------------


def _scripted_program(e: Env) -> list[Any]:
    """A fixed program; returns what it observed."""
    p = e.p
    log: list[Any] = []
    lst = e.listener()
    log.append(p.getsockname(lst))
    clients = []
    for _ in range(3):
        c = e.tcp()
        p.connect(c, p.getsockname(lst))
        clients.append(c)
        log.append(p.getsockname(c))
    for _ in range(3):
        s, peer = p.accept(lst)
        log.append(peer)
        p.send(s, b"hi %d" % peer[1], 0)
    for c in clients:
        log.append(p.recv(c, 100, 0))
    u = e.udp()
    p.sendto(u, b"x", 0, ("127.0.0.1", 1))
    log.append(p.getsockname(u))
    u6 = e.udp(6)
    p.bind(u6, ("", 0))
    log.append(p.getsockname(u6))
    return log


def test_ports_and_events_are_deterministic() -> None:
    logs = []
    for _ in range(2):
        e = Env()
        logs.append(_scripted_program(e))
        e.p.cleanup()
        assert len(e.table) == 0
    assert logs[0] == logs[1]
    assert logs[0][0] == ("127.0.0.1", 49152)
    assert [a[1] for a in logs[0][1:4]] == [49153, 49154, 49155]
    assert logs[0][-2:] == [("0.0.0.0", 49156), ("::", 49157, 0, 0)]


def test_ephemeral_ports_skip_used_ones_and_wrap(env: Env) -> None:
    net = env.p.network
    taken = env.tcp()
    env.p.bind(taken, ("127.0.0.1", 49152))
    s = env.tcp()
    env.p.bind(s, ("127.0.0.1", 0))
    assert env.p.getsockname(s)[1] == 49153
    net._next_port = MemoryNetwork.EPHEMERAL_LAST
    a, b = env.tcp(), env.tcp()
    env.p.bind(a, ("127.0.0.1", 0))
    env.p.bind(b, ("127.0.0.1", 0))
    assert [env.p.getsockname(x)[1] for x in (a, b)] == [65535, 49154]


def test_cleanup_closes_everything_and_restarts(env: Env) -> None:
    lst = env.listener()
    c = env.tcp()
    env.p.connect(c, env.p.getsockname(lst))
    pending = env.tcp()
    env.p.connect(pending, env.p.getsockname(lst))
    env.p.accept(lst)
    env.udp_bound(6)
    env.tcp()
    assert len(env.table) == 6
    handles = env.table.handles()
    env.p.network.down()
    env.p.cleanup()
    assert len(env.table) == 0
    assert sorted(env.upcalls.closed) == sorted(handles)
    assert env.p.network.sockets() == []
    assert env.p.network._ports == {}
    assert env.p.network.is_up
    # started again, the provider behaves like a new one
    env.p.startup(env.upcalls)
    again = env.listener()
    assert env.p.getsockname(again) == ("127.0.0.1", 49152)


def test_cleanup_wakes_blocked_threads(env: Env) -> None:
    _, s = env.pair()
    env.p.settimeout(s, None)
    w = Worker(env.p.recv, s, 1, 0)
    wait_blocked(env.p)
    env.p.cleanup()
    w.join()
    assert isinstance(w.error, WSAError)
    assert w.error.wsa_code == E.WSAEINTR
    assert len(env.table) == 0


def test_cleanup_tolerates_handles_the_host_already_dropped(env: Env) -> None:
    s = env.tcp()
    env.table.discard(s.handle)
    env.p.cleanup()
    assert env.p.network.sockets() == []
    assert env.upcalls.closed == [s.handle]  # tried once; the host had released it
    env.upcalls.created.clear()
    env.upcalls.closed.clear()


def test_network_sockets_lists_open_sockets(env: Env) -> None:
    c, s = env.pair()
    u = env.udp()
    assert env.p.network.sockets() == [c, s, u]
    env.p.close_socket(s)
    assert env.p.network.sockets() == [c, u]
    assert "2 sockets" in repr(env.p.network)
