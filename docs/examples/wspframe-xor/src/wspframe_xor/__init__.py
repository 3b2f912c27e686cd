"""wspframe-xor: a layer that XORs every byte with a key (a toy cipher)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import wspframe
from wspframe import SOCK_STREAM, LayeredProvider, LayerSocket, Overlapped

__all__ = ["XorLayer", "XorSocket", "wsp_providers"]


class XorSocket(LayerSocket):
    """Per-socket state: how far each direction of a stream has come."""

    __slots__ = ("received", "sent", "stream")

    def __init__(self, provider: Any, lower: Any, protocol_info: Any) -> None:
        super().__init__(provider, lower, protocol_info)
        self.stream = protocol_info.socket_type == SOCK_STREAM
        self.sent = 0
        self.received = 0


class XorLayer(LayeredProvider):
    """XORs what the application sends and receives with ``key`` (hex)."""

    name = "xor"
    description = "XORs every byte with a key (option: key=HEX, default 5a)"
    socket_class = XorSocket

    def configure(self, options: Mapping[str, str]) -> None:
        options = dict(options)
        key = options.pop("key", "5a")
        super().configure(options)  # refuses any other option
        try:
            self.key = bytes.fromhex(key)
        except ValueError:
            self.key = b""
        if not self.key:
            raise ValueError(f"key must be hex digits such as 5a or c0ffee, got {key!r}")

    def mask(self, data: Any, offset: int) -> bytes:
        """``data`` XOR the key, the key starting at stream position ``offset``."""
        data = bytes(data)
        key, start = self.key, offset % len(self.key)
        stream = (key * (len(data) // len(key) + 2))[start : start + len(data)]
        mixed = int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")
        return mixed.to_bytes(len(data), "big")

    # -- what goes out: mask, then count what the level below took ----------
    def send(self, s: Any, data: Any, flags: int) -> int:
        n: int = s.lower.send(self.mask(data, s.sent), flags)
        if s.stream:
            s.sent += n
        return n

    def sendto(self, s: Any, data: Any, flags: int, address: Any) -> int:
        n: int = s.lower.sendto(self.mask(data, s.sent), flags, address)
        if s.stream:
            s.sent += n
        return n

    def send_overlapped(self, s: Any, data: Any, flags: int, ov: Overlapped) -> None:
        masked = self.mask(data, s.sent)
        if s.stream:
            s.sent += len(masked)  # an overlapped stream send completes in full
        super().send_overlapped(s, masked, flags, ov)

    def sendto_overlapped(
        self, s: Any, data: Any, flags: int, address: Any, ov: Overlapped
    ) -> None:
        masked = self.mask(data, s.sent)
        if s.stream:
            s.sent += len(masked)
        super().sendto_overlapped(s, masked, flags, address, ov)

    # -- what comes in: unmask, and count -------------------------------------------
    def _unmask(self, s: Any, data: bytes) -> bytes:
        clear = self.mask(data, s.received)
        if s.stream:
            s.received += len(data)
        return clear

    def recv(self, s: Any, bufsize: int, flags: int) -> bytes:
        return self._unmask(s, s.lower.recv(bufsize, flags))

    def recv_into(self, s: Any, buffer: Any, nbytes: int, flags: int) -> int:
        view = memoryview(buffer).cast("B")
        data = self.recv(s, nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data)

    def recvfrom(self, s: Any, bufsize: int, flags: int) -> tuple[bytes, Any]:
        data, address = s.lower.recvfrom(bufsize, flags)
        return self._unmask(s, data), address

    def recvfrom_into(self, s: Any, buffer: Any, nbytes: int, flags: int) -> tuple[int, Any]:
        view = memoryview(buffer).cast("B")
        data, address = self.recvfrom(s, nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data), address

    def on_complete(self, s: Any, ov: Overlapped) -> None:
        if ov.op in ("recv", "recvfrom") and not ov.error and ov.data:
            ov.data = self._unmask(s, ov.data)

    # -- what `wspframe demo` shows under the layer's name ------------------------------
    def summary(self) -> str:
        return f"key {self.key.hex()} ({len(self.key)} bytes)"


@wspframe.hookimpl
def wsp_providers() -> list[type[Any]]:
    """What this plugin offers: the ``xor`` layer."""
    return [XorLayer]
