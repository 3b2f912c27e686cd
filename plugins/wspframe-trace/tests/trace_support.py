"""Helpers of the trace layer's tests: pairs of sockets, tshark, background calls.

(A uniquely named module, not conftest: the test folders of several plugins
are collected in one run.)"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from typing import Any

import wspframe
from wspframe import AF_INET, SOCK_STREAM, Host, Socket


def base_entry(host: Host, base: str, socket_type: int = SOCK_STREAM, af: int = AF_INET) -> Any:
    """The entry of ``base`` for ``socket_type`` and ``af`` (a socket outside the chain)."""
    return next(
        e for e in host.entries_for(base) if e.socket_type == socket_type and e.address_family == af
    )


def stream_pair(
    host: Host, *, af: int = AF_INET, plain_server: str | None = None, flags: int = 0
) -> tuple[Socket, Socket]:
    """A connected (client, server) pair through the host's first chain."""
    info = base_entry(host, plain_server, af=af) if plain_server else None
    listener = host.socket(af, SOCK_STREAM, protocol_info=info, flags=flags)
    listener.bind(("::1" if af == wspframe.AF_INET6 else "127.0.0.1", 0))
    listener.listen()
    client = host.socket(af, SOCK_STREAM, flags=flags)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    return client, server


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


def run_tshark(tshark: str, *args: str) -> str:
    """tshark's standard output; its stderr is kept for the failure message."""
    proc = subprocess.run([tshark, *args], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"tshark {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


def follow_raw(tshark: str, path: str, stream: int = 0) -> tuple[bytes, bytes]:
    """``tshark -z follow,tcp,raw,N``: the bytes from node 0 and from node 1."""
    out = run_tshark(tshark, "-r", path, "-q", "-z", f"follow,tcp,raw,{stream}")
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Node 1:")) + 1
    first, second = bytearray(), bytearray()
    for line in lines[start:]:
        if line.startswith("====="):
            break
        if line.startswith("\t"):
            second += bytes.fromhex(line.strip())
        elif line.strip():
            first += bytes.fromhex(line.strip())
    return bytes(first), bytes(second)
