"""The Socket API's bindings of a chain's hot operations.

Theory of operation
-------------------
A :class:`~wspframe.Socket` calls send, recv and friends as ``fn(first,
*args)`` pairs cached on itself, so a call through a chain is one Python
frame in the Socket plus one per overriding layer (none at all where the
base provider hands over its OS socket's own C method).  This module works
those pairs out: once per chain top level as a *plan* (the callables, and how
many levels down each one's context lies), then per socket by walking to the
contexts; a socket the plan does not fit (an operation replaced on a
provider instance, a context of another class than its layer's) takes the
general path, from what its top Dispatch binds.
"""

from __future__ import annotations

import functools
import types
from typing import TYPE_CHECKING, Any, Final

from ._spi import SOCKET_OPERATIONS, ServiceProvider

if TYPE_CHECKING:
    from ._chain import Dispatch, NextLayer

__all__ = ["hot_bindings"]

#: The data path's operations, in the order of the Socket's slots.
_HOT: Final = SOCKET_OPERATIONS


def hot_bindings(top: Dispatch) -> tuple[tuple[Any, ...], dict[str, ServiceProvider]]:
    """The hot operations of ``top`` as ``(function, first argument)`` pairs,
    flattened, and the providers whose native operations are among them.

    A chain's ``partial(f, provider, ctx)`` becomes ``(f bound to provider,
    ctx)``, and a context's bound method ``ctx.op`` (a layer's fast form, or
    a base provider's context function) ``(function, ctx)``: a Python
    function or bound method called from a Python frame is inlined by the
    interpreter, a partial is not.  Where the
    provider offers a native function for the operation
    (``ServiceProvider.native``), the pair is ``(native, ctx)``: the
    provider's own C call, its failures mapped here on the slow path.
    """
    level = top.level
    plan = level.socket_plan
    if plan is None:
        plan = level.socket_plan = _socket_plan(level)
    if plan:
        calls, _, uniform, providers, checks, native = plan
        if uniform >= 0 and not checks:
            # One level runs them all (one provider): _planned's usual case.
            if _HOT_NAMES.isdisjoint(providers[0].__dict__):
                ctx = top.context
                while uniform:
                    ctx = ctx.lower.context
                    uniform -= 1
                c0, c1, c2, c3, c4, c5 = calls
                return (c0, ctx, c1, ctx, c2, ctx, c3, ctx, c4, ctx, c5, ctx), native
        else:
            planned = _planned(plan, top.context)
            if planned is not None:
                return planned, native
    return _bound_bindings(top)


def _bound_bindings(top: Dispatch) -> tuple[tuple[Any, ...], dict[str, ServiceProvider]]:
    """:func:`hot_bindings` from what ``top`` has bound, one operation at a time."""
    level = top.level
    flat: list[Any] = []
    native: dict[str, ServiceProvider] = {}
    plan = level.plan  # what earlier sockets of this chain found
    for op in _HOT:
        fn = getattr(top, op)
        kind = type(fn)
        if kind is types.MethodType:  # a layer's fast form, or a base's context function
            func, bound, ctx = fn.__func__, None, fn.__self__
        elif kind is functools.partial and len(fn.args) == 2:
            func, (bound, ctx) = fn.func, fn.args
        else:
            flat += (_call_other, fn)
            continue
        hit = plan.get(op)
        if hit is None or hit[0] is not func or hit[1] is not bound:
            target = level.targets[op]
            direct = target.provider.native(op) if target.is_base else None
            if direct is not None:
                hit = (func, bound, direct, target.provider)
            else:
                call = func if bound is None else types.MethodType(func, bound)
                hit = (func, bound, call, None)
            plan[op] = hit
        flat += (hit[2], ctx)
        if hit[3] is not None:
            native[op] = hit[3]
    return tuple(flat), native


#: What every socket with a given level on top binds, worked out once
#: (:func:`_socket_plan`): per hot operation the callable and how many levels
#: down its context is, that depth if it is the same for all of them (else
#: -1), the providers whose instances must not replace a hot operation, the
#: ``(depth, class)`` a fast-form context must be exactly, and the providers
#: called natively (shared by the sockets: read only).
_Plan = tuple[
    tuple[Any, ...],
    tuple[int, ...],
    int,
    tuple[ServiceProvider, ...],
    tuple[tuple[int, type], ...],
    dict[str, ServiceProvider],
]
_HOT_NAMES: Final = frozenset(_HOT)


def _socket_plan(level: NextLayer) -> _Plan | bool:
    """The plan of :func:`hot_bindings` for sockets with ``level`` on top, or
    False where a binding depends on more than the chain (each socket then
    takes the general path)."""
    calls: list[Any] = []
    depths: list[int] = []
    providers: list[ServiceProvider] = []
    checks: list[tuple[int, type]] = []
    native: dict[str, ServiceProvider] = {}
    for i, op in enumerate(_HOT):
        target = level.targets[op]
        impl = target.hot_impl[i]
        if impl is None:  # pragma: no cover - a target runs the operation
            return False
        fn, bound, fast = impl
        depth = target.index - level.index
        provider = target.provider
        if not hasattr(provider, "__dict__"):
            return False
        if fast:
            if bound is not object:
                checks.append((depth, bound))
            call = fn
        elif bound is None:
            return False  # bound with a one-argument partial: _call_other
        else:
            call = types.MethodType(fn, bound)
        direct = provider.native(op) if target.is_base else None
        if direct is not None:
            call = direct
            native[op] = provider
        calls.append(call)
        depths.append(depth)
        if not any(p is provider for p in providers):
            providers.append(provider)
    uniform = depths[0] if len(set(depths)) == 1 else -1
    return tuple(calls), tuple(depths), uniform, tuple(providers), tuple(set(checks)), native


def _planned(plan: _Plan, ctx: Any) -> tuple[Any, ...] | None:
    """The flat bindings :func:`hot_bindings` would find for the socket whose
    top context is ``ctx``, from a plan whose operations run at several levels;
    None if the plan does not apply (an operation replaced on a provider
    instance, a context of another class)."""
    calls, depths, _, providers, checks, _ = plan
    for provider in providers:
        if not _HOT_NAMES.isdisjoint(provider.__dict__):
            return None
    x = [ctx]
    for _ in range(max(depths)):
        ctx = ctx.lower.context
        x.append(ctx)
    for depth, cls in checks:
        if type(x[depth]) is not cls:
            return None
    c0, c1, c2, c3, c4, c5 = calls
    d0, d1, d2, d3, d4, d5 = depths
    return (c0, x[d0], c1, x[d1], c2, x[d2], c3, x[d3], c4, x[d4], c5, x[d5])


def _call_other(fn: Any, *args: Any) -> Any:
    return fn(*args)
