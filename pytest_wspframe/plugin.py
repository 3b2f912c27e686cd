"""The pytest plugin's options, configuration, parametrisation and report.

Precedence of the chains: ``--wsp-chain`` (repeatable) > ``WSPFRAME_CHAIN``
(specs separated by ``;``) > the ``wsp_chain`` ini key (one spec per line) >
the default, ``memory``.  A ``@pytest.mark.wsp_chain(...)`` marker overrides
them for a test, class or module.  Every test that uses a wsp fixture runs
once per chain, with the spec as its id.

Providers come from discovery (the ``wspframe.providers`` entry points), plus
the classes named by import path (``module:Class``) with ``--wsp-provider``
(repeatable) and the ``wsp_providers`` ini key (one per line): a layer under
development can be tested, or run through the conformance suite, before it
is packaged.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = [
    "pytest_wspframe.fixtures",
    "pytest_wspframe.completions",
    "pytest_wspframe.stats",
]

ENV_CHAIN = "WSPFRAME_CHAIN"
DEFAULT_CHAIN = "memory"
CONFORMANCE_DIR = Path(__file__).parent / "conformance"

chains_key = pytest.StashKey[list[str]]()
providers_key = pytest.StashKey[list[type[Any]]]()
seed_key = pytest.StashKey[int]()
seed_given_key = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wspframe", "wspframe: Winsock SPI chains")
    group.addoption(
        "--wsp-chain",
        action="append",
        dest="wsp_chain",
        default=None,
        metavar="SPEC",
        help="run wsp fixtures through this chain, e.g. trace,faults[latency=5ms],tcpip "
        "(repeat to run each test once per chain)",
    )
    group.addoption(
        "--wsp-provider",
        action="append",
        dest="wsp_provider",
        default=None,
        metavar="MODULE:CLASS",
        help="add a provider class by import path, e.g. mypkg.layers:Shout (repeatable)",
    )
    group.addoption(
        "--wsp-catalog",
        action="store_true",
        dest="wsp_catalog",
        help="print the catalog the run would use, and exit",
    )
    group.addoption(
        "--wsp-seed",
        dest="wsp_seed",
        type=int,
        default=None,
        metavar="N",
        help="seed for every randomised layer (printed in the header when not given)",
    )
    group.addoption(
        "--wsp-stats",
        action="store_true",
        dest="wsp_stats",
        help="add a summary of per-layer operation and byte counts",
    )
    group.addoption(
        "--wsp-conformance",
        action="store_true",
        dest="wsp_conformance",
        help="run the SPI conformance suite against the chain(s)",
    )
    parser.addini("wsp_chain", type="linelist", help="chain spec(s), one per line")
    parser.addini(
        "wsp_providers",
        type="linelist",
        help="provider classes to add by import path (module:Class), one per line",
    )
    parser.addini(
        "wsp_leak_check",
        type="bool",
        default=True,
        help="fail tests that leave wspframe sockets, handles or I/O behind (default true)",
    )


def configured_chains(config: pytest.Config) -> list[str]:
    """The chains for this run, by precedence (CLI > env > ini > default)."""
    cli = config.getoption("wsp_chain")
    if cli:
        return list(cli)
    env = os.environ.get(ENV_CHAIN)
    if env and env.strip():
        return [part.strip() for part in env.split(";") if part.strip()]
    ini = [line.strip() for line in config.getini("wsp_chain") if line.strip()]
    return ini or [DEFAULT_CHAIN]


def configured_providers(config: pytest.Config) -> list[type[Any]]:
    """The provider classes named by the ``wsp_providers`` ini key and
    ``--wsp-provider``, imported; a pytest.UsageError names a bad one."""
    import importlib

    from wspframe._discovery import provider_problem

    paths = [*config.getini("wsp_providers"), *(config.getoption("wsp_provider") or [])]
    out: list[type[Any]] = []
    for path in (p.strip() for p in paths):
        if not path:
            continue
        module_name, sep, attr = path.partition(":")
        if not sep or not module_name or not attr:
            raise pytest.UsageError(
                f"wsp_providers: a provider must be given as module:Class, got {path!r}"
            )
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:
            raise pytest.UsageError(f"wsp_providers: cannot import {path!r}: {exc!r}") from None
        problem = provider_problem(obj)
        if problem:
            raise pytest.UsageError(f"wsp_providers: {path!r}: {problem}")
        if obj not in out:
            out.append(obj)
    return out


def validate_chains(
    specs: Sequence[str], where: str, providers: Sequence[type[Any]] = ()
) -> list[str]:
    """Canonical specs, or a pytest.UsageError naming the installed providers."""
    import wspframe

    host = wspframe.Host(config=False, providers=providers)
    out = []
    for spec in specs:
        try:
            chain = host.resolve_chain(spec)
            host.install_chain(chain)  # builds the layers: options are checked here
        except wspframe.WSAError as exc:
            message = exc.strerror or str(exc)
            if "installed:" not in message:
                message += f"; installed providers: {', '.join(sorted(host.discovery.providers))}"
            raise pytest.UsageError(f"{where}: invalid chain {spec!r}: {message}") from None
        text = str(chain)
        if text not in out:
            out.append(text)
    return out


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.getoption("wsp_catalog"):
        return None
    import wspframe
    from wspframe._cli import format_catalog

    providers = configured_providers(config)
    chains = validate_chains(configured_chains(config), "--wsp-chain", providers)
    host = wspframe.Host(chains=chains, config=False, providers=providers)
    print(format_catalog(host, host.enum_all()), end="")
    return 0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "wsp_chain(*specs): run this test's wsp fixtures through these chains instead",
    )
    providers = config.stash[providers_key] = configured_providers(config)
    config.stash[chains_key] = validate_chains(
        configured_chains(config), _source(config), providers
    )
    seed = config.getoption("wsp_seed")
    workerinput = getattr(config, "workerinput", None)
    if seed is None and workerinput is not None and "wsp_seed" in workerinput:
        seed = int(workerinput["wsp_seed"])  # the controller's, so workers agree
    config.stash[seed_given_key] = seed is not None
    config.stash[seed_key] = seed if seed is not None else random.randrange(2**32)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistSeed(config), "wsp-xdist-seed")
    if config.getoption("wsp_conformance"):
        # Collect the conformance suite in place of the given paths.
        config.args[:] = [str(CONFORMANCE_DIR)]


def _source(config: pytest.Config) -> str:
    if config.getoption("wsp_chain"):
        return "--wsp-chain"
    if os.environ.get(ENV_CHAIN, "").strip():
        return ENV_CHAIN
    return "wsp_chain (ini)"


class _XdistSeed:
    """Hands the controller's seed to every xdist worker."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["wsp_seed"] = self.config.stash[seed_key]


def pytest_report_header(config: pytest.Config) -> list[str]:
    import wspframe

    chains = config.stash[chains_key]
    seed = config.stash[seed_key]
    given = "" if config.stash[seed_given_key] else f" (replay with --wsp-seed={seed})"
    lines = [f"wspframe {wspframe.__version__}: chains {', '.join(chains)}; seed {seed}{given}"]
    discovery = wspframe.discover(extra=config.stash.get(providers_key, []))
    lines.append(f"wspframe providers: {', '.join(sorted(discovery.providers))}")
    for failure in discovery.failures:
        lines.append(f"wspframe plugin failed to load: {failure}")
    return lines


def chains_for(item_or_metafunc: Any, config: pytest.Config) -> list[str]:
    """The chains a test runs with: its closest wsp_chain marker, else the run's."""
    definition = getattr(item_or_metafunc, "definition", item_or_metafunc)
    marker = definition.get_closest_marker("wsp_chain")
    if marker is None:
        return config.stash[chains_key]
    if not marker.args:
        raise pytest.UsageError(f"{definition.nodeid}: wsp_chain marker needs at least one spec")
    return validate_chains(
        [str(a) for a in marker.args],
        f"{definition.nodeid}: wsp_chain marker",
        config.stash.get(providers_key, []),
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "_wsp_spec" not in metafunc.fixturenames:
        return
    chains = chains_for(metafunc, metafunc.config)
    metafunc.parametrize("_wsp_spec", chains, ids=chains, indirect=True)
