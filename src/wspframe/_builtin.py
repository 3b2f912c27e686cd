"""The built-in plugin: the ``tcpip`` and ``memory`` base providers and the
``passthrough`` layer, registered through the same entry-point group as any
third-party plugin."""

from __future__ import annotations

from typing import Any

from ._hooks import hookimpl


@hookimpl
def wsp_providers() -> list[type[Any]]:
    from ._memory import MemoryProvider
    from ._passthrough import ObserveLayer, PassthroughLayer
    from ._tcpip import TcpipProvider

    return [TcpipProvider, MemoryProvider, PassthroughLayer, ObserveLayer]
