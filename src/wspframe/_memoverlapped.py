"""The ``memory`` provider's overlapped sends and receives.

See ``wspframe._memory`` for the model.  :class:`MemoryOverlapped` is the
part of :class:`~wspframe._memory.MemoryProvider` with ``send_overlapped``,
``sendto_overlapped``, ``recv_overlapped`` and ``recvfrom_overlapped``.  The
other overlapped operations finish at once and live beside their synchronous
forms: ``connect_overlapped`` and ``accept_overlapped`` in
``wspframe._memconn``, ``ioctl_overlapped`` in ``wspframe._memopts``.

Theory of operation: an overlapped operation
--------------------------------------------
Each call starts its operation under the network's lock and returns None:

=========  ===========================================  ====================
state      event                                        next state
=========  ===========================================  ====================
(call)     bad arguments (flags, buffer size, not a     nothing: the call
           socket of this network, an oversized         raises, nothing
           datagram)                                    completes
(call)     fails at once (network down, shut down,      finished, with the
           reset, not connected...); datagram sends     error (or none)
(call)     otherwise: queued behind the socket's        queued
           operations (``rq``/``sq``), blocked calls
           included
queued     served by whichever thread makes it          finished
           possible (a send or recv of the peer, a
           close, SO_RCVBUF), in queue order
queued     ``close_socket``/``cleanup``                 finished, with
           (WSA_OPERATION_ABORTED), ``down``            that error
           (WSAENETDOWN), ``shutdown`` (WSAESHUTDOWN),
           a reset (WSAECONNRESET)
finished   its completion is delivered after the lock   completed (once)
           is released (``MemoryNetwork._drain``)
=========  ===========================================  ====================

``MemoryNetwork._finish`` sets the overlapped's results and queues the
completion; every call here ends by delivering what is queued, so the
completions a call causes are delivered before it returns, unless another
thread is delivering or the call comes from a completion callback (then the
delivery under way takes them, in order).
"""

from __future__ import annotations

from typing import Any

from ._errors import WSAError, WSAErrorCode, raise_wsa
from ._memaddr import as_bytes, parse_address
from ._membase import MemoryProviderBase
from ._memdata import deposit, route
from ._memsock import (
    CONNECTED,
    DGRAM_RECV_FLAGS,
    OTHER,
    RECV,
    RECVFROM,
    SEND,
    SEND_FLAGS,
    STREAM_RECV_FLAGS,
    MemorySocket,
    Op,
    received,
    stream_error,
)

__all__ = ["MemoryOverlapped"]

_E = WSAErrorCode


class MemoryOverlapped(MemoryProviderBase):
    """The overlapped sends and receives of :class:`~wspframe._memory.MemoryProvider`.

    A stream send finishes with its full count once all its bytes are queued
    at the peer; a datagram send finishes at once; end of file finishes a
    receive with ``b""`` and 0 bytes.  They ignore the socket's timeout.
    """

    def send_overlapped(self, s: MemorySocket, data: Any, flags: int, ov: Any) -> None:
        """``WSPSend`` with an overlapped: ``nbytes`` is the count sent.

        A stream send waits behind the sends queued before it and completes
        with its full count once all its bytes are queued at the peer.  On a
        datagram socket: one datagram to the connected peer, at once.
        """
        if type(data) is not bytes:
            data = as_bytes(data)
        net = self.network
        lock = net._lock
        waker = None  # a blocked recv's, handed the data: woken after the lock
        lock.acquire()
        try:
            # The fast path (see _memdata): a connected stream, nothing queued
            # before it, room at the peer for all of it: done at once.  Tested
            # as "not fast" (short jumps, see MemoryData.send).
            peer = s.peer if type(s) is MemorySocket else None
            if (
                peer is None
                or s.network is not net
                or flags
                or s.state != CONNECTED
                or s.send_shut
                or s.sq
                or not net.is_up
                or peer.state != CONNECTED
                or peer.recv_shut
                or peer.rcvbuf - peer.rlen < len(data)
            ):
                self._send_general(s, data, flags, ov)
            else:
                op = Op(s, ov, SEND, len(data))
                op.count = op.size
                net._done.append(op)  # finished: before the receive it completes
                s.undelivered += 1
                if data:
                    waker = deposit(net, peer, data)
                if net._waiting:
                    net._cond.notify_all()
        finally:
            # net._release(), inlined: release, then wake the receivers
            wakes = net._wakes
            if wakes:
                net._wakes = []
                lock.release()
                for other in wakes:
                    other.unpark()
            else:
                lock.release()
            if waker is not None:
                waker.unpark()
            if net._done:
                net._drain()

    def _send_general(self, s: MemorySocket, data: bytes, flags: int, ov: Any) -> None:
        """:meth:`send_overlapped` when the fast path does not apply (lock held)."""
        if flags & ~SEND_FLAGS:
            raise_wsa(_E.WSAEOPNOTSUPP, f"unsupported send flags {flags!r}")
        net = self.network
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
                op.count = route(s, data, dest)
            except WSAError as exc:
                net._finish(op, exc.wsa_code)
            else:
                net._finish(op)

    def recv_overlapped(self, s: MemorySocket, bufsize: int, flags: int, ov: Any) -> None:
        """``WSPRecv`` with an overlapped: ``ov.data`` holds the bytes received.

        Waits behind the receives queued before it.  Flags as :meth:`recv`;
        end of file completes it with ``b""`` and 0 bytes.
        """
        net = self.network
        lock = net._lock
        # The fast path: a connected stream with nothing to receive yet (no
        # data, no end of file, no send waiting at the peer): the receive just
        # waits its turn.  Nothing finishes, so nothing is woken or delivered.
        lock.acquire()
        try:
            if (
                type(s) is not MemorySocket
                or type(bufsize) is not int
                or bufsize <= 0
                or flags
                or s.network is not net
                or s.state != CONNECTED
                or s.rlen
                or s.eof
                or s.recv_shut
                or not net.is_up
                or (s.peer is not None and s.peer.sq)
            ):
                queued = False
            else:
                s.rq.append(Op(s, ov, RECV, bufsize))
                queued = True
        finally:
            lock.release()
        if not queued:
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
