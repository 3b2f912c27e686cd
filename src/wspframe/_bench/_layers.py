"""The layers the benchmark stacks: send/recv pass-throughs in both forms."""

from __future__ import annotations

from typing import Any

from .._spi import LayeredProvider, LayerSocket


# -- the layer the benchmark adds ------------------------------------------------------
class BenchRelayLayer(LayeredProvider):
    """A layer overriding ``send`` and ``recv`` with a plain pass-through.

    The built-in ``passthrough`` overrides nothing, so compiled chains skip
    it and it costs nothing per operation; this one is what a layer that
    looks at the data, but changes nothing, costs.  Option ``tag`` (ignored)
    lets several be stacked.
    """

    name = "benchrelay"
    description = "benchmark layer: send/recv overridden with a plain pass-through (option: tag)"

    def send(self, s: LayerSocket, data: Any, flags: int) -> int:
        return s.lower.send(data, flags)  # type: ignore[no-any-return]

    def recv(self, s: LayerSocket, bufsize: int, flags: int) -> bytes:
        return s.lower.recv(bufsize, flags)  # type: ignore[no-any-return]


class _FastRelaySocket(LayerSocket):
    __slots__ = ()

    def send(self, data: Any, flags: int) -> int:
        return self.lower.send(data, flags)  # type: ignore[no-any-return]

    def recv(self, bufsize: int, flags: int) -> bytes:
        return self.lower.recv(bufsize, flags)  # type: ignore[no-any-return]


class BenchFastLayer(LayeredProvider):
    """:class:`BenchRelayLayer` in the fast form: ``send`` and ``recv``
    defined on the layer's socket class (see ``SOCKET_OPERATIONS``)."""

    name = "benchfast"
    description = (
        "benchmark layer: send/recv pass-through on its socket class, the fast form (option: tag)"
    )
    socket_class = _FastRelaySocket


def layered_spec(layer: str, count: int, base: str) -> str:
    """``layer[tag=1],...,layer[tag=count],base``."""
    return ",".join([*(f"{layer}[tag={i}]" for i in range(1, count + 1)), base])


# -- the floor: plain Python frames, no framework ------------------------------------------
class PlainFrame:
    """A plain Python object relaying ``send``/``recv`` to ``lower``.

    The least a Python call costs: one frame, one attribute, one call.  A
    stack of them over a raw socket is the floor under any chain written in
    Python, whatever its design.
    """

    __slots__ = ("lower",)

    def __init__(self, lower: Any) -> None:
        self.lower = lower

    def send(self, data: Any, flags: int = 0) -> int:
        return self.lower.send(data, flags)  # type: ignore[no-any-return]

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return self.lower.recv(bufsize, flags)  # type: ignore[no-any-return]


def frames_for(layers: int) -> int:
    """The Python frames a send or recv through ``layers`` send/recv layers
    over tcpip runs: the Socket API's, one per layer, and the base's."""
    return layers + 2


def plain_frames(sock: Any, frames: int) -> PlainFrame:
    """``sock`` under ``frames`` (>= 1) plain frames."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames!r}")
    top = PlainFrame(sock)
    for _ in range(frames - 1):
        top = PlainFrame(top)
    return top
