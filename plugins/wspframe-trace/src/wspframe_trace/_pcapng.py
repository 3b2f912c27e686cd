"""pcapng output: the file format, and packets synthesised from socket calls.

Theory of operation
-------------------
A trace layer sees socket *calls*, not packets.  :class:`PacketRecorder`
turns them into the packets a capture on the wire would have shown, so that
Wireshark or ``tshark`` decodes the application protocol inside:

* **Framing.**  Each packet is Ethernet (MAC addresses derived from the IP
  addresses), IPv4 or IPv6, and TCP or UDP, built from the sockets' real
  addresses (a wildcard or ``localhost`` is shown as the loopback address),
  with correct IP, TCP and UDP checksums.
* **Streams.**  A connection is a :class:`TcpFlow`, keyed by its two
  endpoints.  ``connect``/``accept`` emit the three-way handshake, data gets
  sequence numbers ``isn + 1 + offset`` in each direction (the offset being
  the byte's position in the stream), ``shutdown``/``close``/end of file a FIN,
  a reset an RST.  When *both* ends of a connection are traced by the same
  recorder, every byte is reported twice (sent by one end, received by the
  other): a direction remembers how far it has been emitted, and only bytes
  beyond that point make packets, so each byte appears once, at the first
  moment either end saw it.
* **Datagrams.**  One UDP packet per datagram; a datagram seen by its sender is
  remembered for a while, so the receiver's report of the same datagram is
  not written again.

The file is pcapng: a section header block, one Ethernet interface
description block (microsecond timestamps), then one enhanced packet block per
packet.  Everything is written with :mod:`struct`; each packet is flushed, so
the file can be read while the trace runs.
"""

from __future__ import annotations

import collections
import ipaddress
import struct
import threading
import time
import zlib
from collections.abc import Iterable
from typing import IO, Any, Final, NamedTuple

__all__ = [
    "Endpoint",
    "PacketRecorder",
    "PcapngWriter",
    "TcpFlow",
    "endpoint",
    "internet_checksum",
]

SHB_TYPE: Final = 0x0A0D0D0A
IDB_TYPE: Final = 0x00000001
EPB_TYPE: Final = 0x00000006
BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
LINKTYPE_ETHERNET: Final = 1
SNAPLEN: Final = 262144

ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_IPV6: Final = 0x86DD
IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17

TCP_FIN: Final = 0x01
TCP_SYN: Final = 0x02
TCP_RST: Final = 0x04
TCP_PSH: Final = 0x08
TCP_ACK: Final = 0x10

#: Payload bytes per synthesised TCP segment (fits IPv4's and IPv6's 16-bit lengths).
SEGMENT_SIZE: Final = 65000
#: Datagrams remembered from their senders, so receivers do not write them again.
UDP_MEMORY: Final = 4096
#: Seconds a connection with no traced end left stays known (a late accept finds it).
FLOW_LINGER: Final = 30.0


def internet_checksum(data: bytes) -> int:
    """The 16-bit one's complement checksum of RFC 1071.

    The sum of big-endian 16-bit words folded into 16 bits is the number
    modulo 0xFFFF (as 2**16 is 1 modulo 0xFFFF), which ``int.from_bytes``
    computes in C, whatever the length.
    """
    if len(data) % 2:
        data += b"\0"
    folded = int.from_bytes(data, "big") % 0xFFFF
    if folded == 0 and any(data):
        folded = 0xFFFF
    return ~folded & 0xFFFF


class Endpoint(NamedTuple):
    """One end of a conversation: packed IP address and port."""

    ip: bytes
    port: int

    @property
    def v6(self) -> bool:
        return len(self.ip) == 16

    def __str__(self) -> str:
        text = str(ipaddress.ip_address(self.ip))
        return f"[{text}]:{self.port}" if self.v6 else f"{text}:{self.port}"


_LOOPBACK4: Final = ipaddress.IPv4Address("127.0.0.1").packed
_LOOPBACK6: Final = ipaddress.IPv6Address("::1").packed


def endpoint(address: Any, v6: bool = False) -> Endpoint | None:
    """The :class:`Endpoint` of a socket address tuple, or None if it has none.

    A wildcard (``""``, ``0.0.0.0``, ``::``) or a name is shown as the loopback
    address of the family, as the conversations of a test are local.
    """
    if not isinstance(address, tuple) or len(address) < 2:
        return None
    host, port = address[0], address[1]
    if not isinstance(port, int) or not isinstance(host, str):
        return None
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return Endpoint(_LOOPBACK6 if v6 or len(address) == 4 else _LOOPBACK4, port)
    if ip.is_unspecified:
        return Endpoint(_LOOPBACK6 if ip.version == 6 else _LOOPBACK4, port)
    return Endpoint(ip.packed, port)


def _mac(ip: bytes) -> bytes:
    # Locally administered unicast addresses, one per IP address.
    return b"\x02\x00" + zlib.crc32(ip).to_bytes(4, "big")


def _ip_packet(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int) -> bytes:
    if len(src) == 16:
        header = struct.pack("!IHBB", 0x60000000, len(payload), proto, 64) + src + dst
        return header + payload
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000, 64, proto, 0, src, dst
    )
    checksum = internet_checksum(header)
    return header[:10] + checksum.to_bytes(2, "big") + header[12:] + payload


def _pseudo_header(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if len(src) == 16:
        return src + dst + struct.pack("!IxxxB", length, proto)
    return src + dst + struct.pack("!xBH", proto, length)


def ethernet_frame(src: Endpoint, dst: Endpoint, proto: int, transport: bytes, ident: int) -> bytes:
    """An Ethernet frame carrying ``transport`` (a TCP or UDP packet) in IPv4/IPv6."""
    ethertype = ETHERTYPE_IPV6 if src.v6 else ETHERTYPE_IPV4
    return (
        _mac(dst.ip)
        + _mac(src.ip)
        + ethertype.to_bytes(2, "big")
        + _ip_packet(src.ip, dst.ip, proto, transport, ident)
    )


def tcp_segment(
    src: Endpoint, dst: Endpoint, seq: int, ack: int, flags: int, payload: bytes = b""
) -> bytes:
    """A TCP segment (no options, window 65535) with its checksum."""
    header = struct.pack(
        "!HHIIBBHHH",
        src.port,
        dst.port,
        seq & 0xFFFFFFFF,
        ack & 0xFFFFFFFF if flags & TCP_ACK else 0,
        5 << 4,
        flags,
        65535,
        0,
        0,
    )
    segment = header + payload
    checksum = internet_checksum(
        _pseudo_header(src.ip, dst.ip, IPPROTO_TCP, len(segment)) + segment
    )
    return segment[:16] + checksum.to_bytes(2, "big") + segment[18:]


def udp_datagram(src: Endpoint, dst: Endpoint, payload: bytes) -> bytes:
    """A UDP datagram with its checksum (0 is sent as 0xFFFF, as RFC 768 says)."""
    length = 8 + len(payload)
    packet = struct.pack("!HHHH", src.port, dst.port, length & 0xFFFF, 0) + payload
    checksum = internet_checksum(_pseudo_header(src.ip, dst.ip, IPPROTO_UDP, length) + packet)
    return packet[:6] + (checksum or 0xFFFF).to_bytes(2, "big") + packet[8:]


# -- the file format -----------------------------------------------------------------
def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


_END_OF_OPTIONS: Final = b"\0\0\0\0"


def _block(block_type: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


class PcapngWriter:
    """A pcapng file with one Ethernet interface: ``write(timestamp, frame)``.

    ``append`` opens an existing file and starts a new section in it (a pcapng
    file may hold several).  Thread-safe; every packet is flushed.
    """

    def __init__(self, path: str, *, append: bool = False, application: str = "") -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = open(path, "ab" if append else "wb")  # noqa: SIM115
        self.packets = 0
        options = b""
        if application:
            options += _option(4, application.encode())  # shb_userappl
        shb = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + options + _END_OF_OPTIONS
        idb = (
            struct.pack("<HHI", LINKTYPE_ETHERNET, 0, SNAPLEN)
            + _option(2, b"wspframe")  # if_name
            + _option(9, b"\x06")  # if_tsresol: microseconds
            + _END_OF_OPTIONS
        )
        self._file.write(_block(SHB_TYPE, shb) + _block(IDB_TYPE, idb))
        self._file.flush()

    def write(self, timestamp: float, frame: bytes) -> None:
        """Write one packet captured at ``timestamp`` (seconds since the epoch)."""
        micros = int(timestamp * 1_000_000)
        body = (
            struct.pack("<IIIII", 0, micros >> 32, micros & 0xFFFFFFFF, len(frame), len(frame))
            + frame
            + b"\0" * (-len(frame) % 4)
        )
        with self._lock:
            if self._file is None:
                return
            self._file.write(_block(EPB_TYPE, body))
            self._file.flush()
            self.packets += 1

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    @property
    def closed(self) -> bool:
        return self._file is None


# -- conversations ------------------------------------------------------------------------
class _Direction:
    """One direction of a TCP connection, as emitted so far."""

    __slots__ = ("emitted", "finished", "isn")

    def __init__(self, isn: int) -> None:
        self.isn = isn
        #: Stream bytes written to the file so far.
        self.emitted = 0
        #: A FIN (or RST) was written.
        self.finished = False

    def next_seq(self) -> int:
        return self.isn + 1 + self.emitted + (1 if self.finished else 0)


class TcpFlow:
    """One TCP connection between ``client`` and ``server``, as written to the file."""

    __slots__ = ("client", "closed_at", "dirs", "ends", "key", "reset", "server")

    def __init__(self, client: Endpoint, server: Endpoint) -> None:
        self.client = client
        self.server = server
        self.key = _flow_key(client, server)
        self.dirs = {
            client: _Direction(_isn(client, server)),
            server: _Direction(_isn(server, client)),
        }
        #: Traced sockets attached to this connection.
        self.ends = 0
        self.closed_at = 0.0
        self.reset = False

    def other(self, src: Endpoint) -> Endpoint:
        return self.server if src == self.client else self.client

    @property
    def finished(self) -> bool:
        return self.reset or all(d.finished for d in self.dirs.values())

    def __repr__(self) -> str:
        return f"<TcpFlow {self.client} -> {self.server}>"


def _flow_key(a: Endpoint, b: Endpoint) -> tuple[Endpoint, Endpoint]:
    return (a, b) if a <= b else (b, a)


def _isn(src: Endpoint, dst: Endpoint) -> int:
    # Deterministic initial sequence numbers: the same conversation gives the same file.
    return zlib.crc32(src.ip + src.port.to_bytes(2, "big") + dst.ip + dst.port.to_bytes(2, "big"))


class PacketRecorder:
    """Turns socket calls into packets in a :class:`PcapngWriter`.

    Every method takes the time of the call (``time.time()``) and is
    thread-safe; the trace layer calls them as operations finish.
    """

    def __init__(self, writer: PcapngWriter) -> None:
        self.writer = writer
        self._lock = threading.Lock()
        self._flows: dict[tuple[Endpoint, Endpoint], TcpFlow] = {}
        self._ident = 0
        self._recent: collections.Counter[tuple[Endpoint, Endpoint, bytes]] = collections.Counter()
        self._recent_order: collections.deque[tuple[Endpoint, Endpoint, bytes]] = (
            collections.deque()
        )

    # -- low level ---------------------------------------------------------------
    def _emit(self, ts: float, src: Endpoint, dst: Endpoint, proto: int, transport: bytes) -> None:
        self._ident += 1
        self.writer.write(ts, ethernet_frame(src, dst, proto, transport, self._ident))

    def _segment(
        self, ts: float, flow: TcpFlow, src: Endpoint, seq: int, flags: int, payload: bytes = b""
    ) -> None:
        dst = flow.other(src)
        ack = flow.dirs[dst].next_seq()
        self._emit(ts, src, dst, IPPROTO_TCP, tcp_segment(src, dst, seq, ack, flags, payload))

    # -- TCP -----------------------------------------------------------------------
    def tcp_open(self, ts: float, client: Endpoint, server: Endpoint) -> TcpFlow:
        """A traced end of the connection ``client`` -> ``server`` is established:
        the connection's flow, its handshake written if it is new."""
        key = _flow_key(client, server)
        with self._lock:
            self._purge(ts)
            flow = self._flows.get(key)
            if flow is None or flow.finished or (flow.client, flow.server) != (client, server):
                flow = self._flows[key] = TcpFlow(client, server)
                c, s = flow.dirs[client], flow.dirs[server]
                self._emit(
                    ts, client, server, IPPROTO_TCP, tcp_segment(client, server, c.isn, 0, TCP_SYN)
                )
                self._emit(
                    ts,
                    server,
                    client,
                    IPPROTO_TCP,
                    tcp_segment(server, client, s.isn, c.isn + 1, TCP_SYN | TCP_ACK),
                )
                self._segment(ts, flow, client, c.isn + 1, TCP_ACK)
            flow.ends += 1
            return flow

    def tcp_data(self, ts: float, flow: TcpFlow, src: Endpoint, offset: int, data: bytes) -> None:
        """``data`` went from ``src`` at stream offset ``offset`` (as one end saw it)."""
        with self._lock:
            d = flow.dirs[src]
            end = offset + len(data)
            if d.finished or end <= d.emitted:
                return  # already written (the other end reported it) or after the FIN
            start = max(offset, d.emitted)
            payload = data[start - offset :]
            d.emitted = start
            for i in range(0, len(payload), SEGMENT_SIZE):
                piece = payload[i : i + SEGMENT_SIZE]
                self._segment(ts, flow, src, d.isn + 1 + d.emitted, TCP_PSH | TCP_ACK, piece)
                d.emitted += len(piece)
            d.emitted = end

    def tcp_fin(self, ts: float, flow: TcpFlow, src: Endpoint) -> None:
        """``src`` has finished sending (shutdown, close, or end of file seen by the other end)."""
        with self._lock:
            d = flow.dirs[src]
            if d.finished or flow.reset:
                return
            self._segment(ts, flow, src, d.isn + 1 + d.emitted, TCP_FIN | TCP_ACK)
            d.finished = True
            if flow.finished:
                self._forget(flow)

    def tcp_rst(self, ts: float, flow: TcpFlow, src: Endpoint) -> None:
        """``src`` reset the connection."""
        with self._lock:
            if flow.reset:
                return
            d = flow.dirs[src]
            self._segment(ts, flow, src, d.next_seq(), TCP_RST | TCP_ACK)
            flow.reset = True
            self._forget(flow)

    def tcp_close(self, ts: float, flow: TcpFlow) -> None:
        """A traced end of ``flow`` was closed."""
        with self._lock:
            flow.ends -= 1
            if flow.ends <= 0:
                flow.closed_at = ts

    def _forget(self, flow: TcpFlow) -> None:
        if self._flows.get(flow.key) is flow:
            del self._flows[flow.key]

    def _purge(self, now: float) -> None:
        stale = [f for f in self._flows.values() if f.ends <= 0 and f.closed_at + FLOW_LINGER < now]
        for flow in stale:
            self._forget(flow)

    # -- UDP -------------------------------------------------------------------------------
    def udp(self, ts: float, src: Endpoint, dst: Endpoint, data: bytes, *, by_sender: bool) -> None:
        """A datagram from ``src`` to ``dst``, seen by its sender or by its receiver."""
        key = (src, dst, data)
        with self._lock:
            if by_sender:
                self._recent[key] += 1
                self._recent_order.append(key)
                while len(self._recent_order) > UDP_MEMORY:
                    old = self._recent_order.popleft()
                    self._recent[old] -= 1
                    if self._recent[old] <= 0:
                        del self._recent[old]
            elif self._recent.get(key, 0) > 0:
                self._recent[key] -= 1
                return  # its sender wrote it already
            self._emit(ts, src, dst, IPPROTO_UDP, udp_datagram(src, dst, bytes(data)))

    def flows(self) -> list[TcpFlow]:
        """The connections currently known."""
        with self._lock:
            return list(self._flows.values())

    def close(self) -> None:
        self.writer.close()


def read_packets(path: str) -> Iterable[tuple[float, bytes]]:
    """``(timestamp, frame)`` for each enhanced packet block of a pcapng file
    written by :class:`PcapngWriter` (for tests and tools; little-endian only)."""
    with open(path, "rb") as f:
        blob = f.read()
    pos = 0
    while pos + 12 <= len(blob):
        block_type, total = struct.unpack_from("<II", blob, pos)
        if block_type == EPB_TYPE:
            _, high, low, caplen, _ = struct.unpack_from("<IIIII", blob, pos + 8)
            frame = blob[pos + 28 : pos + 28 + caplen]
            yield ((high << 32) | low) / 1_000_000, frame
        pos += total


def now() -> float:
    """The timestamp the recorder uses: seconds since the epoch."""
    return time.time()
