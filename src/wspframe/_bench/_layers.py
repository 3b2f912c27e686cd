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
