"""Built-in layers: ``passthrough`` (overrides nothing) and ``observe`` (records).

``passthrough`` is the reference for what a layer costs when it changes
nothing: compiled chains skip it on every operation.  It takes one optional
option, ``tag``, so several can be stacked (``passthrough[tag=1],passthrough[tag=2],tcpip``).

``observe`` records what it sees (operation, handle, byte count or error) in
``events``; ``wspframe demo`` prints it as the layer's view of the conversation.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, NamedTuple

from ._errors import WSAError
from ._spi import LayeredProvider, LayerSocket

__all__ = ["Observation", "ObserveLayer", "PassthroughLayer"]


class PassthroughLayer(LayeredProvider):
    """A layer that changes nothing and costs nothing."""

    name = "passthrough"
    description = "pass-through layer: overrides nothing (option: tag=TEXT to stack several)"


class Observation(NamedTuple):
    """One operation an ``observe`` layer saw."""

    op: str
    handle: int
    detail: str
    nbytes: int = 0


class ObserveLayer(LayeredProvider):
    """A layer that records every connection-level operation and data transfer."""

    name = "observe"
    description = "records operations and byte counts (used by 'wspframe demo')"

    def configure(self, options: Mapping[str, str]) -> None:
        super().configure(options)
        self.events: list[Observation] = []
        self._lock = threading.Lock()

    def stats(self) -> dict[str, int]:
        """Operation counts and bytes each way, for ``pytest --wsp-stats``."""
        out: dict[str, int] = {}
        with self._lock:
            events = list(self.events)
        for ev in events:
            out[f"ops.{ev.op}"] = out.get(f"ops.{ev.op}", 0) + 1
            if ev.nbytes:
                key = "bytes_sent" if ev.op.startswith("send") else "bytes_received"
                out[key] = out.get(key, 0) + ev.nbytes
        return out

    def _note(self, op: str, s: LayerSocket, detail: str, nbytes: int = 0) -> None:
        with self._lock:
            self.events.append(Observation(op, s.handle, detail, nbytes))

    def _call(self, op: str, s: LayerSocket, fn: Any, *args: Any) -> Any:
        try:
            result = fn(*args)
        except WSAError as exc:
            self._note(op, s, exc.wsa_name)
            raise
        return result

    def socket(self, next, af, type, protocol, protocol_info, group, flags):  # type: ignore[no-untyped-def]
        s = super().socket(next, af, type, protocol, protocol_info, group, flags)
        self._note("socket", s, protocol_info.name)
        return s

    def bind(self, s: LayerSocket, address: Any) -> None:
        self._call("bind", s, s.lower.bind, address)
        self._note("bind", s, str(address))

    def connect(self, s: LayerSocket, address: Any) -> None:
        self._call("connect", s, s.lower.connect, address)
        self._note("connect", s, str(address))

    def accept(self, s: LayerSocket) -> tuple[LayerSocket, Any]:
        new, address = self._call("accept", s, super().accept, s)
        self._note("accept", new, str(address))
        return new, address

    def send(self, s: LayerSocket, data: Any, flags: int) -> int:
        n: int = self._call("send", s, s.lower.send, data, flags)
        self._note("send", s, f"{n} bytes", n)
        return n

    def recv(self, s: LayerSocket, bufsize: int, flags: int) -> bytes:
        data: bytes = self._call("recv", s, s.lower.recv, bufsize, flags)
        self._note("recv", s, f"{len(data)} bytes", len(data))
        return data

    def sendto(self, s: LayerSocket, data: Any, flags: int, address: Any) -> int:
        n: int = self._call("sendto", s, s.lower.sendto, data, flags, address)
        self._note("sendto", s, f"{n} bytes to {address}", n)
        return n

    def recvfrom(self, s: LayerSocket, bufsize: int, flags: int) -> tuple[bytes, Any]:
        data, address = self._call("recvfrom", s, s.lower.recvfrom, bufsize, flags)
        self._note("recvfrom", s, f"{len(data)} bytes from {address}", len(data))
        return data, address

    def shutdown(self, s: LayerSocket, how: int) -> None:
        self._call("shutdown", s, s.lower.shutdown, how)
        self._note("shutdown", s, ("SD_RECEIVE", "SD_SEND", "SD_BOTH")[how])

    def close_socket(self, s: LayerSocket) -> None:
        self._note("close", s, "")
        super().close_socket(s)
