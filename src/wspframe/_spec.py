"""Chain specs: ``name[opt=value,...],name,...,base``, top to bottom.

Used by the CLI, the pytest option, ``[tool.wspframe]`` and the API.  Parsing
checks the syntax only; :meth:`wspframe.Host.resolve_chain` checks the names
against the installed providers.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final

from ._constants import MAX_PROTOCOL_CHAIN
from ._errors import WSAErrorCode, error_class

__all__ = ["ChainSpec", "ChainSpecError", "LayerSpec", "parse_chain"]

_NAME: Final = re.compile(r"[a-z][a-z0-9_]*(?:-[a-z0-9_]+)*")
_KEY: Final = re.compile(r"[a-z_][a-z0-9_]*")
_FORM: Final = "name[option=value,...],...,base (e.g. trace,faults[latency=20ms],tcpip)"


class ChainSpecError(error_class(WSAErrorCode.WSAEINVAL), ValueError):  # type: ignore[misc]
    """A chain spec that cannot be used; the message names the problem.

    A :class:`~wspframe.WSAError` with code WSAEINVAL, and a ``ValueError``.
    """

    def __new__(cls, message: str) -> ChainSpecError:
        return super().__new__(cls, int(WSAErrorCode.WSAEINVAL), message)  # type: ignore[no-any-return, unused-ignore]

    def __init__(self, message: str) -> None:
        pass


@dataclasses.dataclass(frozen=True, slots=True)
class LayerSpec:
    """One element of a chain spec: a provider name and its options."""

    name: str
    options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ChainSpecError(
                f"provider name must be lower-case letters, digits, '_' or '-', got {self.name!r}"
            )
        keys = [k for k, _ in self.options]
        for key, value in self.options:
            if not _KEY.fullmatch(key):
                raise ChainSpecError(
                    f"option name must be an identifier, got {key!r} in {self.name!r}"
                )
            if not value or any(c in value for c in ",[]"):
                raise ChainSpecError(
                    f"option {key!r} of {self.name!r} needs a value without ',', '[' or ']', "
                    f"got {value!r}"
                )
        if len(set(keys)) != len(keys):
            raise ChainSpecError(f"option given twice in {self.name!r}: {keys}")
        object.__setattr__(self, "options", tuple(sorted(self.options)))

    @property
    def option_dict(self) -> dict[str, str]:
        return dict(self.options)

    def __str__(self) -> str:
        if not self.options:
            return self.name
        return f"{self.name}[{','.join(f'{k}={v}' for k, v in self.options)}]"


@dataclasses.dataclass(frozen=True, slots=True)
class ChainSpec:
    """A parsed chain spec: ``layers`` top first, then the ``base``."""

    layers: tuple[LayerSpec, ...]
    base: LayerSpec

    def __post_init__(self) -> None:
        if len(self.layers) + 1 > MAX_PROTOCOL_CHAIN:
            raise ChainSpecError(
                f"a chain holds at most {MAX_PROTOCOL_CHAIN} providers (6 layers and a base), "
                f"got {len(self.layers) + 1}"
            )
        if self.base.options:
            raise ChainSpecError(f"the base provider {self.base.name!r} takes no options")
        seen = set()
        for layer in self.layers:
            if str(layer) in seen:
                raise ChainSpecError(f"layer {str(layer)!r} appears twice in the chain")
            seen.add(str(layer))

    @property
    def elements(self) -> tuple[LayerSpec, ...]:
        return (*self.layers, self.base)

    def __str__(self) -> str:
        return ",".join(str(e) for e in self.elements)

    @classmethod
    def parse(cls, text: str) -> ChainSpec:
        return parse_chain(text)


def _syntax_error(message: str) -> ChainSpecError:
    return ChainSpecError(f"{message}; form: {_FORM}")


def parse_chain(text: object) -> ChainSpec:
    """Parse a chain spec; raise :class:`ChainSpecError` naming the problem."""
    if isinstance(text, ChainSpec):
        return text
    if not isinstance(text, str):
        raise ChainSpecError(f"a chain spec must be a str of the form {_FORM}, got {text!r}")
    spec = text.strip()
    if not spec:
        raise ChainSpecError(f"empty chain spec; expected {_FORM}")
    elements: list[LayerSpec] = []
    i = 0
    n = len(spec)
    while True:
        while i < n and spec[i] == " ":
            i += 1
        match = _NAME.match(spec, i)
        if not match:
            raise ChainSpecError(
                f"expected a provider name at position {i} of {text!r}; form: {_FORM}"
            )
        name = match.group()
        i = match.end()
        options: list[tuple[str, str]] = []
        if i < n and spec[i] == "[":
            close = spec.find("]", i)
            if close < 0:
                raise _syntax_error(f"unclosed '[' after {name!r} in {text!r}")
            body = spec[i + 1 : close]
            if "[" in body:
                raise _syntax_error(f"nested '[' in the options of {name!r} in {text!r}")
            for item in body.split(","):
                item = item.strip()
                if not item:
                    raise _syntax_error(f"empty option in the options of {name!r} in {text!r}")
                key, eq, value = item.partition("=")
                if not eq:
                    raise _syntax_error(f"option {item!r} of {name!r} must be option=value")
                options.append((key.strip(), value.strip()))
            i = close + 1
        try:
            elements.append(LayerSpec(name, tuple(options)))
        except ChainSpecError as exc:
            raise _syntax_error(exc.strerror or "") from None
        while i < n and spec[i] == " ":
            i += 1
        if i == n:
            break
        if spec[i] != ",":
            raise ChainSpecError(
                f"unexpected {spec[i]!r} at position {i} of {text!r}; form: {_FORM}"
            )
        i += 1
    return ChainSpec(tuple(elements[:-1]), elements[-1])
