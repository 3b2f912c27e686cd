"""The argument rules of ``WSASocket`` (and ``WSPSocket``) the host checks:
af/type/protocol must be ints, and ``flags`` a valid combination of
``WSA_FLAG_*`` for the entry (SPI rule A17 for multipoint)."""

from __future__ import annotations

from ._constants import XP1, WSAFlag
from ._errors import WSAErrorCode, raise_wsa
from ._protocol import ProtocolInfo

__all__ = ["FLAGS_TO_CHECK", "check_flags", "check_triplet"]

_MULTIPOINT = (
    WSAFlag.MULTIPOINT_C_ROOT
    | WSAFlag.MULTIPOINT_C_LEAF
    | WSAFlag.MULTIPOINT_D_ROOT
    | WSAFlag.MULTIPOINT_D_LEAF
)
_MULTIPOINT_BITS = int(_MULTIPOINT)
_KNOWN_FLAGS = int(
    _MULTIPOINT | WSAFlag.OVERLAPPED | WSAFlag.NO_HANDLE_INHERIT | WSAFlag.ACCESS_SYSTEM_SECURITY
)
#: Bits of a plain int ``flags`` that check_flags must look at (multipoint,
#: unknown, the sign); an int without any passes it.
FLAGS_TO_CHECK = ~(_KNOWN_FLAGS & ~_MULTIPOINT_BITS)


def check_flags(flags: int, entry: ProtocolInfo) -> None:
    """The ``dwFlags`` rules of ``WSPSocket`` (multipoint needs exactly one of
    C_ROOT/C_LEAF and one of D_ROOT/D_LEAF, ROOT only on rooted planes)."""
    # As a plain int: arithmetic on a WSAFlag runs Python code.
    value = int(flags) if isinstance(flags, int) else -1
    if value < 0 or value & ~_KNOWN_FLAGS:
        raise_wsa(
            WSAErrorCode.WSAEINVAL, f"flags must be a combination of WSA_FLAG_*, got {flags!r}"
        )
    mp = value & _MULTIPOINT_BITS
    if not mp:
        return
    sf = entry.service_flags
    if not sf & XP1.SUPPORT_MULTIPOINT:
        raise_wsa(
            WSAErrorCode.WSAEINVAL,
            f"multipoint flags {WSAFlag(mp)!r} given, but {entry.name!r} lacks "
            "XP1_SUPPORT_MULTIPOINT",
        )
    c = mp & (WSAFlag.MULTIPOINT_C_ROOT | WSAFlag.MULTIPOINT_C_LEAF)
    d = mp & (WSAFlag.MULTIPOINT_D_ROOT | WSAFlag.MULTIPOINT_D_LEAF)
    if c not in (WSAFlag.MULTIPOINT_C_ROOT, WSAFlag.MULTIPOINT_C_LEAF) or d not in (
        WSAFlag.MULTIPOINT_D_ROOT,
        WSAFlag.MULTIPOINT_D_LEAF,
    ):
        raise_wsa(
            WSAErrorCode.WSAEINVAL,
            "multipoint sockets need exactly one of WSA_FLAG_MULTIPOINT_C_ROOT/C_LEAF and one "
            f"of WSA_FLAG_MULTIPOINT_D_ROOT/D_LEAF, got {WSAFlag(mp)!r}",
        )
    if c == WSAFlag.MULTIPOINT_C_ROOT and not sf & XP1.MULTIPOINT_CONTROL_PLANE:
        raise_wsa(
            WSAErrorCode.WSAEINVAL, f"C_ROOT needs a rooted control plane; {entry.name!r} has none"
        )
    if d == WSAFlag.MULTIPOINT_D_ROOT and not sf & XP1.MULTIPOINT_DATA_PLANE:
        raise_wsa(
            WSAErrorCode.WSAEINVAL, f"D_ROOT needs a rooted data plane; {entry.name!r} has none"
        )


def check_triplet(name: str, value: object) -> int:
    """``value`` as an int, if it is one (an enum member becomes its value; not a bool)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise_wsa(WSAErrorCode.WSAEINVAL, f"{name} must be an int, got {value!r}")
    return int(value)
