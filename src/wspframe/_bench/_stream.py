"""Stream rows: 64 KiB throughput, 64 B round trip, create + close."""

from __future__ import annotations

import functools
import gc
import socket as _socket
import time
from collections.abc import Callable

from .._constants import AF_INET, SOCK_STREAM
from .._host import Host
from ._common import (
    CHUNK,
    MIB,
    Context,
    _base_of,
    _chain_pair,
    _close,
    _echo,
    _EchoServers,
    _host,
    _interleave,
    _lockstep,
    _nodelay,
    _ping,
    _pinned,
    _raw_pair_for,
    _stream_entry,
)
from ._report import Row, _join


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
