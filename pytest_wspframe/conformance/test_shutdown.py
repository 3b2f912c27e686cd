"""Shutdown semantics through the chain: SD_SEND ends the stream for the peer
after the data already sent, and only that direction; a closed peer gives end
of stream; SD_RECEIVE and SD_BOTH behave through the chain exactly as they do
on the base provider alone (layers must not change them)."""

from __future__ import annotations

from typing import Any

import pytest

from wspframe import SD_BOTH, SD_RECEIVE, SD_SEND, Overlapped, WSAError, WSAErrorCode

from ._support import GRACE, PATIENCE, close_all, code_of, name_of, stream_trio

C = WSAErrorCode


def test_sd_send_ends_one_direction(wsp_host: Any, wsp_chain: Any) -> None:
    listener, client, server = stream_trio(wsp_host, wsp_chain.entry())
    pending = Overlapped()
    server.recv_overlapped(100, pending)
    client.sendall(b"last words")
    assert pending.wait(PATIENCE), f"A14: a receive never completed ({pending!r})"
    assert pending.data == b"last words", f"bug 10 (shutdown): the receive got {pending.data!r}"
    eof = Overlapped()
    server.recv_overlapped(100, eof)
    client.shutdown(SD_SEND)
    assert eof.wait(PATIENCE), "bug 10 (shutdown): a pending receive never saw the peer's SD_SEND"
    assert (eof.error, eof.data) == (0, b""), (
        f"bug 10 (shutdown): a pending receive completed with {name_of(eof.error)} and "
        f"{eof.data!r} after the peer's SD_SEND, expected end of stream (0 bytes)"
    )
    assert server.recv(10) == b"", (
        "bug 10 (shutdown): recv() after the peer's SD_SEND is not end of stream"
    )
    code = code_of(lambda: client.send(b"more"))
    assert code == C.WSAESHUTDOWN, (
        f"bug 10: send() after SD_SEND gave {'success' if code is None else name_of(code)}, "
        "expected WSAESHUTDOWN"
    )
    got = b""
    try:
        server.sendall(b"other way")
        while len(got) < 9:
            chunk = client.recv(9 - len(got))
            assert chunk, (
                "bug 10 (shutdown): SD_SEND also ended the other direction (end of stream)"
            )
            got += chunk
    except WSAError as exc:
        pytest.fail(
            f"bug 10 (shutdown): SD_SEND also ended the other direction ({exc.wsa_name})",
            pytrace=False,
        )
    assert got == b"other way", f"bug 10 (shutdown): the other direction got {got!r}"
    close_all(client, server, listener)


def test_close_gives_the_peer_end_of_stream(wsp_host: Any, wsp_chain: Any) -> None:
    listener, client, server = stream_trio(wsp_host, wsp_chain.entry())
    client.sendall(b"bye")
    client.close()
    got = b""
    while len(got) < 3:
        chunk = server.recv(3)
        assert chunk, "bug 9: data sent before close() was lost"
        got += chunk
    assert got == b"bye", f"bug 9: data sent before close() arrived as {got!r}"
    server.settimeout(2 * GRACE)
    try:
        data = server.recv(10)
    except WSAError as exc:
        pytest.fail(
            f"bug 9: the peer of a closed socket got {exc.wsa_name} instead of end of stream",
            pytrace=False,
        )
    assert data == b"", f"bug 9: the peer of a closed socket got {data!r}, not end of stream"
    close_all(server, listener)


def _outcome(fn: Any) -> str:
    try:
        result = fn()
    except WSAError as exc:
        return exc.wsa_name
    return repr(result)


def _receive_side_story(host: Any, entry: Any, how: int) -> list[str]:
    listener, client, server = stream_trio(host, entry)
    try:
        server.shutdown(how)
        client.settimeout(0.2)
        server.settimeout(0.2)
        return [
            _outcome(lambda: server.recv(10)),
            _outcome(lambda: server.send(b"x") if how == SD_RECEIVE else server.send(b"")),
            _outcome(lambda: client.recv(10)),
        ]
    finally:
        close_all(client, server, listener)


@pytest.mark.parametrize("how", [SD_RECEIVE, SD_BOTH], ids=["SD_RECEIVE", "SD_BOTH"])
def test_receive_shutdown_behaves_as_on_the_base(wsp_host: Any, wsp_chain: Any, how: int) -> None:
    entry = wsp_chain.entry()
    base_entry = wsp_host.catalog.get(entry.chain[-1]) if entry.chain else entry
    through_chain = _receive_side_story(wsp_host, entry, how)
    on_base = _receive_side_story(wsp_host, base_entry, how)
    assert through_chain == on_base, (
        f"bug 10 (shutdown): after shutdown({'SD_RECEIVE' if how == SD_RECEIVE else 'SD_BOTH'}) "
        f"(recv, send, peer recv) gave {through_chain} through the chain but {on_base} "
        f"on the base {base_entry.name!r}"
    )
