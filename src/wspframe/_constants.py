"""Winsock constants as enums.

Winsock-specific values (``XP1_*``, ``PFL_*``, ``WSA_FLAG_*``, ioctl codes) keep
Winsock's numbers.  Address families, socket types and protocols take the
platform :mod:`socket` module's values so that ``socket.AF_INET6`` and friends
work unchanged; they agree with Winsock's numbers except ``AF_INET6``, which is
23 on Windows and 10 on Linux.
"""

from __future__ import annotations

import enum
import socket as _socket
from typing import Final

__all__ = [
    "AF_INET",
    "AF_INET6",
    "AF_UNSPEC",
    "BASE_PROTOCOL",
    "FIONBIO",
    "FIONREAD",
    "FROM_PROTOCOL_INFO",
    "IPPROTO_IP",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "LAYERED_PROTOCOL",
    "MAX_PROTOCOL_CHAIN",
    "PFL",
    "SD_BOTH",
    "SD_RECEIVE",
    "SD_SEND",
    "SOCK_DGRAM",
    "SOCK_RAW",
    "SOCK_STREAM",
    "WSAPROTOCOL_LEN",
    "WSA_FLAG_MULTIPOINT_C_LEAF",
    "WSA_FLAG_MULTIPOINT_C_ROOT",
    "WSA_FLAG_MULTIPOINT_D_LEAF",
    "WSA_FLAG_MULTIPOINT_D_ROOT",
    "WSA_FLAG_OVERLAPPED",
    "XP1",
    "AddressFamily",
    "IoctlCode",
    "LspCategory",
    "Protocol",
    "Shutdown",
    "SocketType",
    "WSAFlag",
]


class XP1(enum.IntFlag):
    """Service flags of a protocol entry (``dwServiceFlags1``)."""

    CONNECTIONLESS = 0x1
    GUARANTEED_DELIVERY = 0x2
    GUARANTEED_ORDER = 0x4
    MESSAGE_ORIENTED = 0x8
    PSEUDO_STREAM = 0x10
    GRACEFUL_CLOSE = 0x20
    EXPEDITED_DATA = 0x40
    CONNECT_DATA = 0x80
    DISCONNECT_DATA = 0x100
    SUPPORT_BROADCAST = 0x200
    SUPPORT_MULTIPOINT = 0x400
    MULTIPOINT_CONTROL_PLANE = 0x800
    MULTIPOINT_DATA_PLANE = 0x1000
    QOS_SUPPORTED = 0x2000
    INTERRUPT = 0x4000
    UNI_SEND = 0x8000
    UNI_RECV = 0x10000
    IFS_HANDLES = 0x20000
    PARTIAL_MESSAGE = 0x40000


class PFL(enum.IntFlag):
    """Provider flags of a protocol entry (``dwProviderFlags``)."""

    MULTIPLE_PROTO_ENTRIES = 0x1
    RECOMMENDED_PROTO_ENTRY = 0x2
    HIDDEN = 0x4
    MATCHES_PROTOCOL_ZERO = 0x8


class WSAFlag(enum.IntFlag):
    """Socket attribute flags given to ``socket()`` (``dwFlags``)."""

    OVERLAPPED = 0x01
    MULTIPOINT_C_ROOT = 0x02
    MULTIPOINT_C_LEAF = 0x04
    MULTIPOINT_D_ROOT = 0x08
    MULTIPOINT_D_LEAF = 0x10
    ACCESS_SYSTEM_SECURITY = 0x40
    NO_HANDLE_INHERIT = 0x80


class LspCategory(enum.IntFlag):
    """Layered provider categories (Vista and later, ``WSCSetProviderInfo``)."""

    NONE = 0
    INSPECTOR = 0x1
    REDIRECTOR = 0x2
    PROXY = 0x4
    FIREWALL = 0x8
    INBOUND_MODIFY = 0x10
    OUTBOUND_MODIFY = 0x20
    CRYPTO_COMPRESS = 0x40
    LOCAL_CACHE = 0x80
    SYSTEM = 0x80000000


class AddressFamily(enum.IntEnum):
    """Address families, with the platform ``socket`` module's values."""

    AF_UNSPEC = _socket.AF_UNSPEC
    AF_INET = _socket.AF_INET
    AF_INET6 = _socket.AF_INET6


class SocketType(enum.IntEnum):
    """Socket types, with the platform ``socket`` module's values."""

    SOCK_STREAM = _socket.SOCK_STREAM
    SOCK_DGRAM = _socket.SOCK_DGRAM
    SOCK_RAW = _socket.SOCK_RAW


class Protocol(enum.IntEnum):
    """IP protocols, with the platform ``socket`` module's values."""

    IPPROTO_IP = _socket.IPPROTO_IP
    IPPROTO_TCP = _socket.IPPROTO_TCP
    IPPROTO_UDP = _socket.IPPROTO_UDP


class Shutdown(enum.IntEnum):
    """``how`` for shutdown: Winsock's ``SD_*`` equal POSIX's ``SHUT_*``."""

    SD_RECEIVE = 0
    SD_SEND = 1
    SD_BOTH = 2


class IoctlCode(enum.IntEnum):
    """Ioctl codes with Winsock's values."""

    FIONREAD = 0x4004667F
    FIONBIO = 0x8004667E
    SIOCATMARK = 0x40047307


#: Take af/type/protocol from the protocol info given to ``socket()``.
FROM_PROTOCOL_INFO: Final = -1
#: Longest protocol chain, base included.
MAX_PROTOCOL_CHAIN: Final = 7
#: Longest protocol name (``WSAPROTOCOL_LEN``).
WSAPROTOCOL_LEN: Final = 255
#: ``ProtocolChain.ChainLen`` of a layered (dummy) entry.
LAYERED_PROTOCOL: Final = 0
#: ``ProtocolChain.ChainLen`` of a base entry.
BASE_PROTOCOL: Final = 1

AF_UNSPEC: Final = AddressFamily.AF_UNSPEC
AF_INET: Final = AddressFamily.AF_INET
AF_INET6: Final = AddressFamily.AF_INET6
SOCK_STREAM: Final = SocketType.SOCK_STREAM
SOCK_DGRAM: Final = SocketType.SOCK_DGRAM
SOCK_RAW: Final = SocketType.SOCK_RAW
IPPROTO_IP: Final = Protocol.IPPROTO_IP
IPPROTO_TCP: Final = Protocol.IPPROTO_TCP
IPPROTO_UDP: Final = Protocol.IPPROTO_UDP
SD_RECEIVE: Final = Shutdown.SD_RECEIVE
SD_SEND: Final = Shutdown.SD_SEND
SD_BOTH: Final = Shutdown.SD_BOTH
FIONREAD: Final = IoctlCode.FIONREAD
FIONBIO: Final = IoctlCode.FIONBIO
WSA_FLAG_OVERLAPPED: Final = WSAFlag.OVERLAPPED
WSA_FLAG_MULTIPOINT_C_ROOT: Final = WSAFlag.MULTIPOINT_C_ROOT
WSA_FLAG_MULTIPOINT_C_LEAF: Final = WSAFlag.MULTIPOINT_C_LEAF
WSA_FLAG_MULTIPOINT_D_ROOT: Final = WSAFlag.MULTIPOINT_D_ROOT
WSA_FLAG_MULTIPOINT_D_LEAF: Final = WSAFlag.MULTIPOINT_D_LEAF
