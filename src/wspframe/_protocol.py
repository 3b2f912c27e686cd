"""``ProtocolInfo``: one catalog entry, the ``WSAPROTOCOL_INFOW`` of wspframe."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any, Final

from ._constants import MAX_PROTOCOL_CHAIN, PFL, WSAPROTOCOL_LEN, XP1

__all__ = ["MAX_DATAGRAM_V4", "MAX_DATAGRAM_V6", "ProtocolInfo", "ip_entries", "provider_uuid"]

#: Namespace of the provider ids wspframe derives from names.
_NAMESPACE: Final = uuid.UUID("5f0c4a47-3f7c-5b2a-9d6e-77737066726d")


def provider_uuid(name: str) -> uuid.UUID:
    """A stable provider id derived from ``name`` (the same in every process)."""
    return uuid.uuid5(_NAMESPACE, name)


def _check_int(name: str, value: object, *, minimum: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class ProtocolInfo:
    """An immutable protocol entry, mirroring ``WSAPROTOCOL_INFOW``.

    ``chain`` is the protocol chain: empty for a layered (dummy) entry, one id
    for a base entry (its own ``catalog_entry_id`` once installed), two to
    seven ids for a chain entry (``chain[0]`` the top layer, ``chain[-1]`` the
    base).  Templates that providers declare carry ``catalog_entry_id`` 0 and
    an empty chain for base entries; the catalog fills both on install.
    """

    name: str
    address_family: int
    socket_type: int
    protocol: int
    service_flags: XP1 = XP1(0)  # noqa: RUF009 - an immutable flag value
    provider_flags: PFL = PFL(0)  # noqa: RUF009
    provider_id: uuid.UUID = dataclasses.field(default_factory=lambda: uuid.UUID(int=0))
    catalog_entry_id: int = 0
    chain: tuple[int, ...] = ()
    version: int = 2
    max_sockaddr: int = 16
    min_sockaddr: int = 16
    protocol_max_offset: int = 0
    network_byte_order: int = 0
    security_scheme: int = 0
    message_size: int = 0
    #: Set only on the one-use protocol info returned by ``Socket.duplicate()``.
    shared_token: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty str, got {self.name!r}")
        if len(self.name) > WSAPROTOCOL_LEN:
            raise ValueError(
                f"name must be at most {WSAPROTOCOL_LEN} characters, got {len(self.name)}"
            )
        for field in (
            "address_family",
            "socket_type",
            "protocol",
            "version",
            "max_sockaddr",
            "min_sockaddr",
            "protocol_max_offset",
            "network_byte_order",
            "security_scheme",
            "message_size",
            "catalog_entry_id",
            "shared_token",
        ):
            _check_int(field, getattr(self, field))
        _check_int("catalog_entry_id", self.catalog_entry_id, minimum=0)
        _check_int("protocol_max_offset", self.protocol_max_offset, minimum=0)
        if self.min_sockaddr > self.max_sockaddr:
            raise ValueError(
                f"min_sockaddr must be <= max_sockaddr, got {self.min_sockaddr} > "
                f"{self.max_sockaddr}"
            )
        if not isinstance(self.provider_id, uuid.UUID):
            raise TypeError(f"provider_id must be a uuid.UUID, got {self.provider_id!r}")
        object.__setattr__(self, "service_flags", XP1(self.service_flags))
        object.__setattr__(self, "provider_flags", PFL(self.provider_flags))
        chain = tuple(self.chain)
        for cid in chain:
            _check_int("chain id", cid, minimum=1)
        if len(chain) > MAX_PROTOCOL_CHAIN:
            raise ValueError(
                f"chain must be at most {MAX_PROTOCOL_CHAIN} ids long, got {len(chain)}: {chain}"
            )
        if len(set(chain)) != len(chain):
            raise ValueError(f"chain must not repeat an id, got {chain}")
        object.__setattr__(self, "chain", chain)

    # -- what kind of entry ------------------------------------------------
    @property
    def chain_len(self) -> int:
        """``ProtocolChain.ChainLen``: 0 layered, 1 base, more for a chain."""
        return len(self.chain)

    @property
    def is_layered(self) -> bool:
        """A layered (dummy) entry of a layered provider."""
        return len(self.chain) == 0

    @property
    def is_base(self) -> bool:
        """A base entry (a transport)."""
        return len(self.chain) == 1

    @property
    def is_chain(self) -> bool:
        """A protocol chain entry (layers over a base entry)."""
        return len(self.chain) > 1

    @property
    def is_hidden(self) -> bool:
        """``PFL_HIDDEN`` is set: never selected, not enumerated by ``enum_protocols``."""
        return bool(self.provider_flags & PFL.HIDDEN)

    @property
    def ifs(self) -> bool:
        """``XP1_IFS_HANDLES``: the handle is the provider's own OS handle."""
        return bool(self.service_flags & XP1.IFS_HANDLES)

    @property
    def entry_type(self) -> str:
        """The ``netsh winsock show catalog`` wording of the entry kind."""
        if self.is_base:
            return "Base Service Provider"
        if self.is_chain:
            return "Layered Chain Entry"
        return "Layered Service Provider"

    def matches_protocol(self, protocol: int) -> bool:
        """Whether ``protocol`` falls in ``protocol .. protocol + protocol_max_offset``."""
        return self.protocol <= protocol <= self.protocol + self.protocol_max_offset

    def replace(self, **changes: Any) -> ProtocolInfo:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (flags as ints, the UUID as a string)."""
        return {
            "name": self.name,
            "entry_type": self.entry_type,
            "catalog_entry_id": self.catalog_entry_id,
            "provider_id": str(self.provider_id),
            "version": self.version,
            "address_family": self.address_family,
            "max_sockaddr": self.max_sockaddr,
            "min_sockaddr": self.min_sockaddr,
            "socket_type": self.socket_type,
            "protocol": self.protocol,
            "protocol_max_offset": self.protocol_max_offset,
            "service_flags": int(self.service_flags),
            "provider_flags": int(self.provider_flags),
            "network_byte_order": self.network_byte_order,
            "security_scheme": self.security_scheme,
            "message_size": self.message_size,
            "chain_len": self.chain_len,
            "chain": list(self.chain),
        }

    def __repr__(self) -> str:
        return (
            f"ProtocolInfo(id={self.catalog_entry_id}, name={self.name!r}, "
            f"af={self.address_family}, type={self.socket_type}, protocol={self.protocol}, "
            f"chain={self.chain}, service_flags={int(self.service_flags):#x})"
        )


#: Largest UDP payloads over IPv4 and IPv6 (the UDP entries' ``message_size``).
MAX_DATAGRAM_V4: Final = 65507
MAX_DATAGRAM_V6: Final = 65527


def ip_entries(provider: str, *, ifs: bool) -> tuple[ProtocolInfo, ...]:
    """The four TCP/UDP over IPv4/IPv6 entry templates of an IP provider, with
    Winsock's service flags (TCP 0x20066, UDP 0x20609; without
    ``XP1_IFS_HANDLES`` unless ``ifs``), named ``"<provider> [TCP/IP]"`` and so on."""
    from socket import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, SOCK_DGRAM, SOCK_STREAM

    ifs_flag = XP1.IFS_HANDLES if ifs else XP1(0)
    tcp = XP1(0x66) | ifs_flag
    udp = XP1(0x609) | ifs_flag
    rows = (
        ("TCP/IP", AF_INET, SOCK_STREAM, IPPROTO_TCP, tcp, 16, 0),
        ("UDP/IP", AF_INET, SOCK_DGRAM, IPPROTO_UDP, udp, 16, MAX_DATAGRAM_V4),
        ("TCP/IPv6", AF_INET6, SOCK_STREAM, IPPROTO_TCP, tcp, 28, 0),
        (
            "UDP/IPv6",
            AF_INET6,
            SOCK_DGRAM,
            IPPROTO_UDP,
            udp,
            28,
            MAX_DATAGRAM_V6,
        ),
    )
    return tuple(
        ProtocolInfo(
            name=f"{provider} [{label}]",
            address_family=af,
            socket_type=kind,
            protocol=proto,
            service_flags=flags,
            provider_flags=PFL.MATCHES_PROTOCOL_ZERO,
            max_sockaddr=size,
            min_sockaddr=size,
            message_size=msg,
        )
        for label, af, kind, proto, flags, size, msg in rows
    )
