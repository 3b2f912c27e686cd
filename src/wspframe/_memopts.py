"""The ``memory`` provider's socket options and modes.

See ``wspframe._memory`` for the model.  :class:`MemoryOptions` is the part
of :class:`~wspframe._memory.MemoryProvider` with ``getsockopt``,
``setsockopt``, ``ioctl`` (and ``ioctl_overlapped``) and ``settimeout``.

An option is a plain attribute of the :class:`~wspframe._memsock.MemorySocket`
that the rest of the provider reads; only SO_RCVBUF acts at once (more room
lets the peer's queued sends in).  Accepted sockets inherit the listener's
SO_RCVBUF, SO_SNDBUF, SO_REUSEADDR, SO_KEEPALIVE and TCP_NODELAY.
"""

from __future__ import annotations

import math
import socket as _socket
import struct
from typing import Any, Final

from ._constants import FIONBIO, FIONREAD, IoctlCode
from ._errors import WSAError, WSAErrorCode, raise_wsa
from ._membase import MemoryProviderBase
from ._memsock import CONNECTED, OTHER, MemorySocket

__all__ = ["MemoryOptions"]

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


class MemoryOptions(MemoryProviderBase):
    """The option and mode operations of :class:`~wspframe._memory.MemoryProvider`."""

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

    def settimeout(self, s: MemorySocket, timeout: float | None) -> None:
        """``None`` blocks, 0.0 is non-blocking, more waits that long at most."""
        if timeout is not None:
            if not isinstance(timeout, (int, float)) or math.isnan(timeout) or timeout < 0:
                raise_wsa(_E.WSAEINVAL, f"timeout must be None or a number >= 0, got {timeout!r}")
            timeout = float(timeout)
        with self.network._guard:
            self._check(s)
            s.timeout = timeout
