"""The ``faults`` layer: toxiproxy's toxics, in process, on the sockets of a chain.

Theory of operation
-------------------
**The fast path.**  Every socket context (:class:`FaultsSocket`) carries
``quiet``: True while nothing applies to it (no toxic for its kind and
direction, no ``fail`` rule, no ``netdown`` window, no broken connection).
Each data operation (defined on :class:`FaultsSocket`, the fast form of a
layer's data operations) starts with one test of it and, when quiet, calls
the level below at once, so a layer with nothing active costs one inlined
Python call per operation.  :meth:`FaultsLayer.set` and :meth:`~FaultsLayer.clear` recompute
``quiet`` for every live socket, so toxics can come and go at run time (the
layer overrides the data operations for that reason: a compiled chain binds
them once).

**Lanes.**  Each socket has two :class:`Lane` objects, ``up`` (what it sends)
and ``down`` (what it receives), each with its own seeded random generator,
byte count, bandwidth clock and lock; ``direction`` says which lanes the
toxics act on.  All delays are spent in the calling thread: ``latency``
before a send goes down (or before a receive returns), ``bandwidth`` by
pacing pieces of at most 10 ms of traffic, ``slice`` by cutting sends into
pieces (and capping receives) with ``slice_delay`` between them.

**Connection faults.**  A stream socket is ``OPEN`` until a fault breaks it:

============  ======================================  ==========================
state         set by                                   its operations then
============  ======================================  ==========================
LIMITED       ``limit`` bytes passed in a lane          recv: end of file;
                                                       send: WSAECONNABORTED
TIMEDOUT      ``timeout`` expired                      WSAETIMEDOUT
RESET         ``reset_after`` expired                  WSAECONNRESET
PEER_RESET    the other end (a faults socket) reset    WSAECONNRESET
============  ======================================  ==========================

``limit`` and ``timeout`` shut the connection down below (the peer reads end
of file); ``reset_after`` makes the transport reset it (the peer sees
WSAECONNRESET): an abortive ``SO_LINGER`` close where the level below owns an
OS socket, and the other end marked reset when it is a faults socket of this
process.  Timers (``reset_after``, ``timeout``) run on one scheduler thread
per layer, started on first need and stopped at cleanup.

**Randomness.**  Every choice comes from generators seeded with
``(seed, socket number, lane)``, sockets being numbered in creation order from
the time the seed was set: the same seed and the same program give every
socket the same choices, whatever the threads do.  Each choice is recorded in
``events`` (:class:`FaultEvent`).
"""

# Layers narrow the context type of the SPI methods to their own LayerSocket
# subclass: the host only ever passes a level its own contexts.
# mypy: disable-error-code="override"

from __future__ import annotations

import collections
import ctypes
import dataclasses
import random
import socket as _socket
import struct
import sys
import threading
import time
import weakref
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

import wspframe
from wspframe import (
    SD_BOTH,
    SD_SEND,
    Dispatch,
    LayeredProvider,
    NextLayer,
    Overlapped,
    ProtocolInfo,
    WSAError,
    WSAErrorCode,
)

from ._options import Toxics, parse_options
from ._paths import ToxicPaths, error, ms
from ._scheduler import Scheduler
from ._state import (
    LIMITED,
    OPEN,
    PEER_RESET,
    RESET,
    STATE_NAMES,
    TIMEDOUT,
    FaultEvent,
    FaultsSocket,
    Lane,
)

__all__ = ["FaultsLayer"]

_E = WSAErrorCode
_SOL_SOCKET: Final = _socket.SOL_SOCKET
_SO_LINGER: Final = _socket.SO_LINGER
_sleep = time.sleep
#: Operations that still work on a broken connection.
_HARMLESS: Final = frozenset(("getsockname", "getsockopt", "setsockopt", "settimeout", "ioctl"))
_now = time.monotonic
#: Events kept in memory (the oldest are dropped first; the counters go on).
MAX_EVENTS: Final = 100_000

#: Every live faults socket of the process, to find the other end of a reset connection.
_LIVE: weakref.WeakSet[FaultsSocket] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


def _linux_disconnect(fd: int) -> bool:
    """Reset the TCP connection of OS socket ``fd`` now, keeping the descriptor.

    ``connect()`` with ``AF_UNSPEC`` dissolves the association; on Linux that
    sends an RST (with ``SO_LINGER`` {1, 0} set) and wakes blocked calls.
    False where this is not available.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        address = struct.pack("H14x", 0)
        return int(libc.connect(fd, address, len(address))) == 0
    except (OSError, AttributeError):
        return False


class FaultsLayer(ToxicPaths, LayeredProvider):
    """Injects network faults into the sockets of its chains (see the module docs).

    ``set(**options)`` changes the toxics at run time (``None`` removes one),
    ``clear()`` removes them all; ``events`` lists what was injected;
    ``stats()`` and ``summary()`` count it.
    """

    name = "faults"
    description = (
        "network faults in process (toxiproxy's toxics): latency, bandwidth, slice, limit, "
        "reset_after, timeout, drop, fail=OP:WSAEXXX, netdown, ..."
    )
    socket_class = FaultsSocket

    # -- options ------------------------------------------------------------------
    def configure(self, options: Mapping[str, str]) -> None:
        options = dict(options)
        self.toxics: Toxics = parse_options(options)
        self.seed: int = (
            self.toxics.seed
            if self.toxics.seed is not None
            else random.SystemRandom().randrange(2**32)
        )
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._sockets: weakref.WeakSet[FaultsSocket] = weakref.WeakSet()
        self._numbered = 0
        self._origin = _now()
        self._events: collections.deque[FaultEvent] = collections.deque(maxlen=MAX_EVENTS)
        self._faults: collections.Counter[str] = collections.Counter()
        self._ops: collections.Counter[str] = collections.Counter()
        self._bytes = [0, 0]  # sent, received through active lanes
        self._created = 0
        self._affected = 0
        self._scheduler: Scheduler | None = None

    def set(self, **options: object) -> None:
        """Change toxics at run time: ``set(latency="20ms", drop=0.1)``.

        Values take the chain spec's forms, or numbers (seconds, bytes, bytes
        per second, probabilities); ``None`` removes an option.  Raises
        ``ValueError`` naming a bad option.  ``seed`` restarts the numbering
        of sockets; ``reset_after`` and ``timeout`` start counting now on open
        connections; ``netdown`` windows count from now.
        """
        with self._lock:
            toxics = parse_options(options, self.toxics)
            self._apply(toxics, set(options))

    def clear(self) -> None:
        """Remove every toxic (the seed stays); held data flows again."""
        with self._lock:
            self._apply(Toxics(seed=self.toxics.seed), {"reset_after", "timeout"})

    def _apply(self, toxics: Toxics, changed: Collection[str]) -> None:
        self.toxics = toxics
        now = _now()
        if "seed" in changed and toxics.seed is not None:
            self.seed = toxics.seed
            self._numbered = 0
        if "netdown" in changed:
            self._origin = now
        for s in list(self._sockets):
            self._refresh(s)
            if "reset_after" in changed or "timeout" in changed:
                if s.since is not None:
                    s.since = now
                s.gen += 1
                self._arm(s)
        self._cond.notify_all()

    # -- lifetime ---------------------------------------------------------------------
    def startup(self, upcalls: Any) -> None:
        super().startup(upcalls)
        with self._lock:
            self._origin = _now()

    def cleanup(self) -> None:
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
            self._cond.notify_all()
        if scheduler is not None:
            scheduler.close()

    # -- what happened ----------------------------------------------------------------------
    @property
    def events(self) -> list[FaultEvent]:
        """The faults injected so far, in order (a copy; the last
        :data:`MAX_EVENTS` of them)."""
        with self._lock:
            return list(self._events)

    def clear_events(self) -> None:
        """Forget the events recorded so far (counters are kept)."""
        with self._lock:
            self._events.clear()

    def socket_states(self) -> list[dict[str, Any]]:
        """The open sockets of the layer: number, handle, kind, connection
        state, and whether anything acts on it (``active``)."""
        with self._lock:
            sockets = sorted(self._sockets, key=lambda s: s.number)
            return [
                {
                    "number": s.number,
                    "handle": s.handle,
                    "kind": "stream" if s.stream else "datagram",
                    "state": STATE_NAMES[s.state],
                    "active": not s.quiet,
                    "affected": s.luck < self.toxics.toxicity,
                }
                for s in sockets
            ]

    def stats(self) -> dict[str, int]:
        """The layer's counters, flat (for ``--wsp-stats``, which adds them up).

        ``sockets`` and ``affected`` (by the toxics); ``faults`` injected, and
        ``fault.KIND`` per kind; ``operations``, ``bytes_sent`` and
        ``bytes_received`` through an active lane, with ``op.NAME`` per
        operation (quiet sockets are not counted, so that they cost nothing).
        The seed and the toxics are :attr:`seed` and :attr:`toxics`.
        """
        with self._lock:
            stats = {
                "sockets": self._created,
                "affected": self._affected,
                "faults": sum(self._faults.values()),
                "operations": sum(self._ops.values()),
                "bytes_sent": self._bytes[0],
                "bytes_received": self._bytes[1],
            }
            stats.update((f"fault.{kind}", n) for kind, n in sorted(self._faults.items()))
            stats.update((f"op.{op}", n) for op, n in sorted(self._ops.items()))
            return stats

    def summary(self) -> str:
        """One paragraph: the toxics, the seed, and the faults injected."""
        with self._lock:
            faults = ", ".join(f"{k} x{v}" for k, v in sorted(self._faults.items())) or "none"
            created, affected = self._created, self._affected
        return (
            f"toxics: {self.toxics}\n"
            f"seed: {self.seed}\n"
            f"sockets: {created} ({affected} affected)\n"
            f"faults injected: {faults}"
        )

    def reseed(self, seed: int) -> None:
        """The seed of the run (the pytest plugin's ``--wsp-seed``): taken unless
        the chain spec gave one; either way the numbering of sockets restarts."""
        with self._lock:
            given = self.options.get("seed")
            self._apply(
                dataclasses.replace(self.toxics, seed=int(given) if given else seed), {"seed"}
            )

    def _note(self, s: FaultsSocket | None, op: str, fault: str, detail: str = "") -> None:
        with self._lock:
            self._events.append(FaultEvent(s.number if s is not None else 0, op, fault, detail))
            self._faults[fault] += 1

    # -- per-socket state -------------------------------------------------------------------
    def wrap(self, lower: Dispatch, protocol_info: ProtocolInfo, next: NextLayer) -> FaultsSocket:
        s = super().wrap(lower, protocol_info, next)
        assert isinstance(s, FaultsSocket)
        s.ifs = s.handle == lower.handle
        with self._lock:
            self._numbered += 1
            self._created += 1
            s.number = self._numbered
            base = f"{self.seed}:{s.number}"
            s.luck = random.Random(base).random()
            s.up = Lane(f"{base}:up")
            s.down = Lane(f"{base}:down")
            s.fail_rng = random.Random(f"{base}:fail")
            if s.luck < self.toxics.toxicity:
                self._affected += 1
            elif self.toxics.toxicity < 1.0:
                self._events.append(FaultEvent(s.number, "socket", "toxicity", "spared"))
            self._sockets.add(s)
            self._refresh(s)
        with _LIVE_LOCK:
            _LIVE.add(s)
        return s

    def _refresh(self, s: FaultsSocket) -> None:
        """Recompute which lanes act on ``s`` and whether it is quiet (lock held)."""
        t = self.toxics
        affected = s.luck < t.toxicity
        lane = t.stream_lane if s.stream else t.datagram_lane
        s.up_on = affected and lane and t.up
        s.down_on = affected and lane and t.down
        s.quiet = not (
            s.up_on
            or s.down_on
            or t.fail
            or t.netdown
            or s.state != OPEN
            or s.up.held
            or s.down.held
            or s.down.reordered is not None
            or (affected and s.stream and t.connection)
        )

    def _connected(self, s: FaultsSocket) -> None:
        """``s`` is connected: its connection toxics start now."""
        with self._lock:
            s.since = _now()
            self._arm(s)

    def _arm(self, s: FaultsSocket) -> None:
        """Schedule the timers of connection ``s`` (lock held)."""
        t = self.toxics
        if not s.stream or s.since is None or s.closed or s.luck >= t.toxicity:
            return
        gen = s.gen
        if t.reset_after is not None:
            self._at(s.since + t.reset_after, lambda: self._expire(s, gen, RESET))
        if t.timeout and (s.up_on or s.down_on):
            self._at(s.since + t.timeout, lambda: self._expire(s, gen, TIMEDOUT))

    def _at(self, when: float, fn: Callable[[], None]) -> None:
        if self._scheduler is None:
            self._scheduler = Scheduler(f"wspframe-faults-{self.catalog_entry_id}")
        self._scheduler.call_at(when, fn)

    def _expire(self, s: FaultsSocket, gen: int, state: int) -> None:
        with self._lock:
            if s.gen != gen or s.closed or s.state != OPEN:
                return
        if state == RESET:
            self._reset(s, "reset_after")
        else:
            self._break(s, TIMEDOUT, "timeout", "closed after the timeout")

    # -- breaking connections -------------------------------------------------------------------
    def _set_state(self, s: FaultsSocket, state: int) -> bool:
        with self._lock:
            if s.state != OPEN:
                return False
            s.state = state
            s.quiet = False
            self._cond.notify_all()
            return True

    def _break(self, s: FaultsSocket, state: int, fault: str, detail: str) -> None:
        """Close the connection of ``s`` below (the peer reads end of file)."""
        if not self._set_state(s, state):
            return
        self._note(s, "connection", fault, detail)
        how = SD_SEND if state == LIMITED else SD_BOTH
        try:
            s.lower.shutdown(how)
        except WSAError:
            pass

    def _reset(self, s: FaultsSocket, fault: str) -> None:
        """Reset the connection of ``s``: both ends see WSAECONNRESET."""
        peer = _other_end(s)
        if not self._set_state(s, RESET):
            return
        if peer is not None:
            owner = peer.provider
            if isinstance(owner, FaultsLayer):
                owner._set_state(peer, PEER_RESET)
        self._note(s, "connection", fault, "reset")
        try:
            s.lower.setsockopt(_SOL_SOCKET, _SO_LINGER, struct.pack("ii", 1, 0))
            lingers = True
        except WSAError:
            lingers = False
        if lingers and s.ifs and s.lower.level.ifs and _linux_disconnect(s.lower.handle):
            return
        try:
            s.lower.shutdown(SD_BOTH)
        except WSAError:
            pass

    def _broken(self, s: FaultsSocket, op: str) -> WSAError:
        """The error of an operation on a broken connection."""
        state = s.state
        if state == LIMITED:
            return error(
                _E.WSAECONNABORTED, f"{op}: the faults layer closed the connection (limit)"
            )
        if state == TIMEDOUT:
            return error(_E.WSAETIMEDOUT, f"{op}: the faults layer timed the connection out")
        return error(_E.WSAECONNRESET, f"{op}: the connection was reset (faults layer)")

    # -- the gate: netdown, fail, broken connections ----------------------------------------------
    def _gate(self, s: FaultsSocket | None, op: str) -> None:
        t = self.toxics
        if t.netdown is not None:
            start, end = t.netdown
            elapsed = _now() - self._origin
            if start <= elapsed < end:
                self._note(s, op, "netdown", f"{elapsed * 1000:.0f} ms into the window")
                raise error(_E.WSAENETDOWN, f"{op}: the network is down (faults netdown)")
        for rule in t.fail:
            if rule.op != op:
                continue
            if rule.probability >= 1.0:
                hit = True
            else:
                rng = s.fail_rng if s is not None else self._socket_rng()
                hit = rng.random() < rule.probability
            if hit:
                self._note(s, op, "fail", rule.code.name)
                raise error(rule.code, f"{op}: injected by the faults layer")

    def _socket_rng(self) -> random.Random:
        return random.Random(f"{self.seed}:socket:{self._numbered}")

    def _check(self, s: FaultsSocket, op: str) -> None:
        """Gate ``op`` on a socket that is not quiet (broken connections fail first)."""
        if s.closed:
            return
        state = s.state
        # A limited connection still reads end of file.
        reads_eof = state == LIMITED and op in ("recv", "recvfrom")
        if state != OPEN and op not in _HARMLESS and not reads_eof:
            raise self._broken(s, op)
        self._gate(s, op)

    def _late(self, s: FaultsSocket, op: str) -> None:
        """After a call below returned end of file or failed: a broken connection's error."""
        if s.state in (RESET, PEER_RESET, TIMEDOUT):
            raise self._broken(s, op)

    # -- creation and close -----------------------------------------------------------------------
    def socket(
        self,
        next: NextLayer,
        af: int,
        type: int,
        protocol: int,
        protocol_info: ProtocolInfo,
        group: int,
        flags: int,
    ) -> FaultsSocket:
        t = self.toxics
        if t.fail or t.netdown:
            self._gate(None, "socket")
        s = super().socket(next, af, type, protocol, protocol_info, group, flags)
        assert isinstance(s, FaultsSocket)
        return s

    def accept(self, s: FaultsSocket) -> tuple[FaultsSocket, Any]:
        if not s.quiet:
            self._check(s, "accept")
        new, address = super().accept(s)
        assert isinstance(new, FaultsSocket)
        if new.stream:
            self._connected(new)
        return new, address

    def close_socket(self, s: FaultsSocket) -> None:
        if not s.quiet:
            t = self.toxics
            try:
                self._flush_held(s)
            except WSAError:
                pass
            if t.slow_close and s.stream and s.luck < t.toxicity and s.state == OPEN:
                self._note(s, "close", "slow_close", ms(t.slow_close))
                _sleep(t.slow_close)
        with self._lock:
            s.closed = True
            s.gen += 1
            self._sockets.discard(s)
            self._cond.notify_all()
        with _LIVE_LOCK:
            _LIVE.discard(s)
        super().close_socket(s)

    # -- connection -------------------------------------------------------------------------------
    def connect(self, s: FaultsSocket, address: Any) -> None:
        if not s.quiet:
            self._check(s, "connect")
        s.lower.connect(address)
        if s.stream:
            self._connected(s)

    def shutdown(self, s: FaultsSocket, how: int) -> None:
        if not s.quiet:
            self._check(s, "shutdown")
            self._flush_held(s)
            t = self.toxics
            if how != 0 and t.slow_close and s.stream and s.luck < t.toxicity:
                self._note(s, "shutdown", "slow_close", ms(t.slow_close))
                _sleep(t.slow_close)
        s.lower.shutdown(how)

    def bind(self, s: FaultsSocket, address: Any) -> None:
        if not s.quiet:
            self._check(s, "bind")
        s.lower.bind(address)

    def listen(self, s: FaultsSocket, backlog: int) -> None:
        if not s.quiet:
            self._check(s, "listen")
        s.lower.listen(backlog)

    def getsockname(self, s: FaultsSocket) -> Any:
        if not s.quiet:
            self._check(s, "getsockname")
        return s.lower.getsockname()

    def getpeername(self, s: FaultsSocket) -> Any:
        if not s.quiet:
            self._check(s, "getpeername")
        return s.lower.getpeername()

    def getsockopt(self, s: FaultsSocket, level: int, option: int, buflen: int | None) -> Any:
        if not s.quiet:
            self._check(s, "getsockopt")
        return s.lower.getsockopt(level, option, buflen)

    def setsockopt(self, s: FaultsSocket, level: int, option: int, value: Any) -> None:
        if not s.quiet:
            self._check(s, "setsockopt")
        s.lower.setsockopt(level, option, value)

    def ioctl(self, s: FaultsSocket, code: int, arg: Any) -> Any:
        if not s.quiet:
            self._check(s, "ioctl")
        result = s.lower.ioctl(code, arg)
        if code == wspframe.FIONBIO:
            s.timeout = 0.0 if arg else None
        return result

    def settimeout(self, s: FaultsSocket, timeout: float | None) -> None:
        if not s.quiet:
            self._check(s, "settimeout")
        s.lower.settimeout(timeout)
        s.timeout = timeout

    def duplicate_socket(self, s: FaultsSocket) -> None:
        if not s.quiet:
            self._check(s, "duplicate_socket")
        s.lower.duplicate_socket()

    # -- data ----------------------------------------------------------------------------------
    # The data operations are FaultsSocket's (the fast form); with a toxic
    # active they call _send/_recv here, and _late when a socket turned
    # noisy during a quiet receive.
    # -- data: with toxics ------------------------------------------------------------------------
    # -- overlapped: fail, netdown and broken connections, at start -------------------------------
    # An overlapped operation that fails at once completes nothing (as WSASend
    # failing with an error other than WSA_IO_PENDING); the timing toxics do
    # not act on overlapped operations.
    def _overlapped(self, s: FaultsSocket, op: str) -> None:
        if not s.quiet:
            self._check(s, op)

    def send_overlapped(self, s: FaultsSocket, data: Any, flags: int, ov: Overlapped) -> None:
        self._overlapped(s, "send")
        if s.ifs:
            s.lower.send_overlapped(data, flags, ov)
        else:
            super().send_overlapped(s, data, flags, ov)

    def recv_overlapped(self, s: FaultsSocket, bufsize: int, flags: int, ov: Overlapped) -> None:
        self._overlapped(s, "recv")
        if s.ifs:
            s.lower.recv_overlapped(bufsize, flags, ov)
        else:
            super().recv_overlapped(s, bufsize, flags, ov)

    def sendto_overlapped(
        self, s: FaultsSocket, data: Any, flags: int, address: Any, ov: Overlapped
    ) -> None:
        self._overlapped(s, "sendto")
        if s.ifs:
            s.lower.sendto_overlapped(data, flags, address, ov)
        else:
            super().sendto_overlapped(s, data, flags, address, ov)

    def recvfrom_overlapped(
        self, s: FaultsSocket, bufsize: int, flags: int, ov: Overlapped
    ) -> None:
        self._overlapped(s, "recvfrom")
        if s.ifs:
            s.lower.recvfrom_overlapped(bufsize, flags, ov)
        else:
            super().recvfrom_overlapped(s, bufsize, flags, ov)

    def connect_overlapped(self, s: FaultsSocket, address: Any, ov: Overlapped) -> None:
        self._overlapped(s, "connect")
        if s.ifs:
            s.lower.connect_overlapped(address, ov)
        else:
            super().connect_overlapped(s, address, ov)
        if s.stream:
            self._connected(s)

    def ioctl_overlapped(self, s: FaultsSocket, code: int, arg: Any, ov: Overlapped) -> None:
        self._overlapped(s, "ioctl")
        if s.ifs:
            s.lower.ioctl_overlapped(code, arg, ov)
        else:
            super().ioctl_overlapped(s, code, arg, ov)

    def accept_overlapped(self, s: FaultsSocket, ov: Overlapped) -> None:
        self._overlapped(s, "accept")
        super().accept_overlapped(s, ov)

    def on_complete(self, s: FaultsSocket, ov: Overlapped) -> None:
        new = ov.data
        if ov.op == "accept" and not ov.error and isinstance(new, FaultsSocket) and new.stream:
            self._connected(new)


def _other_end(s: FaultsSocket) -> FaultsSocket | None:
    """The faults socket of this process at the other end of ``s``'s connection."""
    try:
        local = s.lower.getsockname()
        peer = s.lower.getpeername()
    except WSAError:
        return None
    with _LIVE_LOCK:
        candidates = [o for o in _LIVE if o is not s and o.stream and not o.closed]
    for other in candidates:
        try:
            if other.lower.getsockname() == peer and other.lower.getpeername() == local:
                return other
        except WSAError:
            continue
    return None
