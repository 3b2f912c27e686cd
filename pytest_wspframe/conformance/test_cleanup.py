"""Nothing is left behind (A8, bug 13): after the last cleanup of a host that
used the chain (streams, datagrams, overlapped I/O, redirected handles) no
descriptor or thread remains, and a second startup cycle works the same."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from pytest_wspframe.fixtures import new_host
from wspframe import SOCK_DGRAM, WSA_FLAG_OVERLAPPED, CompletionPort, Overlapped

from ._support import GRACE, PATIENCE, loopback, open_descriptors, open_socket, stream_trio


def _workout(host: Any, chain_entries: list[Any]) -> None:
    """Use the chain every way, and leave some of it open for cleanup to close."""
    stream = next(e for e in chain_entries if e.socket_type != SOCK_DGRAM)
    dgram = next(e for e in chain_entries if e.socket_type == SOCK_DGRAM)
    _listener, client, server = stream_trio(host, stream)
    port = CompletionPort().associate(server, key=1)
    try:
        ov = Overlapped()
        server.recv_overlapped(100, ov)
        client.sendall(b"through the chain")
        assert port.get(PATIENCE).overlapped is ov, "bug 1: the port got another completion"
        if not client.is_ifs:
            assert client.redirect(), "bug 3: a non-IFS handle cannot be redirected"
            os.write(client.fileno(), b"redirected")
            got = b""
            while len(got) < 10:
                got += server.recv(10 - len(got))
            assert got == b"redirected", "bug 3: os.write on a redirected handle lost data"
        a = open_socket(host, dgram, flags=WSA_FLAG_OVERLAPPED)
        a.bind((loopback(dgram), 0))
        pending = Overlapped()
        a.recvfrom_overlapped(10, pending)  # left pending: cleanup must abort it
        server.recv_overlapped(100, Overlapped())  # left pending too
    finally:
        port.close()


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


def test_no_descriptor_or_thread_left_after_cleanup(
    request: pytest.FixtureRequest, wsp_chain: Any
) -> None:
    # A host of our own (made as wsp_host is), through two startup cycles.
    fds = open_descriptors()
    threads = _threads()
    host = new_host(request.config, wsp_chain.spec)
    for cycle in (1, 2):
        host.startup()
        try:
            _workout(host, host.entries_for(wsp_chain.spec))
        finally:
            host.cleanup()
        assert host.open_handles() == [], (
            f"A8: cycle {cycle}: the last cleanup left handles {host.open_handles()}"
        )
        deadline = time.monotonic() + GRACE
        while _threads() - threads and time.monotonic() < deadline:
            time.sleep(0.01)
        left = sorted(t.name for t in _threads() - threads)
        assert not left, f"A8/bug 13: cycle {cycle}: thread(s) left after cleanup: {left}"
        if fds is not None:
            now = open_descriptors()
            assert now is not None
            leaked = sorted(now - fds)
            assert not leaked, f"A8/bug 13: cycle {cycle}: descriptor(s) left open: {leaked}"
