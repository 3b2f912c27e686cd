"""The ``memory`` provider's connections: bind, listen, connect, accept, shutdown.

See ``wspframe._memory`` for the model.  :class:`MemoryConnections` is the
part of :class:`~wspframe._memory.MemoryProvider` that gives sockets their
addresses and moves stream sockets between states, overlapped ``ConnectEx``
and ``AcceptEx`` included (they share the synchronous calls' code).

Theory of operation: a stream socket's states
---------------------------------------------
``MemorySocket.state`` (datagram sockets stay NEW until closed; ``connect``
only sets or clears their default peer):

=========  ===============================================  ==========
state      event                                            next state
=========  ===============================================  ==========
NEW        ``listen`` (bound first)                         LISTENING
NEW        ``connect`` to a listener with room in its       CONNECTED
           backlog (binds an ephemeral port first if
           needed); the server side is made CONNECTED at
           once and queued on the listener until accepted
NEW        ``connect`` refused (no listener, backlog full)  NEW
LISTENING  ``listen`` again: the new backlog                LISTENING
CONNECTED  ``shutdown``: sets ``send_shut``/``recv_shut``   CONNECTED
CONNECTED  reset: the peer closed with unread data, data    RESET
           reached a socket shut for receiving, or a send
           reached a closed socket (``_memnet.reset``)
any        ``close_socket`` (in ``wspframe._memory``);      CLOSED
           a listener's pending connections are reset
=========  ===============================================  ==========

A connection is fully made by ``connect`` (the handshake of an ideal
network); ``accept`` only hands it over and gives it a handle.  The
connections waiting on a listener and the accepts waiting for one are never
both non-empty: whichever comes second is served at once
(``MemoryNetwork._serve_accepts``).
"""

from __future__ import annotations

from typing import Any

from ._constants import SD_BOTH, SD_RECEIVE, SD_SEND
from ._errors import WSAError, WSAErrorCode, raise_wsa
from ._memaddr import (
    ANY,
    BROADCAST,
    LOOPBACK,
    conflict,
    ephemeral_port,
    parse_address,
    public_address,
    register,
)
from ._membase import MemoryProviderBase, autobind
from ._memnet import reset, teardown
from ._memsock import (
    ACCEPT,
    CLOSED,
    CONNECTED,
    LISTENING,
    NEW,
    OTHER,
    RESET,
    MemorySocket,
    Op,
)
from ._spi import format_address

__all__ = ["MemoryConnections"]

_E = WSAErrorCode


class MemoryConnections(MemoryProviderBase):
    """The connection operations of :class:`~wspframe._memory.MemoryProvider`."""

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
                port = ephemeral_port(net, s.key)
            elif conflict(s, ip, port) is not None:
                raise_wsa(_E.WSAEADDRINUSE, f"address {address!r} is already in use")
            s.local = (ip, port)
            register(s)

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
                autobind(s, wild)
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
            autobind(s, ip)
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
        register(server)
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
