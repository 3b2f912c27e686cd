"""The faults layer's options: parsing, validation, and the :class:`Toxics` value.

Options arrive as strings from a chain spec (``faults[latency=20ms,jitter=5ms]``)
or as Python values from :meth:`FaultsLayer.set` (``set(latency="20ms")`` or
``set(latency=0.02)``).  Each is checked here, once, and a bad one is a
``ValueError`` naming the option, the value and the accepted form; the host
turns it into a :class:`~wspframe.ChainSpecError` when the chain is built.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from wspframe import WSAErrorCode

__all__ = ["FAIL_OPERATIONS", "OPTIONS", "FailRule", "Toxics", "parse_options"]

#: Operations that ``fail=OP:...`` may name (``recv`` also covers ``recv_into``
#: and ``recv_overlapped``, and so on).
FAIL_OPERATIONS: Final = (
    "socket",
    "bind",
    "listen",
    "accept",
    "connect",
    "send",
    "sendto",
    "recv",
    "recvfrom",
    "shutdown",
    "getsockname",
    "getpeername",
    "getsockopt",
    "setsockopt",
    "ioctl",
    "settimeout",
    "duplicate_socket",
)

_NUMBER: Final = r"(\d+(?:\.\d*)?|\.\d+)"
_DURATION_RE: Final = re.compile(_NUMBER + r"\s*(us|µs|ms|s)")
_SIZE_RE: Final = re.compile(r"(\d+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?")
_RATE_RE: Final = re.compile(_NUMBER + r"\s*(B|KB|MB|GB|KiB|MiB|GiB)/s")
_PROBABILITY_RE: Final = re.compile(_NUMBER + r"\s*(%?)")
_SECONDS: Final = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
_BYTES: Final = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}

DURATION_FORM: Final = "a duration such as 20ms, 1.5s or 500us (0 for none)"
SIZE_FORM: Final = "a size in bytes such as 1500, 64KB or 1MiB"
RATE_FORM: Final = "a rate such as 100KB/s, 1.5MB/s or 512KiB/s"
PROBABILITY_FORM: Final = "a probability from 0 to 1 such as 0.05, or a percentage such as 5%"
FAIL_FORM: Final = (
    "OP:WSAEXXX[:PROBABILITY], several separated by ';' "
    "(e.g. connect:WSAECONNREFUSED:0.5;send:WSAENOBUFS)"
)
NETDOWN_FORM: Final = (
    "a duration (down from when it takes effect) or START..END (e.g. 2s or 1s..3s)"
)
DIRECTION_FORM: Final = "up (what a socket sends), down (what it receives) or both"
SEED_FORM: Final = "an integer >= 0"


def _bad(option: str, value: object, form: str) -> ValueError:
    return ValueError(f"{option} must be {form}, got {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def duration(option: str, value: object) -> float:
    """Seconds from ``20ms``/``1.5s``/``500us``/``0`` (or a number of seconds)."""
    if _is_number(value):
        seconds = float(value)  # type: ignore[arg-type]
    elif isinstance(value, str):
        text = value.strip()
        match = _DURATION_RE.fullmatch(text)
        if text == "0":
            seconds = 0.0
        elif match is None:
            raise _bad(option, value, DURATION_FORM)
        else:
            seconds = float(match[1]) * _SECONDS[match[2]]
    else:
        raise _bad(option, value, DURATION_FORM)
    if not seconds >= 0 or seconds == float("inf"):
        raise _bad(option, value, DURATION_FORM)
    return seconds


def size(option: str, value: object) -> int:
    """Bytes from ``1500``/``64KB``/``1MiB`` (or an int)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        match = _SIZE_RE.fullmatch(value.strip())
        if match is None:
            raise _bad(option, value, SIZE_FORM)
        number = int(match[1]) * _BYTES[match[2]]
    else:
        raise _bad(option, value, SIZE_FORM)
    if number < 0:
        raise _bad(option, value, SIZE_FORM)
    return number


def rate(option: str, value: object) -> float:
    """Bytes per second from ``100KB/s``/``1.5MB/s`` (or a number of bytes per second)."""
    if _is_number(value):
        number = float(value)  # type: ignore[arg-type]
    elif isinstance(value, str):
        match = _RATE_RE.fullmatch(value.strip())
        if match is None:
            raise _bad(option, value, RATE_FORM)
        number = float(match[1]) * _BYTES[match[2]]
    else:
        raise _bad(option, value, RATE_FORM)
    if not number > 0 or number == float("inf"):
        raise _bad(option, value, RATE_FORM)
    return number


def probability(option: str, value: object) -> float:
    """A probability from ``0.05`` or ``5%`` (or a number from 0 to 1)."""
    if _is_number(value):
        p = float(value)  # type: ignore[arg-type]
    elif isinstance(value, str):
        match = _PROBABILITY_RE.fullmatch(value.strip())
        if match is None:
            raise _bad(option, value, PROBABILITY_FORM)
        p = float(match[1]) / (100.0 if match[2] else 1.0)
    else:
        raise _bad(option, value, PROBABILITY_FORM)
    if not 0.0 <= p <= 1.0:
        raise _bad(option, value, PROBABILITY_FORM)
    return p


@dataclasses.dataclass(frozen=True, slots=True)
class FailRule:
    """``fail=OP:CODE:PROBABILITY``: ``op`` fails with ``code`` that often."""

    op: str
    code: WSAErrorCode
    probability: float = 1.0

    def __str__(self) -> str:
        return f"{self.op}:{self.code.name}:{_number(self.probability)}"


def fail_rules(option: str, value: object) -> tuple[FailRule, ...]:
    if isinstance(value, FailRule):
        return (value,)
    if not isinstance(value, str) or not value.strip():
        raise _bad(option, value, FAIL_FORM)
    rules = []
    for item in value.split(";"):
        parts = [p.strip() for p in item.split(":")]
        if len(parts) not in (2, 3) or parts[0] not in FAIL_OPERATIONS:
            raise ValueError(
                f"{option} must be {FAIL_FORM}, with OP one of {', '.join(FAIL_OPERATIONS)}; "
                f"got {item.strip()!r} in {value!r}"
            )
        code = WSAErrorCode.__members__.get(parts[1].upper())
        if code is None and parts[1].isdigit() and int(parts[1]) in _CODES:
            code = WSAErrorCode(int(parts[1]))
        if code is None:
            raise ValueError(
                f"{option} must be {FAIL_FORM}, with a Winsock error name such as "
                f"WSAECONNREFUSED; got {parts[1]!r} in {value!r}"
            )
        p = probability(option, parts[2]) if len(parts) == 3 else 1.0
        rules.append(FailRule(parts[0], code, p))
    return tuple(rules)


_CODES: Final = frozenset(int(c) for c in WSAErrorCode)


def netdown(option: str, value: object) -> tuple[float, float]:
    """``(start, end)`` offsets in seconds from ``2s`` or ``1s..3s``."""
    if isinstance(value, tuple) and len(value) == 2:
        start, end = duration(option, value[0]), duration(option, value[1])
    elif isinstance(value, str) and ".." in value:
        first, _, second = value.partition("..")
        try:
            start, end = duration(option, first), duration(option, second)
        except ValueError:
            raise _bad(option, value, NETDOWN_FORM) from None
    else:
        try:
            start, end = 0.0, duration(option, value)
        except ValueError:
            raise _bad(option, value, NETDOWN_FORM) from None
    if end <= start:
        raise ValueError(f"{option} must end after it starts ({NETDOWN_FORM}), got {value!r}")
    return start, end


def direction(option: str, value: object) -> str:
    if value not in ("up", "down", "both"):
        raise _bad(option, value, DIRECTION_FORM)
    return str(value)


def seed(option: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise _bad(option, value, SEED_FORM)


def limit(option: str, value: object) -> int:
    return size(option, value)


#: Every option: its parser and the form it accepts (for messages and docs).
OPTIONS: Final[Mapping[str, tuple[Callable[[str, object], Any], str]]] = {
    "latency": (duration, DURATION_FORM),
    "jitter": (duration, DURATION_FORM),
    "bandwidth": (rate, RATE_FORM),
    "slice": (size, SIZE_FORM),
    "slice_variation": (size, SIZE_FORM),
    "slice_delay": (duration, DURATION_FORM),
    "limit": (limit, SIZE_FORM),
    "reset_after": (duration, DURATION_FORM),
    "timeout": (duration, DURATION_FORM),
    "slow_close": (duration, DURATION_FORM),
    "drop": (probability, PROBABILITY_FORM),
    "duplicate": (probability, PROBABILITY_FORM),
    "reorder": (probability, PROBABILITY_FORM),
    "corrupt": (probability, PROBABILITY_FORM),
    "fail": (fail_rules, FAIL_FORM),
    "netdown": (netdown, NETDOWN_FORM),
    "toxicity": (probability, PROBABILITY_FORM),
    "direction": (direction, DIRECTION_FORM),
    "seed": (seed, SEED_FORM),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Toxics:
    """The faults a layer injects, validated; every field has a "none" default.

    Durations are in seconds, sizes in bytes, rates in bytes per second,
    rates of datagram faults and ``toxicity`` probabilities from 0 to 1.
    ``limit``, ``reset_after``, ``timeout`` and ``netdown`` are None when off
    (``timeout`` 0 means: hold the data and never close).
    """

    latency: float = 0.0
    jitter: float = 0.0
    bandwidth: float = 0.0
    slice: int = 0
    slice_variation: int = 0
    slice_delay: float = 0.0
    limit: int | None = None
    reset_after: float | None = None
    timeout: float | None = None
    slow_close: float = 0.0
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    fail: tuple[FailRule, ...] = ()
    netdown: tuple[float, float] | None = None
    toxicity: float = 1.0
    direction: str = "up"
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.slice == 0 and (self.slice_variation or self.slice_delay):
            given = "slice_variation" if self.slice_variation else "slice_delay"
            raise ValueError(f"{given} needs slice (the average size of a piece), got no slice")
        if self.slice and self.slice_variation >= self.slice:
            raise ValueError(
                f"slice_variation must be smaller than slice ({self.slice} bytes), "
                f"got {self.slice_variation}"
            )

    # -- what is active ----------------------------------------------------------
    @property
    def stream_lane(self) -> bool:
        """Whether a stream direction has something to do."""
        return bool(
            self.latency
            or self.jitter
            or self.bandwidth
            or self.slice
            or self.limit is not None
            or self.timeout is not None
        )

    @property
    def datagram_lane(self) -> bool:
        """Whether a datagram direction has something to do."""
        return bool(
            self.latency
            or self.jitter
            or self.bandwidth
            or self.drop
            or self.duplicate
            or self.reorder
            or self.corrupt
        )

    @property
    def connection(self) -> bool:
        """Whether a connection-wide fault (reset, slow close) is set."""
        return self.reset_after is not None or bool(self.slow_close)

    @property
    def up(self) -> bool:
        return self.direction in ("up", "both")

    @property
    def down(self) -> bool:
        return self.direction in ("down", "both")

    def to_options(self) -> dict[str, str]:
        """The non-default options, as a chain spec would give them."""
        out: dict[str, str] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value == field.default:
                continue
            out[field.name] = _format(field.name, value)
        return out

    def __str__(self) -> str:
        options = self.to_options()
        return ",".join(f"{k}={v}" for k, v in options.items()) or "(nothing)"


def _format(name: str, value: Any) -> str:
    parse = OPTIONS[name][0]
    if parse is duration:
        return _seconds(value)
    if parse is rate:
        for unit in ("GB", "MB", "KB"):
            scaled = value / _BYTES[unit]
            if scaled >= 1 and float(_number(scaled)) * _BYTES[unit] == value:
                return f"{_number(scaled)}{unit}/s"
        return f"{_number(value)}B/s"
    if name == "fail":
        return ";".join(str(rule) for rule in value)
    if name == "netdown":
        return f"{_seconds(value[0])}..{_seconds(value[1])}"
    if parse is probability:
        return _number(value)
    return str(value)


def _number(value: float) -> str:
    """A number without an exponent, as the option forms want it."""
    text = f"{value:.12f}".rstrip("0").rstrip(".")
    return text or "0"


def _seconds(value: float) -> str:
    if value == 0:
        return "0"
    if value < 1e-3:
        return f"{_number(value * 1e6)}us"
    if value < 1:
        return f"{_number(value * 1e3)}ms"
    return f"{_number(value)}s"


def parse_options(options: Mapping[str, object], base: Toxics | None = None) -> Toxics:
    """A :class:`Toxics` from ``options`` (over ``base``); None resets an option.

    Raises ``ValueError`` naming an unknown option (and the known ones) or a
    bad value (and the accepted form).
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; options: {', '.join(OPTIONS)}")
    values: dict[str, Any] = {}
    defaults = Toxics()
    for name, raw in options.items():
        if raw is None:
            values[name] = getattr(defaults, name)
            continue
        values[name] = OPTIONS[name][0](name, raw)
    return dataclasses.replace(base or defaults, **values)
