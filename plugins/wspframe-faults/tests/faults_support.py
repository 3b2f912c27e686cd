"""Helpers of the faults layer's tests: stream pairs, plain peers, background calls.

(A uniquely named module, not conftest: the test folders of several plugins
are collected in one run.)"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import wspframe
from wspframe import AF_INET, SOCK_DGRAM, SOCK_STREAM, Host, Socket

BASES = ("memory", "tcpip")


def base_entry(host: Host, base: str, socket_type: int = SOCK_STREAM) -> wspframe.ProtocolInfo:
    """The IPv4 entry of ``base`` for ``socket_type`` (a socket outside the chain)."""
    return next(
        e
        for e in host.entries_for(base)
        if e.socket_type == socket_type and e.address_family == AF_INET
    )


def stream_pair(host: Host, *, plain_server: str | None = None) -> tuple[Socket, Socket]:
    """A connected (client, server) pair through the host's first chain; with
    ``plain_server=BASE`` the server side is a plain socket of that base."""
    info = base_entry(host, plain_server) if plain_server else None
    listener = host.socket(AF_INET, SOCK_STREAM, protocol_info=info)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = host.socket(AF_INET, SOCK_STREAM)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    return client, server


def datagram_pair(host: Host) -> tuple[Socket, Socket]:
    a = host.socket(AF_INET, SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b = host.socket(AF_INET, SOCK_DGRAM)
    b.bind(("127.0.0.1", 0))
    return a, b


def read_all(sock: Socket, bufsize: int = 65536) -> bytes:
    chunks = []
    while data := sock.recv(bufsize):
        chunks.append(data)
    return b"".join(chunks)


class Background:
    """Run ``fn`` in a thread; ``result()`` re-raises what it raised."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:
            self._error = exc

    def result(self, timeout: float = 30.0) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the background call did not finish"
        if self._error is not None:
            raise self._error
        return self._value
