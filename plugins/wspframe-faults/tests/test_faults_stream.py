"""Stream toxics measured against their settings: latency, bandwidth, slice,
limit, reset_after, timeout, slow_close; and toxics changed at run time."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import pytest
from faults_support import BASES, Background, read_all, stream_pair

import wspframe
from wspframe import Host, WSAError


def echo(server: wspframe.Socket) -> Background:
    def run() -> None:
        while data := server.recv(65536):
            server.sendall(data)

    return Background(run)


def round_trips(client: wspframe.Socket, count: int) -> list[float]:
    times = []
    for i in range(count):
        message = b"ping %03d" % i
        start = time.perf_counter()
        client.sendall(message)
        got = b""
        while len(got) < len(message):
            got += client.recv(100)
        times.append(time.perf_counter() - start)
        assert got == message
    return times


# -- latency ----------------------------------------------------------------------------
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize(
    ("options", "expected"),
    [("latency=10ms", 0.020), ("latency=8ms,jitter=4ms", 0.016)],
    ids=["latency", "latency+jitter"],
)
def test_latency_within_10_percent_plus_2ms_over_100_round_trips(
    make_host: Callable[..., Host], base: str, options: str, expected: float
) -> None:
    # Both ends go through the layer; each direction of the conversation is
    # delayed once (direction=up: a socket delays what it sends).
    host = make_host(f"faults[{options},seed=11],{base}")
    client, server = stream_pair(host)
    worker = echo(server)
    times = round_trips(client, 100)
    client.close()
    worker.result()
    server.close()
    mean = statistics.fmean(times)
    assert abs(mean - expected) <= 0.10 * expected + 0.002, f"mean round trip {mean * 1000:.2f} ms"
    if "jitter" not in options:
        assert min(times) >= expected - 0.001


@pytest.mark.parametrize("base", BASES)
def test_latency_both_ways_on_one_end(make_host: Callable[..., Host], base: str) -> None:
    # Only the client uses the layer: direction=both delays what it sends and
    # what it receives, so the round trip still gets the latency twice.
    host = make_host(f"faults[latency=10ms,direction=both],{base}")
    client, server = stream_pair(host, plain_server=base)
    worker = echo(server)
    mean = statistics.fmean(round_trips(client, 30))
    client.close()
    worker.result()
    server.close()
    assert abs(mean - 0.020) <= 0.10 * 0.020 + 0.002, f"mean round trip {mean * 1000:.2f} ms"


# -- bandwidth ------------------------------------------------------------------------------
@pytest.mark.parametrize("base", BASES)
def test_bandwidth_within_15_percent_over_4_mib(make_host: Callable[..., Host], base: str) -> None:
    rate = 8_000_000  # bytes per second: 4 MiB in about 0.52 s
    host = make_host(f"faults[bandwidth=8MB/s],{base}")
    client, server = stream_pair(host, plain_server=base)
    payload = os.urandom(4 * 1024 * 1024)
    reader = Background(lambda: read_all(server))
    start = time.perf_counter()
    client.sendall(payload)
    client.shutdown(wspframe.SD_SEND)
    got = reader.result()
    elapsed = time.perf_counter() - start
    client.close()
    server.close()
    assert got == payload
    measured = len(payload) / elapsed
    assert abs(measured - rate) <= 0.15 * rate, f"{measured / 1e6:.2f} MB/s"


def test_bandwidth_on_the_receiving_side(make_host: Callable[..., Host]) -> None:
    host = make_host("faults[bandwidth=4MB/s,direction=down],memory")
    client, server = stream_pair(host)
    payload = os.urandom(1024 * 1024)
    writer = Background(lambda: (client.sendall(payload), client.shutdown(wspframe.SD_SEND)))
    start = time.perf_counter()
    got = read_all(server)
    elapsed = time.perf_counter() - start
    writer.result()
    client.close()
    server.close()
    assert got == payload
    assert abs(len(payload) / elapsed - 4e6) <= 0.15 * 4e6


# -- slice ----------------------------------------------------------------------------------------
def test_slice_sends_pieces_no_larger_than_allowed_and_keeps_every_byte(
    make_host: Callable[..., Host],
) -> None:
    # trace sits below faults and sees exactly what faults passes down.
    host = make_host("faults[slice=100,slice_variation=40,slice_delay=100us,seed=3],trace,memory")
    client, server = stream_pair(host)
    payload = os.urandom(30_000)
    reader = Background(lambda: read_all(server))
    client.sendall(payload)
    client.shutdown(wspframe.SD_SEND)
    assert reader.result() == payload
    trace = host.provider("trace")
    sizes = [e.nbytes for e in trace.events if e.op == "send"]  # the server sends nothing
    client.close()
    server.close()
    assert sum(s or 0 for s in sizes) == len(payload)
    assert max(s or 0 for s in sizes) <= 140
    assert sum(1 for s in sizes if s is not None and s < 60) <= 1  # only the last may be short
    assert len(sizes) >= len(payload) // 140


def test_slice_on_receive_never_delivers_more_than_allowed(make_host: Callable[..., Host]) -> None:
    host = make_host("faults[slice=64,slice_variation=16,direction=down,seed=5],memory")
    client, server = stream_pair(host)
    payload = os.urandom(50_000)
    writer = Background(lambda: (client.sendall(payload), client.shutdown(wspframe.SD_SEND)))
    pieces = []
    while data := server.recv(65536):
        pieces.append(data)
    writer.result()
    client.close()
    server.close()
    assert b"".join(pieces) == payload
    assert max(len(p) for p in pieces) <= 80
    assert len(pieces) >= 50_000 // 80


# -- limit, reset, timeout, slow close ------------------------------------------------------------
@pytest.mark.parametrize("base", BASES)
def test_limit_up_passes_exactly_n_bytes_then_closes(
    make_host: Callable[..., Host], base: str
) -> None:
    host = make_host(f"faults[limit=1000],{base}")
    client, server = stream_pair(host, plain_server=base)
    assert client.send(b"a" * 600) == 600
    assert client.send(b"b" * 900) == 400  # the rest of the allowance, then the close
    with pytest.raises(WSAError) as info:
        client.send(b"c")
    assert info.value.wsa_name == "WSAECONNABORTED"
    assert read_all(server) == b"a" * 600 + b"b" * 400  # then end of file
    assert client.recv(10) == b""  # the connection is closed on this side too
    with pytest.raises(WSAError) as info:
        client.sendall(b"more")
    assert info.value.wsa_name == "WSAECONNABORTED"
    client.close()
    server.close()
    events = host.provider("faults").events
    assert [(e.fault, e.detail) for e in events] == [("limit", "1000 bytes sent")]


@pytest.mark.parametrize("base", BASES)
def test_limit_down_delivers_exactly_n_bytes_then_end_of_file(
    make_host: Callable[..., Host], base: str
) -> None:
    host = make_host(f"faults[limit=1KB,direction=down],{base}")
    client, server = stream_pair(host, plain_server=base)
    server.sendall(os.urandom(1500))
    got = read_all(client)
    assert len(got) == 1000
    assert client.recv(10) == b""
    assert read_all(server) == b""  # the peer sees the connection closed
    client.close()
    server.close()


@pytest.mark.parametrize("base", BASES)
def test_reset_after_both_ends_see_connection_reset(
    make_host: Callable[..., Host], base: str
) -> None:
    host = make_host(f"faults[reset_after=200ms],{base}")
    client, server = stream_pair(host)  # both ends are faults sockets
    start = time.perf_counter()
    client_recv = Background(lambda: client.recv(10))
    with pytest.raises(WSAError) as info:
        server.recv(10)
    assert info.value.wsa_name == "WSAECONNRESET"
    elapsed = time.perf_counter() - start
    assert 0.19 <= elapsed <= 1.5, elapsed
    with pytest.raises(WSAError) as info:
        client_recv.result()
    assert info.value.wsa_name == "WSAECONNRESET"
    with pytest.raises(WSAError) as info:
        client.send(b"x")
    assert info.value.wsa_name == "WSAECONNRESET"
    client.close()
    server.close()


def test_reset_after_a_plain_tcp_peer_sees_a_real_reset(make_host: Callable[..., Host]) -> None:
    host = make_host("faults[reset_after=150ms],tcpip")
    client, server = stream_pair(host, plain_server="tcpip")
    client.sendall(b"before")
    assert server.recv(10) == b"before"
    start = time.perf_counter()
    with pytest.raises(WSAError) as info:
        server.recv(10)  # blocks until the reset arrives
    assert info.value.wsa_name == "WSAECONNRESET"
    assert 0.1 <= time.perf_counter() - start <= 1.5
    with pytest.raises(WSAError) as info:
        client.recv(10)
    assert info.value.wsa_name == "WSAECONNRESET"
    client.close()
    server.close()
    assert [e.detail for e in host.provider("faults").events] == ["reset"]


@pytest.mark.parametrize("base", BASES)
def test_timeout_holds_data_then_times_out_and_the_peer_sees_the_close(
    make_host: Callable[..., Host], base: str
) -> None:
    host = make_host(f"faults[timeout=200ms],{base}")
    client, server = stream_pair(host, plain_server=base)
    start = time.perf_counter()
    with pytest.raises(WSAError) as info:
        client.sendall(b"never delivered")
    assert info.value.wsa_name == "WSAETIMEDOUT"
    assert 0.19 <= time.perf_counter() - start <= 1.5
    assert server.recv(100) == b""  # closed, and the held data never went through
    with pytest.raises(WSAError) as info:
        client.recv(10)
    assert info.value.wsa_name == "WSAETIMEDOUT"
    client.close()
    server.close()


def test_timeout_zero_holds_data_until_the_toxic_is_removed(
    make_host: Callable[..., Host],
) -> None:
    host = make_host("faults[timeout=0],memory")
    layer = host.provider("faults")
    client, server = stream_pair(host, plain_server="memory")
    sender = Background(lambda: client.sendall(b"delayed, not lost"))
    time.sleep(0.15)
    server.settimeout(0)
    with pytest.raises(WSAError):
        server.recv(100)  # nothing has arrived
    layer.clear()
    sender.result()
    server.settimeout(5)
    assert server.recv(100) == b"delayed, not lost"
    # With the socket's own timeout, a held send times out like any other.
    layer.set(timeout="0")
    client.settimeout(0.05)
    with pytest.raises(WSAError) as info:
        client.send(b"x")
    assert info.value.wsa_name == "WSAETIMEDOUT"
    client.close()
    server.close()


@pytest.mark.parametrize("base", BASES)
def test_slow_close_delays_the_close(make_host: Callable[..., Host], base: str) -> None:
    host = make_host(f"faults[slow_close=150ms],{base}")
    client, server = stream_pair(host, plain_server=base)
    reader = Background(lambda: (read_all(server), time.perf_counter())[1])
    start = time.perf_counter()
    client.close()
    closed = time.perf_counter()
    end_of_file = reader.result()
    server.close()
    assert closed - start >= 0.15
    assert end_of_file - start >= 0.15


# -- run time changes ----------------------------------------------------------------------------
def test_nothing_active_means_every_socket_is_quiet(make_host: Callable[..., Host]) -> None:
    host = make_host("faults,memory")
    layer = host.provider("faults")
    client, server = stream_pair(host)
    assert [s["active"] for s in layer.socket_states()] == [False, False]
    layer.set(latency="1ms")
    assert [s["active"] for s in layer.socket_states()] == [True, True]
    client.sendall(b"x")
    assert server.recv(1) == b"x"
    layer.clear()
    assert [s["active"] for s in layer.socket_states()] == [False, False]
    assert [e.fault for e in layer.events] == ["latency"]
    client.close()
    server.close()


def test_set_changes_open_connections(make_host: Callable[..., Host]) -> None:
    host = make_host("faults,memory")
    layer = host.provider("faults")
    client, server = stream_pair(host)
    worker = echo(server)
    fast = statistics.fmean(round_trips(client, 20))
    layer.set(latency="5ms")
    slow = statistics.fmean(round_trips(client, 20))
    layer.clear()
    again = statistics.fmean(round_trips(client, 20))
    client.close()
    worker.result()
    server.close()
    assert fast < 0.005
    assert again < 0.005
    assert 0.0095 <= slow <= 0.016  # 5 ms each way


def test_pass_through_cost_is_small(make_host: Callable[..., Host]) -> None:
    # Generous: one Python call per operation, far below the cost of the
    # memory network's own send/recv.
    def per_pair(spec: str) -> float:
        host = make_host(spec)
        client, server = stream_pair(host)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(2000):
                client.send(b"0123456789")
                server.recv(100)
            best = min(best, (time.perf_counter() - start) / 2000)
        client.close()
        server.close()
        host.cleanup()
        return best

    bare = per_pair("passthrough,memory")
    faults = per_pair("faults,memory")
    assert faults - bare < 5e-6 + 0.5 * bare, (bare, faults)
