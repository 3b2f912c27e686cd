"""Closing with I/O in flight (bug 9, A8): every pending operation completes
exactly once with WSA_OPERATION_ABORTED (995), through its mechanism, and the
socket's handles are all released; the last cleanup does the same for every
socket, and the chain starts again afterwards (bug 13)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import wspframe
from wspframe import SOCK_DGRAM, WSA_FLAG_OVERLAPPED, CompletionPort, Event, Overlapped

from ._support import (
    ABORTED,
    GRACE,
    PATIENCE,
    close_all,
    levels,
    loopback,
    name_of,
    open_socket,
    stream_trio,
)


def _start_pending(host: Any, chain: Any, port: CompletionPort) -> tuple[list[Any], dict]:
    """Sockets with overlapped operations that nothing will finish: receives on a
    connected stream, an accept, a datagram receive; by port, event and APC."""
    listener, client, server = stream_trio(host, chain.entry())
    dgram = open_socket(host, chain.entry(type=SOCK_DGRAM), flags=WSA_FLAG_OVERLAPPED)
    dgram.bind((loopback(dgram.protocol_info), 0))
    for key, sock in enumerate((listener, server, dgram), start=1):
        port.associate(sock, key=key)
    pending: dict[Overlapped, tuple[str, Any]] = {}
    calls: list[tuple[Overlapped, int, int]] = []

    def routine(error: int, nbytes: int, ov: Overlapped, flags: int) -> None:
        calls.append((ov, error, threading.get_ident()))

    for _ in range(10):
        ov = Overlapped()
        server.recv_overlapped(100, ov)
        pending[ov] = ("port", server)
    ov = Overlapped(Event())
    server.recv_overlapped(100, ov)
    pending[ov] = ("event", server)
    ov = Overlapped()
    server.recv_overlapped(100, ov, routine=routine)
    pending[ov] = ("apc", server)
    ov = Overlapped()
    listener.accept_overlapped(ov)
    pending[ov] = ("port", listener)
    ov = Overlapped()
    dgram.recvfrom_overlapped(100, ov)
    pending[ov] = ("port", dgram)
    for ov in pending:
        assert not ov.done(), f"A14: {ov!r} completed though nothing was sent"
    return [listener, client, server, dgram], {"pending": pending, "calls": calls}


def _check_aborted(port: CompletionPort, state: dict, what: str) -> None:
    pending: dict[Overlapped, tuple[str, Any]] = state["pending"]
    for ov, (mechanism, _) in pending.items():
        assert ov.wait(PATIENCE), f"bug 9: {what}: a pending {ov.op} never completed"
        assert ov.error == ABORTED, (
            f"bug 9: {what}: a pending {ov.op} ({mechanism}) completed with "
            f"{name_of(ov.error)}, expected WSA_OPERATION_ABORTED (995)"
        )
        with pytest.raises(wspframe.WSAError) as info:
            ov.result(0)
        assert info.value.wsa_code == ABORTED, f"bug 9: {what}: result() raised {info.value}"
    # With no completion routine the port hears of it, event or not (as in Winsock).
    by_port = {ov for ov, (m, _) in pending.items() if m != "apc"}
    got: list[Any] = []
    while len(got) < len(by_port):
        try:
            got.append(port.get(GRACE))
        except TimeoutError:
            break
    delivered = [c.overlapped for c in got]
    missing = [ov.op for ov in by_port if ov not in delivered]
    assert not missing, (
        f"bug 1/9: {what}: the port never heard that {len(missing)} pending operation(s) "
        f"({', '.join(sorted(set(missing)))}) were aborted"
    )
    assert len(set(map(id, delivered))) == len(delivered), f"A14: {what}: a completion came twice"
    assert all(c.error == ABORTED for c in got), f"bug 9: {what}: {got!r}"
    try:
        extra = port.get(0.1)
    except TimeoutError:
        pass
    else:
        pytest.fail(f"A14: {what}: an extra completion after the aborts: {extra!r}", pytrace=False)
    event_ovs = [ov for ov, (m, _) in pending.items() if m == "event"]
    assert all(ov.event.is_set() for ov in event_ovs), f"A15: {what}: an event was not set"
    apc_ovs = [ov for ov, (m, _) in pending.items() if m == "apc"]
    assert state["calls"] == [], f"A15: {what}: a routine ran outside an alertable wait"
    for _ in apc_ovs:
        wspframe.sleep_ex(GRACE)
        if len(state["calls"]) >= len(apc_ovs):
            break
    assert [(ov, err) for ov, err, _ in state["calls"]] == [(ov, ABORTED) for ov in apc_ovs], (
        f"bug 9/A15: {what}: the completion routines reported {state['calls']!r}"
    )


def test_close_with_pending_io_aborts_each_operation_once(wsp_host: Any, wsp_chain: Any) -> None:
    """bug 9: close() with operations pending completes each exactly once with
    995, then releases every level's handle."""
    port = CompletionPort()
    try:
        sockets, state = _start_pending(wsp_host, wsp_chain, port)
        handles = {d.handle for s in sockets for d in levels(s)}
        listener, client, server, dgram = sockets
        for s in (server, listener, dgram):
            s.close()
        _check_aborted(port, state, "close() with I/O pending")
        client.settimeout(PATIENCE)
        assert client.recv(10) == b"", "bug 9: the peer of the closed socket got no end of stream"
        client.close()
        left = handles & set(wsp_host.open_handles())
        assert not left, f"bug 9: closed sockets left handle(s) {sorted(left)} registered"
    finally:
        port.close()


def test_last_cleanup_aborts_pending_io_and_the_chain_starts_again(
    wsp_host: Any, wsp_chain: Any
) -> None:
    """A8/bug 13: the last cleanup aborts pending I/O with 995, closes every
    socket and releases every handle; after a new startup the chain works."""
    port = CompletionPort()
    try:
        sockets, state = _start_pending(wsp_host, wsp_chain, port)
        wsp_host.cleanup()  # the wsp_host fixture's startup was the only one
        try:
            _check_aborted(port, state, "the last cleanup")
            assert all(s.closed for s in sockets), "A8: the last cleanup left a socket open"
            assert wsp_host.open_handles() == [], (
                f"A8: the last cleanup left handles {wsp_host.open_handles()} registered"
            )
        finally:
            wsp_host.startup()
    finally:
        port.close()
    try:
        wsp_host.socket(protocol_info=wsp_chain.entry()).close()
    except wspframe.WSAError as exc:
        pytest.fail(
            f"bug 13: the chain cannot start again after the last cleanup: {exc.wsa_name}: "
            f"{exc.strerror}",
            pytrace=False,
        )
    listener, client, server = stream_trio(wsp_host, wsp_chain.entry())
    client.sendall(b"again")
    assert server.recv(5) == b"again", "bug 13: the restarted chain lost data"
    close_all(client, server, listener)
