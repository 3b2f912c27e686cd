"""Layers the conformance suite uses, and reference layers to build chains with.

* ``conformance-relay`` overrides every operation of the dispatch table with
  the default behaviour, so every call really runs through it (a compiled
  chain skips ``passthrough`` on everything).  ``conformance-mint`` is the
  same but non-IFS: it mints its own handles, so every completion must be
  relayed by it.  Both take any option (``conformance-relay[n=1]``) so that
  several can be stacked.  Add them to a run with
  ``--wsp-provider=pytest_wspframe.conformance._layers:Relay`` (or ``:Mint``).
* ``conformance-record`` and ``conformance-explode`` are what the suite puts
  *above* the chain under test (the conformance ``conftest.py`` adds them to
  every host): the first records the protocol info each level is given, the
  second raises from the operations a test arms.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from wspframe import LayeredProvider, LayerSocket, Overlapped

__all__ = ["SUITE_LAYERS", "Explode", "Explosion", "Mint", "Record", "Relay"]


class Relay(LayeredProvider):
    """Overrides everything, changing nothing (the default behaviour, made explicit)."""

    name = "conformance-relay"
    description = "conformance suite: overrides every operation with the default behaviour"

    def configure(self, options: Mapping[str, str]) -> None:
        pass  # any option: several can be stacked

    def socket(self, next, af, type, protocol, protocol_info, group, flags):  # type: ignore[no-untyped-def]
        return super().socket(next, af, type, protocol, protocol_info, group, flags)

    def accept(self, s: LayerSocket) -> tuple[LayerSocket, Any]:
        return super().accept(s)

    def close_socket(self, s: LayerSocket) -> None:
        super().close_socket(s)

    def bind(self, s: LayerSocket, address: Any) -> None:
        super().bind(s, address)

    def listen(self, s: LayerSocket, backlog: int) -> None:
        super().listen(s, backlog)

    def connect(self, s: LayerSocket, address: Any) -> None:
        super().connect(s, address)

    def send(self, s: LayerSocket, data: Any, flags: int) -> int:
        return super().send(s, data, flags)

    def recv(self, s: LayerSocket, bufsize: int, flags: int) -> bytes:
        return super().recv(s, bufsize, flags)

    def recv_into(self, s: LayerSocket, buffer: Any, nbytes: int, flags: int) -> int:
        return super().recv_into(s, buffer, nbytes, flags)

    def sendto(self, s: LayerSocket, data: Any, flags: int, address: Any) -> int:
        return super().sendto(s, data, flags, address)

    def recvfrom(self, s: LayerSocket, bufsize: int, flags: int) -> tuple[bytes, Any]:
        return super().recvfrom(s, bufsize, flags)

    def recvfrom_into(
        self, s: LayerSocket, buffer: Any, nbytes: int, flags: int
    ) -> tuple[int, Any]:
        return super().recvfrom_into(s, buffer, nbytes, flags)

    def shutdown(self, s: LayerSocket, how: int) -> None:
        super().shutdown(s, how)

    def getsockname(self, s: LayerSocket) -> Any:
        return super().getsockname(s)

    def getpeername(self, s: LayerSocket) -> Any:
        return super().getpeername(s)

    def getsockopt(self, s: LayerSocket, level: int, option: int, buflen: int | None) -> Any:
        return super().getsockopt(s, level, option, buflen)

    def setsockopt(self, s: LayerSocket, level: int, option: int, value: Any) -> None:
        super().setsockopt(s, level, option, value)

    def ioctl(self, s: LayerSocket, code: int, arg: Any) -> Any:
        return super().ioctl(s, code, arg)

    def settimeout(self, s: LayerSocket, timeout: float | None) -> None:
        super().settimeout(s, timeout)

    def duplicate_socket(self, s: LayerSocket) -> None:
        super().duplicate_socket(s)

    def on_complete(self, s: LayerSocket, ov: Overlapped) -> None:
        super().on_complete(s, ov)

    def send_overlapped(self, s: LayerSocket, data: Any, flags: int, ov: Overlapped) -> None:
        super().send_overlapped(s, data, flags, ov)

    def recv_overlapped(self, s: LayerSocket, bufsize: int, flags: int, ov: Overlapped) -> None:
        super().recv_overlapped(s, bufsize, flags, ov)

    def sendto_overlapped(
        self, s: LayerSocket, data: Any, flags: int, address: Any, ov: Overlapped
    ) -> None:
        super().sendto_overlapped(s, data, flags, address, ov)

    def recvfrom_overlapped(self, s: LayerSocket, bufsize: int, flags: int, ov: Overlapped) -> None:
        super().recvfrom_overlapped(s, bufsize, flags, ov)

    def connect_overlapped(self, s: LayerSocket, address: Any, ov: Overlapped) -> None:
        super().connect_overlapped(s, address, ov)

    def accept_overlapped(self, s: LayerSocket, ov: Overlapped) -> None:
        super().accept_overlapped(s, ov)

    def ioctl_overlapped(self, s: LayerSocket, code: int, arg: Any, ov: Overlapped) -> None:
        super().ioctl_overlapped(s, code, arg, ov)

    def select(self, next, readers, writers, errors, timeout):  # type: ignore[no-untyped-def]
        return super().select(next, readers, writers, errors, timeout)

    def address_to_string(self, next, address, protocol_info):  # type: ignore[no-untyped-def]
        return super().address_to_string(next, address, protocol_info)

    def string_to_address(self, next, text, af, protocol_info):  # type: ignore[no-untyped-def]
        return super().string_to_address(next, text, af, protocol_info)


class Mint(Relay):
    """``conformance-relay`` with handles of its own (non-IFS)."""

    name = "conformance-mint"
    description = "conformance suite: overrides everything and mints its own (non-IFS) handles"
    ifs = False


class Record(LayeredProvider):
    """Records the protocol info its ``socket()`` is given (``seen``)."""

    name = "conformance-record"
    description = "conformance suite: records the protocol info of each socket() call"

    def configure(self, options: Mapping[str, str]) -> None:
        self.seen: list[Any] = []

    def socket(self, next, af, type, protocol, protocol_info, group, flags):  # type: ignore[no-untyped-def]
        self.seen.append(protocol_info)
        return super().socket(next, af, type, protocol, protocol_info, group, flags)


class Explosion(RuntimeError):
    """What ``conformance-explode`` raises: not a WSAError, on purpose."""


class Explode(LayeredProvider):
    """Raises :class:`Explosion` from the operations named in ``armed``.

    ``socket`` and ``close_socket`` raise after creating (and closing) or
    closing the rest of the chain properly; ``send`` and ``recv`` raise
    before calling down; ``on_complete`` raises while post-processing a
    completion.  Unarmed, it passes everything through.
    """

    name = "conformance-explode"
    description = "conformance suite: raises a non-WSAError from the operations a test arms"

    def configure(self, options: Mapping[str, str]) -> None:
        self.armed: set[str] = set()
        self.lock = threading.Lock()

    def _fire(self, op: str) -> None:
        if op in self.armed:
            raise Explosion(f"conformance-explode: {op} exploded")

    def socket(self, next, af, type, protocol, protocol_info, group, flags):  # type: ignore[no-untyped-def]
        s = super().socket(next, af, type, protocol, protocol_info, group, flags)
        if "socket" in self.armed:
            self.close_socket(s)  # leaves nothing behind, then fails
            self._fire("socket")
        return s

    def close_socket(self, s: LayerSocket) -> None:
        super().close_socket(s)
        self._fire("close_socket")

    def send(self, s: LayerSocket, data: Any, flags: int) -> int:
        self._fire("send")
        return super().send(s, data, flags)

    def recv(self, s: LayerSocket, bufsize: int, flags: int) -> bytes:
        self._fire("recv")
        return super().recv(s, bufsize, flags)

    def on_complete(self, s: LayerSocket, ov: Overlapped) -> None:
        self._fire("on_complete")


#: The layers the conformance conftest adds to every host of the suite.
SUITE_LAYERS: tuple[type[LayeredProvider], ...] = (Record, Explode)
