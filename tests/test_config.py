"""``[tool.wspframe]``: parse_config, load_config, and a Host built from them.

Property: for any dict or JSON-like value, ``parse_config`` returns a
:class:`~wspframe.Config` or raises :class:`~wspframe.ConfigError` naming the
key at fault; never anything else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import wspframe
from wspframe import Config, ConfigError, load_config, parse_chain
from wspframe._config import find_pyproject, parse_config

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
KEYS = ("chains", "order", "plugins", "max_sockets")


def check_error(exc: ConfigError) -> str:
    assert isinstance(exc, wspframe.WSAError)
    assert isinstance(exc, ValueError)
    assert exc.wsa_code == wspframe.WSAEINVAL == 10022
    message = exc.strerror
    assert isinstance(message, str)
    assert message.startswith(("[tool", "cannot read ")), message
    return message


def expected_config(table: Mapping[Any, Any]) -> Config:
    """What a valid table must give, computed independently of parse_config."""

    def strings(value: Any) -> list[str]:
        return [value] if isinstance(value, str) else list(value)

    plugins = tuple(strings(table["plugins"])) if "plugins" in table else None
    return Config(
        chains=tuple(parse_chain(t) for t in strings(table.get("chains", []))),
        order=tuple(str(parse_chain(t)) for t in strings(table.get("order", []))),
        plugins=plugins,
        max_sockets=table.get("max_sockets"),
    )


def check_parse(value: Any) -> Config | None:
    try:
        config = parse_config(value)
    except ConfigError as exc:
        message = check_error(exc)
        if not isinstance(value, Mapping):
            assert "must be a table" in message
            return None
        unknown = [k for k in value if k not in KEYS]
        if unknown:
            for key in unknown:
                assert repr(key) in message
        else:
            assert any(message.startswith(f"[tool.wspframe] {key}") for key in value), message
        return None
    assert isinstance(value, Mapping)
    assert isinstance(config, Config)
    assert config == expected_config(value)
    assert config.source is None
    return config


# -- strategies ------------------------------------------------------------------------
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=8),
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
SPEC_TEXT = st.one_of(
    st.sampled_from(
        [
            "tcpip",
            "memory",
            "observe,tcpip",
            " passthrough[tag=1] , memory ",
            "trace,faults[latency=5ms],tcpip",
            "trace[",
            "",
            "Tcpip",
            "a,a,b",
        ]
    ),
    st.text(max_size=10),
)
STR_LISTS = st.one_of(SPEC_TEXT, st.lists(SPEC_TEXT, max_size=4), JSON)
VALUES_BY_KEY = {
    "chains": STR_LISTS,
    "order": STR_LISTS,
    "plugins": st.one_of(st.lists(st.text(max_size=6), max_size=3), st.text(max_size=6), JSON),
    "max_sockets": st.one_of(
        st.integers(-3, 10**6), st.booleans(), st.none(), st.floats(), st.text(max_size=3), JSON
    ),
}


@st.composite
def tables(draw: st.DrawFn) -> dict[str, Any]:
    """Tables with the known keys (mostly well typed) and, sometimes, others."""
    table: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(KEYS), unique=True)):
        table[key] = draw(VALUES_BY_KEY[key])
    if draw(st.integers(0, 4)) == 0:
        table[draw(st.text(max_size=8))] = draw(JSON)
    return table


# -- parse_config ----------------------------------------------------------------------
@SETTINGS
@given(JSON)
@example({})
@example({"chains": "observe,tcpip"})
@example({"max_sockets": True})
@example({"max_sockets": math.nan})
@example({"chains": ["tcpip"], "bogus": 1})
@example([("chains", [])])
def test_parse_config_any_json_value(value: Any) -> None:
    check_parse(value)


@SETTINGS
@given(tables())
def test_parse_config_near_valid_tables(table: dict[str, Any]) -> None:
    check_parse(table)


@SETTINGS
@given(
    st.dictionaries(
        st.one_of(st.text(max_size=6), st.integers(), st.none(), st.tuples(st.integers())),
        JSON,
        max_size=4,
    )
)
@example({1: 0, "x": 0})
def test_parse_config_any_dict(value: dict[Any, Any]) -> None:
    check_parse(value)


@SETTINGS
@given(
    st.lists(st.sampled_from(["tcpip", "observe,memory", "passthrough[tag=1],tcpip"]), max_size=3),
    st.lists(st.sampled_from(["tcpip", "memory"]), max_size=2),
    st.one_of(st.none(), st.lists(st.sampled_from(["ext", "trace"]), max_size=2)),
    st.one_of(st.none(), st.integers(1, 10**9)),
)
def test_parse_config_accepts_every_valid_table(
    chains: list[str], order: list[str], plugins: list[str] | None, max_sockets: int | None
) -> None:
    table: dict[str, Any] = {"chains": chains, "order": order, "max_sockets": max_sockets}
    if plugins is not None:
        table["plugins"] = plugins
    config = parse_config(table)
    assert config.chains == tuple(parse_chain(c) for c in chains)
    assert config.order == tuple(order)
    assert config.plugins == (None if plugins is None else tuple(plugins))
    assert config.max_sockets == max_sockets


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"chain": ["tcpip"]}, ["'chain'", "chains"]),
        ({"chains": 3}, ["chains", "list of strings"]),
        ({"chains": ["tcpip", 3]}, ["chains"]),
        ({"chains": ["trace["]}, ["chains", "unclosed"]),
        ({"order": ["a,,b"]}, ["order"]),
        ({"plugins": [None]}, ["plugins"]),
        ({"max_sockets": 0}, ["max_sockets", ">= 1"]),
        ({"max_sockets": "10"}, ["max_sockets"]),
        ({"max_sockets": 1.0}, ["max_sockets"]),
        ({"max_sockets": False}, ["max_sockets"]),
        ("chains", ["must be a table"]),
    ],
)
def test_parse_config_errors_name_the_key(table: Any, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(table)
    message = check_error(info.value)
    for word in words:
        assert word in message


def test_parse_config_keeps_the_source() -> None:
    source = Path("/somewhere/pyproject.toml")
    assert parse_config({}, source).source == source
    assert parse_config({}) == Config()


def test_empty_plugins_list_means_builtins_only_not_all() -> None:
    assert parse_config({"plugins": []}).plugins == ()
    assert parse_config({}).plugins is None


# -- load_config -----------------------------------------------------------------------
PYPROJECT = """\
[project]
name = "demo"

[tool.other]
x = 1

[tool.wspframe]
chains = ["observe,memory", "passthrough[tag=a],tcpip"]
order = ["memory"]
plugins = []
max_sockets = 64
"""


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_load_config_reads_the_table(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", PYPROJECT)
    config = load_config(path)
    assert config.chains == (parse_chain("observe,memory"), parse_chain("passthrough[tag=a],tcpip"))
    assert config.order == ("memory",)
    assert config.plugins == ()
    assert config.max_sockets == 64
    assert config.source == path


def test_load_config_finds_the_nearest_pyproject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "pyproject.toml", PYPROJECT)
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    assert find_pyproject() == path
    assert load_config().source == path
    write(inner / "pyproject.toml", "[tool.wspframe]\nmax_sockets = 3\n")
    assert load_config() == Config(max_sockets=3, source=inner / "pyproject.toml")


def test_load_config_without_a_table_is_the_default(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    assert load_config(path) == Config(source=path)
    assert load_config(write(tmp_path / "empty.toml", "")) == Config(source=tmp_path / "empty.toml")


@pytest.mark.parametrize(
    "text",
    [
        "[tool.wspframe\nchains = []\n",
        "[tool.wspframe]\nchains = [\n",
        "[tool.wspframe]\nmax_sockets = \n",
        "[tool.wspframe]\nmax_sockets = 1\nmax_sockets = 2\n",
        "= 1\n",
    ],
)
def test_load_config_broken_toml_is_config_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "pyproject.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = check_error(info.value)
    assert message.startswith(f"cannot read {path}")


def test_load_config_file_that_is_not_utf8_is_config_error(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", b'[tool.wspframe]\nchains = ["\xff\xfe"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in check_error(info.value)


@pytest.mark.parametrize("text", ['tool = "oops"\n', "tool = 3\n", "tool = [1]\n"])
def test_load_config_tool_that_is_not_a_table_is_config_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "pyproject.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    check_error(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[tool]\nwspframe = 3\n", "must be a table"),
        ("[tool.wspframe]\nchains = 3\n", "chains"),
        ("[tool.wspframe]\nmax_sockets = 0\n", "max_sockets"),
        ("[tool.wspframe]\nunknown = 1\n", "'unknown'"),
        ('[tool.wspframe]\nchains = ["trace["]\n', "chains"),
    ],
)
def test_load_config_bad_table_is_config_error(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "pyproject.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert key in check_error(info.value)


def test_load_config_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert "cannot read" in check_error(info.value)


# -- a Host built from the configuration ---------------------------------------------------
def test_host_follows_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WSPFRAME_PLUGINS", raising=False)
    path = write(tmp_path / "pyproject.toml", PYPROJECT)
    host = wspframe.Host(config=path)
    assert host.config == load_config(path)
    assert host.max_sockets == 64
    # plugins = [] : built-ins only, whatever else is installed.
    assert [p.name for p in host.discovery.plugins] == ["builtin"]
    names = [e.name for e in host.enum_protocols()]
    memory_chains = [n for n in names if n.startswith("observe over [memory [")]
    tcpip_chains = [n for n in names if n.startswith("passthrough[tag=a] over [tcpip [")]
    assert memory_chains
    assert tcpip_chains
    # chains first, in the declared order, then the base entries named by order.
    assert names[: len(memory_chains)] == memory_chains
    after = names[len(memory_chains) :]
    assert after[: len(tcpip_chains)] == tcpip_chains
    rest = after[len(tcpip_chains) :]
    first_tcpip = next(i for i, n in enumerate(rest) if n.startswith("tcpip ["))
    assert all(n.startswith("memory [") for n in rest[:first_tcpip])
    assert first_tcpip > 0


def test_host_reads_the_nearest_pyproject_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "pyproject.toml", "[tool.wspframe]\norder = ['memory']\nmax_sockets = 9\n")
    monkeypatch.chdir(tmp_path)
    host = wspframe.Host()
    assert host.max_sockets == 9
    assert host.enum_protocols()[0].name.startswith("memory [")
    assert wspframe.Host(config=False).enum_protocols()[0].name.startswith("tcpip [")


def test_api_overrides_the_config(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", PYPROJECT)
    host = wspframe.Host(chains=["observe,tcpip"], order=[], config=path, max_sockets=5)
    names = [e.name for e in host.enum_protocols()]
    assert names[0] == "observe over [tcpip [TCP/IP]]"
    assert not any(n.startswith(("passthrough", "observe over [memory")) for n in names)
    assert host.max_sockets == 5


def test_host_with_a_bad_config_file_raises_config_error(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[tool.wspframe]\nchains = 'observe,'\n")
    with pytest.raises(ConfigError):
        wspframe.Host(config=path)


def test_host_with_a_config_naming_an_unknown_provider_raises_chain_spec_error(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "pyproject.toml", "[tool.wspframe]\nchains = ['nosuch,tcpip']\n")
    with pytest.raises(wspframe.ChainSpecError, match="'nosuch'"):
        wspframe.Host(config=path)
