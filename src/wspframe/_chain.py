"""Compiled protocol chains: the per-chain dispatch tables.

Theory of operation
-------------------
A chain entry ``(L0, L1, ..., B)`` compiles once into a list of
:class:`NextLayer` objects, one per level.  Each knows its provider, the
protocol info that level must be given (the chain entry for a layer, the base
entry for the base: the SPI's propagation rule), the catalog id its handles
belong to, and, for every per-socket operation, the first level at or below it
that implements the operation (a layer that does not override ``send`` is
skipped for ``send``).

Per socket, a :class:`Dispatch` holds one level's context and binds each
operation to the implementation and the context at the level running it (a
method of the context, or ``functools.partial(implementation, provider,
context)``): a call through a chain is one call per *overriding* level, with
no dictionary lookups by handle and no pluggy.  The data path's operations
are bound when the Dispatch is made, except where nothing calls them there
(:class:`LazyDispatch`: the top, which the Socket API bypasses, and levels
under layers that run none of them); the others on first use.  Everything a
level can work out without a socket it works out once, at compile time.
``accept`` and ``close_socket`` visit every level, since each level keeps
state per socket.
"""

from __future__ import annotations

import functools
import itertools
import types
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from ._errors import WSAErrorCode, contain, raise_wsa
from ._protocol import ProtocolInfo
from ._spi import (
    DATA_OPERATIONS,
    OVERLAPPED_OPERATIONS,
    SOCKET_OPERATIONS,
    LayeredProvider,
    LayerSocket,
    ServiceProvider,
    socket_operations,
)

if TYPE_CHECKING:
    from ._handles import HandleTable

__all__ = ["Dispatch", "LazyDispatch", "NextLayer", "compile_levels", "overridden_operations"]

_SKIPPABLE: Final = (*DATA_OPERATIONS, *OVERLAPPED_OPERATIONS)
#: Operations bound when a Dispatch is made (the data path); the others are
#: bound on first use.  A type with ``__getattr__`` defeats CPython's
#: attribute specialization for every ``s.lower.send`` in every layer, so
#: Dispatch has none.
_HOT: Final = SOCKET_OPERATIONS
_SLOTS: Final = (
    "level",
    "context",
    "handle",
    *_SKIPPABLE,
    "accept",
    "accept_overlapped",
    "close_socket",
)


def overridden_operations(cls: type[ServiceProvider]) -> frozenset[str]:
    """The per-socket operations (and ``on_complete``) a layer class overrides,
    on the provider or on its socket class (every operation, for a base
    provider)."""
    if not issubclass(cls, LayeredProvider):
        return frozenset(_SKIPPABLE)
    return frozenset(
        op
        for op in (*_SKIPPABLE, "on_complete")
        if getattr(cls, op) is not getattr(LayeredProvider, op)
    ) | socket_operations(cls.socket_class)


def _bind(provider: ServiceProvider, op: str, *args: Any) -> Callable[..., Any]:
    if op in SOCKET_OPERATIONS and len(args) == 1 and isinstance(args[0], LayerSocket):
        # The fast form: the operation defined on the socket class.
        fast = getattr(args[0], op, None)
        if isinstance(fast, types.MethodType):
            return fast
    method = getattr(provider, op)
    if isinstance(method, types.MethodType):
        return functools.partial(method.__func__, method.__self__, *args)
    return functools.partial(method, *args)


#: How a level binds one hot operation to a context: ``(function, bound,
#: fast)``.  Fast: ``MethodType(function, ctx)`` if the context's class is
#: ``bound`` (the layer's socket class; ``object`` for a base provider's
#: context function: any context), else as ``_bind`` would.  Otherwise
#: ``partial(function, bound, ctx)`` (``bound`` None: ``partial(function, ctx)``).
_Impl = tuple[Callable[..., Any], Any, bool]


def _impl(provider: ServiceProvider, op: str) -> _Impl:
    if isinstance(provider, LayeredProvider):
        if op in socket_operations(provider.socket_class):
            return getattr(provider.socket_class, op), provider.socket_class, True
    else:
        function = provider.context_function(op)
        if function is not None:
            return function, object, True
    return _method_impl(provider, op)


def _method_impl(provider: ServiceProvider, op: str) -> _Impl:
    """The provider's ``op`` as ``getattr`` finds it, bound with a partial."""
    method = getattr(provider, op)
    if isinstance(method, types.MethodType):
        return method.__func__, method.__self__, False
    return method, None, False


_HOT_NAMES: Final = frozenset(_HOT)
#: NextLayer.hot_mode values.
_HOT_FROM_LOWER: Final = 0
_HOT_METHODS: Final = 1
_HOT_EACH: Final = 2


def _instance_impl(provider: ServiceProvider, op: str) -> _Impl:
    """:func:`_impl` where the instance may have replaced ``op``."""
    return _method_impl(provider, op) if op in vars(provider) else _impl(provider, op)


def _bind_impl(impl: _Impl, provider: ServiceProvider, op: str, ctx: Any) -> Callable[..., Any]:
    fn, bound, fast = impl
    if fast:
        if bound is object or type(ctx) is bound:
            return types.MethodType(fn, ctx)
        return _bind(provider, op, ctx)
    if bound is None:
        return functools.partial(fn, ctx)
    return functools.partial(fn, bound, ctx)


class NextLayer:
    """One level of a compiled chain, as the level above sees it.

    A layer's ``socket()`` receives the ``NextLayer`` below it and calls
    ``next.socket(af, type, protocol, next.protocol_info, group, flags)``.
    """

    below: NextLayer | None
    targets: dict[str, NextLayer]
    own_hot: tuple[bool, ...] | None

    __slots__ = (
        "below",
        "catalog_entry_id",
        "chain_info",
        "context_class",
        "dispatch_class",
        "hot_class",
        "hot_funcs",
        "hot_impl",
        "hot_mode",
        "ifs",
        "index",
        "is_base",
        "lazy",
        "overrides",
        "own_hot",
        "plan",
        "protocol_info",
        "provider",
        "records",
        "socket_plan",
        "table",
        "targets",
    )

    def __init__(
        self,
        *,
        index: int,
        provider: ServiceProvider,
        protocol_info: ProtocolInfo,
        chain_info: ProtocolInfo,
        catalog_entry_id: int,
        ifs: bool,
        below: NextLayer | None,
        table: HandleTable,
    ) -> None:
        self.index = index
        self.provider = provider
        #: The protocol info this level must be given (propagation rule).
        self.protocol_info = protocol_info
        #: The entry the socket was made from (the top of the chain).
        self.chain_info = chain_info
        #: The catalog id this level's handles are registered under.
        self.catalog_entry_id = catalog_entry_id
        #: Whether this level exposes IFS handles.
        self.ifs = ifs
        self.is_base = below is None
        self.below = below
        self.table = table
        self.overrides = overridden_operations(type(provider))
        targets: dict[str, NextLayer] = {}
        for op in DATA_OPERATIONS:
            if self.is_base or op in self.overrides:
                targets[op] = self
            else:
                assert below is not None
                targets[op] = below.targets[op]
        # Overlapped operations skip a layer only where completing against the
        # level below reaches the same handle (an IFS layer) and the layer
        # neither overrides the operation nor post-processes completions.
        for op in OVERLAPPED_OPERATIONS:
            if self.is_base or op in self.overrides or "on_complete" in self.overrides or not ifs:
                targets[op] = self
            else:
                assert below is not None
                targets[op] = below.targets[op]
        self.targets = targets
        # The data path, bound when a Dispatch is made: which operations of it
        # this level runs itself (the others are the level below's).
        own = tuple(targets[op] is self for op in _HOT)
        self.own_hot = None if all(own) else own
        #: Per hot operation this level runs: how to bind it to a context.
        self.hot_impl = tuple(
            _impl(provider, op) if mine else None for op, mine in zip(_HOT, own, strict=True)
        )
        #: How a Dispatch at this level binds the hot operations: all from
        #: the level below (it runs none of them); each it runs as a method
        #: of the context (``hot_funcs``: the function, or None for the level
        #: below's), the context being of class ``hot_class`` (``object``: any);
        #: or op by op.
        self.hot_funcs: tuple[Callable[..., Any] | None, ...] = ()
        self.hot_class: type = object
        classes = {i[1] for i in self.hot_impl if i is not None}
        if not any(own):
            self.hot_mode = _HOT_FROM_LOWER
        elif len(classes) == 1 and all(i is None or i[2] for i in self.hot_impl):
            self.hot_mode = _HOT_METHODS
            self.hot_funcs = tuple(None if i is None else i[0] for i in self.hot_impl)
            self.hot_class = classes.pop()
        else:
            self.hot_mode = _HOT_EACH
        #: Whether the Dispatches of this level bind their hot operations on
        #: first use (set by compile_levels: the top, and a level no layer
        #: above calls on the data path).
        self.lazy = index == 0
        #: The class of this level's Dispatches (LazyDispatch where lazy).
        self.dispatch_class: type[Dispatch] = LazyDispatch if self.lazy else Dispatch
        #: What a context this level returns must be (the handle rule's check).
        self.context_class: type = object if self.is_base else LayerSocket
        self.records = table._records
        #: The Socket API's bindings of hot operations at this level as the
        #: top (see _bindings.hot_bindings): op -> (function, the provider it
        #: was bound with or None, the callable, the provider called natively
        #: or None).
        self.plan: dict[str, tuple[Any, Any, Any, Any]] = {}
        #: The same for every socket at once, made by the first socket with
        #: this level on top (_bindings._socket_plan; False: none applies).
        self.socket_plan: Any = None

    @property
    def name(self) -> str:
        return self.provider.name

    def __repr__(self) -> str:
        kind = "base" if self.is_base else "layer"
        return f"<NextLayer {self.index} {kind} {self.provider.name!r} id={self.catalog_entry_id}>"

    # -- socket creation ----------------------------------------------------
    def socket(
        self,
        af: int,
        type: int,
        protocol: int,
        protocol_info: ProtocolInfo,
        group: int,
        flags: int,
    ) -> Dispatch:
        """Create the socket at this level (and, through it, every level below)."""
        if protocol_info is not self.protocol_info and protocol_info != self.protocol_info:
            expected = "the base entry's own" if self.is_base else "the same, unmodified chain"
            raise_wsa(
                WSAErrorCode.WSAEINVAL,
                f"protocol info {protocol_info.name!r} (id {protocol_info.catalog_entry_id}) "
                f"passed to {self.provider.name!r}; the SPI requires {expected} protocol info "
                f"{self.protocol_info.name!r} (id {self.protocol_info.catalog_entry_id})",
            )
        provider: Any = self.provider
        try:
            if self.is_base:
                ctx = provider.socket(af, type, protocol, protocol_info, group, flags)
            else:
                ctx = provider.socket(self.below, af, type, protocol, protocol_info, group, flags)
        except Exception as exc:
            err = contain(exc, f"{self.provider.name}.socket")
            if err is exc:
                raise
            raise err from exc
        return self.adopt(ctx)

    def adopt(self, ctx: Any) -> Dispatch:
        """Check a new context's handle (the SPI's handle rule) and bind it."""
        # The common case, a context that passes every check, is settled
        # here; anything else goes to check_owner, which names the problem.
        try:
            handle = ctx.handle
        except AttributeError:
            handle = None
        record = self.records.get(handle) if handle.__class__ is int else None
        if (
            record is None
            or record.owners[-1] != self.catalog_entry_id
            or (self.ifs and not record.ifs)
            or not isinstance(ctx, self.context_class)
        ):
            self.table.check_owner(ctx, self)
        return self.dispatch_class(self, ctx)

    # -- provider operations -----------------------------------------------
    def select(
        self,
        readers: Sequence[Any],
        writers: Sequence[Any],
        errors: Sequence[Any],
        timeout: float | None,
    ) -> tuple[list[Any], list[Any], list[Any]]:
        """``WSPSelect`` over contexts of this level."""
        if self.is_base:
            result: tuple[list[Any], list[Any], list[Any]] = self.provider.select(  # type: ignore[attr-defined]
                readers, writers, errors, timeout
            )
            return result
        if getattr(type(self.provider), "select", None) is not LayeredProvider.select:
            return self.provider.select(self.below, readers, writers, errors, timeout)  # type: ignore[attr-defined, no-any-return]
        # Not overridden: select one level down and map back.
        assert self.below is not None
        back: dict[int, Any] = {}

        def down(items: Sequence[Any]) -> list[Any]:
            out = []
            for item in items:
                if not isinstance(item, LayerSocket):
                    raise_wsa(
                        WSAErrorCode.WSAENOTSOCK, f"{item!r} is not a socket of {self.name!r}"
                    )
                back[id(item.lower.context)] = item
                out.append(item.lower.context)
            return out

        r, w, x = self.below.select(down(readers), down(writers), down(errors), timeout)
        return [back[id(c)] for c in r], [back[id(c)] for c in w], [back[id(c)] for c in x]

    def address_to_string(self, address: Any, protocol_info: ProtocolInfo) -> str:
        provider: Any = self.provider
        if self.is_base:
            return str(provider.address_to_string(address, protocol_info))
        return str(provider.address_to_string(self.below, address, protocol_info))

    def string_to_address(self, text: str, af: int, protocol_info: ProtocolInfo) -> Any:
        provider: Any = self.provider
        if self.is_base:
            return provider.string_to_address(text, af, protocol_info)
        return provider.string_to_address(self.below, text, af, protocol_info)

    # -- binding ------------------------------------------------------------
    def bind(self, op: str, ctx: Any) -> Callable[..., Any]:
        """Bind ``op`` for the socket whose context at this level is ``ctx``."""
        if op == "accept":
            return functools.partial(_accept, self, ctx)
        if op in ("close_socket", "accept_overlapped"):
            return _bind(self.provider, op, ctx)
        target = self.targets.get(op)
        if target is None:
            raise AttributeError(op)
        level: NextLayer = self
        while level is not target:
            ctx = ctx.lower.context
            assert level.below is not None
            level = level.below
        return _bind(target.provider, op, ctx)


def _accept(level: NextLayer, ctx: Any) -> tuple[Dispatch, Any]:
    new_ctx, address = level.provider.accept(ctx)  # type: ignore[attr-defined]
    return level.adopt(new_ctx), address


_COLD: Final = tuple(op for op in _SLOTS[3:] if op not in _HOT and op != "close_socket")


class Dispatch:
    """The bound dispatch table of one socket, from one level of its chain down.

    Attribute ``op`` is a callable running ``op`` at the first level at or
    below ``level`` that implements it, for this socket.  A layer reaches the
    rest of the chain through ``s.lower``, which is a ``Dispatch``.
    """

    __slots__ = ("_cold", "context", "handle", "level", *_HOT)

    level: NextLayer
    context: Any
    handle: int

    def __init__(self, level: NextLayer, context: Any) -> None:
        self.level = level
        self.context = context
        self.handle = context.handle
        self._cold: dict[str, Callable[..., Any]] | None = None
        # The level below is complete already: a level that does not override
        # an operation shares the callable bound below.  Bound here, per
        # socket, from the provider instance (as a lazy bind would).
        mode = level.hot_mode
        if mode == _HOT_FROM_LOWER:
            down = context.lower
            self.send = down.send
            self.recv = down.recv
            self.recv_into = down.recv_into
            self.sendto = down.sendto
            self.recvfrom = down.recvfrom
            self.recvfrom_into = down.recvfrom_into
            return
        provider = level.provider
        replaced = not _HOT_NAMES.isdisjoint(getattr(provider, "__dict__", ()))
        if (
            mode == _HOT_METHODS
            and not replaced
            and (level.hot_class is object or type(context) is level.hot_class)
        ):
            method = types.MethodType
            below: Any = None if level.own_hot is None else context.lower
            send, recv, recv_into, sendto, recvfrom, recvfrom_into = level.hot_funcs
            self.send = below.send if send is None else method(send, context)
            self.recv = below.recv if recv is None else method(recv, context)
            self.recv_into = below.recv_into if recv_into is None else method(recv_into, context)
            self.sendto = below.sendto if sendto is None else method(sendto, context)
            self.recvfrom = below.recvfrom if recvfrom is None else method(recvfrom, context)
            self.recvfrom_into = (
                below.recvfrom_into if recvfrom_into is None else method(recvfrom_into, context)
            )
            return
        impl = level.hot_impl
        if replaced:
            # An operation replaced on the instance (a test's monkeypatch):
            # bind what getattr finds now, as the SPI's dispatch table would.
            impl = tuple(
                None if i is None else _instance_impl(provider, op)
                for op, i in zip(_HOT, impl, strict=True)
            )
        # The base, or a layer overriding all of them, has no None in impl.
        lower: Any = None if level.own_hot is None else context.lower
        i = impl[0]
        self.send = lower.send if i is None else _bind_impl(i, provider, "send", context)
        i = impl[1]
        self.recv = lower.recv if i is None else _bind_impl(i, provider, "recv", context)
        i = impl[2]
        self.recv_into = (
            lower.recv_into if i is None else _bind_impl(i, provider, "recv_into", context)
        )
        i = impl[3]
        self.sendto = lower.sendto if i is None else _bind_impl(i, provider, "sendto", context)
        i = impl[4]
        self.recvfrom = (
            lower.recvfrom if i is None else _bind_impl(i, provider, "recvfrom", context)
        )
        i = impl[5]
        self.recvfrom_into = (
            lower.recvfrom_into if i is None else _bind_impl(i, provider, "recvfrom_into", context)
        )

    def _bound(self, name: str) -> Callable[..., Any]:
        cold = self._cold
        if cold is None:
            cold = self._cold = {}
        fn = cold.get(name)
        if fn is None:
            fn = cold[name] = self.level.bind(name, self.context)
        return fn

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...

    def close_socket(self) -> None:
        """``WSPCloseSocket`` at this level (which closes the levels below)."""
        self.level.provider.close_socket(self.context)  # type: ignore[attr-defined]

    def contexts(self) -> list[Any]:
        """This socket's context at this level and every level below it."""
        out = [self.context]
        ctx = self.context
        while isinstance(ctx, LayerSocket):
            ctx = ctx.lower.context
            out.append(ctx)
        return out

    def __repr__(self) -> str:
        return f"<Dispatch {self.level.name!r} handle={self.handle}>"


def _cold_method(name: str) -> Callable[..., Any]:
    def call(self: Dispatch, *args: Any) -> Any:
        return self._bound(name)(*args)

    call.__name__ = call.__qualname__ = name
    return call


for _name in _COLD:
    setattr(Dispatch, _name, _cold_method(_name))


class _HotOnFirstUse:
    """A hot operation of a :class:`LazyDispatch`: the slot of
    :class:`Dispatch`, filled (all six at once) the first time one is read."""

    __slots__ = ("slot",)

    def __init__(self, slot: Any) -> None:
        self.slot = slot

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        try:
            return self.slot.__get__(obj, owner)
        except AttributeError:
            bound = Dispatch(obj.level, obj.context)
            for name in _HOT:
                setattr(obj, name, getattr(bound, name))
            return self.slot.__get__(obj, owner)

    def __set__(self, obj: Any, value: Any) -> None:
        self.slot.__set__(obj, value)


class LazyDispatch(Dispatch):
    """A :class:`Dispatch` whose hot operations are bound on first use.

    Made for a chain's top level, which the Socket API calls through bindings
    of its own (see ``_bindings.hot_bindings``), and for a level whose layers
    above run no hot operation themselves (pass-throughs such as
    ``passthrough``): most sockets never read them there.  A level below a
    layer that does binds them at once, since the layer calls
    ``s.lower.send`` on its data path.
    """

    __slots__ = ()

    def __init__(self, level: NextLayer, context: Any) -> None:
        self.level = level
        self.context = context
        self.handle = context.handle
        self._cold = None


for _name in _HOT:
    setattr(LazyDispatch, _name, _HotOnFirstUse(Dispatch.__dict__[_name]))


def compile_levels(
    *,
    chain_info: ProtocolInfo,
    providers: Sequence[ServiceProvider],
    level_infos: Sequence[ProtocolInfo],
    table: HandleTable,
) -> list[NextLayer]:
    """Compile a chain: ``providers[i]`` runs level ``i``; the last is the base.

    ``level_infos[i]`` is the catalog entry level ``i`` registers its handles
    under (a layer's dummy entry, the base entry).
    """
    levels: list[NextLayer] = []
    below: NextLayer | None = None
    n = len(providers)
    base_info = level_infos[-1]
    for index in range(n - 1, -1, -1):
        provider = providers[index]
        if index == n - 1:
            ifs = base_info.ifs
            passed = base_info
        else:
            assert below is not None
            wanted = getattr(type(provider), "ifs", None)
            ifs = below.ifs and wanted is not False
            passed = chain_info
        level = NextLayer(
            index=index,
            provider=provider,
            protocol_info=passed,
            chain_info=chain_info,
            catalog_entry_id=level_infos[index].catalog_entry_id,
            ifs=ifs,
            below=below,
            table=table,
        )
        levels.append(level)
        below = level
    levels.reverse()
    # A level's Dispatch is read on the data path when the level above runs a
    # hot operation itself, or is read there and takes some from below.
    for above, level in itertools.pairwise(levels):
        runs_some = above.own_hot is None or any(above.own_hot)
        takes_some = above.own_hot is not None
        level.lazy = not (runs_some or (not above.lazy and takes_some))
        level.dispatch_class = LazyDispatch if level.lazy else Dispatch
    return levels
