"""Completion-port rows: upcall completions and memory end to end vs a SimpleQueue."""

from __future__ import annotations

import functools
import gc
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from .._constants import WSA_FLAG_OVERLAPPED
from .._host import Host
from .._overlapped import Completion, CompletionPort, Overlapped
from .._socket import Socket
from ._common import _SMALL_DATA, SMALL, Context, Mode, _chain_pair, _close, _host, _stream_entry
from ._report import Row

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


def _slices(
    mode: Mode, other: Callable[[Sequence[Sequence[Overlapped]]], float], b_first: bool
) -> tuple[float, float]:
    """A round's measured slices: per slice fresh started operations, handed
    over the bare SimpleQueue and through ``other``, in alternating order
    (``other`` first in the first slice with ``b_first``); completions per
    second (thousands) of each."""
    tq = tp = 0.0
    done = 0
    flip = b_first
    while done < mode.port_count:
        n = min(mode.port_slice, mode.port_count - done)
        items = _started(_PRODUCERS, n)
        gc.collect()
        if flip:
            tp += other(items)
            tq += _queue_slice(items)
        else:
            tq += _queue_slice(items)
            tp += other(items)
        flip = not flip
        done += n
    total = mode.port_count * _PRODUCERS
    return total / tq / 1e3, total / tp / 1e3


def _port_round(host: Host, entry: Any, mode: Mode, b_first: bool) -> tuple[float, float]:
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
        return _slices(mode, functools.partial(_port_slice, port, complete, handles), b_first)
    finally:
        port.close()
        for a, b in pairs:
            _close(a, b)


def completion_port(ctx: Context, row: Row) -> Row:
    """Completions per second through a port (producer threads complete pending
    operations through the upcall, as a provider does) vs a bare SimpleQueue."""
    raw_v: list[float] = []
    chain_v: list[float] = []
    with _host(["memory"]) as host:
        entry = _stream_entry(host, "memory")
        for i in range(ctx.mode.rounds):
            raw, chain = _port_round(host, entry, ctx.mode, i % 2 == 1)
            raw_v.append(raw)
            chain_v.append(chain)
    row.extra["producers"] = _PRODUCERS
    return row.finish(raw_v, chain_v)


class PlainPort:
    """The least a completion port written in Python costs: ``complete``
    builds the packet a port hands out (a :class:`Completion`, made the
    fastest way there is) and queues it, ``get`` dequeues it, nothing else."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Completion] = queue.SimpleQueue()

    def complete(self, handle: int, overlapped: Any, error: int, nbytes: int) -> None:
        self._queue.put(_new_tuple(Completion, (handle, overlapped, nbytes, error)))

    def get(self) -> Completion:
        return self._queue.get()


_new_tuple: Final = tuple.__new__


def _plain_slice(items: Sequence[Sequence[Overlapped]]) -> float:
    port = PlainPort()
    total = sum(len(x) for x in items)
    producers = [_completer(port.complete, key, ovs) for key, ovs in enumerate(items)]
    return _handoff(producers, _consumer(port.get, total))


def port_floor(ctx: Context, row: Row) -> Row:
    """:class:`PlainPort` vs the bare SimpleQueue hand-off, as the port row
    measures: the floor of any completion port written in Python."""
    mode = ctx.mode
    raw_v: list[float] = []
    floor_v: list[float] = []
    for i in range(mode.rounds):
        warm = _started(_PRODUCERS, 200)
        _queue_slice(warm)
        _plain_slice(warm)
        raw, floor = _slices(mode, _plain_slice, i % 2 == 1)
        raw_v.append(raw)
        floor_v.append(floor)
    row.extra["producers"] = _PRODUCERS
    return row.finish(raw_v, floor_v)


def _e2e_slice(port: CompletionPort, pairs: Sequence[tuple[Socket, Socket]], n: int) -> float:
    for a, _ in pairs:
        for _ in range(n):
            a.recv_overlapped(SMALL, Overlapped())
    producers = [_sender(b, n) for _, b in pairs]
    return _handoff(producers, _consumer(port.get, n * len(pairs)))


def _e2e_round(host: Host, entry: Any, mode: Mode, b_first: bool) -> tuple[float, float]:
    pairs = [_chain_pair(host, entry, WSA_FLAG_OVERLAPPED) for _ in range(_PRODUCERS)]
    port = CompletionPort()
    try:
        for key, (a, _) in enumerate(pairs):
            port.associate(a, key=key)
        _e2e_slice(port, pairs, 200)
        _queue_slice(_started(len(pairs), 200))
        return _slices(mode, lambda items: _e2e_slice(port, pairs, len(items[0])), b_first)
    finally:
        port.close()
        for a, b in pairs:
            _close(a, b)


def completion_port_end_to_end(ctx: Context, row: Row) -> Row:
    """Memory ``recv_overlapped`` completed by the peer's ``send`` in producer
    threads, consumed from a port, vs a bare SimpleQueue hand-off."""
    raw_v: list[float] = []
    chain_v: list[float] = []
    with _host(["memory"]) as host:
        entry = _stream_entry(host, "memory")
        for i in range(ctx.mode.rounds):
            raw, chain = _e2e_round(host, entry, ctx.mode, i % 2 == 1)
            raw_v.append(raw)
            chain_v.append(chain)
    row.extra["producers"] = _PRODUCERS
    return row.finish(raw_v, chain_v)
