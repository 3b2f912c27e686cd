"""Containment (bug 11, A12): a layer's exception reaches the application only
as a WSAError, and leaves the chain consistent: the socket still works or
closes cleanly, nothing stays registered, other sockets are unaffected.

Two directions: a layer *above* the chain under test (``conformance-explode``;
above all but its top layer if the chain is already 7 long, A21) raises, and
the chain under test must stay consistent underneath it; and the
base raises *below* the layers, and every layer must pass the failure up
(never swallow it or turn it into success)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import wspframe
from wspframe import WSA_FLAG_OVERLAPPED, CompletionPort, Overlapped, WSAError, WSAErrorCode

from ._support import (
    GRACE,
    PATIENCE,
    close_all,
    levels,
    name_of,
    no_new_handles,
    open_descriptors,
    open_socket,
    room_above,
    stream_trio,
)

C = WSAErrorCode
SYSCALL = int(C.WSASYSCALLFAILURE)


@pytest.fixture
def exploding(wsp_host: Any, wsp_chain: Any) -> Iterator[tuple[Any, Any]]:
    """``(layer, entry)``: conformance-explode installed above the chain under test
    (above all but its top layer when the chain is already 7 long)."""
    spec, _ = room_above(wsp_chain)
    entries = wsp_host.install_chain(f"conformance-explode,{spec}")
    layer = wsp_host.provider("conformance-explode")
    yield layer, entries[0]
    layer.armed.clear()


def _contained(fn: Any, what: str, code: int = SYSCALL) -> WSAError:
    try:
        fn()
    except WSAError as exc:
        error = exc
    except Exception as exc:
        pytest.fail(f"bug 11: {what} let {exc!r} escape as a non-WSAError", pytrace=False)
    else:
        pytest.fail(f"bug 11: {what} reported success although a provider failed", pytrace=False)
    assert error.wsa_code == code, (
        f"bug 11/A12: {what} raised {error.wsa_name}, expected {name_of(code)}: {error}"
    )
    return error


def _converse(client: Any, server: Any, what: str) -> None:
    try:
        client.sendall(b"ping")
        got = b""
        while len(got) < 4:
            chunk = server.recv(4 - len(got))
            assert chunk, f"bug 11: {what}: end of stream"
            got += chunk
        assert got == b"ping", f"bug 11: {what}: the peer got {got!r}"
        server.sendall(b"pong")
        got = b""
        while len(got) < 4:
            got += client.recv(4 - len(got))
        assert got == b"pong", f"bug 11: {what}: got {got!r}"
    except WSAError as exc:
        pytest.fail(f"bug 11: {what}: the chain no longer works: {exc}", pytrace=False)


def test_exception_above_the_chain_is_contained(
    wsp_host: Any, exploding: tuple[Any, Any], wsp_completions: Any
) -> None:
    """A layer above the chain raises (not a WSAError) in socket(), send(),
    recv(), its completion hook and close(): each time the application gets a
    WSAError (WSASYSCALLFAILURE naming the layer), and the chain under it stays
    consistent: nothing of a failed socket() stays registered or open, the
    failed operation alone fails (exactly once), and a failed close() still
    closes the whole chain."""
    layer, entry = exploding

    # socket(): the layer made the rest of the chain, closed it again, then raised.
    fds = open_descriptors()
    with no_new_handles(wsp_host, "a socket() that failed above the chain"):
        layer.armed.add("socket")
        exc = _contained(lambda: wsp_host.socket(protocol_info=entry), "socket()")
        layer.armed.clear()
        assert "conformance-explode" in str(exc), (
            f"bug 11: the error does not name the layer: {exc}"
        )
    if fds is not None:
        leaked = sorted((open_descriptors() or set()) - fds)
        assert not leaked, f"bug 9/11: the failed socket() left descriptor(s) {leaked} open"

    # send() and recv().
    listener, client, server = stream_trio(wsp_host, entry)
    layer.armed.add("send")
    _contained(lambda: client.send(b"x"), "send()")
    layer.armed.clear()
    layer.armed.add("recv")
    _contained(lambda: server.recv(1), "recv()")
    layer.armed.clear()
    _converse(client, server, "after send() and recv() failed above the chain")

    # The completion hook: that operation fails once, at the top handle's port.
    port = CompletionPort().associate(server, key=9)
    try:
        layer.armed.add("on_complete")
        ov = Overlapped()
        server.recv_overlapped(100, ov)
        client.sendall(b"boom")
        assert ov.wait(PATIENCE), "A14: an operation whose completion hook raised never completed"
        wsp_completions.expect(port, error=SYSCALL, key=9, overlapped=ov, timeout=GRACE)
        wsp_completions.expect_none(port, within=0.05)
        layer.armed.clear()
        ov = Overlapped()
        server.recv_overlapped(100, ov)
        client.sendall(b"fine")
        assert ov.wait(PATIENCE), "A14: the next operation never completed"
        wsp_completions.expect(port, error=0, key=9, overlapped=ov, timeout=GRACE)
    finally:
        port.close()

    # close(): the layer closed the chain below, then raised.
    handles = {d.handle for d in levels(client)}
    layer.armed.add("close_socket")
    _contained(client.close, "close()")
    layer.armed.clear()
    assert client.closed, "bug 11: a close() that raised left the socket open"
    left = handles & set(wsp_host.open_handles())
    assert not left, f"bug 9/11: a failed close() left handle(s) {sorted(left)} registered"
    server.settimeout(2 * GRACE)
    try:
        data = server.recv(10)
    except WSAError as exc:
        pytest.fail(
            f"bug 9/11: after a failed close() the peer got {exc.wsa_name}, not end of stream",
            pytrace=False,
        )
    assert data == b"", f"bug 9/11: after a failed close() the peer received {data!r}"
    close_all(server, listener)


@pytest.mark.parametrize("failure", ["RuntimeError", "WSAECONNRESET"])
def test_failure_below_the_layers_reaches_the_application(
    wsp_host: Any, wsp_chain: Any, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """The base fails a send and a receive: every layer passes the failure up
    unchanged (a WSAError keeps its code; anything else becomes
    WSASYSCALLFAILURE), never swallows it, and the socket still works after."""
    base = wsp_chain.base
    armed: set[str] = set()

    def fail() -> None:
        if failure == "RuntimeError":
            raise RuntimeError("conformance: the base failed")
        raise wspframe.wsa_error(C.WSAECONNRESET, "conformance: the base failed")

    for op in ("send", "recv", "recv_into"):
        original = getattr(base, op)

        def patched(*args: Any, _op: str = op, _original: Any = original) -> Any:
            if _op in armed:
                fail()
            return _original(*args)

        monkeypatch.setattr(base, op, patched)
    listener, client, server = stream_trio(wsp_host, wsp_chain.entry(), flags=WSA_FLAG_OVERLAPPED)
    code = SYSCALL if failure == "RuntimeError" else int(C.WSAECONNRESET)
    armed.update(("send", "recv", "recv_into"))
    _contained(lambda: client.send(b"lost"), "send() failing in the base", code)
    _contained(lambda: server.recv(10), "recv() failing in the base", code)
    _contained(lambda: server.recv_into(bytearray(10)), "recv_into() failing in the base", code)
    armed.clear()
    _converse(client, server, "after the base failed")
    close_all(client, server, listener)


def test_other_sockets_survive_a_failing_one(wsp_host: Any, wsp_chain: Any) -> None:
    """A failure on one socket (here: an operation on a closed one, and a
    refused connect) leaves the chain's other sockets working."""
    entry = wsp_chain.entry()
    listener, client, server = stream_trio(wsp_host, entry)
    victim = open_socket(wsp_host, entry)
    address = listener.getsockname()
    listener.close()
    victim.settimeout(PATIENCE)
    try:
        victim.connect(address)
    except WSAError:
        pass
    victim.close()
    _converse(client, server, "after another socket of the chain failed")
    close_all(client, server)
