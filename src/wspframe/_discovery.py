"""Provider discovery through the ``wspframe.providers`` entry-point group.

Each entry point names a module or object; it is registered with a pluggy
``PluginManager`` and its ``wsp_providers()`` hook returns provider classes.
A plugin that fails to import, or returns something that is not a valid
provider, is recorded with its distribution, version and error; the others
load regardless.  Order is deterministic: the built-in plugin first, then the
rest sorted by entry-point name and distribution.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Final

import pluggy

from ._hooks import PROJECT, HookSpecs
from ._protocol import ProtocolInfo
from ._spi import LayeredProvider, ServiceProvider, check_provider_name

__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV",
    "Discovery",
    "PluginFailure",
    "PluginRecord",
    "discover",
]

#: The entry-point group providers are registered under.
ENTRY_POINT_GROUP: Final = "wspframe.providers"
#: Comma-separated entry-point (or distribution) names to load besides the
#: built-ins; set but empty means built-ins only.
PLUGINS_ENV: Final = "WSPFRAME_PLUGINS"
BUILTIN: Final = "builtin"


@dataclasses.dataclass(frozen=True)
class PluginRecord:
    """A plugin that loaded: its entry point, distribution and providers."""

    name: str
    distribution: str
    version: str
    providers: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class PluginFailure:
    """A plugin (or one of its providers) that could not be used, and why."""

    name: str
    distribution: str
    version: str
    error: str

    def __str__(self) -> str:
        return f"{self.name} ({self.distribution} {self.version}): {self.error}"


@dataclasses.dataclass
class Discovery:
    """What discovery found: provider classes by name, plugins, failures."""

    providers: dict[str, type[ServiceProvider]]
    plugins: list[PluginRecord]
    failures: list[PluginFailure]
    manager: pluggy.PluginManager

    @property
    def base_names(self) -> list[str]:
        return [n for n, c in self.providers.items() if not issubclass(c, LayeredProvider)]

    @property
    def layer_names(self) -> list[str]:
        return [n for n, c in self.providers.items() if issubclass(c, LayeredProvider)]


def provider_problem(obj: object) -> str | None:
    """Why ``obj`` is not a usable provider class, or None."""
    if not isinstance(obj, type) or not issubclass(obj, ServiceProvider):
        return f"{obj!r} is not a ServiceProvider subclass"
    try:
        check_provider_name(obj.name)
    except ValueError as exc:
        return f"{obj.__qualname__}: {exc}"
    if not issubclass(obj, LayeredProvider):
        protocols = obj.protocols
        if (
            not isinstance(protocols, (list, tuple))
            or not protocols
            or not all(isinstance(p, ProtocolInfo) and p.chain_len <= 1 for p in protocols)
        ):
            return (
                f"base provider {obj.name!r} must list ProtocolInfo templates "
                "(base entries, not chains) in 'protocols'"
            )
    return None


def _wanted(allowed: Sequence[str] | None, ep: EntryPoint) -> bool:
    if ep.name == BUILTIN and _dist_name(ep) == PROJECT:
        return True
    if allowed is None:
        return True
    dist = _dist_name(ep)
    return ep.name in allowed or dist in allowed


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return str(dist.name) if dist is not None else "?"


def _dist_version(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return str(dist.version) if dist is not None else "?"


def allowed_from_env(value: str | None) -> list[str] | None:
    """The plugin names ``WSPFRAME_PLUGINS`` allows (None: all)."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def discover(
    plugins: Sequence[str] | None = None,
    *,
    extra: Iterable[type[ServiceProvider]] = (),
    hooks: Iterable[object] = (),
) -> Discovery:
    """Load providers from entry points.

    ``plugins`` restricts which plugins load besides the built-ins (None: read
    ``WSPFRAME_PLUGINS``; unset means all).  ``extra`` adds provider classes
    directly (tests, applications); ``hooks`` registers observer objects.
    """
    if plugins is None:
        plugins = allowed_from_env(os.environ.get(PLUGINS_ENV))
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(HookSpecs)
    records: list[PluginRecord] = []
    failures: list[PluginFailure] = []
    providers: dict[str, type[ServiceProvider]] = {}

    eps = sorted(
        entry_points(group=ENTRY_POINT_GROUP),
        key=lambda ep: (ep.name != BUILTIN or _dist_name(ep) != PROJECT, ep.name, _dist_name(ep)),
    )
    loaded: list[tuple[str, str, str, Any]] = []
    if not any(ep.name == BUILTIN and _dist_name(ep) == PROJECT for ep in eps):
        # Running from a source tree without installed metadata.
        from . import _builtin

        loaded.append((BUILTIN, PROJECT, _own_version(), _builtin))
    seen_eps = set()
    for ep in eps:
        key = (ep.name, _dist_name(ep))
        if key in seen_eps or not _wanted(plugins, ep):
            continue
        seen_eps.add(key)
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not break the others
            failures.append(
                PluginFailure(ep.name, _dist_name(ep), _dist_version(ep), f"import failed: {exc!r}")
            )
            continue
        loaded.append((ep.name, _dist_name(ep), _dist_version(ep), obj))

    for name, dist, version, obj in loaded:
        try:
            manager.register(obj, name=f"{dist}:{name}")
        except Exception as exc:
            failures.append(PluginFailure(name, dist, version, f"not a valid plugin: {exc}"))
            continue
        impls = [
            impl
            for impl in manager.hook.wsp_providers.get_hookimpls()
            if impl.plugin_name == f"{dist}:{name}"
        ]
        names = []
        for impl in impls:
            try:
                result: Any = impl.function()
                classes: list[Any] = list(result or [])
            except Exception as exc:
                failures.append(
                    PluginFailure(name, dist, version, f"wsp_providers() failed: {exc!r}")
                )
                continue
            for cls in classes:
                problem = provider_problem(cls)
                if problem is None and cls.name in providers:
                    problem = (
                        f"provider name {cls.name!r} is already provided by "
                        f"{providers[cls.name].distribution or '?'}"
                    )
                if problem:
                    failures.append(PluginFailure(name, dist, version, problem))
                    continue
                if "distribution" not in vars(cls):  # not inherited from a parent's plugin
                    cls.distribution = dist
                providers[cls.name] = cls
                names.append(cls.name)
        records.append(PluginRecord(name, dist, version, tuple(names)))

    for cls in extra:
        problem = provider_problem(cls)
        if problem is None and cls.name in providers and providers[cls.name] is not cls:
            problem = f"provider name {cls.name!r} is already provided"
        if problem:
            failures.append(PluginFailure(getattr(cls, "__qualname__", "?"), "(api)", "", problem))
            continue
        providers[cls.name] = cls
    for hook_obj in hooks:
        manager.register(hook_obj)
    return Discovery(providers, records, failures, manager)


def _own_version() -> str:
    from . import __version__

    return __version__
