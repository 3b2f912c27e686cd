"""The SPI contract: :class:`ServiceProvider` and :class:`LayeredProvider`.

Theory of operation
-------------------
A provider is a class.  The host makes one instance per provider id (for a
layer: per layer *and options*), calls :meth:`ServiceProvider.startup` once
with the :class:`~wspframe.Upcalls` it must use, and :meth:`cleanup` once at
the last host cleanup.  The provider's methods are its dispatch table (the
``WSPPROC_TABLE``): the host binds them once per chain, never looks them up
per call, and never calls them through pluggy.

Every per-socket operation takes the provider's own *socket context* as its
first argument: whatever the provider's ``socket()`` (or ``accept()``)
returned.  A context must carry ``handle``, an int obtained from
:meth:`Upcalls.create_socket_handle` (non-IFS) or
:meth:`Upcalls.modify_ifs_handle` (IFS); the host rejects any other.

Base providers never see chains: the host, or the layer above, gives their
``socket()`` the base entry's own protocol info.

Layered providers get, instead of the next provider, a :class:`NextLayer`
link from the host, and each of their socket contexts
(:class:`LayerSocket`) carries ``lower``: the bound dispatch of the rest of
the chain for that socket.  A layer overrides only the operations it changes;
the host compiles chains so that calls skip a layer on every operation it does
not override (a pass-through costs nothing there).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from ._constants import (
    AF_INET,
    AF_INET6,
    FROM_PROTOCOL_INFO,
    IPPROTO_TCP,
    IPPROTO_UDP,
    LspCategory,
)
from ._errors import WSAError, WSAErrorCode, contain, raise_wsa
from ._protocol import ProtocolInfo

if TYPE_CHECKING:
    from ._chain import Dispatch, NextLayer
    from ._handles import Upcalls
    from ._overlapped import Overlapped

__all__ = [
    "CREATING_OPERATIONS",
    "DATA_OPERATIONS",
    "OVERLAPPED_OPERATIONS",
    "PROVIDER_OPERATIONS",
    "REQUIRED_OPERATIONS",
    "SOCKET_OPERATIONS",
    "LayerSocket",
    "LayeredProvider",
    "ServiceProvider",
    "resolve_triplet",
]

#: Per-socket operations: bound once per socket, skipped in layers that do not
#: override them.
DATA_OPERATIONS: Final = (
    "bind",
    "listen",
    "connect",
    "send",
    "recv",
    "recv_into",
    "sendto",
    "recvfrom",
    "recvfrom_into",
    "shutdown",
    "getsockname",
    "getpeername",
    "getsockopt",
    "setsockopt",
    "ioctl",
    "settimeout",
    "duplicate_socket",
)
#: Overlapped per-socket operations.  Compiled chains skip a layer on one only
#: where the layer is IFS (its handle is the lower one, so completions reach
#: the same port) and overrides neither the operation nor ``on_complete``.
OVERLAPPED_OPERATIONS: Final = (
    "send_overlapped",
    "recv_overlapped",
    "sendto_overlapped",
    "recvfrom_overlapped",
    "connect_overlapped",
    "ioctl_overlapped",
)
#: The data operations a layer may define on its socket class instead of on
#: the provider (the fast form): ``def send(self, data, flags)`` on a
#: :class:`LayerSocket` subclass is called as a bound method of the socket
#: context, which the interpreter inlines into the caller's frame.
SOCKET_OPERATIONS: Final = ("send", "recv", "recv_into", "sendto", "recvfrom", "recvfrom_into")
#: Per-socket operations that visit every level, because each level keeps
#: state for the socket: ``accept`` makes a context per level, and
#: ``close_socket`` frees one per level.
CREATING_OPERATIONS: Final = ("accept", "accept_overlapped", "close_socket")
#: Operations not tied to one socket.
PROVIDER_OPERATIONS: Final = ("socket", "select", "address_to_string", "string_to_address")
#: The dispatch table a provider must offer (SPI rule A6); a missing one fails
#: startup with WSAEINVALIDPROCTABLE.
REQUIRED_OPERATIONS: Final = (
    *PROVIDER_OPERATIONS,
    *CREATING_OPERATIONS,
    *DATA_OPERATIONS,
    "startup",
    "cleanup",
)

_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_]*(-[a-z0-9_]+)*$")


def check_provider_name(name: object) -> str:
    """Validate a provider name: lower-case letters, digits, ``_`` and ``-``."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"provider name must be lower-case letters, digits, '_' or '-', "
            f"starting with a letter, got {name!r}"
        )
    return name


def format_address(address: Any) -> str:
    """``127.0.0.1:80`` or ``[::1]:80``: the usual textual form of an address."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        if isinstance(host, str) and ":" in host:
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    return str(address)


def resolve_triplet(af: int, type_: int, protocol: int, info: ProtocolInfo) -> tuple[int, int, int]:
    """Apply the wildcard and FROM_PROTOCOL_INFO rules of ``WSPSocket`` against ``info``.

    0 for af/type and 0 for protocol take the entry's value; -1 takes it too.
    A value contradicting the entry is WSAEAFNOSUPPORT, WSAESOCKTNOSUPPORT,
    WSAEPROTOTYPE (a protocol of another socket type) or WSAEPROTONOSUPPORT.
    Base providers call it first thing in ``socket()``.
    """
    if af in (0, FROM_PROTOCOL_INFO):
        af = info.address_family
    elif af != info.address_family:
        raise_wsa(
            WSAErrorCode.WSAEAFNOSUPPORT,
            f"address family {af} is not that of {info.name!r} ({info.address_family})",
        )
    given = protocol
    if protocol in (0, FROM_PROTOCOL_INFO):
        protocol = info.protocol
    if type_ in (0, FROM_PROTOCOL_INFO):
        type_ = info.socket_type
    elif type_ != info.socket_type:
        if given not in (0, FROM_PROTOCOL_INFO) and info.matches_protocol(given):
            raise_wsa(
                WSAErrorCode.WSAEPROTOTYPE,
                f"protocol {protocol} is the wrong type for socket type {type_} in {info.name!r}",
            )
        raise_wsa(
            WSAErrorCode.WSAESOCKTNOSUPPORT,
            f"socket type {type_} is not that of {info.name!r} ({info.socket_type})",
        )
    if not info.matches_protocol(protocol):
        if protocol in (IPPROTO_TCP, IPPROTO_UDP):
            raise_wsa(
                WSAErrorCode.WSAEPROTOTYPE,
                f"protocol {protocol} is the wrong type for {info.name!r} ({info.protocol})",
            )
        raise_wsa(
            WSAErrorCode.WSAEPROTONOSUPPORT,
            f"protocol {protocol} is not supported by {info.name!r} ({info.protocol})",
        )
    return af, type_, protocol


class ServiceProvider:
    """A Winsock service provider: subclass it to write a base provider.

    Obligations (the SPI's, in Python terms):

    * ``name`` is set on the class; ``protocols`` lists the entries the
      provider installs (``ProtocolInfo`` templates; the catalog assigns
      catalog ids, chains and provider ids).
    * ``socket()`` **must** accept 0 for ``af`` and ``type`` (wildcards) and
      :data:`~wspframe.FROM_PROTOCOL_INFO` for any of af/type/protocol, taking
      the value from ``protocol_info`` instead.  It may decline an entry with
      ``WSAEINPROGRESS``; the host then resumes its search after that entry.
    * Every socket context it returns carries ``handle``, obtained before
      returning from ``upcalls.modify_ifs_handle`` (only if the handle is the
      provider's own OS handle, and then its entries set ``XP1_IFS_HANDLES``)
      or ``upcalls.create_socket_handle`` (then its entries must not set
      ``XP1_IFS_HANDLES``).
    * ``close_socket`` releases the handle with ``upcalls.close_socket_handle``
      before freeing the OS resource; the handle is not used again.
    * Failures are raised as :class:`~wspframe.WSAError` with the right code.
      A socket returned by ``accept`` starts blocking, whatever the listener's
      timeout.  ``cleanup`` may find that the host has already released the
      handles of sockets it closed.
      An operation must not block past the socket's timeout.
    * Per-socket operations (the context ``s`` first): ``bind(s, address)``,
      ``listen(s, backlog)``, ``accept(s) -> (context, address)``,
      ``connect(s, address)``, ``send(s, data, flags) -> int``,
      ``recv(s, bufsize, flags) -> bytes``, ``recv_into(s, buffer, nbytes,
      flags) -> int``, ``sendto(s, data, flags, address) -> int``,
      ``recvfrom(s, bufsize, flags) -> (bytes, address)``,
      ``recvfrom_into(s, buffer, nbytes, flags) -> (int, address)``,
      ``shutdown(s, how)``, ``close_socket(s)``, ``getsockname(s)``,
      ``getpeername(s)``, ``getsockopt(s, level, option, buflen)`` (``buflen`` None or 0: an
      int; otherwise bytes),
      ``setsockopt(s, level, option, value)``, ``ioctl(s, code, arg)``
      (at least ``FIONBIO`` and ``FIONREAD``), ``settimeout(s, seconds)``
      (``None`` blocks, 0 is non-blocking), ``duplicate_socket(s)``.
    * Provider operations: ``socket(af, type, protocol, protocol_info, group,
      flags)``, ``select(readers, writers, errors, timeout)`` over its own
      contexts, ``address_to_string(address, protocol_info)``,
      ``string_to_address(text, af, protocol_info)``.

    The base class supplies ``startup``/``cleanup`` (storing ``upcalls``),
    ``recv_into``/``recvfrom_into`` in terms of ``recv``/``recvfrom``,
    ``duplicate_socket``, the address conversions for IPv4/IPv6, and a ``ioctl``
    that handles FIONBIO through ``settimeout``.  Everything else a base
    provider must define itself: a missing operation fails startup with
    ``WSAEINVALIDPROCTABLE``.
    """

    #: The provider's name: the first word of its entries' names and its name
    #: in chain specs.
    name: ClassVar[str] = ""
    #: One line for ``wspframe providers``.
    description: ClassVar[str] = ""
    #: The entries the provider installs (templates).
    protocols: ClassVar[Sequence[ProtocolInfo]] = ()
    #: Set by the host when loading through an entry point.
    distribution: ClassVar[str | None] = None

    upcalls: Upcalls

    # -- lifetime ----------------------------------------------------------
    def startup(self, upcalls: Upcalls) -> None:
        """``WSPStartup``: called once per host with the upcall table."""
        self.upcalls = upcalls

    def cleanup(self) -> None:
        """``WSPCleanup``: called once, at the last host cleanup."""

    # -- the native fast path (optional) -----------------------------------
    def native(self, op: str) -> Callable[..., Any] | None:
        """A function doing per-socket operation ``op`` exactly as this
        provider's method does, called as ``native(s, *args)``, whose
        failures :meth:`native_error` maps to a WSAError; or None (the
        default: the method is called).

        The host calls a native function only from the Socket API, where this
        provider is the first level of the chain to run ``op``, and maps
        failures on the slow path.  A provider whose context is an OS socket
        can hand over the socket's own C method, so that a call through a
        bare chain costs one Python frame.  Only the data operations (send,
        recv, recv_into, sendto, recvfrom, recvfrom_into) are asked for.
        """
        return None

    def native_error(self, s: Any, op: str, exc: Exception) -> WSAError:
        """The WSAError for a failure ``exc`` of :meth:`native` ``op`` on ``s``."""
        return contain(exc, op)

    def context_function(self, op: str) -> Callable[..., Any] | None:
        """A Python function doing per-socket data operation ``op`` exactly as
        this provider's method does (failures included), called as
        ``function(s, *args)``; or None (the default: the method is called).

        The chain binds it as a method of each socket's context, which the
        interpreter inlines into the caller's frame (a layer calling
        ``s.lower.send``); a provider method is bound with two arguments
        through ``functools.partial``, which it cannot inline.  Only the data
        operations (send, recv, recv_into, sendto, recvfrom, recvfrom_into)
        are asked for.
        """
        return None

    # -- defaults built on the required operations -------------------------
    def recv_into(self, s: Any, buffer: Any, nbytes: int, flags: int) -> int:
        view = memoryview(buffer).cast("B")
        size = nbytes or len(view)
        data: bytes = self.recv(s, size, flags)  # type: ignore[attr-defined]
        view[: len(data)] = data
        return len(data)

    def recvfrom_into(self, s: Any, buffer: Any, nbytes: int, flags: int) -> tuple[int, Any]:
        view = memoryview(buffer).cast("B")
        size = nbytes or len(view)
        data, address = self.recvfrom(s, size, flags)  # type: ignore[attr-defined]
        view[: len(data)] = data
        return len(data), address

    def duplicate_socket(self, s: Any) -> None:
        """``WSPDuplicateSocket``: the host shares ``s``; nothing to do by default."""

    # -- overlapped operations (a provider without them refuses them) ----------------
    # Contract: start the operation and return None; finish it exactly once,
    # later or at once, by setting ``ov.data``/``ov.address``/``ov.flags`` and
    # then calling ``upcalls.complete_overlapped_request(s.handle, ov, error,
    # nbytes)`` (non-IFS) or by running it through ``upcalls.io_engine`` (IFS).
    # Operations in flight on one socket complete in order per direction;
    # ``close_socket`` completes every pending one with WSA_OPERATION_ABORTED
    # before releasing the handle.  Raise only for bad arguments (no completion
    # then).  Completing runs callbacks (layers, APC queues, ports) that may call
    # back into the provider: complete outside your own locks.
    def send_overlapped(self, s: Any, data: Any, flags: int, ov: Any) -> None:
        """``WSPSend`` with an overlapped: ``nbytes`` is the count sent."""
        raise_wsa(WSAErrorCode.WSAEOPNOTSUPP, f"{self.name!r} has no overlapped send")

    def recv_overlapped(self, s: Any, bufsize: int, flags: int, ov: Any) -> None:
        """``WSPRecv`` with an overlapped: ``ov.data`` holds the bytes received."""
        raise_wsa(WSAErrorCode.WSAEOPNOTSUPP, f"{self.name!r} has no overlapped recv")

    def sendto_overlapped(self, s: Any, data: Any, flags: int, address: Any, ov: Any) -> None:
        """``WSPSendTo`` with an overlapped."""
        raise_wsa(WSAErrorCode.WSAEOPNOTSUPP, f"{self.name!r} has no overlapped sendto")

    def recvfrom_overlapped(self, s: Any, bufsize: int, flags: int, ov: Any) -> None:
        """``WSPRecvFrom`` with an overlapped: ``ov.data`` and ``ov.address``."""
        raise_wsa(WSAErrorCode.WSAEOPNOTSUPP, f"{self.name!r} has no overlapped recvfrom")

    def connect_overlapped(self, s: Any, address: Any, ov: Any) -> None:
        """``ConnectEx``: ``nbytes`` 0."""
        raise_wsa(WSAErrorCode.WSAEOPNOTSUPP, f"{self.name!r} has no overlapped connect")

    def accept_overlapped(self, s: Any, ov: Any) -> None:
        """``AcceptEx``: ``ov.data`` is the new socket's context (its handle
        obtained as for ``accept``), ``ov.address`` the peer's address."""
        raise_wsa(WSAErrorCode.WSAEOPNOTSUPP, f"{self.name!r} has no overlapped accept")

    def ioctl_overlapped(self, s: Any, code: int, arg: Any, ov: Any) -> None:
        """``WSPIoctl`` with an overlapped: ``ov.data`` is the result."""
        raise_wsa(WSAErrorCode.WSAEOPNOTSUPP, f"{self.name!r} has no overlapped ioctl")

    # Optional: ``cancel_io()`` completes every pending overlapped operation of
    # the provider with WSA_OPERATION_ABORTED.  The host calls it at the last
    # cleanup, before closing the sockets (SPI rule A8).

    def address_to_string(self, address: Any, protocol_info: ProtocolInfo) -> str:
        """``WSPAddressToString`` for IPv4 and IPv6 tuples."""
        if protocol_info.address_family not in (AF_INET, AF_INET6):
            raise_wsa(WSAErrorCode.WSAEINVAL, f"no textual form for {address!r}")
        if not isinstance(address, tuple) or len(address) < 2:
            raise_wsa(
                WSAErrorCode.WSAEFAULT, f"address must be a (host, port) tuple, got {address!r}"
            )
        return format_address(address)

    def string_to_address(self, text: str, af: int, protocol_info: ProtocolInfo) -> Any:
        """``WSPStringToAddress``: ``"host:port"`` or ``"[v6]:port"`` to a tuple."""
        import ipaddress

        if not isinstance(text, str):
            raise_wsa(WSAErrorCode.WSAEFAULT, f"address string must be a str, got {text!r}")
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = text, "0"
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        try:
            ip = ipaddress.ip_address(host)
            number = int(port)
        except ValueError:
            raise_wsa(WSAErrorCode.WSAEINVAL, f"not an address: {text!r}")
        if not 0 <= number <= 65535:
            raise_wsa(WSAErrorCode.WSAEINVAL, f"port must be 0..65535, got {number} in {text!r}")
        family = protocol_info.address_family if af in (0, -1) else af
        if ip.version == 6:
            if family != AF_INET6:
                raise_wsa(WSAErrorCode.WSAEINVAL, f"{text!r} is IPv6, family is {family}")
            return (str(ip), number, 0, 0)
        if family != AF_INET:
            raise_wsa(WSAErrorCode.WSAEINVAL, f"{text!r} is IPv4, family is {family}")
        return (str(ip), number)

    def ioctl(self, s: Any, code: int, arg: Any) -> Any:
        """FIONBIO through ``settimeout``; providers override for FIONREAD and more."""
        from ._constants import FIONBIO

        if code == FIONBIO:
            self.settimeout(s, 0.0 if arg else None)  # type: ignore[attr-defined]
            return 0
        raise_wsa(WSAErrorCode.WSAEINVAL, f"unsupported ioctl code {code:#x}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class LayerSocket:
    """A layered provider's socket context.

    ``provider`` is the layer, ``lower`` the bound dispatch of the rest of the
    chain for this socket (call ``s.lower.send(data, flags)`` and so on),
    ``handle`` the handle the layer exposes, ``protocol_info`` the chain entry
    the socket was made from.  Subclass it (and set
    :attr:`LayeredProvider.socket_class`) to keep per-socket state.

    A subclass may also define the data operations of
    :data:`SOCKET_OPERATIONS` itself, without the context argument (the fast
    form)::

        class UpperSocket(wspframe.LayerSocket):
            __slots__ = ()

            def send(self, data, flags):
                return self.lower.send(bytes(data).upper(), flags)

    The chain binds them as methods of the context, which costs about a
    third less per call than a provider method (bound with two arguments, the
    provider and the context).  A layer defines each operation in one place
    only: on the provider or on its socket class.
    """

    __slots__ = ("__weakref__", "handle", "lower", "protocol_info", "provider")

    def __init__(
        self, provider: LayeredProvider, lower: Dispatch, protocol_info: ProtocolInfo
    ) -> None:
        self.provider = provider
        self.lower = lower
        self.protocol_info = protocol_info
        self.handle = -1

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.provider.name} handle={self.handle}>"


class LayeredProvider(ServiceProvider):
    """A layered service provider: subclass it and override what you change.

    Every operation passes through to the next layer by default, and the host
    compiles chains so that a layer costs nothing on operations it does not
    override.  An override receives the layer's :class:`LayerSocket` and calls
    down through ``s.lower``::

        class Upper(wspframe.LayeredProvider):
            name = "upper"

            def send(self, s, data, flags):
                return s.lower.send(bytes(data).upper(), flags)

    Obligations:

    * ``socket()`` calls ``next.socket(...)`` with ``next.protocol_info``: the
      *same, unmodified* chain entry when the next level is a layer, the base
      entry's own info when it is the base (the host checks this and refuses
      anything else with WSAEINVAL).  The default does exactly that.
    * The handle a layer exposes comes from ``upcalls.modify_ifs_handle``
      (only over IFS handles: the layer then is IFS and cannot see
      ``os.read``/``os.write`` on it) or ``upcalls.create_socket_handle``.  Set
      ``ifs`` to choose; ``None`` follows the level below.
    * ``close_socket`` closes the rest of the chain, then releases its handle;
      ``accept`` wraps the lower accepted socket in a context of its own.  The
      defaults do both; overrides should call ``super()``.
    * Options given in a chain spec (``name[opt=value]``) arrive in
      :meth:`configure`, which raises ``ValueError`` naming the bad option.
      Every layer accepts ``tag=TEXT`` (kept in :attr:`tag`, never passed to
      ``configure``), so the same layer can appear twice in one chain.
    """

    #: IFS-ness of the handles the layer exposes: True, False, or None to
    #: follow the level below.
    ifs: ClassVar[bool | None] = None
    #: LSP categories (Vista and later).
    categories: ClassVar[LspCategory] = LspCategory.NONE
    #: The context class made for each socket.
    socket_class: ClassVar[type[LayerSocket]] = LayerSocket

    #: Catalog id of the layer's dummy entry; set by the host.
    catalog_entry_id: int = 0

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        self.options: dict[str, str] = dict(options or {})
        #: The ``tag`` option: a label that tells stacked copies of a layer apart.
        self.tag: str | None = self.options.get("tag")
        self.configure({k: v for k, v in self.options.items() if k != "tag"})

    def configure(self, options: Mapping[str, str]) -> None:
        """Take options from the chain spec; raise ``ValueError`` on a bad one.

        The default accepts none.
        """
        if options:
            names = ", ".join(sorted(options))
            raise ValueError(f"layer {self.name!r} takes no options, got {names}")

    # -- creation and close (every level, always) ---------------------------
    def socket(
        self,
        next: NextLayer,
        af: int,
        type: int,
        protocol: int,
        protocol_info: ProtocolInfo,
        group: int,
        flags: int,
    ) -> LayerSocket:
        """``WSPSocket``: create the rest of the chain, then this layer's context."""
        lower = next.socket(af, type, protocol, next.protocol_info, group, flags)
        return self.wrap(lower, protocol_info, next)

    def wrap(self, lower: Dispatch, protocol_info: ProtocolInfo, next: NextLayer) -> LayerSocket:
        """Make this layer's context over ``lower`` and obtain its handle."""
        s = self.socket_class(self, lower, protocol_info)
        try:
            if next.ifs and self.ifs is not False:
                s.handle = self.upcalls.modify_ifs_handle(self.catalog_entry_id, lower.handle)
            else:
                s.handle = self.upcalls.create_socket_handle(self.catalog_entry_id, s)
        except BaseException:
            lower.close_socket()
            raise
        return s

    def accept(self, s: LayerSocket) -> tuple[LayerSocket, Any]:
        """``WSPAccept``: accept below, then wrap the new socket."""
        lower, address = s.lower.accept()
        return self.wrap(lower, s.protocol_info, s.lower.level), address

    def close_socket(self, s: LayerSocket) -> None:
        """``WSPCloseSocket``: close the rest of the chain (its pending overlapped
        operations complete, aborted, through this layer while its handle is
        still valid), then release this layer's handle."""
        try:
            s.lower.close_socket()
        finally:
            self.upcalls.close_socket_handle(s.handle)

    # -- pass-through (skipped by compiled chains unless overridden) -------
    def bind(self, s: LayerSocket, address: Any) -> None:
        s.lower.bind(address)

    def listen(self, s: LayerSocket, backlog: int) -> None:
        s.lower.listen(backlog)

    def connect(self, s: LayerSocket, address: Any) -> None:
        s.lower.connect(address)

    def send(self, s: LayerSocket, data: Any, flags: int) -> int:
        n: int = s.lower.send(data, flags)
        return n

    def recv(self, s: LayerSocket, bufsize: int, flags: int) -> bytes:
        data: bytes = s.lower.recv(bufsize, flags)
        return data

    def recv_into(self, s: LayerSocket, buffer: Any, nbytes: int, flags: int) -> int:
        n: int = s.lower.recv_into(buffer, nbytes, flags)
        return n

    def sendto(self, s: LayerSocket, data: Any, flags: int, address: Any) -> int:
        n: int = s.lower.sendto(data, flags, address)
        return n

    def recvfrom(self, s: LayerSocket, bufsize: int, flags: int) -> tuple[bytes, Any]:
        result: tuple[bytes, Any] = s.lower.recvfrom(bufsize, flags)
        return result

    def recvfrom_into(
        self, s: LayerSocket, buffer: Any, nbytes: int, flags: int
    ) -> tuple[int, Any]:
        result: tuple[int, Any] = s.lower.recvfrom_into(buffer, nbytes, flags)
        return result

    def shutdown(self, s: LayerSocket, how: int) -> None:
        s.lower.shutdown(how)

    def getsockname(self, s: LayerSocket) -> Any:
        return s.lower.getsockname()

    def getpeername(self, s: LayerSocket) -> Any:
        return s.lower.getpeername()

    def getsockopt(self, s: LayerSocket, level: int, option: int, buflen: int | None) -> Any:
        return s.lower.getsockopt(level, option, buflen)

    def setsockopt(self, s: LayerSocket, level: int, option: int, value: Any) -> None:
        s.lower.setsockopt(level, option, value)

    def ioctl(self, s: LayerSocket, code: int, arg: Any) -> Any:
        return s.lower.ioctl(code, arg)

    def settimeout(self, s: LayerSocket, timeout: float | None) -> None:
        s.lower.settimeout(timeout)

    def duplicate_socket(self, s: LayerSocket) -> None:
        s.lower.duplicate_socket()

    # -- overlapped: the seed's "usual way" ---------------------------------------
    def on_complete(self, s: LayerSocket, ov: Overlapped) -> None:
        """Post-process a completed overlapped operation of this layer's socket.

        ``ov`` is the client's overlapped, already holding the result from the
        layer below: ``ov.op``, ``ov.error``, ``ov.nbytes``, ``ov.data``,
        ``ov.address``.  Change ``ov.data`` to transform received bytes (the
        byte count follows), or set ``ov.error`` to fail the operation.  It
        runs in whatever thread completed the operation below; do not block.
        """

    def _substitute(self, s: LayerSocket, ov: Overlapped) -> Overlapped:
        return ov.substitute(functools.partial(self._relay, s))

    def _relay(self, s: LayerSocket, sub: Overlapped) -> None:
        client = sub.parent
        assert client is not None
        client.data, client.address, client.flags = sub.data, sub.address, sub.flags
        client.error = sub.error
        if client.op == "accept" and not client.error:
            try:
                level = s.lower.level
                client.data = self.wrap(level.adopt(sub.data), s.protocol_info, level)
            except Exception as exc:
                client.data = None
                client.error = contain(exc, f"{self.name}.accept_overlapped").wsa_code
        try:
            self.on_complete(s, client)
        except Exception as exc:  # a faulty hook fails the operation, not the host
            client.error = contain(exc, f"{self.name}.on_complete").wsa_code
        nbytes = sub.nbytes
        if client.op in ("recv", "recvfrom") and not client.error:
            nbytes = len(client.data or b"")
        self.upcalls._complete_any(s.handle, client, client.error, nbytes)

    def send_overlapped(self, s: LayerSocket, data: Any, flags: int, ov: Overlapped) -> None:
        s.lower.send_overlapped(data, flags, self._substitute(s, ov))

    def recv_overlapped(self, s: LayerSocket, bufsize: int, flags: int, ov: Overlapped) -> None:
        s.lower.recv_overlapped(bufsize, flags, self._substitute(s, ov))

    def sendto_overlapped(
        self, s: LayerSocket, data: Any, flags: int, address: Any, ov: Overlapped
    ) -> None:
        s.lower.sendto_overlapped(data, flags, address, self._substitute(s, ov))

    def recvfrom_overlapped(self, s: LayerSocket, bufsize: int, flags: int, ov: Overlapped) -> None:
        s.lower.recvfrom_overlapped(bufsize, flags, self._substitute(s, ov))

    def connect_overlapped(self, s: LayerSocket, address: Any, ov: Overlapped) -> None:
        s.lower.connect_overlapped(address, self._substitute(s, ov))

    def accept_overlapped(self, s: LayerSocket, ov: Overlapped) -> None:
        s.lower.accept_overlapped(self._substitute(s, ov))

    def ioctl_overlapped(self, s: LayerSocket, code: int, arg: Any, ov: Overlapped) -> None:
        s.lower.ioctl_overlapped(code, arg, self._substitute(s, ov))

    # -- provider operations ------------------------------------------------
    def select(
        self,
        next: NextLayer,
        readers: Sequence[LayerSocket],
        writers: Sequence[LayerSocket],
        errors: Sequence[LayerSocket],
        timeout: float | None,
    ) -> tuple[list[LayerSocket], list[LayerSocket], list[LayerSocket]]:
        """``WSPSelect``: map to the lower sockets, select there, map back."""
        back: dict[int, LayerSocket] = {}

        def down(sockets: Sequence[LayerSocket]) -> list[Any]:
            out = []
            for s in sockets:
                back[id(s.lower.context)] = s
                out.append(s.lower.context)
            return out

        r, w, x = next.select(down(readers), down(writers), down(errors), timeout)
        return [back[id(c)] for c in r], [back[id(c)] for c in w], [back[id(c)] for c in x]

    def address_to_string(  # type: ignore[override]
        self,
        next: NextLayer,
        address: Any,
        protocol_info: ProtocolInfo,
    ) -> str:
        return next.address_to_string(address, next.protocol_info)

    def string_to_address(  # type: ignore[override]
        self,
        next: NextLayer,
        text: str,
        af: int,
        protocol_info: ProtocolInfo,
    ) -> Any:
        return next.string_to_address(text, af, next.protocol_info)


#: The type of a provider class as discovery and the host see it.
ProviderClass = type[ServiceProvider]
Opener = Callable[..., Any]


def socket_operations(socket_class: type[Any]) -> frozenset[str]:
    """The data operations ``socket_class`` (a :class:`LayerSocket` subclass)
    defines itself: the fast form of a layer's operations."""
    if not (isinstance(socket_class, type) and issubclass(socket_class, LayerSocket)):
        return frozenset()
    return frozenset(op for op in SOCKET_OPERATIONS if callable(getattr(socket_class, op, None)))


def doubly_defined(cls: type[LayeredProvider]) -> list[str]:
    """Data operations a layer defines both on the provider and on its socket
    class (a defect: startup fails with WSAEINVALIDPROCTABLE)."""
    return sorted(
        op
        for op in socket_operations(cls.socket_class)
        if getattr(cls, op) is not getattr(LayeredProvider, op)
    )
