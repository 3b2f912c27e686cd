"""The wsp fixtures, and the leak check at their teardown.

Every fixture here depends on ``_wsp_spec``, which ``pytest_generate_tests``
parametrises with the run's chains; a test using any of them runs once per
chain.  All are function-scoped: each test gets a fresh host, so tests stay
independent (and safe under pytest-xdist, which runs them anywhere).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pluggy
import pytest

from .plugin import CONFORMANCE_DIR, providers_key, seed_key

# Frames in these folders are the machinery, not the test that made a socket
# (the conformance suite, though inside the package, is a test).
_USER = str(CONFORMANCE_DIR)


def _internal() -> tuple[str, ...]:
    # Computed when first needed: importing wspframe is not the plugin's load cost.
    import wspframe

    return (
        str(Path(__file__).parent),
        str(Path(wspframe.__file__).parent),
        str(Path(pytest.__file__).parent.parent),
    )


def _where_created() -> str:
    internal = _internal()
    for frame in reversed(traceback.extract_stack()[:-1]):
        name = frame.filename
        if name.startswith(_USER) or (not name.startswith(internal) and "pluggy" not in name):
            return f"{frame.filename}:{frame.lineno} in {frame.name}"
    return "(unknown)"


_hookimpl = pluggy.HookimplMarker("wspframe")  # the same marker as wspframe.hookimpl


class LeakTracker:
    """A host observer remembering where each socket was opened."""

    def __init__(self) -> None:
        self.origins: dict[int, str] = {}

    @_hookimpl
    def wsp_socket_opened(self, socket: Any) -> None:
        self.origins[id(socket)] = _where_created()

    @_hookimpl
    def wsp_socket_closed(self, socket: Any) -> None:
        self.origins.pop(id(socket), None)

    def report(self, host: Any) -> list[str]:
        problems = []
        socket_handles = set()
        for sock in host.sockets():
            where = self.origins.get(id(sock), "(unknown)")
            problems.append(f"socket left open: {sock!r}, created at {where}")
            core = sock._core
            socket_handles.update(getattr(c, "handle", -1) for c in core.top.contexts())
            socket_handles.add(sock.fileno())
            for ov in list(core.inflight):
                if ov.pending:
                    problems.append(f"overlapped operation still pending: {ov!r} on {sock!r}")
        for handle in host.open_handles():
            if handle not in socket_handles:
                problems.append(f"handle {handle} still registered but no socket uses it")
        return problems


class ChainView:
    """The chain a test runs with: ``spec``, ``entries``, and each provider instance."""

    def __init__(self, host: Any, spec: str) -> None:
        import wspframe

        self.host = host
        self.spec = spec
        self.parsed = wspframe.parse_chain(spec)
        self.entries: list[Any] = host.entries_for(spec)

    def layer(self, name: str) -> Any:
        """The started instance of the layer called ``name`` (``"trace"``) in this chain."""
        for element in self.parsed.layers:
            if element.name == name or str(element) == name:
                return self.host.provider(str(element))
        raise LookupError(
            f"no layer {name!r} in chain {self.spec!r}; layers: "
            f"{', '.join(e.name for e in self.parsed.layers) or '(none)'}"
        )

    @property
    def layers(self) -> list[Any]:
        """The layer instances, top first."""
        return [self.host.provider(str(e)) for e in self.parsed.layers]

    @property
    def base(self) -> Any:
        """The base provider instance."""
        return self.host.provider(self.parsed.base.name)

    def entry(self, af: int | None = None, type: int | None = None) -> Any:
        """The chain's catalog entry for ``af``/``type`` (default AF_INET, SOCK_STREAM)."""
        import wspframe

        af = wspframe.AF_INET if af is None else af
        type = wspframe.SOCK_STREAM if type is None else type
        for e in self.entries:
            if e.address_family == af and e.socket_type == type:
                return e
        raise LookupError(f"chain {self.spec!r} has no entry for af={af}, type={type}")

    def __repr__(self) -> str:
        return f"<wsp_chain {self.spec!r}>"


@pytest.fixture
def _wsp_spec(request: pytest.FixtureRequest) -> str:
    spec = getattr(request, "param", None)
    if spec is None:  # requested dynamically (getfixturevalue): the run's first chain
        from .plugin import chains_for

        spec = chains_for(request.node, request.config)[0]
    return str(spec)


def new_host(config: pytest.Config, spec: str, hooks: Sequence[object] = ()) -> Any:
    """A :class:`wspframe.Host` (not started) as ``wsp_host`` makes it: ``spec``
    installed first, with the run's extra providers (``--wsp-provider``)."""
    import wspframe

    return wspframe.Host(chains=[spec], hooks=hooks, providers=config.stash.get(providers_key, []))


@pytest.fixture
def wsp_host(request: pytest.FixtureRequest, _wsp_spec: str) -> Iterator[Any]:
    """A started :class:`wspframe.Host` with the test's chain installed first."""
    tracker = LeakTracker()
    host = new_host(request.config, _wsp_spec, hooks=[tracker])
    host.startup()
    seed = request.config.stash[seed_key]
    view = ChainView(host, _wsp_spec)
    for layer in view.layers:
        reseed = getattr(layer, "reseed", None)
        if callable(reseed):
            reseed(seed)
    request.node.stash[_view_key] = view
    try:
        yield host
    finally:
        from .stats import record_stats

        problems = tracker.report(host) if request.config.getini("wsp_leak_check") else []
        record_stats(request.config, view)
        host.cleanup()
    if problems:
        pytest.fail("wspframe leak check:\n  " + "\n  ".join(problems), pytrace=False)


_view_key = pytest.StashKey[ChainView]()


@pytest.fixture
def wsp_chain(request: pytest.FixtureRequest, wsp_host: Any) -> ChainView:
    """The chain in use: ``spec``, ``entries``, ``layer(name)``, ``layers``, ``base``."""
    return request.node.stash[_view_key]


@pytest.fixture
def wsp_socket(wsp_host: Any, wsp_chain: ChainView) -> Iterator[Callable[..., Any]]:
    """A factory of sockets through the chain: ``wsp_socket(af=AF_INET,
    type=SOCK_STREAM, flags=0)``.  Every socket it made is closed at teardown."""
    made: list[Any] = []

    def factory(af: int | None = None, type: int | None = None, flags: int = 0) -> Any:
        sock = wsp_host.socket(protocol_info=wsp_chain.entry(af, type), flags=flags)
        made.append(sock)
        return sock

    yield factory
    for sock in made:
        sock.close()


@pytest.fixture
def wsp_stream_pair(wsp_socket: Callable[..., Any]) -> Iterator[tuple[Any, Any]]:
    """``(client, server)``: a connected stream pair through the chain, on
    127.0.0.1, made with WSA_FLAG_OVERLAPPED (so both kinds of I/O work)."""
    import wspframe

    listener = wsp_socket(flags=wspframe.WSA_FLAG_OVERLAPPED)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = wsp_socket(flags=wspframe.WSA_FLAG_OVERLAPPED)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    yield client, server
    server.close()


@pytest.fixture
def wsp_datagram_pair(wsp_socket: Callable[..., Any]) -> tuple[Any, Any]:
    """``(a, b)``: two datagram sockets through the chain, bound on 127.0.0.1 and
    connected to each other, made with WSA_FLAG_OVERLAPPED."""
    import wspframe

    a = wsp_socket(type=wspframe.SOCK_DGRAM, flags=wspframe.WSA_FLAG_OVERLAPPED)
    b = wsp_socket(type=wspframe.SOCK_DGRAM, flags=wspframe.WSA_FLAG_OVERLAPPED)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    a.connect(b.getsockname())
    b.connect(a.getsockname())
    return a, b


@pytest.fixture
def wsp_completion_port(wsp_host: Any) -> Iterator[Any]:
    """A :class:`wspframe.CompletionPort`, closed at teardown."""
    import wspframe

    port = wspframe.CompletionPort()
    yield port
    port.close()
