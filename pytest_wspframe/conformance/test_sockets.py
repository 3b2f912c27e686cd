"""Socket creation: triplets (A2, A4), the protocol-info propagation rule
(A4, bug 7), handles from the upcalls only and a truthful IFS flag (A9, A10,
bug 3), for sockets made, accepted and accepted overlapped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import wspframe
from wspframe import FROM_PROTOCOL_INFO, WSA_FLAG_OVERLAPPED, Overlapped

from ._support import (
    PATIENCE,
    bindable,
    check_handles,
    close_all,
    creation_rule,
    levels,
    loopback,
    open_socket,
    room_above,
    stream_trio,
)

F = FROM_PROTOCOL_INFO


def triplets(entry: Any) -> list[tuple[int, int, int]]:
    af, st, proto = entry.address_family, entry.socket_type, entry.protocol
    return [
        (af, st, proto),
        (0, 0, 0),
        (F, F, F),
        (af, 0, 0),
        (0, st, 0),
        (0, 0, proto),
        (af, st, F),
        (F, st, 0),
        (af, F, proto),
    ]


def test_wildcards_and_from_protocol_info_are_accepted(wsp_host: Any, wsp_chain: Any) -> None:
    """A4: 0 in af/type (wildcards) and FROM_PROTOCOL_INFO (-1) anywhere in the
    triplet are accepted through every entry of the chain, and the socket takes
    the entry's values."""
    for entry in wsp_chain.entries:
        for triplet in triplets(entry):
            s = open_socket(wsp_host, entry, *triplet)
            try:
                got = (s.family, s.type, s.proto)
                want = (entry.address_family, entry.socket_type, entry.protocol)
                assert got == want, (
                    f"A4: socket{triplet} through {entry.name!r} made a socket with "
                    f"(af, type, protocol) {got}, not the entry's {want}"
                )
                assert s.protocol_info == entry, f"A4: socket{triplet} used another entry"
            finally:
                s.close()


def test_selection_by_triplet_finds_the_chain_first(wsp_host: Any, wsp_chain: Any) -> None:
    """A2: with the chain installed first, socket(af, type, protocol) without a
    protocol info selects the chain's entry (a layer never declines it silently)."""
    for entry in wsp_chain.entries:
        for triplet in [
            (entry.address_family, entry.socket_type, entry.protocol),
            (entry.address_family, entry.socket_type, 0),
        ]:
            try:
                s = wsp_host.socket(*triplet)
            except wspframe.WSAError as exc:
                pytest.fail(
                    f"A2/A3: socket{triplet} failed with {exc.wsa_name}: {exc.strerror}",
                    pytrace=False,
                )
            with s:
                assert s.protocol_info == entry, (
                    f"A2/bug 6: socket{triplet} selected {s.protocol_info.name!r}, "
                    f"not the chain's entry {entry.name!r}: the chain is bypassed"
                )


def _spy_on_socket(monkeypatch: pytest.MonkeyPatch, providers: list[Any]) -> dict[int, list[Any]]:
    """Record the protocol info each provider instance's socket() is given."""
    seen: dict[int, list[Any]] = {}
    for provider in providers:
        if id(provider) in seen:
            continue  # the same instance at two levels
        calls: list[Any] = []
        seen[id(provider)] = calls
        original = provider.socket
        layered = isinstance(provider, wspframe.LayeredProvider)

        def spy(*args: Any, _original: Any = original, _calls: Any = calls, _l: bool = layered):
            _calls.append(args[4] if _l else args[3])
            return _original(*args)

        monkeypatch.setattr(provider, "socket", spy)
    return seen


def _check_propagation(
    host: Any, entries: list[Any], spied: list[Any], base: Any, what: str, seen: dict[int, Any]
) -> None:
    for entry in entries:
        for calls in seen.values():
            calls.clear()
        s = open_socket(host, entry, what=what)
        s.close()
        base_entry = host.catalog.get(entry.chain[-1]) if entry.chain else entry
        for provider in spied:
            got = seen[id(provider)]
            if provider is base:
                assert got, f"A4: {what}: the base {base.name!r} was never asked for a socket"
                assert all(info == base_entry for info in got), (
                    f"A4/bug 7: {what}: the base {base.name!r} was given "
                    f"{[i.name for i in got]}, not its own entry {base_entry.name!r}"
                )
            else:
                assert got, f"A4: {what}: layer {provider.name!r} was never asked for a socket"
                assert all(info == entry for info in got), (
                    f"A4/bug 7: {what}: layer {provider.name!r} was given "
                    f"{[i.name for i in got]}, not the same, unmodified chain entry {entry.name!r}"
                )


def test_protocol_info_propagation(
    wsp_host: Any, wsp_chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A4/bug 7: every layer's socket() is given the chain's own entry, unmodified,
    and the base its own base entry, through every entry of the chain."""
    providers = [*wsp_chain.layers, wsp_chain.base]
    seen = _spy_on_socket(monkeypatch, providers)
    _check_propagation(wsp_host, wsp_chain.entries, providers, wsp_chain.base, "the chain", seen)
    for entry, layer_socket in _layer_contexts(wsp_host, wsp_chain.entries):
        assert layer_socket.protocol_info == entry, (
            f"bug 7: layer {layer_socket.provider.name!r} keeps protocol info "
            f"{layer_socket.protocol_info.name!r} for a socket of {entry.name!r}"
        )


def _layer_contexts(host: Any, entries: list[Any]) -> list[tuple[Any, Any]]:
    out = []
    for entry in entries:
        s = open_socket(host, entry)
        try:
            out += [(entry, d.context) for d in levels(s)[:-1]]
        finally:
            s.close()
    return out


def test_protocol_info_propagation_under_another_layer(
    wsp_host: Any, wsp_chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A4/bug 7: layered under a recording layer, the chain's layers pass on the
    *outer* chain's entry they are given (not their own chain's) and the base
    still gets its own entry.  (A chain already 7 long is checked below its top
    layer: nothing fits above it, A21.)"""
    spec, layers = room_above(wsp_chain)
    outer = wsp_host.install_chain(f"conformance-record,{spec}")
    record = wsp_host.provider("conformance-record")
    providers = [*layers, wsp_chain.base]
    seen = _spy_on_socket(monkeypatch, [*wsp_chain.layers, wsp_chain.base])
    _check_propagation(wsp_host, outer, providers, wsp_chain.base, "under conformance-record", seen)
    assert [i.name for i in record.seen] == [e.name for e in outer], (
        "A4: the layer above the chain was not given its chain entries"
    )
    _check_propagation(
        wsp_host,
        wsp_chain.entries,
        [*wsp_chain.layers, wsp_chain.base],
        wsp_chain.base,
        "the chain",
        seen,
    )


@pytest.mark.parametrize("how", ["socket", "accept", "accept_overlapped"])
def test_handles_come_from_the_upcalls_and_the_ifs_flag_is_truthful(
    wsp_host: Any, wsp_chain: Any, wsp_socket: Callable[..., Any], how: str
) -> None:
    """A9/A10/bug 3: every level's handle was obtained from create_socket_handle
    or modify_ifs_handle under that level's catalog id, and XP1_IFS_HANDLES is
    set exactly when every level's handle is the OS socket."""
    for entry in wsp_chain.entries:
        if how == "socket":
            try:  # the plugin's own socket factory: it must obey the same rules
                s = wsp_socket(entry.address_family, entry.socket_type, flags=WSA_FLAG_OVERLAPPED)
            except wspframe.WSAError as exc:
                pytest.fail(
                    f"{creation_rule(exc)}: wsp_socket() through {entry.name!r} failed with "
                    f"{exc.wsa_name}: {exc.strerror}",
                    pytrace=False,
                )
            check_handles(wsp_host, s, f"a new socket of {entry.name!r}")
            continue
        if entry.socket_type != wspframe.SOCK_STREAM or not bindable(entry):
            continue
        if how == "accept":
            trio = stream_trio(wsp_host, entry)
            for s, role in zip(trio, ("listener", "client", "accepted socket"), strict=True):
                check_handles(wsp_host, s, f"the {role} of {entry.name!r}")
            close_all(*trio)
            continue
        listener = open_socket(wsp_host, entry, flags=WSA_FLAG_OVERLAPPED)
        listener.bind((loopback(entry), 0))
        listener.listen(1)
        ov = Overlapped()
        listener.accept_overlapped(ov)
        client = open_socket(wsp_host, entry, flags=WSA_FLAG_OVERLAPPED)
        client.settimeout(PATIENCE)
        client.connect(listener.getsockname())
        assert ov.wait(PATIENCE), "A14: accept_overlapped never completed"
        server = ov.result(0)
        try:
            check_handles(wsp_host, server, f"a socket accepted overlapped from {entry.name!r}")
        finally:
            close_all(server, client, listener)
