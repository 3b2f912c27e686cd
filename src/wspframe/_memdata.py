"""The ``memory`` provider's synchronous data path: send, recv, sendto, recvfrom.

See ``wspframe._memory`` for the model.  :class:`MemoryData` is the part of
:class:`~wspframe._memory.MemoryProvider` that moves bytes for blocking and
non-blocking calls; :func:`route` sends one datagram (the overlapped sends in
``wspframe._memoverlapped`` use it too).

Theory of operation: the fast paths
-----------------------------------
``send`` of ``bytes`` and ``recv`` are the hot operations, so each first tries
a path that takes the lock once, with the network's ``_release`` inlined,
and falls back to the general one (checks, then the socket's queues, where a
call that cannot finish waits as an :class:`~wspframe._memsock.Op`; see
``wspframe._membase``).  The fast paths cannot reorder a stream:

* ``send`` goes fast only when the peer has room for all of ``data``.  Sends
  queued on the sender leave the peer no room (``MemorySocket.sq``), so it
  never overtakes them.  When a plain ``recv`` with room for all of it
  waits first in the peer's queue (then nothing is queued there), the data
  is handed to it directly: a blocked call's thread is woken once the lock
  is free, an overlapped one's completion delivered then.  Otherwise the
  data is queued and the waiting receives are served in order.
* ``recv`` goes fast only when data is queued.  Receives never wait while
  data is queued (``MemorySocket.rq``), so it never overtakes them; the room
  it makes lets the peer's queued sends in.

Datagram delivery (:func:`route`) picks, among the sockets bound to the
destination port, the one bound to the exact address, else the latest bound
to the wildcard, skipping connected sockets whose peer is not the sender;
``255.255.255.255`` reaches all of them.  A datagram that finds no socket, or
a full queue, is dropped, as UDP does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._constants import AF_INET
from ._errors import WSAErrorCode, raise_wsa
from ._memaddr import ANY, BROADCAST, LOOPBACK, as_bytes, byte_view, parse_address, writable_view
from ._membase import MemoryProviderBase, autobind
from ._memsock import (
    CLOSED,
    CONNECTED,
    DGRAM_RECV_FLAGS,
    MSG_PEEK,
    MSG_WAITALL,
    RECV,
    RECVFROM,
    SEND,
    SEND_FLAGS,
    STREAM_RECV_FLAGS,
    MemorySocket,
    Op,
    failure,
    peek,
    stream_error,
    take,
)
from ._spi import format_address

if TYPE_CHECKING:
    from ._memnet import MemoryNetwork
    from ._memwait import Parker

__all__ = ["MemoryData", "deposit", "route"]

_E = WSAErrorCode


class MemoryData(MemoryProviderBase):
    """The synchronous data operations of :class:`~wspframe._memory.MemoryProvider`."""

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
            # Tested as "not fast", so that each comparison jumps a short way:
            # CPython 3.11 leaves a comparison generic (slow) when its jump
            # needs EXTENDED_ARG, as one over the whole block below would.
            if (
                peer is None
                or flags
                or s.state != CONNECTED
                or s.send_shut
                or not net.is_up
                or peer.state != CONNECTED
                or peer.recv_shut
                or peer.rcvbuf - peer.rlen < len(data)
            ):
                pass  # the general path, once the lock is released (n < 0)
            else:
                # Sends queued on s leave the peer no room (see MemorySocket.sq),
                # so this cannot overtake them.
                n = len(data)
                if n:
                    waker = deposit(net, peer, data)
                    if net._waiting:
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
            return route(s, bytes(data), s.peer_addr)
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
            n = route(s, data, dest)
        if net._done:  # it served queued receives
            net._drain()
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


def deposit(net: MemoryNetwork, peer: MemorySocket, data: bytes) -> Parker | None:
    """Queue ``data`` (not empty) at ``peer``, which has room for all of it and
    takes data (lock held): the fast paths of ``send`` and ``send_overlapped``.

    When a plain recv with room for all of it waits first in the peer's queue
    (then nothing is queued there), the data is handed to it directly, as
    ``_serve_stream`` and ``_finish`` would: an overlapped one's completion is
    queued for delivery, a blocked call's parker is returned, to be unparked
    once the lock is released.  Otherwise the data is queued and the waiting
    receives are served in order.
    """
    rq = peer.rq
    op = rq[0] if rq else None
    if op is None or op.flags or len(data) > op.size:
        peer.chunks.append(data)
        peer.rlen += len(data)
        if rq:  # receives wait at the peer: they take it now, in order
            net._serve_stream(peer)
        return None
    rq.popleft()
    op.result = data
    op.count = len(data)
    ov = op.ov
    if ov is None:  # a blocked call: its thread wakes once the lock is free
        op.done = True
        waker = op.waker
        if waker is not None:
            op.waker = None
            net._parked -= 1
        return waker
    op.error = 0  # overlapped: its completion is delivered after the lock
    ov.data = data
    if op.kind == RECVFROM:
        ov.address = op.address
    net._done.append(op)
    peer.undelivered += 1
    if rq:  # the receives behind it, as _serve_stream() goes on
        net._serve_stream(peer)
    return None


def route(s: MemorySocket, data: bytes, dest: tuple[str, int]) -> int:
    """Send one datagram from ``s`` to ``dest`` (lock held, ``s`` checked); its
    size, whether or not a socket took it."""
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
        local = autobind(s, wild)
    src_ip = local[0]
    if src_ip == wild:
        src_ip = LOOPBACK[s.family] if ip == BROADCAST else ip
    src = (src_ip, local[1])
    sender = src if s.family == AF_INET else (src_ip, local[1], 0, 0)
    net = s.network
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
