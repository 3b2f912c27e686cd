"""wspframe-faults: network faults injected in process, as a layered provider.

The in-process equivalent of toxiproxy's toxics, configured in a chain spec
(``faults[latency=20ms,jitter=5ms],tcpip``, ``faults[drop=5%,seed=7],memory``)
and changed at run time through the layer instance
(``host.provider("faults").set(bandwidth="1MB/s")``, ``.clear()``).
"""

from __future__ import annotations

from typing import Any

import wspframe

from ._layer import FaultsLayer
from ._options import FAIL_OPERATIONS, OPTIONS, FailRule, Toxics, parse_options
from ._state import FaultEvent, FaultsSocket

__all__ = [
    "FAIL_OPERATIONS",
    "OPTIONS",
    "FailRule",
    "FaultEvent",
    "FaultsLayer",
    "FaultsSocket",
    "Toxics",
    "parse_options",
    "wsp_providers",
]


@wspframe.hookimpl
def wsp_providers() -> list[type[Any]]:
    """The providers of this plugin: the ``faults`` layer."""
    return [FaultsLayer]
