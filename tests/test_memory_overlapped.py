"""Tests of the ``memory`` provider's overlapped operations (``wspframe._memory``).

The provider is driven directly, as in ``test_memory_provider.py``: a
:class:`HandleTable` and :class:`Upcalls` stand in for the host.  Completions
go to a :class:`Recorder` which checks each one as it happens (exactly once,
its handle still open, the network's lock not held, which thread) and then
finishes the overlapped as the host would.  Helper threads are always joined
with a timeout, and no thread may be left behind.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.test_memory_provider import (
    IDS,
    JOIN,
    LOOP,
    SHORT,
    Worker,
    info_for,
    wait_blocked,
    wsa,
)
from wspframe._constants import FIONBIO, FIONREAD, SD_RECEIVE, SD_SEND, IoctlCode
from wspframe._errors import WSAErrorCode
from wspframe._handles import HandleTable, Upcalls
from wspframe._memory import MemoryProvider, MemorySocket
from wspframe._overlapped import Overlapped, finish

E = WSAErrorCode
ABORTED = E.WSA_OPERATION_ABORTED
#: Seconds after which a hung test ends the run, with every thread's traceback.
WATCHDOG = 120.0


@dataclasses.dataclass
class Done:
    """One completion, as the recorder saw it."""

    handle: int
    ov: Overlapped
    error: int
    nbytes: int
    data: Any
    address: Any
    thread: threading.Thread
    #: The handle was still in the host's table.
    handle_open: bool
    #: The network's lock was held (by the completing thread: it could not be taken).
    under_lock: bool


class Recorder:
    """The host's completion routing, instrumented: ``complete(handle, ov, error, nbytes)``."""

    def __init__(self, table: HandleTable) -> None:
        self.table = table
        self.lock: Any = None  # the network's lock, once there is a provider
        self.done: list[Done] = []
        #: ("complete", handle) and ("close", handle), in order.
        self.events: list[tuple[str, int]] = []
        self.problems: list[str] = []
        #: Called after each completion (what a layer's callback would do).
        self.hook: Callable[[Done], Any] | None = None
        self._guard = threading.Lock()

    def __call__(self, handle: int, ov: Overlapped, error: int, nbytes: int) -> None:
        under_lock = False
        if self.lock is not None:
            # Held by this thread, the lock never comes free: that is the bug.
            if self.lock.acquire(timeout=JOIN):
                self.lock.release()
            else:
                under_lock = True
        rec = Done(
            handle,
            ov,
            error,
            nbytes,
            ov.data,
            ov.address,
            threading.current_thread(),
            handle in self.table,
            under_lock,
        )
        with self._guard:
            if not ov.pending:
                self.problems.append(f"{ov!r} completed twice")
            if under_lock:
                self.problems.append(f"{ov!r} completed under the network's lock")
            if not rec.handle_open:
                self.problems.append(f"{ov!r} completed after handle {handle} was released")
            self.done.append(rec)
            self.events.append(("complete", handle))
        finish(ov, error, nbytes, None)
        if self.hook is not None:
            self.hook(rec)

    def of(self, ov: Overlapped) -> Done:
        """The one completion of ``ov``."""
        found = [d for d in self.done if d.ov is ov]
        assert len(found) == 1, f"{ov!r} completed {len(found)} times"
        return found[0]

    def for_handle(self, handle: int) -> list[Done]:
        return [d for d in self.done if d.handle == handle]


class LoggingUpcalls(Upcalls):
    """Upcalls that log handle releases next to the completions, and can fail
    handle creation."""

    __slots__ = ("fail_create", "rec")

    def __init__(self, table: HandleTable, rec: Recorder) -> None:
        super().__init__(table, complete=rec)
        self.rec = rec
        self.fail_create: BaseException | None = None

    def create_socket_handle(self, catalog_entry_id: int, context: Any) -> int:
        if self.fail_create is not None:
            raise self.fail_create
        return super().create_socket_handle(catalog_entry_id, context)

    def close_socket_handle(self, handle: int) -> None:
        with self.rec._guard:
            self.rec.events.append(("close", handle))
        super().close_socket_handle(handle)


class Env:
    """A started provider completing into a :class:`Recorder`, with socket helpers."""

    def __init__(self) -> None:
        self.table = HandleTable(lambda cid: cid in IDS.values())
        self.rec = Recorder(self.table)
        self.upcalls = LoggingUpcalls(self.table, self.rec)
        self.p = MemoryProvider()
        self.p.startup(self.upcalls)
        self.rec.lock = self.p.network._lock
        self.started: list[Overlapped] = []

    def ov(self, op: str) -> Overlapped:
        """A new overlapped, started as the host starts one."""
        ov = Overlapped()
        ov._start(op, None)
        self.started.append(ov)
        return ov

    # -- sockets (sync calls get a safety timeout) ------------------------------
    def tcp(self, version: int = 4) -> MemorySocket:
        s = self.p.socket(0, 0, 0, info_for("tcp", version), 0, 0)
        self.p.settimeout(s, JOIN)
        return s

    def udp(self, version: int = 4) -> MemorySocket:
        s = self.p.socket(0, 0, 0, info_for("udp", version), 0, 0)
        self.p.settimeout(s, JOIN)
        return s

    def listener(self, version: int = 4, backlog: int = 5) -> MemorySocket:
        s = self.tcp(version)
        self.p.bind(s, (LOOP[version], 0))
        self.p.listen(s, backlog)
        return s

    def pair(self, version: int = 4) -> tuple[MemorySocket, MemorySocket]:
        lst = self.listener(version)
        c = self.tcp(version)
        self.p.connect(c, self.p.getsockname(lst))
        s, _ = self.p.accept(lst)
        self.p.settimeout(s, JOIN)
        self.p.close_socket(lst)
        return c, s

    def udp_bound(self, version: int = 4) -> MemorySocket:
        s = self.udp(version)
        self.p.bind(s, (LOOP[version], 0))
        return s

    # -- operations ---------------------------------------------------------------
    def recv(self, s: MemorySocket, bufsize: int, flags: int = 0) -> Overlapped:
        ov = self.ov("recv")
        self.p.recv_overlapped(s, bufsize, flags, ov)
        return ov

    def send(self, s: MemorySocket, data: bytes | bytearray) -> Overlapped:
        ov = self.ov("send")
        self.p.send_overlapped(s, data, 0, ov)
        return ov

    def recvfrom(self, s: MemorySocket, bufsize: int, flags: int = 0) -> Overlapped:
        ov = self.ov("recvfrom")
        self.p.recvfrom_overlapped(s, bufsize, flags, ov)
        return ov

    def accept(self, s: MemorySocket) -> Overlapped:
        ov = self.ov("accept")
        self.p.accept_overlapped(s, ov)
        return ov

    def close_before_release(self, handle: int) -> None:
        """``handle`` was released, and nothing completed on it afterwards (call it
        before a new socket may reuse the number: handles are descriptors)."""
        kinds = [kind for kind, h in self.rec.events if h == handle]
        assert kinds and kinds[-1] == "close", kinds


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    """A deadlock fails the run in bounded time instead of hanging it."""
    faulthandler.dump_traceback_later(WATCHDOG, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + JOIN
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(threading.enumerate()) - before, "a thread was left behind"


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.rec.hook = None
    w = Worker(e.p.cleanup).join()  # a close waiting forever fails here
    assert w.error is None, w.error
    assert len(e.table) == 0, "handles leaked"
    assert not e.rec.problems, e.rec.problems
    for ov in e.started:  # every operation started was finished exactly once
        assert not ov.pending, f"{ov!r} never completed"
    assert not e.p.network._done


@pytest.fixture(params=[4, 6], ids=["ipv4", "ipv6"])
def v(request: pytest.FixtureRequest) -> int:
    version: int = request.param
    return version


def chunks_of(rng: random.Random, payload: bytes, most: int) -> list[bytes]:
    out = []
    i = 0
    while i < len(payload):
        n = rng.randint(1, most)
        out.append(payload[i : i + n])
        i += n
    return out


# -- every operation, at once -----------------------------------------------------------


def test_every_operation_completes_at_once(env: Env, v: int) -> None:
    me = threading.current_thread()
    lst = env.listener(v)
    c = env.tcp(v)
    ov = env.ov("connect")
    env.p.connect_overlapped(c, env.p.getsockname(lst), ov)
    assert ov.done()
    assert (env.rec.of(ov).handle, ov.error, ov.nbytes) == (c.handle, 0, 0)
    assert env.p.getpeername(c) == env.p.getsockname(lst)

    ov = env.accept(lst)
    assert ov.done() and ov.error == 0
    s = ov.data
    assert isinstance(s, MemorySocket)
    assert s.handle != lst.handle and s.handle in env.table
    assert env.upcalls.query_socket_handle_context(s.handle) is s
    assert ov.address == env.p.getsockname(c)
    assert env.rec.of(ov).handle == lst.handle
    assert s.timeout is None  # accepted sockets start blocking, as accept() makes them

    ov = env.send(c, b"hello")
    assert ov.done() and (ov.error, ov.nbytes, ov.flags) == (0, 5, 0)
    ov = env.recv(s, 100)
    assert ov.done() and (ov.error, ov.nbytes, ov.data) == (0, 5, b"hello")

    for code, arg, want in ((FIONREAD, 0, 0), (IoctlCode.SIOCATMARK, 0, True), (FIONBIO, 1, 0)):
        ov = env.ov("ioctl")
        env.p.ioctl_overlapped(s, code, arg, ov)
        assert ov.done() and (ov.error, ov.nbytes, ov.data) == (0, 0, want)
    assert s.timeout == 0.0
    env.p.send(c, b"xyz", 0)
    ov = env.ov("ioctl")
    env.p.ioctl_overlapped(s, FIONREAD, 0, ov)
    assert ov.data == 3

    a, b = env.udp_bound(v), env.udp_bound(v)
    ov = env.ov("sendto")
    env.p.sendto_overlapped(a, b"datagram", 0, env.p.getsockname(b), ov)
    assert ov.done() and (ov.error, ov.nbytes) == (0, 8)
    ov = env.recvfrom(b, 100)
    assert ov.done() and (ov.data, ov.address, ov.nbytes) == (
        b"datagram",
        env.p.getsockname(a),
        8,
    )
    for d in env.rec.done:
        assert d.thread is me and not d.under_lock and d.handle_open


def test_accepted_socket_works_and_closes(env: Env) -> None:
    lst = env.listener()
    ov = env.accept(lst)
    c = env.tcp()
    env.p.connect(c, env.p.getsockname(lst))
    s = ov.data
    env.p.send(s, b"from the accepted side", 0)
    assert env.p.recv(c, 100, 0) == b"from the accepted side"
    assert s in env.p.network.sockets()
    env.p.close_socket(s)
    assert s.handle not in env.table


# -- deferred completion, in the thread whose action makes it possible ----------------------


def test_deferred_completion_happens_in_the_acting_thread(env: Env, v: int) -> None:
    c, s = env.pair(v)
    lst = env.listener(v)
    a, b = env.udp_bound(v), env.udp_bound(v)
    env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 4)

    recv = env.recv(c, 10)
    recvfrom = env.recvfrom(b, 10)
    accept = env.accept(lst)
    send = env.send(c, b"0123456789")  # 4 bytes fit, the rest waits for room
    for ov in (recv, recvfrom, accept, send):
        assert not ov.done()

    def act() -> MemorySocket:
        env.p.send(s, b"wake", 0)
        env.p.sendto(a, b"dgram", 0, env.p.getsockname(b))
        t = env.tcp(v)
        env.p.connect(t, env.p.getsockname(lst))
        got = b""
        while len(got) < 10:
            got += env.p.recv(s, 3, 0)
        assert got == b"0123456789"
        return t

    w = Worker(act).join()
    assert w.error is None
    for ov in (recv, recvfrom, accept, send):
        done = env.rec.of(ov)
        assert done.thread is w.thread and not done.under_lock
    assert (recv.data, recvfrom.data, send.nbytes) == (b"wake", b"dgram", 10)
    assert accept.address == env.p.getsockname(w.result)


def test_overlapped_ignores_timeout_and_non_blocking_mode(env: Env) -> None:
    ops = []
    for timeout in (0.0, SHORT):
        c, s = env.pair()
        env.p.settimeout(s, timeout)
        env.p.setsockopt(c, socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        ops.append((c, env.recv(s, 10), env.send(s, b"abc")))  # both would block
    time.sleep(SHORT * 3)
    for c, recv, send in ops:
        assert not recv.done() and not send.done()  # no WSAEWOULDBLOCK, no WSAETIMEDOUT
        env.p.send(c, b"late", 0)
        got = b"".join(env.p.recv(c, 10, 0) for _ in range(3))
        assert (recv.result(0), send.result(0), got) == (b"late", 3, b"abc")


# -- many in flight --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fifty_pending_receives_keep_order_and_bytes(env: Env, seed: int) -> None:
    rng = random.Random(seed)
    c, s = env.pair()
    ovs = [env.recv(s, rng.randint(1, 300)) for _ in range(50)]
    payload = rng.randbytes(rng.randint(5000, 15000))  # more or less than they ask for

    def sender() -> None:
        for chunk in chunks_of(rng, payload, 700):
            env.p.send(c, chunk, 0)
        env.p.shutdown(c, SD_SEND)

    w = Worker(sender).join()
    assert w.error is None
    rest = b""
    while data := env.p.recv(s, 4096, 0):
        rest += data
    got = [env.rec.of(ov) for ov in ovs]
    # Served strictly in the order issued, and delivered in that order too.
    assert [d.ov for d in env.rec.for_handle(s.handle)] == ovs
    assert all(d.error == 0 and d.nbytes == len(d.data) for d in got)
    assert b"".join(d.data for d in got) + rest == payload


def test_pending_sends_wait_for_room_in_order(env: Env) -> None:
    c, s = env.pair()
    env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 1000)
    sends = [bytes([65 + i]) * 300 for i in range(20)]
    ovs = [env.send(c, data) for data in sends]
    assert [ov.done() for ov in ovs[:4]] == [True, True, True, False]  # 900 fit, then 100 of 300
    assert not any(ov.done() for ov in ovs[3:])
    assert env.p.ioctl(s, FIONREAD, 0) == 1000
    got = b""
    while len(got) < 6000:
        got += env.p.recv(s, 250, 0)
        done = sum(ov.done() for ov in ovs)
        # A send completes once all its bytes are queued at the peer, not before.
        assert done == min(20, (len(got) + 1000) // 300)
    assert got == b"".join(sends)
    assert [d.ov for d in env.rec.for_handle(c.handle)] == ovs
    assert all(ov.nbytes == 300 and ov.error == 0 for ov in ovs)


def test_rcvbuf_growth_lets_pending_sends_in(env: Env) -> None:
    c, s = env.pair()
    env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 10)
    ov = env.send(c, b"x" * 50)
    assert not ov.done()
    env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 100)
    assert ov.done() and ov.nbytes == 50
    assert env.p.recv(s, 100, 0) == b"x" * 50


def test_many_senders_never_interleave_a_send(env: Env) -> None:
    c, s = env.pair()
    env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    threads, per_thread = 4, 40

    def sender(t: int) -> None:
        rng = random.Random(t)
        for i in range(per_thread):
            body = bytes([t]) * rng.randint(1, 900)
            header = f"{t}:{i}:{len(body)};".encode()
            env.send(c, header + body)

    workers = [Worker(sender, t) for t in range(threads)]
    stream = b""
    deadline = time.monotonic() + JOIN
    while any(w.thread.is_alive() for w in workers) or env.p.ioctl(s, FIONREAD, 0):
        assert time.monotonic() < deadline
        try:
            env.p.settimeout(s, SHORT)
            stream += env.p.recv(s, 4096, 0)
        except TimeoutError:
            pass
    for w in workers:
        w.join()
        assert w.error is None
    seen = {t: -1 for t in range(threads)}
    while stream:
        header, _, stream = stream.partition(b";")
        t, i, n = map(int, header.split(b":"))
        assert stream[:n] == bytes([t]) * n, "a send was interleaved with another"
        stream = stream[n:]
        assert i == seen[t] + 1, "one thread's sends were reordered"
        seen[t] = i
    assert seen == {t: per_thread - 1 for t in range(threads)}


# -- synchronous calls and pending operations ---------------------------------------------


def test_sync_recv_does_not_overtake_pending_recv(env: Env) -> None:
    c, s = env.pair()
    ov = env.recv(s, 10)
    w = Worker(env.p.recv, s, 10, 0)
    wait_blocked(env.p)
    env.p.send(c, b"first", 0)
    assert ov.done() and ov.data == b"first"
    assert w.thread.is_alive()
    env.p.send(c, b"second", 0)
    w.join()
    assert (w.error, w.result) == (None, b"second")


def test_pending_recv_does_not_overtake_blocked_sync_recv(env: Env) -> None:
    c, s = env.pair()
    w = Worker(env.p.recv, s, 10, 0)
    wait_blocked(env.p)
    ov = env.recv(s, 10)
    env.p.send(c, b"first", 0)
    w.join()
    assert (w.error, w.result) == (None, b"first")
    assert not ov.done()
    env.p.send(c, b"second", 0)
    assert ov.data == b"second"


def test_non_blocking_sync_calls_wait_their_turn(env: Env) -> None:
    c, s = env.pair()
    ov = env.recv(s, 1)
    env.p.settimeout(s, 0.0)
    with wsa(E.WSAEWOULDBLOCK):
        env.p.recv(s, 10, 0)
    env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 3)
    pending = env.send(c, b"abcdef")
    env.p.settimeout(c, 0.0)
    with wsa(E.WSAEWOULDBLOCK):
        env.p.send(c, b"XYZ", 0)  # room for nothing: the pending send comes first
    assert env.p.send(c, b"", 0) == 0
    assert ov.data == b"a"
    assert env.p.recv(s, 10, 0) == b"bcd"
    assert pending.done() and env.p.recv(s, 10, 0) == b"ef"


def test_sync_send_waits_behind_pending_sends(env: Env) -> None:
    c, s = env.pair()
    env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 8)
    first = env.send(c, b"A" * 20)
    w = Worker(env.p.send, c, b"B" * 20, 0)
    wait_blocked(env.p)
    second = env.send(c, b"C" * 20)
    got = b""
    while len(got) < 60:
        got += env.p.recv(s, 7, 0)
    w.join()
    assert (w.error, w.result) == (None, 20)
    assert got == b"A" * 20 + b"B" * 20 + b"C" * 20
    assert first.nbytes == second.nbytes == 20


def test_sync_accept_does_not_overtake_pending_accept(env: Env) -> None:
    lst = env.listener()
    ov = env.accept(lst)
    env.p.settimeout(lst, 0.0)
    first = env.tcp()
    env.p.connect(first, env.p.getsockname(lst))
    assert ov.done() and ov.address == env.p.getsockname(first)
    with wsa(E.WSAEWOULDBLOCK):
        env.p.accept(lst)
    second = env.tcp()
    env.p.connect(second, env.p.getsockname(lst))
    conn, address = env.p.accept(lst)
    assert address == env.p.getsockname(second)
    env.p.close_socket(conn)


def test_pending_accepts_take_connections_in_order(env: Env) -> None:
    lst = env.listener(backlog=1)
    ovs = [env.accept(lst) for _ in range(3)]
    clients = []
    for _ in range(3):
        c = env.tcp()
        env.p.connect(c, env.p.getsockname(lst))  # never refused: each is accepted at once
        clients.append(c)
    assert [ov.address for ov in ovs] == [env.p.getsockname(c) for c in clients]
    assert len({ov.data.handle for ov in ovs}) == 3


# -- flags and datagrams ---------------------------------------------------------------------


def test_waitall_peek_and_zero_size(env: Env) -> None:
    c, s = env.pair()
    peek = env.recv(s, 4, socket.MSG_PEEK)
    full = env.recv(s, 10, socket.MSG_WAITALL)
    after = env.recv(s, 10)
    env.p.send(c, b"abc", 0)
    assert peek.data == b"abc"
    assert not full.done()
    env.p.send(c, b"defghijkl", 0)
    assert full.data == b"abcdefghij" and full.nbytes == 10
    assert after.data == b"kl"
    zero = env.recv(s, 0)
    assert zero.done() and (zero.data, zero.nbytes) == (b"", 0)
    partial = env.recv(s, 10, socket.MSG_WAITALL)
    env.p.send(c, b"xy", 0)
    env.p.shutdown(c, SD_SEND)
    assert (partial.data, partial.nbytes, partial.error) == (b"xy", 2, 0)  # end of file


def test_send_hands_its_data_to_a_waiting_plain_receive(env: Env) -> None:
    """A send that fits the plain receive waiting first completes it directly,
    exactly as serving the queue would: the receives behind it go on."""
    c, s = env.pair()
    first = env.recv(s, 10)
    zero = env.recv(s, 0)  # waits only for first
    small = env.recvfrom(s, 3)
    rest = env.recv(s, 10)
    assert not (first.done() or zero.done())
    data = b"hello"
    assert env.p.send(c, data, 0) == 5
    assert (first.data, first.nbytes, first.error) == (data, 5, 0)
    assert zero.done() and (zero.data, zero.nbytes) == (b"", 0)
    assert not small.done()
    env.p.send(c, b"abcdef", 0)  # more than small takes: queued, then served in order
    assert (small.data, small.nbytes, small.address) == (b"abc", 3, None)
    assert (rest.data, rest.nbytes) == (b"def", 3)
    whole = env.recvfrom(s, 10)
    env.p.send(c, b"xy", 0)
    assert (whole.data, whole.nbytes, whole.error, whole.address) == (b"xy", 2, 0, None)
    assert env.p.ioctl(s, FIONREAD, 0) == 0
    assert not env.p.network._done and s.undelivered == 0


def test_datagram_boundaries(env: Env, v: int) -> None:
    a, b = env.udp_bound(v), env.udp_bound(v)
    ovs = [env.recvfrom(b, 5) for _ in range(4)]
    plain = env.recv(b, 100)
    peek = env.recvfrom(b, 100, socket.MSG_PEEK)
    last = env.recvfrom(b, 100)
    to = env.p.getsockname(b)
    for data in (b"one", b"", b"three", b"truncated!", b"plain", b"peeked"):
        env.p.sendto(a, data, 0, to)
    assert [ov.data for ov in ovs] == [b"one", b"", b"three", b"trunc"]
    assert [ov.nbytes for ov in ovs] == [3, 0, 5, 5]
    assert all(ov.address == env.p.getsockname(a) for ov in ovs)
    assert (plain.data, plain.address) == (b"plain", None)
    assert (peek.data, last.data) == (b"peeked", b"peeked")
    assert env.p.ioctl(b, FIONREAD, 0) == 0


def test_connected_datagram_send_overlapped(env: Env) -> None:
    a, b = env.udp_bound(), env.udp_bound()
    ov = env.send(a, b"x")
    assert ov.error == E.WSAENOTCONN
    env.p.connect(a, env.p.getsockname(b))
    ov = env.send(a, bytearray(b"bytes-like"))
    assert (ov.error, ov.nbytes) == (0, 10)
    assert env.p.recvfrom(b, 100, 0) == (b"bytes-like", env.p.getsockname(a))


# -- end of file, reset, network down ------------------------------------------------------


@pytest.mark.parametrize("how", ["shutdown", "close"])
def test_end_of_file_completes_pending_receives(env: Env, how: str) -> None:
    c, s = env.pair()
    ovs = [env.recv(s, 10) for _ in range(3)]
    if how == "shutdown":
        env.p.shutdown(c, SD_SEND)
    else:
        env.p.close_socket(c)
    for ov in ovs:
        d = env.rec.of(ov)
        assert (d.error, d.nbytes, d.data) == (0, 0, b"")
    later = env.recv(s, 10)
    assert later.done() and (later.error, later.data) == (0, b"")


def test_reset_fails_pending_operations(env: Env) -> None:
    c, s = env.pair()
    env.p.setsockopt(c, socket.SOL_SOCKET, socket.SO_RCVBUF, 10)
    recvs = [env.recv(s, 10) for _ in range(2)]
    send = env.send(s, b"z" * 25)  # 10 queued at c, never read
    assert not send.done()
    env.p.close_socket(c)  # closed with unread data: s is reset
    for ov in recvs:
        assert (env.rec.of(ov).error, ov.data) == (E.WSAECONNRESET, b"")
    assert (send.error, send.nbytes) == (E.WSAECONNRESET, 10)  # what got through before
    for ov in (env.recv(s, 1), env.send(s, b"x")):
        assert ov.error == E.WSAECONNRESET


def test_send_to_a_closed_peer_succeeds_once_then_resets(env: Env) -> None:
    c, s = env.pair()
    pending = env.recv(c, 10)
    env.p.close_socket(s)
    ov = env.send(c, b"into the void")
    assert (ov.error, ov.nbytes) == (0, 13)
    assert pending.error == 0 and pending.data == b""  # the clean close was end of file
    assert env.send(c, b"again").error == E.WSAECONNRESET


def test_shutdown_fails_the_pending_direction(env: Env) -> None:
    c, s = env.pair()
    env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 5)
    send = env.send(c, b"0123456789")
    recv = env.recv(c, 10)
    env.p.shutdown(c, SD_SEND)
    assert (send.error, send.nbytes) == (E.WSAESHUTDOWN, 5)
    assert not recv.done()  # the other direction is untouched
    env.p.shutdown(c, SD_RECEIVE)
    assert recv.error == E.WSAESHUTDOWN
    assert env.p.recv(s, 10, 0) == b"01234"
    assert env.p.recv(s, 10, 0) == b""


def test_network_down_fails_pending_operations(env: Env) -> None:
    c, s = env.pair()
    lst = env.listener()
    u = env.udp_bound()
    env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 2)
    fresh, target = env.tcp(), env.p.getsockname(lst)
    pending = [env.recv(c, 1), env.send(c, b"abcd"), env.accept(lst), env.recvfrom(u, 1)]
    net = env.p.network
    net.down()
    assert [env.rec.of(ov).error for ov in pending] == [E.WSAENETDOWN] * 4
    assert pending[1].nbytes == 2
    for ov in (env.recv(s, 1), env.send(c, b"x"), env.accept(lst), env.recvfrom(u, 1)):
        assert ov.done() and ov.error == E.WSAENETDOWN
    ov = env.ov("connect")
    env.p.connect_overlapped(fresh, target, ov)
    assert ov.error == E.WSAENETDOWN
    net.up()
    assert env.recv(s, 10).data == b"ab"  # the connection survived


# -- close and cleanup ----------------------------------------------------------------------


def test_close_aborts_pending_operations_before_releasing_the_handle(env: Env) -> None:
    c, s = env.pair()
    lst = env.listener()
    u = env.udp_bound()
    env.p.setsockopt(c, socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    pending = {
        s: [env.recv(s, 10), env.recv(s, 10, socket.MSG_WAITALL), env.send(s, b"xyz")],
        lst: [env.accept(lst), env.accept(lst)],
        u: [env.recvfrom(u, 10)],
    }
    for sock, ovs in pending.items():
        handle = sock.handle
        env.p.close_socket(sock)
        for ov in ovs:
            assert env.rec.of(ov).error == ABORTED
        env.close_before_release(handle)
    assert pending[s][2].nbytes == 1  # one byte got through
    assert env.rec.of(pending[s][0]).data == b""
    count = len(env.rec.done)
    env.p.send(c, b"after", 0)  # nothing of s may complete any more
    assert len(env.rec.done) == count
    starts: list[Callable[[Overlapped], None]] = [
        lambda ov: env.p.recv_overlapped(s, 1, 0, ov),
        lambda ov: env.p.send_overlapped(s, b"x", 0, ov),
        lambda ov: env.p.accept_overlapped(lst, ov),
        lambda ov: env.p.ioctl_overlapped(u, FIONREAD, 0, ov),
    ]
    for start in starts:
        ov = Overlapped()
        ov._start("recv", None)
        with wsa(E.WSAENOTSOCK):
            start(ov)
        assert ov.pending and not ov.done()
    assert len(env.rec.done) == count


def test_blocked_sync_calls_on_close_still_fail_with_eintr(env: Env) -> None:
    _, s = env.pair()
    ov = env.recv(s, 1)
    env.p.settimeout(s, None)
    w = Worker(env.p.recv, s, 1, 0)
    wait_blocked(env.p)
    env.p.close_socket(s)
    w.join()
    assert w.error is not None and getattr(w.error, "wsa_code", None) == E.WSAEINTR
    assert ov.error == ABORTED


def test_cleanup_aborts_everything(env: Env) -> None:
    c, s = env.pair()
    lst = env.listener()
    u = env.udp_bound()
    env.p.setsockopt(c, socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    ovs = [
        env.recv(s, 1),  # c -> s
        env.send(s, b"abc"),  # s -> c: one byte in, the rest waits
        env.accept(lst),
        env.recvfrom(u, 1),
    ]
    handles = [x.handle for x in (c, s, lst, u)]
    env.p.cleanup()
    # Aborted, not ended by the end of file or reset that closing a peer gives.
    assert [env.rec.of(ov).error for ov in ovs] == [ABORTED] * 4
    assert ovs[1].nbytes == 1
    for handle in handles:
        env.close_before_release(handle)
    assert len(env.table) == 0
    lst = env.listener()  # started again like a new provider
    assert env.p.getsockname(lst)[1] == 49152


def test_close_races_with_completions(env: Env) -> None:
    """Data, completions and close from three threads: every operation completes
    exactly once, while its handle is open, and none after close returns."""
    for round_ in range(30):
        c, s = env.pair()
        env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 64)
        stop = threading.Event()

        def reissue(d: Done, s: MemorySocket = s, stop: threading.Event = stop) -> None:
            if d.handle == s.handle and d.error == 0 and d.nbytes and not stop.is_set():
                ov = Overlapped()
                ov._start("recv", None)
                try:
                    env.p.recv_overlapped(s, 16, 0, ov)
                except OSError:
                    return  # closed meanwhile: WSAENOTSOCK, nothing completes
                env.started.append(ov)

        env.rec.hook = reissue
        for _ in range(4):
            env.recv(s, 16)

        def feed(c: MemorySocket = c, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                try:
                    env.send(c, b"0123456789")
                except OSError:
                    return

        feeder = Worker(feed)
        time.sleep(random.Random(round_).random() * 0.005)
        handle = s.handle
        env.p.close_socket(s)
        after = len(env.rec.for_handle(handle))
        stop.set()
        feeder.join()
        env.p.close_socket(c)
        env.rec.hook = None
        assert len(env.rec.for_handle(handle)) == after, "completed after close returned"
        env.close_before_release(handle)
    assert not env.rec.problems, env.rec.problems


# -- completions run outside the lock; callbacks may call back ---------------------------


def test_callback_may_call_back_into_the_provider(env: Env) -> None:
    c, s = env.pair()
    echoed = []

    def echo(d: Done) -> None:
        # What a layer's callback might do: send, receive again, ask for state.
        if d.ov.op == "recv" and d.handle == s.handle and d.data:
            env.p.send(s, d.data.upper(), 0)
            env.p.getsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 0)
            echoed.append(d.data)
            env.recv(s, 4)

    env.rec.hook = echo

    def run() -> bytes:
        env.recv(s, 4)
        env.p.send(c, b"abcdefghij", 0)
        got = b""
        while len(got) < 10:
            got += env.p.recv(c, 100, 0)
        env.p.close_socket(s)  # aborts the receive still pending
        return got

    w = Worker(run).join(JOIN)  # a deadlock fails here instead of hanging
    assert (w.error, w.result) == (None, b"ABCDEFGHIJ")
    assert echoed == [b"abcd", b"efgh", b"ij"]
    assert all(not d.under_lock for d in env.rec.done)
    assert env.rec.for_handle(s.handle)[-1].error == ABORTED


def test_callback_may_close_its_own_socket(env: Env) -> None:
    c, s = env.pair()
    ovs = [env.recv(s, 2) for _ in range(3)]
    handle = s.handle

    def close_on_first(d: Done) -> None:
        if d.ov is ovs[0]:
            env.p.close_socket(s)

    env.rec.hook = close_on_first
    w = Worker(env.p.send, c, b"ab", 0).join(JOIN)
    assert w.error is None
    assert [env.rec.of(ov).error for ov in ovs] == [0, ABORTED, ABORTED]
    env.close_before_release(handle)


def test_callbacks_do_not_nest(env: Env) -> None:
    c, s = env.pair()
    depth = [0, 0]  # current, most

    def again(d: Done) -> None:
        depth[0] += 1
        depth[1] = max(depth)
        if d.handle == s.handle and d.nbytes:
            env.recv(s, 1)  # completes at once while data is queued
        depth[0] -= 1

    for _ in range(100):
        env.p.send(c, b"0123456789", 0)
    env.rec.hook = again
    env.recv(s, 1)
    assert depth[1] == 1
    assert sum(d.nbytes for d in env.rec.for_handle(s.handle)) == 1000
    assert not env.recv(s, 1).done()


def test_a_callback_sleeping_in_the_provider_hands_delivery_over(env: Env) -> None:
    """A callback that blocks in a synchronous call must not hold back the
    completions other threads cause meanwhile."""
    c, s = env.pair()
    x, y = env.pair()
    first = env.recv(s, 10)
    other = env.recv(y, 10)

    def block(d: Done) -> None:
        if d.ov is first:
            # Waits for data that arrives only after `other` completed.
            assert env.p.recv(s, 10, 0) == b"second"

    env.rec.hook = block
    w = Worker(env.p.send, c, b"first", 0)
    wait_blocked(env.p)
    env.p.send(x, b"to y", 0)
    assert other.wait(JOIN) and other.data == b"to y"
    ov = env.ov("ioctl")  # completes at once, waking nobody: delivered here and now
    env.p.ioctl_overlapped(x, FIONREAD, 0, ov)
    assert ov.done() and env.rec.of(ov).thread is threading.current_thread()
    env.p.send(c, b"second", 0)
    w.join()
    assert w.error is None and first.data == b"first"


def test_a_raising_completion_is_reported_not_propagated(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    c, s = env.pair()
    bad, good = env.recv(s, 1), env.recv(s, 1)

    def explode(d: Done) -> None:
        if d.ov is bad:
            raise RuntimeError("a faulty layer")

    env.rec.hook = explode
    assert env.p.send(c, b"xy", 0) == 2  # the sender does not hear of it
    assert (bad.data, good.data) == (b"x", b"y")
    assert len(reported) == 1 and isinstance(reported[0].exc_value, RuntimeError)


# -- errors ------------------------------------------------------------------------------


def test_argument_errors_raise_and_complete_nothing(env: Env) -> None:
    c, s = env.pair()
    u = env.udp_bound()
    p = env.p
    cases: list[tuple[int, Callable[[Overlapped], None]]] = [
        (E.WSAEINVAL, lambda ov: p.recv_overlapped(s, -1, 0, ov)),
        (E.WSAEINVAL, lambda ov: p.recv_overlapped(s, "4", 0, ov)),  # type: ignore[arg-type]
        (E.WSAEOPNOTSUPP, lambda ov: p.recv_overlapped(s, 4, socket.MSG_OOB, ov)),
        (E.WSAEOPNOTSUPP, lambda ov: p.recvfrom_overlapped(u, 4, socket.MSG_WAITALL, ov)),
        (E.WSAEFAULT, lambda ov: p.send_overlapped(c, "text", 0, ov)),
        (E.WSAEOPNOTSUPP, lambda ov: p.send_overlapped(c, b"x", socket.MSG_OOB, ov)),
        (E.WSAEFAULT, lambda ov: p.sendto_overlapped(u, b"x", 0, ("127.0.0.1",), ov)),
        (E.WSAEMSGSIZE, lambda ov: p.sendto_overlapped(u, bytes(70000), 0, ("127.0.0.1", 9), ov)),
        (E.WSAEFAULT, lambda ov: p.connect_overlapped(env.tcp(), "127.0.0.1:80", ov)),
        (E.WSAEOPNOTSUPP, lambda ov: p.accept_overlapped(u, ov)),
        (E.WSAEINVAL, lambda ov: p.ioctl_overlapped(s, 424242, 0, ov)),
        (E.WSAENOTSOCK, lambda ov: p.recv_overlapped(object(), 1, 0, ov)),  # type: ignore[arg-type]
        (E.WSAENOTSOCK, lambda ov: p.send_overlapped(object(), b"x", 0, ov)),  # type: ignore[arg-type]
    ]
    for code, start in cases:
        ov = Overlapped()
        ov._start("recv", None)
        with wsa(code):
            start(ov)
        assert ov.pending and not ov.done()
    assert env.rec.done == []


def test_state_errors_complete_with_their_code(env: Env) -> None:
    lst = env.listener()
    fresh = env.tcp()
    assert env.recv(fresh, 1).error == E.WSAENOTCONN
    assert env.send(fresh, b"x").error == E.WSAENOTCONN
    assert env.recv(lst, 1).error == E.WSAENOTCONN
    assert env.accept(fresh).error == E.WSAEINVAL
    assert env.recvfrom(env.udp(), 1).error == E.WSAEINVAL  # not bound
    ov = env.ov("connect")
    env.p.connect_overlapped(env.tcp(), ("127.0.0.1", 1), ov)
    assert ov.error == E.WSAECONNREFUSED
    c, _ = env.pair()
    env.p.shutdown(c, SD_SEND)
    assert env.send(c, b"x").error == E.WSAESHUTDOWN
    ov = env.ov("sendto")
    env.p.sendto_overlapped(env.udp(), b"x", 0, ("0.0.0.0", 9), ov)
    assert ov.error == E.WSAEADDRNOTAVAIL
    for d in env.rec.done:
        assert d.nbytes == 0 and not d.under_lock


def test_failed_handle_creation_fails_the_accept(env: Env) -> None:
    lst = env.listener()
    ov = env.accept(lst)
    c = env.tcp()
    env.upcalls.fail_create = OSError(24, "too many open files")
    try:
        env.p.connect(c, env.p.getsockname(lst))
    finally:
        env.upcalls.fail_create = None
    assert ov.error == E.WSAEMFILE and ov.data is None and ov.address is None
    with wsa(E.WSAECONNRESET):
        env.p.recv(c, 1, 0)


def test_the_provider_starts_no_thread(env: Env) -> None:
    before = threading.active_count()
    c, s = env.pair()
    ovs = [env.recv(s, 5) for _ in range(10)]
    env.p.setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    sends = [env.send(c, b"abcde") for _ in range(10)]
    assert threading.active_count() == before
    env.p.close_socket(s)
    assert all(ov.done() for ov in ovs + sends)
    assert threading.active_count() == before
