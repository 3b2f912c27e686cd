"""The ``memory`` provider's sockets and operations (see ``wspframe._memory``).

:class:`MemorySocket` holds a socket's state, :class:`Op` one operation
waiting in its queues; the functions read and change one socket's stream
queue and state (lock held).
"""

from __future__ import annotations

import socket as _socket
from collections import deque
from typing import TYPE_CHECKING, Any, Final

from ._constants import AF_INET, SOCK_STREAM
from ._errors import WSAErrorCode
from ._memaddr import FAMILY_NAMES
from ._protocol import MAX_DATAGRAM_V4, MAX_DATAGRAM_V6, ProtocolInfo
from ._spi import format_address

if TYPE_CHECKING:
    from ._memnet import MemoryNetwork
    from ._memwait import Parker

__all__ = ["MemorySocket", "Op"]

_E = WSAErrorCode

# Socket states.
NEW: Final = 0  # created, perhaps bound (datagram sockets stay here)
LISTENING: Final = 1
CONNECTED: Final = 2
RESET: Final = 3  # the connection was reset; recv/send fail with WSAECONNRESET
CLOSED: Final = 4
STATE_NAMES: Final = ("new", "listening", "connected", "reset", "closed")

# Plain ints: the socket module's are IntFlag members, slow to combine.
MSG_PEEK: Final = int(_socket.MSG_PEEK)
MSG_WAITALL: Final = int(_socket.MSG_WAITALL)
MSG_DONTROUTE: Final = int(_socket.MSG_DONTROUTE)
STREAM_RECV_FLAGS: Final = MSG_PEEK | MSG_WAITALL
DGRAM_RECV_FLAGS: Final = MSG_PEEK
SEND_FLAGS: Final = MSG_DONTROUTE

# Kinds of Op, and what ``result`` holds for each.
RECV: Final = 0  # the bytes received
RECVFROM: Final = 1  # the bytes received (``address``: the sender)
SEND: Final = 2  # nothing (``data``: the payload; ``count``: bytes queued so far)
ACCEPT: Final = 3  # the connection (``address``: the peer's)
OTHER: Final = 4  # done at once (connect, ioctl, datagram sends): ``ov.data``


class Op:
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
        self.waker: Parker | None = None


def received(op: Op, data: bytes) -> None:
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
        self.state = NEW
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
        self.rq: deque[Op] = deque()
        #: Stream sends waiting for room at the peer, oldest first.  Never
        #: waiting while the peer has room: it is filled from them.
        self.sq: deque[Op] = deque()
        #: Completions of this socket finished but not yet delivered.
        self.undelivered = 0
        #: What a blocked call on the socket sleeps on, while none does.
        self.parker: Parker | None = None

    def __repr__(self) -> str:
        kind = "stream" if self.stream else "datagram"
        family = FAMILY_NAMES.get(self.family, str(self.family))
        local = format_address(self.local) if self.local else "unbound"
        text = f"<MemorySocket {family} {kind} handle={self.handle} {STATE_NAMES[self.state]}"
        text += f" {local}"
        if self.peer_addr is not None:
            text += f" -> {format_address(self.peer_addr)}"
        return text + ">"


# -- stream queues (lock held) ------------------------------------------------------


def take(s: MemorySocket, n: int) -> bytes:
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


def peek(s: MemorySocket, n: int) -> bytes:
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


def clear_stream(s: MemorySocket) -> None:
    s.chunks.clear()
    s.offset = 0
    s.rlen = 0


def stream_error(s: MemorySocket, sending: bool) -> int:
    """Why a stream send (``sending``) or receive cannot start on ``s`` (0: it can)."""
    if s.state != CONNECTED:
        return _E.WSAECONNRESET if s.state == RESET else _E.WSAENOTCONN
    if s.send_shut if sending else s.recv_shut:
        return _E.WSAESHUTDOWN
    return 0


def failure(error: int, what: str, s: MemorySocket) -> str:
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


def outcome(op: Op) -> Any:
    """What the blocked call of ``op`` returns."""
    kind = op.kind
    if kind == SEND:
        return op.count
    if kind == ACCEPT:
        return op.result
    if op.result is None:  # gave up: what MSG_WAITALL collected
        received(op, b"")
    return op.result if kind == RECV else (op.result, op.address)


def is_readable(s: MemorySocket) -> bool:
    if not s.stream:
        return bool(s.dgrams) or s.recv_shut
    state = s.state
    if state == CONNECTED:
        return bool(s.rlen) or s.eof or s.recv_shut
    if state == LISTENING:
        return bool(s.pending)
    return state == RESET


def is_writable(s: MemorySocket) -> bool:
    if not s.stream:
        return True
    state = s.state
    if state == CONNECTED:
        peer = s.peer
        if s.send_shut or peer is None or peer.state != CONNECTED or peer.recv_shut:
            return True
        return peer.rlen < peer.rcvbuf
    return state == RESET
