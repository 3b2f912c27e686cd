"""What the trace layer records: one :class:`TraceEvent` per operation, and a
:class:`SocketRecord` per socket (the source of the summary)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

__all__ = ["SocketRecord", "TraceEvent", "format_address", "preview"]


@dataclasses.dataclass(frozen=True, slots=True)
class TraceEvent:
    """One SPI operation as the trace layer saw it.

    ``op`` is the SPI operation (``send``, ``recv_into``, ``accept``, ...;
    ``completion`` for the completion of an overlapped operation, with the
    operation in ``args``), ``handle`` the layer's handle (-1 for operations
    not tied to a socket), ``args`` the arguments in short, ``result`` the
    result in short (None when it failed), ``error`` the WSA error name (None
    when it succeeded), ``nbytes`` the bytes moved (None where no data moves),
    ``duration`` in seconds, ``thread`` the calling thread's name, ``time``
    the wall-clock time it finished, ``seq`` its number in the layer.
    """

    seq: int
    time: float
    op: str
    handle: int
    args: str
    result: str | None
    error: str | None
    nbytes: int | None
    duration: float
    thread: str

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (what ``trace[jsonl=PATH]`` writes)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def __str__(self) -> str:
        outcome = self.error if self.error is not None else self.result
        return f"#{self.seq} {self.op}({self.args}) handle={self.handle} -> {outcome}"


def format_address(address: Any) -> str:
    """``127.0.0.1:80``, ``[::1]:80``, or ``-`` for no address."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        if isinstance(host, str) and ":" in host:
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    return "-" if address is None else str(address)


def preview(data: Any, limit: int = 16) -> str:
    """``5 bytes b'hello'``: a byte count and the first ``limit`` bytes."""
    try:
        view = memoryview(data).cast("B")
    except TypeError:
        return repr(data)
    head = bytes(view[:limit])
    more = "..." if len(view) > limit else ""
    return f"{len(view)} bytes {head!r}{more}"


@dataclasses.dataclass(slots=True)
class SocketRecord:
    """What the trace layer knows of one socket: a row of the summary."""

    handle: int
    kind: str
    entry: str
    local: Any = None
    peer: Any = None
    sent: int = 0
    received: int = 0
    operations: int = 0
    errors: int = 0
    closed: bool = False
    error_names: dict[str, int] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "handle": self.handle,
            "kind": self.kind,
            "entry": self.entry,
            "local": format_address(self.local),
            "peer": format_address(self.peer),
            "sent": self.sent,
            "received": self.received,
            "operations": self.operations,
            "errors": self.errors,
            "error_names": dict(self.error_names),
            "closed": self.closed,
        }
