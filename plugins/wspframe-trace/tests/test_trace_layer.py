"""The trace layer's records: events, JSON lines, summary, stats, options."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from trace_support import stream_pair
from wspframe_trace import TraceEvent, TraceLayer

import wspframe
from wspframe import AF_INET, SOCK_DGRAM, SOCK_STREAM, WSA_FLAG_OVERLAPPED, ChainSpecError, Host


@pytest.mark.parametrize("base", ["memory", "tcpip"])
def test_every_operation_is_recorded(make_host: Callable[..., Host], base: str) -> None:
    host = make_host(f"trace,{base}")
    trace = host.provider("trace")
    assert isinstance(trace, TraceLayer)
    client, server = stream_pair(host)
    handle = client.fileno()
    client.sendall(b"hello")
    assert server.recv(100) == b"hello"
    client.setsockopt(wspframe.IPPROTO_TCP, 1, 1)  # TCP_NODELAY
    client.settimeout(5)
    client.shutdown(wspframe.SD_SEND)
    assert server.recv(100) == b""
    client.close()
    server.close()
    events = trace.events
    ops = [e.op for e in events]
    assert ops[:7] == ["socket", "bind", "listen", "socket", "getsockname", "connect", "accept"]
    assert ops[7:] == [
        "close",  # the listener
        "send",
        "recv",
        "setsockopt",
        "settimeout",
        "shutdown",
        "recv",
        "close",
        "close",
    ]
    send = events[8]
    assert (send.args, send.result, send.nbytes, send.error) == ("5 bytes b'hello'", "5", 5, None)
    assert send.handle == handle  # the layer's handle is the one the application holds
    assert send.thread == threading.current_thread().name
    assert send.duration >= 0
    assert events[13].result == "end of file"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_errors_are_recorded_with_their_wsa_name(make_host: Callable[..., Host]) -> None:
    host = make_host("trace,memory")
    trace = host.provider("trace")
    s = host.socket(AF_INET, SOCK_STREAM)
    with pytest.raises(wspframe.WSAError):
        s.connect(("127.0.0.1", 9))  # nobody listens
    s.settimeout(0)
    with pytest.raises(wspframe.WSAError):
        s.recv(10)
    s.close()
    failed = [(e.op, e.error, e.result) for e in trace.events if e.error]
    assert failed == [("connect", "WSAECONNREFUSED", None), ("recv", "WSAENOTCONN", None)]
    stats = trace.stats()
    assert stats["errors"] == 2
    assert (stats["error.WSAECONNREFUSED"], stats["error.WSAENOTCONN"]) == (1, 1)
    record = trace.sockets()[0]
    assert record.errors == 2
    assert record.error_names == {"WSAECONNREFUSED": 1, "WSAENOTCONN": 1}


def test_jsonl_file(make_host: Callable[..., Host], tmp_path: Path) -> None:
    path = tmp_path / "ops.jsonl"
    host = make_host(f"trace[jsonl={path}],memory")
    client, server = stream_pair(host)
    client.sendall(b"json")
    assert server.recv(4) == b"json"
    client.close()
    server.close()
    trace = host.provider("trace")
    events = trace.events
    host.cleanup()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [e.to_dict() for e in events]
    assert set(lines[0]) == {
        "seq",
        "time",
        "op",
        "handle",
        "args",
        "result",
        "error",
        "nbytes",
        "duration",
        "thread",
    }
    assert TraceEvent(**lines[0]) == events[0]


def test_files_are_made_at_startup_not_when_the_chain_is_installed(tmp_path: Path) -> None:
    path = tmp_path / "later.jsonl"
    host = wspframe.Host(chains=[f"trace[jsonl={path}],memory"], config=False)
    assert not path.exists()  # the catalog has the chain; nothing ran yet
    with host:
        host.socket(AF_INET, SOCK_STREAM).close()
    assert path.exists()


def test_summary_and_stats(make_host: Callable[..., Host]) -> None:
    host = make_host("trace,memory")
    trace = host.provider("trace")
    client, server = stream_pair(host)
    client.sendall(b"abc")
    assert server.recv(10) == b"abc"
    server.sendall(b"defgh")
    assert client.recv(10) == b"defgh"
    peer = client.getpeername()
    summary = trace.summary()
    lines = summary.splitlines()
    assert lines[0] == "3 sockets, 13 operations (0 errors), 8 bytes sent, 8 received"
    header = lines[1].split()
    assert header == ["handle", "kind", "local", "peer", "sent", "received", "ops", "errors"]
    client_row = next(r.split() for r in lines[2:] if r.split()[0] == str(client.fileno()))
    assert client_row[1] == "stream"
    assert client_row[3] == f"{peer[0]}:{peer[1]}"
    assert client_row[4:] == ["3", "5", "5", "0"]
    stats = trace.stats()
    assert stats["sockets"] == 3
    assert stats["bytes_sent"] == 8
    assert stats["bytes_received"] == 8
    assert stats["op.send"] == 2
    assert stats["operations"] == 13
    assert stats["errors"] == 0
    assert all(isinstance(v, int) for v in stats.values())  # --wsp-stats adds them up
    client.close()
    server.close()


def test_datagram_records(make_host: Callable[..., Host]) -> None:
    host = make_host("trace,memory")
    trace = host.provider("trace")
    a = host.socket(AF_INET, SOCK_DGRAM)
    b = host.socket(AF_INET, SOCK_DGRAM)
    b.bind(("127.0.0.1", 0))
    a.sendto(b"ping", b.getsockname())
    data, address = b.recvfrom(100)
    assert data == b"ping"
    event = trace.events[-1]
    assert event.op == "recvfrom"
    assert event.result == f"4 bytes b'ping' from {address[0]}:{address[1]}"
    records = trace.sockets()
    assert [r.kind for r in records] == ["datagram", "datagram"]
    assert (records[0].sent, records[1].received) == (4, 4)
    a.close()
    b.close()


def test_overlapped_operations_and_their_completions(make_host: Callable[..., Host]) -> None:
    host = make_host("trace,memory")
    trace = host.provider("trace")
    client, server = stream_pair(host, flags=WSA_FLAG_OVERLAPPED)
    port = wspframe.CompletionPort()
    port.associate(server, key=7)
    ov = wspframe.Overlapped()
    server.recv_overlapped(100, ov)
    client.sendall(b"overlapped")
    done = port.get(timeout=5)
    assert (done.key, done.overlapped) == (7, ov)
    started = [e for e in trace.events if e.op == "recv_overlapped"]
    completed = [e for e in trace.events if e.op == "completion"]
    assert [e.result for e in started] == ["pending"]
    assert [(e.args, e.result, e.nbytes) for e in completed] == [
        ("recv", "10 bytes b'overlapped'", 10)
    ]
    client.close()
    server.close()
    port.close()


def test_max_events_bounds_memory_not_counts(make_host: Callable[..., Host]) -> None:
    host = make_host("trace[max_events=3],memory")
    trace = host.provider("trace")
    client, server = stream_pair(host)
    for _ in range(10):
        client.sendall(b"x")
        server.recv(1)
    assert len(trace.events) == 3
    assert trace.stats()["op.send"] == 10
    client.close()
    server.close()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("jsonl=/no/such/folder/x.jsonl", "jsonl must be the path of a file in an existing folder"),
        ("pcap=/", "pcap must be the path of a file in an existing folder, got '/'"),
        ("max_events=lots", "max_events must be a number of events >= 0, got 'lots'"),
        ("colour=red", "layer 'trace' takes no options, got colour"),
    ],
)
def test_bad_options_are_chain_spec_errors(option: str, message: str) -> None:
    with pytest.raises(ChainSpecError) as info:
        wspframe.Host(chains=[f"trace[{option}],memory"], config=False)
    assert message in (info.value.strerror or "")


def test_demo_prints_the_summary() -> None:
    import io

    from wspframe._cli import main

    out = io.StringIO()
    assert main(["--no-config", "demo", "--chain", "trace,memory"], out=out) == 0
    text = out.getvalue()
    assert "  trace:\n    3 sockets, " in text
    assert "handle  kind" in text
