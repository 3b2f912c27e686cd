"""The ``extlayers`` plugin: one layered provider."""

from __future__ import annotations

import wspframe


class ExtLayer(wspframe.LayeredProvider):
    name = "extlayer"
    description = "fixture layer from wspframe-ext"


@wspframe.hookimpl
def wsp_providers() -> list[type[wspframe.ServiceProvider]]:
    return [ExtLayer]
