"""A plugin whose layer subclasses ``wspframe-ext``'s layer.

Its entry point ``sub`` sorts after ``extlayers``, so ``ExtLayer`` is loaded
(and credited to ``wspframe-ext``) first.
"""

from __future__ import annotations

from wspframe_ext.layers import ExtLayer

import wspframe


class SubLayer(ExtLayer):
    name = "sublayer"
    description = "fixture layer from wspframe-sub, derived from wspframe-ext's"


@wspframe.hookimpl
def wsp_providers() -> list[type[wspframe.ServiceProvider]]:
    return [SubLayer]
