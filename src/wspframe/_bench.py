"""``wspframe bench``: what a chain costs, measured against raw sockets in the same run.

Theory of operation
-------------------
Every row compares a *chain* measurement with its *baseline* taken in the same
process, interleaved: each round opens fresh resources for both, warms both
up, then runs them in alternating slices (A B B A A B ...) and sums each
side's time, so that drift of the machine (frequency, a neighbour's load)
falls on both alike.  A row reports the median over its rounds of the
baseline, of the chain and of the per-round ratio (chain / baseline), with
the ratio's min-max as its spread.

* **Throughput** (64 KiB sends): one thread sends a 64 KiB chunk and then
  receives it at the other end, chunk after chunk ("lock-step").  With a
  sender and a receiver thread instead, on a small machine, the scheduler and
  the GIL hand-off dominate the variance (the same raw loopback pair ran at
  1.7 to 8 GB/s); lock-step measures what the chain adds per call.
* **Round trip** (64 B): a client thread and an echo server thread, pinned to
  one CPU with :func:`os.sched_setaffinity` where the OS allows (and
  unpinned); both ends run through the chain (or both raw).
* **Create + close**: ``host.socket()`` + ``close()`` vs ``socket.socket()`` +
  ``close()``.
* **Completion port**: producer threads complete pre-started overlapped
  operations (``Upcalls.complete_overlapped_request``, what a provider does)
  on handles associated with one port; one consumer ``get()``s them.  The
  baseline hands the same tuples over a bare :class:`queue.SimpleQueue`.
* **Redirected handle**: ``os.write`` in a writer thread, ``os.read`` here,
  on memory sockets after :meth:`~wspframe.Socket.redirect` vs on a raw
  ``socketpair`` (streamed: the redirector is a pipeline stage, and lock-step
  would measure its latency); and the 64 B round trip added over the Socket
  API on the same memory network, both ends redirected.
* **Instructions per layer** (``valgrind --tool=callgrind``): one process runs
  N sends and N receives through a raw socket, a bare ``tcpip`` chain (twice:
  the second is a control), k layers overriding send/recv with a plain
  pass-through, and k ``passthrough`` layers (which override nothing);
  ``--dump-before=os_getppid`` cuts the profile at markers between the
  phases, so imports and set-up do not count.  (chain - bare) / (k * N) is
  the cost of one layer per operation.  Counts are deterministic (fixed hash
  seed, GC off, each variant's loops warmed up in a code object of their
  own): two runs, in parallel, agree to well within 1%.

``MAX_PROTOCOL_CHAIN`` (7) counts the base, so the longest chain holds 6
layers: the "7 layers" targets of the issue are measured on that 7-long chain.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import json
import os
import platform
import queue
import re
import shutil
import socket as _socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TextIO

from ._constants import AF_INET, SOCK_STREAM, WSA_FLAG_OVERLAPPED
from ._host import Host
from ._overlapped import CompletionPort, Overlapped
from ._socket import Socket
from ._spi import LayeredProvider, LayerSocket

__all__ = [
    "FULL",
    "QUICK",
    "BenchFastLayer",
    "BenchRelayLayer",
    "Mode",
    "Report",
    "Row",
    "Stat",
    "Target",
    "format_table",
    "machine",
    "run",
]

KIB: Final = 1024
MIB: Final = 1024 * 1024
CHUNK: Final = 64 * KIB
SMALL: Final = 64
#: The longest chain: MAX_PROTOCOL_CHAIN (7) counts the base.
MAX_LAYERS: Final = 6

_CHUNK_DATA: Final = b"\xa5" * CHUNK
_SMALL_DATA: Final = b"\x5a" * SMALL
_LOOPBACK: Final = "127.0.0.1"


# -- the layer the benchmark adds ------------------------------------------------------
class BenchRelayLayer(LayeredProvider):
    """A layer overriding ``send`` and ``recv`` with a plain pass-through.

    The built-in ``passthrough`` overrides nothing, so compiled chains skip
    it and it costs nothing per operation; this one is what a layer that
    looks at the data, but changes nothing, costs.  Option ``tag`` (ignored)
    lets several be stacked.
    """

    name = "benchrelay"
    description = "benchmark layer: send/recv overridden with a plain pass-through (option: tag)"

    def send(self, s: LayerSocket, data: Any, flags: int) -> int:
        return s.lower.send(data, flags)  # type: ignore[no-any-return]

    def recv(self, s: LayerSocket, bufsize: int, flags: int) -> bytes:
        return s.lower.recv(bufsize, flags)  # type: ignore[no-any-return]


class _FastRelaySocket(LayerSocket):
    __slots__ = ()

    def send(self, data: Any, flags: int) -> int:
        return self.lower.send(data, flags)  # type: ignore[no-any-return]

    def recv(self, bufsize: int, flags: int) -> bytes:
        return self.lower.recv(bufsize, flags)  # type: ignore[no-any-return]


class BenchFastLayer(LayeredProvider):
    """:class:`BenchRelayLayer` in the fast form: ``send`` and ``recv``
    defined on the layer's socket class (see ``SOCKET_OPERATIONS``)."""

    name = "benchfast"
    description = (
        "benchmark layer: send/recv pass-through on its socket class, the fast form (option: tag)"
    )
    socket_class = _FastRelaySocket


def layered_spec(layer: str, count: int, base: str) -> str:
    """``layer[tag=1],...,layer[tag=count],base``."""
    return ",".join([*(f"{layer}[tag={i}]" for i in range(1, count + 1)), base])


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
    rounds=7,
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
    rounds=3,
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


# -- results -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Stat:
    """Median and range of one quantity over the rounds."""

    median: float
    min: float
    max: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        vals = tuple(float(v) for v in values)
        return cls(statistics.median(vals), min(vals), max(vals), vals)

    def to_dict(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "values": list(self.values),
        }


@dataclasses.dataclass(frozen=True)
class Target:
    """``result op value``: ``>=``, ``<=`` or ``==`` (the latter within ``tolerance``)."""

    op: str
    value: float
    tolerance: float = 0.0

    def met(self, x: float) -> bool:
        if self.op == ">=":
            return x >= self.value
        if self.op == "<=":
            return x <= self.value
        return abs(x - self.value) <= self.tolerance

    def __str__(self) -> str:
        if self.op == "==" and self.tolerance:
            return f"{self.value:g} ± {self.tolerance:g}"
        return f"{self.op} {self.value:g}"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "value": self.value, "tolerance": self.tolerance}


#: Row statuses.
PASS: Final = "pass"
MISS: Final = "miss"
INFO: Final = "info"
NOT_INSTALLED: Final = "not installed"
UNAVAILABLE: Final = "unavailable"


@dataclasses.dataclass
class Row:
    """One measure: baseline and chain values, their comparison, the target."""

    key: str
    title: str
    unit: str
    baseline_label: str
    chain_label: str
    #: "ratio" (chain / baseline), "difference" (chain - baseline) or
    #: "per-layer" ((chain - baseline) / layers).
    compare: str
    target: Target | None
    baseline: Stat | None = None
    chain: Stat | None = None
    result: Stat | None = None
    status: str = INFO
    note: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def finish(self, baseline: Sequence[float], chain: Sequence[float], layers: int = 1) -> Row:
        """Fill in the statistics from per-round values, and the status."""
        if self.compare == "ratio":
            results = [c / b for b, c in zip(baseline, chain, strict=True)]
        elif self.compare == "difference":
            results = [c - b for b, c in zip(baseline, chain, strict=True)]
        else:
            results = [(c - b) / layers for b, c in zip(baseline, chain, strict=True)]
        self.baseline = Stat.of(baseline)
        self.chain = Stat.of(chain)
        self.result = Stat.of(results)
        if self.target is None:
            self.status = INFO
        else:
            self.status = PASS if self.target.met(self.result.median) else MISS
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "unit": self.unit,
            "baseline_label": self.baseline_label,
            "chain_label": self.chain_label,
            "compare": self.compare,
            "baseline": None if self.baseline is None else self.baseline.to_dict(),
            "chain": None if self.chain is None else self.chain.to_dict(),
            "result": None if self.result is None else self.result.to_dict(),
            "target": None if self.target is None else self.target.to_dict(),
            "status": self.status,
            "note": self.note,
            "extra": self.extra,
        }


@dataclasses.dataclass
class Report:
    """A whole run: the machine, the mode, the rows."""

    mode: str
    rounds: int
    machine: dict[str, Any]
    rows: list[Row]
    elapsed: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """The report :meth:`to_dict` (``--json``) describes."""

        def stat(d: Mapping[str, Any] | None) -> Stat | None:
            if d is None:
                return None
            return Stat(d["median"], d["min"], d["max"], tuple(d["values"]))

        rows = []
        for r in data["rows"]:
            t = r["target"]
            rows.append(
                Row(
                    r["key"],
                    r["title"],
                    r["unit"],
                    r["baseline_label"],
                    r["chain_label"],
                    r["compare"],
                    None if t is None else Target(t["op"], t["value"], t["tolerance"]),
                    stat(r["baseline"]),
                    stat(r["chain"]),
                    stat(r["result"]),
                    r["status"],
                    r["note"],
                    dict(r["extra"]),
                )
            )
        return cls(data["mode"], data["rounds"], dict(data["machine"]), rows, data["elapsed_s"])

    def to_dict(self) -> dict[str, Any]:
        from . import __version__

        return {
            "wspframe": __version__,
            "mode": self.mode,
            "rounds": self.rounds,
            "elapsed_s": round(self.elapsed, 3),
            "machine": self.machine,
            "rows": [r.to_dict() for r in self.rows],
        }


def machine() -> dict[str, Any]:
    """The machine, as the report describes it."""
    model = ""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        model = found.group(1).strip() if found else ""
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": model or platform.processor() or "unknown",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "valgrind": _valgrind_version(),
        "load_average": load,
    }


def _valgrind_version() -> str | None:
    exe = shutil.which("valgrind")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


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
    a: Callable[[int], float], b: Callable[[int], float], total: int, step: int
) -> tuple[float, float]:
    """Run ``a`` and ``b`` for ``total`` units each, in alternating slices of
    ``step`` (A B B A A B ...); return their summed seconds."""
    ta = tb = 0.0
    done = 0
    flip = False
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


def _stream_round(
    a: Callable[[int], float], b: Callable[[int], float], chunks: int, step: int
) -> tuple[float, float]:
    """One round of a throughput row: warm both up, then interleave; MiB/s each."""
    _interleave(a, b, step, step)
    gc.collect()
    ta, tb = _interleave(a, b, chunks, step)
    return chunks * CHUNK / ta / MIB, chunks * CHUNK / tb / MIB


def throughput(ctx: Context, row: Row, spec: str) -> Row:
    """64 KiB lock-step throughput through ``spec`` vs its raw reference."""
    mode = ctx.mode
    base = _base_of(spec)
    chunks = mode.stream_bytes // CHUNK
    step = max(1, mode.stream_slice // CHUNK)
    raw_v: list[float] = []
    chain_v: list[float] = []
    with _host([spec]) as host:
        entry = _stream_entry(host, spec)
        for _ in range(mode.rounds):
            ra, rb = _raw_pair_for(base)
            ca, cb = _chain_pair(host, entry)
            try:
                if base != "memory":
                    _nodelay(ca, cb)
                raw, chain = _stream_round(
                    functools.partial(_lockstep, ra, rb),
                    functools.partial(_lockstep, ca, cb),
                    chunks,
                    step,
                )
            finally:
                _close(ra, rb, ca, cb)
            raw_v.append(raw)
            chain_v.append(chain)
    return row.finish(raw_v, chain_v)


def _rtt_round(
    a: Callable[[int], float], b: Callable[[int], float], count: int, step: int
) -> tuple[float, float]:
    """One round of a round-trip row: warm both up, then interleave; µs each."""
    _interleave(a, b, 200, 100)
    gc.collect()
    ta, tb = _interleave(a, b, count, step)
    return ta / count * 1e6, tb / count * 1e6


def round_trip(ctx: Context, row: Row, spec: str, pin: bool) -> Row:
    """64 B round trips through ``spec`` (both ends) vs its raw reference, in µs."""
    mode = ctx.mode
    base = _base_of(spec)
    cpu = ctx.cpu if pin else None
    raw_v: list[float] = []
    chain_v: list[float] = []
    pinned_ok = True
    with _host([spec]) as host:
        entry = _stream_entry(host, spec)
        for _ in range(mode.rounds):
            with _pinned(cpu) as ok:
                pinned_ok = pinned_ok and (ok or not pin)
                ra, rb = _raw_pair_for(base)
                ca, cb = _chain_pair(host, entry)
                echoes = _EchoServers()
                try:
                    if base != "memory":
                        _nodelay(ca, cb)
                    echoes.start(_echo, (rb, cpu), functools.partial(ra.shutdown, 1))
                    echoes.start(_echo, (cb, cpu), functools.partial(ca.shutdown, 1))
                    raw, chain = _rtt_round(
                        functools.partial(_ping, ra),
                        functools.partial(_ping, ca),
                        mode.rtt_count,
                        mode.rtt_slice,
                    )
                finally:
                    echoes.close()
                    _close(ra, rb, ca, cb)
            raw_v.append(raw)
            chain_v.append(chain)
    row.finish(raw_v, chain_v)
    if pin and not pinned_ok:
        row.note = _join(row.note, "pinning not allowed here: measured unpinned")
    return row


def _create_raw(n: int) -> float:
    make = _socket.socket
    start = time.perf_counter()
    for _ in range(n):
        make(_socket.AF_INET, _socket.SOCK_STREAM).close()
    return time.perf_counter() - start


def _create_chain(host: Host, n: int) -> float:
    make = host.socket
    start = time.perf_counter()
    for _ in range(n):
        make(AF_INET, SOCK_STREAM).close()
    return time.perf_counter() - start


def create_close(ctx: Context, row: Row, spec: str) -> Row:
    """``host.socket()`` + ``close()`` through ``spec`` (the first entry of the
    catalog) vs ``socket.socket()`` + ``close()``, in µs per pair."""
    mode = ctx.mode
    raw_v: list[float] = []
    chain_v: list[float] = []
    with _host([spec]) as host:
        with host.socket(AF_INET, SOCK_STREAM) as probe:
            row.extra["chain"] = list(probe.chain)
        chained = functools.partial(_create_chain, host)
        for _ in range(mode.rounds):
            _interleave(_create_raw, chained, mode.create_slice, mode.create_slice)
            gc.collect()
            tr, tc = _interleave(_create_raw, chained, mode.create_count, mode.create_slice)
            raw_v.append(tr / mode.create_count * 1e6)
            chain_v.append(tc / mode.create_count * 1e6)
    return row.finish(raw_v, chain_v)


_PRODUCERS: Final = 2


def _handoff(producers: Sequence[Callable[[], None]], consume: Callable[[], None]) -> float:
    """Run ``producers`` in threads and ``consume`` here, all released at once;
    the consumer's seconds."""
    barrier = threading.Barrier(len(producers) + 1)
    errors: list[BaseException] = []

    def run(fn: Callable[[], None]) -> None:
        try:
            barrier.wait()
            fn()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(p,), name="wspframe-bench-producer", daemon=True)
        for p in producers
    ]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    consume()
    elapsed = time.perf_counter() - start
    for t in threads:
        t.join(30)
    if errors:
        raise errors[0]
    return elapsed


def _consumer(get: Callable[[], Any], total: int) -> Callable[[], None]:
    def consume() -> None:
        for _ in range(total):
            get()

    return consume


def _putter(put: Callable[[Any], None], key: int, ovs: Sequence[Overlapped]) -> Callable[[], None]:
    def produce() -> None:
        for ov in ovs:
            put((key, ov, SMALL, 0))

    return produce


def _completer(
    complete: Callable[[int, Any, int, int], None], handle: int, ovs: Sequence[Overlapped]
) -> Callable[[], None]:
    def produce() -> None:
        for ov in ovs:
            complete(handle, ov, 0, SMALL)

    return produce


def _sender(sock: Socket, count: int) -> Callable[[], None]:
    def produce() -> None:
        send = sock.send
        msg = _SMALL_DATA
        for _ in range(count):
            send(msg)

    return produce


def _queue_slice(items: Sequence[Sequence[Overlapped]]) -> float:
    """The baseline: the same hand-off over a bare SimpleQueue."""
    q: queue.SimpleQueue[tuple[int, Overlapped, int, int]] = queue.SimpleQueue()
    total = sum(len(x) for x in items)
    return _handoff(
        [_putter(q.put, key, ovs) for key, ovs in enumerate(items)], _consumer(q.get, total)
    )


def _started(groups: int, n: int) -> list[list[Overlapped]]:
    """``groups`` lists of ``n`` overlapped operations started (pending) for a receive."""
    out = []
    for _ in range(groups):
        ovs = [Overlapped() for _ in range(n)]
        for ov in ovs:
            ov._start("recv", None)
        out.append(ovs)
    return out


def _port_slice(
    port: CompletionPort,
    complete: Callable[[int, Any, int, int], None],
    handles: Sequence[int],
    items: Sequence[Sequence[Overlapped]],
) -> float:
    total = sum(len(x) for x in items)
    producers = [_completer(complete, h, ovs) for h, ovs in zip(handles, items, strict=True)]
    return _handoff(producers, _consumer(port.get, total))


def _port_round(host: Host, entry: Any, mode: Mode) -> tuple[float, float]:
    """One round of the completion-port row: completions per second (thousands),
    SimpleQueue and port."""
    complete = host.upcalls.complete_overlapped_request
    pairs = [_chain_pair(host, entry, WSA_FLAG_OVERLAPPED) for _ in range(_PRODUCERS)]
    port = CompletionPort()
    try:
        for key, (a, _) in enumerate(pairs):
            port.associate(a, key=key)
        handles = [a.fileno() for a, _ in pairs]
        warm = _started(len(handles), 200)
        _queue_slice(warm)
        _port_slice(port, complete, handles, warm)
        tq = tp = 0.0
        done = 0
        flip = False
        while done < mode.port_count:
            n = min(mode.port_slice, mode.port_count - done)
            items = _started(len(handles), n)
            gc.collect()
            if flip:
                tp += _port_slice(port, complete, handles, items)
                tq += _queue_slice(items)
            else:
                tq += _queue_slice(items)
                tp += _port_slice(port, complete, handles, items)
            flip = not flip
            done += n
    finally:
        port.close()
        for a, b in pairs:
            _close(a, b)
    total = mode.port_count * _PRODUCERS
    return total / tq / 1e3, total / tp / 1e3


def completion_port(ctx: Context, row: Row) -> Row:
    """Completions per second through a port (producer threads complete pending
    operations through the upcall, as a provider does) vs a bare SimpleQueue."""
    raw_v: list[float] = []
    chain_v: list[float] = []
    with _host(["memory"]) as host:
        entry = _stream_entry(host, "memory")
        for _ in range(ctx.mode.rounds):
            raw, chain = _port_round(host, entry, ctx.mode)
            raw_v.append(raw)
            chain_v.append(chain)
    row.extra["producers"] = _PRODUCERS
    return row.finish(raw_v, chain_v)


def _e2e_slice(port: CompletionPort, pairs: Sequence[tuple[Socket, Socket]], n: int) -> float:
    for a, _ in pairs:
        for _ in range(n):
            a.recv_overlapped(SMALL, Overlapped())
    producers = [_sender(b, n) for _, b in pairs]
    return _handoff(producers, _consumer(port.get, n * len(pairs)))


def _e2e_round(host: Host, entry: Any, mode: Mode) -> tuple[float, float]:
    pairs = [_chain_pair(host, entry, WSA_FLAG_OVERLAPPED) for _ in range(_PRODUCERS)]
    port = CompletionPort()
    try:
        for key, (a, _) in enumerate(pairs):
            port.associate(a, key=key)
        _e2e_slice(port, pairs, 200)
        _queue_slice(_started(len(pairs), 200))
        tq = tp = 0.0
        done = 0
        flip = False
        while done < mode.port_count:
            n = min(mode.port_slice, mode.port_count - done)
            items = _started(len(pairs), n)
            gc.collect()
            if flip:
                tp += _e2e_slice(port, pairs, n)
                tq += _queue_slice(items)
            else:
                tq += _queue_slice(items)
                tp += _e2e_slice(port, pairs, n)
            flip = not flip
            done += n
    finally:
        port.close()
        for a, b in pairs:
            _close(a, b)
    total = mode.port_count * _PRODUCERS
    return total / tq / 1e3, total / tp / 1e3


def completion_port_end_to_end(ctx: Context, row: Row) -> Row:
    """Memory ``recv_overlapped`` completed by the peer's ``send`` in producer
    threads, consumed from a port, vs a bare SimpleQueue hand-off."""
    raw_v: list[float] = []
    chain_v: list[float] = []
    with _host(["memory"]) as host:
        entry = _stream_entry(host, "memory")
        for _ in range(ctx.mode.rounds):
            raw, chain = _e2e_round(host, entry, ctx.mode)
            raw_v.append(raw)
            chain_v.append(chain)
    row.extra["producers"] = _PRODUCERS
    return row.finish(raw_v, chain_v)


class _Writer:
    """A thread writing 64 KiB chunks to a descriptor, ``n`` per job: the
    sending end of a stream whose receiving end the caller reads."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._jobs: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="wspframe-bench-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        fd = self._fd
        data = _CHUNK_DATA
        view = memoryview(data)
        write = os.write
        try:
            while (n := self._jobs.get()) is not None:
                for _ in range(n):
                    sent = write(fd, data)
                    while sent < CHUNK:
                        sent += write(fd, view[sent:])
        except OSError:
            return

    def stream(self, rfd: int, chunks: int) -> float:
        """Have ``chunks`` chunks written and read them all from ``rfd``; seconds."""
        read = os.read
        need = chunks * CHUNK
        start = time.perf_counter()
        self._jobs.put(chunks)
        while need:
            got = len(read(rfd, min(need, 4 * CHUNK)))
            if not got:
                raise ConnectionError("end of stream during the benchmark")
            need -= got
        return time.perf_counter() - start

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(10)


def redirect_throughput(ctx: Context, row: Row) -> Row:
    """``os.write`` -> peer ``os.read`` on redirected memory handles vs a raw
    socketpair, streaming: a writer thread and the reader here (the pump is a
    pipeline stage; lock-step would measure its latency instead)."""
    mode = ctx.mode
    chunks = mode.stream_bytes // CHUNK
    step = max(1, mode.redirect_slice // CHUNK)
    raw_v: list[float] = []
    chain_v: list[float] = []
    with _host(["memory"]) as host:
        entry = _stream_entry(host, "memory")
        for _ in range(mode.rounds):
            x, y = _socket.socketpair()
            a, b = _chain_pair(host, entry)
            writers: list[_Writer] = []
            try:
                a.redirect()
                b.redirect()
                writers.append(_Writer(x.fileno()))
                writers.append(_Writer(a.fileno()))
                raw, chain = _stream_round(
                    functools.partial(writers[0].stream, y.fileno()),
                    functools.partial(writers[1].stream, b.fileno()),
                    chunks,
                    step,
                )
            finally:
                _close(a, b, x, y)  # ends the writers' streams
                for w in writers:
                    w.close()
            raw_v.append(raw)
            chain_v.append(chain)
    return row.finish(raw_v, chain_v)


def redirect_round_trip(ctx: Context, row: Row) -> Row:
    """64 B round trip with ``os.write``/``os.read`` on redirected memory handles
    (both ends) minus the same over the Socket API, same CPU, in µs."""
    mode = ctx.mode
    cpu = ctx.cpu
    api_v: list[float] = []
    redirected_v: list[float] = []
    pinned_ok = True
    count = max(mode.rtt_count // 2, mode.rtt_slice)
    with _host(["memory"]) as host:
        entry = _stream_entry(host, "memory")
        for _ in range(mode.rounds):
            with _pinned(cpu) as ok:
                pinned_ok = pinned_ok and ok
                c, d = _chain_pair(host, entry)
                a, b = _chain_pair(host, entry)
                echoes = _EchoServers()
                try:
                    a.redirect()  # the redirector thread starts here, pinned too
                    b.redirect()
                    echoes.start(_echo, (d, cpu), functools.partial(c.shutdown, 1))
                    echoes.start(_echo_fd, (b.fileno(), cpu), functools.partial(a.shutdown, 1))
                    api, redirected = _rtt_round(
                        functools.partial(_ping, c),
                        functools.partial(_ping_fd, a.fileno()),
                        count,
                        mode.rtt_slice,
                    )
                finally:
                    echoes.close()
                    _close(a, b, c, d)
            api_v.append(api)
            redirected_v.append(redirected)
    row.finish(api_v, redirected_v)
    if not pinned_ok:
        row.note = _join(row.note, "pinning not allowed here: measured unpinned")
    return row


# -- instructions per layer (callgrind) ----------------------------------------------------------
#: The C function whose entry cuts the callgrind profile (``os.getppid()``).
_MARKER: Final = "os_getppid"
_CG_VARIANTS: Final = ("raw", "bare", "bare2", "pass", "fast", "fast2x", "relay", "relay2x")
#: Layers in the chains measured under callgrind.
CALLGRIND_LAYERS: Final = 3


def _send_phase(send: Callable[[bytes], Any], msg: bytes, n: int) -> None:
    for _ in range(n):
        send(msg)


def _recv_phase(recv: Callable[[int], Any], size: int, n: int) -> None:
    for _ in range(n):
        recv(size)


def _own_copy(fn: Callable[..., None]) -> Callable[..., None]:
    """``fn`` with a code object of its own: CPython specializes bytecode per
    code object, and a call site that served another variant first (a C
    method, then a Python one) would stay deoptimized for thousands of calls."""
    copy: Callable[..., None] = types.FunctionType(fn.__code__.replace(), fn.__globals__)
    return copy


def _callgrind_child(ops: int, layers: int, batch: int) -> None:
    """Run under callgrind: the measured phases, separated by ``os.getppid()``.

    Per variant (raw TCP, bare tcpip, bare tcpip again as a control,
    ``layers`` passthrough layers, ``layers`` and ``2 * layers`` benchfast
    layers, the same of benchrelay layers), ``ops //
    batch`` times: ``batch`` sends of 16 bytes, then ``batch`` receives of 16
    bytes, each batch its own profile part.  Each variant runs its own copy of
    the loops, warmed up first, so every instruction measured is specialized.
    """
    specs = {
        "bare": "tcpip",
        "bare2": "tcpip",  # a control: how far two identical chains differ
        "pass": layered_spec("passthrough", layers, "tcpip"),
        "fast": layered_spec(BenchFastLayer.name, layers, "tcpip"),
        "fast2x": layered_spec(BenchFastLayer.name, 2 * layers, "tcpip"),
        "relay": layered_spec(BenchRelayLayer.name, layers, "tcpip"),
        "relay2x": layered_spec(BenchRelayLayer.name, 2 * layers, "tcpip"),
    }
    msg = b"\x00" * 16
    size = len(msg)
    with _host(sorted(set(specs.values()))) as host:
        pairs: list[tuple[Any, Any]] = [_raw_tcp_pair()]
        for name in _CG_VARIANTS[1:]:
            pairs.append(_chain_pair(host, _stream_entry(host, specs[name])))
        try:
            phases = []
            for a, b in pairs:
                _nodelay(a, b)
                send_phase, recv_phase = _own_copy(_send_phase), _own_copy(_recv_phase)
                for _ in range(4):  # bind every slot, specialize every instruction
                    send_phase(a.send, msg, batch)
                    recv_phase(b.recv, size, batch)
                phases.append((send_phase, recv_phase, a.send, b.recv))
            gc.collect()
            gc.disable()
            mark = os.getppid
            for send_phase, recv_phase, send, recv in phases:
                for _ in range(ops // batch):
                    mark()
                    send_phase(send, msg, batch)
                    mark()
                    recv_phase(recv, size, batch)
            mark()
            gc.enable()
        finally:
            for a, b in pairs:
                _close(a, b)


def _callgrind_command(out: Path, ops: int, layers: int, batch: int) -> list[str]:
    valgrind = shutil.which("valgrind") or "valgrind"
    code = (
        f"from wspframe._bench import _callgrind_child; _callgrind_child({ops}, {layers}, {batch})"
    )
    return [
        valgrind,
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        f"--dump-before={_MARKER}",
        "--dump-instr=no",
        "--collect-jumps=no",
        sys.executable,
        "-c",
        code,
    ]


def _callgrind_parts(folder: Path) -> list[int]:
    """The instruction totals of the profile parts in ``folder``, in order."""
    parts: list[tuple[int, int]] = []
    for path in folder.glob("cg.out*"):
        text = path.read_text(encoding="utf-8", errors="replace")
        part = re.search(r"^part:\s*(\d+)", text, re.MULTILINE)
        total = re.search(r"^(?:totals|summary):\s*(\d+)", text, re.MULTILINE)
        if part and total:
            parts.append((int(part.group(1)), int(total.group(1))))
    return [t for _, t in sorted(parts)]


def _per_op(parts: Sequence[int], ops: int, batch: int) -> dict[str, dict[str, float]]:
    """Instructions per send and per recv for each variant, from the parts."""
    batches = ops // batch
    need = 1 + 2 * batches * len(_CG_VARIANTS)
    if len(parts) < need:
        raise RuntimeError(
            f"callgrind gave {len(parts)} profile parts, expected at least {need}: "
            f"is the marker function {_MARKER!r} visible (a Python built with symbols)?"
        )
    phases = parts[1:need]
    out: dict[str, dict[str, float]] = {}
    for i, name in enumerate(_CG_VARIANTS):
        mine = phases[i * 2 * batches : (i + 1) * 2 * batches]
        out[name] = {
            "send": sum(mine[0::2]) / (batches * batch),
            "recv": sum(mine[1::2]) / (batches * batch),
        }
    return out


def callgrind_counts(
    ops: int, layers: int, batch: int, runs: int = 2
) -> list[dict[str, dict[str, float]]]:
    """Run the callgrind harness ``runs`` times (in parallel); per run, the
    instructions per operation of each variant."""
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = "0"
    env["WSPFRAME_PLUGINS"] = ""
    with tempfile.TemporaryDirectory(prefix="wspframe-callgrind-") as tmp:
        procs = []
        for i in range(runs):
            folder = Path(tmp) / f"run{i}"
            folder.mkdir()
            cmd = _callgrind_command(folder / "cg.out", ops, layers, batch)
            procs.append(
                (
                    folder,
                    subprocess.Popen(
                        cmd,
                        cwd=folder,
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    ),
                )
            )
        results = []
        for folder, proc in procs:
            try:
                _, err = proc.communicate(timeout=600)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise RuntimeError("callgrind run timed out") from None
            if proc.returncode != 0:
                tail = "\n".join(err.strip().splitlines()[-15:])
                raise RuntimeError(f"callgrind run failed ({proc.returncode}):\n{tail}")
            results.append(_per_op(_callgrind_parts(folder), ops, batch))
    return results


def instructions(ctx: Context, row: Row, variant: str, lower: str, layers: int = 0) -> Row:
    """An instruction row: ``variant`` against ``lower``, per operation (per
    layer when ``layers``), from the callgrind runs (made once per context)."""
    if shutil.which("valgrind") is None:
        row.status = UNAVAILABLE
        row.note = _join(row.note, "valgrind not found (apt-get install valgrind)")
        return row
    try:
        runs = ctx.callgrind()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        row.status = UNAVAILABLE
        row.note = _join(row.note, f"callgrind failed: {exc}")
        return row

    def avg(run: dict[str, dict[str, float]], name: str) -> float:
        return (run[name]["send"] + run[name]["recv"]) / 2

    row.finish([avg(r, lower) for r in runs], [avg(r, variant) for r in runs], layers or 1)
    assert row.result is not None
    per_op = {
        op: [(r[variant][op] - r[lower][op]) / (layers or 1) for r in runs]
        for op in ("send", "recv")
    }
    spread = _spread(row.result.values)
    row.extra.update(
        layers=layers,
        ops=ctx.mode.callgrind_ops,
        runs=len(runs),
        per_op=per_op,
        reproducibility=spread,
    )
    shown = (
        f"{spread:.3%}"
        if row.compare == "ratio" or abs(row.result.median) >= 1
        else (f"{spread:.2f} instructions")
    )
    control = statistics.mean(avg(r, "bare2") - avg(r, "bare") for r in runs)
    row.extra["control"] = control
    row.note = _join(
        row.note,
        f"send {statistics.mean(per_op['send']):.1f}, recv {statistics.mean(per_op['recv']):.1f}; "
        f"{len(runs)} runs differ by {shown}; two identical bare chains differ by "
        f"{control:.1f} per op",
    )
    return row


def _spread(values: Sequence[float]) -> float:
    """Relative difference between the extreme values (0 for one value)."""
    if len(values) < 2:
        return 0.0
    hi, lo = max(values), min(values)
    scale = max(abs(hi), abs(lo))
    if scale < 1.0:  # ~0 instructions: compare absolutely
        return hi - lo
    return (hi - lo) / scale


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b


# -- the suite ---------------------------------------------------------------------------------
Plan = list[tuple[Row, Callable[[Row], Row]]]


def _nothing(row: Row) -> Row:
    return row


def _faults_installed() -> bool:
    try:
        host = Host(config=False)
    except Exception:
        return False
    return "faults" in host.discovery.providers


def default_rows(ctx: Context) -> Plan:
    """The rows of the issue's targets table, with the informational ones next to them."""
    tcp3p = layered_spec("passthrough", 3, "tcpip")
    tcp6p = layered_spec("passthrough", MAX_LAYERS, "tcpip")
    tcp3r = layered_spec(BenchFastLayer.name, 3, "tcpip")
    tcp6r = layered_spec(BenchFastLayer.name, MAX_LAYERS, "tcpip")
    out: Plan = []

    def tput(key: str, title: str, spec: str, target: Target | None, note: str = "") -> None:
        ref = _reference(_base_of(spec))
        row = Row(key, title, "MiB/s", ref, spec, "ratio", target, note=note)
        out.append((row, functools.partial(throughput, ctx, spec=spec)))

    def rtt(key: str, title: str, spec: str, pin: bool, target: Target | None) -> None:
        ref = _reference(_base_of(spec))
        row = Row(key, title, "µs", ref, spec, "ratio", target)
        out.append((row, functools.partial(round_trip, ctx, spec=spec, pin=pin)))

    seven = "7-long chain: MAX_PROTOCOL_CHAIN counts the base"
    tput("tput.tcpip.bare", "64 KiB throughput, bare tcpip / raw TCP", "tcpip", None)
    tput(
        "tput.tcpip.pass3",
        "64 KiB throughput, 3 passthrough layers over tcpip / raw TCP",
        tcp3p,
        Target(">=", 0.95),
        "passthrough overrides nothing: skipped",
    )
    tput(
        "tput.tcpip.relay3",
        "64 KiB throughput, 3 send/recv pass-through layers over tcpip / raw TCP",
        tcp3r,
        Target(">=", 0.95),
    )
    tput(
        "tput.tcpip.pass6",
        "64 KiB throughput, 6 passthrough layers over tcpip / raw TCP",
        tcp6p,
        Target(">=", 0.93),
        f"{seven}; passthrough overrides nothing: skipped",
    )
    tput(
        "tput.tcpip.relay6",
        "64 KiB throughput, 6 send/recv pass-through layers over tcpip / raw TCP",
        tcp6r,
        Target(">=", 0.93),
        seven,
    )
    tput(
        "tput.memory",
        "64 KiB throughput, memory / AF_UNIX socketpair",
        "memory",
        Target(">=", 1.5),
    )
    rtt(
        "rtt.tcpip.bare.pinned",
        "64 B round trip, bare tcpip / raw TCP, same CPU",
        "tcpip",
        True,
        None,
    )
    rtt(
        "rtt.tcpip.pass3.pinned",
        "64 B round trip, 3 passthrough layers over tcpip / raw TCP, same CPU",
        tcp3p,
        True,
        Target("<=", 1.05),
    )
    rtt(
        "rtt.tcpip.relay3.pinned",
        "64 B round trip, 3 send/recv pass-through layers over tcpip / raw TCP, same CPU",
        tcp3r,
        True,
        Target("<=", 1.05),
    )
    rtt(
        "rtt.tcpip.relay3.unpinned",
        "64 B round trip, 3 send/recv pass-through layers over tcpip / raw TCP, unpinned",
        tcp3r,
        False,
        None,
    )
    rtt(
        "rtt.tcpip.pass6.pinned",
        "64 B round trip, 6 passthrough layers over tcpip / raw TCP, same CPU",
        tcp6p,
        True,
        Target("<=", 1.08),
    )
    rtt(
        "rtt.tcpip.relay6.pinned",
        "64 B round trip, 6 send/recv pass-through layers over tcpip / raw TCP, same CPU",
        tcp6r,
        True,
        Target("<=", 1.08),
    )
    rtt(
        "rtt.memory.pinned",
        "64 B round trip, memory / AF_UNIX socketpair, same CPU",
        "memory",
        True,
        Target("<=", 1.2),
    )
    rtt(
        "rtt.memory.unpinned",
        "64 B round trip, memory / AF_UNIX socketpair, unpinned",
        "memory",
        False,
        None,
    )

    per_layer = (
        ("instr.layer", "fast", "fast form (send/recv on the socket class)", Target("<=", 600)),
        ("instr.layer.spi", "relay", "provider-method form", None),
    )
    for key, variant, form, target in per_layer:
        row = Row(
            key,
            f"instructions per send/recv pass-through layer per operation, {form}",
            "instr",
            f"{CALLGRIND_LAYERS} layers over tcpip",
            f"{2 * CALLGRIND_LAYERS} layers over tcpip",
            "per-layer",
            target,
            note=f"what each of {CALLGRIND_LAYERS} more layers adds",
        )
        out.append(
            (
                row,
                functools.partial(
                    instructions,
                    ctx,
                    variant=f"{variant}2x",
                    lower=variant,
                    layers=CALLGRIND_LAYERS,
                ),
            )
        )
    first_i = Row(
        "instr.first",
        "instructions per layer per operation, 3 fast-form layers over a bare chain",
        "instr",
        "bare tcpip",
        layered_spec(BenchFastLayer.name, CALLGRIND_LAYERS, "tcpip"),
        "per-layer",
        None,
        note="a bare chain calls the OS socket natively; under layers, tcpip's context function",
    )
    out.append(
        (
            first_i,
            functools.partial(
                instructions, ctx, variant="fast", lower="bare", layers=CALLGRIND_LAYERS
            ),
        )
    )
    pass_i = Row(
        "instr.passthrough",
        "instructions per passthrough layer per operation (overrides nothing)",
        "instr",
        "bare tcpip",
        layered_spec("passthrough", CALLGRIND_LAYERS, "tcpip"),
        "per-layer",
        Target("==", 0, 1.0),
    )
    out.append(
        (
            pass_i,
            functools.partial(
                instructions, ctx, variant="pass", lower="bare", layers=CALLGRIND_LAYERS
            ),
        )
    )
    base_i = Row(
        "instr.bare",
        "instructions per operation added by a bare tcpip chain to a raw socket",
        "instr",
        "raw TCP",
        "tcpip",
        "difference",
        None,
        note="the Socket method, calling the OS socket's method natively",
    )
    out.append((base_i, functools.partial(instructions, ctx, variant="bare", lower="raw")))

    out.append(
        (
            Row(
                "port",
                "completion port, completions per second / bare SimpleQueue hand-off",
                "k/s",
                "SimpleQueue",
                "port (upcall completion)",
                "ratio",
                Target(">=", 0.5),
                note=f"{_PRODUCERS} producer threads complete, 1 consumer",
            ),
            functools.partial(completion_port, ctx),
        )
    )
    out.append(
        (
            Row(
                "port.end_to_end",
                "completion port, memory recv_overlapped completed by the peer's send "
                "/ bare SimpleQueue hand-off",
                "k/s",
                "SimpleQueue",
                "memory + port",
                "ratio",
                None,
                note=f"{_PRODUCERS} producer threads send, 1 consumer",
            ),
            functools.partial(completion_port_end_to_end, ctx),
        )
    )
    out.append(
        (
            Row(
                "redirect.tput",
                "redirected handle (os.write -> peer os.read, memory) / raw socketpair",
                "MiB/s",
                "socketpair os.write/os.read",
                "memory, redirected",
                "ratio",
                Target(">=", 0.4),
            ),
            functools.partial(redirect_throughput, ctx),
        )
    )
    out.append(
        (
            Row(
                "redirect.rtt",
                "redirected handle, 64 B round trip added over the Socket API, same CPU",
                "µs",
                "memory Socket API",
                "memory, redirected",
                "difference",
                Target("<=", 20.0),
            ),
            functools.partial(redirect_round_trip, ctx),
        )
    )
    out.append(
        (
            Row(
                "create.tcpip.bare",
                "socket create + close, bare tcpip / raw socket.socket()",
                "µs",
                "socket.socket()",
                "tcpip",
                "ratio",
                None,
            ),
            functools.partial(create_close, ctx, spec="tcpip"),
        )
    )
    out.append(
        (
            Row(
                "create.tcpip.pass3",
                "socket create + close, 3 layers over tcpip / raw socket.socket()",
                "µs",
                "socket.socket()",
                tcp3p,
                "ratio",
                Target("<=", 2.0),
            ),
            functools.partial(create_close, ctx, spec=tcp3p),
        )
    )
    faults = Row(
        "tput.tcpip.faults",
        "64 KiB throughput, faults layer with nothing active over tcpip / raw TCP",
        "MiB/s",
        "raw TCP",
        "faults,tcpip",
        "ratio",
        Target(">=", 0.95),
    )
    if _faults_installed():
        out.append((faults, functools.partial(throughput, ctx, spec="faults,tcpip")))
    else:
        faults.status = NOT_INSTALLED
        faults.note = "no provider named 'faults' is discoverable (plugins/wspframe-faults)"
        out.append((faults, _nothing))
    return out


def spec_rows(ctx: Context, specs: Sequence[str]) -> Plan:
    """Rows for chains named on the command line: throughput, round trip, create + close."""
    out: Plan = []
    for spec in specs:
        base = _base_of(spec)
        ref = _reference(base)
        out.append(
            (
                Row(
                    f"tput:{spec}",
                    f"64 KiB throughput, {spec} / {ref}",
                    "MiB/s",
                    ref,
                    spec,
                    "ratio",
                    None,
                ),
                functools.partial(throughput, ctx, spec=spec),
            )
        )
        out.append(
            (
                Row(
                    f"rtt:{spec}",
                    f"64 B round trip, {spec} / {ref}, same CPU",
                    "µs",
                    ref,
                    spec,
                    "ratio",
                    None,
                ),
                functools.partial(round_trip, ctx, spec=spec, pin=True),
            )
        )
        if base != "memory":
            out.append(
                (
                    Row(
                        f"create:{spec}",
                        f"socket create + close, {spec} / raw socket.socket()",
                        "µs",
                        "socket.socket()",
                        spec,
                        "ratio",
                        None,
                    ),
                    functools.partial(create_close, ctx, spec=spec),
                )
            )
    return out


def run(
    specs: Sequence[str] = (),
    *,
    mode: Mode = FULL,
    only: Sequence[str] = (),
    progress: TextIO | None = None,
) -> Report:
    """Run the benchmark: the default rows, or rows for ``specs``; ``only``
    keeps the rows whose key contains one of its strings."""
    ctx = Context(mode, progress)
    plan = spec_rows(ctx, specs) if specs else default_rows(ctx)
    if only:
        plan = [(row, fn) for row, fn in plan if any(o in row.key for o in only)]
    started = time.perf_counter()
    where = machine()
    rows: list[Row] = []
    for row, fn in plan:
        if row.status in (NOT_INSTALLED, UNAVAILABLE):
            rows.append(row)
            continue
        ctx.say(f"  {row.key} ...")
        t0 = time.perf_counter()
        try:
            fn(row)
        except Exception as exc:
            row.status = UNAVAILABLE
            row.note = _join(row.note, f"failed: {type(exc).__name__}: {exc}")
        ctx.say(f" {time.perf_counter() - t0:.1f} s\n")
        rows.append(row)
    try:
        where["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        pass
    return Report(
        mode=mode.name,
        rounds=mode.rounds,
        machine=where,
        rows=rows,
        elapsed=time.perf_counter() - started,
    )


# -- output -------------------------------------------------------------------------------------
def _num(x: float) -> str:
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _result(row: Row) -> tuple[str, str]:
    if row.result is None:
        return "-", "-"
    r = row.result
    if row.compare == "ratio":
        return f"{r.median:.3f}", f"{r.min:.3f}..{r.max:.3f}"
    unit = row.unit
    return f"{_num(r.median)} {unit}", f"{_num(r.min)}..{_num(r.max)}"


def _load(values: Any) -> str:
    if not values:
        return "?"
    return "/".join(f"{v:.2f}" for v in values)


def format_table(report: Report) -> str:
    """The report as a terminal table (every row: baseline, chain, result, spread,
    target, status), then notes."""
    m = report.machine
    lines = [
        f"wspframe bench ({report.mode} mode, {report.rounds} rounds, "
        f"{report.elapsed:.0f} s): {m.get('nproc')} CPUs ({m.get('cpu_model')}), "
        f"{m.get('implementation')} {m.get('python')}; load average "
        f"{_load(m.get('load_average'))} before, {_load(m.get('load_average_after'))} after",
        "each row: median over rounds of baseline and chain, and of the per-round "
        "ratio (chain / baseline) or difference, with its min-max",
        "",
    ]
    header = ("measure", "baseline", "chain", "result", "spread", "target", "status")
    body: list[tuple[str, ...]] = []
    notes: list[str] = []
    for row in report.rows:
        base = "-" if row.baseline is None else f"{_num(row.baseline.median)} {row.unit}"
        chain = "-" if row.chain is None else f"{_num(row.chain.median)} {row.unit}"
        result, spread = _result(row)
        target = "-" if row.target is None else str(row.target)
        body.append((row.title, base, chain, result, spread, target, row.status))
        if row.note:
            notes.append(f"  {row.key}: {row.note}")
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]
    widths[0] = min(widths[0], 86)

    def fmt(cells: tuple[str, ...]) -> str:
        first = cells[0] if len(cells[0]) <= widths[0] else cells[0][: widths[0] - 1] + "…"
        parts = [first.ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1], strict=True)]
        parts.append(cells[-1])
        return "  ".join(parts)

    lines.append(fmt(header))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(fmt(r) for r in body)
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines) + "\n"


def main(
    specs: Sequence[str],
    *,
    quick: bool,
    rounds: int | None,
    as_json: bool,
    only: Sequence[str],
    out: TextIO,
    progress: TextIO | None,
) -> int:
    """The ``wspframe bench`` command."""
    if specs:  # a bad spec is the command's error (exit 2), not a failed row
        checker = Host(config=False, providers=[BenchRelayLayer, BenchFastLayer])
        for spec in specs:
            checker.resolve_chain(spec)
    mode = QUICK if quick else FULL
    if rounds is not None:
        if rounds < 1:
            print(f"wspframe: error: --rounds must be >= 1, got {rounds}", file=sys.stderr)
            return 2
        mode = mode.with_rounds(rounds)
    report = run(specs, mode=mode, only=only, progress=progress)
    if as_json:
        json.dump(report.to_dict(), out, indent=2)
        out.write("\n")
    else:
        out.write(format_table(report))
    return 0
