"""What the measures share: sizes, modes, pinning, socket pairs, the measured loops."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket as _socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, TextIO

from .._constants import AF_INET, SOCK_STREAM
from .._host import Host
from .._socket import Socket
from ._layers import BenchFastLayer, BenchRelayLayer

KIB: Final = 1024
MIB: Final = 1024 * 1024
CHUNK: Final = 64 * KIB
SMALL: Final = 64
#: The longest chain: MAX_PROTOCOL_CHAIN (7) counts the base.
MAX_LAYERS: Final = 6

_CHUNK_DATA: Final = b"\xa5" * CHUNK
_SMALL_DATA: Final = b"\x5a" * SMALL
_LOOPBACK: Final = "127.0.0.1"


# -- modes -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Mode:
    """How much each measurement does."""

    name: str
    #: Rounds per row (fresh resources each; the spread is over rounds).
    rounds: int
    #: Bytes per side per round for throughput rows, and per interleaved slice.
    stream_bytes: int
    stream_slice: int
    #: Slice of the redirected-handle throughput row (streamed by a thread).
    redirect_slice: int
    #: Round trips per side per round, and per slice.
    rtt_count: int
    rtt_slice: int
    #: Creates + closes per side per round, and per slice.
    create_count: int
    create_slice: int
    #: Completions per producer per round, and per slice.
    port_count: int
    port_slice: int
    #: Operations per phase under callgrind (in batches of ``callgrind_batch``).
    callgrind_ops: int
    callgrind_batch: int

    def with_rounds(self, rounds: int) -> Mode:
        return dataclasses.replace(self, rounds=rounds)


FULL: Final = Mode(
    name="full",
    rounds=8,
    stream_bytes=256 * MIB,
    stream_slice=1 * MIB,
    redirect_slice=8 * MIB,
    rtt_count=20_000,
    rtt_slice=1_000,
    create_count=4_000,
    create_slice=250,
    port_count=12_000,
    port_slice=3_000,
    callgrind_ops=10_000,
    callgrind_batch=500,
)
QUICK: Final = Mode(
    name="quick",
    rounds=4,
    stream_bytes=64 * MIB,
    stream_slice=1 * MIB,
    redirect_slice=8 * MIB,
    rtt_count=4_000,
    rtt_slice=500,
    create_count=1_500,
    create_slice=250,
    port_count=6_000,
    port_slice=1_500,
    callgrind_ops=2_000,
    callgrind_batch=500,
)


# -- small helpers ---------------------------------------------------------------------------
def _pin_cpu() -> int | None:
    """The CPU to pin round trips to: the first one this process may use."""
    try:
        return min(os.sched_getaffinity(0))
    except (AttributeError, OSError, ValueError):
        return None


def _pin_self(cpu: int | None) -> bool:
    """Pin the calling thread to ``cpu``; False where the OS does not allow it."""
    if cpu is None:
        return False
    try:
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        return False
    return True


@contextlib.contextmanager
def _pinned(cpu: int | None) -> Iterator[bool]:
    """Pin the calling thread (and the threads it starts meanwhile) to ``cpu``."""
    try:
        saved: set[int] | None = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        saved = None
    ok = _pin_self(cpu)
    try:
        yield ok
    finally:
        if ok and saved is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, saved)


def _interleave(
    a: Callable[[int], float],
    b: Callable[[int], float],
    total: int,
    step: int,
    b_first: bool = False,
) -> tuple[float, float]:
    """Run ``a`` and ``b`` for ``total`` units each, in alternating slices of
    ``step`` (A B B A A B ..., or B A A B ... with ``b_first``); return their
    summed seconds."""
    ta = tb = 0.0
    done = 0
    flip = b_first
    while done < total:
        n = min(step, total - done)
        if flip:
            tb += b(n)
            ta += a(n)
        else:
            ta += a(n)
            tb += b(n)
        flip = not flip
        done += n
    return ta, tb


def _stream_entry(host: Host, spec: str) -> Any:
    for entry in host.entries_for(spec):
        if entry.address_family == AF_INET and entry.socket_type == SOCK_STREAM:
            return entry
    raise ValueError(f"{spec!r} has no IPv4 stream entry")


def _chain_pair(host: Host, entry: Any, flags: int = 0) -> tuple[Socket, Socket]:
    """A connected (client, server) pair through the chain of ``entry``."""
    listener = host.socket(protocol_info=entry)
    try:
        listener.bind((_LOOPBACK, 0))
        listener.listen(1)
        client = host.socket(protocol_info=entry, flags=flags)
        try:
            client.connect(listener.getsockname())
            server, _ = listener.accept()
        except BaseException:
            client.close()
            raise
    finally:
        listener.close()
    return client, server


def _raw_tcp_pair() -> tuple[_socket.socket, _socket.socket]:
    """A connected (client, server) pair of plain loopback TCP sockets."""
    with _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM) as listener:
        listener.bind((_LOOPBACK, 0))
        listener.listen(1)
        client = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        try:
            client.connect(listener.getsockname())
            server, _ = listener.accept()
        except BaseException:
            client.close()
            raise
    return client, server


def _nodelay(*socks: Any) -> None:
    for s in socks:
        s.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)


def _close(*things: Any) -> None:
    for t in things:
        with contextlib.suppress(Exception):
            t.close()


# -- the measured loops --------------------------------------------------------------------
def _lockstep(sender: Any, receiver: Any, chunks: int) -> float:
    """Send ``chunks`` 64 KiB chunks, each received in full before the next; seconds."""
    send = sender.send
    recv = receiver.recv
    data = _CHUNK_DATA
    view = memoryview(data)
    start = time.perf_counter()
    for _ in range(chunks):
        sent = send(data)
        while sent < CHUNK:
            sent += send(view[sent:])
        need = CHUNK
        while need:
            got = len(recv(need))
            if not got:
                raise ConnectionError("end of stream during the benchmark")
            need -= got
    return time.perf_counter() - start


def _lockstep_fd(wfd: int, rfd: int, chunks: int) -> float:
    """:func:`_lockstep` with ``os.write``/``os.read`` on descriptors."""
    write = os.write
    read = os.read
    data = _CHUNK_DATA
    view = memoryview(data)
    start = time.perf_counter()
    for _ in range(chunks):
        sent = write(wfd, data)
        while sent < CHUNK:
            sent += write(wfd, view[sent:])
        need = CHUNK
        while need:
            got = len(read(rfd, need))
            if not got:
                raise ConnectionError("end of stream during the benchmark")
            need -= got
    return time.perf_counter() - start


def _ping(client: Any, count: int) -> float:
    """``count`` 64-byte round trips to an echo server; seconds."""
    send = client.send
    recv = client.recv
    msg = _SMALL_DATA
    start = time.perf_counter()
    for _ in range(count):
        send(msg)
        need = SMALL
        while need:
            got = len(recv(need))
            if not got:
                raise ConnectionError("the echo server went away")
            need -= got
    return time.perf_counter() - start


def _ping_fd(fd: int, count: int) -> float:
    """:func:`_ping` with ``os.write``/``os.read`` on a descriptor."""
    write = os.write
    read = os.read
    msg = _SMALL_DATA
    start = time.perf_counter()
    for _ in range(count):
        write(fd, msg)
        need = SMALL
        while need:
            got = len(read(fd, need))
            if not got:
                raise ConnectionError("the echo server went away")
            need -= got
    return time.perf_counter() - start


def _echo(sock: Any, cpu: int | None) -> None:
    _pin_self(cpu)
    recv = sock.recv
    send = sock.send
    try:
        while True:
            data = recv(65536)
            if not data:
                return
            while data:
                data = data[send(data) :]
    except OSError:
        return


def _echo_fd(fd: int, cpu: int | None) -> None:
    _pin_self(cpu)
    try:
        while True:
            data = os.read(fd, 65536)
            if not data:
                return
            while data:
                data = data[os.write(fd, data) :]
    except OSError:
        return


class _EchoServers:
    """Echo server threads, stopped (by end of stream) and joined on exit."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._stops: list[Callable[[], None]] = []

    def start(
        self, target: Callable[..., None], args: tuple[Any, ...], stop: Callable[[], None]
    ) -> None:
        thread = threading.Thread(target=target, args=args, name="wspframe-bench-echo", daemon=True)
        thread.start()
        self._threads.append(thread)
        self._stops.append(stop)

    def close(self) -> None:
        for stop in self._stops:
            with contextlib.suppress(Exception):
                stop()
        for thread in self._threads:
            thread.join(10)


# -- measures ------------------------------------------------------------------------------
@dataclasses.dataclass
class Context:
    """What the measures share: the mode, a progress stream, the callgrind runs."""

    mode: Mode
    progress: TextIO | None = None
    cpu: int | None = dataclasses.field(default_factory=_pin_cpu)
    _callgrind: list[dict[str, dict[str, float]]] | None = None

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress.write(text)
            self.progress.flush()

    def callgrind(self) -> list[dict[str, dict[str, float]]]:
        """The callgrind runs (two, in parallel), made on first use."""
        if self._callgrind is None:
            from ._callgrind import CALLGRIND_LAYERS, callgrind_counts

            mode = self.mode
            self._callgrind = callgrind_counts(
                mode.callgrind_ops, CALLGRIND_LAYERS, mode.callgrind_batch
            )
        return self._callgrind


def _host(specs: Sequence[str]) -> Host:
    return Host(chains=list(specs), config=False, providers=[BenchRelayLayer, BenchFastLayer])


def _base_of(spec: str) -> str:
    return spec.rsplit(",", 1)[-1].split("[", 1)[0].strip()


def _reference(base: str) -> str:
    return "AF_UNIX socketpair" if base == "memory" else "raw TCP"


def _raw_pair_for(base: str) -> tuple[_socket.socket, _socket.socket]:
    if base == "memory":
        return _socket.socketpair()
    a, b = _raw_tcp_pair()
    _nodelay(a, b)
    return a, b
