"""Addresses, ports and buffers of the ``memory`` provider (see ``_memory`` for the model).

Addresses are ``(host, port)`` for IPv4 and ``(host, port[, flowinfo[,
scope_id]])`` for IPv6 (shown as 4-tuples, like Python); hosts are IP
literals, ``""`` (any address) or ``"localhost"``.  Malformed ones fail with
WSAEFAULT, as do data and buffers that are not bytes-like.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import TYPE_CHECKING, Any, Final

from ._constants import AF_INET, AF_INET6
from ._errors import WSAErrorCode, raise_wsa, wsa_error

if TYPE_CHECKING:
    from ._memnet import MemoryNetwork
    from ._memsock import MemorySocket

_E = WSAErrorCode

ANY: Final = {int(AF_INET): "0.0.0.0", int(AF_INET6): "::"}
LOOPBACK: Final = {int(AF_INET): "127.0.0.1", int(AF_INET6): "::1"}
BROADCAST: Final = "255.255.255.255"
FAMILY_NAMES: Final = {int(AF_INET): "AF_INET", int(AF_INET6): "AF_INET6"}


@functools.lru_cache(maxsize=1024)
def host_ip(family: int, host: str) -> str | None:
    """The normalised IP of ``host`` (None when it is of the other family)."""
    if host == "":
        return ANY[family]
    if host == "localhost":
        return LOOPBACK[family]
    if host == "<broadcast>":
        return BROADCAST if family == AF_INET else None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise_wsa(
            _E.WSAEFAULT,
            f"host must be an IP literal, '' or 'localhost' (the memory network has no "
            f"names), got {host!r}",
        )
    if (ip.version == 4) != (family == AF_INET):
        return None
    return str(ip)


def parse_address(family: int, address: Any, wrong_family: int) -> tuple[str, int]:
    """``(ip, port)`` from a user address; WSAEFAULT when malformed."""
    if type(address) is not tuple or not (
        len(address) == 2 if family == AF_INET else 2 <= len(address) <= 4
    ):
        shape = "(host, port)" if family == AF_INET else "(host, port[, flowinfo[, scope_id]])"
        raise_wsa(
            _E.WSAEFAULT,
            f"address must be a {shape} tuple for {FAMILY_NAMES[family]}, got {address!r}",
        )
    host, port = address[0], address[1]
    if type(port) is not int or not 0 <= port <= 65535:
        raise_wsa(_E.WSAEFAULT, f"port must be an int in 0..65535, got {port!r} in {address!r}")
    if len(address) > 2:
        flowinfo = address[2]
        if type(flowinfo) is not int or not 0 <= flowinfo <= 0xFFFFF:
            raise_wsa(_E.WSAEFAULT, f"flowinfo must be an int in 0..1048575, got {flowinfo!r}")
        if len(address) > 3 and (type(address[3]) is not int or address[3] < 0):
            raise_wsa(_E.WSAEFAULT, f"scope_id must be an int >= 0, got {address[3]!r}")
    if type(host) is not str:
        raise_wsa(_E.WSAEFAULT, f"host must be a str, got {host!r} in {address!r}")
    ip = host_ip(family, host)
    if ip is None:
        raise_wsa(
            wrong_family,
            f"address {address!r} is not an {FAMILY_NAMES[family]} address",
        )
    return (ip, port)


def public_address(family: int, addr: tuple[str, int]) -> Any:
    """The address as Python shows it: a 4-tuple for IPv6."""
    if family == AF_INET:
        return addr
    return (addr[0], addr[1], 0, 0)


def as_bytes(data: Any) -> bytes:
    try:
        return bytes(memoryview(data))
    except TypeError:
        raise wsa_error(_E.WSAEFAULT, f"data must be a bytes-like object, got {data!r}") from None


def byte_view(data: Any) -> memoryview:
    """A flat byte view of a bytes-like object (release it after use)."""
    try:
        view = memoryview(data)
    except TypeError:
        raise wsa_error(_E.WSAEFAULT, f"data must be a bytes-like object, got {data!r}") from None
    if view.format == "B" and view.ndim == 1:
        return view
    with view:
        try:
            return view.cast("B")
        except TypeError:
            raise wsa_error(_E.WSAEFAULT, f"data must be C-contiguous, got {data!r}") from None


def writable_view(buffer: Any, nbytes: int) -> tuple[memoryview, int]:
    """A writable byte view of ``buffer`` and the size to read into it."""
    try:
        view = memoryview(buffer)
    except TypeError:
        raise_wsa(_E.WSAEFAULT, f"buffer must be a writable bytes-like object, got {buffer!r}")
    if view.readonly:
        raise_wsa(_E.WSAEFAULT, f"buffer must be writable, got {buffer!r}")
    if view.format != "B" or view.ndim != 1:
        try:
            view = view.cast("B")
        except TypeError:
            raise_wsa(_E.WSAEFAULT, f"buffer must be C-contiguous, got {buffer!r}")
    if type(nbytes) is not int or nbytes < 0:
        raise_wsa(_E.WSAEINVAL, f"nbytes must be an int >= 0, got {nbytes!r}")
    if nbytes > len(view):
        raise_wsa(
            _E.WSAEINVAL, f"nbytes must not exceed the buffer's {len(view)} bytes, got {nbytes!r}"
        )
    return view, nbytes or len(view)


# -- the network's port table (lock held) --------------------------------------------
# ``MemoryNetwork._ports``: per (type, family), per port, the sockets bound to it.


def ephemeral_port(net: MemoryNetwork, key: tuple[int, int]) -> int:
    """The next free ephemeral port for sockets of ``key`` (type, family)."""
    table = net._ports.get(key, {})
    first, last = net.EPHEMERAL_FIRST, net.EPHEMERAL_LAST
    port = net._next_port
    for _ in range(last - first + 1):
        following = port + 1 if port < last else first
        if port not in table:
            net._next_port = following
            return port
        port = following
    raise_wsa(_E.WSAENOBUFS, f"no free ephemeral port in {first}..{last}")


def register(s: MemorySocket) -> None:
    """Enter ``s`` (bound) in its network's port table."""
    assert s.local is not None
    s.network._ports.setdefault(s.key, {}).setdefault(s.local[1], []).append(s)


def unregister(s: MemorySocket) -> None:
    """Take ``s`` out of its network's port table, if it is there."""
    if s.local is None:
        return
    table = s.network._ports.get(s.key)
    if table is None:
        return
    port = s.local[1]
    bound = table.get(port)
    if bound is not None and s in bound:
        bound.remove(s)
        if not bound:
            del table[port]


def conflict(s: MemorySocket, ip: str, port: int) -> MemorySocket | None:
    """The socket that keeps ``s`` from ``(ip, port)``, if any."""
    wild = ANY[s.family]
    for other in s.network._ports.get(s.key, {}).get(port, ()):
        if other is s or other.local is None:
            continue
        oip = other.local[0]
        if oip != ip and oip != wild and ip != wild:
            continue
        if s.reuse and other.reuse and not (s.stream and other.state == _LISTENING):
            continue
        return other
    return None


_LISTENING: Final = 1  # _memsock.LISTENING (which imports this module)
