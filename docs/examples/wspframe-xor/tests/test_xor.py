"""Tests of the xor layer: run them with the distribution installed."""

from __future__ import annotations

import pytest

import wspframe
from wspframe import AF_INET, SOCK_DGRAM, SOCK_STREAM

pytest.importorskip("wspframe_xor", reason="install wspframe-xor first")


def connected_pair(host):
    listener = host.socket(AF_INET, SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = host.socket(AF_INET, SOCK_STREAM)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    return client, server


@pytest.mark.parametrize("base", ["memory", "tcpip"])
def test_both_ends_through_xor_see_clear_text(base):
    with wspframe.Host(chains=[f"xor[key=c0ffee],{base}"], config=False) as host:
        client, server = connected_pair(host)
        for size in (1, 2, 3, 1000, 65536):
            message = bytes(range(256)) * (size // 256) + bytes(size % 256)
            client.sendall(message)
            got = b""
            while len(got) < size:
                got += server.recv(size - len(got))
            assert got == message


def test_the_bytes_below_the_layer_are_masked():
    with wspframe.Host(chains=["xor[key=ff],memory"], config=False) as host:
        plain = host.entries_for("memory")[0]  # a socket without the layer
        listener = host.socket(protocol_info=plain)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = host.socket(AF_INET, SOCK_STREAM)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
        client.sendall(b"\x00\x0f")
        assert server.recv(2) == b"\xff\xf0"


def test_datagrams_are_masked_one_by_one():
    with wspframe.Host(chains=["xor[key=0102],memory"], config=False) as host:
        a = host.socket(AF_INET, SOCK_DGRAM)
        b = host.socket(AF_INET, SOCK_DGRAM)
        b.bind(("127.0.0.1", 0))
        for message in (b"one", b"two", b"three"):
            a.sendto(message, b.getsockname())
            assert b.recvfrom(100)[0] == message


def test_overlapped_receive():
    with wspframe.Host(chains=["xor,memory"], config=False) as host:
        flags = wspframe.WSA_FLAG_OVERLAPPED
        listener = host.socket(AF_INET, SOCK_STREAM, flags=flags)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = host.socket(AF_INET, SOCK_STREAM, flags=flags)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
        ov = wspframe.Overlapped()
        server.recv_overlapped(100, ov)
        client.send_overlapped(b"overlapped", wspframe.Overlapped())
        assert ov.result(timeout=5) == b"overlapped"


def test_a_bad_key_is_refused_when_the_chain_is_built():
    with pytest.raises(wspframe.ChainSpecError, match="key must be hex digits"):
        wspframe.Host(chains=["xor[key=zz],memory"], config=False)
