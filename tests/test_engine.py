"""The host's I/O engine (``_engine.py``) and the tcpip provider's overlapped
operations that run through it: immediate and deferred completion, strict FIFO
per direction, partial sends, cancel and close aborting exactly once (SPI rule
A8, bug 9), error mapping, and no thread or descriptor left behind."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import selectors
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from wspframe import WSAError, WSAErrorCode
from wspframe._constants import FIONBIO, FIONREAD
from wspframe._engine import IMMEDIATE, READ, WRITE, IOEngine
from wspframe._handles import HandleTable, Upcalls
from wspframe._overlapped import Overlapped, finish
from wspframe._tcpip import TcpipProvider, TcpipSocket

from .conftest import open_fds

C = WSAErrorCode
ENGINE_THREAD = "wspframe-io-engine"


# -- helpers ---------------------------------------------------------------------------------
class Recorder:
    """A ``complete`` that records every call and then finishes the overlapped."""

    def __init__(self, table: HandleTable | None = None) -> None:
        self.table = table
        self.calls: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self.cond = threading.Condition()

    def __call__(self, handle: int, ov: Overlapped, error: int, nbytes: int) -> None:
        entry = {
            "handle": handle,
            "ov": ov,
            "error": error,
            "nbytes": nbytes,
            "data": ov.data,
            "address": ov.address,
            "thread": threading.current_thread().name,
            "registered": None if self.table is None else handle in self.table,
        }
        try:
            finish(ov, error, nbytes, None)  # raises if completed twice
        except BaseException as exc:
            self.errors.append(exc)
        with self.cond:
            self.calls.append(entry)
            self.cond.notify_all()

    def wait(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.calls) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{len(self.calls)} completions, expected {count}")
                self.cond.wait(remaining)
            return list(self.calls)

    def of(self, ov: Overlapped) -> list[dict[str, Any]]:
        with self.cond:
            return [c for c in self.calls if c["ov"] is ov]


def started(op: str = "recv") -> Overlapped:
    ov = Overlapped()
    ov._start(op, None)
    return ov


def recv_attempt(sock: socket.socket, size: int, ov: Overlapped) -> Callable[[], int]:
    def attempt() -> int:
        data = ov.data = sock.recv(size, socket.MSG_DONTWAIT)
        return len(data)

    return attempt


def send_attempt(sock: socket.socket, data: bytes) -> Callable[[], int]:
    """A stream send that keeps its remainder at the head until all is sent."""
    view = memoryview(data)

    def attempt() -> int:
        nonlocal view
        while True:
            n = sock.send(view, socket.MSG_DONTWAIT)
            if n == len(view):
                return len(data)
            view = view[n:]

    return attempt


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected loopback TCP pair (127.0.0.1)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        a = socket.create_connection(listener.getsockname(), timeout=5)
        b, _ = listener.accept()
    a.settimeout(None)
    b.settimeout(None)
    return a, b


def read_exactly(sock: socket.socket, n: int, timeout: float = 30.0) -> bytes:
    sock.settimeout(timeout)
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(min(1 << 20, n - len(out)))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def engine_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == ENGINE_THREAD and t.is_alive()]


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def engine(rec: Recorder) -> Iterator[IOEngine]:
    eng = IOEngine(rec)
    yield eng
    eng.close()
    assert not rec.errors, rec.errors


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = tcp_pair()
    yield a, b
    a.close()
    b.close()


# -- the engine: immediate and deferred completion ----------------------------------------------
def test_an_operation_that_finishes_at_once_completes_in_the_caller_without_a_thread(
    rec: Recorder, pair: tuple[socket.socket, socket.socket], no_leaks: None
) -> None:
    a, b = pair
    fds = open_fds()
    eng = IOEngine(rec)
    a.sendall(b"ready")
    time.sleep(0.05)
    ov = started()
    eng.submit(b.fileno(), b, READ, recv_attempt(b, 100, ov), ov)
    # Done before submit returned, in this thread, and the engine made nothing.
    assert ov.done()
    assert rec.calls == [
        {
            "handle": b.fileno(),
            "ov": ov,
            "error": 0,
            "nbytes": 5,
            "data": b"ready",
            "address": None,
            "thread": threading.current_thread().name,
            "registered": None,
        }
    ]
    w = started("send")
    eng.submit(a.fileno(), a, WRITE, send_attempt(a, b"x" * 1000), w)
    assert w.done() and w.nbytes == 1000
    assert engine_threads() == []
    assert open_fds() == fds
    eng.close()
    assert not rec.errors


def test_an_operation_that_would_block_completes_later_in_the_engine_thread(
    engine: IOEngine, rec: Recorder, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    ov = started()
    engine.submit(b.fileno(), b, READ, recv_attempt(b, 100, ov), ov)
    assert not ov.done() and rec.calls == []
    assert engine.pending(b) == 1
    assert len(engine_threads()) == 1
    a.sendall(b"later")
    assert ov.wait(5)
    (call,) = rec.wait(1)
    assert (call["error"], call["nbytes"], call["data"]) == (0, 5, b"later")
    assert call["thread"] == ENGINE_THREAD
    assert engine.pending(b) == 0


def test_an_operation_queued_behind_another_waits_even_when_it_could_finish(
    engine: IOEngine, rec: Recorder, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    first, second = started(), started()
    engine.submit(b.fileno(), b, READ, recv_attempt(b, 3, first), first)
    # The socket becomes readable, but the second receive must not overtake the first.
    a.sendall(b"abcdef")
    time.sleep(0.02)
    engine.submit(b.fileno(), b, READ, recv_attempt(b, 3, second), second)
    assert first.wait(5) and second.wait(5)
    assert (first.data, second.data) == (b"abc", b"def")
    assert [c["ov"] for c in rec.wait(2)] == [first, second]


def test_the_directions_are_independent(
    engine: IOEngine, rec: Recorder, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    pending_read = started()
    engine.submit(b.fileno(), b, READ, recv_attempt(b, 10, pending_read), pending_read)
    w = started("send")
    engine.submit(b.fileno(), b, WRITE, send_attempt(b, b"pong"), w)
    assert w.done() and w.nbytes == 4 and not pending_read.done()
    assert read_exactly(a, 4) == b"pong"
    # IMMEDIATE (ioctl) never queues behind the pending receive.
    io = started("ioctl")
    engine.submit(b.fileno(), b, IMMEDIATE, lambda: 42, io)
    assert io.done() and io.nbytes == 42
    # ...and reports "would block" as WSAEWOULDBLOCK instead of waiting.
    io2 = started("ioctl")
    engine.submit(b.fileno(), b, IMMEDIATE, recv_attempt(b, 1, io2), io2)
    assert io2.done() and io2.error == C.WSAEWOULDBLOCK
    assert not pending_read.done()


def test_hundred_pending_receives_fed_in_pieces_keep_order_and_bytes(
    engine: IOEngine, rec: Recorder, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    rng = random.Random(7)
    sizes = [rng.randint(1, 300) for _ in range(100)]
    ovs = []
    for size in sizes:
        ov = started()
        engine.submit(b.fileno(), b, READ, recv_attempt(b, size, ov), ov)
        ovs.append(ov)
    assert engine.pending(b) == 100 and rec.calls == []
    stream = bytes(rng.getrandbits(8) for _ in range(sum(sizes)))
    # Feed it in random pieces with pauses, so receives complete a few at a time
    # and some get fewer bytes than they asked for.
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, 700)
        a.sendall(stream[pos : pos + step])
        pos += step
        time.sleep(0.001)
    deadline = time.monotonic() + 10
    while True:
        with rec.cond:
            got = b"".join(c["data"] for c in rec.calls)
            if got == stream or len(rec.calls) == len(ovs):
                break
        assert time.monotonic() < deadline, "the stream never arrived"
        time.sleep(0.01)
    done = [ov for ov in ovs if ov.done()]
    # Completed ones are a prefix of the submission order, each exactly once,
    # in order, and their bytes are the stream's (or its head, if all 100 were
    # used up by short reads: the rest is then still in the socket).
    assert done and done == ovs[: len(done)]
    calls = rec.wait(len(done))
    assert [c["ov"] for c in calls] == done
    assert all(c["error"] == 0 and c["nbytes"] == len(c["data"]) > 0 for c in calls)
    assert any(c["nbytes"] < size for c, size in zip(calls, sizes[: len(calls)], strict=True))
    got = b"".join(c["data"] for c in calls)
    if len(done) == len(ovs):
        got += read_exactly(b, len(stream) - len(got), timeout=5)
    assert got == stream
    # The rest are still pending and abort, exactly once each, on cancel.
    rest = ovs[len(done) :]
    assert engine.cancel(b) == len(rest)
    assert [c["ov"] for c in rec.calls[len(done) :]] == rest
    assert {c["error"] for c in rec.calls[len(done) :]} <= {C.WSA_OPERATION_ABORTED}


def test_large_sends_complete_with_the_full_count_in_order(
    engine: IOEngine, rec: Recorder, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    blobs = [os.urandom(3 * 1024 * 1024 + i) for i in range(3)]  # several MiB each
    ovs = []
    for blob in blobs:
        ov = started("send")
        engine.submit(a.fileno(), a, WRITE, send_attempt(a, blob), ov)
        ovs.append(ov)
    # Nobody reads yet: the first is partly sent, nothing is complete.
    time.sleep(0.05)
    assert not any(ov.done() for ov in ovs)
    got = read_exactly(b, sum(map(len, blobs)))
    for ov in ovs:
        assert ov.wait(10)
    assert [c["ov"] for c in rec.wait(3)] == ovs
    assert [(ov.error, ov.nbytes) for ov in ovs] == [(0, len(x)) for x in blobs]
    assert hashlib.sha256(got).digest() == hashlib.sha256(b"".join(blobs)).digest()


def test_sends_from_many_threads_never_interleave_and_complete_in_stream_order(
    engine: IOEngine, rec: Recorder, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
    threads_n, per_thread = 4, 30
    messages: dict[int, bytes] = {}

    def worker(t: int) -> None:
        for n in range(per_thread):
            body = bytes([t]) * random.randint(1, 40_000)
            ov = started("send")
            messages[id(ov)] = struct.pack("!HHI", t, n, len(body)) + body
            engine.submit(a.fileno(), a, WRITE, send_attempt(a, messages[id(ov)]), ov)

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    received = bytearray()

    def reader() -> None:
        b.settimeout(30)
        while chunk := b.recv(1 << 16):
            received.extend(chunk)

    r = threading.Thread(target=reader)
    r.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join(30)
    calls = rec.wait(threads_n * per_thread, timeout=30)
    a.shutdown(socket.SHUT_WR)
    r.join(30)
    assert not r.is_alive()
    # Every message arrived whole, and in the order the sends completed.
    expected = b"".join(messages[id(c["ov"])] for c in calls)
    assert bytes(received) == expected
    assert all(c["error"] == 0 and c["nbytes"] == len(messages[id(c["ov"])]) for c in calls)
    # Each thread's own sends kept its order.
    for t in range(threads_n):
        seq = [
            struct.unpack("!HHI", messages[id(c["ov"])][:8])[1]
            for c in calls
            if messages[id(c["ov"])][:2] == struct.pack("!H", t)
        ]
        assert seq == list(range(per_thread))


def test_completions_of_one_socket_are_delivered_one_at_a_time_in_order(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    # A completion that starts the next operation (as a layer or the redirector
    # does): the new one finishes at once, but is delivered only after the
    # completion under way has returned.
    a, b = pair
    log: list[str] = []
    ovs: list[Overlapped] = []

    def complete(handle: int, ov: Overlapped, error: int, nbytes: int) -> None:
        n = ovs.index(ov)
        log.append(f"enter {n}")
        finish(ov, error, nbytes, None)
        if n < 3:
            nxt = started("send")
            ovs.append(nxt)
            engine.submit(a.fileno(), a, WRITE, send_attempt(a, b"x"), nxt)
        log.append(f"exit {n}")

    engine = IOEngine(complete)
    try:
        first = started("send")
        ovs.append(first)
        engine.submit(a.fileno(), a, WRITE, send_attempt(a, b"x"), first)
        assert log == [f"{what} {n}" for n in range(4) for what in ("enter", "exit")]
        assert all(ov.done() and ov.nbytes == 1 for ov in ovs)
        assert read_exactly(b, 4) == b"xxxx"
    finally:
        engine.close()


def test_a_completion_may_cancel_its_own_socket(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    # A completion that closes the socket (cancel from inside the delivery, in
    # the engine thread): the rest abort exactly once, and nothing deadlocks.
    a, b = pair
    rec = Recorder()
    counts: list[int] = []

    def complete(handle: int, ov: Overlapped, error: int, nbytes: int) -> None:
        rec(handle, ov, error, nbytes)
        if len(rec.calls) == 1:
            counts.append(engine.cancel(b))

    engine = IOEngine(complete)
    try:
        ovs = [started() for _ in range(5)]
        for ov in ovs:
            engine.submit(b.fileno(), b, READ, recv_attempt(b, 1, ov), ov)
        a.send(b"!")
        assert all(ov.wait(5) for ov in ovs)
        assert counts == [4]
        assert [c["ov"] for c in rec.calls] == ovs
        assert [c["error"] for c in rec.calls] == [0] + [C.WSA_OPERATION_ABORTED] * 4
        assert rec.calls[0]["thread"] == ENGINE_THREAD
        assert not rec.errors
        assert engine.pending() == 0
    finally:
        engine.close()


# -- cancel, close, races ------------------------------------------------------------------------
def test_cancel_aborts_every_pending_operation_exactly_once_in_the_calling_thread(
    engine: IOEngine, rec: Recorder, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    reads = [started() for _ in range(50)]
    for ov in reads:
        engine.submit(b.fileno(), b, READ, recv_attempt(b, 10, ov), ov)
    # Fill the send buffer so that writes queue up too.
    b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
    writes = [started("send") for _ in range(5)]
    for ov in writes:
        engine.submit(b.fileno(), b, WRITE, send_attempt(b, b"z" * (4 << 20)), ov)
    assert not writes[0].done()  # partly sent, the rest waits at the head
    assert engine.pending(b) == 55
    assert engine.cancel(b) == 55
    calls = rec.wait(55)
    assert [c["ov"] for c in calls] == reads + writes
    assert {c["error"] for c in calls} == {C.WSA_OPERATION_ABORTED}
    assert {c["thread"] for c in calls} == {threading.current_thread().name}
    assert engine.pending(b) == 0
    # Data arriving now reaches no aborted operation; a second cancel finds nothing.
    a.sendall(b"too late")
    time.sleep(0.05)
    assert len(rec.calls) == 55 and not rec.errors
    assert engine.cancel(b) == 0
    # The socket is usable again afterwards.
    ov = started()
    engine.submit(b.fileno(), b, READ, recv_attempt(b, 100, ov), ov)
    assert ov.wait(5) and ov.data == b"too late"


def test_cancel_racing_readiness_completes_each_operation_exactly_once(rec: Recorder) -> None:
    engine = IOEngine(rec)
    try:
        outcomes = {"data": 0, "aborted": 0}
        for _ in range(200):
            a, b = socket.socketpair()
            try:
                ovs = [started() for _ in range(3)]
                for ov in ovs:
                    engine.submit(b.fileno(), b, READ, recv_attempt(b, 1, ov), ov)
                go = threading.Barrier(2)

                def feed(a: socket.socket = a, go: threading.Barrier = go) -> None:
                    go.wait()
                    a.send(b"xyz")

                t = threading.Thread(target=feed)
                t.start()
                go.wait()
                if random.random() < 0.5:
                    time.sleep(random.random() / 2000)
                aborted = engine.cancel(b)
                # Nothing of b is pending once cancel returns (rule 9).
                assert all(ov.done() for ov in ovs)
                t.join(5)
                for ov in ovs:
                    (call,) = rec.of(ov)  # exactly once
                    if call["error"]:
                        assert call["error"] == C.WSA_OPERATION_ABORTED
                        outcomes["aborted"] += 1
                    else:
                        assert len(call["data"]) == 1
                        outcomes["data"] += 1
                # Order holds: what got data precedes what was aborted.
                errors = [rec.of(ov)[0]["error"] for ov in ovs]
                assert errors == sorted(errors)
                assert aborted == errors.count(C.WSA_OPERATION_ABORTED)
            finally:
                a.close()
                b.close()
        assert not rec.errors, rec.errors[:3]
        # Both outcomes happened: the race was really run.
        assert outcomes["data"] and outcomes["aborted"], outcomes
    finally:
        engine.close()


def test_close_aborts_everything_joins_its_thread_and_leaves_no_descriptor(
    rec: Recorder, no_leaks: None
) -> None:
    a, b = socket.socketpair()
    fds = open_fds()
    engine = IOEngine(rec)
    ovs = [started() for _ in range(10)]
    for ov in ovs:
        engine.submit(b.fileno(), b, READ, recv_attempt(b, 1, ov), ov)
    (thread,) = engine_threads()
    # Its selector and wakeup pair are its only descriptors.
    assert len(open_fds() - fds) == 3
    engine.close()
    assert open_fds() == fds
    assert not thread.is_alive()
    assert [c["ov"] for c in rec.calls] == ovs
    assert {c["error"] for c in rec.calls} == {C.WSA_OPERATION_ABORTED}
    engine.close()  # idempotent
    # After close: an operation aborts at once and starts nothing.
    late = started()
    engine.submit(b.fileno(), b, READ, recv_attempt(b, 1, late), late)
    assert late.done() and late.error == C.WSA_OPERATION_ABORTED
    assert engine_threads() == []
    a.close()
    b.close()
    assert "closed" in repr(engine)
    assert not rec.errors


def test_closing_a_socket_without_cancel_does_not_wedge_its_descriptor_number(
    engine: IOEngine, rec: Recorder
) -> None:
    a, b = socket.socketpair()
    stale = started()
    engine.submit(b.fileno(), b, READ, recv_attempt(b, 1, stale), stale)
    number = b.fileno()
    b.close()  # a provider bug: no cancel first
    a.close()
    # The same descriptor number comes back for a new socket.
    c, d = socket.socketpair()
    try:
        sock = c if c.fileno() == number else d if d.fileno() == number else None
        if sock is None:
            pytest.skip("the descriptor number was not reused")
        other = d if sock is c else c
        fresh = started()
        engine.submit(sock.fileno(), sock, READ, recv_attempt(sock, 10, fresh), fresh)
        assert stale.done() and stale.error == C.WSA_OPERATION_ABORTED
        other.send(b"ok")
        assert fresh.wait(5) and fresh.data == b"ok"
    finally:
        c.close()
        d.close()


def test_with_select_a_socket_closed_without_cancel_fails_its_operations(rec: Recorder) -> None:
    # select() refuses a closed descriptor (epoll silently forgets it): the
    # engine fails what waited on it and keeps serving the others.
    engine = IOEngine(rec, selector_factory=selectors.SelectSelector)
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    try:
        dead = started()
        engine.submit(b.fileno(), b, READ, recv_attempt(b, 1, dead), dead)
        time.sleep(0.05)
        b.close()  # a provider bug: no cancel first
        ok = started()
        engine.submit(d.fileno(), d, READ, recv_attempt(d, 10, ok), ok)  # wakes the engine
        assert dead.wait(5) and dead.error == C.WSAENOTSOCK
        c.send(b"ok")
        assert ok.wait(5) and ok.data == b"ok"
        assert engine_threads() and not rec.errors
    finally:
        engine.close()
        for s in (a, c, d):
            s.close()


# -- errors ------------------------------------------------------------------------------------
def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_reset_completes_a_pending_receive_with_wsaeconnreset(
    engine: IOEngine, rec: Recorder
) -> None:
    a, b = tcp_pair()
    try:
        ov = started()
        engine.submit(b.fileno(), b, READ, recv_attempt(b, 10, ov), ov)
        _reset(a)
        assert ov.wait(5)
        assert ov.error == C.WSAECONNRESET == 10054
        assert rec.of(ov)[0]["thread"] == ENGINE_THREAD
        # Failing at once maps the same way (the socket's error was consumed, so
        # a send now fails with EPIPE: WSAESHUTDOWN).
        w = started("send")
        engine.submit(b.fileno(), b, WRITE, send_attempt(b, b"x"), w)
        assert w.done() and w.error in (C.WSAESHUTDOWN, C.WSAECONNRESET)
    finally:
        b.close()


def test_other_exceptions_are_contained_and_the_engine_thread_survives(
    engine: IOEngine, rec: Recorder, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    calls = {"n": 0}

    def broken() -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise BlockingIOError  # first in the caller's thread: wait
        raise ZeroDivisionError("provider bug")  # then in the engine thread

    bad = started()
    engine.submit(b.fileno(), b, READ, broken, bad)
    good = started()
    engine.submit(b.fileno(), b, READ, recv_attempt(b, 10, good), good)
    a.sendall(b"fine")
    assert bad.wait(5) and good.wait(5)
    assert bad.error == C.WSASYSCALLFAILURE
    assert rec.of(bad)[0]["thread"] == ENGINE_THREAD
    assert good.error == 0 and good.data == b"fine"
    assert engine_threads()


def test_a_complete_that_raises_is_reported_and_does_not_stop_the_engine(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    seen: list[Overlapped] = []

    def complete(handle: int, ov: Overlapped, error: int, nbytes: int) -> None:
        seen.append(ov)
        finish(ov, error, nbytes, None)
        if len(seen) == 1:
            raise RuntimeError("routing bug")

    engine = IOEngine(complete)
    try:
        ovs = [started(), started()]
        for ov in ovs:
            engine.submit(b.fileno(), b, READ, recv_attempt(b, 2, ov), ov)
        a.sendall(b"abcd")
        assert all(ov.wait(5) for ov in ovs)
        assert seen == ovs and [ov.data for ov in ovs] == [b"ab", b"cd"]
        assert len(reported) == 1 and isinstance(reported[0].exc_value, RuntimeError)
    finally:
        engine.close()


def test_an_unknown_kind_is_refused_and_completes_nothing(
    engine: IOEngine, rec: Recorder, pair: tuple[socket.socket, socket.socket]
) -> None:
    _, b = pair
    ov = started()
    with pytest.raises(WSAError) as info:
        engine.submit(b.fileno(), b, "x", lambda: 0, ov)
    assert info.value.wsa_code == C.WSAEINVAL
    assert rec.calls == []


def test_a_closed_socket_completes_with_wsaenotsock(engine: IOEngine, rec: Recorder) -> None:
    a, b = socket.socketpair()
    a.close()
    b.close()
    ov = started()
    engine.submit(3, b, READ, lambda: 0, ov)
    assert ov.done() and ov.error == C.WSAENOTSOCK
    assert engine.cancel(b) == 0


def test_a_selector_the_kernel_does_not_watch_is_woken_through_the_socketpair(
    rec: Recorder, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    engine = IOEngine(rec, selector_factory=selectors.SelectSelector)
    try:
        first = started()
        engine.submit(b.fileno(), b, READ, recv_attempt(b, 10, first), first)  # starts the thread
        time.sleep(0.05)  # the engine thread is now inside select()
        second = started("send")
        b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 1024)
        big = os.urandom(512 << 10)
        engine.submit(b.fileno(), b, WRITE, send_attempt(b, big), second)
        assert not second.done()
        assert read_exactly(a, len(big)) == big
        assert second.wait(5) and second.nbytes == len(big)
        a.sendall(b"hi")
        assert first.wait(5) and first.data == b"hi"
    finally:
        engine.close()
    assert not rec.errors


# -- the tcpip provider's overlapped operations ---------------------------------------------------
class Tcpip:
    """A tcpip provider started on its own handle table, completing into a Recorder."""

    def __init__(self) -> None:
        self.table = HandleTable(lambda cid: True)
        self.rec = Recorder(self.table)
        self.upcalls = Upcalls(self.table, complete=self.rec)
        self.provider = TcpipProvider()
        self.provider.startup(self.upcalls)
        self.info = TcpipProvider.protocols[0].replace(catalog_entry_id=1001, chain=(1001,))
        self.udp = TcpipProvider.protocols[1].replace(catalog_entry_id=1002, chain=(1002,))

    def socket(self, udp: bool = False) -> TcpipSocket:
        info = self.udp if udp else self.info
        return self.provider.socket(0, 0, 0, info, 0, 0)

    def listener(self) -> TcpipSocket:
        srv = self.socket()
        self.provider.bind(srv, ("127.0.0.1", 0))
        self.provider.listen(srv, 5)
        return srv

    def connected(self) -> tuple[TcpipSocket, TcpipSocket, TcpipSocket]:
        srv = self.listener()
        cli = self.socket()
        self.provider.connect(cli, srv.getsockname())
        conn, _ = self.provider.accept(srv)
        return srv, cli, conn

    def close(self) -> None:
        self.provider.cleanup()
        engine = self.upcalls._engine
        if engine is not None:
            engine.close()
        assert not self.rec.errors, self.rec.errors


@pytest.fixture
def tcpip(no_leaks: None) -> Iterator[Tcpip]:
    t = Tcpip()
    yield t
    t.close()


def test_tcpip_connect_and_accept_overlapped(tcpip: Tcpip) -> None:
    p = tcpip.provider
    srv = tcpip.listener()
    a = started("accept")
    p.accept_overlapped(srv, a)
    assert not a.done()  # nobody is connecting yet
    cli = tcpip.socket()
    c = started("connect")
    p.connect_overlapped(cli, srv.getsockname(), c)
    assert c.wait(5) and a.wait(5)
    assert (c.error, c.nbytes, a.error, a.nbytes) == (0, 0, 0, 0)
    new = a.data
    assert isinstance(new, TcpipSocket)
    # Registered exactly as accept() does: an IFS handle under the listener's entry.
    record = tcpip.table.get(new.handle)
    assert record is not None and record.ifs and record.owners == [1001]
    assert new.protocol_info == srv.protocol_info and new.gettimeout() is None
    assert a.address == cli.getsockname() == new.getpeername()
    # And the pair carries data both ways through the overlapped operations.
    s, r = started("send"), started()
    p.recv_overlapped(new, 100, 0, r)
    p.send_overlapped(cli, b"over the engine", 0, s)
    assert s.wait(5) and r.wait(5)
    assert (s.nbytes, r.data) == (15, b"over the engine")
    for sock in (new, cli, srv):
        p.close_socket(sock)
    assert len(tcpip.table) == 0


def test_tcpip_connect_overlapped_refused(tcpip: Tcpip) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = probe.getsockname()  # nobody listens there once closed
    cli = tcpip.socket()
    c = started("connect")
    tcpip.provider.connect_overlapped(cli, address, c)
    assert c.wait(5)
    assert c.error == C.WSAECONNREFUSED == 10061
    tcpip.provider.close_socket(cli)


@pytest.mark.parametrize("timeout", [None, 0.0, 5.0], ids=["blocking", "nonblocking", "timeout"])
def test_tcpip_overlapped_never_blocks_whatever_the_timeout(
    tcpip: Tcpip, timeout: float | None
) -> None:
    p = tcpip.provider
    srv, cli, conn = tcpip.connected()
    for s in (srv, cli, conn):
        p.settimeout(s, timeout)
    blocking = {s: os.get_blocking(s.fileno()) for s in (srv, cli, conn)}
    t0 = time.monotonic()
    r, z, a = started(), started(), started("accept")
    p.recv_overlapped(conn, 10, 0, r)
    p.recv_overlapped(conn, 0, 0, z)  # queued behind r
    p.accept_overlapped(srv, a)
    c2 = tcpip.socket()
    p.settimeout(c2, timeout)
    c = started("connect")
    p.connect_overlapped(c2, srv.getsockname(), c)
    assert time.monotonic() - t0 < 1.0, "an overlapped call blocked"
    assert not r.done() and not z.done()
    assert c.wait(5) and a.wait(5) and c.error == 0 and a.error == 0
    p.send_overlapped(cli, b"0123456789", 0, started("send"))
    assert r.wait(5) and r.data == b"0123456789"
    time.sleep(0.05)
    assert not z.done() and not tcpip.rec.of(z)  # a zero-byte receive waits for data...
    p.send(cli, b"!", 0)
    assert z.wait(5) and z.nbytes == 0 and z.data == b""
    assert p.recv(conn, 10, 0) == b"!"  # ...and consumes none of it
    # Nothing changed the sockets' own modes.
    for s in (srv, cli, conn):
        assert s.gettimeout() == timeout
        assert os.get_blocking(s.fileno()) == blocking[s]
    assert c2.gettimeout() == timeout
    for s in (a.data, c2, conn, cli, srv):
        p.close_socket(s)


def test_tcpip_large_send_completes_with_the_full_count(tcpip: Tcpip) -> None:
    p = tcpip.provider
    srv, cli, conn = tcpip.connected()
    blob = os.urandom(8 << 20)
    ov = started("send")
    p.send_overlapped(cli, bytearray(blob), 0, ov)
    assert not ov.done()  # 8 MiB do not fit in a loopback socket's buffers
    got = read_exactly(conn, len(blob))
    assert ov.wait(10)
    assert (ov.error, ov.nbytes) == (0, len(blob))
    assert hashlib.sha256(got).digest() == hashlib.sha256(blob).digest()
    for s in (conn, cli, srv):
        p.close_socket(s)


def test_tcpip_close_socket_aborts_pending_operations_before_releasing_the_handle(
    tcpip: Tcpip,
) -> None:
    p = tcpip.provider
    srv, cli, conn = tcpip.connected()
    reads = [started() for _ in range(100)]
    for ov in reads:
        p.recv_overlapped(conn, 100, 0, ov)
    accepts = [started("accept") for _ in range(3)]
    for ov in accepts:
        p.accept_overlapped(srv, ov)
    handles = (conn.handle, srv.handle)
    p.close_socket(conn)
    p.close_socket(srv)
    calls = tcpip.rec.wait(103)
    assert [c["ov"] for c in calls] == reads + accepts
    assert {c["error"] for c in calls} == {C.WSA_OPERATION_ABORTED}
    # Completed while the handle was still registered, then released.
    assert all(c["registered"] for c in calls)
    assert all(h not in tcpip.table for h in handles)
    assert conn.fileno() == -1 and conn._twin is None
    p.send(cli, b"nobody listens", 0)
    time.sleep(0.05)
    assert len(tcpip.rec.calls) == 103
    p.close_socket(cli)


def test_tcpip_cleanup_aborts_leftovers(tcpip: Tcpip) -> None:
    p = tcpip.provider
    srv, cli, conn = tcpip.connected()
    r = started()
    p.recv_overlapped(conn, 10, 0, r)
    p.cleanup()
    assert r.done() and r.error == C.WSA_OPERATION_ABORTED
    assert tcpip.rec.of(r)[0]["registered"]
    assert len(tcpip.table) == 0
    assert all(s.fileno() == -1 for s in (srv, cli, conn))


def test_tcpip_reset_is_wsaeconnreset(tcpip: Tcpip) -> None:
    p = tcpip.provider
    srv, cli, conn = tcpip.connected()
    r = started()
    p.recv_overlapped(conn, 10, 0, r)
    p.setsockopt(cli, socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    p.close_socket(cli)
    assert r.wait(5) and r.error == C.WSAECONNRESET
    p.close_socket(conn)
    p.close_socket(srv)


def test_tcpip_udp_sendto_and_recvfrom_overlapped(tcpip: Tcpip) -> None:
    p = tcpip.provider
    rx, tx = tcpip.socket(udp=True), tcpip.socket(udp=True)
    p.bind(rx, ("127.0.0.1", 0))
    p.bind(tx, ("127.0.0.1", 0))
    ovs = [started("recvfrom") for _ in range(3)]
    for ov in ovs:
        p.recvfrom_overlapped(rx, 2048, 0, ov)
    assert not any(ov.done() for ov in ovs)
    for i in range(3):
        s = started("sendto")
        p.sendto_overlapped(tx, b"datagram %d" % i, 0, rx.getsockname(), s)
        assert s.wait(5) and s.error == 0 and s.nbytes == 10
    assert all(ov.wait(5) for ov in ovs)
    assert [ov.data for ov in ovs] == [b"datagram 0", b"datagram 1", b"datagram 2"]
    assert {ov.address for ov in ovs} == {tx.getsockname()}
    big = started("sendto")
    p.sendto_overlapped(tx, b"x" * 70000, 0, rx.getsockname(), big)
    assert big.done() and big.error == C.WSAEMSGSIZE
    p.close_socket(rx)
    p.close_socket(tx)


def test_tcpip_ioctl_overlapped_completes_at_once(tcpip: Tcpip) -> None:
    p = tcpip.provider
    srv, cli, conn = tcpip.connected()
    p.send(cli, b"12345", 0)
    time.sleep(0.05)
    ov = started("ioctl")
    p.ioctl_overlapped(conn, FIONREAD, 0, ov)
    assert ov.done() and (ov.error, ov.data) == (0, 5)
    nb = started("ioctl")
    p.ioctl_overlapped(conn, FIONBIO, 1, nb)
    assert nb.done() and nb.error == 0 and conn.gettimeout() == 0.0
    with pytest.raises(WSAError) as info:
        p.ioctl_overlapped(conn, 0x12345, 0, started("ioctl"))
    assert info.value.wsa_code == C.WSAEINVAL
    for s in (conn, cli, srv):
        p.close_socket(s)


def test_tcpip_bad_arguments_raise_and_complete_nothing(tcpip: Tcpip) -> None:
    p = tcpip.provider
    srv, cli, conn = tcpip.connected()
    with pytest.raises(WSAError) as info:
        p.recv_overlapped(conn, -1, 0, started())
    assert info.value.wsa_code == C.WSAEINVAL
    with pytest.raises(WSAError) as info:
        p.send_overlapped(cli, "text is not bytes", 0, started("send"))
    assert info.value.wsa_code == C.WSAEFAULT
    assert tcpip.rec.calls == []
    for s in (conn, cli, srv):
        p.close_socket(s)


def test_tcpip_send_on_an_unconnected_socket_is_wsaenotconn(tcpip: Tcpip) -> None:
    s = tcpip.socket()
    ov = started("send")
    tcpip.provider.send_overlapped(s, b"x", 0, ov)
    assert ov.done() and ov.error == C.WSAENOTCONN
    tcpip.provider.close_socket(s)


def test_tcpip_twin_is_closed_with_the_socket(tcpip: Tcpip) -> None:
    p = tcpip.provider
    srv, cli, conn = tcpip.connected()
    assert conn._twin is None  # made on the first overlapped operation only
    p.recv_overlapped(conn, 10, 0, started())
    twin = conn._twin
    assert twin is not None
    twin_fd = twin.fileno()
    assert twin_fd not in (conn.fileno(), -1) and twin_fd in open_fds()
    conn.close()  # closing the socket object directly closes the twin too
    assert twin.fileno() == -1 and conn._twin is None
    p.close_socket(conn)  # aborts the pending receive, found by identity
    assert tcpip.rec.calls[-1]["error"] == C.WSA_OPERATION_ABORTED
    for s in (cli, srv):
        p.close_socket(s)


def test_errno_einprogress_is_what_a_nonblocking_connect_reports() -> None:
    # The connect attempt relies on it (loopback connects may also finish at once).
    with socket.socket() as listener, socket.socket() as s:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        s.setblocking(False)
        assert s.connect_ex(listener.getsockname()) in (0, errno.EINPROGRESS)
