"""The data paths of the faults layer when toxics act on a socket.

:class:`ToxicPaths` is mixed into :class:`~wspframe_faults.FaultsLayer`: the
layer's fast path calls these methods only for sockets that are not quiet.
Stream lanes apply ``timeout`` (hold), ``limit``, ``latency``/``jitter``,
``slice`` and ``bandwidth``; datagram lanes ``latency``, ``bandwidth``,
``drop``, ``corrupt``, ``reorder`` and ``duplicate``, in that order.  Every
random choice is drawn from the lane's own generator.
"""

from __future__ import annotations

import socket as _socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import wspframe
from wspframe import WSAError, WSAErrorCode

from ._options import Toxics
from ._state import LIMITED, OPEN, FaultsSocket, Lane

__all__ = ["PACE", "REORDER_WINDOW", "ToxicPaths"]

_E = WSAErrorCode
_MSG_PEEK: Final = int(_socket.MSG_PEEK)
#: How long a receive waits for the datagram a reordered one goes after.
REORDER_WINDOW: Final = 0.05
#: Bandwidth pacing granularity: a piece carries at most this many seconds of traffic.
PACE: Final = 0.01
_sleep = time.sleep
_now = time.monotonic


def error(code: int, message: str) -> WSAError:
    return wspframe.wsa_error(code, message)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


class ToxicPaths:
    """Sending and receiving through active lanes (a mixin of the faults layer)."""

    if TYPE_CHECKING:
        toxics: Toxics
        _lock: threading.RLock
        _cond: threading.Condition
        _ops: Any
        _bytes: list[int]

        def _note(self, s: FaultsSocket | None, op: str, fault: str, detail: str = "") -> None: ...
        def _check(self, s: FaultsSocket, op: str) -> None: ...
        def _late(self, s: FaultsSocket, op: str) -> None: ...
        def _break(self, s: FaultsSocket, state: int, fault: str, detail: str) -> None: ...
        def _broken(self, s: FaultsSocket, op: str) -> WSAError: ...
        def _refresh(self, s: FaultsSocket) -> None: ...

    def _count(self, op: str, sent: int = 0, received: int = 0) -> None:
        with self._lock:
            self._ops[op] += 1
            self._bytes[0] += sent
            self._bytes[1] += received

    def _send(self, s: FaultsSocket, data: Any, flags: int, address: Any, op: str) -> int:
        self._check(s, op)
        if not s.up_on or (s.stream and not len(memoryview(data))):
            # (An empty stream send goes straight down: the level below says
            # what it means, e.g. WSAESHUTDOWN after shutdown.)
            n: int = (
                s.lower.send(data, flags)
                if address is None
                else s.lower.sendto(data, flags, address)
            )
            self._count(op, sent=n)
            return n
        lane = s.up
        with lane.lock:
            if not s.stream:
                n = self._datagram_out(s, lane, data, flags, address, op)
            else:
                n = self._stream_out(s, lane, data, flags, address, op)
        self._count(op, sent=n)
        return n

    def _stream_out(
        self, s: FaultsSocket, lane: Lane, data: Any, flags: int, address: Any, op: str
    ) -> int:
        t = self.toxics
        self._hold(s, lane, op)
        view = memoryview(data).cast("B")
        if t.limit is not None:
            room = t.limit - lane.count
            if room <= 0:
                self._break(s, LIMITED, "limit", f"{lane.count} bytes sent")
                raise self._broken(s, op)
            view = view[:room]
        self._delay(s, lane, op)
        total = 0
        first = True
        for piece in self._pieces(s, lane, view, op):
            if not first and t.slice_delay:
                _sleep(t.slice_delay)
            first = False
            self._pace(lane, len(piece))
            try:
                n: int = (
                    s.lower.send(piece, flags)
                    if address is None
                    else s.lower.sendto(piece, flags, address)
                )
            except WSAError:
                if total:
                    break
                self._late(s, op)
                raise
            total += n
            lane.count += n
            if n < len(piece):
                break
        if t.limit is not None and lane.count >= t.limit:
            self._break(s, LIMITED, "limit", f"{lane.count} bytes sent")
        return total

    def _pieces(
        self, s: FaultsSocket, lane: Lane, view: memoryview, op: str
    ) -> Iterator[memoryview]:
        """``view`` cut by ``slice`` (and by the bandwidth's pacing granularity)."""
        t = self.toxics
        cap = max(1, int(t.bandwidth * PACE)) if t.bandwidth else 0
        if not t.slice:
            if not cap or len(view) <= cap:
                yield view
                return
            for i in range(0, len(view), cap):
                yield view[i : i + cap]
            return
        sizes = []
        pos = 0
        while pos < len(view):
            size = self._slice_size(lane)
            sizes.append(min(size, len(view) - pos))
            pos += size
        self._note(s, op, "slice", " ".join(str(n) for n in sizes))
        pos = 0
        for size in sizes:
            piece = view[pos : pos + size]
            pos += size
            if cap and len(piece) > cap:
                for i in range(0, len(piece), cap):
                    yield piece[i : i + cap]
            else:
                yield piece

    def _slice_size(self, lane: Lane) -> int:
        t = self.toxics
        if not t.slice_variation:
            return t.slice
        return t.slice + lane.rng.randint(-t.slice_variation, t.slice_variation)

    def _delay(self, s: FaultsSocket, lane: Lane, op: str) -> None:
        t = self.toxics
        if not (t.latency or t.jitter):
            return
        delay = t.latency
        if t.jitter:
            delay = max(0.0, delay + lane.rng.uniform(-t.jitter, t.jitter))
        self._note(s, op, "latency", ms(delay))
        _sleep(delay)

    def _pace(self, lane: Lane, nbytes: int) -> None:
        rate = self.toxics.bandwidth
        if not rate:
            return
        now = _now()
        start = max(now, lane.next_free)
        lane.next_free = start + nbytes / rate
        wait = lane.next_free - now
        if wait > 0:
            _sleep(wait)

    def _hold(self, s: FaultsSocket, lane: Lane, op: str) -> None:
        """``timeout``: hold the data until the toxic goes, the connection times out,
        or the socket's own timeout passes."""
        if self.toxics.timeout is None:
            return
        own = s.timeout
        own_deadline = None if own is None else _now() + own
        noted = False
        with self._cond:
            while self.toxics.timeout is not None and s.state == OPEN and not s.closed:
                if (lane is s.up and not s.up_on) or (lane is s.down and not s.down_on):
                    break
                if not noted:
                    self._note(s, op, "timeout", "data held")
                    noted = True
                wait = None
                if own_deadline is not None:
                    wait = own_deadline - _now()
                    if wait <= 0:
                        code = _E.WSAEWOULDBLOCK if own == 0 else _E.WSAETIMEDOUT
                        raise error(code, f"{op}: data held by the faults layer's timeout")
                self._cond.wait(wait)
        if s.closed:
            raise error(_E.WSAEINTR, f"{op} interrupted: the socket was closed")
        if s.state != OPEN:
            raise self._broken(s, op)

    def _recv(self, s: FaultsSocket, bufsize: int, flags: int, op: str) -> tuple[bytes, Any]:
        if s.state == LIMITED:
            return b"", None
        self._check(s, op)
        want_address = op == "recvfrom"
        if not s.down_on:
            data, address = self._below(s, bufsize, flags, want_address, op)
            self._count(op, received=len(data))
            return data, address
        lane = s.down
        with lane.lock:
            if not s.stream:
                data, address = self._datagram_in(s, lane, bufsize, flags, want_address, op)
            else:
                data, address = self._stream_in(s, lane, bufsize, flags, want_address, op)
        self._count(op, received=len(data))
        return data, address

    def _below(
        self, s: FaultsSocket, bufsize: int, flags: int, want_address: bool, op: str
    ) -> tuple[bytes, Any]:
        try:
            if want_address:
                data, address = s.lower.recvfrom(bufsize, flags)
            else:
                data, address = s.lower.recv(bufsize, flags), None
        except WSAError:
            self._late(s, op)
            raise
        if not data and s.stream and bufsize:
            self._late(s, op)
        return data, address

    def _stream_in(
        self, s: FaultsSocket, lane: Lane, bufsize: int, flags: int, want_address: bool, op: str
    ) -> tuple[bytes, Any]:
        t = self.toxics
        self._hold(s, lane, op)
        size = bufsize
        if t.limit is not None:
            room = t.limit - lane.count
            if room <= 0:
                self._break(s, LIMITED, "limit", f"{lane.count} bytes received")
                return b"", None
            size = min(size, room)
        if t.slice:
            if lane.count and t.slice_delay:
                _sleep(t.slice_delay)
            piece = self._slice_size(lane)
            self._note(s, op, "slice", str(piece))
            size = min(size, piece)
        if t.bandwidth:
            size = min(size, max(1, int(t.bandwidth * PACE)))
        data, address = self._below(s, size, flags, want_address, op)
        if data and not flags & _MSG_PEEK:
            self._delay(s, lane, op)
            self._pace(lane, len(data))
            lane.count += len(data)
            if t.limit is not None and lane.count >= t.limit:
                self._break(s, LIMITED, "limit", f"{lane.count} bytes received")
        return data, address

    # -- datagrams --------------------------------------------------------------------------------
    def _datagram_out(
        self, s: FaultsSocket, lane: Lane, data: Any, flags: int, address: Any, op: str
    ) -> int:
        t = self.toxics
        payload = bytes(memoryview(data).cast("B"))
        self._delay(s, lane, op)
        self._pace(lane, len(payload))
        rng = lane.rng
        if t.drop and rng.random() < t.drop:
            self._note(s, op, "drop", f"{len(payload)} bytes")
            return len(payload)
        if t.corrupt and rng.random() < t.corrupt:
            payload = self._corrupt(s, lane, payload, op)
        if t.reorder and not lane.held and rng.random() < t.reorder:
            lane.held.append((payload, address, flags))
            self._note(s, op, "reorder", f"{len(payload)} bytes held back")
            return len(payload)
        self._datagram_below(s, payload, flags, address)
        if t.duplicate and rng.random() < t.duplicate:
            self._note(s, op, "duplicate", f"{len(payload)} bytes")
            self._datagram_below(s, payload, flags, address)
        self._flush_held(s)
        return len(payload)

    def _datagram_below(self, s: FaultsSocket, payload: bytes, flags: int, address: Any) -> None:
        if address is None:
            s.lower.send(payload, flags)
        else:
            s.lower.sendto(payload, flags, address)

    def _flush_held(self, s: FaultsSocket) -> None:
        """Send the datagram held back by ``reorder`` (after the one just sent)."""
        lane = s.up
        if not lane.held:
            return
        with lane.lock:
            while lane.held:
                payload, address, flags = lane.held.popleft()
                self._datagram_below(s, payload, flags, address)
        with self._lock:
            self._refresh(s)

    def _briefly(
        self, s: FaultsSocket, bufsize: int, flags: int, want_address: bool, op: str
    ) -> tuple[bytes, Any]:
        own = s.timeout
        window = REORDER_WINDOW if own is None else min(own, REORDER_WINDOW)
        s.lower.settimeout(window)
        try:
            return self._below(s, bufsize, flags, want_address, op)
        finally:
            s.lower.settimeout(own)

    def _corrupt(self, s: FaultsSocket, lane: Lane, payload: bytes, op: str) -> bytes:
        if not payload:
            return payload
        position = lane.rng.randrange(len(payload))
        flip = lane.rng.randrange(1, 256)
        self._note(s, op, "corrupt", f"byte {position} ^ {flip:#04x}")
        changed = bytearray(payload)
        changed[position] ^= flip
        return bytes(changed)

    def _datagram_in(
        self, s: FaultsSocket, lane: Lane, bufsize: int, flags: int, want_address: bool, op: str
    ) -> tuple[bytes, Any]:
        """One datagram for the application: ``reorder`` delivers a datagram
        after the next one; the next is awaited at most :data:`REORDER_WINDOW`
        (a non-blocking receive holds the datagram back and finds nothing)."""
        t = self.toxics
        if lane.held:
            data, address, _ = lane.held.popleft()
        elif lane.reordered is not None:
            early = lane.reordered
            try:
                data, address = self._pull(s, lane, bufsize, flags, want_address, op, True)
            except WSAError as exc:
                if exc.wsa_code not in (_E.WSAETIMEDOUT, _E.WSAEWOULDBLOCK):
                    raise
                data, address, _ = early
            else:
                lane.held.append(early)
            lane.reordered = None
        else:
            data, address = self._pull(s, lane, bufsize, flags, want_address, op, False)
            if t.reorder and lane.rng.random() < t.reorder:
                try:
                    later = self._pull(s, lane, bufsize, flags, want_address, op, True)
                except WSAError as exc:
                    if exc.wsa_code not in (_E.WSAETIMEDOUT, _E.WSAEWOULDBLOCK):
                        raise
                    if s.timeout == 0:
                        lane.reordered = (data, address, 0)
                        self._note(s, op, "reorder", f"{len(data)} bytes delivered after the next")
                        with self._lock:
                            self._refresh(s)
                        raise error(_E.WSAEWOULDBLOCK, f"{op}: no datagram yet") from None
                else:
                    self._note(s, op, "reorder", f"{len(data)} bytes delivered after the next")
                    lane.held.append((data, address, 0))
                    data, address = later
        self._delay(s, lane, op)
        self._pace(lane, len(data))
        with self._lock:
            self._refresh(s)
        return data, address

    def _pull(
        self,
        s: FaultsSocket,
        lane: Lane,
        bufsize: int,
        flags: int,
        want_address: bool,
        op: str,
        briefly: bool,
    ) -> tuple[bytes, Any]:
        """The next datagram that is not dropped (corrupted or duplicated as
        chosen); ``briefly``: wait at most the reorder window for it."""
        t = self.toxics
        rng = lane.rng
        while True:
            if briefly:
                data, address = self._briefly(s, bufsize, flags, want_address, op)
            else:
                data, address = self._below(s, bufsize, flags, want_address, op)
            if t.drop and rng.random() < t.drop:
                self._note(s, op, "drop", f"{len(data)} bytes")
                continue
            if t.corrupt and rng.random() < t.corrupt:
                data = self._corrupt(s, lane, data, op)
            if t.duplicate and rng.random() < t.duplicate:
                self._note(s, op, "duplicate", f"{len(data)} bytes")
                lane.held.append((data, address, 0))
            return data, address
