"""wspframe: the Windows Sockets 2 Service Provider Interface, in Python.

A :class:`Host` discovers base providers (transports) and layered providers
through the ``wspframe.providers`` entry-point group, keeps a :class:`Catalog`
of protocol entries in a declared order, assembles protocol chains, and hands
out :class:`Socket` objects whose every call runs down the chain.
"""

from __future__ import annotations

from ._catalog import FIRST_CATALOG_ID, Catalog
from ._chain import Dispatch, NextLayer
from ._config import Config, ConfigError, load_config
from ._constants import (
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    BASE_PROTOCOL,
    FIONBIO,
    FIONREAD,
    FROM_PROTOCOL_INFO,
    IPPROTO_IP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    LAYERED_PROTOCOL,
    MAX_PROTOCOL_CHAIN,
    PFL,
    SD_BOTH,
    SD_RECEIVE,
    SD_SEND,
    SOCK_DGRAM,
    SOCK_RAW,
    SOCK_STREAM,
    WSA_FLAG_MULTIPOINT_C_LEAF,
    WSA_FLAG_MULTIPOINT_C_ROOT,
    WSA_FLAG_MULTIPOINT_D_LEAF,
    WSA_FLAG_MULTIPOINT_D_ROOT,
    WSA_FLAG_OVERLAPPED,
    WSAPROTOCOL_LEN,
    XP1,
    AddressFamily,
    IoctlCode,
    LspCategory,
    Protocol,
    Shutdown,
    SocketType,
    WSAFlag,
)
from ._discovery import (
    ENTRY_POINT_GROUP,
    PLUGINS_ENV,
    Discovery,
    PluginFailure,
    PluginRecord,
    discover,
)
from ._errors import WSAError, WSAErrorCode, error_class, error_classes, wsa_error
from ._handles import Upcalls
from ._hooks import hookimpl, hookspec
from ._host import Host
from ._overlapped import (
    WAIT_IO_COMPLETION,
    WAIT_OBJECT_0,
    Completion,
    CompletionPort,
    Event,
    Overlapped,
    queue_apc,
    sleep_ex,
    wait_for_multiple_events,
)
from ._protocol import ProtocolInfo, ip_entries, provider_uuid
from ._socket import Socket
from ._spec import ChainSpec, ChainSpecError, LayerSpec, parse_chain
from ._spi import (
    SOCKET_OPERATIONS,
    LayeredProvider,
    LayerSocket,
    ServiceProvider,
    resolve_triplet,
)

__version__ = "0.1.0"

# Every Winsock error code as a module-level constant (wspframe.WSAECONNRESET == 10054).
globals().update({code.name: code for code in WSAErrorCode})
# Every WSAError subclass (wspframe.WSAConnectionResetError, ...).
globals().update(error_classes())

_CODES = [code.name for code in WSAErrorCode]
_ERROR_CLASSES = sorted(error_classes())

__all__ = [
    # host and sockets
    "Host",
    "Socket",
    "Catalog",
    "ProtocolInfo",
    "Config",
    "ConfigError",
    "load_config",
    "FIRST_CATALOG_ID",
    "provider_uuid",
    "ip_entries",
    # overlapped I/O
    "Overlapped",
    "Event",
    "CompletionPort",
    "Completion",
    "sleep_ex",
    "wait_for_multiple_events",
    "queue_apc",
    "WAIT_IO_COMPLETION",
    "WAIT_OBJECT_0",
    # chain specs
    "ChainSpec",
    "ChainSpecError",
    "LayerSpec",
    "parse_chain",
    # provider side
    "ServiceProvider",
    "LayeredProvider",
    "LayerSocket",
    "SOCKET_OPERATIONS",
    "resolve_triplet",
    "NextLayer",
    "Dispatch",
    "Upcalls",
    "hookimpl",
    "hookspec",
    "discover",
    "Discovery",
    "PluginFailure",
    "PluginRecord",
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV",
    # errors
    "WSAError",
    "WSAErrorCode",
    "error_class",
    "error_classes",
    "wsa_error",
    *_CODES,
    *_ERROR_CLASSES,
    # constants
    "XP1",
    "PFL",
    "WSAFlag",
    "LspCategory",
    "AddressFamily",
    "SocketType",
    "Protocol",
    "Shutdown",
    "IoctlCode",
    "AF_UNSPEC",
    "AF_INET",
    "AF_INET6",
    "SOCK_STREAM",
    "SOCK_DGRAM",
    "SOCK_RAW",
    "IPPROTO_IP",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "SD_RECEIVE",
    "SD_SEND",
    "SD_BOTH",
    "FIONBIO",
    "FIONREAD",
    "FROM_PROTOCOL_INFO",
    "MAX_PROTOCOL_CHAIN",
    "WSAPROTOCOL_LEN",
    "BASE_PROTOCOL",
    "LAYERED_PROTOCOL",
    "WSA_FLAG_OVERLAPPED",
    "WSA_FLAG_MULTIPOINT_C_ROOT",
    "WSA_FLAG_MULTIPOINT_C_LEAF",
    "WSA_FLAG_MULTIPOINT_D_ROOT",
    "WSA_FLAG_MULTIPOINT_D_LEAF",
    "__version__",
]


def __getattr__(name: str) -> object:
    # Typed access for the generated names (mypy sees module-level __getattr__).
    raise AttributeError(f"module 'wspframe' has no attribute {name!r}")
