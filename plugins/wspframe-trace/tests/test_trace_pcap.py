"""trace[pcap=FILE]: tshark decodes what the layer writes, byte for byte."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from trace_support import Background, follow_raw, read_all, run_tshark, stream_pair
from wspframe_trace import read_packets
from wspframe_trace._pcapng import internet_checksum

import wspframe
from wspframe import AF_INET, AF_INET6, SOCK_DGRAM, WSA_FLAG_OVERLAPPED, Host

BODY = os.urandom(40_000).hex().encode()  # 80,000 bytes: more than one segment
REQUEST = (
    b"POST /upload?name=trace HTTP/1.1\r\n"
    b"Host: wspframe.test\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Length: %d\r\n\r\n" % len(BODY)
) + BODY
RESPONSE_BODY = b"stored\n" * 3000
RESPONSE = (
    b"HTTP/1.1 201 Created\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: %d\r\n"
    b"Connection: close\r\n\r\n" % len(RESPONSE_BODY)
) + RESPONSE_BODY


def http_exchange(host: Host, *, af: int = AF_INET, plain_server: str | None = None) -> None:
    client, server = stream_pair(host, af=af, plain_server=plain_server)

    def serve() -> bytes:
        got = b""
        while len(got) < len(REQUEST):
            got += server.recv(65536)
        server.sendall(RESPONSE)
        server.shutdown(wspframe.SD_SEND)
        assert server.recv(10) == b""
        server.close()
        return got

    worker = Background(serve)
    client.sendall(REQUEST)
    response = read_all(client)
    client.close()
    assert worker.result() == REQUEST
    assert response == RESPONSE


@pytest.mark.parametrize("base", ["tcpip", "memory"])
def test_tshark_decodes_http_and_follows_the_exact_bytes(
    make_host: Callable[..., Host], tshark: str, tmp_path: Path, base: str
) -> None:
    pcap = tmp_path / "http.pcapng"
    host = make_host(f"trace[pcap={pcap}],{base}")
    http_exchange(host)
    host.cleanup()

    http = run_tshark(
        tshark,
        "-r",
        str(pcap),
        "-Y",
        "http",
        "-T",
        "fields",
        "-e",
        "http.request.method",
        "-e",
        "http.request.uri",
        "-e",
        "http.response.code",
        "-e",
        "http.content_length",
    )
    rows = [line.split("\t") for line in http.splitlines()]
    assert rows == [
        ["POST", "/upload?name=trace", "", str(len(BODY))],
        ["", "", "201", str(len(RESPONSE_BODY))],
    ]
    sent, received = follow_raw(tshark, str(pcap))
    assert sent == REQUEST
    assert received == RESPONSE
    # A clean capture: handshake, data, FIN each way, and nothing tshark flags.
    flags = run_tshark(tshark, "-r", str(pcap), "-T", "fields", "-e", "tcp.flags.str")
    assert flags.count("S") >= 2
    assert sum(1 for line in flags.splitlines() if "F" in line) == 2
    experts = run_tshark(
        tshark, "-r", str(pcap), "-Y", "tcp.analysis.flags && !tcp.analysis.window_update"
    )
    assert experts.strip() == ""
    status = run_tshark(
        tshark,
        "-r",
        str(pcap),
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
        "-T",
        "fields",
        "-e",
        "tcp.checksum.status",
        "-e",
        "ip.checksum.status",
    )
    assert set(status.split()) == {"1"}  # every checksum verified good


def test_only_one_end_traced_gives_the_same_stream(
    make_host: Callable[..., Host], tshark: str, tmp_path: Path
) -> None:
    # The server is a plain tcpip socket: the client's receives make the
    # server's packets.
    pcap = tmp_path / "client-only.pcapng"
    host = make_host(f"trace[pcap={pcap}],tcpip")
    http_exchange(host, plain_server="tcpip")
    host.cleanup()
    assert follow_raw(tshark, str(pcap)) == (REQUEST, RESPONSE)


def test_ipv6(make_host: Callable[..., Host], tshark: str, tmp_path: Path) -> None:
    pcap = tmp_path / "v6.pcapng"
    host = make_host(f"trace[pcap={pcap}],memory")
    http_exchange(host, af=AF_INET6)
    host.cleanup()
    out = run_tshark(tshark, "-r", str(pcap), "-Y", "http", "-T", "fields", "-e", "ipv6.src")
    assert out.split() == ["::1", "::1"]
    assert follow_raw(tshark, str(pcap)) == (REQUEST, RESPONSE)


def test_datagrams_one_packet_each(
    make_host: Callable[..., Host], tshark: str, tmp_path: Path
) -> None:
    pcap = tmp_path / "udp.pcapng"
    host = make_host(f"trace[pcap={pcap}],tcpip")
    a = host.socket(AF_INET, SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b = host.socket(AF_INET, SOCK_DGRAM)
    b.bind(("127.0.0.1", 0))
    messages = [b"first", b"second datagram", os.urandom(1200)]
    for m in messages:
        a.sendto(m, b.getsockname())
    for m in messages:
        assert b.recvfrom(2000)[0] == m
    b.sendto(b"reply", a.getsockname())
    assert a.recv(100) == b"reply"
    pa, pb = str(a.getsockname()[1]), str(b.getsockname()[1])
    host.cleanup()  # closes a and b
    out = run_tshark(
        tshark,
        "-r",
        str(pcap),
        "-T",
        "fields",
        "-e",
        "udp.srcport",
        "-e",
        "udp.dstport",
        "-e",
        "data",
    )
    rows = [line.split("\t") for line in out.splitlines()]
    assert [bytes.fromhex(r[2]) for r in rows] == [*messages, b"reply"]
    assert [(r[0], r[1]) for r in rows] == [(pa, pb)] * 3 + [(pb, pa)]
    status = run_tshark(
        tshark,
        "-r",
        str(pcap),
        "-o",
        "udp.check_checksum:TRUE",
        "-T",
        "fields",
        "-e",
        "udp.checksum.status",
    )
    assert set(status.split()) == {"1"}  # every checksum verified good


def test_reset_is_an_rst(make_host: Callable[..., Host], tshark: str, tmp_path: Path) -> None:
    # faults below trace resets the connection; trace sees WSAECONNRESET.
    pcap = tmp_path / "reset.pcapng"
    host = make_host(f"trace[pcap={pcap}],faults[reset_after=50ms],tcpip")
    client, server = stream_pair(host)
    client.sendall(b"hello")
    assert server.recv(5) == b"hello"
    with pytest.raises(ConnectionResetError):
        server.recv(5)
    client.close()
    server.close()
    host.cleanup()
    out = run_tshark(tshark, "-r", str(pcap), "-Y", "tcp.flags.reset == 1")
    assert len(out.splitlines()) == 1


def test_overlapped_traffic_is_captured(
    make_host: Callable[..., Host], tshark: str, tmp_path: Path
) -> None:
    pcap = tmp_path / "overlapped.pcapng"
    host = make_host(f"trace[pcap={pcap}],memory")
    client, server = stream_pair(host, flags=WSA_FLAG_OVERLAPPED)
    port = wspframe.CompletionPort()
    port.associate(server, key=1)
    port.associate(client, key=2)
    rov, sov = wspframe.Overlapped(), wspframe.Overlapped()
    server.recv_overlapped(100, rov)
    client.send_overlapped(b"GET / HTTP/1.0\r\n\r\n", sov)
    keys = {port.get(timeout=5).key, port.get(timeout=5).key}
    assert keys == {1, 2}
    assert rov.data == b"GET / HTTP/1.0\r\n\r\n"
    client.close()
    server.close()
    port.close()
    host.cleanup()
    out = run_tshark(
        tshark, "-r", str(pcap), "-Y", "http", "-T", "fields", "-e", "http.request.method"
    )
    assert out.split() == ["GET"]


def test_checksums_and_block_structure(make_host: Callable[..., Host], tmp_path: Path) -> None:
    pcap = tmp_path / "blocks.pcapng"
    host = make_host(f"trace[pcap={pcap}],memory")
    client, server = stream_pair(host)
    client.sendall(b"x" * 3)
    assert server.recv(3) == b"xxx"
    client.close()
    server.close()
    host.cleanup()
    blob = pcap.read_bytes()
    assert struct.unpack_from("<III", blob, 0)[::2] == (0x0A0D0D0A, 0x1A2B3C4D)
    frames = [frame for _, frame in read_packets(str(pcap))]
    assert len(frames) == 3 + 1 + 2  # handshake, data, FIN each way
    for frame in frames:
        ip = frame[14:34]
        assert internet_checksum(ip) == 0  # a valid IPv4 header sums to zero
        total = struct.unpack_from("!H", ip, 2)[0]
        segment = frame[34 : 14 + total]
        pseudo = ip[12:20] + struct.pack("!xBH", 6, len(segment))
        assert internet_checksum(pseudo + segment) == 0


def test_capture_appends_a_section_per_startup_cycle(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    pcap = tmp_path / "cycles.pcapng"
    host = wspframe.Host(chains=[f"trace[pcap={pcap}],memory"], config=False)
    for _ in range(2):
        with host:
            client, server = stream_pair(host)
            client.close()
            server.close()
    sections = pcap.read_bytes().count(struct.pack("<I", 0x1A2B3C4D))
    assert sections == 2
    assert len(list(read_packets(str(pcap)))) == 2 * (3 + 2)


@pytest.mark.parametrize("base", ["tcpip", "memory"])
def test_overlapped_connect_and_accept_make_the_handshake(
    make_host: Callable[..., Host], tshark: str, tmp_path: Path, base: str
) -> None:
    pcap = tmp_path / "connect-ex.pcapng"
    host = make_host(f"trace[pcap={pcap}],{base}")
    listener = host.socket(AF_INET, flags=WSA_FLAG_OVERLAPPED)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = host.socket(AF_INET, flags=WSA_FLAG_OVERLAPPED)
    accepted, connected = wspframe.Overlapped(), wspframe.Overlapped()
    listener.accept_overlapped(accepted)
    client.connect_overlapped(listener.getsockname(), connected)
    connected.result(timeout=5)
    server = accepted.result(timeout=5)
    client.sendall(b"after ConnectEx")
    assert server.recv(100) == b"after ConnectEx"
    for s in (client, server, listener):
        s.close()
    trace = host.provider("trace")
    completions = [e.args for e in trace.events if e.op == "completion"]
    assert sorted(completions) == ["accept", "connect"]
    host.cleanup()
    flags = run_tshark(tshark, "-r", str(pcap), "-T", "fields", "-e", "tcp.flags").split()
    assert flags[:3] == ["0x0002", "0x0012", "0x0010"]  # SYN, SYN-ACK, ACK
    assert follow_raw(tshark, str(pcap)) == (b"after ConnectEx", b"")
