"""The ``trace`` layer: every SPI operation, in memory, as JSON lines, as pcapng.

Theory of operation
-------------------
``TraceLayer`` overrides every per-socket operation (synchronous and
overlapped) and the provider operations, so a compiled chain never skips it.
Each override times the call below it (``s.lower``), then records a
:class:`~wspframe_trace.TraceEvent` (operation, handle, short arguments,
result or WSA error, byte count, duration, thread) in one step under the
layer's lock: the in-memory ``events`` (bounded by ``max_events``), the
per-socket :class:`~wspframe_trace.SocketRecord` behind :meth:`summary`,
the counters behind :meth:`stats`, and a line of the ``jsonl`` file.

With ``pcap=PATH`` a :class:`~wspframe_trace._pcapng.PacketRecorder` turns
the data calls into packets: the connection's handshake when ``connect``,
``accept`` (or their overlapped forms) succeed, data segments for what is
sent and received, FIN for ``shutdown``/``close``/end of file and RST for a
reset; one UDP packet per datagram.  The addresses are the sockets' own,
asked of the level below once per connection.

Overlapped operations are recorded twice: when started (result
``pending``), and on completion (op ``completion``) from ``on_complete``,
which the :class:`~wspframe.LayeredProvider` base class calls with the
client's overlapped holding the result.

Files are opened at ``startup`` (not when the chain is installed, so that
``wspframe catalog --chain trace[pcap=x],tcpip`` writes nothing) and closed
at ``cleanup``.  A later startup cycle of the same instance appends (a new
pcapng section).
"""

# Layers narrow the context type of the SPI methods to their own LayerSocket
# subclass: the host only ever passes a level its own contexts.
# mypy: disable-error-code="override"

from __future__ import annotations

import collections
import os
import socket as _socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, Final

import wspframe
from wspframe import (
    AF_INET6,
    SOCK_STREAM,
    Dispatch,
    LayeredProvider,
    LayerSocket,
    NextLayer,
    Overlapped,
    ProtocolInfo,
    WSAError,
)

from ._events import SocketRecord, TraceEvent, format_address, preview
from ._pcapng import Endpoint, PacketRecorder, PcapngWriter, TcpFlow, endpoint

__all__ = ["TraceLayer", "TraceSocket"]

_MSG_PEEK: Final = int(_socket.MSG_PEEK)
_SD_NAMES: Final = ("SD_RECEIVE", "SD_SEND", "SD_BOTH")
_CONNRESET: Final = int(wspframe.WSAErrorCode.WSAECONNRESET)
#: Default bound of the in-memory event list.
DEFAULT_MAX_EVENTS: Final = 100_000
#: Closed sockets' records kept for the summary (the oldest are forgotten first).
MAX_CLOSED_RECORDS: Final = 10_000
_perf = time.perf_counter
_wall = time.time
_current_thread = threading.current_thread


class TraceSocket(LayerSocket):
    """The trace layer's per-socket context."""

    __slots__ = (
        "accepted",
        "flow",
        "in_offset",
        "local_ep",
        "out_offset",
        "peer_ep",
        "pending",
        "record",
        "stream",
        "v6",
    )

    def __init__(self, provider: Any, lower: Dispatch, protocol_info: ProtocolInfo) -> None:
        super().__init__(provider, lower, protocol_info)
        self.stream = protocol_info.socket_type == SOCK_STREAM
        self.v6 = protocol_info.address_family == AF_INET6
        self.accepted = False
        self.flow: TcpFlow | None = None
        self.local_ep: Endpoint | None = None
        self.peer_ep: Endpoint | None = None
        self.out_offset = 0
        self.in_offset = 0
        #: Overlapped operations in flight: client overlapped -> (start, what was sent).
        self.pending: dict[Overlapped, tuple[float, Any]] = {}
        self.record = SocketRecord(-1, "stream" if self.stream else "datagram", protocol_info.name)


def _check_path(option: str, value: str | None) -> str | None:
    if value is None:
        return None
    path = os.path.abspath(os.path.expanduser(value))
    folder = os.path.dirname(path)
    if os.path.isdir(path) or not os.path.isdir(folder):
        raise ValueError(
            f"{option} must be the path of a file in an existing folder, got {value!r}"
        )
    return path


def _count(result: Any) -> int:
    return result if isinstance(result, int) else len(result)


class TraceLayer(LayeredProvider):
    """Records every SPI operation on every socket of its chains.

    Options: ``jsonl=PATH`` (JSON lines, one per event), ``pcap=PATH`` (a
    pcapng capture with synthesised Ethernet/IP/TCP/UDP framing),
    ``max_events=N`` (events kept in memory, oldest dropped first; default
    100000, 0 keeps none), ``tag=TEXT`` (to stack several).
    """

    name = "trace"
    description = (
        "records every operation (events, summary); jsonl=PATH writes JSON lines, "
        "pcap=PATH a pcapng capture"
    )
    socket_class = TraceSocket

    def configure(self, options: Mapping[str, str]) -> None:
        options = dict(options)
        jsonl = options.pop("jsonl", None)
        pcap = options.pop("pcap", None)
        max_events = options.pop("max_events", None)
        super().configure(options)
        self.jsonl_path = _check_path("jsonl", jsonl)
        self.pcap_path = _check_path("pcap", pcap)
        if max_events is None:
            self.max_events = DEFAULT_MAX_EVENTS
        elif max_events.isdigit():
            self.max_events = int(max_events)
        else:
            raise ValueError(f"max_events must be a number of events >= 0, got {max_events!r}")
        self._lock = threading.Lock()
        self._events: collections.deque[TraceEvent] = collections.deque(maxlen=self.max_events)
        self._seq = 0
        self._records: list[SocketRecord] = []
        self._socket_count = 0
        self._ops: collections.Counter[str] = collections.Counter()
        self._errors: collections.Counter[str] = collections.Counter()
        self._sent = 0
        self._received = 0
        self._jsonl: IO[str] | None = None
        self._recorder: PacketRecorder | None = None
        self._cycles = 0
        #: An error met writing a file (the trace goes on without it).
        self.file_error: OSError | None = None

    # -- lifetime -----------------------------------------------------------------
    def startup(self, upcalls: Any) -> None:
        super().startup(upcalls)
        append = self._cycles > 0
        self._cycles += 1
        if self.jsonl_path is not None:
            self._jsonl = open(self.jsonl_path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115
        if self.pcap_path is not None:
            writer = PcapngWriter(
                self.pcap_path,
                append=append,
                application=f"wspframe-trace {_version()}",
            )
            self._recorder = PacketRecorder(writer)

    def cleanup(self) -> None:
        with self._lock:
            jsonl, self._jsonl = self._jsonl, None
            recorder, self._recorder = self._recorder, None
        if jsonl is not None:
            jsonl.close()
        if recorder is not None:
            recorder.close()

    # -- what was recorded --------------------------------------------------------------
    @property
    def events(self) -> list[TraceEvent]:
        """The recorded events, oldest first (at most ``max_events``)."""
        with self._lock:
            return list(self._events)

    def clear_events(self) -> None:
        """Forget the events kept in memory (counters and files are kept)."""
        with self._lock:
            self._events.clear()

    def sockets(self) -> list[SocketRecord]:
        """A record per socket seen, in creation order (copies)."""
        with self._lock:
            return [_copy(r) for r in self._records]

    def stats(self) -> dict[str, int]:
        """The layer's counters, flat (for ``--wsp-stats``, which adds them up):
        ``sockets``, ``operations``, ``bytes_sent``, ``bytes_received``,
        ``errors``, ``packets`` (written to the capture), and per operation
        ``op.NAME`` and per error ``error.WSAEXXX``."""
        with self._lock:
            stats = {
                "sockets": self._socket_count,
                "operations": sum(self._ops.values()),
                "bytes_sent": self._sent,
                "bytes_received": self._received,
                "errors": sum(self._errors.values()),
                "packets": self._recorder.writer.packets if self._recorder is not None else 0,
            }
            stats.update((f"op.{op}", n) for op, n in sorted(self._ops.items()))
            stats.update((f"error.{name}", n) for name, n in sorted(self._errors.items()))
            return stats

    def summary(self) -> str:
        """Per socket: peer, bytes each way, operations, errors (for ``wspframe demo``)."""
        with self._lock:
            records = [_copy(r) for r in self._records]
            count = self._socket_count
            total = sum(self._ops.values())
            errors = sum(self._errors.values())
            sent, received = self._sent, self._received
        head = (
            f"{count} sockets, {total} operations ({errors} errors), "
            f"{sent} bytes sent, {received} received"
        )
        rows = [("handle", "kind", "local", "peer", "sent", "received", "ops", "errors")]
        for r in records:
            kind = r.kind if not r.closed else f"{r.kind}*"
            rows.append(
                (
                    str(r.handle),
                    kind,
                    format_address(r.local),
                    format_address(r.peer),
                    str(r.sent),
                    str(r.received),
                    str(r.operations),
                    ", ".join(f"{k} x{v}" for k, v in r.error_names.items()) or "0",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [head]
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
        if any(r.closed for r in records):
            lines.append("(* closed)")
        return "\n".join(lines)

    # -- recording --------------------------------------------------------------------------
    def _record(
        self,
        s: TraceSocket | None,
        op: str,
        args: str,
        result: str | None,
        error: str | None,
        nbytes: int | None,
        t0: float,
        sent: int = 0,
        received: int = 0,
    ) -> None:
        duration = _perf() - t0
        thread = _current_thread().name
        with self._lock:
            self._seq += 1
            event = TraceEvent(
                self._seq,
                _wall(),
                op,
                s.handle if s is not None else -1,
                args,
                result,
                error,
                nbytes,
                duration,
                thread,
            )
            self._events.append(event)
            self._ops[op] += 1
            self._sent += sent
            self._received += received
            if s is not None:
                record = s.record
                record.operations += 1
                record.sent += sent
                record.received += received
                if error is not None:
                    record.errors += 1
                    record.error_names[error] = record.error_names.get(error, 0) + 1
            if error is not None:
                self._errors[error] += 1
            jsonl = self._jsonl
            if jsonl is not None:
                try:
                    jsonl.write(event.to_json() + "\n")
                    jsonl.flush()
                except OSError as exc:  # the trace goes on in memory
                    self.file_error = exc
                    self._jsonl = None

    def _failed(
        self, s: TraceSocket | None, op: str, args: str, exc: BaseException, t0: float
    ) -> None:
        name = exc.wsa_name if isinstance(exc, WSAError) else type(exc).__name__
        self._record(s, op, args, None, name, None, t0)
        if (
            isinstance(exc, WSAError)
            and exc.wsa_code == _CONNRESET
            and s is not None
            and s.flow is not None
            and self._recorder is not None
            and s.peer_ep is not None
        ):
            self._recorder.tcp_rst(_wall(), s.flow, s.peer_ep)

    def _control(self, s: TraceSocket, op: str, args: str, fn: Callable[..., Any], *a: Any) -> Any:
        t0 = _perf()
        try:
            result = fn(*a)
        except BaseException as exc:
            self._failed(s, op, args, exc, t0)
            raise
        self._record(s, op, args, _short(result), None, None, t0)
        return result

    # -- packets -------------------------------------------------------------------------------
    def _attach(self, s: TraceSocket) -> TcpFlow | None:
        """The connection of stream socket ``s`` (its handshake written once)."""
        recorder = self._recorder
        if recorder is None or not s.stream:
            return None
        if s.flow is None:
            try:
                local = endpoint(s.lower.getsockname(), s.v6)
                peer = endpoint(s.lower.getpeername(), s.v6)
            except WSAError:
                return None
            if local is None or peer is None:
                return None
            s.local_ep, s.peer_ep = local, peer
            client, server = (peer, local) if s.accepted else (local, peer)
            s.flow = recorder.tcp_open(_wall(), client, server)
        return s.flow

    def _local(self, s: TraceSocket) -> Endpoint | None:
        if s.local_ep is None:
            try:
                s.local_ep = endpoint(s.lower.getsockname(), s.v6)
            except WSAError:
                return None
        return s.local_ep

    def _peer(self, s: TraceSocket) -> Endpoint | None:
        if s.peer_ep is None:
            try:
                s.peer_ep = endpoint(s.lower.getpeername(), s.v6)
            except WSAError:
                return None
        return s.peer_ep

    def _out(self, s: TraceSocket, data: Any, n: int, address: Any = None) -> None:
        """``n`` bytes of ``data`` left ``s`` (to ``address``, for a datagram)."""
        recorder = self._recorder
        if recorder is None or n <= 0:
            return
        payload = bytes(memoryview(data).cast("B")[:n])
        if s.stream:
            flow = self._attach(s)
            if flow is not None and s.local_ep is not None:
                offset = s.out_offset
                s.out_offset += n
                recorder.tcp_data(_wall(), flow, s.local_ep, offset, payload)
            return
        src = self._local(s)
        dst = endpoint(address, s.v6) if address is not None else self._peer(s)
        if src is not None and dst is not None:
            recorder.udp(_wall(), src, dst, payload, by_sender=True)

    def _in(self, s: TraceSocket, payload: bytes, address: Any = None) -> None:
        """``payload`` arrived at ``s`` (from ``address``, for a datagram)."""
        recorder = self._recorder
        if recorder is None:
            return
        if s.stream:
            flow = self._attach(s)
            if flow is None or s.peer_ep is None:
                return
            if payload:
                offset = s.in_offset
                s.in_offset += len(payload)
                recorder.tcp_data(_wall(), flow, s.peer_ep, offset, payload)
            else:
                recorder.tcp_fin(_wall(), flow, s.peer_ep)
            return
        src = endpoint(address, s.v6) if address is not None else self._peer(s)
        dst = self._local(s)
        if src is not None and dst is not None:
            recorder.udp(_wall(), src, dst, payload, by_sender=False)

    def _fin(self, s: TraceSocket) -> None:
        recorder = self._recorder
        if recorder is not None and s.flow is not None and s.local_ep is not None:
            recorder.tcp_fin(_wall(), s.flow, s.local_ep)

    # -- creation and close ----------------------------------------------------------------
    def wrap(self, lower: Dispatch, protocol_info: ProtocolInfo, next: NextLayer) -> TraceSocket:
        s = super().wrap(lower, protocol_info, next)
        assert isinstance(s, TraceSocket)
        s.record.handle = s.handle
        with self._lock:
            self._records.append(s.record)
            self._socket_count += 1
            if len(self._records) > 2 * MAX_CLOSED_RECORDS:
                closed = [id(r) for r in self._records if r.closed]
                forget = set(closed[: len(closed) - MAX_CLOSED_RECORDS])
                self._records = [r for r in self._records if id(r) not in forget]
        return s

    def socket(
        self,
        next: NextLayer,
        af: int,
        type: int,
        protocol: int,
        protocol_info: ProtocolInfo,
        group: int,
        flags: int,
    ) -> TraceSocket:
        t0 = _perf()
        args = f"af={af} type={type} protocol={protocol} flags={flags:#x}"
        try:
            s = super().socket(next, af, type, protocol, protocol_info, group, flags)
        except BaseException as exc:
            self._failed(None, "socket", args, exc, t0)
            raise
        assert isinstance(s, TraceSocket)
        self._record(s, "socket", args, f"handle {s.handle} {protocol_info.name!r}", None, None, t0)
        return s

    def accept(self, s: TraceSocket) -> tuple[TraceSocket, Any]:
        t0 = _perf()
        try:
            new, address = super().accept(s)
        except BaseException as exc:
            self._failed(s, "accept", "", exc, t0)
            raise
        assert isinstance(new, TraceSocket)
        self._accepted(new, address)
        self._record(
            s, "accept", "", f"handle {new.handle} from {format_address(address)}", None, None, t0
        )
        return new, address

    def _accepted(self, new: TraceSocket, address: Any) -> None:
        new.accepted = True
        new.record.peer = address
        try:
            new.record.local = new.lower.getsockname()
        except WSAError:
            pass
        self._attach(new)

    def close_socket(self, s: TraceSocket) -> None:
        t0 = _perf()
        recorder = self._recorder
        if recorder is not None and s.flow is not None:
            self._fin(s)
            recorder.tcp_close(_wall(), s.flow)
        try:
            super().close_socket(s)
        except BaseException as exc:
            self._failed(s, "close", "", exc, t0)
            raise
        finally:
            s.record.closed = True
        self._record(s, "close", "", "closed", None, None, t0)

    # -- connection --------------------------------------------------------------------------
    def bind(self, s: TraceSocket, address: Any) -> None:
        self._control(s, "bind", format_address(address), s.lower.bind, address)
        try:
            s.record.local = s.lower.getsockname()
        except WSAError:
            s.record.local = address

    def listen(self, s: TraceSocket, backlog: int) -> None:
        self._control(s, "listen", f"backlog={backlog}", s.lower.listen, backlog)

    def connect(self, s: TraceSocket, address: Any) -> None:
        self._control(s, "connect", format_address(address), s.lower.connect, address)
        self._connected(s, address)

    def _connected(self, s: TraceSocket, address: Any) -> None:
        s.record.peer = address
        try:
            s.record.local = s.lower.getsockname()
        except WSAError:
            pass
        if s.stream:
            self._attach(s)
        else:
            s.peer_ep = endpoint(address, s.v6)

    def shutdown(self, s: TraceSocket, how: int) -> None:
        name = _SD_NAMES[how] if how in (0, 1, 2) else str(how)
        self._control(s, "shutdown", name, s.lower.shutdown, how)
        if how in (1, 2):
            self._fin(s)

    # -- data ------------------------------------------------------------------------------------
    def send(self, s: TraceSocket, data: Any, flags: int) -> int:
        t0 = _perf()
        try:
            n: int = s.lower.send(data, flags)
        except BaseException as exc:
            self._failed(s, "send", preview(data), exc, t0)
            raise
        self._record(s, "send", preview(data), str(n), None, n, t0, sent=n)
        self._out(s, data, n)
        return n

    def sendto(self, s: TraceSocket, data: Any, flags: int, address: Any) -> int:
        args = f"{preview(data)} to {format_address(address)}"
        t0 = _perf()
        try:
            n: int = s.lower.sendto(data, flags, address)
        except BaseException as exc:
            self._failed(s, "sendto", args, exc, t0)
            raise
        self._record(s, "sendto", args, str(n), None, n, t0, sent=n)
        if s.record.peer is None and not s.stream:
            s.record.peer = address
        self._out(s, data, n, None if s.stream else address)
        return n

    def recv(self, s: TraceSocket, bufsize: int, flags: int) -> bytes:
        t0 = _perf()
        try:
            data: bytes = s.lower.recv(bufsize, flags)
        except BaseException as exc:
            self._failed(s, "recv", f"bufsize={bufsize}", exc, t0)
            raise
        self._received_data(s, "recv", f"bufsize={bufsize}", data, flags, bufsize, t0)
        return data

    def recv_into(self, s: TraceSocket, buffer: Any, nbytes: int, flags: int) -> int:
        t0 = _perf()
        try:
            n: int = s.lower.recv_into(buffer, nbytes, flags)
        except BaseException as exc:
            self._failed(s, "recv_into", f"nbytes={nbytes}", exc, t0)
            raise
        data = bytes(memoryview(buffer).cast("B")[:n])
        self._received_data(s, "recv_into", f"nbytes={nbytes}", data, flags, nbytes or 1, t0)
        return n

    def _received_data(
        self, s: TraceSocket, op: str, args: str, data: bytes, flags: int, asked: int, t0: float
    ) -> None:
        peek = bool(flags & _MSG_PEEK)
        n = len(data)
        result = preview(data) if n or not s.stream else "end of file"
        self._record(s, op, args, result, None, n, t0, received=0 if peek else n)
        if not peek and (n or asked):
            self._in(s, data)

    def recvfrom(self, s: TraceSocket, bufsize: int, flags: int) -> tuple[bytes, Any]:
        t0 = _perf()
        try:
            data, address = s.lower.recvfrom(bufsize, flags)
        except BaseException as exc:
            self._failed(s, "recvfrom", f"bufsize={bufsize}", exc, t0)
            raise
        self._received_from(s, "recvfrom", f"bufsize={bufsize}", data, address, flags, t0)
        return data, address

    def recvfrom_into(
        self, s: TraceSocket, buffer: Any, nbytes: int, flags: int
    ) -> tuple[int, Any]:
        t0 = _perf()
        try:
            n, address = s.lower.recvfrom_into(buffer, nbytes, flags)
        except BaseException as exc:
            self._failed(s, "recvfrom_into", f"nbytes={nbytes}", exc, t0)
            raise
        data = bytes(memoryview(buffer).cast("B")[:n])
        self._received_from(s, "recvfrom_into", f"nbytes={nbytes}", data, address, flags, t0)
        return n, address

    def _received_from(
        self, s: TraceSocket, op: str, args: str, data: bytes, address: Any, flags: int, t0: float
    ) -> None:
        peek = bool(flags & _MSG_PEEK)
        n = len(data)
        result = f"{preview(data)} from {format_address(address)}"
        self._record(s, op, args, result, None, n, t0, received=0 if peek else n)
        if not peek:
            self._in(s, data, None if s.stream else address)

    # -- names, options, control ---------------------------------------------------------------
    def getsockname(self, s: TraceSocket) -> Any:
        return self._control(s, "getsockname", "", s.lower.getsockname)

    def getpeername(self, s: TraceSocket) -> Any:
        return self._control(s, "getpeername", "", s.lower.getpeername)

    def getsockopt(self, s: TraceSocket, level: int, option: int, buflen: int | None) -> Any:
        args = f"level={level} option={option} buflen={buflen}"
        return self._control(s, "getsockopt", args, s.lower.getsockopt, level, option, buflen)

    def setsockopt(self, s: TraceSocket, level: int, option: int, value: Any) -> None:
        args = f"level={level} option={option} value={_short(value)}"
        self._control(s, "setsockopt", args, s.lower.setsockopt, level, option, value)

    def ioctl(self, s: TraceSocket, code: int, arg: Any) -> Any:
        return self._control(
            s, "ioctl", f"code={code:#x} arg={_short(arg)}", s.lower.ioctl, code, arg
        )

    def settimeout(self, s: TraceSocket, timeout: float | None) -> None:
        self._control(s, "settimeout", repr(timeout), s.lower.settimeout, timeout)

    def duplicate_socket(self, s: TraceSocket) -> None:
        self._control(s, "duplicate_socket", "", s.lower.duplicate_socket)

    # -- overlapped ------------------------------------------------------------------------------
    def _started(
        self,
        s: TraceSocket,
        op: str,
        args: str,
        ov: Overlapped,
        keep: Any,
        call: Callable[[], None],
    ) -> None:
        t0 = _perf()
        s.pending[ov] = (t0, keep)
        try:
            call()
        except BaseException as exc:
            s.pending.pop(ov, None)
            self._failed(s, op, args, exc, t0)
            raise
        self._record(s, op, args, "pending", None, None, t0)

    def send_overlapped(self, s: TraceSocket, data: Any, flags: int, ov: Overlapped) -> None:
        self._started(
            s,
            "send_overlapped",
            preview(data),
            ov,
            (bytes(memoryview(data).cast("B")), None) if self._recorder is not None else None,
            lambda: super(TraceLayer, self).send_overlapped(s, data, flags, ov),
        )

    def sendto_overlapped(
        self, s: TraceSocket, data: Any, flags: int, address: Any, ov: Overlapped
    ) -> None:
        self._started(
            s,
            "sendto_overlapped",
            f"{preview(data)} to {format_address(address)}",
            ov,
            (bytes(memoryview(data).cast("B")), address) if self._recorder is not None else None,
            lambda: super(TraceLayer, self).sendto_overlapped(s, data, flags, address, ov),
        )

    def recv_overlapped(self, s: TraceSocket, bufsize: int, flags: int, ov: Overlapped) -> None:
        self._started(
            s,
            "recv_overlapped",
            f"bufsize={bufsize}",
            ov,
            flags,
            lambda: super(TraceLayer, self).recv_overlapped(s, bufsize, flags, ov),
        )

    def recvfrom_overlapped(self, s: TraceSocket, bufsize: int, flags: int, ov: Overlapped) -> None:
        self._started(
            s,
            "recvfrom_overlapped",
            f"bufsize={bufsize}",
            ov,
            flags,
            lambda: super(TraceLayer, self).recvfrom_overlapped(s, bufsize, flags, ov),
        )

    def connect_overlapped(self, s: TraceSocket, address: Any, ov: Overlapped) -> None:
        self._started(
            s,
            "connect_overlapped",
            format_address(address),
            ov,
            address,
            lambda: super(TraceLayer, self).connect_overlapped(s, address, ov),
        )

    def accept_overlapped(self, s: TraceSocket, ov: Overlapped) -> None:
        self._started(
            s,
            "accept_overlapped",
            "",
            ov,
            None,
            lambda: super(TraceLayer, self).accept_overlapped(s, ov),
        )

    def ioctl_overlapped(self, s: TraceSocket, code: int, arg: Any, ov: Overlapped) -> None:
        self._started(
            s,
            "ioctl_overlapped",
            f"code={code:#x} arg={_short(arg)}",
            ov,
            None,
            lambda: super(TraceLayer, self).ioctl_overlapped(s, code, arg, ov),
        )

    def on_complete(self, s: TraceSocket, ov: Overlapped) -> None:
        t0, keep = s.pending.pop(ov, (_perf(), None))
        op = ov.op
        if ov.error:
            name = wspframe.WSAErrorCode(ov.error).name if ov.error in _CODES else str(ov.error)
            self._record(s, "completion", op, None, name, None, t0)
            if (
                ov.error == _CONNRESET
                and s.flow is not None
                and self._recorder is not None
                and s.peer_ep is not None
            ):
                self._recorder.tcp_rst(_wall(), s.flow, s.peer_ep)
            return
        if op in ("send", "sendto"):
            n = ov.nbytes
            self._record(s, "completion", op, str(n), None, n, t0, sent=n)
            if keep is not None:
                data, address = keep
                self._out(s, data, n, None if s.stream else address)
        elif op in ("recv", "recvfrom"):
            data = bytes(ov.data or b"")
            n = len(data)
            peek = bool(isinstance(keep, int) and keep & _MSG_PEEK)
            shown = preview(data) if n or not s.stream else "end of file"
            if op == "recvfrom":
                shown += f" from {format_address(ov.address)}"
            self._record(s, "completion", op, shown, None, n, t0, received=0 if peek else n)
            if not peek:
                self._in(s, data, ov.address if op == "recvfrom" and not s.stream else None)
        elif op == "accept":
            new = ov.data
            if isinstance(new, TraceSocket):
                self._accepted(new, ov.address)
                shown = f"handle {new.handle} from {format_address(ov.address)}"
            else:
                shown = repr(new)
            self._record(s, "completion", op, shown, None, None, t0)
        elif op == "connect":
            self._record(s, "completion", op, "connected", None, None, t0)
            self._connected(s, keep)
        else:
            self._record(s, "completion", op, _short(ov.data), None, None, t0)

    # -- provider operations ----------------------------------------------------------------------
    def select(
        self,
        next: NextLayer,
        readers: Sequence[LayerSocket],
        writers: Sequence[LayerSocket],
        errors: Sequence[LayerSocket],
        timeout: float | None,
    ) -> tuple[list[LayerSocket], list[LayerSocket], list[LayerSocket]]:
        t0 = _perf()
        args = (
            f"{len(readers)} readers, {len(writers)} writers, {len(errors)} errors, "
            f"timeout={timeout}"
        )
        try:
            r, w, x = super().select(next, readers, writers, errors, timeout)
        except BaseException as exc:
            self._failed(None, "select", args, exc, t0)
            raise
        self._record(
            None,
            "select",
            args,
            f"{len(r)} readable, {len(w)} writable, {len(x)} errors",
            None,
            None,
            t0,
        )
        return r, w, x

    def address_to_string(self, next: NextLayer, address: Any, protocol_info: ProtocolInfo) -> str:
        t0 = _perf()
        try:
            text = super().address_to_string(next, address, protocol_info)
        except BaseException as exc:
            self._failed(None, "address_to_string", repr(address), exc, t0)
            raise
        self._record(None, "address_to_string", repr(address), repr(text), None, None, t0)
        return text

    def string_to_address(
        self, next: NextLayer, text: str, af: int, protocol_info: ProtocolInfo
    ) -> Any:
        t0 = _perf()
        try:
            address = super().string_to_address(next, text, af, protocol_info)
        except BaseException as exc:
            self._failed(None, "string_to_address", repr(text), exc, t0)
            raise
        self._record(None, "string_to_address", repr(text), repr(address), None, None, t0)
        return address


_CODES: Final = frozenset(int(c) for c in wspframe.WSAErrorCode)


def _short(value: Any, limit: int = 40) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return preview(value)
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _copy(record: SocketRecord) -> SocketRecord:
    import dataclasses

    return dataclasses.replace(record, error_names=dict(record.error_names))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wspframe-trace")
    except PackageNotFoundError:  # running from a checkout
        return "unknown"
