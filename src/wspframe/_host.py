"""The host: what ws2_32.dll is to Winsock.

Theory of operation
-------------------
Constructing a :class:`Host` discovers providers, installs every base
provider's entries (in discovery order, so catalog ids are deterministic),
installs the chains asked for (the API, else ``[tool.wspframe]``) and applies
the declared order.  ``startup()``/``cleanup()`` are reference counted like
``WSAStartup``/``WSACleanup``; the ``with`` statement does both.  Providers
are loaded lazily, the first time an entry needs them (as ws2_32 does): each
instance is started once per startup cycle with the host's :class:`Upcalls`,
and cleaned up once at the last cleanup, which first closes every socket.

``socket()`` walks the catalog (SPI rule A2), compiles the chain of the entry
it picks once (:mod:`wspframe._chain`), creates the socket top down through
it, and checks the handle of every level.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ._catalog import Catalog
from ._chain import Dispatch, NextLayer, compile_levels
from ._config import Config, load_config
from ._constants import FROM_PROTOCOL_INFO
from ._discovery import PLUGINS_ENV, Discovery, discover
from ._errors import WSAError, WSAErrorCode, contain, raise_wsa, wsa_error
from ._handles import HandleTable, Upcalls
from ._overlapped import CompletionPort, Overlapped, finish
from ._protocol import ProtocolInfo, provider_uuid
from ._redirect import Redirector
from ._sockargs import FLAGS_TO_CHECK, check_flags, check_triplet
from ._socket import Socket, SocketCore
from ._spec import ChainSpec, ChainSpecError, LayerSpec, parse_chain
from ._spi import REQUIRED_OPERATIONS, LayeredProvider, ServiceProvider, doubly_defined

__all__ = ["Host"]


def _chain_shape(level: NextLayer | None) -> tuple[ServiceProvider, ...]:
    """The provider instances of a chain, top to base (what select() must agree on)."""
    out = []
    while level is not None:
        out.append(level.provider)
        level = level.below
    return tuple(out)


#: What Host._route works out for one af/type/protocol.
_Route = tuple[int, int, int, tuple[ProtocolInfo, ...], tuple[WSAErrorCode, str]]
#: Routes a host keeps (they are few in practice; this bounds a wild caller).
_MAX_ROUTES = 256


class Host:
    """A Winsock host: catalog, providers, and the sockets it hands out.

    ``chains``: chain specs to install ahead of everything (default: the
    ``chains`` of ``[tool.wspframe]``).  ``order``: provider names or chain
    specs whose entries come first, in that order.  ``plugins``: entry-point
    names to load besides the built-ins (default: ``WSPFRAME_PLUGINS`` or all).
    ``providers``: extra provider classes (no entry point needed).  ``hooks``:
    observer objects with ``@wspframe.hookimpl`` methods.  ``config``: a
    ``pyproject.toml`` path, a :class:`Config`, or False to ignore it.
    ``max_sockets``: open descriptors beyond which ``socket()`` fails with
    WSAEMFILE.
    """

    def __init__(
        self,
        chains: Sequence[str | ChainSpec] | None = None,
        order: Sequence[str] | None = None,
        plugins: Sequence[str] | None = None,
        *,
        providers: Iterable[type[ServiceProvider]] = (),
        hooks: Iterable[object] = (),
        config: bool | str | Path | Config = True,
        max_sockets: int | None = None,
    ) -> None:
        if isinstance(config, Config):
            cfg = config
        elif config is True:
            cfg = load_config()
        elif config is False:
            cfg = Config()
        else:
            cfg = load_config(Path(config))
        self.config = cfg
        if plugins is None and cfg.plugins is not None and PLUGINS_ENV not in os.environ:
            plugins = list(cfg.plugins)  # precedence: API > WSPFRAME_PLUGINS > config
        self.discovery: Discovery = discover(plugins, extra=providers, hooks=hooks)
        self._hook = self.discovery.manager.hook
        if max_sockets is None:
            max_sockets = cfg.max_sockets
        if max_sockets is not None and (not isinstance(max_sockets, int) or max_sockets < 1):
            raise_wsa(
                WSAErrorCode.WSAEINVAL, f"max_sockets must be an int >= 1, got {max_sockets!r}"
            )
        self.max_sockets = max_sockets

        self._lock = threading.RLock()
        self._refs = 0
        self.catalog = Catalog()
        self.catalog.add_listener(self._catalog_changed)
        self._table = HandleTable(self.catalog.has_id)
        #: handle -> (completion port, key), set by CompletionPort.associate().
        self._ports: dict[int, tuple[CompletionPort, int]] = {}
        self._redirector: Redirector | None = None
        self.upcalls = Upcalls(self._table, complete=self._complete, ports=self._ports)
        self._bases: dict[str, ServiceProvider] = {}
        self._layers: dict[uuid.UUID, LayeredProvider] = {}
        self._started: dict[int, ServiceProvider] = {}
        self._failed: dict[int, WSAError] = {}
        self._levels: dict[int, list[NextLayer]] = {}
        #: socket()'s af/type/protocol as given (with their classes) -> the
        #: triplet as ints, the entries to try and the error after (see _route).
        self._routes: dict[tuple[Any, ...], _Route] = {}
        self._sockets: set[Socket] = set()
        self._shared: dict[int, SocketCore] = {}
        self._next_token = 1
        self._chain_specs: list[ChainSpec] = []

        for name in self.discovery.base_names:
            cls = self.discovery.providers[name]
            self.catalog.install(provider_uuid(name), list(cls.protocols))
        specs = [parse_chain(c) for c in (chains if chains is not None else cfg.chains)]
        for spec in specs:
            self.install_chain(spec)
        self.set_order([*(str(s) for s in specs), *(order if order is not None else cfg.order)])

    # -- startup and cleanup (WSAStartup / WSACleanup) ----------------------
    def startup(self) -> Host:
        """``WSAStartup``: count one more user of the host."""
        with self._lock:
            self._refs += 1
        return self

    def cleanup(self) -> None:
        """``WSACleanup``: the last one closes every socket and cleans up providers."""
        with self._lock:
            if self._refs == 0:
                raise_wsa(WSAErrorCode.WSANOTINITIALISED, "cleanup() without a matching startup()")
            self._refs -= 1
            if self._refs:
                return
            self._shutdown()

    @property
    def started(self) -> bool:
        """Whether ``startup()`` has been called more often than ``cleanup()``."""
        return self._refs > 0

    def __enter__(self) -> Host:
        return self.startup()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def _shutdown(self) -> None:
        # SPI rule A8: pending overlapped operations fail with
        # WSA_OPERATION_ABORTED first; only then do the sockets close (closing a
        # peer first would turn a pending receive into end of stream).
        engine = self.upcalls._engine
        if engine is not None:
            self.upcalls._engine = None
            engine.close()
        for provider in list(self._started.values()):
            cancel = getattr(provider, "cancel_io", None)
            if callable(cancel):
                try:
                    cancel()
                except Exception:  # contained: the sockets still close
                    pass
        for sock in list(self._sockets):
            try:
                sock.close()
            except WSAError:
                pass
        self._sockets.clear()
        self._shared.clear()
        for provider in reversed(list(self._started.values())):
            try:
                provider.cleanup()
            except Exception:  # contained: the others still clean up
                continue
        self._started.clear()
        self._failed.clear()
        self._levels.clear()
        if self._redirector is not None:
            self._redirector.close()
            self._redirector = None
        engine = self.upcalls._engine
        if engine is not None:  # made again while the sockets closed
            self.upcalls._engine = None
            engine.close()
        for handle in self._table.handles():
            self._table.discard(handle)
        self._ports.clear()

    def _check_started(self) -> None:
        if self._refs <= 0:
            raise_wsa(
                WSAErrorCode.WSANOTINITIALISED,
                "the host is not started: use 'with Host() as host:' or host.startup()",
            )

    # -- chains and order ------------------------------------------------------
    def resolve_chain(self, spec: str | ChainSpec) -> ChainSpec:
        """Parse ``spec`` and check its names against the installed providers."""
        chain = parse_chain(spec)
        providers = self.discovery.providers
        installed = ", ".join(sorted(providers)) or "(none)"
        for element in chain.elements:
            if element.name not in providers:
                raise ChainSpecError(f"no provider named {element.name!r}; installed: {installed}")
        for layer in chain.layers:
            if not issubclass(providers[layer.name], LayeredProvider):
                raise ChainSpecError(
                    f"{layer.name!r} is a base provider and can only end a chain; layers: "
                    f"{', '.join(self.discovery.layer_names) or '(none)'}"
                )
        if issubclass(providers[chain.base.name], LayeredProvider):
            raise ChainSpecError(
                f"a chain must end in a base provider, got layer {chain.base.name!r}; bases: "
                f"{', '.join(self.discovery.base_names)}"
            )
        return chain

    def _layer_entry(self, layer: LayerSpec) -> ProtocolInfo:
        pid = provider_uuid(f"layer:{layer}")
        existing = self.catalog.by_provider(pid)
        if existing:
            return existing[0]
        cls = self.discovery.providers[layer.name]
        assert issubclass(cls, LayeredProvider)
        try:
            instance = cls(layer.option_dict)
        except (ValueError, TypeError) as exc:
            raise ChainSpecError(f"layer {layer.name!r}: {exc}") from None
        entry = self.catalog.install_layer(str(layer), pid)
        instance.catalog_entry_id = entry.catalog_entry_id
        self._layers[pid] = instance
        return entry

    def install_chain(self, spec: str | ChainSpec) -> list[ProtocolInfo]:
        """Install ``spec``: its layers' hidden entries and one chain entry per
        base entry of its base provider, ahead of them.  Returns the chain
        entries (a bare base name installs nothing and returns its entries)."""
        chain = self.resolve_chain(spec)
        base_entries = self.catalog.by_provider(provider_uuid(chain.base.name))
        if not chain.layers:
            return base_entries
        pid = provider_uuid(f"chain:{chain}")
        existing = self.catalog.by_provider(pid)
        if existing:
            return existing
        layers = [self._layer_entry(layer) for layer in chain.layers]
        ifs = all(
            getattr(self.discovery.providers[layer.name], "ifs", None) is not False
            for layer in chain.layers
        )
        entries = self.catalog.install_chain(
            layers, [e.catalog_entry_id for e in base_entries], pid, ifs=ifs
        )
        self._chain_specs.append(chain)
        return entries

    def deinstall_chain(self, spec: str | ChainSpec) -> list[ProtocolInfo]:
        """Remove a chain installed with :meth:`install_chain`."""
        chain = parse_chain(spec)
        removed = self.catalog.deinstall(provider_uuid(f"chain:{chain}"))
        self._chain_specs = [c for c in self._chain_specs if c != chain]
        # A layer's hidden entry goes with the last chain that used it.
        for layer in chain.layers:
            pid = provider_uuid(f"layer:{layer}")
            entries = self.catalog.by_provider(pid)
            if entries and not self.catalog.chains_using(entries[0].catalog_entry_id):
                removed += self.catalog.deinstall(pid)
                instance = self._layers.pop(pid, None)
                if instance is not None and self._started.pop(id(instance), None) is not None:
                    try:
                        instance.cleanup()
                    except Exception:  # contained, as at host cleanup
                        pass
        return removed

    def entries_for(self, spec: str | ChainSpec) -> list[ProtocolInfo]:
        """The catalog entries a spec stands for (a chain's, or a base's own)."""
        chain = parse_chain(spec)
        if not chain.layers:
            return self.catalog.by_provider(provider_uuid(chain.base.name))
        return self.catalog.by_provider(provider_uuid(f"chain:{chain}"))

    def set_order(self, names: Sequence[str]) -> None:
        """Put the entries of ``names`` (chain specs or provider names) first, in that order."""
        wanted: list[int] = []
        for name in names:
            entries = self.entries_for(self.resolve_chain(name))
            if not entries:
                raise ChainSpecError(f"{name!r} is not installed in this host's catalog")
            wanted.extend(e.catalog_entry_id for e in entries if e.catalog_entry_id not in wanted)
        if not wanted:
            return
        rest = [cid for cid in self.catalog.ids() if cid not in wanted]
        self.catalog.write_order([*wanted, *rest])

    def _catalog_changed(self, action: str, entries: list[ProtocolInfo]) -> None:
        self._levels.clear()
        self._routes.clear()
        self._hook.wsp_catalog_changed(action=action, entries=entries)

    # -- enumeration -------------------------------------------------------------
    def enum_protocols(self, protocols: Sequence[int] | None = None) -> list[ProtocolInfo]:
        """``WSAEnumProtocols``: base and chain entries that are not hidden."""
        return self.catalog.enum_protocols(protocols)

    def enum_all(self) -> list[ProtocolInfo]:
        """``WSCEnumProtocols``: every entry."""
        return self.catalog.enum_all()

    # -- providers -----------------------------------------------------------------
    def provider(self, name_or_spec: str) -> ServiceProvider:
        """The started instance of a base provider (``"memory"``) or of a layer
        (``"faults[latency=5ms]"``, or just ``"trace"`` if only one is installed)."""
        self._check_started()
        text = name_or_spec.strip()
        if text in self.discovery.base_names:
            cls = self.discovery.providers[text]
            entry = self.catalog.by_provider(provider_uuid(text))[0]
            return self._start(entry.catalog_entry_id, self._base_instance(cls))
        matches = [
            inst
            for pid, inst in self._layers.items()
            if self.catalog.by_provider(pid)
            and (self.catalog.by_provider(pid)[0].name == text or inst.name == text)
        ]
        if not matches:
            names = {*self.discovery.base_names, *(i.name for i in self._layers.values())}
            raise ChainSpecError(
                f"no installed provider {text!r}; installed: {', '.join(sorted(names))}"
            )
        inst = matches[0]
        return self._start(inst.catalog_entry_id, inst)

    def _base_instance(self, cls: type[ServiceProvider]) -> ServiceProvider:
        inst = self._bases.get(cls.name)
        if inst is None:
            inst = self._bases[cls.name] = cls()
        return inst

    def _start(self, cid: int, provider: ServiceProvider) -> ServiceProvider:
        """Start ``provider`` once per startup cycle (SPI rule A5); ``cid`` is the
        entry that needs it (for messages)."""
        key = id(provider)
        if key in self._started:
            return provider
        with self._lock:
            if key in self._started:
                return provider
            failure = self._failed.get(key)
            if failure is not None:
                raise wsa_error(failure.wsa_code, failure.strerror or "") from failure
            missing = [
                op for op in REQUIRED_OPERATIONS if not callable(getattr(provider, op, None))
            ]
            twice = doubly_defined(type(provider)) if isinstance(provider, LayeredProvider) else []
            try:
                if missing:
                    raise_wsa(
                        WSAErrorCode.WSAEINVALIDPROCTABLE,
                        f"provider {provider.name!r} lacks operation(s) {', '.join(missing)}",
                    )
                if twice:
                    raise_wsa(
                        WSAErrorCode.WSAEINVALIDPROCTABLE,
                        f"layer {provider.name!r} defines {', '.join(twice)} both on the "
                        f"provider and on its socket class; define each in one place",
                    )
                try:
                    provider.startup(self.upcalls)
                except WSAError as exc:
                    if exc.wsa_code != WSAErrorCode.WSAENETDOWN:
                        raise wsa_error(
                            WSAErrorCode.WSAEPROVIDERFAILEDINIT,
                            f"provider {provider.name!r} failed to start: {exc}",
                        ) from exc
                    raise
                except Exception as exc:
                    raise wsa_error(
                        WSAErrorCode.WSAEPROVIDERFAILEDINIT,
                        f"provider {provider.name!r} failed to start: {exc!r}",
                    ) from exc
            except WSAError as err:
                self._failed[key] = err
                self._hook.wsp_provider_failed(name=provider.name, error=err)
                raise
            self._started[key] = provider
        return provider

    def _levels_for(self, entry: ProtocolInfo) -> list[NextLayer]:
        levels = self._levels.get(entry.catalog_entry_id)
        if levels is not None:
            return levels
        with self._lock:
            ids = entry.chain if entry.chain else (entry.catalog_entry_id,)
            infos = []
            providers: list[ServiceProvider] = []
            for cid in ids:
                info = self.catalog.get(cid)
                if info is None:
                    raise_wsa(
                        WSAErrorCode.WSAEINVALIDPROVIDER,
                        f"entry {entry.catalog_entry_id} names missing id {cid}",
                    )
                infos.append(info)
            for info in infos[:-1]:
                layer = self._layers.get(info.provider_id)
                if layer is None:
                    raise_wsa(WSAErrorCode.WSAEINVALIDPROVIDER, f"no layer for entry {info.name!r}")
                providers.append(self._start(info.catalog_entry_id, layer))
            base = next(
                (
                    c
                    for n, c in self.discovery.providers.items()
                    if provider_uuid(n) == infos[-1].provider_id
                ),
                None,
            )
            if base is None:
                raise_wsa(
                    WSAErrorCode.WSAEINVALIDPROVIDER, f"no provider for entry {infos[-1].name!r}"
                )
            providers.append(self._start(infos[-1].catalog_entry_id, self._base_instance(base)))
            levels = compile_levels(
                chain_info=entry, providers=providers, level_infos=infos, table=self._table
            )
            self._levels[entry.catalog_entry_id] = levels
            return levels

    # -- sockets -----------------------------------------------------------------------
    def socket(
        self,
        af: int | None = None,
        type: int | None = None,
        protocol: int | None = None,
        protocol_info: ProtocolInfo | None = None,
        group: int = 0,
        flags: int = 0,
    ) -> Socket:
        """``WSASocket``: create a socket through the first matching catalog entry.

        ``af``/``type`` 0 are wildcards, ``protocol`` 0 matches any protocol and
        otherwise the range ``protocol .. protocol + protocol_max_offset``;
        ``protocol_info`` picks its entry by catalog id (and -1 in af/type/protocol
        takes the value from it).  Left out, af/type/protocol default to
        ``AF_INET, SOCK_STREAM, 0``, or to ``FROM_PROTOCOL_INFO`` when
        ``protocol_info`` is given.  See the SPI rules in the docs for the errors.
        """
        if self._refs <= 0:
            self._check_started()
        if protocol_info is not None:
            return self._socket_from_info(af, type, protocol, protocol_info, group, flags)
        key = (af, type, protocol, af.__class__, type.__class__, protocol.__class__)
        try:
            route = self._routes.get(key)
        except TypeError:  # unhashable, so not an int: _route names it
            route = None
        if route is None:
            route = self._route(af, type, protocol)
        if group != 0:
            raise_wsa(WSAErrorCode.WSAEINVAL, f"group is reserved and must be 0, got {group!r}")
        if self.max_sockets is not None and len(self._sockets) >= self.max_sockets:
            raise_wsa(
                WSAErrorCode.WSAEMFILE, f"the host's limit of {self.max_sockets} sockets is reached"
            )
        af, type, protocol, matches, mismatch = route
        for entry in matches:
            try:
                return self._create(entry, af, type, protocol, flags)
            except WSAError as exc:
                if exc.wsa_code == WSAErrorCode.WSAEINPROGRESS:
                    continue  # A3: the provider declined; resume after it
                raise
        raise_wsa(*mismatch)

    def _route(self, af: int | None, type: int | None, protocol: int | None) -> _Route:
        """What socket() does with ``af``/``type``/``protocol`` (no protocol
        info): the triplet checked and made ints, the catalog entries to try in
        order and the error once they are exhausted.  Kept, by the values and
        their classes (``True`` is not ``1`` here), until the catalog changes."""
        key = (af, type, protocol, af.__class__, type.__class__, protocol.__class__)
        # Defaults: the socket module's (AF_INET, SOCK_STREAM, 0).
        af = check_triplet("af", 2 if af is None else af)
        type = check_triplet("type", 1 if type is None else type)
        protocol = check_triplet("protocol", 0 if protocol is None else protocol)
        if FROM_PROTOCOL_INFO in (af, type, protocol):
            route: _Route = (
                af,
                type,
                protocol,
                (),
                (WSAErrorCode.WSAEINVAL, "FROM_PROTOCOL_INFO (-1) needs a protocol_info"),
            )
        else:
            route = (af, type, protocol, *self.catalog.selection(af, type, protocol))
        routes = self._routes
        if len(routes) >= _MAX_ROUTES:
            routes.clear()
        routes[key] = route
        return route

    def _socket_from_info(
        self,
        af: int | None,
        type: int | None,
        protocol: int | None,
        protocol_info: ProtocolInfo,
        group: int,
        flags: int,
    ) -> Socket:
        """:meth:`socket` with an explicit ``protocol_info`` (SPI rule A4)."""
        # Defaults: everything from the protocol info.
        af = check_triplet("af", FROM_PROTOCOL_INFO if af is None else af)
        type = check_triplet("type", FROM_PROTOCOL_INFO if type is None else type)
        protocol = check_triplet("protocol", FROM_PROTOCOL_INFO if protocol is None else protocol)
        if protocol_info.shared_token:
            return self._open_shared(protocol_info)
        if group != 0:
            raise_wsa(WSAErrorCode.WSAEINVAL, f"group is reserved and must be 0, got {group!r}")
        if self.max_sockets is not None and len(self._sockets) >= self.max_sockets:
            raise_wsa(
                WSAErrorCode.WSAEMFILE, f"the host's limit of {self.max_sockets} sockets is reached"
            )
        if not isinstance(protocol_info, ProtocolInfo):
            raise_wsa(
                WSAErrorCode.WSAEFAULT,
                f"protocol_info must be a ProtocolInfo, got {protocol_info!r}",
            )
        entry = self.catalog.get(protocol_info.catalog_entry_id)
        if entry is None or entry.is_layered:
            raise_wsa(
                WSAErrorCode.WSAEINVAL,
                f"protocol_info names catalog id {protocol_info.catalog_entry_id}, "
                "which is not a base or chain entry of this host",
            )
        return self._create(entry, af, type, protocol, flags)

    def _create(
        self, entry: ProtocolInfo, af: int, type_: int, protocol: int, flags: int
    ) -> Socket:
        if flags.__class__ is not int or flags & FLAGS_TO_CHECK:
            check_flags(flags, entry)
        levels = self._levels.get(entry.catalog_entry_id)
        if levels is None:
            levels = self._levels_for(entry)
        top = levels[0].socket(af, type_, protocol, entry, 0, flags)
        core = SocketCore(self, top, entry, flags, af, type_, protocol)
        return self._adopt(Socket(core, top.handle))

    # _sockets needs no lock: add, discard, len() and list() of a set are
    # each atomic, and nothing reads it and then writes it.
    def _adopt(self, sock: Socket) -> Socket:
        self._sockets.add(sock)
        if self._hook.wsp_socket_opened.get_hookimpls():
            self._hook.wsp_socket_opened(socket=sock)
        return sock

    def _forget(self, sock: Socket, last: bool) -> None:
        self._sockets.discard(sock)
        if last and self._hook.wsp_socket_closed.get_hookimpls():
            self._hook.wsp_socket_closed(socket=sock)

    def _share(self, core: SocketCore) -> ProtocolInfo:
        with self._lock:
            token = self._next_token
            self._next_token += 1
            self._shared[token] = core
        return core.entry.replace(shared_token=token)

    def _open_shared(self, info: ProtocolInfo) -> Socket:
        with self._lock:
            core = self._shared.pop(info.shared_token, None)
        if core is None or core.closed:
            raise_wsa(
                WSAErrorCode.WSAEINVAL,
                f"shared protocol info (token {info.shared_token}) was already used "
                "or its socket is closed",
            )
        level = core.top.level
        if level.ifs:
            try:
                new = os.dup(core.top.handle)
            except OSError as exc:
                raise contain(exc, "duplicate") from exc
            try:
                handle = self.upcalls.modify_ifs_handle(level.catalog_entry_id, new)
            except BaseException:
                os.close(new)
                raise
        else:
            handle = self.upcalls.create_socket_handle(level.catalog_entry_id, core.top.context)
        core.acquire()
        return self._adopt(Socket(core, handle))

    def _release_descriptor(self, core: SocketCore, handle: int) -> None:
        if handle == core.top.handle:
            return
        self._table.close(handle)
        if core.top.level.ifs:
            os.close(handle)

    def _redirect(self, top: Dispatch) -> None:
        record = self._table.get(top.handle)
        if record is None or record.peer is None:
            raise_wsa(WSAErrorCode.WSAENOTSOCK, f"handle {top.handle} is not a minted handle")
        with self._lock:
            if self._redirector is None:
                self._redirector = Redirector()
        self._redirector.add(top, record.peer)

    def _unredirect(self, top: Dispatch) -> None:
        record = self._table.get(top.handle)
        if self._redirector is not None and record is not None and record.peer is not None:
            self._redirector.remove(record.peer.fileno())

    def _complete(self, handle: int, ov: Overlapped, error: int, nbytes: int) -> None:
        """Route a completion: the event, the APC queue, or the port associated
        with ``handle`` (``finish`` decides which, as Winsock does)."""
        finish(ov, error, nbytes, self._ports.get(handle))

    def sockets(self) -> list[Socket]:
        """The sockets open on this host."""
        return list(self._sockets)

    def open_handles(self) -> list[int]:
        """Every handle in the host's handle table."""
        return self._table.handles()

    def select(
        self,
        readers: Sequence[Socket],
        writers: Sequence[Socket] = (),
        errors: Sequence[Socket] = (),
        timeout: float | None = None,
    ) -> tuple[list[Socket], list[Socket], list[Socket]]:
        """``select``: dispatched to the provider of the first socket of the first
        non-empty set (SPI rule A13).  All sets empty: WSAEINVAL; sockets of
        another top provider in the sets: WSAEINVAL naming both."""
        self._check_started()
        sets = [list(readers), list(writers), list(errors)]
        first = next((s[0] for s in sets if s), None)
        if first is None:
            raise_wsa(WSAErrorCode.WSAEINVAL, "select() needs at least one socket")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
            raise_wsa(WSAErrorCode.WSAEINVAL, f"timeout must be None or >= 0, got {timeout!r}")
        level = first._dispatch().level
        shape = _chain_shape(level)
        back: dict[int, list[Socket]] = {}
        mapped: list[list[Any]] = []
        for group in sets:
            out = []
            for sock in group:
                if not isinstance(sock, Socket):
                    raise_wsa(
                        WSAErrorCode.WSAENOTSOCK, f"select() got {sock!r}, which is not a Socket"
                    )
                top = sock._dispatch()
                other = _chain_shape(top.level)
                if other != shape:
                    names = " and ".join(",".join(p.name for p in c) for c in (shape, other))
                    raise_wsa(
                        WSAErrorCode.WSAEINVAL,
                        f"select() mixes sockets of different chains ({names}); "
                        "select each chain's sockets separately",
                    )
                back.setdefault(id(top.context), []).append(sock)
                out.append(top.context)
            mapped.append(out)
        try:
            r, w, x = level.select(mapped[0], mapped[1], mapped[2], timeout)
        except WSAError:
            raise
        except Exception as exc:
            raise contain(exc, "select") from exc

        def up(found: list[Any], wanted: list[Socket]) -> list[Socket]:
            keep: set[int] = set()
            for ctx in found:
                keep.update(id(s) for s in back.get(id(ctx), []))
            return [s for s in wanted if id(s) in keep]

        return up(r, sets[0]), up(w, sets[1]), up(x, sets[2])

    def address_to_string(self, address: Any, protocol_info: ProtocolInfo) -> str:
        """``WSAAddressToString`` through the entry's chain."""
        self._check_started()
        levels = self._levels_for(self._entry(protocol_info))
        return levels[0].address_to_string(address, levels[0].protocol_info)

    def string_to_address(self, text: str, af: int, protocol_info: ProtocolInfo) -> Any:
        """``WSAStringToAddress`` through the entry's chain."""
        self._check_started()
        levels = self._levels_for(self._entry(protocol_info))
        return levels[0].string_to_address(text, af, levels[0].protocol_info)

    def _entry(self, info: ProtocolInfo) -> ProtocolInfo:
        entry = self.catalog.get(getattr(info, "catalog_entry_id", -1))
        if entry is None or entry.is_layered:
            raise_wsa(WSAErrorCode.WSAEINVAL, f"{info!r} is not a base or chain entry of this host")
        return entry

    def __repr__(self) -> str:
        state = f"started x{self._refs}" if self._refs else "not started"
        return f"<wspframe.Host {len(self.catalog)} entries, {len(self._sockets)} sockets, {state}>"
