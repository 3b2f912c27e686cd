"""Per-socket state of the faults layer: connection states, lanes, events."""

from __future__ import annotations

import collections
import random
import threading
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from wspframe import SOCK_STREAM, Dispatch, LayerSocket, ProtocolInfo

if TYPE_CHECKING:
    from ._layer import FaultsLayer

__all__ = [
    "LIMITED",
    "OPEN",
    "PEER_RESET",
    "RESET",
    "STATE_NAMES",
    "TIMEDOUT",
    "FaultEvent",
    "FaultsSocket",
    "Lane",
]

#: The connection states of a stream socket (see the layer's theory of operation).
OPEN: Final = 0
LIMITED: Final = 1
TIMEDOUT: Final = 2
RESET: Final = 3
PEER_RESET: Final = 4
STATE_NAMES: Final = ("open", "limited", "timed out", "reset", "reset by peer")


class FaultEvent(NamedTuple):
    """One fault the layer injected (or chose not to).

    ``socket`` is the socket's number (1, 2, ... in creation order since the
    seed was set), ``op`` the operation, ``fault`` the toxic (``latency``,
    ``drop``, ``fail``, ``reset``, ...), ``detail`` what it did.
    """

    socket: int
    op: str
    fault: str
    detail: str

    def __str__(self) -> str:
        return f"socket {self.socket} {self.op}: {self.fault} {self.detail}"


class Lane:
    """One direction of one socket: its generator, count, clock and lock."""

    __slots__ = ("count", "held", "lock", "next_free", "reordered", "rng")

    def __init__(self, seed: str) -> None:
        self.rng = random.Random(seed)
        #: Bytes passed so far (streams), for ``limit``.
        self.count = 0
        #: When the bandwidth lets the next byte through (monotonic seconds).
        self.next_free = 0.0
        #: Datagrams held back (reorder, duplicate).
        self.held: collections.deque[tuple[bytes, Any, int]] = collections.deque()
        #: A received datagram waiting for the next one (reorder, non-blocking).
        self.reordered: tuple[bytes, Any, int] | None = None
        self.lock = threading.RLock()


_NO_LANE: Final = Lane("")
_NO_RNG: Final = random.Random(0)


class FaultsSocket(LayerSocket):
    """The faults layer's per-socket context."""

    __slots__ = (
        "closed",
        "down",
        "down_on",
        "fail_rng",
        "gen",
        "ifs",
        "luck",
        "number",
        "quiet",
        "since",
        "state",
        "stream",
        "timeout",
        "up",
        "up_on",
    )

    if TYPE_CHECKING:
        provider: FaultsLayer

    def __init__(self, provider: Any, lower: Dispatch, protocol_info: ProtocolInfo) -> None:
        super().__init__(provider, lower, protocol_info)
        self.stream = protocol_info.socket_type == SOCK_STREAM
        self.quiet = True
        self.state = OPEN
        self.closed = False
        self.number = 0
        self.luck = 0.0
        self.ifs = False
        self.timeout: float | None = None
        #: When the connection's toxics started (connect, accept, or set()).
        self.since: float | None = None
        #: Bumped to cancel the socket's pending timers.
        self.gen = 0
        self.up = self.down = _NO_LANE
        self.up_on = self.down_on = False
        self.fail_rng = _NO_RNG

    def __repr__(self) -> str:
        return f"<FaultsSocket {self.number} handle={self.handle} {STATE_NAMES[self.state]}>"

    # -- data (the fast form: bound as methods of the context) --------------------------------
    # Quiet: straight to the level below.  Otherwise the layer's toxic paths.
    def send(self, data: Any, flags: int) -> int:
        if self.quiet:
            n: int = self.lower.send(data, flags)
            return n
        return self.provider._send(self, data, flags, None, "send")

    def sendto(self, data: Any, flags: int, address: Any) -> int:
        if self.quiet:
            n: int = self.lower.sendto(data, flags, address)
            return n
        return self.provider._send(self, data, flags, address, "sendto")

    def recv(self, bufsize: int, flags: int) -> bytes:
        if self.quiet:
            data: bytes = self.lower.recv(bufsize, flags)
            if data or self.quiet:
                return data
            self.provider._late(self, "recv")
            return data
        return self.provider._recv(self, bufsize, flags, "recv")[0]

    def recv_into(self, buffer: Any, nbytes: int, flags: int) -> int:
        if self.quiet:
            n: int = self.lower.recv_into(buffer, nbytes, flags)
            if n or self.quiet:
                return n
            self.provider._late(self, "recv")
            return n
        view = memoryview(buffer).cast("B")
        data = self.provider._recv(self, nbytes or len(view), flags, "recv")[0]
        view[: len(data)] = data
        return len(data)

    def recvfrom(self, bufsize: int, flags: int) -> tuple[bytes, Any]:
        if self.quiet:
            result: tuple[bytes, Any] = self.lower.recvfrom(bufsize, flags)
            if result[0] or self.quiet:
                return result
            self.provider._late(self, "recvfrom")
            return result
        return self.provider._recv(self, bufsize, flags, "recvfrom")

    def recvfrom_into(self, buffer: Any, nbytes: int, flags: int) -> tuple[int, Any]:
        if self.quiet:
            result: tuple[int, Any] = self.lower.recvfrom_into(buffer, nbytes, flags)
            if result[0] or self.quiet:
                return result
            self.provider._late(self, "recvfrom")
            return result
        view = memoryview(buffer).cast("B")
        data, address = self.provider._recv(self, nbytes or len(view), flags, "recvfrom")
        view[: len(data)] = data
        return len(data), address
