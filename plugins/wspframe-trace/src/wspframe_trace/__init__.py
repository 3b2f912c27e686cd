"""wspframe-trace: a layered provider that records every SPI operation.

Install it and the ``trace`` layer appears in ``wspframe providers``; use it
in a chain spec (``trace,tcpip``, ``trace[pcap=run.pcapng],tcpip``,
``trace[jsonl=ops.jsonl],faults[latency=5ms],memory``) and read what it saw
from ``host.provider("trace")``: ``events``, ``sockets()``, ``summary()``,
``stats()``.
"""

from __future__ import annotations

from typing import Any

import wspframe

from ._events import SocketRecord, TraceEvent
from ._layer import TraceLayer, TraceSocket
from ._pcapng import PcapngWriter, read_packets

__all__ = [
    "PcapngWriter",
    "SocketRecord",
    "TraceEvent",
    "TraceLayer",
    "TraceSocket",
    "read_packets",
    "wsp_providers",
]


@wspframe.hookimpl
def wsp_providers() -> list[type[Any]]:
    """The providers of this plugin: the ``trace`` layer."""
    return [TraceLayer]
