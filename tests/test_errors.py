from __future__ import annotations

import errno
import pickle

import pytest

import wspframe
from wspframe import WSAError, WSAErrorCode
from wspframe._errors import contain, from_os_error

BUILTINS = {
    "WSAECONNRESET": ConnectionResetError,
    "WSAECONNREFUSED": ConnectionRefusedError,
    "WSAECONNABORTED": ConnectionAbortedError,
    "WSAETIMEDOUT": TimeoutError,
    "WAIT_TIMEOUT": TimeoutError,
    "WSAEWOULDBLOCK": BlockingIOError,
    "WSAEINTR": InterruptedError,
    "WSAESHUTDOWN": BrokenPipeError,
}

SEED_CODES = {  # the seeds' WSPSocket / WPUCreateSocketHandle error tables
    "WSAENETDOWN": 10050,
    "WSAEAFNOSUPPORT": 10047,
    "WSAEINPROGRESS": 10036,
    "WSAEMFILE": 10024,
    "WSAENOBUFS": 10055,
    "WSAEPROTONOSUPPORT": 10043,
    "WSAEPROTOTYPE": 10041,
    "WSAESOCKTNOSUPPORT": 10044,
    "WSAEINVAL": 10022,
}


@pytest.mark.parametrize(("name", "number"), sorted(SEED_CODES.items()))
def test_seed_codes_have_winsock_numbers(name: str, number: int) -> None:
    assert getattr(wspframe, name) == number
    assert WSAErrorCode[name] == number


@pytest.mark.parametrize("code", list(WSAErrorCode), ids=lambda c: c.name)
def test_every_code_has_its_own_subclass(code: WSAErrorCode) -> None:
    err = wspframe.wsa_error(code, "boom")
    assert isinstance(err, WSAError)
    assert isinstance(err, OSError)
    assert type(err) is not WSAError
    assert err.wsa_code == code
    assert err.wsa_name == code.name
    assert str(err) == f"[{code.name} {int(code)}] boom"
    assert WSAError(code, "x").__class__ is type(err)
    assert pickle.loads(pickle.dumps(err)).wsa_code == code


@pytest.mark.parametrize(("name", "builtin"), sorted(BUILTINS.items()))
def test_subclasses_are_the_matching_builtins(name: str, builtin: type[OSError]) -> None:
    err = wspframe.wsa_error(WSAErrorCode[name])
    assert isinstance(err, builtin)
    with pytest.raises(builtin):
        raise err


def test_posix_errno_is_set_where_there_is_one() -> None:
    assert wspframe.wsa_error(WSAErrorCode.WSAECONNRESET).errno == errno.ECONNRESET
    assert wspframe.wsa_error(WSAErrorCode.WSAEINVAL).errno == errno.EINVAL
    assert wspframe.wsa_error(WSAErrorCode.WSANOTINITIALISED).errno is None


def test_default_message_describes_the_code() -> None:
    assert "connection refused" in str(wspframe.wsa_error(WSAErrorCode.WSAECONNREFUSED))


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), WSAErrorCode.WSAECONNREFUSED),
        (ConnectionResetError(errno.ECONNRESET, "reset"), WSAErrorCode.WSAECONNRESET),
        (OSError(errno.EADDRINUSE, "in use"), WSAErrorCode.WSAEADDRINUSE),
        (OSError(errno.EMFILE, "too many"), WSAErrorCode.WSAEMFILE),
        (BlockingIOError(errno.EAGAIN, "again"), WSAErrorCode.WSAEWOULDBLOCK),
        (OSError(errno.ENOTCONN, "not connected"), WSAErrorCode.WSAENOTCONN),
        (TimeoutError("timed out"), WSAErrorCode.WSAETIMEDOUT),
        (OSError(errno.ENOEXEC, "odd"), WSAErrorCode.WSASYSCALLFAILURE),
    ],
)
def test_os_errors_translate(exc: OSError, code: WSAErrorCode) -> None:
    err = from_os_error(exc, "op")
    assert err.wsa_code == code
    assert err.__cause__ is exc
    assert str(err).startswith(f"[{code.name}")


def test_contain_turns_any_exception_into_syscall_failure() -> None:
    original = ZeroDivisionError("division by zero")
    err = contain(original, "layer.send")
    assert err.wsa_code == WSAErrorCode.WSASYSCALLFAILURE
    assert "ZeroDivisionError" in str(err)
    assert err.__cause__ is original
    same = wspframe.wsa_error(WSAErrorCode.WSAEINVAL)
    assert contain(same) is same
