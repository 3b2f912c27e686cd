"""The ``tcpip`` base provider: real OS sockets, IFS handles.

Each socket context *is* an OS socket (a :class:`socket.socket` subclass), so
a call through the provider is one Python frame over the C call; OS errors are
translated to :class:`~wspframe.WSAError` here, at the provider boundary.
"""

from __future__ import annotations

import errno
import os
import select as _select
import socket as _socket
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from ._constants import (
    FIONBIO,
    FIONREAD,
)
from ._engine import IMMEDIATE, READ, WRITE
from ._errors import WSAError, WSAErrorCode, contain, from_os_error, raise_wsa, wsa_error
from ._protocol import ProtocolInfo, ip_entries
from ._spi import ServiceProvider, resolve_triplet

__all__ = ["TcpipProvider", "TcpipSocket"]


_DONTWAIT: Final = getattr(_socket, "MSG_DONTWAIT", 0)
_NONBLOCK_TYPE: Final = getattr(_socket, "SOCK_NONBLOCK", 0)
_IN_PROGRESS: Final = (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK, errno.EAGAIN)
_T = TypeVar("_T")


def _fail(exc: Exception, op: str) -> WSAError:
    if isinstance(exc, OSError):
        return from_os_error(exc, op)
    if isinstance(exc, TypeError):
        err = wsa_error(WSAErrorCode.WSAEFAULT, f"{op}: {exc}")
    elif isinstance(exc, (ValueError, OverflowError)):
        err = wsa_error(WSAErrorCode.WSAEINVAL, f"{op}: {exc}")
    else:
        return contain(exc, op)
    err.__cause__ = exc
    return err


def _not_connected_or(exc: Exception, s: _socket.socket, op: str) -> WSAError:
    """EPIPE: Winsock says WSAENOTCONN on a socket that never connected."""
    try:
        s.getpeername()
    except OSError:
        err = wsa_error(WSAErrorCode.WSAENOTCONN, f"{op}: the socket is not connected")
        err.__cause__ = exc
        return err
    return _fail(exc, op)


class TcpipSocket(_socket.socket):
    """A tcpip socket context: the OS socket itself, plus its handle and entry.

    ``_twin`` is made on the first overlapped operation: a second socket
    object on a duplicate of the descriptor that CPython treats as
    non-blocking (it never polls before a call), through which the overlapped
    operations make their attempts.  It closes with the socket.
    """

    __slots__ = ("_twin", "handle", "protocol_info")

    handle: int
    protocol_info: ProtocolInfo
    _twin: _socket.socket | None

    def close(self) -> None:
        twin = getattr(self, "_twin", None)
        if twin is not None:
            self._twin = None
            twin.close()
        _socket.socket.close(self)

    def detach(self) -> int:
        _close_twin(self)
        return super().detach()


def _close_twin(s: TcpipSocket) -> None:
    twin = getattr(s, "_twin", None)
    if twin is not None:
        s._twin = None
        twin.close()


def _make_twin(s: TcpipSocket) -> _socket.socket:
    """A non-blocking (in CPython's view) socket object on a dup of ``s``'s fd.

    The open file description, and so its O_NONBLOCK flag, is shared with
    ``s``: the twin must not change it.  With SOCK_NONBLOCK in ``type`` CPython
    takes the twin as non-blocking without touching the flag.  Every attempt
    through the twin passes MSG_DONTWAIT, so it never blocks even when the
    description is blocking (``s`` has no timeout).
    """
    fd = os.dup(s.fileno())
    try:
        if _NONBLOCK_TYPE:
            return _socket.socket(s.family, s.type | _NONBLOCK_TYPE, s.proto, fd)
        # Elsewhere: create it, then restore the description's flag CPython may
        # have set from the default timeout (the twin relies on MSG_DONTWAIT).
        blocking = os.get_blocking(fd)
        twin = _socket.socket(s.family, s.type, s.proto, fd)
        twin.settimeout(None)
        os.set_blocking(fd, blocking)
        return twin
    except BaseException:
        os.close(fd)
        raise


def _without_blocking(fd: int, call: Callable[[], _T]) -> _T:
    """Run ``call`` (connect, accept: calls with no MSG_DONTWAIT) with the
    descriptor non-blocking, restoring a blocking one right after."""
    if not os.get_blocking(fd):
        return call()
    os.set_blocking(fd, False)
    try:
        return call()
    finally:
        os.set_blocking(fd, True)


class TcpipProvider(ServiceProvider):
    """TCP and UDP over IPv4 and IPv6 through the operating system's sockets.

    Handles are the OS sockets' descriptors, registered with
    ``modify_ifs_handle``: the entries set ``XP1_IFS_HANDLES``.  Overlapped
    operations run through the host's I/O engine (``upcalls.io_engine``), never
    blocking the caller whatever the socket's timeout.
    """

    name = "tcpip"
    description = "TCP/UDP over IPv4/IPv6 through the operating system (IFS handles)"
    protocols = ip_entries("tcpip", ifs=True)

    def startup(self, upcalls: Any) -> None:
        super().startup(upcalls)
        self._open: set[TcpipSocket] = set()
        self._lock = threading.Lock()

    def cleanup(self) -> None:
        # No lock around _open: add, discard and pop are each atomic, and
        # popping takes every leftover exactly once even while other threads
        # still open or close sockets.
        leftovers: list[TcpipSocket] = []
        pop = self._open.pop
        while True:
            try:
                leftovers.append(pop())
            except KeyError:
                break
        # Abort every pending operation first, then close: closing one socket
        # would otherwise complete its peer's pending receive with end of stream.
        engine = self.upcalls._engine
        if engine is not None:
            for s in leftovers:
                engine.cancel(s)
        for s in leftovers:
            try:
                self.upcalls.close_socket_handle(s.handle)
            except WSAError:
                pass  # the host already dropped it
            s.close()

    def _register(self, s: TcpipSocket, info: ProtocolInfo) -> TcpipSocket:
        s.protocol_info = info
        s._twin = None
        try:
            s.handle = self.upcalls.modify_ifs_handle(info.catalog_entry_id, s.fileno())
        except BaseException:
            s.close()
            raise
        self._open.add(s)
        return s

    # -- creation and close -------------------------------------------------------
    def socket(
        self,
        af: int,
        type: int,
        protocol: int,
        protocol_info: ProtocolInfo,
        group: int,
        flags: int,
    ) -> TcpipSocket:
        if (
            af == protocol_info.address_family
            and type == protocol_info.socket_type
            and (protocol == 0 or protocol == protocol_info.protocol)
        ):
            type_, protocol = type, protocol or protocol_info.protocol  # as resolve_triplet
        else:
            af, type_, protocol = resolve_triplet(af, type, protocol, protocol_info)
        try:
            s = TcpipSocket(af, type_, protocol)
        except OSError as exc:
            raise from_os_error(exc, "socket") from exc
        return self._register(s, protocol_info)

    def accept(self, s: TcpipSocket) -> tuple[TcpipSocket, Any]:
        try:
            fd, address = s._accept()  # type: ignore[attr-defined]
        except Exception as exc:
            raise _fail(exc, "accept") from exc
        new = TcpipSocket(s.family, s.type, s.proto, fileno=fd)
        new.setblocking(True)
        return self._register(new, s.protocol_info), address

    def close_socket(self, s: TcpipSocket) -> None:
        self._open.discard(s)
        try:
            # Pending overlapped operations complete (WSA_OPERATION_ABORTED)
            # while the handle is still registered.  No engine: none pending.
            engine = self.upcalls._engine
            if engine is not None:
                engine.cancel(s)
        finally:
            try:
                self.upcalls.close_socket_handle(s.handle)
            finally:
                s.close()

    # -- data ---------------------------------------------------------------------
    # The module functions below do the work: the chain binds them as methods
    # of the context (see context_function), the Socket API calls the OS
    # socket natively (see native).
    def send(self, s: TcpipSocket, data: Any, flags: int) -> int:
        return _send(s, data, flags)

    def recv(self, s: TcpipSocket, bufsize: int, flags: int) -> bytes:
        return _recv(s, bufsize, flags)

    def recv_into(self, s: TcpipSocket, buffer: Any, nbytes: int, flags: int) -> int:
        return _recv_into(s, buffer, nbytes, flags)

    def sendto(self, s: TcpipSocket, data: Any, flags: int, address: Any) -> int:
        return _sendto(s, data, flags, address)

    def recvfrom(self, s: TcpipSocket, bufsize: int, flags: int) -> tuple[bytes, Any]:
        return _recvfrom(s, bufsize, flags)

    def recvfrom_into(
        self, s: TcpipSocket, buffer: Any, nbytes: int, flags: int
    ) -> tuple[int, Any]:
        return _recvfrom_into(s, buffer, nbytes, flags)

    # The data operations above are the OS socket's own calls plus error
    # mapping: the Socket API may call those directly (see ServiceProvider.native).
    def native(self, op: str) -> Callable[..., Any] | None:
        entry = self._data(op)
        return None if entry is None else entry[1]

    def context_function(self, op: str) -> Callable[..., Any] | None:
        entry = self._data(op)
        return None if entry is None else entry[2]

    def _data(self, op: str) -> tuple[Any, Callable[..., Any] | None, Callable[..., Any]] | None:
        entry = _DATA.get(op)
        if entry is None or getattr(type(self), op) is not entry[0]:
            return None  # not ours, or a subclass changed the operation
        return entry

    def native_error(self, s: Any, op: str, exc: Exception) -> WSAError:
        if op == "send" and isinstance(exc, BrokenPipeError):
            return _not_connected_or(exc, s, op)
        return _fail(exc, op)

    # -- overlapped -----------------------------------------------------------------
    # Each operation hands the host's I/O engine an *attempt*: the call made once,
    # without blocking, through the socket's twin.  The engine tries it at once
    # and again whenever the socket is ready, in order per direction, and
    # completes it.  Errors raised here (before submitting) are bad arguments
    # and complete nothing.
    def _twin(self, s: TcpipSocket) -> _socket.socket:
        twin = s._twin
        if twin is None:
            with self._lock:
                twin = s._twin
                if twin is None:
                    try:
                        twin = s._twin = _make_twin(s)
                    except OSError as exc:
                        raise from_os_error(exc, "overlapped operation") from exc
        return twin

    def _sender(self, s: TcpipSocket, data: Any, flags: int, op: str) -> Callable[[], int]:
        """The attempt of a stream (or connected datagram) send: completes only
        once every byte is sent; a partial send keeps the rest for next time."""
        try:
            view = memoryview(data)
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
            total = view.nbytes
            send_flags = flags | _DONTWAIT
        except Exception as exc:
            raise _fail(exc, op) from exc
        send = self._twin(s).send

        def attempt() -> int:
            nonlocal view
            try:
                while True:
                    n = send(view, send_flags)
                    if n >= len(view):
                        return total
                    view = view[n:]
            except BrokenPipeError as exc:
                raise _not_connected_or(exc, s, op) from exc

        return attempt

    def send_overlapped(self, s: TcpipSocket, data: Any, flags: int, ov: Any) -> None:
        attempt = self._sender(s, data, flags, "send")
        self.upcalls.io_engine.submit(s.handle, s, WRITE, attempt, ov)

    def sendto_overlapped(
        self, s: TcpipSocket, data: Any, flags: int, address: Any, ov: Any
    ) -> None:
        if s.type == _socket.SOCK_STREAM:
            # Connection-oriented: the address is ignored, as for sendto.
            attempt = self._sender(s, data, flags, "sendto")
        else:
            try:
                view = memoryview(data)
                send_flags = flags | _DONTWAIT
            except Exception as exc:
                raise _fail(exc, "sendto") from exc
            sendto = self._twin(s).sendto

            def attempt() -> int:
                try:
                    return sendto(view, send_flags, address)
                except (TypeError, ValueError, OverflowError) as exc:
                    raise _fail(exc, "sendto") from exc

        self.upcalls.io_engine.submit(s.handle, s, WRITE, attempt, ov)

    def recv_overlapped(self, s: TcpipSocket, bufsize: int, flags: int, ov: Any) -> None:
        recv_flags = _recv_flags(bufsize, flags, "recv")
        recv = self._twin(s).recv
        if bufsize == 0:
            # A zero-byte receive completes when data (or the end) is there to read.
            def attempt() -> int:
                recv(1, recv_flags | _socket.MSG_PEEK)
                ov.data = b""
                return 0
        else:

            def attempt() -> int:
                data = ov.data = recv(bufsize, recv_flags)
                return len(data)

        self.upcalls.io_engine.submit(s.handle, s, READ, attempt, ov)

    def recvfrom_overlapped(self, s: TcpipSocket, bufsize: int, flags: int, ov: Any) -> None:
        recv_flags = _recv_flags(bufsize, flags, "recvfrom")
        recvfrom = self._twin(s).recvfrom

        def attempt() -> int:
            data, ov.address = recvfrom(bufsize, recv_flags)
            ov.data = data
            return len(data)

        self.upcalls.io_engine.submit(s.handle, s, READ, attempt, ov)

    def connect_overlapped(self, s: TcpipSocket, address: Any, ov: Any) -> None:
        twin = self._twin(s)
        fd = twin.fileno()  # shares the open file description (and its flags) with s
        started = False

        def attempt() -> int:
            nonlocal started
            if not started:
                started = True
                try:
                    err = _without_blocking(fd, lambda: twin.connect_ex(address))
                except (TypeError, ValueError, OverflowError) as exc:
                    raise _fail(exc, "connect") from exc
                if err in _IN_PROGRESS:
                    raise BlockingIOError(err, os.strerror(err))
            else:  # writable: connected, or failed
                err = twin.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
                if not err:
                    try:
                        twin.getpeername()
                    except OSError as exc:
                        if exc.errno != errno.ENOTCONN:
                            raise
                        raise BlockingIOError(errno.EINPROGRESS, "still connecting") from exc
            if err:
                raise OSError(err, os.strerror(err))
            return 0

        self.upcalls.io_engine.submit(s.handle, s, WRITE, attempt, ov)

    def accept_overlapped(self, s: TcpipSocket, ov: Any) -> None:
        twin = self._twin(s)
        fd = twin.fileno()
        accept = twin._accept  # type: ignore[attr-defined]

        def attempt() -> int:
            new_fd, address = _without_blocking(fd, accept)
            try:
                new = TcpipSocket(s.family, s.type, s.proto, fileno=new_fd)
            except BaseException:
                os.close(new_fd)
                raise
            new.setblocking(True)  # as accept(): a new socket starts blocking
            ov.data = self._register(new, s.protocol_info)
            ov.address = address
            return 0

        self.upcalls.io_engine.submit(s.handle, s, READ, attempt, ov)

    def ioctl_overlapped(self, s: TcpipSocket, code: int, arg: Any, ov: Any) -> None:
        if code not in (FIONBIO, FIONREAD):
            raise_wsa(
                WSAErrorCode.WSAEINVAL,
                f"unsupported ioctl code {code!r}; supported: FIONBIO, FIONREAD",
            )

        def attempt() -> int:
            ov.data = self.ioctl(s, code, arg)
            return 0

        self.upcalls.io_engine.submit(s.handle, s, IMMEDIATE, attempt, ov)

    # -- control ------------------------------------------------------------------
    def bind(self, s: TcpipSocket, address: Any) -> None:
        try:
            s.bind(address)
        except Exception as exc:
            raise _fail(exc, "bind") from exc

    def listen(self, s: TcpipSocket, backlog: int) -> None:
        try:
            s.listen(backlog)
        except Exception as exc:
            raise _fail(exc, "listen") from exc

    def connect(self, s: TcpipSocket, address: Any) -> None:
        try:
            s.connect(address)
        except Exception as exc:
            raise _fail(exc, "connect") from exc

    def shutdown(self, s: TcpipSocket, how: int) -> None:
        try:
            s.shutdown(how)
        except Exception as exc:
            raise _fail(exc, "shutdown") from exc

    def getsockname(self, s: TcpipSocket) -> Any:
        try:
            return s.getsockname()
        except Exception as exc:
            raise _fail(exc, "getsockname") from exc

    def getpeername(self, s: TcpipSocket) -> Any:
        try:
            return s.getpeername()
        except Exception as exc:
            raise _fail(exc, "getpeername") from exc

    def getsockopt(self, s: TcpipSocket, level: int, option: int, buflen: int | None) -> Any:
        try:
            if buflen is None:
                return s.getsockopt(level, option)
            return s.getsockopt(level, option, buflen)
        except Exception as exc:
            raise _fail(exc, "getsockopt") from exc

    def setsockopt(self, s: TcpipSocket, level: int, option: int, value: Any) -> None:
        try:
            s.setsockopt(level, option, value)
        except Exception as exc:
            raise _fail(exc, "setsockopt") from exc

    def settimeout(self, s: TcpipSocket, timeout: float | None) -> None:
        try:
            s.settimeout(timeout)
        except Exception as exc:
            raise _fail(exc, "settimeout") from exc

    def ioctl(self, s: TcpipSocket, code: int, arg: Any) -> Any:
        if code == FIONBIO:
            self.settimeout(s, 0.0 if arg else None)
            return 0
        if code == FIONREAD:
            return _fionread(s)
        raise_wsa(
            WSAErrorCode.WSAEINVAL,
            f"unsupported ioctl code {code:#x}; supported: FIONBIO, FIONREAD",
        )

    def select(
        self,
        readers: Sequence[TcpipSocket],
        writers: Sequence[TcpipSocket],
        errors: Sequence[TcpipSocket],
        timeout: float | None,
    ) -> tuple[list[TcpipSocket], list[TcpipSocket], list[TcpipSocket]]:
        poller = _select.poll()
        masks: dict[int, int] = {}
        by_fd: dict[int, TcpipSocket] = {}
        for group, mask in (
            (readers, _select.POLLIN),
            (writers, _select.POLLOUT),
            (errors, _select.POLLPRI),
        ):
            for s in group:
                fd = s.fileno()
                if fd < 0:
                    raise_wsa(WSAErrorCode.WSAENOTSOCK, f"{s!r} is closed")
                masks[fd] = masks.get(fd, 0) | mask
                by_fd[fd] = s
        for fd, mask in masks.items():
            poller.register(fd, mask)
        try:
            events = dict(poller.poll(None if timeout is None else timeout * 1000.0))
        except OSError as exc:
            raise from_os_error(exc, "select") from exc
        readable_bits = _select.POLLIN | _select.POLLHUP | _select.POLLERR
        r = [s for s in readers if events.get(s.fileno(), 0) & readable_bits]
        w = [s for s in writers if events.get(s.fileno(), 0) & (_select.POLLOUT | _select.POLLERR)]
        x = [s for s in errors if events.get(s.fileno(), 0) & _select.POLLPRI]
        return r, w, x


def _recv_flags(bufsize: object, flags: int, op: str) -> int:
    if not isinstance(bufsize, int) or bufsize < 0:
        raise_wsa(WSAErrorCode.WSAEINVAL, f"{op}: bufsize must be an int >= 0, got {bufsize!r}")
    try:
        return flags | _DONTWAIT
    except TypeError as exc:
        raise _fail(exc, op) from exc


def _fionread(s: TcpipSocket) -> int:
    try:
        import fcntl
        import termios

        raw = fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return int(struct.unpack("i", raw)[0])
    except ImportError:  # pragma: no cover - not POSIX
        raise_wsa(WSAErrorCode.WSAEOPNOTSUPP, "FIONREAD is not available on this platform")
    except OSError as exc:
        raise from_os_error(exc, "ioctl(FIONREAD)") from exc


# -- the data operations -------------------------------------------------------------------
def _send(s: TcpipSocket, data: Any, flags: int) -> int:
    try:
        return s.send(data, flags)
    except BrokenPipeError as exc:
        raise _not_connected_or(exc, s, "send") from exc
    except Exception as exc:
        raise _fail(exc, "send") from exc


def _recv(s: TcpipSocket, bufsize: int, flags: int) -> bytes:
    try:
        return s.recv(bufsize, flags)
    except Exception as exc:
        raise _fail(exc, "recv") from exc


def _recv_into(s: TcpipSocket, buffer: Any, nbytes: int, flags: int) -> int:
    try:
        return s.recv_into(buffer, nbytes, flags)
    except Exception as exc:
        raise _fail(exc, "recv_into") from exc


def _sendto(s: TcpipSocket, data: Any, flags: int, address: Any) -> int:
    try:
        if s.type == _socket.SOCK_STREAM:
            # Connection-oriented: the address is ignored, as for send.
            try:
                s.getpeername()
            except OSError:
                raise_wsa(
                    WSAErrorCode.WSAENOTCONN, "sendto on a stream socket that is not connected"
                )
            return s.send(data, flags)
        return s.sendto(data, flags, address)
    except WSAError:
        raise
    except Exception as exc:
        raise _fail(exc, "sendto") from exc


def _recvfrom(s: TcpipSocket, bufsize: int, flags: int) -> tuple[bytes, Any]:
    try:
        return s.recvfrom(bufsize, flags)
    except Exception as exc:
        raise _fail(exc, "recvfrom") from exc


def _recvfrom_into(s: TcpipSocket, buffer: Any, nbytes: int, flags: int) -> tuple[int, Any]:
    try:
        return s.recvfrom_into(buffer, nbytes, flags)
    except Exception as exc:
        raise _fail(exc, "recvfrom_into") from exc


#: Per data operation: the provider method, the OS socket's C method it is
#: equivalent to (failures aside; None: none is), and the function doing it
#: with failures mapped.
_DATA: Final[
    dict[str, tuple[Callable[..., Any], Callable[..., Any] | None, Callable[..., Any]]]
] = {
    "send": (TcpipProvider.send, _socket.socket.send, _send),
    "recv": (TcpipProvider.recv, _socket.socket.recv, _recv),
    "recv_into": (TcpipProvider.recv_into, _socket.socket.recv_into, _recv_into),
    "sendto": (TcpipProvider.sendto, None, _sendto),  # a stream's sendto is send
    "recvfrom": (TcpipProvider.recvfrom, _socket.socket.recvfrom, _recvfrom),
    "recvfrom_into": (TcpipProvider.recvfrom_into, _socket.socket.recvfrom_into, _recvfrom_into),
}
