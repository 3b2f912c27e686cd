"""fail=OP:WSAEXXX[:p], netdown windows, overlapped operations, stats and summary."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from faults_support import BASES, base_entry, stream_pair

import wspframe
from wspframe import AF_INET, SOCK_STREAM, WSA_FLAG_OVERLAPPED, Host, WSAError


def test_fail_connect_half_the_time_reproducibly(make_host: Callable[..., Host]) -> None:
    def outcomes(seed: int) -> list[str]:
        host = make_host(f"faults[fail=connect:WSAECONNREFUSED:0.5,seed={seed}],memory")
        listener = host.socket(protocol_info=base_entry(host, "memory"))
        listener.bind(("127.0.0.1", 0))
        listener.listen(1000)
        result = []
        for _ in range(200):
            with host.socket(AF_INET, SOCK_STREAM) as client:
                try:
                    client.connect(listener.getsockname())
                except ConnectionRefusedError as exc:  # WSAECONNREFUSED is one
                    result.append(getattr(exc, "wsa_name", "?"))
                else:
                    result.append("connected")
                    listener.accept()[0].close()
        listener.close()
        host.cleanup()
        return result

    first = outcomes(5)
    assert set(first) == {"connected", "WSAECONNREFUSED"}
    assert 70 <= first.count("WSAECONNREFUSED") <= 130
    assert outcomes(5) == first
    assert outcomes(6) != first


def test_fail_one_operation_only(make_host: Callable[..., Host]) -> None:
    host = make_host("faults[fail=send:WSAENOBUFS],memory")
    client, server = stream_pair(host)
    with pytest.raises(WSAError) as info:
        client.sendall(b"x")
    assert info.value.wsa_name == "WSAENOBUFS"
    host.provider("faults").set(fail="recv:WSAECONNRESET:1")
    with pytest.raises(ConnectionResetError):
        server.recv(1)
    host.provider("faults").clear()
    client.sendall(b"ok")
    assert server.recv(2) == b"ok"
    client.close()
    server.close()


def test_fail_socket_creation(make_host: Callable[..., Host]) -> None:
    host = make_host("faults[fail=socket:WSAEMFILE],memory")
    with pytest.raises(WSAError) as info:
        host.socket(AF_INET, SOCK_STREAM)
    assert info.value.wsa_name == "WSAEMFILE"
    assert host.sockets() == []


@pytest.mark.parametrize("base", BASES)
def test_netdown_window(make_host: Callable[..., Host], base: str) -> None:
    host = make_host(f"faults,{base}")
    layer = host.provider("faults")
    client, server = stream_pair(host)
    layer.set(netdown="300ms..700ms")
    client.sendall(b"before")  # the window has not started
    assert server.recv(10) == b"before"
    time.sleep(0.4)
    for call in (lambda: client.sendall(b"x"), lambda: server.recv(1), client.getpeername):
        with pytest.raises(WSAError) as info:
            call()
        assert info.value.wsa_name == "WSAENETDOWN"
    with pytest.raises(WSAError) as info:
        host.socket(AF_INET, SOCK_STREAM)
    assert info.value.wsa_name == "WSAENETDOWN"
    time.sleep(0.4)
    client.sendall(b"after")  # the connection survived the outage
    assert server.recv(10) == b"after"
    client.close()
    server.close()


@pytest.mark.parametrize("base", BASES)
def test_overlapped_operations_pass_through_and_fail_at_start(
    make_host: Callable[..., Host], base: str
) -> None:
    host = make_host(f"faults,{base}")
    layer = host.provider("faults")
    listener = host.socket(AF_INET, SOCK_STREAM, flags=WSA_FLAG_OVERLAPPED)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = host.socket(AF_INET, SOCK_STREAM, flags=WSA_FLAG_OVERLAPPED)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    port = wspframe.CompletionPort()
    port.associate(server, key=3)
    ov = wspframe.Overlapped()
    server.recv_overlapped(100, ov)
    client.sendall(b"overlapped")
    done = port.get(timeout=5)
    assert (done.key, done.overlapped, done.error) == (3, ov, 0)
    assert ov.data == b"overlapped"
    layer.set(fail="recv:WSAECONNRESET")
    with pytest.raises(WSAError) as info:
        server.recv_overlapped(100, wspframe.Overlapped())
    assert info.value.wsa_name == "WSAECONNRESET"
    layer.clear()
    port.close()
    for s in (client, server, listener):
        s.close()


def test_stats_and_summary(make_host: Callable[..., Host]) -> None:
    host = make_host("faults[latency=1ms,seed=8],memory")
    layer = host.provider("faults")
    client, server = stream_pair(host)
    client.sendall(b"abc")
    assert server.recv(3) == b"abc"
    stats = layer.stats()
    assert layer.seed == 8
    assert layer.toxics.to_options() == {"latency": "1ms", "seed": "8"}
    assert stats == {
        "sockets": 3,
        "affected": 3,
        "faults": 1,
        "fault.latency": 1,
        "operations": 2,
        "op.send": 1,
        "op.recv": 1,
        "bytes_sent": 3,
        "bytes_received": 3,
    }
    text = layer.summary()
    assert "toxics: latency=1ms,seed=8" in text
    assert "latency x1" in text
    client.close()
    server.close()


def test_the_timer_thread_stops_at_cleanup(make_host: Callable[..., Host]) -> None:
    import threading

    host = make_host("faults[reset_after=10s],memory")
    client, server = stream_pair(host)
    assert any(t.name.startswith("wspframe-faults") for t in threading.enumerate())
    host.cleanup()
    assert not any(t.name.startswith("wspframe-faults") for t in threading.enumerate())
    assert client.closed
    assert server.closed


def test_reseed_takes_the_run_seed_unless_the_spec_gave_one(
    make_host: Callable[..., Host],
) -> None:
    host = make_host("faults[drop=0.5],memory", "faults[drop=0.5,seed=3,tag=fixed],memory")
    free = host.provider("faults[drop=0.5]")
    fixed = host.provider("faults[drop=0.5,seed=3,tag=fixed]")
    free.reseed(1234)
    fixed.reseed(1234)
    assert free.seed == 1234
    assert fixed.seed == 3
