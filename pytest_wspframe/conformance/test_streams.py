"""Data integrity: streams under random fragmentation, both directions at once
(bug 10: no byte lost, duplicated, reordered or miscounted), and datagram
boundaries; sizes come from the run's seed (``--wsp-seed``)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

import wspframe
from wspframe import SOCK_DGRAM, CompletionPort, Overlapped

from ._support import GRACE, PATIENCE, bindable, loopback, open_socket

STREAM_BYTES = 2 * 1024 * 1024  # each way
OVERLAPPED_BYTES = 256 * 1024


def _size(rng: random.Random) -> int:
    """Mostly small pieces, some large ones: fragmentation at every scale."""
    return rng.choice((rng.randint(1, 16), rng.randint(1, 1500), rng.randint(1, 65536)))


def _first_difference(sent: bytes, got: bytes) -> str:
    for i, (a, b) in enumerate(zip(sent, got, strict=False)):
        if a != b:
            return f"first difference at offset {i} (sent {a:#04x}, received {b:#04x})"
    return f"sent {len(sent)} bytes, received {len(got)}"


def _sender(sock: Any, data: bytes, rng: random.Random) -> None:
    view = memoryview(data)
    offset = 0
    while offset < len(view):
        piece = view[offset : offset + _size(rng)]
        if rng.random() < 0.5:
            n = sock.send(piece)
            assert 0 < n <= len(piece), (
                f"bug 10: send() of {len(piece)} bytes reported {n} bytes taken"
            )
            offset += n
        else:
            sock.sendall(piece)
            offset += len(piece)


def _receiver(sock: Any, total: int, rng: random.Random, out: bytearray) -> None:
    while len(out) < total:
        size = _size(rng)
        if rng.random() < 0.5:
            data = sock.recv(size)
            assert len(data) <= size, f"bug 10: recv({size}) returned {len(data)} bytes"
        else:
            buffer = bytearray(size)
            n = sock.recv_into(buffer)
            assert 0 <= n <= size, f"bug 10: recv_into a {size}-byte buffer reported {n} bytes"
            data = bytes(buffer[:n])
        if not data:
            raise AssertionError(f"bug 10: end of stream after {len(out)} of {total} bytes")
        out += data


def test_stream_integrity_under_random_fragmentation(
    wsp_stream_pair: tuple[Any, Any], rng: random.Random
) -> None:
    """bug 10: a few MB each way at once, in random pieces (send, sendall, recv,
    recv_into), arrive complete and in order."""
    client, server = wsp_stream_pair
    for s in (client, server):
        s.settimeout(PATIENCE)
    up, down = rng.randbytes(STREAM_BYTES), rng.randbytes(STREAM_BYTES)
    got_up, got_down = bytearray(), bytearray()
    errors: list[BaseException] = []
    seeds = [rng.random() for _ in range(4)]

    def run(fn: Callable[..., None], *args: Any) -> threading.Thread:
        def body() -> None:
            try:
                fn(*args)
            except BaseException as exc:  # reported below
                errors.append(exc)

        t = threading.Thread(target=body, name=f"conformance-{fn.__name__}", daemon=True)
        t.start()
        return t

    threads = [
        run(_sender, client, up, random.Random(seeds[0])),
        run(_receiver, server, len(up), random.Random(seeds[1]), got_up),
        run(_sender, server, down, random.Random(seeds[2])),
        run(_receiver, client, len(down), random.Random(seeds[3]), got_down),
    ]
    for t in threads:
        t.join(6 * PATIENCE)
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        for s in (client, server):
            s.close()  # wakes the stuck threads
    assert not stuck, f"bug 10: the transfer stalled in {stuck}"
    if errors:
        raise errors[0]
    # pytest.fail, not assert: pytest would diff megabytes (with no truncation in CI).
    if bytes(got_up) != up:
        pytest.fail(f"bug 10: client to server: {_first_difference(up, got_up)}", pytrace=False)
    if bytes(got_down) != down:
        pytest.fail(f"bug 10: server to client: {_first_difference(down, got_down)}", pytrace=False)


def test_overlapped_stream_integrity(
    wsp_stream_pair: tuple[Any, Any], wsp_completion_port: Any, rng: random.Random
) -> None:
    """bug 10/A14: random overlapped sends and receives, many in flight, keep the
    stream's bytes and order, and report the right byte counts."""
    client, server = wsp_stream_pair
    port = wsp_completion_port
    port.associate(client, key=1)
    port.associate(server, key=2)
    data = rng.randbytes(OVERLAPPED_BYTES)
    receives: list[Overlapped] = []
    sizes: dict[Overlapped, int] = {}
    sends: list[tuple[Overlapped, int]] = []
    capacity = offset = received = 0  # capacity: what the pending receives can take

    def post_receive() -> None:
        nonlocal capacity
        ov = Overlapped()
        receives.append(ov)
        sizes[ov] = _size(rng)
        capacity += sizes[ov]
        server.recv_overlapped(sizes[ov], ov)

    while offset < len(data):
        if capacity < len(data) - received:
            post_receive()
        size = min(_size(rng), len(data) - offset)
        send = Overlapped()
        sends.append((send, size))
        client.send_overlapped(data[offset : offset + size], send)
        offset += size
    done_sends = 0
    while done_sends < len(sends) or received < len(data):
        try:
            # Once everything is sent, the rest is on its way: a short wait.
            c = port.get(PATIENCE if done_sends < len(sends) else 2 * GRACE)
        except TimeoutError:
            got = b"".join(ov.data for ov in receives if ov.done())
            if got != data[: len(got)]:
                pytest.fail(
                    f"bug 10: overlapped stream: {_first_difference(data, got)}", pytrace=False
                )
            pytest.fail(
                f"A14/bug 1/bug 10: completions stopped after {done_sends} of {len(sends)} "
                f"sends and {received} of {len(data)} bytes received "
                f"({sum(ov.done() for ov in receives)} of {len(receives)} receives done)",
                pytrace=False,
            )
        assert c.error == 0, f"A14: an overlapped {c.overlapped.op} failed with {c.error}"
        if c.key == 1:
            done_sends += 1
            continue
        assert c.nbytes == len(c.overlapped.data or b""), (
            f"bug 10: a receive completed with nbytes {c.nbytes} for "
            f"{len(c.overlapped.data or b'')} bytes of data"
        )
        received += c.nbytes
        capacity -= sizes[c.overlapped]
        while capacity < len(data) - received:  # partial receives: ask for the rest
            post_receive()
    for ov, size in sends:
        assert ov.nbytes == size, f"bug 10: a {size}-byte overlapped send reported {ov.nbytes}"
    done = [ov.done() for ov in receives]
    assert done == sorted(done, reverse=True), (
        "A14/bug 10: overlapped receives completed out of order (a later one before an earlier one)"
    )
    got = b"".join(ov.data for ov in receives if ov.done())
    if got != data:  # not assert: pytest would diff the whole stream
        pytest.fail(f"bug 10: overlapped stream: {_first_difference(data, got)}", pytrace=False)


def test_datagram_boundaries(
    wsp_datagram_pair: tuple[Any, Any], rng: random.Random, wsp_chain: Any
) -> None:
    """Datagrams keep their boundaries and sender address through the chain:
    one send, one receive of exactly those bytes (sendto, send, recvfrom,
    recv, recvfrom_into, and overlapped)."""
    a, b = wsp_datagram_pair
    b.settimeout(2 * GRACE)  # a datagram on loopback is there when sendto returns
    limit = min(a.protocol_info.message_size or 8192, 8192)
    sender = a.getsockname()
    for batch in range(8):
        messages = [rng.randbytes(rng.randint(0, limit)) for _ in range(8)]
        for i, m in enumerate(messages):
            n = a.send(m) if i % 2 else a.sendto(m, b.getsockname())
            assert n == len(m), f"bug 10: sending a {len(m)}-byte datagram reported {n}"
        for i, m in enumerate(messages):
            how = (batch + i) % 3
            if how == 0:
                data, address = b.recvfrom(limit + 1)
            elif how == 1:
                data, address = b.recv(limit + 1), sender
            else:
                buffer = bytearray(limit + 1)
                n, address = b.recvfrom_into(buffer)
                data = bytes(buffer[:n])
            assert data == m, (
                f"bug 10 (datagrams): datagram {i} of batch {batch} ({len(m)} bytes) came "
                f"back as {len(data)} bytes"
                + (" with other content" if len(data) == len(m) else "")
            )
            assert address[:2] == sender[:2], (
                f"bug 10 (datagrams): sender address {address!r}, expected {sender!r}"
            )
    port = CompletionPort()
    try:
        port.associate(b, key=7)
        messages = [rng.randbytes(rng.randint(1, limit)) for _ in range(8)]
        receives = []
        for _ in messages:
            ov = Overlapped()
            b.recvfrom_overlapped(limit + 1, ov)
            receives.append(ov)
        for m in messages:
            ov = Overlapped()
            a.sendto_overlapped(m, b.getsockname(), ov)
            assert ov.wait(PATIENCE), "A14: an overlapped sendto never completed"
            assert ov.nbytes == len(m), (
                f"bug 10: an overlapped sendto of {len(m)} bytes reported {ov.nbytes}"
            )
        for _ in messages:
            port.get(PATIENCE)
        for m, ov in zip(messages, receives, strict=True):
            assert (ov.data, ov.nbytes) == (m, len(m)), (
                f"bug 10 (datagrams): an overlapped recvfrom got {ov.nbytes} bytes "
                f"for a {len(m)}-byte datagram"
            )
            assert ov.address[:2] == sender[:2], (
                f"bug 10 (datagrams): sender {ov.address!r}, expected {sender!r}"
            )
    finally:
        port.close()


def test_datagram_sockets_of_every_entry(wsp_host: Any, wsp_chain: Any) -> None:
    """Datagram boundaries on every datagram entry of the chain (IPv6 too)."""
    for entry in wsp_chain.entries:
        if entry.socket_type != SOCK_DGRAM or not bindable(entry):
            continue
        host_ = loopback(entry)
        a = open_socket(wsp_host, entry)
        b = open_socket(wsp_host, entry)
        try:
            a.bind((host_, 0))
            b.bind((host_, 0))
            b.settimeout(2 * GRACE)
            for m in (b"one", b"", b"three" * 100):
                a.sendto(m, b.getsockname())
            got = []
            try:
                for _ in range(3):
                    got.append(b.recvfrom(1000)[0])
            except wspframe.WSAError as exc:
                pytest.fail(
                    f"bug 10 (datagrams) through {entry.name!r}: {len(got)} of 3 datagrams "
                    f"arrived ({[len(g) for g in got]} bytes), then {exc.wsa_name}",
                    pytrace=False,
                )
            assert got == [b"one", b"", b"three" * 100], (
                f"bug 10 (datagrams) through {entry.name!r}: got {[len(g) for g in got]} bytes"
            )
        finally:
            a.close()
            b.close()
