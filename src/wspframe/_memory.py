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

Modules
-------
This module is the provider's face: :class:`MemoryProvider` puts its parts
together and keeps the provider-wide operations (startup, cleanup, creating,
duplicating and closing sockets, select).  The parts, each a base class of
:class:`MemoryProvider` built on ``_membase`` (the network, the checks, how a
blocked call waits):

* ``_memconn``: bind, listen, connect, accept, shutdown, addresses (the
  states of a stream socket);
* ``_memdata``: the synchronous data path (send, recv, sendto, recvfrom),
  datagram routing;
* ``_memoverlapped``: overlapped sends and receives (the life of an
  overlapped operation);
* ``_memopts``: socket options, ioctl, timeouts.

Below them, the network (ports, the serving of queues, wake-ups, completion
delivery) is in ``_memnet``, the sockets, operations and stream queues in
``_memsock``, the parkers blocked calls sleep on in ``_memwait``, addresses
and buffers in ``_memaddr``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from ._constants import IPPROTO_TCP, IPPROTO_UDP, SOCK_DGRAM, SOCK_STREAM
from ._errors import WSAError, WSAErrorCode, raise_wsa
from ._memaddr import ANY
from ._memconn import MemoryConnections
from ._memdata import MemoryData
from ._memnet import MemoryNetwork, teardown
from ._memopts import MemoryOptions
from ._memoverlapped import MemoryOverlapped
from ._memsock import CLOSED, MemorySocket, is_readable, is_writable
from ._protocol import MAX_DATAGRAM_V4, MAX_DATAGRAM_V6, ProtocolInfo, ip_entries
from ._spi import resolve_triplet

if TYPE_CHECKING:
    from ._handles import Upcalls

__all__ = ["MemoryNetwork", "MemoryProvider", "MemorySocket"]

_E = WSAErrorCode


class MemoryProvider(MemoryConnections, MemoryData, MemoryOverlapped, MemoryOptions):
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

    # -- sockets ---------------------------------------------------------------
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

    def duplicate_socket(self, s: MemorySocket) -> None:
        """``WSPDuplicateSocket``: the host shares the context; only checks ``s``."""
        with self.network._guard:
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
