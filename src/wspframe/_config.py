"""``[tool.wspframe]``: the declared order, read from the project's ``pyproject.toml``.

::

    [tool.wspframe]
    chains = ["trace,faults[latency=5ms],tcpip"]   # installed first, in this order
    order = ["tcpip", "memory"]                    # base providers next (optional)
    plugins = ["trace", "faults"]                  # restrict plugins (optional)
    max_sockets = 1024                             # host socket limit (optional)

The API (``Host(chains=..., order=...)``), the CLI and ``--wsp-chain`` override it.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from ._errors import WSAErrorCode, error_class
from ._spec import ChainSpec, ChainSpecError, parse_chain

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = ["Config", "ConfigError", "find_pyproject", "load_config", "parse_config"]

_KEYS: Final = ("chains", "order", "plugins", "max_sockets")


class ConfigError(error_class(WSAErrorCode.WSAEINVAL), ValueError):  # type: ignore[misc]
    """A ``[tool.wspframe]`` table that cannot be used; the message names the key."""

    def __new__(cls, message: str) -> ConfigError:
        return super().__new__(cls, int(WSAErrorCode.WSAEINVAL), message)  # type: ignore[no-any-return, unused-ignore]

    def __init__(self, message: str) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class Config:
    """The validated ``[tool.wspframe]`` table."""

    chains: tuple[ChainSpec, ...] = ()
    order: tuple[str, ...] = ()
    plugins: tuple[str, ...] | None = None
    max_sockets: int | None = None
    source: Path | None = None


def _str_list(key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"[tool.wspframe] {key} must be a list of strings, got {value!r}")
    return value


def parse_config(table: Mapping[str, Any], source: Path | None = None) -> Config:
    """Validate a ``[tool.wspframe]`` table."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"[tool.wspframe] must be a table, got {table!r}")
    unknown = sorted(set(table) - set(_KEYS), key=repr)
    if unknown:
        raise ConfigError(
            f"[tool.wspframe] has unknown key(s) {unknown}; known: {', '.join(_KEYS)}"
        )
    chains = []
    for text in _str_list("chains", table.get("chains", [])):
        try:
            chains.append(parse_chain(text))
        except ChainSpecError as exc:
            raise ConfigError(f"[tool.wspframe] chains: {exc.strerror}") from None
    order = []
    for text in _str_list("order", table.get("order", [])):
        try:
            order.append(str(parse_chain(text)))
        except ChainSpecError as exc:
            raise ConfigError(f"[tool.wspframe] order: {exc.strerror}") from None
    plugins = None
    if "plugins" in table:
        plugins = tuple(_str_list("plugins", table["plugins"]))
    max_sockets = table.get("max_sockets")
    if max_sockets is not None and (
        not isinstance(max_sockets, int) or isinstance(max_sockets, bool) or max_sockets < 1
    ):
        raise ConfigError(f"[tool.wspframe] max_sockets must be an int >= 1, got {max_sockets!r}")
    return Config(tuple(chains), tuple(order), plugins, max_sockets, source)


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start`` (default: the cwd)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_config(path: Path | None = None) -> Config:
    """Read ``[tool.wspframe]`` from ``path`` or the nearest ``pyproject.toml``."""
    path = path or find_pyproject()
    if path is None:
        return Config()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"cannot read {path}: 'tool' must be a table, got {tool!r}")
    table = tool.get("wspframe", {})
    return parse_config(table, path)
