"""``WSAError`` and the Winsock error codes.

Theory of operation: every failure that leaves wspframe is a :class:`WSAError`
(an :class:`OSError`).  Each Winsock code has one subclass, which is also the
matching builtin where Python has one, so ``except ConnectionResetError`` and
``except TimeoutError`` keep working.  ``errno`` holds the POSIX equivalent
where there is one; ``wsa_code`` and ``wsa_name`` hold Winsock's.

Providers raise with :func:`wsa_error`; OS errors are translated at the
provider boundary with :func:`from_os_error`; anything else a provider lets
escape becomes ``WSASYSCALLFAILURE`` through :func:`contain`.
"""

from __future__ import annotations

import enum
import errno as _errno
import sys
import traceback
from typing import Final, NoReturn

__all__ = [
    "WSAError",
    "WSAErrorCode",
    "contain",
    "from_os_error",
    "raise_wsa",
    "report_unraisable",
    "wsa_error",
]


class WSAErrorCode(enum.IntEnum):
    """Winsock error numbers."""

    WSA_INVALID_HANDLE = 6
    WSA_NOT_ENOUGH_MEMORY = 8
    WSA_INVALID_PARAMETER = 87
    WAIT_TIMEOUT = 258
    WSA_OPERATION_ABORTED = 995
    WSA_IO_INCOMPLETE = 996
    WSA_IO_PENDING = 997
    WSAEINTR = 10004
    WSAEACCES = 10013
    WSAEFAULT = 10014
    WSAEINVAL = 10022
    WSAEMFILE = 10024
    WSAEWOULDBLOCK = 10035
    WSAEINPROGRESS = 10036
    WSAEALREADY = 10037
    WSAENOTSOCK = 10038
    WSAEDESTADDRREQ = 10039
    WSAEMSGSIZE = 10040
    WSAEPROTOTYPE = 10041
    WSAENOPROTOOPT = 10042
    WSAEPROTONOSUPPORT = 10043
    WSAESOCKTNOSUPPORT = 10044
    WSAEOPNOTSUPP = 10045
    WSAEAFNOSUPPORT = 10047
    WSAEADDRINUSE = 10048
    WSAEADDRNOTAVAIL = 10049
    WSAENETDOWN = 10050
    WSAENETUNREACH = 10051
    WSAECONNABORTED = 10053
    WSAECONNRESET = 10054
    WSAENOBUFS = 10055
    WSAEISCONN = 10056
    WSAENOTCONN = 10057
    WSAESHUTDOWN = 10058
    WSAETIMEDOUT = 10060
    WSAECONNREFUSED = 10061
    WSAEHOSTUNREACH = 10065
    WSASYSNOTREADY = 10091
    WSAVERNOTSUPPORTED = 10092
    WSANOTINITIALISED = 10093
    WSAEINVALIDPROCTABLE = 10104
    WSAEINVALIDPROVIDER = 10105
    WSAEPROVIDERFAILEDINIT = 10106
    WSASYSCALLFAILURE = 10107
    WSANO_RECOVERY = 11003


_C = WSAErrorCode


class WSAError(OSError):
    """A Winsock error: an :class:`OSError` carrying ``wsa_code`` and ``wsa_name``.

    Construct one with :func:`wsa_error` (or ``WSAError(code, message)``, which
    returns the subclass for ``code``).
    """

    wsa_code: int = int(_C.WSASYSCALLFAILURE)
    #: POSIX errno equivalent, or None.
    posix_errno: int | None = None

    def __new__(cls, code: int | None = None, message: str = "") -> WSAError:
        if cls is WSAError and code is not None:
            cls = _CLASS_BY_CODE.get(int(code), WSAError)
        wsa = cls.wsa_code if code is None else int(code)
        self = super().__new__(cls, cls.posix_errno, message or _DESCRIPTIONS.get(wsa, "error"))
        self.wsa_code = wsa
        return self

    def __init__(self, code: int | None = None, message: str = "") -> None:
        # Arguments are taken by __new__ (OSError parses them there).
        pass

    @property
    def wsa_name(self) -> str:
        """The code's Winsock name, e.g. ``"WSAECONNRESET"``."""
        try:
            return WSAErrorCode(self.wsa_code).name
        except ValueError:
            return f"WSA error {self.wsa_code}"

    def __str__(self) -> str:
        return f"[{self.wsa_name} {self.wsa_code}] {self.strerror}"

    def __reduce__(self) -> tuple[object, ...]:
        return (wsa_error, (self.wsa_code, self.strerror or ""))


# code, class name, builtin base (or None), POSIX errno (or None), description
_TABLE: Final[list[tuple[WSAErrorCode, str, type[OSError] | None, int | None, str]]] = [
    (_C.WSA_INVALID_HANDLE, "WSAInvalidHandleError", None, _errno.EBADF, "invalid handle"),
    (_C.WSA_NOT_ENOUGH_MEMORY, "WSANotEnoughMemoryError", None, _errno.ENOMEM, "not enough memory"),
    (_C.WSA_INVALID_PARAMETER, "WSAInvalidParameterError", None, _errno.EINVAL, "invalid parameter"),
    (_C.WAIT_TIMEOUT, "WSAWaitTimeoutError", TimeoutError, _errno.ETIMEDOUT, "wait timed out"),
    (_C.WSA_OPERATION_ABORTED, "WSAOperationAbortedError", None, _errno.ECANCELED,
     "overlapped operation aborted"),
    (_C.WSA_IO_INCOMPLETE, "WSAIOIncompleteError", None, None,
     "overlapped I/O event object not in signaled state"),
    (_C.WSA_IO_PENDING, "WSAIOPendingError", None, None, "overlapped operations will complete later"),
    (_C.WSAEINTR, "WSAInterruptedError", InterruptedError, _errno.EINTR, "interrupted function call"),
    (_C.WSAEACCES, "WSAPermissionError", PermissionError, _errno.EACCES, "permission denied"),
    (_C.WSAEFAULT, "WSABadAddressError", None, _errno.EFAULT, "bad address"),
    (_C.WSAEINVAL, "WSAInvalidArgumentError", None, _errno.EINVAL, "invalid argument"),
    (_C.WSAEMFILE, "WSATooManySocketsError", None, _errno.EMFILE, "too many open sockets"),
    (_C.WSAEWOULDBLOCK, "WSAWouldBlockError", BlockingIOError, _errno.EWOULDBLOCK,
     "resource temporarily unavailable"),
    (_C.WSAEINPROGRESS, "WSAInProgressError", None, _errno.EINPROGRESS, "operation now in progress"),
    (_C.WSAEALREADY, "WSAAlreadyError", None, _errno.EALREADY, "operation already in progress"),
    (_C.WSAENOTSOCK, "WSANotSocketError", None, _errno.ENOTSOCK, "socket operation on nonsocket"),
    (_C.WSAEDESTADDRREQ, "WSADestinationRequiredError", None, _errno.EDESTADDRREQ,
     "destination address required"),
    (_C.WSAEMSGSIZE, "WSAMessageTooLongError", None, _errno.EMSGSIZE, "message too long"),
    (_C.WSAEPROTOTYPE, "WSAWrongProtocolTypeError", None, _errno.EPROTOTYPE,
     "protocol wrong type for socket"),
    (_C.WSAENOPROTOOPT, "WSABadProtocolOptionError", None, _errno.ENOPROTOOPT,
     "bad protocol option"),
    (_C.WSAEPROTONOSUPPORT, "WSAProtocolNotSupportedError", None, _errno.EPROTONOSUPPORT,
     "protocol not supported"),
    (_C.WSAESOCKTNOSUPPORT, "WSASocketTypeNotSupportedError", None, _errno.ESOCKTNOSUPPORT,
     "socket type not supported"),
    (_C.WSAEOPNOTSUPP, "WSAOperationNotSupportedError", None, _errno.EOPNOTSUPP,
     "operation not supported"),
    (_C.WSAEAFNOSUPPORT, "WSAAddressFamilyNotSupportedError", None, _errno.EAFNOSUPPORT,
     "address family not supported by protocol family"),
    (_C.WSAEADDRINUSE, "WSAAddressInUseError", None, _errno.EADDRINUSE, "address already in use"),
    (_C.WSAEADDRNOTAVAIL, "WSAAddressNotAvailableError", None, _errno.EADDRNOTAVAIL,
     "cannot assign requested address"),
    (_C.WSAENETDOWN, "WSANetworkDownError", None, _errno.ENETDOWN, "network is down"),
    (_C.WSAENETUNREACH, "WSANetworkUnreachableError", None, _errno.ENETUNREACH,
     "network is unreachable"),
    (_C.WSAECONNABORTED, "WSAConnectionAbortedError", ConnectionAbortedError, _errno.ECONNABORTED,
     "software caused connection abort"),
    (_C.WSAECONNRESET, "WSAConnectionResetError", ConnectionResetError, _errno.ECONNRESET,
     "connection reset by peer"),
    (_C.WSAENOBUFS, "WSANoBufferSpaceError", None, _errno.ENOBUFS, "no buffer space available"),
    (_C.WSAEISCONN, "WSAIsConnectedError", None, _errno.EISCONN, "socket is already connected"),
    (_C.WSAENOTCONN, "WSANotConnectedError", None, _errno.ENOTCONN, "socket is not connected"),
    (_C.WSAESHUTDOWN, "WSAShutdownError", BrokenPipeError, _errno.ESHUTDOWN,
     "cannot send after socket shutdown"),
    (_C.WSAETIMEDOUT, "WSATimedOutError", TimeoutError, _errno.ETIMEDOUT, "connection timed out"),
    (_C.WSAECONNREFUSED, "WSAConnectionRefusedError", ConnectionRefusedError, _errno.ECONNREFUSED,
     "connection refused"),
    (_C.WSAEHOSTUNREACH, "WSAHostUnreachableError", None, _errno.EHOSTUNREACH, "no route to host"),
    (_C.WSASYSNOTREADY, "WSASysNotReadyError", None, None, "network subsystem is unavailable"),
    (_C.WSAVERNOTSUPPORTED, "WSAVersionNotSupportedError", None, None,
     "requested version out of range"),
    (_C.WSANOTINITIALISED, "WSANotInitialisedError", None, None,
     "successful startup not yet performed"),
    (_C.WSAEINVALIDPROCTABLE, "WSAInvalidProcTableError", None, None,
     "invalid procedure table from service provider"),
    (_C.WSAEINVALIDPROVIDER, "WSAInvalidProviderError", None, None, "invalid service provider"),
    (_C.WSAEPROVIDERFAILEDINIT, "WSAProviderFailedInitError", None, None,
     "unable to initialize a service provider"),
    (_C.WSASYSCALLFAILURE, "WSASystemCallFailureError", None, None, "system call failure"),
    (_C.WSANO_RECOVERY, "WSANoRecoveryError", None, None, "this is a nonrecoverable error"),
]  # fmt: skip

WSAError.__module__ = "wspframe"

_DESCRIPTIONS: Final[dict[int, str]] = {int(row[0]): row[4] for row in _TABLE}
_CLASS_BY_CODE: dict[int, type[WSAError]] = {}
_BY_POSIX: dict[int, int] = {}

for _code, _name, _builtin, _posix, _ in _TABLE:
    _bases: tuple[type, ...] = (WSAError,) if _builtin is None else (WSAError, _builtin)
    _cls = type(
        _name,
        _bases,
        {
            "__doc__": f"{_code.name} ({int(_code)}): {_DESCRIPTIONS[int(_code)]}.",
            "__module__": "wspframe",
            "wsa_code": int(_code),
            "posix_errno": _posix,
        },
    )
    _CLASS_BY_CODE[int(_code)] = _cls
    if _posix is not None and _code >= 10000:
        _BY_POSIX.setdefault(_posix, int(_code))
_BY_POSIX[_errno.EAGAIN] = int(_C.WSAEWOULDBLOCK)
_BY_POSIX[_errno.EPIPE] = int(_C.WSAESHUTDOWN)
_BY_POSIX[_errno.EBADF] = int(_C.WSAENOTSOCK)
_BY_POSIX[_errno.EPERM] = int(_C.WSAEACCES)
_BY_POSIX[_errno.ENOMEM] = int(_C.WSAENOBUFS)


def error_class(code: int) -> type[WSAError]:
    """The :class:`WSAError` subclass for ``code`` (``WSAError`` itself if unknown)."""
    return _CLASS_BY_CODE.get(int(code), WSAError)


def error_classes() -> dict[str, type[WSAError]]:
    """Every :class:`WSAError` subclass by class name."""
    return {cls.__name__: cls for cls in _CLASS_BY_CODE.values()}


def wsa_error(code: int, message: str = "") -> WSAError:
    """Build the :class:`WSAError` subclass for Winsock ``code``."""
    return error_class(code)(int(code), message)


def raise_wsa(code: int, message: str = "") -> NoReturn:
    """Raise :func:`wsa_error` ``(code, message)``."""
    raise wsa_error(code, message)


def from_os_error(exc: OSError, context: str = "") -> WSAError:
    """Translate an :class:`OSError` from the OS into the matching :class:`WSAError`."""
    if isinstance(exc, WSAError):
        return exc
    if exc.errno is not None:
        code = _BY_POSIX.get(exc.errno, int(_C.WSASYSCALLFAILURE))
    elif isinstance(exc, TimeoutError):
        code = int(_C.WSAETIMEDOUT)
    elif isinstance(exc, BlockingIOError):
        code = int(_C.WSAEWOULDBLOCK)
    else:
        code = int(_C.WSASYSCALLFAILURE)
    text = exc.strerror or str(exc) or _DESCRIPTIONS[code]
    err = wsa_error(code, f"{context}: {text}" if context else text)
    err.__cause__ = exc
    return err


def contain(exc: BaseException, where: str = "") -> WSAError:
    """Turn anything a provider let escape into a :class:`WSAError`.

    A ``WSAError`` passes unchanged; an ``OSError`` is translated; any other
    exception is a failure reported with no error code and becomes
    ``WSASYSCALLFAILURE`` (SPI rule A12), chained to the original.
    """
    if isinstance(exc, WSAError):
        return exc
    if isinstance(exc, OSError):
        return from_os_error(exc, where)
    err = wsa_error(
        _C.WSASYSCALLFAILURE,
        f"{where + ': ' if where else ''}provider raised {type(exc).__name__}: {exc}",
    )
    err.__cause__ = exc
    return err


class _Unraisable:
    """What :data:`sys.unraisablehook` reads."""

    __slots__ = ("err_msg", "exc_traceback", "exc_type", "exc_value", "object")

    def __init__(self, exc: BaseException, what: str, obj: object) -> None:
        self.exc_type = type(exc)
        self.exc_value = exc
        self.exc_traceback = exc.__traceback__
        self.err_msg = what
        self.object = obj


def report_unraisable(exc: BaseException, what: str, obj: object) -> None:
    """A failure with nobody to tell (a completion callback raised in a provider's
    or the engine's thread): :data:`sys.unraisablehook`, or a plain traceback on
    stderr when the hook insists on its own argument type."""
    try:
        sys.unraisablehook(_Unraisable(exc, what, obj))  # type: ignore[arg-type]
    except TypeError:
        print(f"{what}:", file=sys.stderr)
        traceback.print_exception(exc, file=sys.stderr)
