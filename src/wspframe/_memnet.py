"""The ``memory`` provider's network: ports, sockets, and the serving of their queues.

See ``wspframe._memory`` for the model.  Everything here runs under the
network's lock unless it says otherwise.  :class:`MemoryNetwork` also owns
how blocked calls sleep and wake (on their socket's parker, woken after the
lock is released) and how overlapped completions are delivered (outside the
lock, by one thread at a time).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from ._errors import WSAErrorCode, contain, report_unraisable
from ._memaddr import public_address, unregister
from ._memsock import (
    ACCEPT,
    CLOSED,
    CONNECTED,
    LISTENING,
    MSG_PEEK,
    MSG_WAITALL,
    RECVFROM,
    RESET,
    SEND,
    MemorySocket,
    Op,
    clear_stream,
    peek,
    received,
    take,
)
from ._memwait import Parker, make_parker

if TYPE_CHECKING:
    from ._handles import Upcalls

__all__ = ["MemoryNetwork", "reset", "teardown"]

_E = WSAErrorCode


class Guard:
    """``with network._guard:``: the network's lock, released by
    :meth:`MemoryNetwork._release` (which then wakes the calls finished)."""

    __slots__ = ("_acquire", "_release")

    def __init__(self, network: MemoryNetwork) -> None:
        self._acquire = network._lock.acquire
        self._release = network._release

    def __enter__(self) -> None:
        self._acquire()

    def __exit__(self, *exc: object) -> None:
        self._release()


class MemoryNetwork:
    """One virtual network: its ports, its sockets, its lock, up or down.

    :meth:`down` makes every operation on it fail with WSAENETDOWN (blocked
    calls wake and fail, pending overlapped operations complete with it) until
    :meth:`up`.
    """

    __slots__ = (
        "__weakref__",
        "_cond",
        "_done",
        "_drainer",
        "_guard",
        "_handoff",
        "_lock",
        "_next_port",
        "_overtime",
        "_parked",
        "_ports",
        "_settling",
        "_sockets",
        "_tls",
        "_upcalls",
        "_waiting",
        "_wakes",
        "is_up",
    )

    #: The ephemeral port range (IANA's, Windows' default).
    EPHEMERAL_FIRST: ClassVar[int] = 49152
    EPHEMERAL_LAST: ClassVar[int] = 65535

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: ``with net._guard:`` holds the lock and, on leaving, wakes the
        #: blocked calls finished meanwhile (see _release()).
        self._guard = Guard(self)
        self._cond = threading.Condition(self._lock)
        #: Whether the network is up (change it with down() and up()).
        self.is_up = True
        #: Threads waiting on the condition (select, close, delivery hand-over).
        self._waiting = 0
        #: Threads parked in a blocked call (see _park()).
        self._parked = 0
        #: The parkers of blocked calls finished under the lock, to unpark
        #: once it is released (see _release()).
        self._wakes: list[Parker] = []
        self._next_port = self.EPHEMERAL_FIRST
        self._ports: dict[tuple[int, int], dict[int, list[MemorySocket]]] = {}
        self._sockets: dict[MemorySocket, None] = {}
        #: Finished overlapped operations waiting for delivery, in order.
        self._done: deque[Op] = deque()
        #: The thread delivering them (0: none), see _drain().
        self._drainer = 0
        #: Threads in _settle() (closing a socket): while any is, producers wait
        #: to take delivery over instead of flooding the settling drainer.
        self._settling = 0
        #: Producers waiting to take delivery over from a settling drainer.
        self._handoff = 0
        #: The drainer has delivered more than was queued when it began: other
        #: threads completing operations now wait to take delivery over.
        self._overtime = False
        #: Per thread: the sockets whose completions it is delivering.
        self._tls = threading.local()
        #: The provider's upcalls (set at startup): completions and handles.
        self._upcalls: Upcalls | None = None
        _networks.add(self)

    def down(self) -> None:
        """Take the network down: every call fails with WSAENETDOWN until :meth:`up`,
        and every pending overlapped operation completes with WSAENETDOWN."""
        with self._guard:
            self.is_up = False
            for s in self._sockets:
                self._abort(s, _E.WSAENETDOWN)
            self._cond.notify_all()
        self._drain()

    def up(self) -> None:
        """Bring the network back up; sockets and connections are as they were."""
        with self._guard:
            self.is_up = True
            self._cond.notify_all()

    def sockets(self) -> list[MemorySocket]:
        """The sockets open on the network (accepted ones included), oldest first."""
        with self._guard:
            return list(self._sockets)

    def __repr__(self) -> str:
        state = "up" if self.is_up else "down"
        return f"<MemoryNetwork {state}, {len(self._sockets)} sockets>"

    # -- the lock ----------------------------------------------------------------
    def _release(self) -> None:
        """Release the lock, then wake the blocked calls finished under it.

        Waking after the release lets a woken thread run at once (with an
        eventfd parker, the waker leaves the GIL while it writes) and find
        the lock free; woken under the lock it would block on it at once.
        """
        wakes = self._wakes
        if wakes:
            self._wakes = []
            self._lock.release()
            for waker in wakes:
                waker.unpark()
        else:
            self._lock.release()

    def _unpark_all(self) -> None:
        """Wake the blocked calls finished so far, before waiting on the
        condition with the lock held (rare paths only)."""
        wakes = self._wakes
        if wakes:
            self._wakes = []
            for waker in wakes:
                waker.unpark()

    # -- lock held -------------------------------------------------------------
    def _wake(self) -> None:
        if self._waiting:
            self._cond.notify_all()

    def _sleep(self, timeout: float | None) -> None:
        """Wait for a change, at most ``timeout`` seconds (lock held).

        Completions still queued are delivered first, and the caller returns
        to look again instead of sleeping.  A thread that sleeps inside a
        completion callback hands the delivery of completions over meanwhile.
        """
        me = threading.get_ident()
        if self._done and self._drainer in (0, me):
            self._release()
            try:
                self._drain(force=True)
            finally:
                self._lock.acquire()
            return
        if self._drainer == me:
            self._drainer = 0
        self._unpark_all()
        self._waiting += 1
        try:
            self._cond.wait(timeout)
        finally:
            self._waiting -= 1

    def _park(self, op: Op, timeout: float | None) -> None:
        """Sleep until ``op`` (a blocked call) is done, at most ``timeout``
        seconds (lock held; released meanwhile); may return early.

        Completions still queued are delivered first, as in :meth:`_sleep`.
        The thread sleeps on a parker of the socket, which :meth:`_finish`
        unparks: no other change wakes it.
        """
        me = threading.get_ident()
        drainer = self._drainer
        if self._done and drainer in (0, me):
            self._release()
            try:
                self._drain(force=True)
            finally:
                self._lock.acquire()
            return
        if drainer == me:
            self._drainer = 0
            if self._handoff:
                self._cond.notify_all()
        # The socket's parker, unless another thread sleeps on it already;
        # dropped (closing its eventfd) once the socket is closed and nobody
        # holds it any more.
        s = op.s
        parker = s.parker
        if parker is None:
            parker = make_parker()
        else:
            s.parker = None
        op.waker = parker
        self._parked += 1
        wakes = self._wakes  # as self._release()
        if wakes:
            self._wakes = []
        self._lock.release()
        try:
            if wakes:
                for waker in wakes:
                    waker.unpark()
            parker.park(timeout)
        finally:
            self._lock.acquire()
            if op.waker is not None:  # not unparked by _finish()
                op.waker = None
                self._parked -= 1
            if s.parker is None and s.state != CLOSED:
                s.parker = parker

    def _reset_state(self) -> None:
        self._next_port = self.EPHEMERAL_FIRST
        self._ports.clear()
        self._sockets.clear()
        self.is_up = True

    # -- operations (lock held) -------------------------------------------------
    def _finish(self, op: Op, error: int = 0) -> None:
        """Finish ``op``, already out of its queue, with ``error`` and ``op.count``
        bytes: wake its thread, or set its overlapped's results and queue its
        completion for :meth:`_drain`."""
        op.error = int(error)
        ov = op.ov
        if ov is None:
            op.done = True
            waker = op.waker
            if waker is not None:  # its thread sleeps: wake it after the lock
                op.waker = None
                self._parked -= 1
                self._wakes.append(waker)
            if self._waiting:
                self._cond.notify_all()
            return
        kind = op.kind
        if kind not in (SEND, ACCEPT):
            ov.data = op.result
        if kind in (RECVFROM, ACCEPT):
            ov.address = op.address
        self._done.append(op)
        op.s.undelivered += 1

    def _abort(self, s: MemorySocket, error: int, sync_error: int | None = None) -> None:
        """Finish every operation queued on ``s`` with ``error`` (blocked calls
        with ``sync_error``, if given): what moved already is reported."""
        self._abort_queue(s.rq, error, sync_error)
        self._abort_queue(s.sq, error, sync_error)

    def _abort_queue(self, queue: deque[Op], error: int, sync_error: int | None = None) -> None:
        while queue:
            op = queue.popleft()
            if op.kind <= RECVFROM:
                received(op, b"")
            op.data = None
            self._finish(op, error if sync_error is None or op.ov is not None else sync_error)

    def _serve_stream(self, r: MemorySocket) -> None:
        """Serve ``r``'s queued receives, in order, from its stream queue."""
        rq = r.rq
        while rq:
            op = rq[0]
            size = op.size
            if size and r.rlen:
                if op.flags & MSG_PEEK:
                    data = peek(r, size)
                else:
                    data = take(r, size - op.count)
                    if op.flags & MSG_WAITALL and op.count + len(data) < size:
                        if op.parts is None:
                            op.parts = []
                        op.parts.append(data)
                        op.count += len(data)
                        continue
            elif size and not r.eof:
                return
            else:
                data = b""
            rq.popleft()
            received(op, data)
            self._finish(op)

    def _pump(self, w: MemorySocket, r: MemorySocket) -> bool:
        """Move ``w``'s queued sends into ``r``'s stream queue while it has
        room, finishing each send once all of it is in; True if bytes moved."""
        sq = w.sq
        moved = False
        while sq:
            op = sq[0]
            if r.state != CONNECTED or r.recv_shut:
                # The other end cannot receive any more: its stack answers the
                # data with a reset, after the send itself succeeded.
                sq.popleft()
                op.count = op.size
                op.data = None
                self._finish(op)
                reset(r)
                reset(w)
                return False
            start = op.count
            left = op.size - start
            if left:
                room = r.rcvbuf - r.rlen
                if room <= 0:
                    return moved
                data = op.data
                assert data is not None
                n = left if left <= room else room
                chunk = data if n == op.size else data[start : start + n]
                r.chunks.append(chunk if type(chunk) is bytes else bytes(chunk))
                r.rlen += n
                op.count = start + n
                moved = True
                if n < left:
                    return moved
            sq.popleft()
            op.data = None
            self._finish(op)
        return moved

    def _move(self, w: MemorySocket, r: MemorySocket) -> None:
        """Let the stream from ``w`` to ``r`` flow: serve ``r``'s receives and
        move ``w``'s queued sends in, until neither can go on."""
        while True:
            if r.rq:
                self._serve_stream(r)
            if not w.sq or not self._pump(w, r):
                break
        self._wake()  # select() waits for data and room too

    def _flow_in(self, r: MemorySocket) -> None:
        """After data, room or end of file at ``r`` (a connected stream socket)."""
        w = r.peer
        if w is not None:
            self._move(w, r)
        elif r.rq:
            self._serve_stream(r)

    def _serve_dgrams(self, r: MemorySocket) -> None:
        """Serve ``r``'s queued receives, in order, one datagram each."""
        rq = r.rq
        dgrams = r.dgrams
        while rq and dgrams:
            op = rq.popleft()
            if op.flags & MSG_PEEK:
                data, op.address = dgrams[0]
            else:
                data, op.address = dgrams.popleft()
                r.qlen -= len(data)
            received(op, data[: op.size] if len(data) > op.size else data)
            self._finish(op)

    def _serve_accepts(self, s: MemorySocket) -> None:
        """Give ``s``'s queued connections to its queued accepts, in order."""
        rq = s.rq
        pending = s.pending
        while rq and pending:
            op = rq.popleft()
            conn = pending.popleft()
            assert conn.peer_addr is not None
            op.address = public_address(conn.family, conn.peer_addr)
            if op.ov is None:
                op.result = conn
            else:
                op.conn = conn  # its handle is made outside the lock, in _deliver()
            self._finish(op)

    def _withdraw(self, op: Op) -> None:
        """Take a blocked call that gave up out of its queue; the operations
        behind it may go on now."""
        s = op.s
        kind = op.kind
        queue = s.sq if kind == SEND else s.rq
        try:
            queue.remove(op)
        except ValueError:
            return
        if kind == ACCEPT:
            self._serve_accepts(s)
        elif not s.stream:
            self._serve_dgrams(s)
        elif s.state == CONNECTED:
            if kind == SEND:
                assert s.peer is not None
                self._move(s, s.peer)
            else:
                self._flow_in(s)

    # -- delivery (lock not held) -----------------------------------------------
    def _drain(self, force: bool = False, until: Callable[[], bool] | None = None) -> None:
        """Deliver the queued completions, in order, outside the lock.

        One thread delivers at a time; the others leave theirs to it.  Called
        again from a completion callback, it returns at once (the delivery
        under way goes on after the callback) unless ``force``: what a callback
        starts never nests another callback, except where it must (the
        callback closes a socket, or is about to sleep).
        """
        me = threading.get_ident()
        guard = self._guard
        lock = self._lock
        done = self._done
        nested: bool | None = None  # known once we may deliver
        budget = 0  # what was queued when we took delivery over
        s: MemorySocket | None = None  # whose completion was just delivered
        stack: list[MemorySocket] | None = None
        complete: Callable[[int, Any, int, int], None] | None = None
        try:
            while True:
                lock.acquire()  # `with guard` without the cost of three Python calls
                try:
                    if s is not None:
                        s.undelivered -= 1
                        s = None
                        if self._waiting or self._handoff:
                            self._cond.notify_all()
                    owner = self._drainer
                    if nested is None:
                        if owner == me:
                            if not force:
                                return
                            nested = True
                        elif owner:
                            if force or not (self._settling or self._overtime):
                                return
                            # The drainer is closing a socket, or has delivered
                            # more than was queued when it began: take delivery
                            # over, so no thread is flooded forever by others'.
                            self._handoff += 1
                            self._cond.notify_all()
                            self._unpark_all()
                            try:
                                while self._drainer and (self._settling or self._overtime):
                                    self._cond.wait(0.05)
                            finally:
                                self._handoff -= 1
                            continue
                        else:
                            nested = False
                            self._overtime = False
                            budget = len(done)
                    elif owner != me and owner:  # taken over while a callback slept
                        return
                    settled = until is not None and until()
                    if nested:
                        if settled or not done:
                            return
                    elif not done or (self._handoff and (settled or self._overtime)):
                        # Done, or leave the rest to the thread waiting for it:
                        # _release_delivery(), inlined.
                        if owner == me:
                            self._drainer = 0
                            self._overtime = False
                            if self._waiting or self._handoff:
                                self._cond.notify_all()
                        return
                    self._drainer = me
                    op = done.popleft()
                    s = op.s
                    if not nested:
                        budget -= 1
                        if budget < 0:
                            self._overtime = True
                finally:
                    if self._wakes:  # as _release(); empty: nothing here finishes an operation
                        self._release()
                    else:
                        lock.release()
                if stack is None:  # _delivering(), inlined
                    try:
                        stack = self._tls.stack
                    except AttributeError:
                        stack = self._tls.stack = []
                stack.append(s)
                try:
                    if op.conn is None:  # _deliver(), inlined: the usual case
                        if complete is None:
                            upcalls = self._upcalls
                            assert upcalls is not None
                            complete = upcalls.complete_overlapped_request
                        try:
                            complete(s.handle, op.ov, op.error, op.count)
                        except Exception as exc:
                            self._unraisable(exc, op)
                    else:
                        self._deliver(op)
                finally:
                    stack.pop()
        except BaseException:
            with guard:
                if s is not None:
                    s.undelivered -= 1
                    self._cond.notify_all()
                if nested is False:
                    self._release_delivery(me)
            raise

    def _release_delivery(self, me: int) -> None:
        """Stop delivering (lock held), and let a waiting thread take over."""
        if self._drainer == me:
            self._drainer = 0
            self._overtime = False
            if self._waiting or self._handoff:  # each thread waiting on _cond counts in one
                self._cond.notify_all()

    def _delivering(self) -> list[MemorySocket]:
        """The sockets whose completions the calling thread is delivering."""
        tls = self._tls
        try:
            stack: list[MemorySocket] = tls.stack
        except AttributeError:
            stack = tls.stack = []
        return stack

    def _deliver(self, op: Op) -> None:
        """``complete_overlapped_request`` for one finished operation."""
        upcalls = self._upcalls
        assert upcalls is not None
        s = op.s
        ov = op.ov
        if op.conn is not None:
            self._adopt(op, upcalls)
        try:
            upcalls.complete_overlapped_request(s.handle, ov, op.error, op.count)
        except Exception as exc:
            self._unraisable(exc, op)

    @staticmethod
    def _unraisable(exc: Exception, op: Op) -> None:
        s = op.s
        report_unraisable(exc, f"Exception completing {op.ov!r} on memory socket {s.handle}", s)

    def _adopt(self, op: Op, upcalls: Upcalls) -> None:
        """Give an overlapped accept's connection its handle, as accept() does;
        if that fails, the accept fails with its error and the connection resets."""
        conn = op.conn
        assert conn is not None
        op.conn = None
        try:
            conn.handle = upcalls.create_socket_handle(op.s.protocol_info.catalog_entry_id, conn)
        except Exception as exc:
            op.error = contain(exc, "accept").wsa_code
            op.ov.address = None
            with self._guard:
                if conn.peer is not None:
                    reset(conn.peer)
                old, conn.state = conn.state, CLOSED
                teardown(conn, old)
                self._cond.notify_all()
            return
        with self._guard:
            self._sockets[conn] = None
        op.ov.data = conn

    def _settle(self, s: MemorySocket) -> None:
        """Wait until every completion of ``s`` (closed: no more come) has been
        delivered, delivering them if no other thread does; a completion of ``s``
        this thread is delivering (it called close) does not count.

        Other threads that keep completing operations meanwhile wait to take
        the delivery over, so a close cannot be starved by them."""
        own = self._delivering().count(s)

        def settled() -> bool:
            return s.undelivered <= own

        with self._guard:
            self._settling += 1
        try:
            while True:
                self._drain(force=True, until=settled)
                with self._guard:
                    if settled():
                        return
                    # Another thread is delivering them: wait for it.
                    self._unpark_all()
                    self._waiting += 1
                    try:
                        self._cond.wait(0.05)
                    finally:
                        self._waiting -= 1
        finally:
            with self._guard:
                self._settling -= 1
                self._cond.notify_all()


#: Every network, so that a forked child can drop the parent's parkers.
_networks: weakref.WeakSet[MemoryNetwork] = weakref.WeakSet()


def _forget_parkers() -> None:
    """In a forked child: no parker of the parent is used again (they share
    its eventfds, so a sleeper here could take a wake-up meant for it)."""
    for net in list(_networks):
        for s in net._sockets:
            s.parker = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parkers)


def reset(s: MemorySocket) -> None:
    """Mark ``s``'s connection as reset: queued data is lost, queued
    operations fail with WSAECONNRESET (lock held)."""
    if s.state == CONNECTED:
        s.state = RESET
        s.error = int(_E.WSAECONNRESET)
        s.peer = None
        clear_stream(s)
        if s.rq or s.sq:
            s.network._abort(s, _E.WSAECONNRESET)


def teardown(s: MemorySocket, old: int) -> None:
    """Free the state of ``s``, closed in state ``old``, and tell its peer (lock held)."""
    net = s.network
    net._sockets.pop(s, None)
    unregister(s)
    if old == LISTENING:
        for pending in s.pending:
            if pending.peer is not None:
                reset(pending.peer)
            pending.state = CLOSED
            unregister(pending)
        s.pending.clear()
    elif old == CONNECTED:
        peer = s.peer
        if peer is not None and peer.state == CONNECTED:
            if s.rlen:
                reset(peer)
            else:
                peer.eof = True
                if peer.rq:
                    net._serve_stream(peer)
    s.peer = None
    s.parker = None  # its eventfd closes once no sleeper or waker holds it
    clear_stream(s)
    s.dgrams.clear()
    s.qlen = 0
