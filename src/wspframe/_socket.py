"""The client ``Socket``: the Python socket module's API over a protocol chain.

Theory of operation
-------------------
A :class:`Socket` is one descriptor (handle) of a :class:`SocketCore`, the
state shared by every descriptor of a socket (``duplicate()`` makes more).
The core holds the chain's top :class:`~wspframe._chain.Dispatch`; the hot
operations (send, recv and friends) are cached on each ``Socket`` as the bound
callables of the chain, so a call is one Python frame here plus one per
overriding layer.  Argument checks happen only after a failure, to name the
bad value without costing the successful path anything.
"""

from __future__ import annotations

from threading import get_ident
from typing import TYPE_CHECKING, Any, Final, NoReturn, cast

from ._bindings import hot_bindings
from ._constants import FIONBIO, SOCK_STREAM, WSAFlag
from ._errors import WSAError, WSAErrorCode, contain, raise_wsa, wsa_error
from ._overlapped import CompletionPort, CompletionRoutine, Overlapped
from ._protocol import ProtocolInfo
from ._spi import SOCKET_OPERATIONS

if TYPE_CHECKING:
    from ._chain import Dispatch
    from ._host import Host

__all__ = ["Socket", "SocketCore"]

#: The data path's operations, in the order of the Socket's slots.
_HOT: Final = SOCKET_OPERATIONS
#: WSA_FLAG_OVERLAPPED as a plain int (IntFlag arithmetic costs a Python call).
_OVERLAPPED: Final = int(WSAFlag.OVERLAPPED)
#: The ``inflight`` of a socket that cannot start overlapped operations.
_NONE_INFLIGHT: Final = cast("set[Overlapped]", frozenset())


class SocketCore:
    """State shared by every descriptor of one socket."""

    __slots__ = (
        "af",
        "closed",
        "entry",
        "flags",
        "host",
        "hot",
        "inflight",
        "native",
        "proto",
        "redirected",
        "refs",
        "state",
        "timeout",
        "top",
        "type",
    )

    def __init__(
        self,
        host: Host,
        top: Dispatch,
        entry: ProtocolInfo,
        flags: int,
        af: int,
        type_: int,
        proto: int,
    ) -> None:
        self.host = host
        self.top = top
        #: The hot operations, as each ``Socket`` of this core caches them.
        self.hot, self.native = hot_bindings(top)
        self.entry = entry
        self.flags = flags
        self.af = entry.address_family if af in (0, -1) else af
        self.type = entry.socket_type if type_ in (0, -1) else type_
        self.proto = entry.protocol if proto in (0, -1) else proto
        self.refs = 1
        self.closed = False
        self.state = "open"
        self.timeout: float | None = None
        #: Client overlapped operations started and not yet completed (only
        #: a socket made with WSA_FLAG_OVERLAPPED starts any).  No lock: a
        #: set's add, discard and pop are atomic.
        self.inflight: set[Overlapped] = set() if int(flags) & _OVERLAPPED else _NONE_INFLIGHT
        self.redirected = False

    # The descriptor count (and ``redirected``) are kept under the host's
    # handle-table lock, which the last close holds across the chain anyway.
    def acquire(self) -> None:
        with self.host._table._lock:
            self.refs += 1

    def release(self) -> bool:
        """Drop one descriptor; True when it was the last."""
        with self.host._table._lock:
            self.refs -= 1
            if self.refs or self.closed:
                return False
            self.closed = True
            return True


def _closed(*args: Any) -> NoReturn:
    raise_wsa(WSAErrorCode.WSAENOTSOCK, "the socket is closed")


def _address_problem(af: int, address: object) -> str | None:
    import socket as _socket

    if af == _socket.AF_INET:
        ok = (
            isinstance(address, tuple)
            and len(address) == 2
            and isinstance(address[0], str)
            and isinstance(address[1], int)
        )
        form = "a (host, port) tuple for AF_INET"
    elif af == _socket.AF_INET6:
        ok = (
            isinstance(address, tuple)
            and 2 <= len(address) <= 4
            and isinstance(address[0], str)
            and all(isinstance(v, int) for v in address[1:])
        )
        form = "a (host, port[, flowinfo, scope_id]) tuple for AF_INET6"
    else:
        return None
    if not ok:
        return f"address must be {form}, got {address!r}"
    port = address[1]  # type: ignore[index]
    if not 0 <= port <= 65535:
        return f"port must be 0..65535, got {port!r}"
    return None


class Socket:
    """A socket handed out by :meth:`wspframe.Host.socket`.

    Names and behaviour follow :class:`socket.socket`; every failure is a
    :class:`~wspframe.WSAError` (timeouts are WSAETIMEDOUT, also a
    :class:`TimeoutError`).
    """

    __slots__ = (
        "__weakref__",
        "_core",
        "_handle",
        *(f"_{op}" for op in _HOT),
        *(f"_{op}_c" for op in _HOT),
    )

    def __init__(self, core: SocketCore, handle: int) -> None:
        self._core = core
        self._handle = handle
        # Each hot operation as a callable and its first argument (see
        # _bindings.hot_bindings), computed once per socket, copied per descriptor.
        (
            self._send,
            self._send_c,
            self._recv,
            self._recv_c,
            self._recv_into,
            self._recv_into_c,
            self._sendto,
            self._sendto_c,
            self._recvfrom,
            self._recvfrom_c,
            self._recvfrom_into,
            self._recvfrom_into_c,
        ) = core.hot

    # -- error handling (slow path only) --------------------------------------
    def _reraise(self, exc: Exception, op: str, **args: Any) -> NoReturn:
        """Re-raise a failure of ``op`` as the right WSAError (slow path only).

        Must be called from the ``except`` block handling ``exc``.
        """
        err = self._fail(exc, op, **args)
        if err is exc:
            raise
        raise err from exc

    def _fail(self, exc: BaseException, op: str, **args: Any) -> WSAError:
        if self._handle < 0:
            return wsa_error(WSAErrorCode.WSAENOTSOCK, f"{op}() on a closed socket")
        for name, value in args.items():
            problem = None
            if name in ("bufsize", "nbytes", "backlog") and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                problem = (WSAErrorCode.WSAEINVAL, f"{name} must be an int >= 0, got {value!r}")
            elif name == "address":
                text = _address_problem(self._core.af, value)
                if text:
                    problem = (WSAErrorCode.WSAEFAULT, text)
            elif name == "data" and not isinstance(value, (bytes, bytearray, memoryview)):
                problem = (
                    WSAErrorCode.WSAEFAULT,
                    f"data must be bytes-like, got {type(value).__name__}",
                )
            if problem:
                err = wsa_error(*problem)
                err.__cause__ = exc
                return err
        provider = self._core.native.get(op)
        if provider is not None and isinstance(exc, Exception) and not isinstance(exc, WSAError):
            return provider.native_error(getattr(self, f"_{op}_c"), op, exc)
        return contain(exc, op)

    def _dispatch(self) -> Dispatch:
        if self._handle < 0:
            raise_wsa(WSAErrorCode.WSAENOTSOCK, "the socket is closed")
        return self._core.top

    def _call(self, op: str, *args: Any, **named: Any) -> Any:
        top = self._dispatch()
        try:
            return getattr(top, op)(*args)
        except Exception as exc:
            self._reraise(exc, op, **named)

    # -- data --------------------------------------------------------------------
    def send(self, data: Any, flags: int = 0) -> int:
        """Send ``data``; return the number of bytes taken."""
        try:
            fn = self._send
            return fn(self._send_c, data, flags)  # type: ignore[no-any-return]
        except Exception as exc:
            self._reraise(exc, "send", data=data)

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Send all of ``data``, calling ``send`` until it is taken."""
        try:
            view = memoryview(data).cast("B")
        except TypeError as exc:
            self._reraise(exc, "sendall", data=data)
        send = self.send
        total = len(view)
        sent = send(view, flags)
        while sent < total:
            sent += send(view[sent:], flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Receive up to ``bufsize`` bytes; ``b""`` at the end of a stream."""
        try:
            fn = self._recv
            return fn(self._recv_c, bufsize, flags)  # type: ignore[no-any-return]
        except Exception as exc:
            self._reraise(exc, "recv", bufsize=bufsize)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Receive into ``buffer``; return the byte count."""
        try:
            fn = self._recv_into
            return fn(self._recv_into_c, buffer, nbytes, flags)  # type: ignore[no-any-return]
        except Exception as exc:
            self._reraise(exc, "recv_into", nbytes=nbytes)

    def sendto(self, data: Any, flags_or_address: Any, address: Any = None) -> int:
        """``sendto(data, address)`` or ``sendto(data, flags, address)``."""
        if address is None:
            flags, address = 0, flags_or_address
        else:
            flags = flags_or_address
        try:
            fn = self._sendto
            return fn(self._sendto_c, data, flags, address)  # type: ignore[no-any-return]
        except Exception as exc:
            self._reraise(exc, "sendto", data=data, address=address)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        """Receive a datagram (or stream bytes) and the sender's address."""
        try:
            fn = self._recvfrom
            return fn(self._recvfrom_c, bufsize, flags)  # type: ignore[no-any-return]
        except Exception as exc:
            self._reraise(exc, "recvfrom", bufsize=bufsize)

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        """Receive into ``buffer``; return the byte count and the sender's address."""
        try:
            fn = self._recvfrom_into
            result: tuple[int, Any] = fn(self._recvfrom_into_c, buffer, nbytes, flags)
            return result
        except Exception as exc:
            self._reraise(exc, "recvfrom_into", nbytes=nbytes)

    # -- connection --------------------------------------------------------------
    def bind(self, address: Any) -> None:
        """Bind to ``address``."""
        self._call("bind", address, address=address)
        self._core.state = "bound"

    def listen(self, backlog: int = 128) -> None:
        """Listen for connections with a queue of ``backlog``."""
        if not isinstance(backlog, int) or isinstance(backlog, bool) or backlog < 0:
            raise_wsa(WSAErrorCode.WSAEINVAL, f"backlog must be an int >= 0, got {backlog!r}")
        self._call("listen", backlog, backlog=backlog)
        self._core.state = "listening"

    def accept(self) -> tuple[Socket, Any]:
        """Accept a connection: a new :class:`Socket` and the peer's address."""
        top = self._dispatch()
        try:
            new, address = top.accept()
        except Exception as exc:
            self._reraise(exc, "accept")
        core = self._core
        new_core = SocketCore(
            core.host, new, core.entry, core.flags, core.af, core.type, core.proto
        )
        new_core.state = "connected"
        return core.host._adopt(Socket(new_core, new.handle)), address

    def connect(self, address: Any) -> None:
        """Connect to ``address``."""
        self._call("connect", address, address=address)
        self._core.state = "connected"

    def connect_ex(self, address: Any) -> int:
        """Like :meth:`connect`, but return 0 or the WSA error code."""
        try:
            self.connect(address)
        except WSAError as exc:
            return exc.wsa_code
        return 0

    def shutdown(self, how: int) -> None:
        """Shut down receiving (0), sending (1) or both (2)."""
        if how not in (0, 1, 2):
            raise_wsa(
                WSAErrorCode.WSAEINVAL, f"how must be SD_RECEIVE, SD_SEND or SD_BOTH, got {how!r}"
            )
        self._call("shutdown", how)

    def close(self) -> None:
        """Close this descriptor; the socket closes with its last descriptor.

        Closing again does nothing.
        """
        handle = self._handle
        if handle < 0:
            return
        self._handle = -1
        self._send = self._recv = self._recv_into = _closed
        self._sendto = self._recvfrom = self._recvfrom_into = _closed
        core = self._core
        host = core.host
        lock = host._table._lock
        error: WSAError | None = None
        try:
            # One hold of the table's lock counts the descriptor and, for the
            # last, closes the chain: so no descriptor number of this socket
            # can be reused by another thread before every level has let go.
            with lock:
                core.refs -= 1
                last = not core.refs and not core.closed
                if not last:
                    host._release_descriptor(core, handle)
                else:
                    core.closed = True
                    core.state = "closed"
                    if not core.redirected:
                        error = self._close_chain()
            if not last:
                host._forget(self, False)
                host._ports.pop(handle, None)
                return
            if core.redirected:
                # Outside the lock: the redirector's pump may be in the chain.
                host._unredirect(core.top)
                with lock:
                    error = self._close_chain()
            top_handle = core.top.handle
            ports = host._ports
            if ports:
                ports.pop(top_handle, None)
            if handle != top_handle:
                host._release_descriptor(core, handle)
            host._forget(self, True)
            if ports:
                ports.pop(handle, None)
        finally:
            if error is not None:
                raise error

    def _close_chain(self) -> WSAError | None:
        """Close every level of the socket (the table's lock held); return
        the error to raise once done, if any."""
        core = self._core
        top = core.top
        table = core.host._table
        error = None
        # Other threads' registrations wait for the lock meanwhile (see HandleTable).
        outer = table.closer
        table.closer = get_ident()
        try:
            top.close_socket()
        except Exception as exc:
            error = contain(exc, "close")
        finally:
            try:
                if core.inflight:
                    self._abort_inflight()
                # Whatever the providers did, no handle this socket's levels
                # were admitted with survives.
                records = table._records
                level = top
                while True:
                    if level.handle in records:
                        table.discard(level.handle)
                    if level.level.is_base:
                        break
                    level = level.context.lower  # a LayerSocket's (adopt checked)
            finally:
                table.closer = outer
        return error

    def _abort_inflight(self) -> None:
        # The providers must have completed everything pending; whatever they
        # left is completed here, aborted, exactly once (SPI bug 9): pop()
        # hands each to one caller only.
        core = self._core
        pop = core.inflight.pop
        while True:
            try:
                ov = pop()
            except KeyError:
                return
            if not ov.pending:
                continue
            try:
                core.host._complete(core.top.handle, ov, WSAErrorCode.WSA_OPERATION_ABORTED, 0)
            except WSAError:
                pass  # completed meanwhile by a late provider: exactly once still holds

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- overlapped I/O -------------------------------------------------------------
    def _start(self, op: str, ov: Overlapped, routine: CompletionRoutine | None) -> Dispatch:
        top = self._dispatch()
        core = self._core
        if core.inflight is _NONE_INFLIGHT:  # made without WSA_FLAG_OVERLAPPED
            raise_wsa(
                WSAErrorCode.WSAEINVAL,
                f"{op}_overlapped() needs a socket created with WSA_FLAG_OVERLAPPED",
            )
        if not isinstance(ov, Overlapped):
            raise_wsa(
                WSAErrorCode.WSAEFAULT, f"overlapped must be a wspframe.Overlapped, got {ov!r}"
            )
        if routine is not None and not callable(routine):
            raise_wsa(WSAErrorCode.WSAEFAULT, f"routine must be callable, got {routine!r}")
        ov._start(op, routine)
        ov._finisher = self._finished
        ov._owner = self
        core.inflight.add(ov)
        return top

    def _not_started(self, ov: Overlapped, exc: Exception, op: str, **args: Any) -> NoReturn:
        self._core.inflight.discard(ov)
        ov.pending = False
        ov._finisher = None
        self._reraise(exc, op, **args)

    def _finished(self, ov: Overlapped) -> None:
        core = self._core
        core.inflight.discard(ov)
        if ov.op == "accept" and not ov.error:
            try:
                # adopt() closes the new context itself when it refuses its handle.
                new = core.top.level.adopt(ov.data)
                new_core = SocketCore(
                    core.host, new, core.entry, core.flags, core.af, core.type, core.proto
                )
                new_core.state = "connected"
                ov.data = core.host._adopt(Socket(new_core, new.handle))
            except Exception as exc:
                ov.data = None
                ov.error = contain(exc, "accept_overlapped").wsa_code

    def send_overlapped(
        self, data: Any, ov: Overlapped, flags: int = 0, routine: CompletionRoutine | None = None
    ) -> None:
        """``WSASend`` with an overlapped: returns at once; ``ov`` completes later
        (or already has) with the byte count sent."""
        top = self._start("send", ov, routine)
        try:
            top.send_overlapped(data, flags, ov)
        except Exception as exc:
            self._not_started(ov, exc, "send_overlapped", data=data)

    def recv_overlapped(
        self, bufsize: int, ov: Overlapped, flags: int = 0, routine: CompletionRoutine | None = None
    ) -> None:
        """``WSARecv`` with an overlapped: ``ov.data`` will hold the bytes received."""
        top = self._start("recv", ov, routine)
        try:
            top.recv_overlapped(bufsize, flags, ov)
        except Exception as exc:
            self._not_started(ov, exc, "recv_overlapped", bufsize=bufsize)

    def sendto_overlapped(
        self,
        data: Any,
        address: Any,
        ov: Overlapped,
        flags: int = 0,
        routine: CompletionRoutine | None = None,
    ) -> None:
        """``WSASendTo`` with an overlapped."""
        top = self._start("sendto", ov, routine)
        try:
            top.sendto_overlapped(data, flags, address, ov)
        except Exception as exc:
            self._not_started(ov, exc, "sendto_overlapped", data=data, address=address)

    def recvfrom_overlapped(
        self, bufsize: int, ov: Overlapped, flags: int = 0, routine: CompletionRoutine | None = None
    ) -> None:
        """``WSARecvFrom`` with an overlapped: ``ov.data`` and ``ov.address``."""
        top = self._start("recvfrom", ov, routine)
        try:
            top.recvfrom_overlapped(bufsize, flags, ov)
        except Exception as exc:
            self._not_started(ov, exc, "recvfrom_overlapped", bufsize=bufsize)

    def connect_overlapped(
        self, address: Any, ov: Overlapped, routine: CompletionRoutine | None = None
    ) -> None:
        """``ConnectEx``: connect without blocking; ``ov`` completes when connected."""
        top = self._start("connect", ov, routine)
        try:
            top.connect_overlapped(address, ov)
        except Exception as exc:
            self._not_started(ov, exc, "connect_overlapped", address=address)
        self._core.state = "connecting"

    def accept_overlapped(self, ov: Overlapped, routine: CompletionRoutine | None = None) -> None:
        """``AcceptEx``: ``ov.data`` will be the accepted :class:`Socket`,
        ``ov.address`` the peer's address."""
        top = self._start("accept", ov, routine)
        try:
            top.accept_overlapped(ov)
        except Exception as exc:
            self._not_started(ov, exc, "accept_overlapped")

    def ioctl_overlapped(
        self, code: int, arg: Any, ov: Overlapped, routine: CompletionRoutine | None = None
    ) -> None:
        """``WSAIoctl`` with an overlapped: ``ov.data`` will be the result."""
        top = self._start("ioctl", ov, routine)
        try:
            top.ioctl_overlapped(code, arg, ov)
        except Exception as exc:
            self._not_started(ov, exc, "ioctl_overlapped")

    def get_overlapped_result(self, ov: Overlapped, wait: bool = False) -> tuple[int, int]:
        """``WSAGetOverlappedResult``: ``(nbytes, flags)`` of a completed operation.

        Pending: WSA_IO_INCOMPLETE, unless ``wait``, which blocks until done.  A
        failed operation raises its error.
        """
        if not isinstance(ov, Overlapped):
            raise_wsa(
                WSAErrorCode.WSAEFAULT, f"overlapped must be a wspframe.Overlapped, got {ov!r}"
            )
        if ov.pending:
            if not wait:
                raise_wsa(WSAErrorCode.WSA_IO_INCOMPLETE, f"{ov!r} has not completed yet")
            ov.wait()
        if ov.error:
            raise wsa_error(ov.error, f"overlapped {ov.op} failed")
        return ov.nbytes, ov.flags

    def redirect(self) -> bool:
        """Make ``os.read``/``os.write``/``select`` on this socket's handle reach
        the chain, through the host's redirector (the cost the seed warns of).

        Returns False, doing nothing, for an IFS handle: it *is* the OS socket,
        so the OS calls work on it directly.  Once redirected, the handle owns
        the socket's data: do not mix in ``recv`` through this object.
        """
        top = self._dispatch()
        if top.level.ifs:
            return False
        core = self._core
        with core.host._table._lock:
            if core.redirected:
                return True
            core.redirected = True
        core.host._redirect(top)
        return True

    def _associate(self, port: CompletionPort, key: int) -> None:
        self._dispatch()
        self._core.host._ports[self._handle] = (port, key)

    def _dissociate(self, port: CompletionPort) -> None:
        ports = self._core.host._ports
        current = ports.get(self._handle)
        if current is not None and current[0] is port:
            del ports[self._handle]

    # -- names and options -----------------------------------------------------------
    def getsockname(self) -> Any:
        """The local address."""
        return self._call("getsockname")

    def getpeername(self) -> Any:
        """The peer's address (WSAENOTCONN when not connected)."""
        return self._call("getpeername")

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        """A socket option: an int, or bytes when ``buflen`` is given."""
        return self._call("getsockopt", level, optname, buflen)

    def setsockopt(self, level: int, optname: int, value: Any) -> None:
        """Set a socket option."""
        self._call("setsockopt", level, optname, value)

    def ioctl(self, code: int, arg: Any = 0) -> Any:
        """``WSAIoctl``: at least ``FIONBIO`` and ``FIONREAD``."""
        result = self._call("ioctl", code, arg)
        if code == FIONBIO:
            self._core.timeout = 0.0 if arg else None
        return result

    def settimeout(self, timeout: float | None) -> None:
        """``None`` blocks, 0 is non-blocking, otherwise raise WSAETIMEDOUT after ``timeout`` s."""
        if timeout is not None:
            if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0:
                raise_wsa(
                    WSAErrorCode.WSAEINVAL,
                    f"timeout must be None or a number >= 0, got {timeout!r}",
                )
            timeout = float(timeout)
        self._call("settimeout", timeout)
        self._core.timeout = timeout

    def gettimeout(self) -> float | None:
        """The timeout set by :meth:`settimeout` (None: blocking)."""
        return self._core.timeout

    def setblocking(self, flag: bool) -> None:
        """``setblocking(False)`` is ``settimeout(0)``; ``True`` is ``settimeout(None)``."""
        self.settimeout(None if flag else 0.0)

    def getblocking(self) -> bool:
        """Whether operations block (timeout not 0)."""
        return self._core.timeout != 0.0

    def duplicate(self) -> ProtocolInfo:
        """``WSADuplicateSocket``: a protocol info that ``host.socket(protocol_info=...)``
        turns into a new descriptor of this socket, once."""
        self._call("duplicate_socket")
        return self._core.host._share(self._core)

    # -- identity ------------------------------------------------------------------------
    def fileno(self) -> int:
        """The handle (a real OS descriptor), or -1 once closed."""
        return self._handle

    @property
    def handle(self) -> int:
        """The handle, as ``fileno()``."""
        return self._handle

    @property
    def family(self) -> int:
        return self._core.af

    @property
    def type(self) -> int:
        return self._core.type

    @property
    def proto(self) -> int:
        return self._core.proto

    @property
    def protocol_info(self) -> ProtocolInfo:
        """The catalog entry the socket was made from."""
        return self._core.entry

    @property
    def is_ifs(self) -> bool:
        """Whether the handle is the provider's own OS handle (``XP1_IFS_HANDLES``):
        only then are ``os.read``/``os.write`` on it free of the redirector's cost."""
        return self._core.top.level.ifs

    @property
    def closed(self) -> bool:
        return self._handle < 0

    @property
    def chain(self) -> tuple[str, ...]:
        """Provider names from the top of the chain to the base."""
        level = self._core.top.level
        names = []
        while level is not None:
            names.append(level.provider.name)
            level = level.below  # type: ignore[assignment]
        return tuple(names)

    @property
    def overlapped(self) -> bool:
        """Whether the socket was made with ``WSA_FLAG_OVERLAPPED``."""
        return bool(self._core.flags & 0x01)

    def __repr__(self) -> str:
        entry = self._core.entry
        state = "closed" if self._handle < 0 else self._core.state
        kind = "stream" if self._core.type == SOCK_STREAM else "dgram"
        return (
            f"<wspframe.Socket handle={self._handle} entry={entry.catalog_entry_id} "
            f"{entry.name!r} chain={entry.chain} {kind} {state}>"
        )
