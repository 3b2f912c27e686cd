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
* **Threads.**  One lock and one condition per network guard all state.
  Blocking calls wait on the condition and wake on any change, on close
  (WSAEINTR, as Winsock's closesocket cancels blocking calls), on
  :meth:`MemoryNetwork.down` (WSAENETDOWN) and at their timeout
  (WSAETIMEDOUT; WSAEWOULDBLOCK when non-blocking).  The provider starts no
  thread.
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
import socket as _socket
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar, Final

from ._constants import (
    AF_INET,
    AF_INET6,
    FIONBIO,
    FIONREAD,
    IPPROTO_TCP,
    IPPROTO_UDP,
    PFL,
    SD_BOTH,
    SD_RECEIVE,
    SD_SEND,
    SOCK_DGRAM,
    SOCK_STREAM,
    XP1,
    IoctlCode,
)
from ._errors import WSAError, WSAErrorCode, raise_wsa, wsa_error
from ._protocol import ProtocolInfo
from ._spi import ServiceProvider, format_address, resolve_triplet

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

_MSG_PEEK: Final = _socket.MSG_PEEK
_MSG_WAITALL: Final = _socket.MSG_WAITALL
_MSG_DONTROUTE: Final = _socket.MSG_DONTROUTE
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

#: Largest UDP payloads: 65535 minus the IP (v4 only) and UDP headers.
MAX_DATAGRAM_V4: Final = 65507
MAX_DATAGRAM_V6: Final = 65527

_TCP_FLAGS: Final = (
    XP1.GUARANTEED_DELIVERY | XP1.GUARANTEED_ORDER | XP1.GRACEFUL_CLOSE | XP1.EXPEDITED_DATA
)
_UDP_FLAGS: Final = (
    XP1.CONNECTIONLESS | XP1.MESSAGE_ORIENTED | XP1.SUPPORT_BROADCAST | XP1.SUPPORT_MULTIPOINT
)


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
        "send_shut",
        "sndbuf",
        "state",
        "stream",
        "timeout",
        "type",
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

    def __repr__(self) -> str:
        kind = "stream" if self.stream else "datagram"
        family = _FAMILY_NAMES.get(self.family, str(self.family))
        local = format_address(self.local) if self.local else "unbound"
        text = f"<MemorySocket {family} {kind} handle={self.handle} {_STATE_NAMES[self.state]}"
        text += f" {local}"
        if self.peer_addr is not None:
            text += f" -> {format_address(self.peer_addr)}"
        return text + ">"


class MemoryNetwork:
    """One virtual network: its ports, its sockets, its lock, up or down.

    :meth:`down` makes every operation on it fail with WSAENETDOWN (blocked
    calls wake and fail) until :meth:`up`.
    """

    __slots__ = ("_cond", "_lock", "_next_port", "_ports", "_sockets", "_waiting", "is_up")

    #: The ephemeral port range (IANA's, Windows' default).
    EPHEMERAL_FIRST: ClassVar[int] = 49152
    EPHEMERAL_LAST: ClassVar[int] = 65535

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        #: Whether the network is up (change it with down() and up()).
        self.is_up = True
        self._waiting = 0
        self._next_port = self.EPHEMERAL_FIRST
        self._ports: dict[tuple[int, int], dict[int, list[MemorySocket]]] = {}
        self._sockets: dict[MemorySocket, None] = {}

    def down(self) -> None:
        """Take the network down: every call fails with WSAENETDOWN until :meth:`up`."""
        with self._lock:
            self.is_up = False
            self._cond.notify_all()

    def up(self) -> None:
        """Bring the network back up; sockets and connections are as they were."""
        with self._lock:
            self.is_up = True
            self._cond.notify_all()

    def sockets(self) -> list[MemorySocket]:
        """The sockets open on the network (accepted ones included), oldest first."""
        with self._lock:
            return list(self._sockets)

    def __repr__(self) -> str:
        state = "up" if self.is_up else "down"
        return f"<MemoryNetwork {state}, {len(self._sockets)} sockets>"

    # -- lock held -------------------------------------------------------------
    def _wake(self) -> None:
        if self._waiting:
            self._cond.notify_all()

    def _reset_state(self) -> None:
        self._next_port = self.EPHEMERAL_FIRST
        self._ports.clear()
        self._sockets.clear()
        self.is_up = True

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
    """Mark ``s``'s connection as reset: queued data is lost."""
    if s.state == _CONNECTED:
        s.state = _RESET
        s.error = int(_E.WSAECONNRESET)
        s.peer = None
        _clear_stream(s)


class MemoryProvider(ServiceProvider):
    """The ``memory`` base provider: TCP- and UDP-like sockets on an in-process network.

    Each instance has its own :attr:`network` (a :class:`MemoryNetwork`).
    Semantics are Winsock's where Winsock documents them; see the module
    docstring for the model.
    """

    name = "memory"
    description = "in-process virtual network (TCP/UDP semantics, no OS sockets)"
    protocols: ClassVar[Sequence[ProtocolInfo]] = (
        ProtocolInfo(
            name="memory [TCP/IP]",
            address_family=AF_INET,
            socket_type=SOCK_STREAM,
            protocol=IPPROTO_TCP,
            service_flags=_TCP_FLAGS,
            provider_flags=PFL.MATCHES_PROTOCOL_ZERO,
            max_sockaddr=16,
            min_sockaddr=16,
        ),
        ProtocolInfo(
            name="memory [UDP/IP]",
            address_family=AF_INET,
            socket_type=SOCK_DGRAM,
            protocol=IPPROTO_UDP,
            service_flags=_UDP_FLAGS,
            provider_flags=PFL.MATCHES_PROTOCOL_ZERO,
            max_sockaddr=16,
            min_sockaddr=16,
            message_size=MAX_DATAGRAM_V4,
        ),
        ProtocolInfo(
            name="memory [TCP/IPv6]",
            address_family=AF_INET6,
            socket_type=SOCK_STREAM,
            protocol=IPPROTO_TCP,
            service_flags=_TCP_FLAGS,
            provider_flags=PFL.MATCHES_PROTOCOL_ZERO,
            max_sockaddr=28,
            min_sockaddr=28,
        ),
        ProtocolInfo(
            name="memory [UDP/IPv6]",
            address_family=AF_INET6,
            socket_type=SOCK_DGRAM,
            protocol=IPPROTO_UDP,
            service_flags=_UDP_FLAGS,
            provider_flags=PFL.MATCHES_PROTOCOL_ZERO,
            max_sockaddr=28,
            min_sockaddr=28,
            message_size=MAX_DATAGRAM_V6,
        ),
    )

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
        """Close every socket still open (freeing its handle) and reset the network.

        Afterwards the provider can be started again like a new one: ports
        count from 49152 again and the network is up.
        """
        net = self.network
        for s in net.sockets():
            try:
                self.close_socket(s)
            except WSAError:
                # Closed meanwhile by another thread, or the host already
                # dropped the handle: the state is freed either way.
                pass
        with net._lock:
            net._reset_state()
        super().cleanup()

    # -- helpers (lock held) ----------------------------------------------------
    def _check(self, s: Any) -> None:
        """Raise unless ``s`` is an open socket of this network and the network is up."""
        if type(s) is not MemorySocket or s.network is not self.network:
            raise_wsa(_E.WSAENOTSOCK, f"{s!r} is not a socket of this memory provider")
        if s.state == _CLOSED:
            raise_wsa(_E.WSAENOTSOCK, f"socket {s.handle} is closed")
        if not self.network.is_up:
            raise_wsa(_E.WSAENETDOWN, "the memory network is down")

    def _block(self, s: MemorySocket, timeout: float | None, deadline: float, what: str) -> float:
        """Wait once for a change; return the deadline (0.0 until one is set).

        Raises WSAEWOULDBLOCK (non-blocking), WSAETIMEDOUT (deadline passed),
        WSAEINTR (closed meanwhile) or WSAENETDOWN (network went down).
        """
        net = self.network
        if timeout is None:
            net._waiting += 1
            try:
                net._cond.wait()
            finally:
                net._waiting -= 1
        else:
            if timeout == 0.0:
                raise_wsa(_E.WSAEWOULDBLOCK, f"{what} would block on a non-blocking socket")
            now = time.monotonic()
            if not deadline:
                deadline = now + timeout
            remaining = deadline - now
            if remaining <= 0.0:
                raise_wsa(_E.WSAETIMEDOUT, f"{what} timed out after {timeout!r} s")
            net._waiting += 1
            try:
                net._cond.wait(remaining)
            finally:
                net._waiting -= 1
        if s.state == _CLOSED:
            raise_wsa(_E.WSAEINTR, f"{what} interrupted: socket {s.handle} was closed")
        if not net.is_up:
            raise_wsa(_E.WSAENETDOWN, f"{what} failed: the memory network is down")
        return deadline

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
        with net._lock:
            net._sockets[s] = None
        return s

    def close_socket(self, s: MemorySocket) -> None:
        """``WSPCloseSocket``: release the handle, then tear the socket down.

        A connection closed with unread data is reset (the peer gets
        WSAECONNRESET); otherwise the peer gets end of file.  Pending
        connections of a listener are reset.  Blocked calls on ``s`` fail with
        WSAEINTR.  Works while the network is down.
        """
        net = self.network
        with net._lock:
            if type(s) is not MemorySocket or s.network is not net:
                raise_wsa(_E.WSAENOTSOCK, f"{s!r} is not a socket of this memory provider")
            if s.state == _CLOSED:
                raise_wsa(_E.WSAENOTSOCK, f"socket {s.handle} is already closed")
            old = s.state
            s.state = _CLOSED
        try:
            self.upcalls.close_socket_handle(s.handle)
        finally:
            with net._lock:
                self._teardown(s, old)
                net._cond.notify_all()

    def _teardown(self, s: MemorySocket, old: int) -> None:
        net = self.network
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
        s.peer = None
        _clear_stream(s)
        s.dgrams.clear()
        s.qlen = 0

    # -- addresses and connections ----------------------------------------------
    def bind(self, s: MemorySocket, address: Any) -> None:
        """``WSPBind``: take a local address; port 0 picks an ephemeral port.

        WSAEADDRINUSE when taken, WSAEINVAL when already bound.
        """
        ip, port = _parse(s.family, address, _E.WSAEFAULT)
        net = self.network
        with net._lock:
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
        with net._lock:
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
        with net._lock:
            self._check(s)
            if not s.stream:
                raise_wsa(_E.WSAEOPNOTSUPP, "accept on a datagram socket")
            if s.state != _LISTENING:
                raise_wsa(_E.WSAEINVAL, "accept on a socket that is not listening")
            timeout = s.timeout
            deadline = 0.0
            while not s.pending:
                deadline = self._block(s, timeout, deadline, "accept")
            conn = s.pending.popleft()
        try:
            conn.handle = self.upcalls.create_socket_handle(s.protocol_info.catalog_entry_id, conn)
        except BaseException:
            with net._lock:
                if conn.peer is not None:
                    _reset(conn.peer)
                old, conn.state = conn.state, _CLOSED
                self._teardown(conn, old)
                net._cond.notify_all()
            raise
        with net._lock:
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
        wild = _ANY[s.family]
        net = self.network
        with net._lock:
            self._check(s)
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
            net._wake()

    def shutdown(self, s: MemorySocket, how: int) -> None:
        """``WSPShutdown``: SD_RECEIVE (0), SD_SEND (1) or SD_BOTH (2).

        After SD_SEND the peer reads end of file once its queue is drained and
        send fails with WSAESHUTDOWN; after SD_RECEIVE recv fails with
        WSAESHUTDOWN, and data queued or arriving later resets a connection.
        """
        if how not in (SD_RECEIVE, SD_SEND, SD_BOTH):
            raise_wsa(_E.WSAEINVAL, f"how must be SD_RECEIVE, SD_SEND or SD_BOTH, got {how!r}")
        net = self.network
        with net._lock:
            self._check(s)
            if s.stream:
                if s.state == _RESET:
                    raise_wsa(_E.WSAECONNRESET, "shutdown on a connection that was reset")
                if s.state != _CONNECTED:
                    raise_wsa(_E.WSAENOTCONN, "shutdown on a socket that is not connected")
            if how != SD_RECEIVE and not s.send_shut:
                s.send_shut = True
                peer = s.peer
                if peer is not None and peer.state == _CONNECTED:
                    peer.eof = True
            if how != SD_SEND and not s.recv_shut:
                s.recv_shut = True
                if s.stream and s.rlen:
                    peer = s.peer
                    if peer is not None:
                        _reset(peer)
                    _reset(s)
                s.dgrams.clear()
                s.qlen = 0
            net._wake()

    def getsockname(self, s: MemorySocket) -> Any:
        """``WSPGetSockName``: the local address; WSAEINVAL when not bound."""
        with self.network._lock:
            self._check(s)
            if s.local is None:
                raise_wsa(_E.WSAEINVAL, "getsockname on a socket that is not bound")
            return _public(s.family, s.local)

    def getpeername(self, s: MemorySocket) -> Any:
        """``WSPGetPeerName``: the peer's address; WSAENOTCONN when not connected."""
        with self.network._lock:
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
        with net._lock:
            peer = s.peer
            if (
                peer is not None
                and not flags
                and s.state == _CONNECTED
                and not s.send_shut
                and net.is_up
                and peer.state == _CONNECTED
                and not peer.recv_shut
            ):
                n = len(data)
                if peer.rcvbuf - peer.rlen >= n:
                    if n:
                        peer.chunks.append(data)
                        peer.rlen += n
                        if net._waiting:
                            net._cond.notify_all()
                    return n
            return self._send_locked(s, data, flags)

    def _send_buffer(self, s: MemorySocket, data: Any, flags: int) -> int:
        """:meth:`send` of a bytes-like object: copy only what is queued."""
        with _byte_view(data) as view, self.network._lock:
            return self._send_locked(s, view, flags)

    def _send_locked(self, s: MemorySocket, data: bytes | memoryview, flags: int) -> int:
        if flags & ~_SEND_FLAGS:
            raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported send flags {flags!r}")
        self._check(s)
        if not s.stream:
            if s.peer_addr is None:
                raise_wsa(_E.WSAENOTCONN, "send on a datagram socket that is not connected")
            return self._deliver(s, bytes(data), s.peer_addr)
        return self._send_stream(s, data)

    def _send_stream(self, s: MemorySocket, data: bytes | memoryview) -> int:
        net = self.network
        total = len(data)
        sent = 0
        timeout = s.timeout
        deadline = 0.0
        while True:
            if s.state != _CONNECTED:
                if sent:
                    return sent
                if s.state == _RESET:
                    raise_wsa(_E.WSAECONNRESET, "send on a connection that was reset")
                raise_wsa(_E.WSAENOTCONN, "send on a socket that is not connected")
            if s.send_shut:
                if sent:
                    return sent
                raise_wsa(_E.WSAESHUTDOWN, "send after shutdown(SD_SEND)")
            peer = s.peer
            assert peer is not None
            if peer.state != _CONNECTED or peer.recv_shut:
                # The other end cannot receive any more: its stack answers the
                # data with a reset.
                _reset(peer)
                _reset(s)
                net._wake()
                return total
            room = peer.rcvbuf - peer.rlen
            if room > 0:
                n = min(room, total - sent)
                chunk = data if n == total else data[sent : sent + n]
                peer.chunks.append(chunk if type(chunk) is bytes else bytes(chunk))
                peer.rlen += n
                sent += n
                net._wake()
                if sent == total or timeout == 0.0:
                    return sent
                continue
            try:
                deadline = self._block(s, timeout, deadline, "send")
            except WSAError:
                if sent:
                    return sent
                raise

    def recv(self, s: MemorySocket, bufsize: int, flags: int) -> bytes:
        """``WSPRecv``: up to ``bufsize`` bytes; ``b""`` at end of file.

        Flags: MSG_PEEK, MSG_WAITALL (streams).  On a datagram socket: one
        datagram, truncated to ``bufsize``.
        """
        net = self.network
        with net._lock:
            if s.rlen and not flags and net.is_up and type(bufsize) is int and bufsize > 0:
                data = _take(s, bufsize)
                if net._waiting:
                    net._cond.notify_all()
                return data
            if not s.stream:
                return self._recv_dgram(s, bufsize, flags)[0]
            return self._recv_stream(s, bufsize, flags)

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
        peek = flags & _MSG_PEEK
        waitall = flags & _MSG_WAITALL and not peek
        parts: list[bytes] = []
        need = bufsize
        timeout = s.timeout
        deadline = 0.0
        net = self.network
        while True:
            if s.state != _CONNECTED:
                if parts:
                    return b"".join(parts)
                if s.state == _RESET:
                    raise_wsa(_E.WSAECONNRESET, "recv on a connection that was reset")
                raise_wsa(_E.WSAENOTCONN, "recv on a socket that is not connected")
            if s.recv_shut:
                raise_wsa(_E.WSAESHUTDOWN, "recv after shutdown(SD_RECEIVE)")
            if bufsize == 0:
                return b""
            if s.rlen:
                if peek:
                    return _peek(s, bufsize)
                data = _take(s, need)
                net._wake()
                if not waitall:
                    return data
                parts.append(data)
                need -= len(data)
                if not need:
                    return b"".join(parts)
                continue
            if s.eof:
                return b"".join(parts)
            try:
                deadline = self._block(s, timeout, deadline, "recv")
            except WSAError:
                if parts:
                    return b"".join(parts)
                raise

    def _recv_dgram(self, s: MemorySocket, bufsize: int, flags: int) -> tuple[bytes, Any]:
        self._check_bufsize(bufsize)
        self._check(s)
        if flags & ~_DGRAM_RECV_FLAGS:
            raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported recv flags {flags!r} on a datagram socket")
        if s.recv_shut:
            raise_wsa(_E.WSAESHUTDOWN, "recv after shutdown(SD_RECEIVE)")
        if s.local is None:
            raise_wsa(_E.WSAEINVAL, "recv on a datagram socket that is not bound")
        timeout = s.timeout
        deadline = 0.0
        while not s.dgrams:
            deadline = self._block(s, timeout, deadline, "recv")
            if s.recv_shut:
                raise_wsa(_E.WSAESHUTDOWN, "recv after shutdown(SD_RECEIVE)")
        if flags & _MSG_PEEK:
            data, address = s.dgrams[0]
        else:
            data, address = s.dgrams.popleft()
            s.qlen -= len(data)
        if len(data) > bufsize:
            data = data[:bufsize]
        return data, address

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
        with self.network._lock:
            self._check(s)
            return self._deliver(s, data, dest)

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
                net._wake()
        return n

    def recvfrom(self, s: MemorySocket, bufsize: int, flags: int) -> tuple[bytes, Any]:
        """``WSPRecvFrom``: one datagram and its sender (truncated to ``bufsize``).

        On a stream socket: ``(recv(...), None)``, like Python.
        """
        if s.stream:
            return self.recv(s, bufsize, flags), None
        net = self.network
        with net._lock:
            dgrams = s.dgrams
            if dgrams and not flags and net.is_up and type(bufsize) is int and bufsize >= 0:
                data, address = dgrams.popleft()
                s.qlen -= len(data)
                if len(data) > bufsize:
                    data = data[:bufsize]
                return data, address
            return self._recv_dgram(s, bufsize, flags)

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
        with self.network._lock:
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
        with self.network._lock:
            self._check(s)
            if level == _SOL_SOCKET and option in (_SO_RCVBUF, _SO_SNDBUF):
                if number < 0:
                    raise_wsa(_E.WSAEINVAL, f"buffer size must be >= 0, got {value!r}")
                if option == _SO_RCVBUF:
                    s.rcvbuf = max(number, 1)
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
                    f"unsupported or read-only socket option: level {level!r}, option {option!r}",
                )
            self.network._wake()

    def ioctl(self, s: MemorySocket, code: int, arg: Any) -> Any:
        """``WSPIoctl``: FIONBIO (via :meth:`settimeout`), FIONREAD (bytes queued)
        and SIOCATMARK (always true: no out-of-band data)."""
        if code == FIONBIO:
            self.settimeout(s, 0.0 if arg else None)
            return 0
        with self.network._lock:
            self._check(s)
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
        with self.network._lock:
            self._check(s)
            s.timeout = timeout

    def duplicate_socket(self, s: MemorySocket) -> None:
        """``WSPDuplicateSocket``: the host shares the context; only checks ``s``."""
        with self.network._lock:
            self._check(s)

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
        with net._lock:
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
                net._waiting += 1
                try:
                    net._cond.wait(remaining)
                finally:
                    net._waiting -= 1
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
