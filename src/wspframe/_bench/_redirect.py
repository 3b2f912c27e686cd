"""Redirected-handle rows: ``os.write``/``os.read`` through the redirector."""

from __future__ import annotations

import functools
import os
import queue
import selectors
import socket as _socket
import threading
import time

from ._common import (
    _CHUNK_DATA,
    CHUNK,
    Context,
    _chain_pair,
    _close,
    _echo,
    _echo_fd,
    _EchoServers,
    _host,
    _pin_self,
    _ping,
    _ping_fd,
    _pinned,
    _stream_entry,
)
from ._report import Row, _join
from ._stream import _rtt_round, _stream_round


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
        for i in range(mode.rounds):
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
                    i % 2 == 1,
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
        for i in range(mode.rounds):
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
                        i % 2 == 1,
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


class _Pump:
    """The least any redirector costs: one thread, woken by epoll (or the
    platform's best selector), moving bytes between two sockets with
    ``os.read``/``os.write``.  The end of one stream ends the other (a
    shutdown for writing), and the thread."""

    def __init__(self, left: _socket.socket, right: _socket.socket, cpu: int | None) -> None:
        self._ends = {left.fileno(): right, right.fileno(): left}
        self._cpu = cpu
        self._thread = threading.Thread(target=self._run, name="wspframe-bench-pump", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        _pin_self(self._cpu)
        ends = {fd: (sock, sock.fileno()) for fd, sock in self._ends.items()}
        read = os.read
        write = os.write
        with selectors.DefaultSelector() as sel:
            for fd in ends:
                sel.register(fd, selectors.EVENT_READ)
            try:
                while True:
                    for key, _ in sel.select():
                        data = read(key.fd, 65536)
                        other, out = ends[key.fd]
                        if not data:
                            other.shutdown(_socket.SHUT_WR)
                            return
                        while data:
                            data = data[write(out, data) :]
            except OSError:
                return

    def join(self) -> None:
        self._thread.join(10)


def redirect_round_trip_floor(ctx: Context, row: Row) -> Row:
    """64 B round trip through a bare pump thread (:class:`_Pump`) between two
    socketpairs minus the same over one socketpair, same CPU, in µs: what any
    redirector made of a thread and OS descriptors adds, whatever its design."""
    mode = ctx.mode
    cpu = ctx.cpu
    direct_v: list[float] = []
    pumped_v: list[float] = []
    pinned_ok = True
    count = max(mode.rtt_count // 2, mode.rtt_slice)
    for i in range(mode.rounds):
        with _pinned(cpu) as ok:
            pinned_ok = pinned_ok and ok
            c, d = _socket.socketpair()  # direct: client c, echo d
            a, p = _socket.socketpair()  # pumped: client a, pump p <-> q, echo b
            q, b = _socket.socketpair()
            pump: _Pump | None = None
            echoes = _EchoServers()
            try:
                pump = _Pump(p, q, cpu)
                echoes.start(_echo_fd, (d.fileno(), cpu), functools.partial(c.shutdown, 1))
                echoes.start(_echo_fd, (b.fileno(), cpu), functools.partial(a.shutdown, 1))
                direct, pumped = _rtt_round(
                    functools.partial(_ping_fd, c.fileno()),
                    functools.partial(_ping_fd, a.fileno()),
                    count,
                    mode.rtt_slice,
                    i % 2 == 1,
                )
            finally:
                echoes.close()
                _close(a, b, c, d, p, q)
                if pump is not None:
                    pump.join()
        direct_v.append(direct)
        pumped_v.append(pumped)
    row.finish(direct_v, pumped_v)
    if not pinned_ok:
        row.note = _join(row.note, "pinning not allowed here: measured unpinned")
    return row
