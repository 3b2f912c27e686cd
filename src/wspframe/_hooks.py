"""The pluggy hook specifications (control plane only, never the data path)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._protocol import ProtocolInfo

__all__ = ["PROJECT", "HookSpecs", "hookimpl", "hookspec"]

PROJECT = "wspframe"
hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorator for a plugin's hook implementations (``@wspframe.hookimpl``).
hookimpl = pluggy.HookimplMarker(PROJECT)


class HookSpecs:
    """Hooks a wspframe plugin may implement."""

    @hookspec
    def wsp_providers(self) -> list[type[Any]]:  # type: ignore[empty-body]
        """Return the provider classes this plugin offers (``ServiceProvider`` or
        ``LayeredProvider`` subclasses)."""

    @hookspec
    def wsp_catalog_changed(self, action: str, entries: list[ProtocolInfo]) -> None:
        """Observe a catalog change: ``action`` is install, deinstall, order, reset or restore."""

    @hookspec
    def wsp_socket_opened(self, socket: Any) -> None:
        """Observe a socket handed to an application (socket, accept, duplicate)."""

    @hookspec
    def wsp_socket_closed(self, socket: Any) -> None:
        """Observe a socket's last descriptor being closed."""

    @hookspec
    def wsp_provider_failed(self, name: str, error: BaseException) -> None:
        """Observe a provider failing to start."""
