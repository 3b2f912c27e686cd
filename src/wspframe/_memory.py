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

This module is the provider (the SPI methods).  The network (ports, the
serving of queues, wake-ups, completion delivery) is in ``_memnet``, the
sockets, operations and stream queues in ``_memsock``, the parkers blocked
calls sleep on in ``_memwait``, addresses and buffers in ``_memaddr``.
"""

from __future__ import annotations

import math
import socket as _socket
import struct
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from ._constants import (
    AF_INET,
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
from ._errors import WSAError, WSAErrorCode, raise_wsa
from ._memaddr import (
    ANY,
    BROADCAST,
    LOOPBACK,
    as_bytes,
    byte_view,
    parse_address,
    public_address,
    writable_view,
)
from ._memnet import MemoryNetwork, reset, teardown
from ._memsock import (
    ACCEPT,
    CLOSED,
    CONNECTED,
    DGRAM_RECV_FLAGS,
    LISTENING,
    MSG_PEEK,
    MSG_WAITALL,
    NEW,
    OTHER,
    RECV,
    RECVFROM,
    RESET,
    SEND,
    SEND_FLAGS,
    STREAM_RECV_FLAGS,
    MemorySocket,
    Op,
    failure,
    is_readable,
    is_writable,
    outcome,
    peek,
    received,
    stream_error,
    take,
)
from ._protocol import MAX_DATAGRAM_V4, MAX_DATAGRAM_V6, ProtocolInfo, ip_entries
from ._spi import ServiceProvider, format_address, resolve_triplet

if TYPE_CHECKING:
    from ._handles import Upcalls

__all__ = ["MemoryNetwork", "MemoryProvider", "MemorySocket"]

_E = WSAErrorCode

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
        if s.state == CLOSED:
            raise_wsa(_E.WSAENOTSOCK, f"socket {s.handle} is closed")
        if not self.network.is_up:
            raise_wsa(_E.WSAENETDOWN, "the memory network is down")

    def _block(self, s: MemorySocket, op: Op, timeout: float, deadline: float, what: str) -> float:
        """Park once, within the socket's ``timeout``, for ``op`` (a blocked
        call); return the deadline (0.0 until one is set).

        Raises WSAEWOULDBLOCK (non-blocking), WSAETIMEDOUT (deadline passed),
        WSAEINTR (closed meanwhile) or WSAENETDOWN (network went down).
        """
        if timeout == 0.0:
            raise_wsa(_E.WSAEWOULDBLOCK, f"{what} would block on a non-blocking socket")
        now = time.monotonic()
        if not deadline:
            deadline = now + timeout
        remaining = deadline - now
        if remaining <= 0.0:
            raise_wsa(_E.WSAETIMEDOUT, f"{what} timed out after {timeout!r} s")
        net = self.network
        net._park(op, remaining)
        if op.done:
            return deadline
        if s.state == CLOSED:
            raise_wsa(_E.WSAEINTR, f"{what} interrupted: socket {s.handle} was closed")
        if not net.is_up:
            raise_wsa(_E.WSAENETDOWN, f"{what} failed: the memory network is down")
        return deadline

    def _await(self, s: MemorySocket, op: Op, what: str) -> Any:
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
                    return outcome(op)
                raise
        except BaseException:
            if not op.done:
                self.network._withdraw(op)
            raise
        if op.error and not op.count:
            raise_wsa(op.error, failure(op.error, what, s))
        return outcome(op)

    def _op(self, s: Any, ov: Any, kind: int, size: int = 0, flags: int = 0) -> Op:
        """A new overlapped operation on ``s`` (lock held); WSAENOTSOCK unless
        ``s`` is an open socket of this network (nothing completes then)."""
        if type(s) is not MemorySocket or s.network is not self.network:
            raise_wsa(_E.WSAENOTSOCK, f"{s!r} is not a socket of this memory provider")
        if s.state == CLOSED:
            raise_wsa(_E.WSAENOTSOCK, f"socket {s.handle} is closed")
        return Op(s, ov, kind, size, flags)

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
        if fam not in ANY or (typ, proto) not in (
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
            if s.state == CLOSED:
                raise_wsa(_E.WSAENOTSOCK, f"socket {s.handle} is already closed")
            old = s.state
            s.state = CLOSED
            net._abort(s, _E.WSA_OPERATION_ABORTED, _E.WSAEINTR)
            net._wake()
        try:
            if s.undelivered:
                net._settle(s)
            self.upcalls.close_socket_handle(s.handle)
        finally:
            with net._guard:
                teardown(s, old)
                net._cond.notify_all()
            if net._done:
                net._drain()

    # -- addresses and connections ----------------------------------------------
    def bind(self, s: MemorySocket, address: Any) -> None:
        """``WSPBind``: take a local address; port 0 picks an ephemeral port.

        WSAEADDRINUSE when taken, WSAEINVAL when already bound.
        """
        ip, port = parse_address(s.family, address, _E.WSAEFAULT)
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
            if s.state == LISTENING:
                s.backlog = backlog
                return
            if s.state != NEW:
                raise_wsa(_E.WSAEINVAL, "listen on a connected socket")
            if s.local is None:
                raise_wsa(_E.WSAEINVAL, "listen on a socket that is not bound")
            ip, port = s.local
            wild = ANY[s.family]
            for other in net._ports[s.key][port]:
                if other is not s and other.state == LISTENING and other.local is not None:
                    oip = other.local[0]
                    if oip in (ip, wild) or ip == wild:
                        raise_wsa(
                            _E.WSAEADDRINUSE,
                            f"address {format_address(s.local)} already has a listener",
                        )
            s.state = LISTENING
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
                if s.state != LISTENING:
                    raise_wsa(_E.WSAEINVAL, "accept on a socket that is not listening")
                if s.pending:  # never while accepts wait: they got it
                    conn = s.pending.popleft()
                else:
                    op = Op(s, None, ACCEPT)
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
                    reset(conn.peer)
                old, conn.state = conn.state, CLOSED
                teardown(conn, old)
                net._cond.notify_all()
            if net._done:
                net._drain()
            raise
        with net._guard:
            net._sockets[conn] = None
        assert conn.peer_addr is not None
        return conn, public_address(conn.family, conn.peer_addr)

    def connect(self, s: MemorySocket, address: Any) -> None:
        """``WSPConnect``: connect a stream socket, or set a datagram socket's peer.

        Binds an ephemeral port first if needed.  Stream: WSAECONNREFUSED when
        nobody listens there or the backlog is full.  Datagram: the address
        becomes the default peer and only its datagrams are received;
        ``("0.0.0.0", 0)``/``("::", 0)`` dissolves the association.
        """
        ip, port = parse_address(s.family, address, _E.WSAEAFNOSUPPORT)
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
        wild = ANY[s.family]
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
                s.local = (LOOPBACK[s.family] if ip == BROADCAST else ip, s.local[1])
            s.peer_addr = (ip, port)
            return
        if s.state != NEW:
            what = "listening" if s.state == LISTENING else "already connected"
            raise_wsa(_E.WSAEINVAL, f"connect to {address!r} on a socket that is {what}")
        if ip in (wild, BROADCAST) or port == 0:
            raise_wsa(_E.WSAEADDRNOTAVAIL, f"cannot connect to {address!r}")
        if s.local is None:
            self._autobind(s, ip)
        assert s.local is not None
        if s.local[0] == wild:
            s.local = (ip, s.local[1])
        listener = None
        for other in net._ports.get(s.key, {}).get(port, ()):
            if other.state == LISTENING and other.local is not None:
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
        server.state = CONNECTED
        server.peer = s
        server.peer_addr = s.local
        net._register(server)
        s.state = CONNECTED
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
                    if s.state == RESET:
                        raise_wsa(_E.WSAECONNRESET, "shutdown on a connection that was reset")
                    if s.state != CONNECTED:
                        raise_wsa(_E.WSAENOTCONN, "shutdown on a socket that is not connected")
                if how != SD_RECEIVE and not s.send_shut:
                    s.send_shut = True
                    net._abort_queue(s.sq, _E.WSAESHUTDOWN)
                    peer = s.peer
                    if peer is not None and peer.state == CONNECTED:
                        peer.eof = True
                        if peer.rq:
                            net._serve_stream(peer)
                if how != SD_SEND and not s.recv_shut:
                    s.recv_shut = True
                    if s.stream and s.rlen:
                        peer = s.peer
                        if peer is not None:
                            reset(peer)
                        reset(s)
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
            return public_address(s.family, s.local)

    def getpeername(self, s: MemorySocket) -> Any:
        """``WSPGetPeerName``: the peer's address; WSAENOTCONN when not connected."""
        with self.network._guard:
            self._check(s)
            if s.peer_addr is None or (s.stream and s.state != CONNECTED):
                raise_wsa(_E.WSAENOTCONN, "getpeername on a socket that is not connected")
            return public_address(s.family, s.peer_addr)

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
                and s.state == CONNECTED
                and not s.send_shut
                and net.is_up
                and peer.state == CONNECTED
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
            with byte_view(data) as view, net._guard:
                return self._send_locked(s, view, flags)
        finally:
            if net._done:
                net._drain()

    def _send_locked(self, s: MemorySocket, data: bytes | memoryview, flags: int) -> int:
        if flags & ~SEND_FLAGS:
            raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported send flags {flags!r}")
        self._check(s)
        if not s.stream:
            if s.peer_addr is None:
                raise_wsa(_E.WSAENOTCONN, "send on a datagram socket that is not connected")
            return self._deliver(s, bytes(data), s.peer_addr)
        error = stream_error(s, True)
        if error:
            raise_wsa(error, failure(error, "send", s))
        op = Op(s, None, SEND, len(data))
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
                data = take(s, bufsize)
                if s.peer.sq:  # type: ignore[union-attr]  # data queued: a peer
                    net._flow_in(s)  # the room made lets the peer's queued sends in
                elif net._waiting:
                    net._cond.notify_all()
            elif s.stream:
                data = self._recv_stream(s, bufsize, flags)
            else:
                data = self._recv_dgram(s, bufsize, flags, RECV)
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
        if flags & ~STREAM_RECV_FLAGS:
            raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported recv flags {flags!r}")
        error = stream_error(s, False)
        if error:
            raise_wsa(error, failure(error, "recv", s))
        if bufsize == 0:
            return b""
        net = self.network
        # Data (or end of file) is never queued while receives wait: they got it.
        if s.rlen:
            if flags & MSG_PEEK:
                return peek(s, bufsize)
            if not flags & MSG_WAITALL or s.rlen >= bufsize:
                data = take(s, bufsize)
                net._flow_in(s)
                return data
        elif s.eof:
            return b""
        op = Op(s, None, RECV, bufsize, flags)
        s.rq.append(op)
        if s.rlen or s.peer.sq:  # type: ignore[union-attr]  # connected: a peer
            # MSG_WAITALL takes what is there; queued sends move into the room.
            net._flow_in(s)
        result: bytes = self._await(s, op, "recv")
        return result

    def _recv_dgram(self, s: MemorySocket, bufsize: int, flags: int, kind: int) -> Any:
        """One datagram: its bytes (``kind`` RECV) or ``(bytes, sender)`` (RECVFROM)."""
        self._check_bufsize(bufsize)
        self._check(s)
        if flags & ~DGRAM_RECV_FLAGS:
            raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported recv flags {flags!r} on a datagram socket")
        if s.recv_shut:
            raise_wsa(_E.WSAESHUTDOWN, "recv after shutdown(SD_RECEIVE)")
        if s.local is None:
            raise_wsa(_E.WSAEINVAL, "recv on a datagram socket that is not bound")
        dgrams = s.dgrams
        if dgrams:  # never while receives wait: they got it
            if flags & MSG_PEEK:
                data, address = dgrams[0]
            else:
                data, address = dgrams.popleft()
                s.qlen -= len(data)
            if len(data) > bufsize:
                data = data[:bufsize]
            return data if kind == RECV else (data, address)
        op = Op(s, None, kind, bufsize, flags)
        s.rq.append(op)
        return self._await(s, op, "recv")

    def recv_into(self, s: MemorySocket, buffer: Any, nbytes: int, flags: int) -> int:
        """``WSPRecv`` into ``buffer`` (``nbytes`` 0: its length); the count."""
        view, size = writable_view(buffer, nbytes)
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
            data = as_bytes(data)
        if flags and flags & ~SEND_FLAGS:
            raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported sendto flags {flags!r}")
        dest = parse_address(s.family, address, _E.WSAEAFNOSUPPORT)
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
        wild = ANY[s.family]
        if ip == wild or port == 0:
            raise_wsa(_E.WSAEADDRNOTAVAIL, f"cannot send to {format_address(dest)}")
        local = s.local
        if local is None:
            local = self._autobind(s, wild)
        src_ip = local[0]
        if src_ip == wild:
            src_ip = LOOPBACK[s.family] if ip == BROADCAST else ip
        src = (src_ip, local[1])
        sender = src if s.family == AF_INET else (src_ip, local[1], 0, 0)
        net = self.network
        bound = net._ports.get(s.key, {}).get(port)
        if not bound:
            return n
        if ip == BROADCAST:
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
            if r.qlen < r.rcvbuf and not r.recv_shut and r.state != CLOSED:
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
                result: tuple[bytes, Any] = self._recv_dgram(s, bufsize, flags, RECVFROM)
                return result
        finally:
            if net._done:
                net._drain()

    def recvfrom_into(
        self, s: MemorySocket, buffer: Any, nbytes: int, flags: int
    ) -> tuple[int, Any]:
        """``WSPRecvFrom`` into ``buffer``; the count and the sender."""
        view, size = writable_view(buffer, nbytes)
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
                        if s.state == CONNECTED:
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
            data = as_bytes(data)
        if flags & ~SEND_FLAGS:
            raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported send flags {flags!r}")
        net = self.network
        try:
            with net._guard:
                if type(s) is MemorySocket and not s.stream:
                    self._send_datagram(self._op(s, ov, OTHER), data, s.peer_addr)
                    return
                op = self._op(s, ov, SEND, len(data))
                error = _E.WSAENETDOWN if not net.is_up else stream_error(s, True)
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
            data = as_bytes(data)
        if flags & ~SEND_FLAGS:
            raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported sendto flags {flags!r}")
        net = self.network
        try:
            with net._guard:
                op = self._op(s, ov, OTHER)
                dest = parse_address(s.family, address, _E.WSAEAFNOSUPPORT)
                self._send_datagram(op, data, dest)
        finally:
            if net._done:
                net._drain()

    def _send_datagram(self, op: Op, data: bytes, dest: tuple[str, int] | None) -> None:
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
        self._post_recv(s, bufsize, flags, ov, RECV)

    def recvfrom_overlapped(self, s: MemorySocket, bufsize: int, flags: int, ov: Any) -> None:
        """``WSPRecvFrom`` with an overlapped: ``ov.data`` and ``ov.address`` (the
        sender; None on a stream socket)."""
        self._post_recv(s, bufsize, flags, ov, RECVFROM)

    def _post_recv(self, s: MemorySocket, bufsize: int, flags: int, ov: Any, kind: int) -> None:
        self._check_bufsize(bufsize)
        net = self.network
        try:
            with net._guard:
                op = self._op(s, ov, kind, bufsize, flags)
                if s.stream:
                    if flags & ~STREAM_RECV_FLAGS:
                        raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported recv flags {flags!r}")
                    error = _E.WSAENETDOWN if not net.is_up else stream_error(s, False)
                else:
                    if flags & ~DGRAM_RECV_FLAGS:
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
                    received(op, b"")
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
                op = self._op(s, ov, OTHER)
                ip, port = parse_address(s.family, address, _E.WSAEAFNOSUPPORT)
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
                op = self._op(s, ov, ACCEPT)
                if not s.stream:
                    raise_wsa(_E.WSAEOPNOTSUPP, "accept on a datagram socket")
                if not net.is_up:
                    net._finish(op, _E.WSAENETDOWN)
                elif s.state != LISTENING:
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
                op = self._op(s, ov, OTHER)
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
                readable = [s for s in readers if is_readable(s)]
                writable = [s for s in writers if is_writable(s)]
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
                        if s.state == CLOSED:
                            raise_wsa(
                                _E.WSAEINTR, f"select interrupted: socket {s.handle} was closed"
                            )
