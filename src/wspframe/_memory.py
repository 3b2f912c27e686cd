"""The ``memory`` base provider: an in-process virtual network.

Theory of operation
-------------------
Every :class:`MemoryProvider` instance owns one :class:`MemoryNetwork`: a
single virtual host on which every IP literal is a local address (as if all
of them were aliases of the loopback interface).  Sockets are
:class:`MemorySocket` contexts; no OS socket carries their data.  Their
handles are minted by the host (``create_socket_handle``), so the provider's
entries are non-IFS.

* **Ports.**  Each (socket type, address family) pair is its own port space.
  Binding port 0, or connecting/sending from an unbound socket, takes the
  next free ephemeral port of the network, counting up from 49152, so the
  same program always gets the same ports.  A socket bound to ``""`` (the
  wildcard) conflicts with every address on its port; ``SO_REUSEADDR`` on both
  sockets lifts the conflict unless the existing stream socket listens.
* **Streams.**  ``connect`` completes at once against a listening socket (the
  handshake of an ideal network): the server side is created and queued on
  the listener until ``accept``; beyond the backlog, or with no listener, the
  connection is refused.  Each direction is a queue of ``bytes`` chunks in
  the receiver, bounded by its ``SO_RCVBUF`` (:attr:`MemoryProvider.BUFFER_SIZE`
  by default): a full queue blocks the sender (or fails with WSAEWOULDBLOCK).
  Closing with unread data, or ``SD_RECEIVE`` with data queued or arriving
  later, resets the connection (WSAECONNRESET on the other side), as Winsock
  documents; closing cleanly or ``SD_SEND`` gives the other side end of file.
  Sending to a socket that has closed succeeds once and resets the sender's
  connection (the other stack's answer to the segment).
* **Datagrams.**  Boundaries are kept; a receive buffer smaller than the
  datagram truncates it (the rest is discarded, like Linux).  Each socket
  queues at most ``SO_RCVBUF`` bytes; beyond that, and to addresses nobody
  bound, datagrams are dropped silently, like UDP.  A connected datagram
  socket only receives from its peer.  ``255.255.255.255`` reaches every
  IPv4 datagram socket on the port.
* **Threads.**  One lock per network guards all state.  A blocked call
  sleeps on its thread's own parker (an eventfd on Linux, else a lock) and
  wakes only when its operation is done: by the thread that served it, which
  wakes it after releasing the lock (on one CPU the sleeper then runs at
  once and finds the lock free), by close (WSAEINTR, as Winsock's closesocket
  cancels blocking calls), by :meth:`MemoryNetwork.down` (WSAENETDOWN), or at
  its timeout (WSAETIMEDOUT; WSAEWOULDBLOCK when non-blocking).  ``select``
  waits on the network's condition, woken by any change.  The provider
  starts no thread.
* **Queues.**  A receive or accept that cannot finish at once waits in its
  socket's receive queue, a stream send that does not fit in its socket's send
  queue; a blocked synchronous call waits there exactly like an overlapped
  operation, so neither kind ever overtakes the other.  Whoever makes room or
  data (a peer's send, recv or close, a connect, SO_RCVBUF) serves the queues
  in order, under the lock: data goes to the head receive, pending sends move
  into the room a receive made.  So a stream is never reordered, duplicated
  or lost, however many operations are in flight.
* **Overlapped operations** (``send_overlapped`` ... ``ioctl_overlapped``)
  start and return None; each finishes exactly once through
  ``upcalls.complete_overlapped_request``, at once when it can, otherwise in
  the thread whose action makes it possible.  They ignore the socket's
  timeout.  A stream send finishes with its full count once all its bytes are
  queued at the peer.  End of file finishes receives with 0 bytes (``b""``), a
  reset with WSAECONNRESET, :meth:`MemoryNetwork.down` everything with
  WSAENETDOWN, ``shutdown`` the affected direction with WSAESHUTDOWN, and
  ``close_socket`` and ``cleanup`` everything with WSA_OPERATION_ABORTED (995)
  before the handle is released.  Bad arguments raise instead (nothing
  completes then).
* **Delivery.**  Completions are queued under the lock and delivered after it
  is released, in the order the operations finished, by one thread at a time
  (usually the one that finished them; others leave theirs to it).  A
  completion callback may call the provider again, even block in it (it hands
  delivery over while it sleeps) or close the socket; what it starts is
  delivered after it returns, so callbacks never nest.  A callback must not
  wait for another thread's completion, which it would hold back.  A
  completion that raises is reported to :data:`sys.unraisablehook`, never to
  the caller whose action triggered it.
* **Network down.**  While the network is down every operation except
  ``close_socket`` fails with WSAENETDOWN; sockets and connections survive and
  work again after :meth:`MemoryNetwork.up`.

Addresses are ``(host, port)`` for IPv4 and ``(host, port[, flowinfo[,
scope_id]])`` for IPv6 (returned as 4-tuples, like Python).  Hosts are IP
literals, ``""`` (any address) or ``"localhost"``; there are no names.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import os
import select as _select
import socket as _socket
import struct
import threading
import time
import weakref
from _thread import allocate_lock
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeAlias

from ._constants import (
    AF_INET,
    AF_INET6,
    FIONBIO,
    FIONREAD,
    IPPROTO_TCP,
    IPPROTO_UDP,
    SD_BOTH,
    SD_RECEIVE,
    SD_SEND,
    SOCK_DGRAM,
    SOCK_STREAM,
    IoctlCode,
)
from ._errors import WSAError, WSAErrorCode, contain, raise_wsa, report_unraisable, wsa_error
from ._protocol import MAX_DATAGRAM_V4, MAX_DATAGRAM_V6, ProtocolInfo, ip_entries
from ._spi import ServiceProvider, format_address, resolve_triplet

if TYPE_CHECKING:
    from ._handles import Upcalls

__all__ = ["MemoryNetwork", "MemoryProvider", "MemorySocket"]

_E = WSAErrorCode

# Socket states.
_NEW: Final = 0  # created, perhaps bound (datagram sockets stay here)
_LISTENING: Final = 1
_CONNECTED: Final = 2
_RESET: Final = 3  # the connection was reset; recv/send fail with WSAECONNRESET
_CLOSED: Final = 4
_STATE_NAMES: Final = ("new", "listening", "connected", "reset", "closed")

_ANY: Final = {int(AF_INET): "0.0.0.0", int(AF_INET6): "::"}
_LOOPBACK: Final = {int(AF_INET): "127.0.0.1", int(AF_INET6): "::1"}
_BROADCAST: Final = "255.255.255.255"
_FAMILY_NAMES: Final = {int(AF_INET): "AF_INET", int(AF_INET6): "AF_INET6"}

# Plain ints: the socket module's are IntFlag members, slow to combine.
_MSG_PEEK: Final = int(_socket.MSG_PEEK)
_MSG_WAITALL: Final = int(_socket.MSG_WAITALL)
_MSG_DONTROUTE: Final = int(_socket.MSG_DONTROUTE)
_STREAM_RECV_FLAGS: Final = _MSG_PEEK | _MSG_WAITALL
_DGRAM_RECV_FLAGS: Final = _MSG_PEEK
_SEND_FLAGS: Final = _MSG_DONTROUTE

_SOL_SOCKET: Final = _socket.SOL_SOCKET
_SO_REUSEADDR: Final = _socket.SO_REUSEADDR
_SO_RCVBUF: Final = _socket.SO_RCVBUF
_SO_SNDBUF: Final = _socket.SO_SNDBUF
_SO_TYPE: Final = _socket.SO_TYPE
_SO_ERROR: Final = _socket.SO_ERROR
_SO_KEEPALIVE: Final = _socket.SO_KEEPALIVE
_SO_BROADCAST: Final = _socket.SO_BROADCAST
_IPPROTO_TCP: Final = _socket.IPPROTO_TCP
_TCP_NODELAY: Final = _socket.TCP_NODELAY
_INT: Final = struct.Struct("i")


# Kinds of _Op, and what ``result`` holds for each.
_RECV: Final = 0  # the bytes received
_RECVFROM: Final = 1  # the bytes received (``address``: the sender)
_SEND: Final = 2  # nothing (``data``: the payload; ``count``: bytes queued so far)
_ACCEPT: Final = 3  # the connection (``address``: the peer's)
_OTHER: Final = 4  # done at once (connect, ioctl, datagram sends): ``ov.data``


class _Op:
    """One operation on a socket: an overlapped one (``ov`` set) or a blocked
    synchronous call (``ov`` None: its thread sleeps until ``done``).

    ``count`` is the number of bytes moved so far, the ``nbytes`` reported;
    ``parts`` collects what an MSG_WAITALL receive got so far; ``conn`` is the
    connection an overlapped accept gets once its handle is made.
    """

    __slots__ = (
        "address",
        "conn",
        "count",
        "data",
        "done",
        "error",
        "flags",
        "kind",
        "ov",
        "parts",
        "result",
        "s",
        "size",
        "waker",
    )

    def __init__(self, s: MemorySocket, ov: Any, kind: int, size: int = 0, flags: int = 0) -> None:
        self.s = s
        self.ov = ov
        self.kind = kind
        self.size = size
        self.flags = flags
        self.count = 0
        self.data: bytes | memoryview | None = None
        self.parts: list[bytes] | None = None
        self.result: Any = None
        self.address: Any = None
        self.conn: MemorySocket | None = None
        self.error = 0
        self.done = False
        #: The parker of the blocked call's thread while it sleeps (None otherwise).
        self.waker: _Parker | None = None


class _EventfdParker:
    """A thread's wake-up call on Linux: :meth:`park` sleeps in the kernel until
    :meth:`unpark` (or the timeout); an unpark before the park is kept.

    An eventfd rather than a lock: the waker leaves the interpreter lock while
    it writes, so on one CPU the woken thread runs at once, with the lock free.
    """

    __slots__ = ("_fd", "_poll")

    def __init__(self) -> None:
        self._fd = os.eventfd(0, os.EFD_CLOEXEC)
        self._poll: Any = None

    def park(self, timeout: float | None) -> None:
        """Sleep until unparked or ``timeout`` seconds passed (None: no limit);
        may return early (an unpark meant for an earlier park)."""
        if timeout is None:
            os.eventfd_read(self._fd)
            return
        poll = self._poll
        if poll is None:
            poll = self._poll = _select.poll()
            poll.register(self._fd, _select.POLLIN)
        if poll.poll(timeout * 1000.0):
            os.eventfd_read(self._fd)

    def unpark(self) -> None:
        os.eventfd_write(self._fd, 1)

    def __del__(self, _close: Callable[[int], None] = os.close) -> None:
        fd = getattr(self, "_fd", -1)  # unset when the eventfd could not be made
        if fd >= 0:
            _close(fd)


class _LockParker:
    """:class:`_EventfdParker` where there is no eventfd: a lock held while unparked."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._lock.acquire()

    def park(self, timeout: float | None) -> None:
        self._lock.acquire(True, -1 if timeout is None else timeout)

    def unpark(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:  # unparked already
            pass


_Parker: TypeAlias = "_EventfdParker | _LockParker"
_new_parker: Callable[[], _Parker] = _EventfdParker if hasattr(os, "eventfd") else _LockParker


def _make_parker() -> _Parker:
    """A new parker: an eventfd one where there are eventfds (and descriptors)."""
    try:
        return _new_parker()
    except OSError:  # no descriptor left
        return _LockParker()


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


def _received(op: _Op, data: bytes) -> None:
    """Set a receive's result: what ``parts`` holds, then ``data``."""
    parts = op.parts
    if parts:
        parts.append(data)
        data = b"".join(parts)
        op.parts = None
    op.result = data
    op.count = len(data)


class MemorySocket:
    """The memory provider's socket context (one per socket, server sides included).

    ``handle`` is the host-minted handle, ``protocol_info`` the entry the
    socket was made from, ``family``/``type``/``protocol`` its triplet.  The
    rest is the provider's state; read it, do not change it.
    """

    __slots__ = (
        "backlog",
        "broadcast",
        "chunks",
        "dgrams",
        "eof",
        "error",
        "family",
        "handle",
        "keepalive",
        "key",
        "local",
        "max_datagram",
        "network",
        "nodelay",
        "offset",
        "parker",
        "peer",
        "peer_addr",
        "pending",
        "protocol",
        "protocol_info",
        "qlen",
        "rcvbuf",
        "recv_shut",
        "reuse",
        "rlen",
        "rq",
        "send_shut",
        "sndbuf",
        "sq",
        "state",
        "stream",
        "timeout",
        "type",
        "undelivered",
    )

    def __init__(
        self,
        network: MemoryNetwork,
        protocol_info: ProtocolInfo,
        family: int,
        type: int,
        protocol: int,
        bufsize: int,
    ) -> None:
        self.handle = -1
        self.network = network
        self.protocol_info = protocol_info
        self.family = family
        self.type = type
        self.protocol = protocol
        self.stream = type == SOCK_STREAM
        self.key = (type, family)
        self.max_datagram = MAX_DATAGRAM_V4 if family == AF_INET else MAX_DATAGRAM_V6
        #: Seconds a blocking call may wait: None blocks, 0.0 is non-blocking.
        self.timeout: float | None = None
        self.state = _NEW
        #: Local address ``(ip, port)``, None until bound.
        self.local: tuple[str, int] | None = None
        #: Stream: the socket at the other end.
        self.peer: MemorySocket | None = None
        #: Stream: the other end's address; datagram: the default peer.
        self.peer_addr: tuple[str, int] | None = None
        #: Stream receive queue: chunks, the offset into the first, bytes queued.
        self.chunks: deque[bytes] = deque()
        self.offset = 0
        self.rlen = 0
        #: Datagram receive queue: (payload, sender address), bytes queued.
        self.dgrams: deque[tuple[bytes, Any]] = deque()
        self.qlen = 0
        #: Listener: connections waiting for accept().
        self.pending: deque[MemorySocket] = deque()
        self.backlog = 0
        self.rcvbuf = bufsize
        self.sndbuf = bufsize
        self.reuse = False
        self.broadcast = False
        self.keepalive = False
        self.nodelay = False
        #: Pending SO_ERROR.
        self.error = 0
        #: The other end will send nothing more (it shut down or closed).
        self.eof = False
        self.send_shut = False
        self.recv_shut = False
        #: Receives (accepts on a listener) waiting their turn, oldest first.
        #: Never waiting while data (a connection) is queued: it goes to them.
        self.rq: deque[_Op] = deque()
        #: Stream sends waiting for room at the peer, oldest first.  Never
        #: waiting while the peer has room: it is filled from them.
        self.sq: deque[_Op] = deque()
        #: Completions of this socket finished but not yet delivered.
        self.undelivered = 0
        #: What a blocked call on the socket sleeps on, while none does.
        self.parker: _Parker | None = None

    def __repr__(self) -> str:
        kind = "stream" if self.stream else "datagram"
        family = _FAMILY_NAMES.get(self.family, str(self.family))
        local = format_address(self.local) if self.local else "unbound"
        text = f"<MemorySocket {family} {kind} handle={self.handle} {_STATE_NAMES[self.state]}"
        text += f" {local}"
        if self.peer_addr is not None:
            text += f" -> {format_address(self.peer_addr)}"
        return text + ">"


class _Guard:
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
        self._guard = _Guard(self)
        self._cond = threading.Condition(self._lock)
        #: Whether the network is up (change it with down() and up()).
        self.is_up = True
        #: Threads waiting on the condition (select, close, delivery hand-over).
        self._waiting = 0
        #: Threads parked in a blocked call (see _park()).
        self._parked = 0
        #: The parkers of blocked calls finished under the lock, to unpark
        #: once it is released (see _release()).
        self._wakes: list[_Parker] = []
        self._next_port = self.EPHEMERAL_FIRST
        self._ports: dict[tuple[int, int], dict[int, list[MemorySocket]]] = {}
        self._sockets: dict[MemorySocket, None] = {}
        #: Finished overlapped operations waiting for delivery, in order.
        self._done: deque[_Op] = deque()
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

    def _park(self, op: _Op, timeout: float | None) -> None:
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
            parker = _make_parker()
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
            if s.parker is None and s.state != _CLOSED:
                s.parker = parker

    def _reset_state(self) -> None:
        self._next_port = self.EPHEMERAL_FIRST
        self._ports.clear()
        self._sockets.clear()
        self.is_up = True

    # -- operations (lock held) -------------------------------------------------
    def _finish(self, op: _Op, error: int = 0) -> None:
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
        if kind not in (_SEND, _ACCEPT):
            ov.data = op.result
        if kind in (_RECVFROM, _ACCEPT):
            ov.address = op.address
        self._done.append(op)
        op.s.undelivered += 1

    def _abort(self, s: MemorySocket, error: int, sync_error: int | None = None) -> None:
        """Finish every operation queued on ``s`` with ``error`` (blocked calls
        with ``sync_error``, if given): what moved already is reported."""
        self._abort_queue(s.rq, error, sync_error)
        self._abort_queue(s.sq, error, sync_error)

    def _abort_queue(self, queue: deque[_Op], error: int, sync_error: int | None = None) -> None:
        while queue:
            op = queue.popleft()
            if op.kind <= _RECVFROM:
                _received(op, b"")
            op.data = None
            self._finish(op, error if sync_error is None or op.ov is not None else sync_error)

    def _serve_stream(self, r: MemorySocket) -> None:
        """Serve ``r``'s queued receives, in order, from its stream queue."""
        rq = r.rq
        while rq:
            op = rq[0]
            size = op.size
            if size and r.rlen:
                if op.flags & _MSG_PEEK:
                    data = _peek(r, size)
                else:
                    data = _take(r, size - op.count)
                    if op.flags & _MSG_WAITALL and op.count + len(data) < size:
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
            _received(op, data)
            self._finish(op)

    def _pump(self, w: MemorySocket, r: MemorySocket) -> bool:
        """Move ``w``'s queued sends into ``r``'s stream queue while it has
        room, finishing each send once all of it is in; True if bytes moved."""
        sq = w.sq
        moved = False
        while sq:
            op = sq[0]
            if r.state != _CONNECTED or r.recv_shut:
                # The other end cannot receive any more: its stack answers the
                # data with a reset, after the send itself succeeded.
                sq.popleft()
                op.count = op.size
                op.data = None
                self._finish(op)
                _reset(r)
                _reset(w)
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
            if op.flags & _MSG_PEEK:
                data, op.address = dgrams[0]
            else:
                data, op.address = dgrams.popleft()
                r.qlen -= len(data)
            _received(op, data[: op.size] if len(data) > op.size else data)
            self._finish(op)

    def _serve_accepts(self, s: MemorySocket) -> None:
        """Give ``s``'s queued connections to its queued accepts, in order."""
        rq = s.rq
        pending = s.pending
        while rq and pending:
            op = rq.popleft()
            conn = pending.popleft()
            assert conn.peer_addr is not None
            op.address = _public(conn.family, conn.peer_addr)
            if op.ov is None:
                op.result = conn
            else:
                op.conn = conn  # its handle is made outside the lock, in _deliver()
            self._finish(op)

    def _withdraw(self, op: _Op) -> None:
        """Take a blocked call that gave up out of its queue; the operations
        behind it may go on now."""
        s = op.s
        kind = op.kind
        queue = s.sq if kind == _SEND else s.rq
        try:
            queue.remove(op)
        except ValueError:
            return
        if kind == _ACCEPT:
            self._serve_accepts(s)
        elif not s.stream:
            self._serve_dgrams(s)
        elif s.state == _CONNECTED:
            if kind == _SEND:
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
        done = self._done
        nested: bool | None = None  # known once we may deliver
        budget = 0  # what was queued when we took delivery over
        s: MemorySocket | None = None  # whose completion was just delivered
        stack: list[MemorySocket] | None = None
        try:
            while True:
                with guard:
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
                        # Done, or leave the rest to the thread waiting for it.
                        self._release_delivery(me)
                        return
                    self._drainer = me
                    op = done.popleft()
                    s = op.s
                    if not nested:
                        budget -= 1
                        if budget < 0:
                            self._overtime = True
                if stack is None:
                    stack = self._delivering()
                stack.append(s)
                try:
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
            self._cond.notify_all()

    def _delivering(self) -> list[MemorySocket]:
        """The sockets whose completions the calling thread is delivering."""
        tls = self._tls
        try:
            stack: list[MemorySocket] = tls.stack
        except AttributeError:
            stack = tls.stack = []
        return stack

    def _deliver(self, op: _Op) -> None:
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
            report_unraisable(exc, f"Exception completing {ov!r} on memory socket {s.handle}", s)

    def _adopt(self, op: _Op, upcalls: Upcalls) -> None:
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
                    _reset(conn.peer)
                old, conn.state = conn.state, _CLOSED
                _teardown(conn, old)
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

    def _ephemeral(self, key: tuple[int, int]) -> int:
        table = self._ports.get(key, {})
        first, last = self.EPHEMERAL_FIRST, self.EPHEMERAL_LAST
        port = self._next_port
        for _ in range(last - first + 1):
            following = port + 1 if port < last else first
            if port not in table:
                self._next_port = following
                return port
            port = following
        raise_wsa(_E.WSAENOBUFS, f"no free ephemeral port in {first}..{last}")

    def _register(self, s: MemorySocket) -> None:
        assert s.local is not None
        self._ports.setdefault(s.key, {}).setdefault(s.local[1], []).append(s)

    def _unregister(self, s: MemorySocket) -> None:
        if s.local is None:
            return
        table = self._ports.get(s.key)
        if table is None:
            return
        port = s.local[1]
        bound = table.get(port)
        if bound is not None and s in bound:
            bound.remove(s)
            if not bound:
                del table[port]

    def _conflict(self, s: MemorySocket, ip: str, port: int) -> MemorySocket | None:
        """The socket that keeps ``s`` from ``(ip, port)``, if any."""
        wild = _ANY[s.family]
        for other in self._ports.get(s.key, {}).get(port, ()):
            if other is s or other.local is None:
                continue
            oip = other.local[0]
            if oip != ip and oip != wild and ip != wild:
                continue
            if s.reuse and other.reuse and not (s.stream and other.state == _LISTENING):
                continue
            return other
        return None


# -- addresses --------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _host_ip(family: int, host: str) -> str | None:
    """The normalised IP of ``host`` (None when it is of the other family)."""
    if host == "":
        return _ANY[family]
    if host == "localhost":
        return _LOOPBACK[family]
    if host == "<broadcast>":
        return _BROADCAST if family == AF_INET else None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise_wsa(
            _E.WSAEFAULT,
            f"host must be an IP literal, '' or 'localhost' (the memory network has no "
            f"names), got {host!r}",
        )
    if (ip.version == 4) != (family == AF_INET):
        return None
    return str(ip)


def _parse(family: int, address: Any, wrong_family: int) -> tuple[str, int]:
    """``(ip, port)`` from a user address; WSAEFAULT when malformed."""
    if type(address) is not tuple or not (
        len(address) == 2 if family == AF_INET else 2 <= len(address) <= 4
    ):
        shape = "(host, port)" if family == AF_INET else "(host, port[, flowinfo[, scope_id]])"
        raise_wsa(
            _E.WSAEFAULT,
            f"address must be a {shape} tuple for {_FAMILY_NAMES[family]}, got {address!r}",
        )
    host, port = address[0], address[1]
    if type(port) is not int or not 0 <= port <= 65535:
        raise_wsa(_E.WSAEFAULT, f"port must be an int in 0..65535, got {port!r} in {address!r}")
    if len(address) > 2:
        flowinfo = address[2]
        if type(flowinfo) is not int or not 0 <= flowinfo <= 0xFFFFF:
            raise_wsa(_E.WSAEFAULT, f"flowinfo must be an int in 0..1048575, got {flowinfo!r}")
        if len(address) > 3 and (type(address[3]) is not int or address[3] < 0):
            raise_wsa(_E.WSAEFAULT, f"scope_id must be an int >= 0, got {address[3]!r}")
    if type(host) is not str:
        raise_wsa(_E.WSAEFAULT, f"host must be a str, got {host!r} in {address!r}")
    ip = _host_ip(family, host)
    if ip is None:
        raise_wsa(
            wrong_family,
            f"address {address!r} is not an {_FAMILY_NAMES[family]} address",
        )
    return (ip, port)


def _public(family: int, addr: tuple[str, int]) -> Any:
    """The address as Python shows it: a 4-tuple for IPv6."""
    if family == AF_INET:
        return addr
    return (addr[0], addr[1], 0, 0)


def _as_bytes(data: Any) -> bytes:
    try:
        return bytes(memoryview(data))
    except TypeError:
        raise wsa_error(_E.WSAEFAULT, f"data must be a bytes-like object, got {data!r}") from None


def _byte_view(data: Any) -> memoryview:
    """A flat byte view of a bytes-like object (release it after use)."""
    try:
        view = memoryview(data)
    except TypeError:
        raise wsa_error(_E.WSAEFAULT, f"data must be a bytes-like object, got {data!r}") from None
    if view.format == "B" and view.ndim == 1:
        return view
    with view:
        try:
            return view.cast("B")
        except TypeError:
            raise wsa_error(_E.WSAEFAULT, f"data must be C-contiguous, got {data!r}") from None


def _writable_view(buffer: Any, nbytes: int) -> tuple[memoryview, int]:
    """A writable byte view of ``buffer`` and the size to read into it."""
    try:
        view = memoryview(buffer)
    except TypeError:
        raise_wsa(_E.WSAEFAULT, f"buffer must be a writable bytes-like object, got {buffer!r}")
    if view.readonly:
        raise_wsa(_E.WSAEFAULT, f"buffer must be writable, got {buffer!r}")
    if view.format != "B" or view.ndim != 1:
        try:
            view = view.cast("B")
        except TypeError:
            raise_wsa(_E.WSAEFAULT, f"buffer must be C-contiguous, got {buffer!r}")
    if type(nbytes) is not int or nbytes < 0:
        raise_wsa(_E.WSAEINVAL, f"nbytes must be an int >= 0, got {nbytes!r}")
    if nbytes > len(view):
        raise_wsa(
            _E.WSAEINVAL, f"nbytes must not exceed the buffer's {len(view)} bytes, got {nbytes!r}"
        )
    return view, nbytes or len(view)


# -- stream queues (lock held) ------------------------------------------------------


def _take(s: MemorySocket, n: int) -> bytes:
    """Remove and return up to ``n`` queued bytes (``s.rlen > 0``, ``n > 0``)."""
    chunks = s.chunks
    head = chunks[0]
    off = s.offset
    avail = len(head) - off
    if avail > n:
        s.offset = off + n
        s.rlen -= n
        return head[off : off + n]
    if off == 0 and (avail == n or len(chunks) == 1):
        chunks.popleft()
        s.rlen -= avail
        return head
    parts = []
    need = n
    while need and chunks:
        head = chunks[0]
        avail = len(head) - off
        if avail <= need:
            parts.append(head[off:] if off else head)
            chunks.popleft()
            need -= avail
            off = 0
        else:
            parts.append(head[off : off + need])
            off += need
            need = 0
    s.offset = off
    s.rlen -= n - need
    return b"".join(parts)


def _peek(s: MemorySocket, n: int) -> bytes:
    """Up to ``n`` queued bytes, left in the queue."""
    parts = []
    off = s.offset
    need = n
    for chunk in s.chunks:
        part = chunk[off : off + need]
        parts.append(part)
        need -= len(part)
        off = 0
        if not need:
            break
    return b"".join(parts)


def _clear_stream(s: MemorySocket) -> None:
    s.chunks.clear()
    s.offset = 0
    s.rlen = 0


def _reset(s: MemorySocket) -> None:
    """Mark ``s``'s connection as reset: queued data is lost, queued
    operations fail with WSAECONNRESET (lock held)."""
    if s.state == _CONNECTED:
        s.state = _RESET
        s.error = int(_E.WSAECONNRESET)
        s.peer = None
        _clear_stream(s)
        if s.rq or s.sq:
            s.network._abort(s, _E.WSAECONNRESET)


def _teardown(s: MemorySocket, old: int) -> None:
    """Free the state of ``s``, closed in state ``old``, and tell its peer (lock held)."""
    net = s.network
    net._sockets.pop(s, None)
    net._unregister(s)
    if old == _LISTENING:
        for pending in s.pending:
            if pending.peer is not None:
                _reset(pending.peer)
            pending.state = _CLOSED
            net._unregister(pending)
        s.pending.clear()
    elif old == _CONNECTED:
        peer = s.peer
        if peer is not None and peer.state == _CONNECTED:
            if s.rlen:
                _reset(peer)
            else:
                peer.eof = True
                if peer.rq:
                    net._serve_stream(peer)
    s.peer = None
    s.parker = None  # its eventfd closes once no sleeper or waker holds it
    _clear_stream(s)
    s.dgrams.clear()
    s.qlen = 0


def _stream_error(s: MemorySocket, sending: bool) -> int:
    """Why a stream send (``sending``) or receive cannot start on ``s`` (0: it can)."""
    if s.state != _CONNECTED:
        return _E.WSAECONNRESET if s.state == _RESET else _E.WSAENOTCONN
    if s.send_shut if sending else s.recv_shut:
        return _E.WSAESHUTDOWN
    return 0


def _failure(error: int, what: str, s: MemorySocket) -> str:
    """The message of a blocked call that failed with ``error``."""
    if error == _E.WSAEINTR:
        return f"{what} interrupted: socket {s.handle} was closed"
    if error == _E.WSAENETDOWN:
        return f"{what} failed: the memory network is down"
    if error == _E.WSAECONNRESET:
        return f"{what} on a connection that was reset"
    if error == _E.WSAENOTCONN:
        return f"{what} on a socket that is not connected"
    if error == _E.WSAESHUTDOWN:
        return f"{what} after shutdown({'SD_SEND' if what == 'send' else 'SD_RECEIVE'})"
    return f"{what} failed"


def _outcome(op: _Op) -> Any:
    """What the blocked call of ``op`` returns."""
    kind = op.kind
    if kind == _SEND:
        return op.count
    if kind == _ACCEPT:
        return op.result
    if op.result is None:  # gave up: what MSG_WAITALL collected
        _received(op, b"")
    return op.result if kind == _RECV else (op.result, op.address)


class MemoryProvider(ServiceProvider):
    """The ``memory`` base provider: TCP- and UDP-like sockets on an in-process network.

    Each instance has its own :attr:`network` (a :class:`MemoryNetwork`).
    Semantics are Winsock's where Winsock documents them; see the module
    docstring for the model.
    """

    name = "memory"
    description = "in-process virtual network (TCP/UDP semantics, no OS sockets)"
    protocols: ClassVar[Sequence[ProtocolInfo]] = ip_entries("memory", ifs=False)

    #: Default SO_RCVBUF/SO_SNDBUF: the bound of each direction's queue.
    BUFFER_SIZE: ClassVar[int] = 256 * 1024
    #: Largest datagram payloads (also the UDP entries' ``message_size``).
    MAX_DATAGRAM_V4: ClassVar[int] = MAX_DATAGRAM_V4
    MAX_DATAGRAM_V6: ClassVar[int] = MAX_DATAGRAM_V6
    #: listen() backlogs are clamped to 1..MAX_BACKLOG.
    MAX_BACKLOG: ClassVar[int] = 4096

    network: MemoryNetwork

    def __init__(self) -> None:
        self.network = MemoryNetwork()

    # -- lifetime ---------------------------------------------------------------
    def cleanup(self) -> None:
        """Abort every pending operation (WSA_OPERATION_ABORTED), close every
        socket still open (freeing its handle) and reset the network.

        Afterwards the provider can be started again like a new one: ports
        count from 49152 again and the network is up.
        """
        net = self.network
        # Every pending operation is aborted first (not finished by the end of
        # file or reset that closing its peer would give).
        self.cancel_io()
        tried: set[MemorySocket] = set()
        while left := [s for s in net.sockets() if s not in tried]:
            for s in left:
                tried.add(s)
                try:
                    self.close_socket(s)
                except WSAError:
                    # Closed meanwhile by another thread, or the host already
                    # dropped the handle: the state is freed either way.
                    pass
        with net._guard:
            net._reset_state()
        super().cleanup()

    def cancel_io(self) -> None:
        """Complete every pending overlapped operation with WSA_OPERATION_ABORTED
        (and interrupt blocked calls); the host calls it first at its last cleanup."""
        net = self.network
        with net._guard:
            for s in net._sockets:
                net._abort(s, _E.WSA_OPERATION_ABORTED, _E.WSAEINTR)
            net._cond.notify_all()
        net._drain()

    def startup(self, upcalls: Upcalls) -> None:
        """``WSPStartup``: keep the upcalls (the network completes through them)."""
        super().startup(upcalls)
        self.network._upcalls = upcalls

    # -- helpers (lock held) ----------------------------------------------------
    def _check(self, s: Any) -> None:
        """Raise unless ``s`` is an open socket of this network and the network is up."""
        if type(s) is not MemorySocket or s.network is not self.network:
            raise_wsa(_E.WSAENOTSOCK, f"{s!r} is not a socket of this memory provider")
        if s.state == _CLOSED:
            raise_wsa(_E.WSAENOTSOCK, f"socket {s.handle} is closed")
        if not self.network.is_up:
            raise_wsa(_E.WSAENETDOWN, "the memory network is down")

    def _block(
        self, s: MemorySocket, op: _Op, timeout: float | None, deadline: float, what: str
    ) -> float:
        """Wait once for a change; return the deadline (0.0 until one is set).

        Raises WSAEWOULDBLOCK (non-blocking), WSAETIMEDOUT (deadline passed),
        WSAEINTR (closed meanwhile) or WSAENETDOWN (network went down).
        """
        net = self.network
        if timeout is None:
            net._park(op, None)
        else:
            if timeout == 0.0:
                raise_wsa(_E.WSAEWOULDBLOCK, f"{what} would block on a non-blocking socket")
            now = time.monotonic()
            if not deadline:
                deadline = now + timeout
            remaining = deadline - now
            if remaining <= 0.0:
                raise_wsa(_E.WSAETIMEDOUT, f"{what} timed out after {timeout!r} s")
            net._park(op, remaining)
        if op.done:
            return deadline
        if s.state == _CLOSED:
            raise_wsa(_E.WSAEINTR, f"{what} interrupted: socket {s.handle} was closed")
        if not net.is_up:
            raise_wsa(_E.WSAENETDOWN, f"{what} failed: the memory network is down")
        return deadline

    def _await(self, s: MemorySocket, op: _Op, what: str) -> Any:
        """Wait until the blocked call's ``op`` (queued on ``s``) is done, within
        the socket's timeout; its outcome.  A call that gives up or fails after
        moving bytes returns what it moved (a partial count, the bytes got)."""
        timeout = s.timeout
        deadline = 0.0
        try:
            if timeout is None:
                park = self.network._park
                while not op.done:  # only done wakes it (close and down finish it)
                    park(op, None)
            else:
                while not op.done:
                    deadline = self._block(s, op, timeout, deadline, what)
        except WSAError:
            if not op.done:
                self.network._withdraw(op)
                if op.count:
                    return _outcome(op)
                raise
        except BaseException:
            if not op.done:
                self.network._withdraw(op)
            raise
        if op.error and not op.count:
            raise_wsa(op.error, _failure(op.error, what, s))
        return _outcome(op)

    def _op(self, s: Any, ov: Any, kind: int, size: int = 0, flags: int = 0) -> _Op:
        """A new overlapped operation on ``s`` (lock held); WSAENOTSOCK unless
        ``s`` is an open socket of this network (nothing completes then)."""
        if type(s) is not MemorySocket or s.network is not self.network:
            raise_wsa(_E.WSAENOTSOCK, f"{s!r} is not a socket of this memory provider")
        if s.state == _CLOSED:
            raise_wsa(_E.WSAENOTSOCK, f"socket {s.handle} is closed")
        return _Op(s, ov, kind, size, flags)

    def _autobind(self, s: MemorySocket, ip: str) -> tuple[str, int]:
        net = self.network
        s.local = (ip, net._ephemeral(s.key))
        net._register(s)
        return s.local

    # -- creation ---------------------------------------------------------------
    def socket(
        self,
        af: int,
        type: int,
        protocol: int,
        protocol_info: ProtocolInfo,
        group: int,
        flags: int,
    ) -> MemorySocket:
        """``WSPSocket``: a new socket of ``protocol_info``'s kind.

        0 and FROM_PROTOCOL_INFO (-1) in ``af``/``type`` and 0 or -1 in
        ``protocol`` take the entry's values; other values must match it.
        """
        net = self.network
        if not net.is_up:
            raise_wsa(_E.WSAENETDOWN, "the memory network is down")
        info = protocol_info
        fam, typ, proto = info.address_family, info.socket_type, info.protocol
        if fam not in _ANY or (typ, proto) not in (
            (SOCK_STREAM, IPPROTO_TCP),
            (SOCK_DGRAM, IPPROTO_UDP),
        ):
            raise_wsa(_E.WSAEINVAL, f"protocol info {info!r} is not a memory provider entry")
        resolve_triplet(af, type, protocol, info)
        s = MemorySocket(net, info, int(fam), int(typ), int(proto), self.BUFFER_SIZE)
        s.handle = self.upcalls.create_socket_handle(info.catalog_entry_id, s)
        with net._guard:
            net._sockets[s] = None
        return s

    def close_socket(self, s: MemorySocket) -> None:
        """``WSPCloseSocket``: abort, release the handle, then tear the socket down.

        Every pending overlapped operation of ``s`` completes with
        WSA_OPERATION_ABORTED, and is delivered, before the handle is
        released; nothing completes for ``s`` afterwards.  Blocked calls on
        ``s`` fail with WSAEINTR.  A connection closed with unread data is
        reset (the peer gets WSAECONNRESET); otherwise the peer gets end of
        file.  Pending connections of a listener are reset.  Works while the
        network is down.
        """
        net = self.network
        with net._guard:
            if type(s) is not MemorySocket or s.network is not net:
                raise_wsa(_E.WSAENOTSOCK, f"{s!r} is not a socket of this memory provider")
            if s.state == _CLOSED:
                raise_wsa(_E.WSAENOTSOCK, f"socket {s.handle} is already closed")
            old = s.state
            s.state = _CLOSED
            net._abort(s, _E.WSA_OPERATION_ABORTED, _E.WSAEINTR)
            net._wake()
        try:
            if s.undelivered:
                net._settle(s)
            self.upcalls.close_socket_handle(s.handle)
        finally:
            with net._guard:
                _teardown(s, old)
                net._cond.notify_all()
            if net._done:
                net._drain()

    # -- addresses and connections ----------------------------------------------
    def bind(self, s: MemorySocket, address: Any) -> None:
        """``WSPBind``: take a local address; port 0 picks an ephemeral port.

        WSAEADDRINUSE when taken, WSAEINVAL when already bound.
        """
        ip, port = _parse(s.family, address, _E.WSAEFAULT)
        net = self.network
        with net._guard:
            self._check(s)
            if s.local is not None:
                raise_wsa(
                    _E.WSAEINVAL,
                    f"socket is already bound to {format_address(s.local)}, "
                    f"cannot bind to {address!r}",
                )
            if port == 0:
                port = net._ephemeral(s.key)
            elif net._conflict(s, ip, port) is not None:
                raise_wsa(_E.WSAEADDRINUSE, f"address {address!r} is already in use")
            s.local = (ip, port)
            net._register(s)

    def listen(self, s: MemorySocket, backlog: int) -> None:
        """``WSPListen``: accept connections, at most ``backlog`` waiting (at least 1)."""
        if type(backlog) is not int:
            raise_wsa(_E.WSAEINVAL, f"backlog must be an int, got {backlog!r}")
        backlog = min(max(backlog, 1), self.MAX_BACKLOG)
        net = self.network
        with net._guard:
            self._check(s)
            if not s.stream:
                raise_wsa(_E.WSAEOPNOTSUPP, "listen on a datagram socket")
            if s.state == _LISTENING:
                s.backlog = backlog
                return
            if s.state != _NEW:
                raise_wsa(_E.WSAEINVAL, "listen on a connected socket")
            if s.local is None:
                raise_wsa(_E.WSAEINVAL, "listen on a socket that is not bound")
            ip, port = s.local
            wild = _ANY[s.family]
            for other in net._ports[s.key][port]:
                if other is not s and other.state == _LISTENING and other.local is not None:
                    oip = other.local[0]
                    if oip in (ip, wild) or ip == wild:
                        raise_wsa(
                            _E.WSAEADDRINUSE,
                            f"address {format_address(s.local)} already has a listener",
                        )
            s.state = _LISTENING
            s.backlog = backlog

    def accept(self, s: MemorySocket) -> tuple[MemorySocket, Any]:
        """``WSPAccept``: the next connection and its peer's address.

        The new socket gets its own handle under the listener's catalog id,
        inherits the listener's options and starts blocking (timeout None, as
        Python's accepted sockets do).
        """
        net = self.network
        try:
            with net._guard:
                self._check(s)
                if not s.stream:
                    raise_wsa(_E.WSAEOPNOTSUPP, "accept on a datagram socket")
                if s.state != _LISTENING:
                    raise_wsa(_E.WSAEINVAL, "accept on a socket that is not listening")
                if s.pending:  # never while accepts wait: they got it
                    conn = s.pending.popleft()
                else:
                    op = _Op(s, None, _ACCEPT)
                    s.rq.append(op)
                    conn = self._await(s, op, "accept")
        finally:
            if net._done:
                net._drain()
        try:
            conn.handle = self.upcalls.create_socket_handle(s.protocol_info.catalog_entry_id, conn)
        except BaseException:
            with net._guard:
                if conn.peer is not None:
                    _reset(conn.peer)
                old, conn.state = conn.state, _CLOSED
                _teardown(conn, old)
                net._cond.notify_all()
            if net._done:
                net._drain()
            raise
        with net._guard:
            net._sockets[conn] = None
        assert conn.peer_addr is not None
        return conn, _public(conn.family, conn.peer_addr)

    def connect(self, s: MemorySocket, address: Any) -> None:
        """``WSPConnect``: connect a stream socket, or set a datagram socket's peer.

        Binds an ephemeral port first if needed.  Stream: WSAECONNREFUSED when
        nobody listens there or the backlog is full.  Datagram: the address
        becomes the default peer and only its datagrams are received;
        ``("0.0.0.0", 0)``/``("::", 0)`` dissolves the association.
        """
        ip, port = _parse(s.family, address, _E.WSAEAFNOSUPPORT)
        net = self.network
        try:
            with net._guard:
                self._check(s)
                self._connect(s, ip, port, address)
        finally:
            if net._done:
                net._drain()

    def _connect(self, s: MemorySocket, ip: str, port: int, address: Any) -> None:
        """:meth:`connect` (lock held, ``s`` checked); a queued accept takes the
        connection at once."""
        wild = _ANY[s.family]
        net = self.network
        if not s.stream:
            if ip == wild and port == 0:
                s.peer_addr = None
                return
            if ip == wild or port == 0:
                raise_wsa(_E.WSAEADDRNOTAVAIL, f"cannot connect to {address!r}")
            if s.local is None:
                self._autobind(s, wild)
            assert s.local is not None
            if s.local[0] == wild:
                s.local = (_LOOPBACK[s.family] if ip == _BROADCAST else ip, s.local[1])
            s.peer_addr = (ip, port)
            return
        if s.state != _NEW:
            what = "listening" if s.state == _LISTENING else "already connected"
            raise_wsa(_E.WSAEINVAL, f"connect to {address!r} on a socket that is {what}")
        if ip in (wild, _BROADCAST) or port == 0:
            raise_wsa(_E.WSAEADDRNOTAVAIL, f"cannot connect to {address!r}")
        if s.local is None:
            self._autobind(s, ip)
        assert s.local is not None
        if s.local[0] == wild:
            s.local = (ip, s.local[1])
        listener = None
        for other in net._ports.get(s.key, {}).get(port, ()):
            if other.state == _LISTENING and other.local is not None:
                if other.local[0] == ip:
                    listener = other
                    break
                if other.local[0] == wild and listener is None:
                    listener = other
        if listener is None:
            raise_wsa(_E.WSAECONNREFUSED, f"nobody listens at {address!r}")
        if len(listener.pending) >= listener.backlog:
            raise_wsa(
                _E.WSAECONNREFUSED,
                f"the backlog of {listener.backlog} at {address!r} is full",
            )
        server = MemorySocket(
            net, listener.protocol_info, s.family, s.type, s.protocol, listener.rcvbuf
        )
        server.sndbuf = listener.sndbuf
        server.reuse = listener.reuse
        server.keepalive = listener.keepalive
        server.nodelay = listener.nodelay
        server.local = (ip, port)
        server.state = _CONNECTED
        server.peer = s
        server.peer_addr = s.local
        net._register(server)
        s.state = _CONNECTED
        s.peer = server
        s.peer_addr = (ip, port)
        listener.pending.append(server)
        if listener.rq:
            net._serve_accepts(listener)
        net._wake()

    def shutdown(self, s: MemorySocket, how: int) -> None:
        """``WSPShutdown``: SD_RECEIVE (0), SD_SEND (1) or SD_BOTH (2).

        After SD_SEND the peer reads end of file once its queue is drained and
        send fails with WSAESHUTDOWN; after SD_RECEIVE recv fails with
        WSAESHUTDOWN, and data queued or arriving later resets a connection.
        Operations pending in the direction shut down complete with
        WSAESHUTDOWN (a send with the count it moved so far).
        """
        if how not in (SD_RECEIVE, SD_SEND, SD_BOTH):
            raise_wsa(_E.WSAEINVAL, f"how must be SD_RECEIVE, SD_SEND or SD_BOTH, got {how!r}")
        net = self.network
        try:
            with net._guard:
                self._check(s)
                if s.stream:
                    if s.state == _RESET:
                        raise_wsa(_E.WSAECONNRESET, "shutdown on a connection that was reset")
                    if s.state != _CONNECTED:
                        raise_wsa(_E.WSAENOTCONN, "shutdown on a socket that is not connected")
                if how != SD_RECEIVE and not s.send_shut:
                    s.send_shut = True
                    net._abort_queue(s.sq, _E.WSAESHUTDOWN)
                    peer = s.peer
                    if peer is not None and peer.state == _CONNECTED:
                        peer.eof = True
                        if peer.rq:
                            net._serve_stream(peer)
                if how != SD_SEND and not s.recv_shut:
                    s.recv_shut = True
                    if s.stream and s.rlen:
                        peer = s.peer
                        if peer is not None:
                            _reset(peer)
                        _reset(s)
                    net._abort_queue(s.rq, _E.WSAESHUTDOWN)
                    s.dgrams.clear()
                    s.qlen = 0
                net._wake()
        finally:
            if net._done:
                net._drain()

    def getsockname(self, s: MemorySocket) -> Any:
        """``WSPGetSockName``: the local address; WSAEINVAL when not bound."""
        with self.network._guard:
            self._check(s)
            if s.local is None:
                raise_wsa(_E.WSAEINVAL, "getsockname on a socket that is not bound")
            return _public(s.family, s.local)

    def getpeername(self, s: MemorySocket) -> Any:
        """``WSPGetPeerName``: the peer's address; WSAENOTCONN when not connected."""
        with self.network._guard:
            self._check(s)
            if s.peer_addr is None or (s.stream and s.state != _CONNECTED):
                raise_wsa(_E.WSAENOTCONN, "getpeername on a socket that is not connected")
            return _public(s.family, s.peer_addr)

    # -- data ---------------------------------------------------------------------
    def send(self, s: MemorySocket, data: Any, flags: int) -> int:
        """``WSPSend``: queue ``data`` at the peer; the number of bytes accepted.

        Blocking sockets wait until everything is queued; with a timeout, or
        non-blocking, the count may be partial (WSAETIMEDOUT/WSAEWOULDBLOCK
        only when nothing was queued).  On a datagram socket: one datagram to
        the connected peer.
        """
        if type(data) is not bytes:
            return self._send_buffer(s, data, flags)
        net = self.network
        n = -1  # not sent
        waker = None  # the receiver's, to wake after the lock
        net._lock.acquire()
        try:
            peer = s.peer
            if (
                peer is not None
                and not flags
                and s.state == _CONNECTED
                and not s.send_shut
                and net.is_up
                and peer.state == _CONNECTED
                and not peer.recv_shut
                and peer.rcvbuf - peer.rlen >= len(data)
            ):
                # Sends queued on s leave the peer no room (see MemorySocket.sq),
                # so this cannot overtake them.
                n = len(data)
                rq = peer.rq
                op = rq[0] if rq else None
                if op is not None and op.ov is None and not op.flags and 0 < n <= op.size:
                    # A blocked plain recv waits at the peer (so nothing is
                    # queued there): hand it the data, as _serve_stream() and
                    # _finish() would; its thread wakes once the lock is free.
                    rq.popleft()
                    op.result = data
                    op.count = n
                    op.done = True
                    waker = op.waker
                    if waker is not None:
                        op.waker = None
                        net._parked -= 1
                elif n:
                    peer.chunks.append(data)
                    peer.rlen += n
                    if rq:  # receives wait at the peer: they take it now, in order
                        net._serve_stream(peer)
                if n and net._waiting:
                    net._cond.notify_all()
        finally:
            # net._release(), inlined: release, then wake the receivers
            wakes = net._wakes
            if wakes:
                net._wakes = []
                net._lock.release()
                for other in wakes:
                    other.unpark()
            else:
                net._lock.release()
            if waker is not None:
                waker.unpark()
        if n < 0:
            return self._send_slow(s, data, flags)
        if net._done:
            net._drain()
        return n

    def _send_slow(self, s: MemorySocket, data: bytes, flags: int) -> int:
        net = self.network
        try:
            with net._guard:
                return self._send_locked(s, data, flags)
        finally:
            if net._done:
                net._drain()

    def _send_buffer(self, s: MemorySocket, data: Any, flags: int) -> int:
        """:meth:`send` of a bytes-like object: copy only what is queued."""
        net = self.network
        try:
            with _byte_view(data) as view, net._guard:
                return self._send_locked(s, view, flags)
        finally:
            if net._done:
                net._drain()

    def _send_locked(self, s: MemorySocket, data: bytes | memoryview, flags: int) -> int:
        if flags & ~_SEND_FLAGS:
            raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported send flags {flags!r}")
        self._check(s)
        if not s.stream:
            if s.peer_addr is None:
                raise_wsa(_E.WSAENOTCONN, "send on a datagram socket that is not connected")
            return self._deliver(s, bytes(data), s.peer_addr)
        error = _stream_error(s, True)
        if error:
            raise_wsa(error, _failure(error, "send", s))
        op = _Op(s, None, _SEND, len(data))
        op.data = data
        s.sq.append(op)
        assert s.peer is not None
        self.network._move(s, s.peer)
        result: int = self._await(s, op, "send")
        return result

    def recv(self, s: MemorySocket, bufsize: int, flags: int) -> bytes:
        """``WSPRecv``: up to ``bufsize`` bytes; ``b""`` at end of file.

        Flags: MSG_PEEK, MSG_WAITALL (streams).  On a datagram socket: one
        datagram, truncated to ``bufsize``.
        """
        net = self.network
        net._lock.acquire()
        try:
            if s.rlen and not flags and net.is_up and type(bufsize) is int and bufsize > 0:
                # Receives queued on s never wait while data is queued (see
                # MemorySocket.rq), so this cannot overtake them.
                data = _take(s, bufsize)
                if s.peer.sq:  # type: ignore[union-attr]  # data queued: a peer
                    net._flow_in(s)  # the room made lets the peer's queued sends in
                elif net._waiting:
                    net._cond.notify_all()
            elif s.stream:
                data = self._recv_stream(s, bufsize, flags)
            else:
                data = self._recv_dgram(s, bufsize, flags, _RECV)
        finally:
            # net._release(), inlined: release, then wake the senders the room let in
            wakes = net._wakes
            if wakes:
                net._wakes = []
                net._lock.release()
                for waker in wakes:
                    waker.unpark()
            else:
                net._lock.release()
            if net._done:
                net._drain()
        return data

    def _check_bufsize(self, bufsize: Any) -> None:
        if type(bufsize) is not int:
            raise_wsa(_E.WSAEINVAL, f"bufsize must be an int, got {bufsize!r}")
        if bufsize < 0:
            raise_wsa(_E.WSAEINVAL, f"bufsize must be >= 0, got {bufsize!r}")

    def _recv_stream(self, s: MemorySocket, bufsize: int, flags: int) -> bytes:
        self._check_bufsize(bufsize)
        self._check(s)
        if flags & ~_STREAM_RECV_FLAGS:
            raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported recv flags {flags!r}")
        error = _stream_error(s, False)
        if error:
            raise_wsa(error, _failure(error, "recv", s))
        if bufsize == 0:
            return b""
        net = self.network
        # Data (or end of file) is never queued while receives wait: they got it.
        if s.rlen:
            if flags & _MSG_PEEK:
                return _peek(s, bufsize)
            if not flags & _MSG_WAITALL or s.rlen >= bufsize:
                data = _take(s, bufsize)
                net._flow_in(s)
                return data
        elif s.eof:
            return b""
        op = _Op(s, None, _RECV, bufsize, flags)
        s.rq.append(op)
        if s.rlen or s.peer.sq:  # type: ignore[union-attr]  # connected: a peer
            # MSG_WAITALL takes what is there; queued sends move into the room.
            net._flow_in(s)
        result: bytes = self._await(s, op, "recv")
        return result

    def _recv_dgram(self, s: MemorySocket, bufsize: int, flags: int, kind: int) -> Any:
        """One datagram: its bytes (``kind`` _RECV) or ``(bytes, sender)`` (_RECVFROM)."""
        self._check_bufsize(bufsize)
        self._check(s)
        if flags & ~_DGRAM_RECV_FLAGS:
            raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported recv flags {flags!r} on a datagram socket")
        if s.recv_shut:
            raise_wsa(_E.WSAESHUTDOWN, "recv after shutdown(SD_RECEIVE)")
        if s.local is None:
            raise_wsa(_E.WSAEINVAL, "recv on a datagram socket that is not bound")
        dgrams = s.dgrams
        if dgrams:  # never while receives wait: they got it
            if flags & _MSG_PEEK:
                data, address = dgrams[0]
            else:
                data, address = dgrams.popleft()
                s.qlen -= len(data)
            if len(data) > bufsize:
                data = data[:bufsize]
            return data if kind == _RECV else (data, address)
        op = _Op(s, None, kind, bufsize, flags)
        s.rq.append(op)
        return self._await(s, op, "recv")

    def recv_into(self, s: MemorySocket, buffer: Any, nbytes: int, flags: int) -> int:
        """``WSPRecv`` into ``buffer`` (``nbytes`` 0: its length); the count."""
        view, size = _writable_view(buffer, nbytes)
        data = self.recv(s, size, flags)
        n = len(data)
        view[:n] = data
        return n

    def sendto(self, s: MemorySocket, data: Any, flags: int, address: Any) -> int:
        """``WSPSendTo``: one datagram to ``address`` (dropped if nobody bound it).

        WSAEMSGSIZE beyond the datagram limit.  On a stream socket the address
        is ignored and this is :meth:`send` (WSAENOTCONN when not connected).
        """
        if s.stream:
            return self.send(s, data, flags)
        if type(data) is not bytes:
            data = _as_bytes(data)
        if flags and flags & ~_SEND_FLAGS:
            raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported sendto flags {flags!r}")
        dest = _parse(s.family, address, _E.WSAEAFNOSUPPORT)
        net = self.network
        with net._guard:
            self._check(s)
            n = self._deliver(s, data, dest)
        if net._done:  # it served queued receives
            net._drain()
        return n

    def _deliver(self, s: MemorySocket, data: bytes, dest: tuple[str, int]) -> int:
        """Send one datagram (lock held, ``s`` checked)."""
        n = len(data)
        if n > s.max_datagram:
            raise_wsa(
                _E.WSAEMSGSIZE,
                f"datagram of {n} bytes exceeds the limit of {s.max_datagram} bytes",
            )
        if s.send_shut:
            raise_wsa(_E.WSAESHUTDOWN, "send after shutdown(SD_SEND)")
        ip, port = dest
        wild = _ANY[s.family]
        if ip == wild or port == 0:
            raise_wsa(_E.WSAEADDRNOTAVAIL, f"cannot send to {format_address(dest)}")
        local = s.local
        if local is None:
            local = self._autobind(s, wild)
        src_ip = local[0]
        if src_ip == wild:
            src_ip = _LOOPBACK[s.family] if ip == _BROADCAST else ip
        src = (src_ip, local[1])
        sender = src if s.family == AF_INET else (src_ip, local[1], 0, 0)
        net = self.network
        bound = net._ports.get(s.key, {}).get(port)
        if not bound:
            return n
        if ip == _BROADCAST:
            targets = [r for r in bound if r.peer_addr is None or r.peer_addr == src]
        else:
            best = None
            for r in reversed(bound):
                assert r.local is not None
                rip = r.local[0]
                if rip != ip and rip != wild:
                    continue
                if r.peer_addr is not None and r.peer_addr != src:
                    continue
                if rip == ip:
                    best = r
                    break
                if best is None:
                    best = r
            targets = [best] if best is not None else []
        for r in targets:
            if r.qlen < r.rcvbuf and not r.recv_shut and r.state != _CLOSED:
                r.dgrams.append((data, sender))
                r.qlen += n
                if r.rq:
                    net._serve_dgrams(r)
                net._wake()
        return n

    def recvfrom(self, s: MemorySocket, bufsize: int, flags: int) -> tuple[bytes, Any]:
        """``WSPRecvFrom``: one datagram and its sender (truncated to ``bufsize``).

        On a stream socket: ``(recv(...), None)``, like Python.
        """
        if s.stream:
            return self.recv(s, bufsize, flags), None
        net = self.network
        with net._guard:
            dgrams = s.dgrams
            if dgrams and not flags and net.is_up and type(bufsize) is int and bufsize >= 0:
                data, address = dgrams.popleft()
                s.qlen -= len(data)
                if len(data) > bufsize:
                    data = data[:bufsize]
                return data, address
        try:
            with net._guard:
                result: tuple[bytes, Any] = self._recv_dgram(s, bufsize, flags, _RECVFROM)
                return result
        finally:
            if net._done:
                net._drain()

    def recvfrom_into(
        self, s: MemorySocket, buffer: Any, nbytes: int, flags: int
    ) -> tuple[int, Any]:
        """``WSPRecvFrom`` into ``buffer``; the count and the sender."""
        view, size = _writable_view(buffer, nbytes)
        data, address = self.recvfrom(s, size, flags)
        n = len(data)
        view[:n] = data
        return n, address

    # -- options and modes ---------------------------------------------------------
    def getsockopt(self, s: MemorySocket, level: int, option: int, buflen: int | None) -> Any:
        """``WSPGetSockOpt``: an int (``buflen`` None or 0), or its 4 native bytes.

        SOL_SOCKET: SO_REUSEADDR, SO_RCVBUF, SO_SNDBUF, SO_TYPE, SO_ERROR
        (read and cleared), SO_KEEPALIVE, SO_BROADCAST; IPPROTO_TCP:
        TCP_NODELAY (streams).  Anything else: WSAEINVAL.
        """
        if buflen is None:
            buflen = 0
        elif type(buflen) is not int or buflen < 0:
            raise_wsa(_E.WSAEINVAL, f"buflen must be None or an int >= 0, got {buflen!r}")
        if 0 < buflen < _INT.size:
            raise_wsa(_E.WSAEFAULT, f"buflen must be at least {_INT.size}, got {buflen!r}")
        with self.network._guard:
            self._check(s)
            value: int
            if level == _SOL_SOCKET and option == _SO_REUSEADDR:
                value = int(s.reuse)
            elif level == _SOL_SOCKET and option == _SO_RCVBUF:
                value = s.rcvbuf
            elif level == _SOL_SOCKET and option == _SO_SNDBUF:
                value = s.sndbuf
            elif level == _SOL_SOCKET and option == _SO_TYPE:
                value = s.type
            elif level == _SOL_SOCKET and option == _SO_ERROR:
                value, s.error = s.error, 0
            elif level == _SOL_SOCKET and option == _SO_KEEPALIVE:
                value = int(s.keepalive)
            elif level == _SOL_SOCKET and option == _SO_BROADCAST:
                value = int(s.broadcast)
            elif level == _IPPROTO_TCP and option == _TCP_NODELAY and s.stream:
                value = int(s.nodelay)
            else:
                raise_wsa(
                    _E.WSAEINVAL,
                    f"unsupported socket option: level {level!r}, option {option!r}",
                )
        return _INT.pack(value) if buflen else value

    def setsockopt(self, s: MemorySocket, level: int, option: int, value: Any) -> None:
        """``WSPSetSockOpt``: ``value`` an int (or bool) or 4 native bytes.

        The options of :meth:`getsockopt` except the read-only SO_TYPE and
        SO_ERROR.  Buffer sizes must be >= 0 (0 counts as 1 byte).
        """
        if isinstance(value, int):
            number = int(value)
        else:
            try:
                raw = memoryview(value).cast("B")
            except TypeError:
                raw = None
            if raw is None or len(raw) != _INT.size:
                raise_wsa(
                    _E.WSAEFAULT, f"option value must be an int or {_INT.size} bytes, got {value!r}"
                )
            (number,) = _INT.unpack(raw)
        net = self.network
        try:
            with net._guard:
                self._check(s)
                if level == _SOL_SOCKET and option in (_SO_RCVBUF, _SO_SNDBUF):
                    if number < 0:
                        raise_wsa(_E.WSAEINVAL, f"buffer size must be >= 0, got {value!r}")
                    if option == _SO_RCVBUF:
                        s.rcvbuf = max(number, 1)
                        if s.state == _CONNECTED:
                            net._flow_in(s)  # more room: queued sends of the peer move in
                    else:
                        s.sndbuf = max(number, 1)
                elif level == _SOL_SOCKET and option == _SO_REUSEADDR:
                    s.reuse = bool(number)
                elif level == _SOL_SOCKET and option == _SO_KEEPALIVE:
                    s.keepalive = bool(number)
                elif level == _SOL_SOCKET and option == _SO_BROADCAST:
                    s.broadcast = bool(number)
                elif level == _IPPROTO_TCP and option == _TCP_NODELAY and s.stream:
                    s.nodelay = bool(number)
                else:
                    raise_wsa(
                        _E.WSAEINVAL,
                        f"unsupported or read-only socket option: level {level!r}, "
                        f"option {option!r}",
                    )
                net._wake()
        finally:
            if net._done:
                net._drain()

    def ioctl(self, s: MemorySocket, code: int, arg: Any) -> Any:
        """``WSPIoctl``: FIONBIO (as :meth:`settimeout` with 0.0 or None), FIONREAD
        (bytes queued) and SIOCATMARK (always true: no out-of-band data)."""
        with self.network._guard:
            self._check(s)
            return self._ioctl(s, code, arg)

    def _ioctl(self, s: MemorySocket, code: int, arg: Any) -> Any:
        """:meth:`ioctl` (lock held, ``s`` checked)."""
        if code == FIONBIO:
            s.timeout = 0.0 if arg else None
            return 0
        if code == FIONREAD:
            return s.rlen if s.stream else s.qlen
        if code == IoctlCode.SIOCATMARK:
            return True
        raise_wsa(_E.WSAEINVAL, f"unsupported ioctl code {code!r}")

    def settimeout(self, s: MemorySocket, timeout: float | None) -> None:
        """``None`` blocks, 0.0 is non-blocking, more waits that long at most."""
        if timeout is not None:
            if not isinstance(timeout, (int, float)) or math.isnan(timeout) or timeout < 0:
                raise_wsa(_E.WSAEINVAL, f"timeout must be None or a number >= 0, got {timeout!r}")
            timeout = float(timeout)
        with self.network._guard:
            self._check(s)
            s.timeout = timeout

    def duplicate_socket(self, s: MemorySocket) -> None:
        """``WSPDuplicateSocket``: the host shares the context; only checks ``s``."""
        with self.network._guard:
            self._check(s)

    # -- overlapped operations --------------------------------------------------------
    # Each starts under the lock and returns None; bad arguments raise (nothing
    # completes then); everything else completes, at once or later, through
    # MemoryNetwork._finish() and _drain() (see the module docstring).

    def send_overlapped(self, s: MemorySocket, data: Any, flags: int, ov: Any) -> None:
        """``WSPSend`` with an overlapped: ``nbytes`` is the count sent.

        A stream send waits behind the sends queued before it and completes
        with its full count once all its bytes are queued at the peer.  On a
        datagram socket: one datagram to the connected peer, at once.
        """
        if type(data) is not bytes:
            data = _as_bytes(data)
        if flags & ~_SEND_FLAGS:
            raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported send flags {flags!r}")
        net = self.network
        try:
            with net._guard:
                if type(s) is MemorySocket and not s.stream:
                    self._send_datagram(self._op(s, ov, _OTHER), data, s.peer_addr)
                    return
                op = self._op(s, ov, _SEND, len(data))
                error = _E.WSAENETDOWN if not net.is_up else _stream_error(s, True)
                if error:
                    net._finish(op, error)
                    return
                op.data = data
                s.sq.append(op)
                assert s.peer is not None
                net._move(s, s.peer)
        finally:
            if net._done:
                net._drain()

    def sendto_overlapped(
        self, s: MemorySocket, data: Any, flags: int, address: Any, ov: Any
    ) -> None:
        """``WSPSendTo`` with an overlapped: one datagram to ``address``, at once
        (WSAEMSGSIZE and malformed addresses raise).  On a stream socket the
        address is ignored and this is :meth:`send_overlapped`."""
        if type(s) is MemorySocket and s.stream:
            self.send_overlapped(s, data, flags, ov)
            return
        if type(data) is not bytes:
            data = _as_bytes(data)
        if flags & ~_SEND_FLAGS:
            raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported sendto flags {flags!r}")
        net = self.network
        try:
            with net._guard:
                op = self._op(s, ov, _OTHER)
                dest = _parse(s.family, address, _E.WSAEAFNOSUPPORT)
                self._send_datagram(op, data, dest)
        finally:
            if net._done:
                net._drain()

    def _send_datagram(self, op: _Op, data: bytes, dest: tuple[str, int] | None) -> None:
        """Send one datagram for ``op`` and finish it (lock held)."""
        s = op.s
        n = len(data)
        if n > s.max_datagram:
            raise_wsa(
                _E.WSAEMSGSIZE,
                f"datagram of {n} bytes exceeds the limit of {s.max_datagram} bytes",
            )
        net = self.network
        if not net.is_up:
            net._finish(op, _E.WSAENETDOWN)
        elif dest is None:
            net._finish(op, _E.WSAENOTCONN)
        else:
            try:
                op.count = self._deliver(s, data, dest)
            except WSAError as exc:
                net._finish(op, exc.wsa_code)
            else:
                net._finish(op)

    def recv_overlapped(self, s: MemorySocket, bufsize: int, flags: int, ov: Any) -> None:
        """``WSPRecv`` with an overlapped: ``ov.data`` holds the bytes received.

        Waits behind the receives queued before it.  Flags as :meth:`recv`;
        end of file completes it with ``b""`` and 0 bytes.
        """
        self._post_recv(s, bufsize, flags, ov, _RECV)

    def recvfrom_overlapped(self, s: MemorySocket, bufsize: int, flags: int, ov: Any) -> None:
        """``WSPRecvFrom`` with an overlapped: ``ov.data`` and ``ov.address`` (the
        sender; None on a stream socket)."""
        self._post_recv(s, bufsize, flags, ov, _RECVFROM)

    def _post_recv(self, s: MemorySocket, bufsize: int, flags: int, ov: Any, kind: int) -> None:
        self._check_bufsize(bufsize)
        net = self.network
        try:
            with net._guard:
                op = self._op(s, ov, kind, bufsize, flags)
                if s.stream:
                    if flags & ~_STREAM_RECV_FLAGS:
                        raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported recv flags {flags!r}")
                    error = _E.WSAENETDOWN if not net.is_up else _stream_error(s, False)
                else:
                    if flags & ~_DGRAM_RECV_FLAGS:
                        raise_wsa(
                            _E.WSAEOPNOTSUPP,
                            f"unsupported recv flags {flags!r} on a datagram socket",
                        )
                    error = (
                        _E.WSAENETDOWN
                        if not net.is_up
                        else _E.WSAESHUTDOWN
                        if s.recv_shut
                        else _E.WSAEINVAL
                        if s.local is None
                        else 0
                    )
                if error:
                    _received(op, b"")
                    net._finish(op, error)
                    return
                s.rq.append(op)
                if s.stream:
                    net._flow_in(s)
                else:
                    net._serve_dgrams(s)
        finally:
            if net._done:
                net._drain()

    def connect_overlapped(self, s: MemorySocket, address: Any, ov: Any) -> None:
        """``ConnectEx``: :meth:`connect`, completing at once (``nbytes`` 0), with
        its error if it fails (WSAECONNREFUSED...); a malformed address raises."""
        net = self.network
        try:
            with net._guard:
                op = self._op(s, ov, _OTHER)
                ip, port = _parse(s.family, address, _E.WSAEAFNOSUPPORT)
                try:
                    self._check(s)
                    self._connect(s, ip, port, address)
                except WSAError as exc:
                    net._finish(op, exc.wsa_code)
                else:
                    net._finish(op)
        finally:
            if net._done:
                net._drain()

    def accept_overlapped(self, s: MemorySocket, ov: Any) -> None:
        """``AcceptEx``: waits behind the accepts queued before it for the next
        connection; ``ov.data`` is the new socket's context (with its own
        handle, as :meth:`accept` makes it), ``ov.address`` the peer's address."""
        net = self.network
        try:
            with net._guard:
                op = self._op(s, ov, _ACCEPT)
                if not s.stream:
                    raise_wsa(_E.WSAEOPNOTSUPP, "accept on a datagram socket")
                if not net.is_up:
                    net._finish(op, _E.WSAENETDOWN)
                elif s.state != _LISTENING:
                    net._finish(op, _E.WSAEINVAL)
                else:
                    s.rq.append(op)
                    net._serve_accepts(s)
        finally:
            if net._done:
                net._drain()

    def ioctl_overlapped(self, s: MemorySocket, code: int, arg: Any, ov: Any) -> None:
        """``WSPIoctl`` with an overlapped: :meth:`ioctl`, completing at once with
        ``ov.data`` the result (``nbytes`` 0); an unsupported code raises."""
        if code not in (FIONBIO, FIONREAD, IoctlCode.SIOCATMARK):
            raise_wsa(_E.WSAEINVAL, f"unsupported ioctl code {code!r}")
        net = self.network
        try:
            with net._guard:
                op = self._op(s, ov, _OTHER)
                try:
                    self._check(s)
                    op.result = self._ioctl(s, code, arg)
                except WSAError as exc:
                    net._finish(op, exc.wsa_code)
                else:
                    net._finish(op)
        finally:
            if net._done:
                net._drain()

    # -- select -----------------------------------------------------------------------
    def select(
        self,
        readers: Sequence[MemorySocket],
        writers: Sequence[MemorySocket],
        errors: Sequence[MemorySocket],
        timeout: float | None,
    ) -> tuple[list[MemorySocket], list[MemorySocket], list[MemorySocket]]:
        """``WSPSelect``: the readable, writable and failed sockets.

        Readable: data, end of file, a reset, SD_RECEIVE done, or (listener) a
        pending connection.  Writable: a connected stream with room at the
        peer (or whose send would fail at once), any datagram socket.  The
        error set stays empty (connects here never fail asynchronously).
        ``timeout`` None blocks, 0 polls.
        """
        if timeout is not None and (
            not isinstance(timeout, (int, float)) or math.isnan(timeout) or timeout < 0
        ):
            raise_wsa(_E.WSAEINVAL, f"timeout must be None or a number >= 0, got {timeout!r}")
        if not readers and not writers and not errors:
            raise_wsa(_E.WSAEINVAL, "select with three empty socket sets")
        net = self.network
        with net._guard:
            for group in (readers, writers, errors):
                for s in group:
                    self._check(s)
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                readable = [s for s in readers if _readable(s)]
                writable = [s for s in writers if _writable(s)]
                if readable or writable or timeout == 0:
                    return readable, writable, []
                if deadline is None:
                    remaining = None
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0.0:
                        return [], [], []
                net._sleep(remaining)
                if not net.is_up:
                    raise_wsa(_E.WSAENETDOWN, "select failed: the memory network is down")
                for group in (readers, writers, errors):
                    for s in group:
                        if s.state == _CLOSED:
                            raise_wsa(
                                _E.WSAEINTR, f"select interrupted: socket {s.handle} was closed"
                            )


def _readable(s: MemorySocket) -> bool:
    if not s.stream:
        return bool(s.dgrams) or s.recv_shut
    state = s.state
    if state == _CONNECTED:
        return bool(s.rlen) or s.eof or s.recv_shut
    if state == _LISTENING:
        return bool(s.pending)
    return state == _RESET


def _writable(s: MemorySocket) -> bool:
    if not s.stream:
        return True
    state = s.state
    if state == _CONNECTED:
        peer = s.peer
        if s.send_shut or peer is None or peer.state != _CONNECTED or peer.recv_shut:
            return True
        return peer.rlen < peer.rcvbuf
    return state == _RESET
