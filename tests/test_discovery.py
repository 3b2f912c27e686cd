"""Discovery of out-of-tree provider plugins installed with pip.

The distributions in ``tests/plugin_fixtures`` are built with hatchling and
installed once per session into a temporary ``--target`` folder; every check
then runs ``python -m wspframe`` in a fresh process with that folder on
``PYTHONPATH`` and a working directory without a ``pyproject.toml``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import wspframe
from wspframe import FIRST_CATALOG_ID, XP1, provider_uuid

FIXTURES = Path(__file__).parent / "plugin_fixtures"
DISTRIBUTIONS = ("wspframe-ext", "wspframe-broken", "wspframe-odd", "wspframe-sub")
#: Distributions whose plugins these tests know about (others may be installed too).
KNOWN = {"wspframe", *DISTRIBUTIONS}
BUILTIN_PROVIDERS = ("tcpip", "memory", "passthrough", "observe")
EXT_PROVIDERS = ("extbase", "extlayer", "oddlayer", "sublayer")


# -- building and running -------------------------------------------------------------
@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture distributions, pip-installed into a ``--target`` folder."""
    assert importlib.util.find_spec("hatchling") is not None, (
        "hatchling must be installed to build the fixture plugins without build isolation"
    )
    root = tmp_path_factory.mktemp("plugins")
    sources = root / "src"
    site = root / "site"
    for name in DISTRIBUTIONS:
        shutil.copytree(FIXTURES / name, sources / name)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-input",
            "--disable-pip-version-check",
            "--target",
            str(site),
            *(str(sources / name) for name in DISTRIBUTIONS),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    assert proc.returncode == 0, f"pip install failed:\n{proc.stdout}\n{proc.stderr}"
    for dist in ("wspframe_ext-1.2.3", "wspframe_broken-0.0.1", "wspframe_odd-0.3.0"):
        assert (site / f"{dist}.dist-info").is_dir(), sorted(p.name for p in site.iterdir())
    return site


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty working directory: no pyproject.toml at or above it."""
    path = tmp_path_factory.mktemp("cwd")
    assert wspframe._config.find_pyproject(path) is None
    return path


def run_wspframe(
    site: Path | None,
    cwd: Path,
    *args: str,
    plugins: str | None = None,
    hash_seed: str = "0",
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WSPFRAME_PLUGINS")}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    if plugins is not None:
        env["WSPFRAME_PLUGINS"] = plugins
    env["PYTHONHASHSEED"] = hash_seed
    return subprocess.run(
        [sys.executable, "-m", "wspframe", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def run_json(site: Path | None, cwd: Path, *args: str, **kw: Any) -> Any:
    proc = run_wspframe(site, cwd, *args, **kw)
    assert proc.returncode == 0, f"wspframe {' '.join(args)} failed:\n{proc.stderr}"
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def providers_all(plugin_site: Path, workdir: Path) -> dict[str, Any]:
    """``wspframe providers --json`` with every plugin allowed."""
    data: dict[str, Any] = run_json(plugin_site, workdir, "providers", "--json")
    return data


@pytest.fixture(scope="module")
def catalog_all(plugin_site: Path, workdir: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = run_json(plugin_site, workdir, "catalog", "--json")
    return data


@pytest.fixture(scope="module")
def catalog_chain(plugin_site: Path, workdir: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = run_json(
        plugin_site, workdir, "catalog", "--json", "--chain", "extlayer,tcpip"
    )
    return data


def plugin(data: dict[str, Any], name: str) -> dict[str, Any]:
    found = [p for p in data["plugins"] if p["name"] == name]
    assert len(found) == 1, data["plugins"]
    return found[0]


def failure(data: dict[str, Any], name: str) -> dict[str, Any]:
    found = [f for f in data["failures"] if f["name"] == name]
    assert len(found) == 1, data["failures"]
    return found[0]


def _wspframe_version() -> str:
    from importlib.metadata import version

    return version("wspframe")


# -- what `wspframe providers --json` reports -------------------------------------------
def test_ext_plugins_load_with_distribution_and_version(providers_all: dict[str, Any]) -> None:
    assert plugin(providers_all, "extlayers") == {
        "name": "extlayers",
        "distribution": "wspframe-ext",
        "version": "1.2.3",
        "providers": ["extlayer"],
    }
    assert plugin(providers_all, "extbases") == {
        "name": "extbases",
        "distribution": "wspframe-ext",
        "version": "1.2.3",
        "providers": ["extbase"],
    }
    providers = providers_all["providers"]
    assert providers["extlayer"] == {
        "kind": "layer",
        "distribution": "wspframe-ext",
        "description": "fixture layer from wspframe-ext",
    }
    assert providers["extbase"] == {
        "kind": "base",
        "distribution": "wspframe-ext",
        "description": "fixture base provider from wspframe-ext",
    }


def test_builtins_load_beside_the_plugins(providers_all: dict[str, Any]) -> None:
    builtin = plugin(providers_all, "builtin")
    assert builtin["distribution"] == "wspframe"
    assert builtin["version"] == _wspframe_version() == wspframe.__version__
    assert builtin["providers"] == list(BUILTIN_PROVIDERS)
    for name in BUILTIN_PROVIDERS:
        assert providers_all["providers"][name]["distribution"] == "wspframe"
    kinds = {
        name: p["kind"]
        for name, p in providers_all["providers"].items()
        if p["distribution"] in KNOWN
    }
    assert kinds == {
        "tcpip": "base",
        "memory": "base",
        "passthrough": "layer",
        "observe": "layer",
        "extbase": "base",
        "extlayer": "layer",
        "oddlayer": "layer",
        "sublayer": "layer",
    }


def test_plugin_that_fails_to_import_is_reported(providers_all: dict[str, Any]) -> None:
    broken = failure(providers_all, "broken")
    assert broken["distribution"] == "wspframe-broken"
    assert broken["version"] == "0.0.1"
    assert "RuntimeError" in broken["error"]
    assert "wspframe_broken exploded on import" in broken["error"]
    assert "broken" not in [p["name"] for p in providers_all["plugins"]]


def test_non_provider_object_is_reported_and_the_rest_of_its_plugin_loads(
    providers_all: dict[str, Any],
) -> None:
    odd = failure(providers_all, "odd")
    assert odd["distribution"] == "wspframe-odd"
    assert odd["version"] == "0.3.0"
    assert "NotAProvider" in odd["error"]
    assert "not a ServiceProvider subclass" in odd["error"]
    assert plugin(providers_all, "odd")["providers"] == ["oddlayer"]
    assert providers_all["providers"]["oddlayer"]["distribution"] == "wspframe-odd"
    assert "notaprovider" not in providers_all["providers"]


def test_only_the_two_bad_plugins_fail(providers_all: dict[str, Any]) -> None:
    failed = [f["name"] for f in providers_all["failures"] if f["distribution"] in KNOWN]
    assert sorted(failed) == ["broken", "odd"]


def test_subclassed_layer_is_credited_to_its_own_distribution(
    providers_all: dict[str, Any],
) -> None:
    # SubLayer (wspframe-sub) subclasses ExtLayer (wspframe-ext), which loads first.
    assert plugin(providers_all, "sub")["distribution"] == "wspframe-sub"
    assert providers_all["providers"]["sublayer"]["distribution"] == "wspframe-sub"
    assert providers_all["providers"]["extlayer"]["distribution"] == "wspframe-ext"


def test_plugin_order_is_builtin_first_then_by_entry_point_name(
    providers_all: dict[str, Any],
) -> None:
    names = [p["name"] for p in providers_all["plugins"] if p["distribution"] in KNOWN]
    assert names == ["builtin", "extbases", "extlayers", "odd", "sub"]
    assert names[0] == providers_all["plugins"][0]["name"]
    known = set(BUILTIN_PROVIDERS) | set(EXT_PROVIDERS)
    order = [name for name in providers_all["providers"] if name in known]
    assert order == [*BUILTIN_PROVIDERS, *EXT_PROVIDERS]


def test_providers_text_output_names_plugins_and_failures(plugin_site: Path, workdir: Path) -> None:
    proc = run_wspframe(plugin_site, workdir, "providers")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "  extlayers      wspframe-ext 1.2.3: extlayer" in lines
    assert "  extbases       wspframe-ext 1.2.3: extbase" in lines
    assert "  extlayer       layer  wspframe-ext  fixture layer from wspframe-ext" in lines
    assert "  extbase        base   wspframe-ext  fixture base provider from wspframe-ext" in lines
    failures = lines[lines.index("Load failures:") + 1 :]
    broken = [line for line in failures if line.startswith("  broken ")]
    odd = [line for line in failures if line.startswith("  odd ")]
    assert broken == [
        "  broken (wspframe-broken 0.0.1): import failed: "
        "RuntimeError('wspframe_broken exploded on import')"
    ]
    assert len(odd) == 1
    assert odd[0].startswith("  odd (wspframe-odd 0.3.0): <class 'wspframe_odd.NotAProvider'>")


# -- what the catalog holds ------------------------------------------------------------
def test_catalog_holds_the_ext_base_entry_after_the_builtin_bases(
    catalog_all: list[dict[str, Any]],
) -> None:
    names = [e["name"] for e in catalog_all]
    ext = [e for e in catalog_all if e["name"].startswith("extbase ")]
    assert len(ext) == 1, names
    entry = ext[0]
    assert entry["name"] == "extbase [EXT/DGRAM]"
    assert entry["entry_type"] == "Base Service Provider"
    assert entry["provider_id"] == str(provider_uuid("extbase"))
    assert entry["chain"] == [entry["catalog_entry_id"]]
    assert entry["service_flags"] == int(XP1.CONNECTIONLESS | XP1.MESSAGE_ORIENTED)
    assert entry["message_size"] == 1200
    builtin_ids = [
        e["catalog_entry_id"] for e in catalog_all if e["name"].startswith(("tcpip ", "memory "))
    ]
    assert builtin_ids, names
    assert min(builtin_ids) == FIRST_CATALOG_ID
    assert entry["catalog_entry_id"] == max(builtin_ids) + 1
    assert names[-1] == "extbase [EXT/DGRAM]"
    # Layers get catalog entries only when a chain uses them.
    assert not any(e["name"].startswith(("extlayer", "oddlayer", "sublayer")) for e in catalog_all)


def test_catalog_with_an_ext_chain_puts_the_chain_entries_first(
    catalog_all: list[dict[str, Any]], catalog_chain: list[dict[str, Any]]
) -> None:
    tcpip = [e for e in catalog_all if e["name"].startswith("tcpip ")]
    assert len(tcpip) == 4
    layer = [e for e in catalog_chain if e["name"] == "extlayer"]
    assert len(layer) == 1
    layer_id = layer[0]["catalog_entry_id"]
    assert layer[0]["entry_type"] == "Layered Service Provider"
    assert layer[0]["chain"] == []
    assert layer_id > max(e["catalog_entry_id"] for e in catalog_all)
    chains = catalog_chain[: len(tcpip)]
    for chain, base in zip(chains, tcpip, strict=True):
        assert chain["entry_type"] == "Layered Chain Entry"
        assert chain["name"] == f"extlayer over [{base['name']}]"
        assert chain["chain"] == [layer_id, base["catalog_entry_id"]]
        assert chain["chain_len"] == 2
        assert chain["service_flags"] == base["service_flags"]
        assert chain["address_family"] == base["address_family"]
        assert chain["socket_type"] == base["socket_type"]
        assert chain["protocol"] == base["protocol"]
        assert chain["provider_id"] == str(provider_uuid("chain:extlayer,tcpip"))
    # The base entries keep their ids.
    rest = {e["catalog_entry_id"]: e for e in catalog_chain[len(tcpip) :]}
    for entry in catalog_all:
        assert rest[entry["catalog_entry_id"]] == entry


def test_catalog_text_names_the_ext_provider_path(plugin_site: Path, workdir: Path) -> None:
    proc = run_wspframe(plugin_site, workdir, "catalog", "--chain", "extlayer,tcpip")
    assert proc.returncode == 0, proc.stderr
    blocks = proc.stdout.strip().split("\n\n")
    ext = [b for b in blocks if "extbase [EXT/DGRAM]" in b]
    assert len(ext) == 1
    assert "Provider Path:                      wspframe_ext.bases:ExtBase" in ext[0]
    chain = [b for b in blocks if "extlayer over [tcpip [TCP/IP]]" in b]
    assert len(chain) == 1
    assert "Entry Type:                         Layered Chain Entry" in chain[0]
    assert "Protocol Chain Length:              2" in chain[0]


def test_catalog_ids_are_the_same_in_separate_processes(
    plugin_site: Path, workdir: Path, catalog_chain: list[dict[str, Any]]
) -> None:
    again = run_json(
        plugin_site, workdir, "catalog", "--json", "--chain", "extlayer,tcpip", hash_seed="4242"
    )
    assert again == catalog_chain
    assert [e["catalog_entry_id"] for e in again] == [e["catalog_entry_id"] for e in catalog_chain]
    first = run_json(plugin_site, workdir, "providers", "--json", hash_seed="1")
    second = run_json(plugin_site, workdir, "providers", "--json", hash_seed="977")
    assert first == second


# -- WSPFRAME_PLUGINS --------------------------------------------------------------------
def test_empty_plugins_env_loads_builtins_only(plugin_site: Path, workdir: Path) -> None:
    data = run_json(plugin_site, workdir, "providers", "--json", plugins="")
    assert [p["name"] for p in data["plugins"]] == ["builtin"]
    assert list(data["providers"]) == list(BUILTIN_PROVIDERS)
    assert data["failures"] == []
    catalog = run_json(plugin_site, workdir, "catalog", "--json", plugins="")
    assert not any(e["name"].startswith("extbase") for e in catalog)


def test_empty_plugins_env_makes_ext_chain_an_error(plugin_site: Path, workdir: Path) -> None:
    proc = run_wspframe(
        plugin_site, workdir, "catalog", "--json", "--chain", "extlayer,tcpip", plugins=""
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "'extlayer'" in lines[0]
    for name in BUILTIN_PROVIDERS:
        assert name in lines[0]


@pytest.mark.parametrize(
    ("allowed", "plugins", "providers"),
    [
        ("extlayers", ["builtin", "extlayers"], [*BUILTIN_PROVIDERS, "extlayer"]),
        (
            "wspframe-ext",
            ["builtin", "extbases", "extlayers"],
            [*BUILTIN_PROVIDERS, "extbase", "extlayer"],
        ),
        (
            " odd , extbases ",
            ["builtin", "extbases", "odd"],
            [*BUILTIN_PROVIDERS, "extbase", "oddlayer"],
        ),
    ],
)
def test_plugins_env_naming_a_plugin_loads_it(
    plugin_site: Path, workdir: Path, allowed: str, plugins: list[str], providers: list[str]
) -> None:
    data = run_json(plugin_site, workdir, "providers", "--json", plugins=allowed)
    assert [p["name"] for p in data["plugins"]] == plugins
    assert list(data["providers"]) == providers
    assert "broken" not in [f["name"] for f in data["failures"]]


def test_plugins_env_naming_a_plugin_lets_its_chain_install(
    plugin_site: Path, workdir: Path
) -> None:
    catalog = run_json(
        plugin_site, workdir, "catalog", "--json", "--chain", "extlayer,tcpip", plugins="extlayers"
    )
    assert catalog[0]["name"] == "extlayer over [tcpip [TCP/IP]]"


def test_without_the_plugin_folder_nothing_external_loads(workdir: Path) -> None:
    data = run_json(None, workdir, "providers", "--json")
    assert not set(EXT_PROVIDERS) & set(data["providers"])
    assert not {"broken", "odd"} & {f["name"] for f in data["failures"]}


# -- invalid providers, in-process ---------------------------------------------------------
def _bad_base(protocols: Any) -> type[wspframe.ServiceProvider]:
    return type("BadBase", (wspframe.ServiceProvider,), {"name": "badbase", "protocols": protocols})


CHAIN_TEMPLATE = wspframe.ProtocolInfo(
    "badbase [X]", wspframe.AF_INET, wspframe.SOCK_STREAM, wspframe.IPPROTO_TCP, chain=(7, 8)
)


@pytest.mark.parametrize(
    "protocols",
    [5, None, (), [1], "x", (CHAIN_TEMPLATE,)],
    ids=["int", "none", "empty", "not-protocol-info", "str", "chain-template"],
)
def test_invalid_base_provider_is_a_failure_not_an_exception(protocols: Any) -> None:
    bad = _bad_base(protocols)
    found = wspframe.discover(plugins=[], extra=[bad])
    assert "badbase" not in found.providers
    assert [f.name for f in found.failures] == ["BadBase"]
    assert "badbase" in found.failures[0].error
    # A host still builds, with the built-ins' catalog intact.
    host = wspframe.Host(config=False, plugins=[], providers=[bad])
    assert "badbase" not in host.discovery.providers
    plain = wspframe.Host(config=False, plugins=[])
    assert host.enum_all() == plain.enum_all()
