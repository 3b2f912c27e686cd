"""Duplicated sockets (A16, bug 12): the shared protocol info is honoured
once; the new descriptor is the same socket (state shared, group and flags
ignored); its handle obeys the handle rules; the socket closes with its last
descriptor."""

from __future__ import annotations

from typing import Any

import pytest

from wspframe import WSA_FLAG_OVERLAPPED, Overlapped, WSAError, WSAErrorCode

from ._support import PATIENCE, close_all, code_of, levels, name_of, stream_trio

C = WSAErrorCode


def test_duplicate_is_honoured_once_and_shares_the_socket(wsp_host: Any, wsp_chain: Any) -> None:
    listener, client, server = stream_trio(wsp_host, wsp_chain.entry())
    shared = _duplicate(client)
    assert shared.catalog_entry_id == client.protocol_info.catalog_entry_id, (
        "A16: the shared protocol info names another catalog entry"
    )
    # group and flags are ignored for a shared protocol info.
    dup = wsp_host.socket(protocol_info=shared, group=1, flags=0)
    second = code_of(lambda: wsp_host.socket(protocol_info=shared))
    assert second == C.WSAEINVAL, (
        f"A16/bug 12: a shared protocol info was honoured twice (second use: "
        f"{'succeeded' if second is None else name_of(second)}, expected WSAEINVAL)"
    )
    assert dup.fileno() != client.fileno(), "A16: the duplicate got the original's handle"
    _check_duplicate_handle(wsp_host, client, dup)
    assert dup.overlapped, "A16: the duplicate lost the original's WSA_FLAG_OVERLAPPED"

    # One socket: data and state are shared by both descriptors.
    client.sendall(b"via original ")
    dup.sendall(b"via duplicate")
    got = b""
    while len(got) < 26:
        got += server.recv(26 - len(got))
    assert got == b"via original via duplicate", f"A16/bug 12: the peer received {got!r}"
    server.sendall(b"to both")
    first = dup.recv(4)
    rest = b""
    client.settimeout(PATIENCE)
    while len(first) + len(rest) < 7:
        rest += client.recv(7 - len(first) - len(rest))
    assert first + rest == b"to both", (
        f"A16/bug 12: the descriptors do not share one stream ({first!r} + {rest!r})"
    )
    ov = Overlapped()
    dup.recv_overlapped(10, ov)
    server.sendall(b"ov")
    assert ov.wait(PATIENCE), f"A16: overlapped I/O through the duplicate never completed: {ov!r}"
    assert ov.data == b"ov", f"A16: overlapped I/O through the duplicate: {ov!r}"

    # The socket closes with its last descriptor only.
    client.close()
    dup.sendall(b"still open")
    got = b""
    while len(got) < 10:
        got += server.recv(10 - len(got))
    assert got == b"still open", "A16/bug 12: closing one descriptor broke the other"
    dup.close()
    server.settimeout(PATIENCE)
    assert server.recv(1) == b"", "A16: closing the last descriptor did not close the socket"
    close_all(server, listener)


def _duplicate(sock: Any) -> Any:
    try:
        return sock.duplicate()
    except WSAError as exc:
        pytest.fail(
            f"A16: duplicating a socket of the chain failed: {exc.wsa_name}: {exc.strerror}",
            pytrace=False,
        )


def _check_duplicate_handle(host: Any, original: Any, dup: Any) -> None:
    top = levels(original)[0]
    record = host._table.get(dup.fileno())
    assert record is not None, (
        f"A9/A10/A16: the duplicate's handle {dup.fileno()} is not in the host's handle table"
    )
    assert record.owner == top.level.catalog_entry_id, (
        f"A9/A10/A16: the duplicate's handle is registered under {record.owners}, not the top "
        f"level's id {top.level.catalog_entry_id}"
    )
    assert record.ifs == original.is_ifs, (
        f"A16/bug 3: the duplicate's handle is {'IFS' if record.ifs else 'minted'} but the "
        f"original's is {'IFS' if original.is_ifs else 'minted'}"
    )
    if not record.ifs:
        context = host.upcalls.query_socket_handle_context(dup.fileno())
        assert context is top.context, "A10/A16: the duplicate's handle has another context"


def test_duplicate_of_an_overlapped_listener(wsp_host: Any, wsp_chain: Any) -> None:
    """A16: a duplicated listener accepts through either descriptor."""
    from ._support import loopback, open_socket

    entry = wsp_chain.entry()
    listener = open_socket(wsp_host, entry, flags=WSA_FLAG_OVERLAPPED)
    listener.bind((loopback(entry), 0))
    listener.listen(4)
    dup = wsp_host.socket(protocol_info=_duplicate(listener))
    listener.close()
    client = open_socket(wsp_host, entry)
    client.settimeout(PATIENCE)
    client.connect(dup.getsockname())
    dup.settimeout(PATIENCE)
    try:
        server, _ = dup.accept()
    except Exception as exc:
        pytest.fail(f"A16/bug 12: the duplicate of a listener cannot accept: {exc}", pytrace=False)
    client.sendall(b"hello")
    server.settimeout(PATIENCE)
    assert server.recv(5) == b"hello", "A16: a connection accepted by the duplicate lost data"
    close_all(client, server, dup)
