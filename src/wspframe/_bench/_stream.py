"""Stream rows: 64 KiB throughput, 64 B round trip, create + close."""

from __future__ import annotations

import functools
import gc
import socket as _socket
import time
from collections.abc import Callable
from typing import Any, NamedTuple

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
from ._layers import plain_frames
from ._report import Row, _join


def _stream_round(
    a: Callable[[int], float],
    b: Callable[[int], float],
    chunks: int,
    step: int,
    b_first: bool = False,
) -> tuple[float, float]:
    """One round of a throughput row: warm both up, then interleave; MiB/s each.

    Which side goes first alternates between rounds (``b_first``): on this
    machine, of two identical raw pairs the one warmed up second ran a few
    percent slower for the whole round.
    """
    _interleave(a, b, step, step, b_first)
    gc.collect()
    ta, tb = _interleave(a, b, chunks, step, b_first)
    return chunks * CHUNK / ta / MIB, chunks * CHUNK / tb / MIB


class Ends(NamedTuple):
    """A connected pair to measure (``a`` sends or pings, ``b`` receives or
    echoes) and the sockets under them, which close and shut down."""

    a: Any
    b: Any
    sock_a: Any
    sock_b: Any


#: Opens a fresh connected pair.
PairMaker = Callable[[], Ends]


def raw_pairs(base: str) -> PairMaker:
    """Pairs of the raw reference of ``base``: loopback TCP, or an AF_UNIX socketpair."""

    def make() -> Ends:
        a, b = _raw_pair_for(base)
        return Ends(a, b, a, b)

    return make


def chain_pairs(host: Host, spec: str) -> PairMaker:
    """Pairs through the chain ``spec`` of ``host`` (both ends)."""
    entry = _stream_entry(host, spec)
    tcp = _base_of(spec) != "memory"

    def make() -> Ends:
        a, b = _chain_pair(host, entry)
        if tcp:
            try:
                _nodelay(a, b)
            except BaseException:
                _close(a, b)
                raise
        return Ends(a, b, a, b)

    return make


def frame_pairs(frames: int) -> PairMaker:
    """Raw loopback TCP pairs, each end under ``frames`` plain Python frames."""

    def make() -> Ends:
        a, b = _raw_pair_for("tcpip")
        return Ends(plain_frames(a, frames), plain_frames(b, frames), a, b)

    return make


def compare_throughput(ctx: Context, row: Row, baseline: PairMaker, other: PairMaker) -> Row:
    """64 KiB lock-step throughput of ``other``'s pairs vs ``baseline``'s, a
    fresh pair of each per round."""
    mode = ctx.mode
    chunks = mode.stream_bytes // CHUNK
    step = max(1, mode.stream_slice // CHUNK)
    raw_v: list[float] = []
    chain_v: list[float] = []
    for i in range(mode.rounds):
        r = baseline()
        try:
            c = other()
        except BaseException:
            _close(r.sock_a, r.sock_b)
            raise
        try:
            raw, chain = _stream_round(
                functools.partial(_lockstep, r.a, r.b),
                functools.partial(_lockstep, c.a, c.b),
                chunks,
                step,
                i % 2 == 1,
            )
        finally:
            _close(r.sock_a, r.sock_b, c.sock_a, c.sock_b)
        raw_v.append(raw)
        chain_v.append(chain)
    return row.finish(raw_v, chain_v)


def throughput(ctx: Context, row: Row, spec: str) -> Row:
    """64 KiB lock-step throughput through ``spec`` vs its raw reference."""
    with _host([spec]) as host:
        return compare_throughput(ctx, row, raw_pairs(_base_of(spec)), chain_pairs(host, spec))


def throughput_control(ctx: Context, row: Row) -> Row:
    """A/A: a second raw TCP pair vs the first, measured as a chain is.  Its
    spread is the noise of the throughput rows on this machine."""
    return compare_throughput(ctx, row, raw_pairs("tcpip"), raw_pairs("tcpip"))


def throughput_frames(ctx: Context, row: Row, frames: int) -> Row:
    """Raw TCP under ``frames`` plain Python frames vs raw TCP: the floor of
    any Python chain that runs as many frames per call."""
    return compare_throughput(ctx, row, raw_pairs("tcpip"), frame_pairs(frames))


def _rtt_round(
    a: Callable[[int], float],
    b: Callable[[int], float],
    count: int,
    step: int,
    b_first: bool = False,
) -> tuple[float, float]:
    """One round of a round-trip row: warm both up, then interleave; µs each
    (``b_first`` as for :func:`_stream_round`)."""
    _interleave(a, b, 200, 100, b_first)
    gc.collect()
    ta, tb = _interleave(a, b, count, step, b_first)
    return ta / count * 1e6, tb / count * 1e6


def compare_round_trip(
    ctx: Context, row: Row, baseline: PairMaker, other: PairMaker, pin: bool
) -> Row:
    """64 B round trips over ``other``'s pairs vs ``baseline``'s (an echo
    thread at ``b``), a fresh pair of each per round, in µs."""
    mode = ctx.mode
    cpu = ctx.cpu if pin else None
    raw_v: list[float] = []
    chain_v: list[float] = []
    pinned_ok = True
    for i in range(mode.rounds):
        with _pinned(cpu) as ok:
            pinned_ok = pinned_ok and (ok or not pin)
            r = baseline()
            try:
                c = other()
            except BaseException:
                _close(r.sock_a, r.sock_b)
                raise
            echoes = _EchoServers()
            try:
                echoes.start(_echo, (r.b, cpu), functools.partial(r.sock_a.shutdown, 1))
                echoes.start(_echo, (c.b, cpu), functools.partial(c.sock_a.shutdown, 1))
                raw, chain = _rtt_round(
                    functools.partial(_ping, r.a),
                    functools.partial(_ping, c.a),
                    mode.rtt_count,
                    mode.rtt_slice,
                    i % 2 == 1,
                )
            finally:
                echoes.close()
                _close(r.sock_a, r.sock_b, c.sock_a, c.sock_b)
        raw_v.append(raw)
        chain_v.append(chain)
    row.finish(raw_v, chain_v)
    if pin and not pinned_ok:
        row.note = _join(row.note, "pinning not allowed here: measured unpinned")
    return row


def round_trip(ctx: Context, row: Row, spec: str, pin: bool) -> Row:
    """64 B round trips through ``spec`` (both ends) vs its raw reference, in µs."""
    with _host([spec]) as host:
        return compare_round_trip(ctx, row, raw_pairs(_base_of(spec)), chain_pairs(host, spec), pin)


def round_trip_frames(ctx: Context, row: Row, frames: int, pin: bool) -> Row:
    """64 B round trips over raw TCP under ``frames`` plain Python frames (both
    ends) vs raw TCP: the floor of any Python chain running as many frames."""
    return compare_round_trip(ctx, row, raw_pairs("tcpip"), frame_pairs(frames), pin)


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
        for i in range(mode.rounds):
            _interleave(_create_raw, chained, mode.create_slice, mode.create_slice, i % 2 == 1)
            gc.collect()
            tr, tc = _interleave(
                _create_raw, chained, mode.create_count, mode.create_slice, i % 2 == 1
            )
            raw_v.append(tr / mode.create_count * 1e6)
            chain_v.append(tc / mode.create_count * 1e6)
    return row.finish(raw_v, chain_v)
