"""The ``extbases`` plugin: one base provider (catalog entries only)."""

from __future__ import annotations

import wspframe
from wspframe import AF_INET, IPPROTO_UDP, SOCK_DGRAM, XP1, ProtocolInfo


class ExtBase(wspframe.ServiceProvider):
    name = "extbase"
    description = "fixture base provider from wspframe-ext"
    protocols = (
        ProtocolInfo(
            name="extbase [EXT/DGRAM]",
            address_family=AF_INET,
            socket_type=SOCK_DGRAM,
            protocol=IPPROTO_UDP,
            service_flags=XP1.CONNECTIONLESS | XP1.MESSAGE_ORIENTED,
            message_size=1200,
        ),
    )


@wspframe.hookimpl
def wsp_providers() -> list[type[wspframe.ServiceProvider]]:
    return [ExtBase]
