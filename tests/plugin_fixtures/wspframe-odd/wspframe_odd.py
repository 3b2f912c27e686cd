"""A plugin whose ``wsp_providers()`` returns one non-provider among valid ones."""

from __future__ import annotations

from typing import Any

import wspframe


class NotAProvider:
    name = "notaprovider"


class OddLayer(wspframe.LayeredProvider):
    name = "oddlayer"
    description = "fixture layer from wspframe-odd"


@wspframe.hookimpl
def wsp_providers() -> list[Any]:
    return [NotAProvider, OddLayer]
