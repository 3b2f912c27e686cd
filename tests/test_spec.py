"""Chain specs: ``name[opt=value,...],...,base``.

Properties: for any text, :func:`wspframe.parse_chain` and
:meth:`wspframe.Host.resolve_chain` return a :class:`~wspframe.ChainSpec`
whose ``str()`` parses back to an equal spec, or raise
:class:`~wspframe.ChainSpecError` (a ``WSAError`` with WSAEINVAL and a
``ValueError``); never anything else.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import wspframe
from wspframe import MAX_PROTOCOL_CHAIN, ChainSpec, ChainSpecError, LayerSpec, parse_chain

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NAME_RE = re.compile(r"[a-z][a-z0-9_]*(?:-[a-z0-9_]+)*")
KEY_RE = re.compile(r"[a-z_][a-z0-9_]*")

BUILTIN_LAYERS = ("passthrough", "observe")
BUILTIN_BASES = ("tcpip", "memory")


def check_error(exc: ChainSpecError) -> None:
    assert isinstance(exc, wspframe.WSAError)
    assert isinstance(exc, ValueError)
    assert exc.wsa_code == wspframe.WSAEINVAL == 10022
    assert exc.wsa_name == "WSAEINVAL"
    assert isinstance(exc.strerror, str)
    assert exc.strerror
    assert "\n" not in exc.strerror


def check_round_trip(spec: ChainSpec) -> None:
    assert isinstance(spec, ChainSpec)
    text = str(spec)
    again = parse_chain(text)
    assert again == spec
    assert str(again) == text
    assert hash(again) == hash(spec)
    assert 1 <= len(spec.elements) <= MAX_PROTOCOL_CHAIN
    assert spec.elements[-1] == spec.base
    assert not spec.base.options
    assert len({str(layer) for layer in spec.layers}) == len(spec.layers)
    for element in spec.elements:
        assert NAME_RE.fullmatch(element.name)
        assert [k for k, _ in element.options] == sorted(k for k, _ in element.options)
        for key, value in element.options:
            assert KEY_RE.fullmatch(key)
            assert value
            assert value == value.strip()
            assert not set(value) & set(",[]")


def parse_or_error(parse: Callable[[str], ChainSpec], text: str) -> ChainSpec | None:
    try:
        spec = parse(text)
    except ChainSpecError as exc:
        check_error(exc)
        return None
    check_round_trip(spec)
    return spec


# -- strategies ------------------------------------------------------------------------
LOWER = "abcdefghijklmnopqrstuvwxyz"
WORD = LOWER + "0123456789_"
WHITESPACE = st.sampled_from(["", "", "", "", " ", "  ", "\t", "\u00a0"])

VALID_NAMES = st.builds(
    lambda head, tail, parts: head + tail + "".join(f"-{p}" for p in parts),
    st.sampled_from(LOWER),
    st.text(WORD, max_size=6),
    st.lists(st.text(WORD, min_size=1, max_size=4), max_size=2),
)
VALID_KEYS = st.builds(operator.add, st.sampled_from(LOWER + "_"), st.text(WORD, max_size=6))
VALID_VALUES = (
    st.text(
        alphabet=st.characters(blacklist_characters=",[]", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=8,
    )
    .map(str.strip)
    .filter(bool)
)


@st.composite
def valid_chains(draw: st.DrawFn) -> ChainSpec:
    """A ChainSpec built directly (never through the parser)."""
    layers: list[LayerSpec] = []
    seen: set[str] = set()
    for _ in range(draw(st.integers(0, MAX_PROTOCOL_CHAIN - 1))):
        options = draw(st.dictionaries(VALID_KEYS, VALID_VALUES, max_size=3))
        layer = LayerSpec(draw(VALID_NAMES), tuple(options.items()))
        if str(layer) not in seen:
            seen.add(str(layer))
            layers.append(layer)
    return ChainSpec(tuple(layers), LayerSpec(draw(VALID_NAMES)))


BAD_NAMES = st.sampled_from(
    ["", "Trace", "1st", "-a", "a-", "a--b", "_x", "é", "a.b", "tr ace", "TCPIP", "a=b"]
)
NAMES = st.one_of(VALID_NAMES, VALID_NAMES, VALID_NAMES, BAD_NAMES, st.text(max_size=4))
KEYS = st.one_of(
    VALID_KEYS, VALID_KEYS, VALID_KEYS, st.sampled_from(["", "Latency", "2x", "a-b", "a b"])
)
VALUES = st.one_of(
    VALID_VALUES,
    VALID_VALUES,
    VALID_VALUES,
    st.sampled_from(["", " ", "a=b", "x,y", "[", "]"]),
    st.text(max_size=4),
)
SEPARATORS = st.sampled_from([",", ",", ",", ",", ", ", " ,", ",,", ";", ""])
#: Characters that matter to the grammar, for mutations.
SYNTAX = st.sampled_from([",", "[", "]", "=", " ", "-", "_", "A", "0", "\t", "é"])


@st.composite
def option_blocks(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 2)) == 0:
        return ""
    items = []
    for _ in range(draw(st.integers(0, 3))):
        eq = draw(st.sampled_from(["=", "=", "=", "=", "", "=="]))
        items.append(f"{draw(WHITESPACE)}{draw(KEYS)}{eq}{draw(VALUES)}{draw(WHITESPACE)}")
    body = draw(st.sampled_from([",", ",", ",", ", ", ",,"])).join(items)
    opener = draw(st.sampled_from(["[", "[", "[", "[", "[[", "]"]))
    closer = draw(st.sampled_from(["]", "]", "]", "]", "", "]]", "[]"]))
    return f"{opener}{body}{closer}"


@st.composite
def token_specs(draw: st.DrawFn) -> str:
    """Spec-shaped text assembled from good and broken tokens."""
    parts = []
    for _ in range(draw(st.integers(1, MAX_PROTOCOL_CHAIN + 1))):
        parts.append(f"{draw(WHITESPACE)}{draw(NAMES)}{draw(option_blocks())}{draw(WHITESPACE)}")
    text = parts[0]
    for part in parts[1:]:
        text += draw(SEPARATORS) + part
    return text


@st.composite
def mutated_specs(draw: st.DrawFn) -> str:
    """A valid spec's text with a few characters inserted, deleted or replaced."""
    text = str(draw(valid_chains()))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "delete", "replace"]))
        if how == "insert":
            text = text[:at] + draw(SYNTAX) + text[at:]
        elif how == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + draw(SYNTAX) + text[at + 1 :]
    return text


def near_valid_specs() -> st.SearchStrategy[str]:
    return st.one_of(token_specs(), mutated_specs())


def spaced(spec: ChainSpec, pad: str) -> str:
    """``spec`` written with extra blanks where the grammar allows them."""
    parts = []
    for element in spec.elements:
        opts = ""
        if element.options:
            opts = "[" + ",".join(f"{pad}{k}{pad}={pad}{v}{pad}" for k, v in element.options) + "]"
        parts.append(f"{pad}{element.name}{opts}{pad}")
    return ",".join(parts)


# -- parse_chain -------------------------------------------------------------------------
@SETTINGS
@given(st.text())
@example("trace,faults[latency=20ms,jitter=5ms],tcpip")
@example("trace[")
@example("a,b,c,d,e,f,g,h")
@example("x[a=1],x[a=1],tcpip")
@example(" tcpip ")
@example("a[k=v=w],b")
def test_parse_chain_any_text(text: str) -> None:
    parse_or_error(parse_chain, text)


@SETTINGS
@given(near_valid_specs())
def test_parse_chain_near_valid_text(text: str) -> None:
    parse_or_error(parse_chain, text)


@SETTINGS
@given(valid_chains(), st.sampled_from(["", " ", "  "]))
def test_parse_chain_accepts_every_valid_spec(spec: ChainSpec, pad: str) -> None:
    check_round_trip(spec)
    assert parse_chain(str(spec)) == spec
    assert parse_chain(spaced(spec, pad)) == spec
    assert parse_chain(f" {spec} \n") == spec
    assert ChainSpec.parse(str(spec)) == spec


@SETTINGS
@given(valid_chains())
def test_option_order_does_not_matter(spec: ChainSpec) -> None:
    reversed_text = ",".join(
        element.name
        + (
            "[" + ",".join(f"{k}={v}" for k, v in reversed(element.options)) + "]"
            if element.options
            else ""
        )
        for element in spec.elements
    )
    assert parse_chain(reversed_text) == spec


@SETTINGS
@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text(max_size=3), max_size=3)))
def test_parse_chain_non_str_is_chain_spec_error(value: object) -> None:
    with pytest.raises(ChainSpecError) as info:
        parse_chain(value)
    check_error(info.value)


def test_parse_chain_returns_a_chain_spec_unchanged() -> None:
    spec = parse_chain("observe,tcpip")
    assert parse_chain(spec) is spec


def test_parse_chain_example_from_the_design() -> None:
    spec = parse_chain("trace,faults[latency=20ms,jitter=5ms],tcpip")
    assert [layer.name for layer in spec.layers] == ["trace", "faults"]
    assert spec.layers[1].option_dict == {"latency": "20ms", "jitter": "5ms"}
    assert spec.layers[1].options == (("jitter", "5ms"), ("latency", "20ms"))
    assert spec.base == LayerSpec("tcpip")
    assert str(spec) == "trace,faults[jitter=5ms,latency=20ms],tcpip"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", ["empty"]),
        ("   ", ["empty"]),
        ("trace[", ["unclosed", "'trace'"]),
        ("trace[latency=1", ["unclosed"]),
        ("a[b[c=1]],d", ["nested"]),
        ("a[],b", ["empty option"]),
        ("a[x=1,,y=2],b", ["empty option"]),
        ("a[latency],b", ["'latency'", "option=value"]),
        ("a[=1],b", ["option name"]),
        ("a[Bad=1],b", ["'Bad'"]),
        ("a[x=],b", ["'x'", "value"]),
        ("a[x=1,x=2],b", ["twice"]),
        ("a,,b", ["position 2"]),
        ("a;b", ["';'"]),
        ("Trace,tcpip", ["position 0"]),
        ("a,b,", ["position"]),
        ("tcpip[x=1]", ["base", "'tcpip'", "no options"]),
        ("a,b,c,d,e,f,g,h", [str(MAX_PROTOCOL_CHAIN), "8"]),
        ("a,a,b", ["'a'", "twice"]),
        ("a[t=1],a[t=1],b", ["'a[t=1]'", "twice"]),
    ],
)
def test_parse_chain_errors_name_the_problem(text: str, words: list[str]) -> None:
    with pytest.raises(ChainSpecError) as info:
        parse_chain(text)
    check_error(info.value)
    for word in words:
        assert word in info.value.strerror


def test_same_layer_with_different_options_may_repeat() -> None:
    spec = parse_chain("passthrough[tag=1],passthrough[tag=2],tcpip")
    assert [str(layer) for layer in spec.layers] == ["passthrough[tag=1]", "passthrough[tag=2]"]


def test_longest_chain_is_six_layers_and_a_base() -> None:
    spec = parse_chain(",".join(f"l{i}" for i in range(MAX_PROTOCOL_CHAIN - 1)) + ",tcpip")
    assert len(spec.elements) == MAX_PROTOCOL_CHAIN


def test_chain_spec_error_is_catchable_as_value_error_and_os_error() -> None:
    with pytest.raises(ValueError, match="unclosed"):
        parse_chain("x[")
    with pytest.raises(OSError, match="unclosed"):
        parse_chain("x[")


# -- Host.resolve_chain -------------------------------------------------------------------
@pytest.fixture(scope="module")
def host() -> wspframe.Host:
    """One host with the built-in plugin only, built once for the whole module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WSPFRAME_PLUGINS", "")
        return wspframe.Host(config=False)


def check_resolved(host: wspframe.Host, spec: ChainSpec) -> None:
    providers = host.discovery.providers
    for layer in spec.layers:
        assert layer.name in host.discovery.layer_names
    assert spec.base.name in host.discovery.base_names
    assert all(element.name in providers for element in spec.elements)


@SETTINGS
@given(st.text())
def test_resolve_chain_any_text(host: wspframe.Host, text: str) -> None:
    spec = parse_or_error(host.resolve_chain, text)
    if spec is not None:
        check_resolved(host, spec)


@st.composite
def builtin_specs(draw: st.DrawFn) -> str:
    """Chains over the built-in names, sometimes with a wrong name or shape."""
    wrong = st.sampled_from([*BUILTIN_BASES, "tarce", "tcp", "Observe", ""])
    layers = []
    for i in range(draw(st.integers(0, MAX_PROTOCOL_CHAIN))):
        name = draw(st.one_of(*[st.sampled_from(BUILTIN_LAYERS)] * 4, wrong))
        opts = draw(st.sampled_from([f"[tag={i}]", f"[tag={i}]", f"[ tag = {i} ]", "", "[x=1]"]))
        layers.append(draw(WHITESPACE) + name + opts)
    base = draw(st.one_of(*[st.sampled_from(BUILTIN_BASES)] * 4, st.sampled_from(BUILTIN_LAYERS)))
    return draw(st.sampled_from([",", ",", ",", ", ", ",,"])).join([*layers, base])


@SETTINGS
@given(st.one_of(builtin_specs(), near_valid_specs()))
def test_resolve_chain_near_valid_text(host: wspframe.Host, text: str) -> None:
    spec = parse_or_error(host.resolve_chain, text)
    if spec is not None:
        check_resolved(host, spec)
        assert host.resolve_chain(str(spec)) == spec


@SETTINGS
@given(
    st.lists(st.sampled_from(BUILTIN_LAYERS), max_size=MAX_PROTOCOL_CHAIN - 1),
    st.sampled_from(BUILTIN_BASES),
)
def test_resolve_chain_accepts_every_builtin_chain(
    host: wspframe.Host, layers: list[str], base: str
) -> None:
    tagged = [f"{name}[tag={i}]" for i, name in enumerate(layers)]
    spec = host.resolve_chain(",".join([*tagged, base]))
    assert [layer.name for layer in spec.layers] == layers
    assert spec.base.name == base


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("tarce,tcpip", ["'tarce'", "memory", "observe", "passthrough", "tcpip"]),
        ("tcpip,memory", ["'tcpip'", "base provider", "passthrough", "observe"]),
        ("observe,passthrough", ["'passthrough'", "base provider", "tcpip", "memory"]),
        ("observe", ["'observe'", "tcpip", "memory"]),
    ],
)
def test_resolve_chain_errors_name_the_choices(
    host: wspframe.Host, text: str, words: list[str]
) -> None:
    with pytest.raises(ChainSpecError) as info:
        host.resolve_chain(text)
    check_error(info.value)
    for word in words:
        assert word in info.value.strerror


def test_resolve_chain_accepts_a_chain_spec(host: wspframe.Host) -> None:
    spec = parse_chain("observe,memory")
    assert host.resolve_chain(spec) == spec
