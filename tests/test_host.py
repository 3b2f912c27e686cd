"""The host's rules: startup/cleanup, socket() selection, flags, propagation,
handles, provider failures and containment (DESIGN.md "Rules the host enforces")."""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Iterator
from typing import Any

import pytest

import wspframe
from tests import providers as P
from wspframe import (
    AF_INET,
    FROM_PROTOCOL_INFO,
    SOCK_DGRAM,
    SOCK_STREAM,
    WSAError,
    WSAErrorCode,
)

C = WSAErrorCode


def wsa(code: int) -> Any:
    """pytest.raises for one WSA code."""

    class _Raises:
        def __enter__(self) -> pytest.ExceptionInfo[WSAError]:
            self.cm = pytest.raises(WSAError)
            self.info = self.cm.__enter__()
            return self.info

        def __exit__(self, *exc: Any) -> bool:
            handled = self.cm.__exit__(*exc)
            assert self.info.value.wsa_code == code, (
                f"expected {WSAErrorCode(code).name}, got {self.info.value!r}: {self.info.value}"
            )
            return bool(handled)

    return _Raises()


@pytest.fixture
def xhost() -> Iterator[wspframe.Host]:
    """A host with the test providers too."""
    with wspframe.Host(config=False, providers=P.ALL) as h:
        yield h


# -- startup and cleanup -------------------------------------------------------------
def test_calls_outside_startup_raise_wsanotinitialised(no_leaks: None) -> None:
    host = wspframe.Host(config=False)
    with wsa(C.WSANOTINITIALISED):
        host.socket(AF_INET, SOCK_STREAM)
    with wsa(C.WSANOTINITIALISED):
        host.cleanup()
    with host:
        host.socket(AF_INET, SOCK_STREAM).close()
    with wsa(C.WSANOTINITIALISED):
        host.socket(AF_INET, SOCK_STREAM)


def test_startup_is_reference_counted_and_restartable(no_leaks: None) -> None:
    host = wspframe.Host(config=False)
    host.startup()
    host.startup()
    s = host.socket(AF_INET, SOCK_STREAM)
    host.cleanup()
    assert host.started and not s.closed  # not the last cleanup
    host.cleanup()
    assert not host.started and s.closed  # the last one closes every socket
    assert host.open_handles() == []
    with host:  # providers start again after cleanup
        host.socket(AF_INET, SOCK_STREAM).close()


class CountingBase(P.RecordingBase):
    name = "counting"
    protocols = P.entries("counting")
    starts = 0
    cleanups = 0

    def startup(self, upcalls: Any) -> None:
        CountingBase.starts += 1
        super().startup(upcalls)

    def cleanup(self) -> None:
        CountingBase.cleanups += 1
        super().cleanup()


def test_each_provider_starts_once_and_cleans_up_once() -> None:
    CountingBase.starts = CountingBase.cleanups = 0
    with wspframe.Host(config=False, providers=[CountingBase], order=["counting"]) as host:
        for _ in range(3):
            host.socket(AF_INET, SOCK_STREAM).close()
            host.socket(AF_INET, SOCK_DGRAM).close()  # another entry, same provider
        assert (CountingBase.starts, CountingBase.cleanups) == (1, 0)
    assert (CountingBase.starts, CountingBase.cleanups) == (1, 1)


# -- selection ----------------------------------------------------------------------
def test_wildcards_pick_the_first_matching_entry(host: wspframe.Host) -> None:
    first = host.enum_protocols()[0]
    with host.socket(0, 0, 0) as s:
        assert s.protocol_info == first
    with host.socket(AF_INET, 0, 0) as s:
        assert s.protocol_info.address_family == AF_INET
    with host.socket(0, SOCK_DGRAM, 0) as s:
        assert s.protocol_info.socket_type == SOCK_DGRAM


def test_protocol_ranges_match(xhost: wspframe.Host) -> None:
    for proto in (150, 153, 155):
        with xhost.socket(AF_INET, SOCK_DGRAM, proto) as s:
            assert s.protocol_info.name == "rangebase [150-155]"
    with wsa(C.WSAEPROTONOSUPPORT):
        xhost.socket(AF_INET, SOCK_DGRAM, 156)


@pytest.mark.parametrize(
    ("triplet", "code"),
    [
        ((12345, SOCK_STREAM, 0), C.WSAEAFNOSUPPORT),
        ((socket.AF_INET6, 77, 0), C.WSAESOCKTNOSUPPORT),
        ((socket.AF_INET6, SOCK_DGRAM, 99), C.WSAEPROTONOSUPPORT),
        ((socket.AF_INET6, SOCK_STREAM, socket.IPPROTO_UDP), C.WSAEPROTOTYPE),
    ],
)
def test_no_match_gives_the_last_mismatch(
    host: wspframe.Host, triplet: tuple[int, int, int], code: int
) -> None:
    # The built-in catalog ends with memory [UDP/IPv6]; the error is its mismatch.
    assert host.enum_protocols()[-1].address_family == socket.AF_INET6
    with wsa(code):
        host.socket(*triplet)


def test_empty_catalog_is_wsaeinval(host: wspframe.Host) -> None:
    host.catalog.reset()
    with wsa(C.WSAEINVAL):
        host.socket(AF_INET, SOCK_STREAM)


def test_explicit_protocol_info_and_from_protocol_info(host: wspframe.Host) -> None:
    udp = next(e for e in host.enum_protocols() if e.socket_type == SOCK_DGRAM)
    with host.socket(
        FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, protocol_info=udp
    ) as s:
        assert s.protocol_info == udp
        assert (s.family, s.type, s.proto) == (udp.address_family, SOCK_DGRAM, udp.protocol)
    with host.socket(0, 0, 0, protocol_info=udp) as s:
        assert s.protocol_info == udp
    with wsa(C.WSAEINVAL):
        host.socket(FROM_PROTOCOL_INFO, SOCK_STREAM, 0)  # -1 needs a protocol info
    with wsa(C.WSAEPROTOTYPE):
        host.socket(AF_INET, SOCK_STREAM, socket.IPPROTO_UDP, protocol_info=udp)
    bogus = udp.replace(catalog_entry_id=9999)
    with wsa(C.WSAEINVAL):
        host.socket(protocol_info=bogus)


def test_a_declining_provider_makes_the_search_resume(xhost: wspframe.Host) -> None:
    xhost.set_order(["decliner", "recbase"])
    with xhost.socket(AF_INET, SOCK_STREAM) as s:
        assert s.protocol_info.name == "recbase [TCP/IP]"
    decliner = xhost.entries_for("decliner")[0]
    with wsa(C.WSAEINPROGRESS):  # explicit protocol info: no resume
        xhost.socket(protocol_info=decliner)


def test_socket_arguments_are_checked_however_often_they_came_before(
    host: wspframe.Host,
) -> None:
    """socket() remembers where a triplet leads, never that a value was fine:
    ``True`` is not ``1``, nor ``2.0`` ``2``, and enums become ints."""
    for _ in range(2):
        with host.socket(AF_INET, SOCK_STREAM) as s:
            assert (s.family, s.type) == (2, 1) and type(s.family) is int
        with host.socket(2, 1, 0) as s:
            assert s.proto == socket.IPPROTO_TCP
        for bad in ((AF_INET, True), (2.0, 1), ([2], 1), (AF_INET, SOCK_STREAM, None, None, 1)):
            with wsa(C.WSAEINVAL):
                host.socket(*bad)  # type: ignore[arg-type]
        with wsa(C.WSAEINVAL):
            host.socket(AF_INET, SOCK_STREAM, FROM_PROTOCOL_INFO)


def test_a_catalog_change_reroutes_socket(host: wspframe.Host) -> None:
    with host.socket(AF_INET, SOCK_STREAM) as s:
        other = "memory" if s.chain == ("tcpip",) else "tcpip"
    host.set_order([other])
    with host.socket(AF_INET, SOCK_STREAM) as s:
        assert s.chain == (other,)
    host.install_chain(f"passthrough,{other}")
    host.set_order([f"passthrough,{other}"])
    with host.socket(AF_INET, SOCK_STREAM) as s:
        assert s.chain == ("passthrough", other)


def test_group_is_reserved(host: wspframe.Host) -> None:
    with wsa(C.WSAEINVAL):
        host.socket(AF_INET, SOCK_STREAM, group=1)


@pytest.mark.parametrize(
    ("proto", "flags", "ok"),
    [
        (200, wspframe.WSA_FLAG_MULTIPOINT_C_ROOT | wspframe.WSA_FLAG_MULTIPOINT_D_ROOT, True),
        (200, wspframe.WSA_FLAG_MULTIPOINT_C_LEAF | wspframe.WSA_FLAG_MULTIPOINT_D_LEAF, True),
        (201, wspframe.WSA_FLAG_MULTIPOINT_C_LEAF | wspframe.WSA_FLAG_MULTIPOINT_D_LEAF, True),
        (201, wspframe.WSA_FLAG_MULTIPOINT_C_ROOT | wspframe.WSA_FLAG_MULTIPOINT_D_LEAF, False),
        (201, wspframe.WSA_FLAG_MULTIPOINT_C_LEAF | wspframe.WSA_FLAG_MULTIPOINT_D_ROOT, False),
        (200, wspframe.WSA_FLAG_MULTIPOINT_C_ROOT, False),
        (200, wspframe.WSA_FLAG_MULTIPOINT_D_LEAF, False),
        (200, wspframe.WSA_FLAG_MULTIPOINT_C_ROOT | wspframe.WSA_FLAG_MULTIPOINT_C_LEAF
         | wspframe.WSA_FLAG_MULTIPOINT_D_LEAF, False),
        (17, wspframe.WSA_FLAG_MULTIPOINT_C_LEAF | wspframe.WSA_FLAG_MULTIPOINT_D_LEAF, True),
        (17, wspframe.WSA_FLAG_MULTIPOINT_C_ROOT | wspframe.WSA_FLAG_MULTIPOINT_D_LEAF, False),
        (17, 0x4000, False),
        (17, wspframe.WSA_FLAG_OVERLAPPED, True),
    ],
)  # fmt: skip
def test_multipoint_flag_rules(xhost: wspframe.Host, proto: int, flags: int, ok: bool) -> None:
    if ok:
        xhost.socket(AF_INET, SOCK_DGRAM, proto, flags=flags).close()
    else:
        with wsa(C.WSAEINVAL):
            xhost.socket(AF_INET, SOCK_DGRAM, proto, flags=flags)


def test_multipoint_needs_xp1_support_multipoint(host: wspframe.Host) -> None:
    flags = wspframe.WSA_FLAG_MULTIPOINT_C_LEAF | wspframe.WSA_FLAG_MULTIPOINT_D_LEAF
    with wsa(C.WSAEINVAL) as info:
        host.socket(AF_INET, SOCK_STREAM, flags=flags)  # TCP: no XP1_SUPPORT_MULTIPOINT
    assert "XP1_SUPPORT_MULTIPOINT" in str(info.value)


def test_shared_protocol_info_ignores_group_and_flags(host: wspframe.Host) -> None:
    with host.socket(AF_INET, SOCK_STREAM) as s:
        shared = s.duplicate()
        with host.socket(protocol_info=shared, group=7, flags=0x4000) as dup:
            assert dup.fileno() != s.fileno()


def test_host_socket_limit_gives_wsaemfile() -> None:
    with wspframe.Host(config=False, max_sockets=2) as host:
        a = host.socket(AF_INET, SOCK_STREAM)
        b = host.socket(AF_INET, SOCK_STREAM)
        with wsa(C.WSAEMFILE):
            host.socket(AF_INET, SOCK_STREAM)
        a.close()
        host.socket(AF_INET, SOCK_STREAM).close()
        b.close()


def test_os_descriptor_limit_gives_wsaemfile(host: wspframe.Host) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    opened: list[wspframe.Socket] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
    try:
        with wsa(C.WSAEMFILE):
            for _ in range(50):
                opened.append(host.socket(AF_INET, SOCK_STREAM))
    finally:
        for s in opened:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert opened  # some fitted before the limit


def test_no_buffers_gives_wsaenobufs(host: wspframe.Host, monkeypatch: pytest.MonkeyPatch) -> None:
    # The OS refusing buffers for the handle's socketpair (memory mints its handles).
    def no_buffers(*args: Any) -> Any:
        raise OSError(errno.ENOBUFS, "No buffer space available")

    monkeypatch.setattr(socket, "socketpair", no_buffers)
    with wsa(C.WSAENOBUFS):
        host.socket(AF_INET, SOCK_STREAM, protocol_info=host.entries_for("memory")[0])
    monkeypatch.undo()
    assert all(not s.closed for s in host.sockets())


# -- provider failures ----------------------------------------------------------------
def test_startup_failure_fails_its_entries_only(xhost: wspframe.Host) -> None:
    with wsa(C.WSAEPROVIDERFAILEDINIT):
        xhost.socket(protocol_info=xhost.entries_for("failstart")[0])
    with wsa(C.WSAEPROVIDERFAILEDINIT):  # remembered, not retried
        xhost.socket(protocol_info=xhost.entries_for("failstart")[1])
    with wsa(C.WSAENETDOWN):
        xhost.socket(protocol_info=xhost.entries_for("netdown")[0])
    with xhost.socket(AF_INET, SOCK_STREAM) as s:  # the others keep working
        assert s.protocol_info.name.startswith("tcpip")


def test_missing_operation_is_wsaeinvalidproctable(xhost: wspframe.Host) -> None:
    with wsa(C.WSAEINVALIDPROCTABLE) as info:
        xhost.socket(protocol_info=xhost.entries_for("missingop")[0])
    assert "bind" in str(info.value)


def test_provider_failure_is_reported_to_observers() -> None:
    seen: list[tuple[str, int]] = []

    class Observer:
        @wspframe.hookimpl
        def wsp_provider_failed(self, name: str, error: WSAError) -> None:
            seen.append((name, error.wsa_code))

    with wspframe.Host(config=False, providers=[P.FailingStartBase], hooks=[Observer()]) as host:
        with wsa(C.WSAEPROVIDERFAILEDINIT):
            host.socket(protocol_info=host.entries_for("failstart")[0])
    assert seen == [("failstart", C.WSAEPROVIDERFAILEDINIT)]


# -- propagation rule -------------------------------------------------------------------
def test_protocol_info_propagation(xhost: wspframe.Host) -> None:
    P.RecordingLayer.seen.clear()
    P.RecordingBase.seen.clear()
    spec = "reclayer[n=1],reclayer[n=2],recbase"
    (entry, *_) = xhost.install_chain(spec)
    with xhost.socket(protocol_info=entry):
        pass
    # Both layers see the same, unmodified chain entry; the base sees its own entry.
    assert P.RecordingLayer.seen == [entry, entry]
    assert P.RecordingBase.seen == [xhost.catalog[entry.chain[-1]]]
    assert P.RecordingBase.seen[0].chain_len == 1


@pytest.mark.parametrize("spec", ["foreigninfo,reclayer,recbase", "foreigninfo,recbase"])
def test_breaking_the_propagation_rule_is_refused(
    xhost: wspframe.Host, spec: str, no_leaks: None
) -> None:
    (entry, *_) = xhost.install_chain(spec)
    before = xhost.open_handles()
    with wsa(C.WSAEINVAL) as info:
        xhost.socket(protocol_info=entry)
    assert "the SPI requires" in str(info.value)
    assert xhost.open_handles() == before


# -- handles -------------------------------------------------------------------------
def test_ifs_handles_are_the_os_sockets(host: wspframe.Host) -> None:
    with host.socket(AF_INET, SOCK_STREAM, protocol_info=host.entries_for("tcpip")[0]) as s:
        assert s.is_ifs and s.protocol_info.ifs
        assert stat.S_ISSOCK(os.fstat(s.fileno()).st_mode)
        peer = socket.socket(fileno=os.dup(s.fileno()))
        assert peer.type == SOCK_STREAM
        peer.close()


def test_minted_handles_are_real_descriptors(host: wspframe.Host) -> None:
    entry = host.entries_for("memory")[0]
    assert not entry.ifs
    with host.socket(protocol_info=entry) as s:
        assert not s.is_ifs
        assert stat.S_ISSOCK(os.fstat(s.fileno()).st_mode)
        ctx = host.upcalls.query_socket_handle_context(s.fileno())
        assert ctx.handle == s.fileno()
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(s.fileno() if s.fileno() >= 0 else 10**6)


def test_upcalls_validate_their_arguments(host: wspframe.Host) -> None:
    up = host.upcalls
    with wsa(C.WSAEINVAL):
        up.create_socket_handle(424242, object())
    with wsa(C.WSAEINVAL):
        up.modify_ifs_handle(424242, 0)
    r, w = os.pipe()
    try:
        with wsa(C.WSAENOTSOCK):
            up.modify_ifs_handle(1001, r)
    finally:
        os.close(r)
        os.close(w)
    with wsa(C.WSAENOTSOCK):
        up.query_socket_handle_context(10**6)
    with wsa(C.WSAENOTSOCK):
        up.close_socket_handle(10**6)
    h = up.create_socket_handle(1001, "ctx")
    assert up.query_socket_handle_context(h) == "ctx"
    up.close_socket_handle(h)
    with wsa(C.WSAENOTSOCK):
        up.query_socket_handle_context(h)


@pytest.mark.parametrize("name", ["bogushandle", "lyingifs"])
def test_handles_not_from_the_upcalls_are_rejected(xhost: wspframe.Host, name: str) -> None:
    before = xhost.open_handles()
    fds = set(os.listdir("/proc/self/fd"))
    with wsa(C.WSAEINVALIDPROVIDER):
        xhost.socket(protocol_info=xhost.entries_for(name)[0])
    assert xhost.open_handles() == before
    assert set(os.listdir("/proc/self/fd")) <= fds | {"0"}


def test_non_ifs_layer_over_ifs_base_mints_handles(xhost: wspframe.Host) -> None:
    (entry, *_) = xhost.install_chain("nonifs,tcpip")
    assert not entry.ifs
    with xhost.socket(protocol_info=entry) as s:
        assert not s.is_ifs
        lower = xhost.upcalls.query_socket_handle_context(s.fileno()).lower
        assert lower.handle != s.fileno()


# -- the compiled data path ----------------------------------------------------------------
def test_layers_are_skipped_on_operations_they_do_not_override(xhost: wspframe.Host) -> None:
    from wspframe._chain import overridden_operations

    assert overridden_operations(P.SendOnlyLayer) == {"send"}
    assert overridden_operations(wspframe.LayeredProvider) == set()
    (entry, *_) = xhost.install_chain("sendonly,passthrough,tcpip")
    with xhost.socket(protocol_info=entry) as s:
        top = s._core.top
        assert top.send.func is P.SendOnlyLayer.send
        # recv goes straight to the base (its context function, bound to its
        # context): the layers cost nothing there.
        assert top.recv.__func__ is wspframe._tcpip._recv
        assert top.recv.__self__ is top.contexts()[-1]


def _memory_trio(
    host: wspframe.Host, entry: wspframe.ProtocolInfo
) -> tuple[wspframe.Socket, wspframe.Socket, wspframe.Socket]:
    """A plain memory listener, a client made from ``entry`` connected to it,
    and the accepted end."""
    srv = host.socket(protocol_info=host.entries_for("memory")[0])
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cli = host.socket(protocol_info=entry)
    cli.connect(srv.getsockname())
    conn, _ = srv.accept()
    return srv, cli, conn


def test_the_fast_form_binds_socket_class_methods(xhost: wspframe.Host) -> None:
    from wspframe._chain import overridden_operations

    assert overridden_operations(P.FastUpperLayer) == {"recv"}
    (entry, *_) = xhost.install_chain("fastupper,sendonly,memory")
    srv, cli, conn = _memory_trio(xhost, entry)
    try:
        top = cli._core.top
        ctx = top.context
        assert isinstance(ctx, P.UpperSocket)
        # recv is the context's own bound method; send skips the fast layer.
        assert top.recv.__func__ is P.UpperSocket.recv and top.recv.__self__ is ctx
        assert top.send.func is P.SendOnlyLayer.send
        calls = P.SendOnlyLayer.calls
        cli.sendall(b"ping")
        assert P.SendOnlyLayer.calls == calls + 1
        assert conn.recv(4) == b"ping"
        conn.sendall(b"pong")
        assert cli.recv(4) == b"PONG"
        assert ctx.received == 4
    finally:
        for s in (cli, conn, srv):
            s.close()
    assert xhost.open_handles() == []


class _LoudSocket(P.UpperSocket):
    __slots__ = ()

    def recv(self, bufsize: int, flags: int) -> bytes:
        return b"!" + super().recv(bufsize, flags)


class _SwappingLayer(P.FastUpperLayer):
    """Returns contexts of a subclass of its socket class."""

    name = "swapping"

    def socket(self, next: Any, *args: Any) -> Any:
        s = super().socket(next, *args)
        s.__class__ = _LoudSocket
        return s


def test_a_context_of_another_class_binds_its_own_operations() -> None:
    with wspframe.Host(config=False, providers=[_SwappingLayer]) as host:
        (entry, *_) = host.install_chain("swapping,memory")
        srv, cli, conn = _memory_trio(host, entry)
        try:
            conn.sendall(b"hi")
            assert cli.recv(2) == b"!HI"
        finally:
            for s in (cli, conn, srv):
                s.close()


def test_an_operation_replaced_on_the_instance_is_what_sockets_call(
    host: wspframe.Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    tcpip = host.provider("tcpip")
    entry = host.entries_for("tcpip")[0]
    with host.socket(protocol_info=entry) as s:
        assert s._recv is socket.socket.recv
    monkeypatch.setattr(tcpip, "recv", lambda ctx, bufsize, flags: b"patched")
    with host.socket(protocol_info=entry) as s:
        assert s.recv(7) == b"patched"
    monkeypatch.undo()
    with host.socket(protocol_info=entry) as s:
        assert s._recv is socket.socket.recv


class _GreetingLayer(wspframe.LayeredProvider):
    """Runs no data operation itself, but sends through ``s.lower`` on connect."""

    name = "greeting"

    def connect(self, s: wspframe.LayerSocket, address: Any) -> None:
        s.lower.connect(address)
        s.lower.send(b"hello", 0)


def test_levels_bind_the_data_path_at_once_only_where_a_layer_runs_it() -> None:
    from wspframe._chain import Dispatch, LazyDispatch

    with wspframe.Host(config=False, providers=[*P.ALL, _GreetingLayer]) as host:
        for spec, kinds in (
            ("sendonly,passthrough,tcpip", [LazyDispatch, Dispatch, Dispatch]),
            ("passthrough,sendonly,tcpip", [LazyDispatch, LazyDispatch, Dispatch]),
            ("passthrough,passthrough[tag=2],tcpip", [LazyDispatch] * 3),
        ):
            (entry, *_) = host.install_chain(spec)
            with host.socket(protocol_info=entry) as s:
                level = s._core.top
                found = []
                while True:
                    found.append(type(level))
                    if not isinstance(level.context, wspframe.LayerSocket):
                        break
                    level = level.context.lower
                assert found == kinds, spec
        # A level bound on first use still runs what the layer above asks of it.
        (entry, *_) = host.install_chain("greeting,passthrough,memory")
        srv, cli, conn = _memory_trio(host, entry)
        try:
            assert conn.recv(5) == b"hello"
        finally:
            for s in (cli, conn, srv):
                s.close()


def test_an_operation_defined_twice_is_wsaeinvalidproctable(xhost: wspframe.Host) -> None:
    (entry, *_) = xhost.install_chain("twice,tcpip")
    with wsa(C.WSAEINVALIDPROCTABLE) as info:
        xhost.socket(protocol_info=entry)
    assert "'twice' defines send both on the provider and on its socket class" in str(info.value)
    assert xhost.open_handles() == []


def test_a_bare_tcpip_chain_calls_the_os_socket_natively(xhost: wspframe.Host) -> None:
    """The Socket API calls the OS socket's own method and maps its failures
    as the provider does."""
    with xhost.socket(protocol_info=xhost.entries_for("tcpip")[0]) as s:
        assert s._send is socket.socket.send and s._recv_into is socket.socket.recv_into
        assert s._sendto is not socket.socket.sendto  # tcpip's sendto is its own
        with wsa(C.WSAENOTCONN):
            s.send(b"x")  # EPIPE on a socket that never connected
        with wsa(C.WSAENOTCONN):
            s.recv(1)
        with wsa(C.WSAEFAULT):
            s.send("text")  # type: ignore[arg-type]
        s.settimeout(0)
        with wsa(C.WSAEINVAL):
            s.recv(-1)
    # A subclass that changes an operation loses the native path for it.

    class Counting(wspframe._tcpip.TcpipProvider):
        name = "countingtcp"

        def recv(self, s: Any, bufsize: int, flags: int) -> bytes:
            return super().recv(s, bufsize, flags)

    assert Counting().native("recv") is None
    assert Counting().native("send") is socket.socket.send


def test_a_layer_exception_is_contained_as_a_wsaerror(xhost: wspframe.Host) -> None:
    (entry, *_) = xhost.install_chain("exploding,memory")
    srv, cli, conn = _memory_trio(xhost, entry)
    with wsa(C.WSASYSCALLFAILURE) as info:
        cli.send(b"x")
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    # The socket and its peers still work; nothing is inconsistent.
    conn.sendall(b"ok")
    assert cli.recv(2) == b"ok"
    for s in (cli, conn, srv):
        s.close()
    assert xhost.open_handles() == []


def test_observers_hear_sockets_and_catalog_changes() -> None:
    events: list[str] = []

    class Observer:
        @wspframe.hookimpl
        def wsp_socket_opened(self, socket: wspframe.Socket) -> None:
            events.append(f"open {socket.protocol_info.name}")

        @wspframe.hookimpl
        def wsp_socket_closed(self, socket: wspframe.Socket) -> None:
            events.append("closed")

        @wspframe.hookimpl
        def wsp_catalog_changed(self, action: str, entries: list[wspframe.ProtocolInfo]) -> None:
            events.append(f"catalog {action}")

    with wspframe.Host(config=False, hooks=[Observer()]) as host:
        (entry, *_) = host.install_chain("passthrough,memory")
        host.socket(protocol_info=entry).close()
    # Two base providers, then the layer's hidden entry and the chain entries.
    assert events[:4] == ["catalog install"] * 4
    assert events[-2:] == ["open passthrough over [memory [TCP/IP]]", "closed"]


def test_protocol_zero_takes_the_first_chain_for_datagrams_too() -> None:
    with wspframe.Host(chains=["observe,memory"], config=False) as host:
        with host.socket(AF_INET, SOCK_DGRAM) as s:
            assert s.protocol_info.name == "observe over [memory [UDP/IP]]"


def test_protocol_info_alone_takes_everything_from_it(host: wspframe.Host) -> None:
    v6udp = next(
        e
        for e in host.entries_for("memory")
        if e.socket_type == SOCK_DGRAM and e.address_family == socket.AF_INET6
    )
    with host.socket(protocol_info=v6udp) as s:
        assert (s.family, s.type, s.proto) == (socket.AF_INET6, SOCK_DGRAM, socket.IPPROTO_UDP)


def test_select_refuses_sockets_of_different_chains() -> None:
    with wspframe.Host(chains=["observe,memory", "observe,tcpip"], config=False) as host:
        a = host.socket(protocol_info=host.entries_for("observe,memory")[0])
        b = host.socket(protocol_info=host.entries_for("observe,tcpip")[0])
        for order in ([a, b], [b, a]):
            with wsa(C.WSAEINVAL) as info:
                host.select(order, [], [], 0)
            assert "different chains" in str(info.value)
        a.close()
        b.close()


def test_deinstall_chain_leaves_nothing_orphaned(host: wspframe.Host) -> None:
    host.install_chain("observe,memory")
    host.install_chain("observe,passthrough,memory")
    host.deinstall_chain("observe,memory")
    assert host.catalog.check() == []  # observe still serves the other chain
    assert [e for e in host.enum_all() if e.name == "observe"]
    host.deinstall_chain("observe,passthrough,memory")
    assert host.catalog.check() == []
    assert not [e for e in host.enum_all() if e.is_layered]


def test_a_remembered_startup_failure_keeps_its_cause(xhost: wspframe.Host) -> None:
    for _ in range(2):
        with wsa(C.WSAEPROVIDERFAILEDINIT) as info:
            xhost.socket(protocol_info=xhost.entries_for("failstart")[0])
    assert info.value.__cause__ is not None
