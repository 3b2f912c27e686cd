"""Errors come out of the chain with their codes (bug 10, A12): refused, reset,
would-block, timeout, not-connected, message-size and closed-socket, for
blocking and overlapped calls alike.  A layer that turns them into other codes,
or raises something that is not a WSAError (which the host can only report as
WSASYSCALLFAILURE), breaks applications that branch on them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import wspframe
from wspframe import SOCK_DGRAM, WSA_FLAG_OVERLAPPED, Overlapped, WSAErrorCode

from ._support import PATIENCE, close_all, code_of, loopback, name_of, open_socket, stream_trio

C = WSAErrorCode


def expect_code(code: int, fn: Callable[[], object], what: str) -> None:
    got = code_of(fn)
    if got != code:
        detail = "it succeeded" if got is None else f"it failed with {name_of(got)}"
        hint = " (a provider raised something other than a WSAError)" if got == 10107 else ""
        pytest.fail(
            f"bug 10/A12: {what} must fail with {name_of(code)}, but {detail}{hint}", pytrace=False
        )


def expect_overlapped(code: int, ov: Overlapped, start: Callable[[], object], what: str) -> None:
    """An overlapped operation fails with ``code``: raised at the start (bad
    arguments) or, once started, as its completion's error."""
    raised = code_of(start)
    if raised is not None:
        assert raised == code, f"bug 10: {what} raised {name_of(raised)}, expected {name_of(code)}"
        return
    assert ov.wait(PATIENCE), f"A14: {what} never completed"
    assert ov.error == code, (
        f"bug 10: {what} completed with {name_of(ov.error)}, expected {name_of(code)}"
    )


def _closed_address(host: Any, entry: Any) -> Any:
    probe = open_socket(host, entry)
    probe.bind((loopback(entry), 0))
    address = probe.getsockname()
    probe.close()  # nobody listens there now
    return address


def test_connection_refused(wsp_host: Any, wsp_chain: Any) -> None:
    entry = wsp_chain.entry()
    address = _closed_address(wsp_host, entry)
    s = open_socket(wsp_host, entry, flags=WSA_FLAG_OVERLAPPED)
    s.settimeout(PATIENCE)
    expect_code(C.WSAECONNREFUSED, lambda: s.connect(address), "connect() to a closed port")
    s.close()
    s = open_socket(wsp_host, entry)
    assert s.connect_ex(address) == C.WSAECONNREFUSED, "bug 10: connect_ex() to a closed port"
    s.close()
    s = open_socket(wsp_host, entry, flags=WSA_FLAG_OVERLAPPED)
    ov = Overlapped()
    expect_overlapped(
        C.WSAECONNREFUSED, ov, lambda: s.connect_overlapped(address, ov), "connect_overlapped()"
    )
    s.close()


def test_connection_reset(wsp_host: Any, wsp_chain: Any) -> None:
    """Closing with unread data resets the connection: the peer's pending
    overlapped receive, and its next blocking operations, fail with WSAECONNRESET."""
    listener, client, server = stream_trio(wsp_host, wsp_chain.entry())
    client.sendall(b"unread")
    assert server.recv(1) == b"u", "bug 10: data lost"  # arrived; leave the rest unread
    ov = Overlapped()
    client.recv_overlapped(10, ov)
    server.close()
    assert ov.wait(PATIENCE), "A14: a receive pending across a reset never completed"
    assert ov.error == C.WSAECONNRESET, (
        f"bug 10: a receive pending across a reset completed with {name_of(ov.error)} "
        f"({ov.data!r}), expected WSAECONNRESET"
    )
    close_all(client)
    client, server = _reset_pair(wsp_host, wsp_chain, listener)

    def provoke() -> None:
        for _ in range(200):
            client.sendall(b"x" * 1024)
            client.recv(1)

    expect_code(C.WSAECONNRESET, provoke, "send()/recv() after the peer reset the connection")
    close_all(client, listener)


def _reset_pair(host: Any, chain: Any, listener: Any) -> tuple[Any, Any]:
    client = open_socket(host, chain.entry(), flags=WSA_FLAG_OVERLAPPED)
    client.settimeout(PATIENCE)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    server.settimeout(PATIENCE)
    client.sendall(b"unread")
    assert server.recv(1) == b"u", "bug 10: data lost"
    server.close()
    return client, server


def test_would_block_and_timeout(wsp_host: Any, wsp_chain: Any) -> None:
    listener, client, server = stream_trio(wsp_host, wsp_chain.entry())
    client.setblocking(False)
    expect_code(C.WSAEWOULDBLOCK, lambda: client.recv(10), "recv() with no data, non-blocking")
    client.ioctl(wspframe.FIONBIO, 1)
    expect_code(C.WSAEWOULDBLOCK, lambda: client.recv(10), "recv() after FIONBIO")
    client.settimeout(0.05)
    expect_code(C.WSAETIMEDOUT, lambda: client.recv(10), "recv() with no data and a timeout")
    listener.settimeout(0.05)
    expect_code(C.WSAETIMEDOUT, listener.accept, "accept() with nobody connecting")
    listener.setblocking(False)
    expect_code(C.WSAEWOULDBLOCK, listener.accept, "accept() non-blocking, nobody connecting")
    close_all(client, server, listener)


def test_not_connected(wsp_host: Any, wsp_chain: Any) -> None:
    s = open_socket(wsp_host, wsp_chain.entry())
    expect_code(C.WSAENOTCONN, lambda: s.send(b"x"), "send() on an unconnected stream socket")
    expect_code(C.WSAENOTCONN, lambda: s.recv(1), "recv() on an unconnected stream socket")
    expect_code(C.WSAENOTCONN, s.getpeername, "getpeername() on an unconnected socket")
    s.close()


def test_message_size(wsp_host: Any, wsp_chain: Any) -> None:
    entry = wsp_chain.entry(type=SOCK_DGRAM)
    a = open_socket(wsp_host, entry, flags=WSA_FLAG_OVERLAPPED)
    a.bind((loopback(entry), 0))
    limit = entry.message_size
    assert limit > 0, f"A1: datagram entry {entry.name!r} has no message size"
    big = bytes(limit + 1)
    expect_code(
        C.WSAEMSGSIZE, lambda: a.sendto(big, a.getsockname()), f"sendto() of {limit + 1} bytes"
    )
    ov = Overlapped()
    expect_overlapped(
        C.WSAEMSGSIZE,
        ov,
        lambda: a.sendto_overlapped(big, a.getsockname(), ov),
        f"sendto_overlapped() of {limit + 1} bytes",
    )
    a.close()
