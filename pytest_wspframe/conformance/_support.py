"""Helpers of the conformance suite: sockets, levels, handles, waiting."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import wspframe
from wspframe import XP1, LayerSocket, WSAError, WSAErrorCode

C = WSAErrorCode
ABORTED = int(C.WSA_OPERATION_ABORTED)
#: How long any single wait of the suite may take before it counts as "never".
PATIENCE = 10.0
#: Once an operation is done, how soon its notification (port packet, APC)
#: must follow: the host delivers it in the same call that completes it.
GRACE = 1.0


def name_of(code: int) -> str:
    """``WSAECONNRESET (10054)``, ``0 (success)``."""
    if not code:
        return "0 (success)"
    try:
        return f"{WSAErrorCode(code).name} ({int(code)})"
    except ValueError:
        return str(code)


def creation_rule(exc: WSAError) -> str:
    """The rule a refused socket creation most likely broke."""
    text = exc.strerror or str(exc)
    if "the SPI requires" in text:
        return (
            "A4/bug 7 (protocol-info propagation: the same chain entry to layers, "
            "the base entry to the base)"
        )
    if exc.wsa_code == C.WSAEINVALIDPROVIDER:
        return (
            "A9/A10/bug 3 (handles only from create_socket_handle/modify_ifs_handle, "
            "IFS flag truthful)"
        )
    return "A4 (wildcards and FROM_PROTOCOL_INFO accepted through the chain's entry)"


def open_socket(host: Any, entry: Any, *args: Any, what: str = "", **kwargs: Any) -> Any:
    """``host.socket(...)`` failing the check with the rule it broke."""
    try:
        return host.socket(*args, protocol_info=entry, **kwargs)
    except WSAError as exc:
        call = ", ".join([*(repr(a) for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        pytest.fail(
            f"{creation_rule(exc)}: socket({call}) through {entry.name!r} {what}failed with "
            f"{exc.wsa_name}: {exc.strerror}",
            pytrace=False,
        )


def stream_trio(
    host: Any, entry: Any, flags: int = wspframe.WSA_FLAG_OVERLAPPED
) -> tuple[Any, Any, Any]:
    """``(listener, client, server)`` through ``entry``, with timeouts set."""
    listener = open_socket(host, entry, flags=flags)
    listener.bind((loopback(entry), 0))
    listener.listen(8)
    client = open_socket(host, entry, flags=flags)
    client.settimeout(PATIENCE)
    client.connect(listener.getsockname())
    listener.settimeout(PATIENCE)
    server, _ = listener.accept()
    server.settimeout(PATIENCE)
    return listener, client, server


def loopback(entry: Any) -> str:
    return "::1" if entry.address_family == wspframe.AF_INET6 else "127.0.0.1"


@functools.cache
def _os_has_ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def bindable(entry: Any) -> bool:
    """Whether the suite can bind ``entry``'s loopback here (no IPv6 loopback
    on this machine: its IPv6 entries are left out of the checks that bind)."""
    return entry.address_family != wspframe.AF_INET6 or _os_has_ipv6_loopback()


def close_all(*sockets: Any) -> None:
    for s in sockets:
        if s is not None:
            s.close()


def levels(sock: Any) -> list[Any]:
    """The socket's :class:`~wspframe.Dispatch` at every level, top to base."""
    out = [sock._core.top]
    while isinstance(out[-1].context, LayerSocket):
        out.append(out[-1].context.lower)
    return out


def check_handles(host: Any, sock: Any, what: str) -> None:
    """Every level's handle came from the upcalls, registered under that level's
    catalog id; XP1_IFS_HANDLES is set iff every level's handle is the OS socket."""
    entry = sock.protocol_info
    chain = levels(sock)
    ids = [d.level.catalog_entry_id for d in chain]
    expected = list(entry.chain or (entry.catalog_entry_id,))
    assert ids == expected, (
        f"A1: {what}: the socket's levels belong to catalog ids {ids}, "
        f"but its entry {entry.name!r} names the chain {expected}"
    )
    table = host._table
    all_os = True
    for d in chain:
        cid, handle = d.level.catalog_entry_id, d.handle
        where = (
            f"{what}: level {d.level.index} ({d.level.name!r}, catalog id {cid}) handle {handle}"
        )
        record = table.get(handle)
        assert record is not None, (
            f"A9/A10: {where} is not in the host's handle table: it was not obtained "
            "from create_socket_handle or modify_ifs_handle (or was released too early)"
        )
        assert cid in record.owners, (
            f"A9/A10: {where} is registered under catalog id(s) {record.owners}, "
            f"not under the level's own id {cid}"
        )
        if record.ifs:
            assert record.peer is None, f"A9: {where} is registered as IFS but was minted"
            assert _is_socket(handle), f"A9: {where} is registered as IFS but is no OS socket"
        else:
            all_os = False
            assert record.owners == [cid], (
                f"A10: {where} was minted for ids {record.owners}; a minted handle has one owner"
            )
            context = host.upcalls.query_socket_handle_context(handle)
            assert context is d.context, (
                f"A10: {where}: query_socket_handle_context returns {context!r}, "
                f"not the level's context {d.context!r}"
            )
    if len({d.handle for d in chain}) != 1:
        all_os = False
    flag = bool(entry.service_flags & XP1.IFS_HANDLES)
    kinds = ", ".join(
        f"{d.level.name}={'IFS' if table.get(d.handle).ifs else 'minted'}:{d.handle}" for d in chain
    )
    assert flag == all_os, (
        f"A9/bug 3 (IFS flag truthful): {what}: {entry.name!r} has XP1_IFS_HANDLES "
        f"{'set' if flag else 'clear'}, but {'not ' if not all_os else ''}every level's "
        f"handle is the OS socket ({kinds})"
    )
    assert sock.is_ifs == flag, (
        f"bug 2/3: {what}: socket.is_ifs is {sock.is_ifs}, its entry says "
        f"XP1_IFS_HANDLES {'set' if flag else 'clear'}"
    )


def _is_socket(handle: int) -> bool:
    import stat

    try:
        return stat.S_ISSOCK(os.fstat(handle).st_mode)
    except OSError:
        return False


def wait_until(predicate: Callable[[], bool], timeout: float = PATIENCE) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def code_of(fn: Callable[[], object]) -> int | None:
    """The WSA code ``fn`` fails with (None if it succeeds); a non-WSAError is a
    broken containment rule and fails the check at once."""
    try:
        fn()
    except WSAError as exc:
        return int(exc.wsa_code)
    except Exception as exc:  # pragma: no cover - the host contains everything
        pytest.fail(f"bug 11: {exc!r} escaped as something other than a WSAError", pytrace=False)
    return None


def open_descriptors() -> set[int] | None:
    """The process's open descriptors, or None where that cannot be listed."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            return {int(n) for n in os.listdir(folder)}
        except OSError:
            continue
    return None


@contextmanager
def no_new_handles(host: Any, what: str) -> Iterator[None]:
    """Fail unless the host's handle table is back to what it was."""
    before = set(host.open_handles())
    yield
    left = set(host.open_handles()) - before
    assert not left, f"bug 9/11: {what} left handle(s) {sorted(left)} in the host's handle table"


def room_above(chain: Any) -> tuple[str, list[Any]]:
    """The chain under test, or, when it is already ``MAX_PROTOCOL_CHAIN`` long
    (nothing fits above it, A21), the chain below its top layer: the spec to
    layer a suite layer over, and that spec's layer instances, top first."""
    parsed = chain.parsed
    layers = list(parsed.layers)
    if len(layers) + 2 > wspframe.MAX_PROTOCOL_CHAIN:
        layers = layers[1:]
    spec = ",".join([*(str(e) for e in layers), str(parsed.base)])
    return spec, [chain.host.provider(str(e)) for e in layers]
