"""The pytest plugin, end to end with ``pytester``: options, ini, environment,
marker, fixtures, usage errors, header, seed, stats, the leak check,
``-p no:wsp``, ``raises_wsa``, ``wsp_completions`` and pytest-xdist.

Every run uses the built-in providers only (``WSPFRAME_PLUGINS=""``), so the
provider lists in messages are known."""

from __future__ import annotations

import re

import pytest

pytest_plugins = ["pytester"]

BUILTINS = "memory, observe, passthrough, tcpip"

#: A layer module the runs can add with --wsp-provider / wsp_providers.
SEEDED_LAYER = """
import wspframe


class Seeded(wspframe.LayeredProvider):
    name = "seeded"

    def reseed(self, seed):
        self.seed = seed


class Clash(wspframe.LayeredProvider):
    name = "memory"
"""


@pytest.fixture(autouse=True)
def _builtins_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSPFRAME_PLUGINS", "")
    monkeypatch.delenv("WSPFRAME_CHAIN", raising=False)


def ids(result: pytest.RunResult) -> list[str]:
    """The collected test ids, in order (from ``--collect-only -q``)."""
    return [line for line in result.outlines if "::" in line]


def outcomes_by_id(result: pytest.RunResult) -> dict[str, str]:
    """``{node id: outcome}`` from ``-v`` lines, with or without xdist
    (``id PASSED [ 5%]`` or ``[gw0] [ 5%] PASSED id``)."""
    out = {}
    word = "(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)"
    for line in result.outlines:
        m = re.match(rf"^(\S+::\S+) {word}\b", line) or re.search(
            rf"\] {word} (\S+::\S+)\s*$", line
        )
        if m:
            node, outcome = (m.group(1), m.group(2)) if "::" in m.group(1) else m.group(2, 1)
            out[node] = outcome
    return out


CHAIN_TEST = """
def test_spec(wsp_chain):
    pass


def test_plain():
    pass
"""


# -- options, ini, environment ----------------------------------------------------------------
def test_repeated_chains_parametrise_in_the_given_order(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=CHAIN_TEST)
    args = ["--collect-only", "-q", "-p", "no:cacheprovider"]
    chains = ["--wsp-chain=tcpip", "--wsp-chain=observe , memory", "--wsp-chain=memory"]
    first = pytester.runpytest(*chains, *args)
    assert first.ret == 0
    assert ids(first) == [
        "test_a.py::test_spec[tcpip]",
        "test_a.py::test_spec[observe,memory]",
        "test_a.py::test_spec[memory]",
        "test_a.py::test_plain",
    ]
    again = pytester.runpytest(*chains, *args)
    assert ids(again) == ids(first)
    # The same chain twice (even spelled differently) runs once.
    dup = pytester.runpytest("--wsp-chain=observe,memory", "--wsp-chain=observe, memory", *args)
    assert ids(dup) == ["test_a.py::test_spec[observe,memory]", "test_a.py::test_plain"]


def test_default_chain_is_memory(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=CHAIN_TEST)
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    assert ids(result) == ["test_a.py::test_spec[memory]", "test_a.py::test_plain"]


def test_precedence_cli_over_env_over_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_a="def test_spec(wsp_chain):\n    pass\n")
    pytester.makeini("[pytest]\nwsp_chain =\n    observe,memory\n    tcpip\n")
    args = ["--collect-only", "-q", "-p", "no:cacheprovider"]
    assert ids(pytester.runpytest(*args)) == [
        "test_a.py::test_spec[observe,memory]",
        "test_a.py::test_spec[tcpip]",
    ]
    monkeypatch.setenv("WSPFRAME_CHAIN", " passthrough,tcpip ; memory ")
    assert ids(pytester.runpytest(*args)) == [
        "test_a.py::test_spec[passthrough,tcpip]",
        "test_a.py::test_spec[memory]",
    ]
    assert ids(pytester.runpytest("--wsp-chain=observe,tcpip", *args)) == [
        "test_a.py::test_spec[observe,tcpip]"
    ]
    monkeypatch.setenv("WSPFRAME_CHAIN", "  ")  # blank: as if unset
    assert len(ids(pytester.runpytest(*args))) == 2


def test_ini_in_pyproject(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_spec(wsp_chain):\n    pass\n")
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nwsp_chain = ["observe,tcpip"]\n')
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    assert ids(result) == ["test_a.py::test_spec[observe,tcpip]"]


# -- the marker --------------------------------------------------------------------------------
def test_marker_on_module_class_and_function(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_m="""
        import pytest

        pytestmark = pytest.mark.wsp_chain("tcpip")


        def test_module(wsp_chain):
            assert wsp_chain.spec == "tcpip"


        @pytest.mark.wsp_chain("observe,memory", "memory")
        class TestClass:
            def test_class(self, wsp_chain):
                assert wsp_chain.spec in ("observe,memory", "memory")

            @pytest.mark.wsp_chain("passthrough,tcpip")
            def test_function(self, wsp_chain):
                assert wsp_chain.spec == "passthrough,tcpip"
        """
    )
    result = pytester.runpytest(
        "--strict-markers", "-v", "-p", "no:cacheprovider", "--wsp-chain=memory"
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*test_module[[]tcpip] PASSED*",
            "*test_class[[]observe,memory] PASSED*",
            "*test_class[[]memory] PASSED*",
            "*test_function[[]passthrough,tcpip] PASSED*",
        ]
    )
    markers = pytester.runpytest("--markers", "-p", "no:cacheprovider")
    markers.stdout.fnmatch_lines(["@pytest.mark.wsp_chain(*specs): *"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('"nosuch,memory"', f"no provider named 'nosuch'; installed: {BUILTINS}"),
        ("", "wsp_chain marker needs at least one spec"),
    ],
)
def test_bad_marker_is_a_collection_error(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(
        test_m=f"""
        import pytest

        @pytest.mark.wsp_chain({marker})
        def test_bad(wsp_chain):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*test_m.py::test_bad*{message}*"])


# -- usage errors ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuch,memory", f"no provider named 'nosuch'; installed: {BUILTINS}"),
        ("observe,[", "expected a provider name at position 8 of 'observe,['"),
        ("memory,observe", "'memory' is a base provider and can only end a chain"),
        ("observe", "a chain must end in a base provider, got layer 'observe'"),
        ("observe[x=1],memory", "layer 'observe' takes no options, got x"),
        (",".join(f"passthrough[tag={i}]" for i in range(7)) + ",memory", "at most 7"),
    ],
)
def test_bad_chain_is_a_usage_error_naming_the_providers(
    pytester: pytest.Pytester, spec: str, message: str
) -> None:
    pytester.makepyfile(test_a=CHAIN_TEST)
    result = pytester.runpytest(f"--wsp-chain={spec}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"--wsp-chain: invalid chain {spec!r}" in err
    assert message in err
    assert "installed" in err and "memory" in err and "tcpip" in err


def test_usage_error_names_the_source(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_a=CHAIN_TEST)
    pytester.makeini("[pytest]\nwsp_chain = tarce,memory\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "wsp_chain (ini): invalid chain 'tarce,memory': no provider named 'tarce'" in (
        result.stderr.str()
    )
    monkeypatch.setenv("WSPFRAME_CHAIN", "memory;tarce,tcpip")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "WSPFRAME_CHAIN: invalid chain 'tarce,tcpip'" in result.stderr.str()


# -- extra providers by import path --------------------------------------------------------------
def test_extra_providers_by_option_and_ini(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(seeded_layer=SEEDED_LAYER)
    pytester.syspathinsert()
    pytester.makepyfile(
        test_a="""
        def test_layer(wsp_chain):
            assert wsp_chain.layer("seeded").seed == 7
        """
    )
    args = ["--wsp-chain=seeded,memory", "--wsp-seed=7", "-p", "no:cacheprovider"]
    assert pytester.runpytest(*args).ret == pytest.ExitCode.USAGE_ERROR  # not known yet
    result = pytester.runpytest("--wsp-provider=seeded_layer:Seeded", *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["wspframe providers: memory, observe, passthrough, seeded, tcpip"])
    pytester.makeini("[pytest]\nwsp_providers =\n    seeded_layer:Seeded\n")
    pytester.runpytest(*args).assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("seeded_layer", "a provider must be given as module:Class, got 'seeded_layer'"),
        ("no_such_module:X", "cannot import 'no_such_module:X': ModuleNotFoundError"),
        ("seeded_layer:Nope", "cannot import 'seeded_layer:Nope': AttributeError"),
        ("seeded_layer:wspframe", "is not a ServiceProvider subclass"),
    ],
)
def test_bad_extra_provider_is_a_usage_error(
    pytester: pytest.Pytester, path: str, message: str
) -> None:
    pytester.makepyfile(seeded_layer=SEEDED_LAYER)
    pytester.syspathinsert()
    pytester.makepyfile(test_a=CHAIN_TEST)
    result = pytester.runpytest(f"--wsp-provider={path}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


# -- --wsp-catalog, header, seed, stats -------------------------------------------------------
def test_wsp_catalog_prints_the_catalog_and_exits_0(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_never_run():\n    raise AssertionError\n")
    result = pytester.runpytest(
        "--wsp-catalog", "--wsp-chain=observe,memory", "-p", "no:cacheprovider"
    )
    assert result.ret == 0
    out = result.stdout.str()
    assert "Description:                        observe over [memory [TCP/IP]]" in out
    assert "Layered Chain Entry" in out and "Base Service Provider" in out
    assert out.count("Winsock Catalog Provider Entry") == 13  # 8 base, 4 chain, 1 layer
    assert "test_never_run" not in out and "passed" not in out
    bad = pytester.runpytest("--wsp-catalog", "--wsp-chain=nosuch,memory", "-p", "no:cacheprovider")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR


def test_header_and_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(seeded_layer=SEEDED_LAYER)
    pytester.syspathinsert()
    pytester.makepyfile(
        test_a="""
        def test_seed(wsp_chain):
            print("LAYER SEED", wsp_chain.layer("seeded").seed)
        """
    )
    base = ["--wsp-provider=seeded_layer:Seeded", "-p", "no:cacheprovider", "-s"]
    drawn = pytester.runpytest("--wsp-chain=seeded,memory", "--wsp-chain=seeded,tcpip", *base)
    drawn.assert_outcomes(passed=2)
    m = re.search(
        r"^wspframe \S+: chains seeded,memory, seeded,tcpip; seed (\d+) \(replay with --wsp-seed=(\d+)\)$",
        drawn.stdout.str(),
        re.M,
    )
    assert m and m.group(1) == m.group(2), drawn.stdout.str()
    import wspframe

    assert drawn.stdout.str().count(f"wspframe {wspframe.__version__}: chains") == 1
    drawn.stdout.fnmatch_lines(
        [
            "wspframe providers: memory, observe, passthrough, seeded, tcpip",
            f"*LAYER SEED {m.group(1)}*",
        ]
    )
    given = pytester.runpytest("--wsp-chain=seeded,memory", "--wsp-seed=1234", *base)
    given.stdout.fnmatch_lines(["wspframe *: chains seeded,memory; seed 1234", "*LAYER SEED 1234*"])
    assert "replay with" not in given.stdout.str()


def test_header_reports_providers_that_failed_to_load(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(seeded_layer=SEEDED_LAYER)
    pytester.syspathinsert()
    pytester.makepyfile(test_a=CHAIN_TEST)
    result = pytester.runpytest("--wsp-provider=seeded_layer:Clash", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["wspframe plugin failed to load: Clash *: provider name 'memory' is already provided"]
    )


STATS_TEST = """
def test_conversation(wsp_stream_pair):
    client, server = wsp_stream_pair
    client.sendall(b"12345")
    assert server.recv(5) == b"12345"
"""


def test_stats_section(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=STATS_TEST)
    chains = ["--wsp-chain=observe,memory", "--wsp-chain=passthrough,tcpip", "--wsp-chain=memory"]
    result = pytester.runpytest(*chains, "--wsp-stats", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*= wspframe stats =*",
            "observe: bytes_received=5, bytes_sent=5, ops.accept=1, *ops.recv=1, ops.send=1*",
            "passthrough: (no stats() offered)=0",
        ]
    )
    plain = pytester.runpytest(*chains, "-p", "no:cacheprovider")
    assert "wspframe stats" not in plain.stdout.str()
    bare = pytester.runpytest("--wsp-chain=memory", "--wsp-stats", "-p", "no:cacheprovider")
    bare.stdout.fnmatch_lines(["*= wspframe stats =*", "no test used a chain with layers"])


# -- fixtures ---------------------------------------------------------------------------------
FIXTURE_TESTS = """
import pytest
import wspframe
from wspframe import AF_INET, SOCK_DGRAM, SOCK_STREAM, WSA_FLAG_OVERLAPPED

MADE = []


def test_wsp_host(wsp_host, wsp_chain):
    assert isinstance(wsp_host, wspframe.Host) and wsp_host.started
    first = wsp_host.enum_protocols()[0]
    assert first == wsp_chain.entries[0]  # the chain comes first in the catalog
    with wsp_host.socket() as s:  # so a default socket goes through it
        assert s.protocol_info == wsp_chain.entry()
        MADE.append(("host socket", s))


def test_wsp_chain(wsp_chain, wsp_host):
    spec = wsp_chain.spec
    assert repr(wsp_chain) == f"<wsp_chain {spec!r}>"
    assert wsp_chain.entries == wsp_host.entries_for(spec)
    assert wsp_chain.entry(type=SOCK_DGRAM).socket_type == SOCK_DGRAM
    with pytest.raises(LookupError, match="has no entry for af=12345"):
        wsp_chain.entry(af=12345)
    assert wsp_chain.base is wsp_host.provider(spec.split(",")[-1])
    if spec.startswith("observe"):
        layer = wsp_chain.layer("observe")
        assert wsp_chain.layers == [layer] and hasattr(layer, "events")
    else:
        assert wsp_chain.layers == []
    with pytest.raises(LookupError, match="no layer 'nope' in chain"):
        wsp_chain.layer("nope")


def test_wsp_socket(wsp_socket, wsp_chain):
    s = wsp_socket()
    assert (s.family, s.type) == (AF_INET, SOCK_STREAM) and not s.overlapped
    d = wsp_socket(type=SOCK_DGRAM, flags=WSA_FLAG_OVERLAPPED)
    assert d.type == SOCK_DGRAM and d.overlapped
    assert s.protocol_info in wsp_chain.entries and d.protocol_info in wsp_chain.entries
    MADE.extend([("wsp_socket", s), ("wsp_socket", d)])


def test_wsp_stream_pair(wsp_stream_pair):
    client, server = wsp_stream_pair
    assert client.overlapped and server.overlapped
    assert client.getpeername()[:2] == server.getsockname()[:2]
    assert server.getsockname()[0] == "127.0.0.1"
    client.sendall(b"hello")
    assert server.recv(5) == b"hello"
    MADE.extend([("stream pair", client), ("stream pair", server)])


def test_wsp_datagram_pair(wsp_datagram_pair):
    a, b = wsp_datagram_pair
    assert a.getpeername()[:2] == b.getsockname()[:2]
    assert b.getpeername()[:2] == a.getsockname()[:2]
    a.send(b"dgram")
    assert b.recvfrom(100) == (b"dgram", a.getsockname())
    MADE.extend([("datagram pair", a), ("datagram pair", b)])


def test_wsp_completion_port(wsp_completion_port, wsp_stream_pair, wsp_completions):
    assert isinstance(wsp_completion_port, wspframe.CompletionPort)
    client, server = wsp_stream_pair
    wsp_completion_port.associate(server, key=3)
    ov = wspframe.Overlapped()
    server.recv_overlapped(10, ov)
    client.sendall(b"abc")
    c = wsp_completions.expect(wsp_completion_port, nbytes=3, key=3, overlapped=ov)
    assert c == wspframe.Completion(3, ov, 3, 0)
    MADE.append(("port", wsp_completion_port))


def test_everything_was_closed_at_teardown():
    assert len(MADE) == 2 * 8  # both chains
    for what, thing in MADE:
        assert thing.closed, what
"""


def test_each_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fixtures=FIXTURE_TESTS)
    result = pytester.runpytest(
        "--wsp-chain=memory", "--wsp-chain=observe,tcpip", "-p", "no:cacheprovider", "-v"
    )
    result.assert_outcomes(passed=13)
    result.stdout.fnmatch_lines(
        ["*test_wsp_host[[]memory] PASSED*", "*test_wsp_host[[]observe,tcpip] PASSED*"]
    )


def test_fixture_requested_dynamically_uses_the_first_chain(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a="""
        def test_dynamic(request):
            assert request.getfixturevalue("wsp_chain").spec == "observe,tcpip"
        """
    )
    result = pytester.runpytest(
        "--wsp-chain=observe,tcpip", "--wsp-chain=memory", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)


# -- the leak check ---------------------------------------------------------------------------
LEAKY_TESTS = """
import wspframe


def test_leaks_a_socket(wsp_host):
    s = wsp_host.socket()  # LEAK-SOCKET


def test_leaks_pending_io(wsp_host, wsp_chain):
    s = wsp_host.socket(protocol_info=wsp_chain.entry(type=wspframe.SOCK_DGRAM), flags=wspframe.WSA_FLAG_OVERLAPPED)  # LEAK-IO
    s.bind(("127.0.0.1", 0))
    s.recvfrom_overlapped(10, wspframe.Overlapped())


def test_leaks_a_handle(wsp_host, wsp_chain):
    wsp_host.upcalls.create_socket_handle(wsp_chain.entry().catalog_entry_id, object())


def test_closes_everything(wsp_host, wsp_socket):
    wsp_host.socket().close()
    wsp_socket()
"""


def _line_of(source: str, marker: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if marker in line)


def test_leak_check_catches_leaks_with_where_they_were_made(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(test_leaky=LEAKY_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rE")
    result.assert_outcomes(passed=4, errors=3)
    out = result.stdout.str()
    source = path.read_text()
    socket_line = _line_of(source, "LEAK-SOCKET")
    io_line = _line_of(source, "LEAK-IO")
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks_a_socket[[]memory]*",
            "wspframe leak check:",
            f"  socket left open: <wspframe.Socket *>, created at {path}:{socket_line} in test_leaks_a_socket",
        ]
    )
    assert f"created at {path}:{io_line} in test_leaks_pending_io" in out
    assert re.search(
        r"overlapped operation still pending: <wspframe.Overlapped recvfrom pending> on", out
    )
    assert re.search(r"handle \d+ still registered but no socket uses it", out)
    assert "test_closes_everything" not in out.split("short test summary info")[1]


def test_leak_check_can_be_turned_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    pytester.makeini("[pytest]\nwsp_leak_check = false\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    assert "leak check" not in result.stdout.str()


# -- disabling ----------------------------------------------------------------------------------
def test_p_no_wsp_disables_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=CHAIN_TEST)
    result = pytester.runpytest("-p", "no:wsp", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'wsp_chain' not found*"])
    assert "wspframe" not in result.stdout.str().split("collected")[0]
    option = pytester.runpytest("-p", "no:wsp", "--wsp-chain=memory", "-p", "no:cacheprovider")
    assert option.ret == pytest.ExitCode.USAGE_ERROR
    assert "unrecognized arguments: --wsp-chain=memory" in option.stderr.str()


# -- raises_wsa and wsp_completions ------------------------------------------------------------------
RAISES_TESTS = """
import wspframe
from wspframe.testing import raises_wsa


def refused(wsp_socket):
    probe = wsp_socket()
    probe.bind(("127.0.0.1", 0))
    address = probe.getsockname()
    probe.close()
    return address


def test_right_code(wsp_socket):
    address = refused(wsp_socket)
    with raises_wsa(wspframe.WSAECONNREFUSED, match="nobody listens") as info:
        wsp_socket().connect(address)
    assert info.value.wsa_code == 10061


def test_wrong_code(wsp_socket):
    with raises_wsa(wspframe.WSAECONNREFUSED):
        wsp_socket().getpeername()


def test_no_error(wsp_socket):
    with raises_wsa(wspframe.WSAECONNREFUSED):
        wsp_socket()


def test_message_mismatch(wsp_socket):
    address = refused(wsp_socket)
    with raises_wsa(wspframe.WSAECONNREFUSED, match="refused by nobody"):
        wsp_socket().connect(address)


def test_not_a_wsa_error():
    with raises_wsa(wspframe.WSAECONNREFUSED):
        raise ValueError("plain")
"""


def test_raises_wsa_messages(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_raises=RAISES_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines(
        [
            "*_ test_wrong_code[[]memory] _*",
            "expected WSAError WSAECONNREFUSED (10061), got WSAENOTCONN (10057): *",
            "*_ test_no_error[[]memory] _*",
            "E   *Failed: DID NOT RAISE*WSAError*",  # the form differs between pytest versions
            "*_ test_message_mismatch[[]memory] _*",
            "E   *Regex pattern did not match.",
            "E   *Expected regex: 'refused by nobody'",
            "*_ test_not_a_wsa_error _*",
            "E   *ValueError: plain",
        ]
    )


COMPLETION_TESTS = """
import pytest
import wspframe
from wspframe import Overlapped


@pytest.fixture
def armed(wsp_stream_pair, wsp_completion_port):
    client, server = wsp_stream_pair
    wsp_completion_port.associate(server, key=7)
    ov = Overlapped()
    server.recv_overlapped(100, ov)
    client.sendall(b"abc")
    return wsp_completion_port, ov


def test_expect_passes(armed, wsp_completions):
    port, ov = armed
    c = wsp_completions.expect(port, nbytes=3, error=0, key=7, overlapped=ov)
    assert (c.key, c.nbytes) == (7, 3)
    assert wsp_completions.expect(ov, nbytes=3) is ov
    wsp_completions.expect_none(port, within=0.01)
    assert wsp_completions.drain(port) == []


def test_expect_wrong_fields(armed, wsp_completions):
    port, ov = armed
    wsp_completions.expect(port, nbytes=4, error=wspframe.WSAECONNRESET, key=8)


def test_expect_nothing_arrives(wsp_completion_port, wsp_completions):
    wsp_completions.expect(wsp_completion_port, timeout=0.05)


def test_expect_overlapped_not_done(wsp_stream_pair, wsp_completions):
    client, server = wsp_stream_pair
    ov = Overlapped()
    server.recv_overlapped(10, ov)
    wsp_completions.expect(ov, timeout=0.05)


def test_expect_none_fails(armed, wsp_completions):
    port, ov = armed
    ov.wait(5)
    wsp_completions.expect_none(port, within=1)


def test_drain(wsp_stream_pair, wsp_completion_port, wsp_completions):
    client, server = wsp_stream_pair
    wsp_completion_port.associate(client, key=1)
    sends = [Overlapped() for _ in range(3)]
    for ov in sends:
        client.send_overlapped(b"x", ov)
    for ov in sends:
        ov.wait(5)
    got = wsp_completions.drain(wsp_completion_port)
    assert [c.overlapped for c in got] == sends
    assert wsp_completions.drain(wsp_completion_port) == []


def test_expect_needs_a_port_or_overlapped(wsp_completions):
    with pytest.raises(TypeError, match="needs a CompletionPort or an Overlapped"):
        wsp_completions.expect(42)
"""


def test_completion_assertion_messages(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_completions=COMPLETION_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(passed=3, failed=4)
    result.stdout.fnmatch_lines(
        [
            "*_ test_expect_wrong_fields[[]memory] _*",
            "unexpected completion of <wspframe.Overlapped recv done nbytes=3 error=0>: "
            "error 0 (success), expected WSAECONNRESET (10054); nbytes 3, expected 4; "
            "key 7, expected 8",
            "*_ test_expect_nothing_arrives[[]memory] _*",
            "no completion on <wspframe.CompletionPort 0 queued> within 0.05 s",
            "*_ test_expect_overlapped_not_done[[]memory] _*",
            "<wspframe.Overlapped recv pending> did not complete within 0.05 s",
            "*_ test_expect_none_fails[[]memory] _*",
            "unexpected completion within 1 s: Completion(key=7, overlapped=<wspframe.Overlapped "
            "recv done nbytes=3 error=0>, nbytes=3, error=0)",
        ]
    )


# -- pytest-xdist ---------------------------------------------------------------------------------------
XDIST_TESTS = """
import os
import pytest
from pytest_wspframe.plugin import seed_key


@pytest.mark.parametrize("n", range(4))
def test_param(wsp_stream_pair, n):
    client, server = wsp_stream_pair
    client.sendall(b"%d" % n)
    assert server.recv(1) == b"%d" % n


def test_fails_on_observe(wsp_chain):
    assert not wsp_chain.spec.startswith("observe")


def test_skips_on_tcpip(wsp_chain):
    if wsp_chain.spec.endswith("tcpip"):
        pytest.skip("not on tcpip")


@pytest.mark.wsp_chain("passthrough,memory")
def test_marked(wsp_chain):
    assert wsp_chain.spec == "passthrough,memory"


def test_plain():
    pass


def test_seed(request, wsp_host):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(f"seed-{worker}-{request.node.name}.txt", "w") as f:
        f.write(str(request.config.stash[seed_key]))
"""


def test_xdist_gives_the_same_outcomes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)  # when this test itself runs under xdist
    pytester.makepyfile(test_x=XDIST_TESTS)
    chains = ["--wsp-chain=memory", "--wsp-chain=observe,tcpip", "--wsp-chain=tcpip"]
    common = [*chains, "-p", "no:cacheprovider", "-v"]
    serial = pytester.runpytest_subprocess(*common, timeout=120)
    parallel = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", *common, timeout=120)
    expected = outcomes_by_id(serial)
    assert len(expected) == 3 * 4 + 3 + 3 + 1 + 1 + 3
    assert set(expected.values()) == {"PASSED", "FAILED", "SKIPPED"}
    assert outcomes_by_id(parallel) == expected
    assert "2 workers" in parallel.stdout.str() or "gw1" in parallel.stdout.str()
    # Every worker used the controller's seed (the one its header printed).
    seed = re.search(r"; seed (\d+) \(replay", parallel.stdout.str())
    assert seed
    files = sorted(pytester.path.glob("seed-gw*.txt"))
    assert files and {f.read_text() for f in files} == {seed.group(1)}
