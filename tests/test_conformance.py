"""The conformance suite (``pytest --wsp-conformance``) passes on the built-in
base providers, bare and under a 7-long chain, and each of its checks fails,
naming its rule, on a layer broken on purpose in exactly that respect.

The broken layers are defined here and handed to the pytester runs by import
path (``--wsp-provider=tests.test_conformance:Careless``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import wspframe
from wspframe import (
    FIONREAD,
    SD_BOTH,
    SD_SEND,
    LayeredProvider,
    Overlapped,
    WSAError,
    WSAErrorCode,
    wsa_error,
)

pytest_plugins = ["pytester"]

C = WSAErrorCode
LAYERS = "pytest_wspframe.conformance._layers"
#: Six layers of every kind: skipped pass-throughs, recording, overriding all, minting.
SIX = (
    "conformance-relay[n=1],passthrough[tag=2],conformance-mint[n=3],observe,"
    "conformance-relay[n=5],passthrough[tag=6]"
)
RELAYS = (f"{LAYERS}:Relay", f"{LAYERS}:Mint")


def run_suite(
    pytester: pytest.Pytester, specs: list[str], providers: tuple[str, ...] = (), *args: str
) -> pytest.RunResult:
    return pytester.runpytest(
        "--wsp-conformance",
        *(f"--wsp-chain={spec}" for spec in specs),
        *(f"--wsp-provider={p}" for p in providers),
        "--wsp-seed=20240607",
        "-p",
        "no:cacheprovider",
        "-rfEs",
        *args,
    )


# -- the suite passes ---------------------------------------------------------------
@pytest.mark.parametrize("base", ["memory", "tcpip"])
def test_the_suite_passes_bare_and_under_seven_layers(pytester: pytest.Pytester, base: str) -> None:
    seven = f"{SIX},{base}"
    assert len(wspframe.parse_chain(seven).elements) == wspframe.MAX_PROTOCOL_CHAIN
    result = run_suite(pytester, [base, seven], RELAYS, "-v")
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()
    assert set(outcomes) == {"passed"}, outcomes  # no skip, failure or error
    passed = [line for line in result.outlines if " PASSED" in line]
    assert len(passed) == outcomes["passed"]
    per_chain = {spec: sum(f"[{spec}" in line for line in passed) for spec in (seven, base)}
    assert per_chain[seven] == per_chain[base] > 30, per_chain
    # Every module of the suite ran.
    for module in (
        "test_sockets",
        "test_streams",
        "test_overlapped",
        "test_close",
        "test_errors",
        "test_shutdown",
        "test_duplicate",
        "test_cleanup",
        "test_containment",
    ):
        assert any(f"{module}.py::" in line for line in passed), module


def test_the_suite_runs_inside_a_project_with_other_python_files(
    pytester: pytest.Pytester,
) -> None:
    """--wsp-conformance replaces the project's test paths, and its modules are
    collected whatever the project's ``python_files``."""
    pytester.makeini("[pytest]\npython_files = check_*.py\ntestpaths = nowhere\n")
    pytester.makepyfile(check_mine="def test_mine():\n    raise AssertionError('not collected')\n")
    result = run_suite(pytester, ["memory"], (), "-k", "test_errors")
    result.assert_outcomes(passed=5)


def test_the_suite_passes_on_installed_third_party_layers(pytester: pytest.Pytester) -> None:
    """Any installed layer can be checked, not only the suite's own."""
    discovery = wspframe.discover()
    layers = [n for n in discovery.layer_names if n not in ("passthrough", "observe")]
    if not layers:
        pytest.skip("no third-party layer installed")
    spec = f"{layers[0]},memory"
    result = run_suite(pytester, [spec], (), "-q")
    assert result.ret == 0, result.stdout.str()


# -- broken layers: one per rule ---------------------------------------------------------
class Careless(LayeredProvider):
    """bug 1: hands the client's overlapped straight to the layer below."""

    name = "careless"
    ifs = False

    def recv_overlapped(self, s: Any, bufsize: int, flags: int, ov: Overlapped) -> None:
        s.lower.recv_overlapped(bufsize, flags, ov)


class SkipsImmediate(LayeredProvider):
    """bug 2: when data is already there, completes the receive inline and
    reports nothing (the application "saw" success synchronously)."""

    name = "skips-immediate"
    ifs = False

    def recv_overlapped(self, s: Any, bufsize: int, flags: int, ov: Overlapped) -> None:
        if s.lower.ioctl(FIONREAD, 0):
            ov.data = s.lower.recv(bufsize, flags)
            ov.nbytes, ov.error, ov.pending = len(ov.data), 0, False
            ov._finished = True  # done, but no port, event or routine hears of it
            return
        super().recv_overlapped(s, bufsize, flags, ov)


class LyingIfs(LayeredProvider):
    """bug 3: declares itself non-IFS (the entry drops XP1_IFS_HANDLES), yet
    exposes the OS handle of the level below."""

    name = "lying-ifs"
    ifs = False

    def wrap(self, lower: Any, protocol_info: Any, next: Any) -> Any:
        s = self.socket_class(self, lower, protocol_info)
        s.handle = self.upcalls.modify_ifs_handle(self.catalog_entry_id, lower.handle)
        return s


class ForgedHandle(LayeredProvider):
    """A9/A10: returns the lower handle without registering it."""

    name = "forged-handle"

    def wrap(self, lower: Any, protocol_info: Any, next: Any) -> Any:
        s = self.socket_class(self, lower, protocol_info)
        s.handle = lower.handle
        return s


class ForeignInfo(LayeredProvider):
    """bug 7: passes the chain entry it was given on to the base."""

    name = "foreign-info"

    def socket(self, next, af, type, protocol, protocol_info, group, flags):  # type: ignore[no-untyped-def]
        lower = next.socket(af, type, protocol, protocol_info, group, flags)
        return self.wrap(lower, protocol_info, next)


class CachedInfo(LayeredProvider):
    """bug 7: remembers the first chain entry it saw per socket type and keeps
    passing that one down: right in its own chain, wrong under another layer."""

    name = "cached-info"

    def configure(self, options: Any) -> None:
        self.cache: dict[tuple[int, int], Any] = {}

    def socket(self, next, af, type, protocol, protocol_info, group, flags):  # type: ignore[no-untyped-def]
        key = (protocol_info.address_family, protocol_info.socket_type)
        info = self.cache.setdefault(key, next.protocol_info)
        lower = next.socket(af, type, protocol, info, group, flags)
        return self.wrap(lower, protocol_info, next)


class NoWildcards(LayeredProvider):
    """A4: refuses af 0 instead of treating it as a wildcard."""

    name = "no-wildcards"

    def socket(self, next, af, type, protocol, protocol_info, group, flags):  # type: ignore[no-untyped-def]
        if af == 0:
            raise wsa_error(C.WSAEAFNOSUPPORT, "address family 0")
        return super().socket(next, af, type, protocol, protocol_info, group, flags)


class Decliner(LayeredProvider):
    """A2/bug 6: declines (WSAEINPROGRESS) unless given FROM_PROTOCOL_INFO, so
    selection by triplet silently falls through to the bare base."""

    name = "decliner"

    def socket(self, next, af, type, protocol, protocol_info, group, flags):  # type: ignore[no-untyped-def]
        if af != wspframe.FROM_PROTOCOL_INFO:
            raise wsa_error(C.WSAEINPROGRESS, "not now")
        return super().socket(next, af, type, protocol, protocol_info, group, flags)


class WrongCount(LayeredProvider):
    """bug 10: recv_into reports the buffer's size, not the bytes received."""

    name = "wrong-count"

    def recv_into(self, s: Any, buffer: Any, nbytes: int, flags: int) -> int:
        s.lower.recv_into(buffer, nbytes, flags)
        return nbytes or len(buffer)


class Dropper(LayeredProvider):
    """bug 10: loses the last byte of every completed overlapped receive."""

    name = "dropper"

    def on_complete(self, s: Any, ov: Overlapped) -> None:
        if ov.op == "recv" and ov.data and len(ov.data) > 1:
            ov.data = bytes(ov.data)[:-1]


class Coalesce(LayeredProvider):
    """Datagram boundaries: a receive also takes the next datagram if one waits."""

    name = "coalesce"

    def recvfrom(self, s: Any, bufsize: int, flags: int) -> tuple[bytes, Any]:
        data, address = s.lower.recvfrom(bufsize, flags)
        if s.lower.ioctl(FIONREAD, 0):
            more, _ = s.lower.recvfrom(bufsize, flags)
            data += more
        return data, address

    def recv(self, s: Any, bufsize: int, flags: int) -> bytes:
        return self.recvfrom(s, bufsize, flags)[0]


class DoubleComplete(LayeredProvider):
    """A14: completes the client's receive itself, and then the base class
    completes it again."""

    name = "double-complete"
    ifs = False

    def on_complete(self, s: Any, ov: Overlapped) -> None:
        if ov.op == "recv":
            nbytes = len(ov.data or b"")
            self.upcalls.complete_overlapped_request(s.handle, ov, ov.error, nbytes)


class SwallowAbort(LayeredProvider):
    """bug 9: turns the abort of pending operations into success."""

    name = "swallow-abort"

    def on_complete(self, s: Any, ov: Overlapped) -> None:
        if ov.error == C.WSA_OPERATION_ABORTED:
            ov.error = 0


class NoCloseBelow(LayeredProvider):
    """bug 9: releases its handle but never closes the rest of the chain."""

    name = "no-close-below"

    def close_socket(self, s: Any) -> None:
        self.upcalls.close_socket_handle(s.handle)


class LeakyClose(LayeredProvider):
    """bug 9/11: closes the chain below but forgets to release its own handle
    (hidden by the host when the application closes; exposed when the layer
    above closes it after a failure)."""

    name = "leaky-close"
    ifs = False

    def close_socket(self, s: Any) -> None:
        s.lower.close_socket()


class NoRestart(LayeredProvider):
    """bug 13: cannot be started again after its cleanup."""

    name = "no-restart"

    def configure(self, options: Any) -> None:
        self.starts = 0

    def startup(self, upcalls: Any) -> None:
        self.starts += 1
        if self.starts > 1:
            raise RuntimeError("already started once")
        super().startup(upcalls)


class Leaky(LayeredProvider):
    """A8/bug 13: starts a thread and opens a pipe at startup; cleanup forgets both."""

    name = "leaky"
    release = threading.Event()
    pipes: list[int] = []

    def startup(self, upcalls: Any) -> None:
        super().startup(upcalls)
        Leaky.pipes += os.pipe()
        threading.Thread(target=Leaky.release.wait, args=(60,), name="leaky", daemon=True).start()


class WrongCode(LayeredProvider):
    """bug 10: reports every failure as WSAECONNABORTED."""

    name = "wrong-code"

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except WSAError as exc:
            raise wsa_error(C.WSAECONNABORTED, f"something went wrong: {exc}") from exc

    def connect(self, s: Any, address: Any) -> None:
        self._call(s.lower.connect, address)

    def send(self, s: Any, data: Any, flags: int) -> int:
        return self._call(s.lower.send, data, flags)  # type: ignore[no-any-return]

    def sendto(self, s: Any, data: Any, flags: int, address: Any) -> int:
        return self._call(s.lower.sendto, data, flags, address)  # type: ignore[no-any-return]

    def recv(self, s: Any, bufsize: int, flags: int) -> bytes:
        return self._call(s.lower.recv, bufsize, flags)  # type: ignore[no-any-return]

    def getpeername(self, s: Any) -> Any:
        return self._call(s.lower.getpeername)

    def accept(self, s: Any) -> Any:
        return self._call(super().accept, s)

    def on_complete(self, s: Any, ov: Overlapped) -> None:
        if ov.error and ov.error != C.WSA_OPERATION_ABORTED:
            ov.error = C.WSAECONNABORTED


class Unconverted(LayeredProvider):
    """A12: lets a plain exception escape where the base reported a WSAError."""

    name = "unconverted"

    def connect(self, s: Any, address: Any) -> None:
        try:
            s.lower.connect(address)
        except WSAError as exc:
            raise RuntimeError(f"connect failed: {exc}") from None


class Swallow(LayeredProvider):
    """bug 11: swallows failures from below and reports success."""

    name = "swallow"

    def send(self, s: Any, data: Any, flags: int) -> int:
        try:
            return s.lower.send(data, flags)  # type: ignore[no-any-return]
        except Exception:
            return len(data)

    def recv(self, s: Any, bufsize: int, flags: int) -> bytes:
        try:
            return s.lower.recv(bufsize, flags)  # type: ignore[no-any-return]
        except Exception:
            return b""

    def recv_into(self, s: Any, buffer: Any, nbytes: int, flags: int) -> int:
        try:
            return s.lower.recv_into(buffer, nbytes, flags)  # type: ignore[no-any-return]
        except Exception:
            return 0


class Poisoned(LayeredProvider):
    """bug 11: after one failure on any socket, fails every socket of the layer."""

    name = "poisoned"

    def configure(self, options: Any) -> None:
        self.poisoned = False

    def _check(self) -> None:
        if self.poisoned:
            raise wsa_error(C.WSAENETDOWN, "poisoned by an earlier failure")

    def connect(self, s: Any, address: Any) -> None:
        self._check()
        try:
            s.lower.connect(address)
        except WSAError:
            self.poisoned = True
            raise

    def send(self, s: Any, data: Any, flags: int) -> int:
        self._check()
        return s.lower.send(data, flags)  # type: ignore[no-any-return]


class ShutdownBoth(LayeredProvider):
    """Shutdown: makes every shutdown SD_BOTH."""

    name = "shutdown-both"

    def shutdown(self, s: Any, how: int) -> None:
        s.lower.shutdown(SD_BOTH)


class ShutdownSendOnly(LayeredProvider):
    """Shutdown: makes every shutdown SD_SEND."""

    name = "shutdown-send-only"

    def shutdown(self, s: Any, how: int) -> None:
        s.lower.shutdown(SD_SEND)


class NoDuplicate(LayeredProvider):
    """A16: refuses WSPDuplicateSocket."""

    name = "no-duplicate"

    def duplicate_socket(self, s: Any) -> None:
        raise wsa_error(C.WSAEOPNOTSUPP, "this layer cannot be shared")


@dataclass(frozen=True)
class Broken:
    layer: type[LayeredProvider]
    base: str
    #: ``-k`` expression selecting the checks to run.
    select: str
    #: Test names (without the chain id) that must fail or error.
    fails: tuple[str, ...]
    #: Text the failure messages must contain (the rule).
    rule: str
    #: Layers to put under the broken one (e.g. so the chain has two layers).
    below: str = ""

    @property
    def spec(self) -> str:
        return f"{self.layer.name},{self.below}{self.base}"


BROKEN = [
    Broken(
        Careless,
        "memory",
        "every_operation and port or many_in_flight",
        ("test_every_operation_completes_exactly_once", "test_many_in_flight_on_the_top_handle"),
        "bug 1 (lost completion)",
    ),
    Broken(
        SkipsImmediate,
        "tcpip",
        "immediate_success",
        ("test_immediate_success_is_still_reported_to_the_port",),
        "bug 2: a receive that could complete at once",
    ),
    Broken(
        LyingIfs,
        "tcpip",
        "handles_come_from",
        ("test_handles_come_from_the_upcalls_and_the_ifs_flag_is_truthful",) * 3,
        "A9/bug 3 (IFS flag truthful)",
    ),
    Broken(
        ForgedHandle,
        "memory",
        "handles_come_from",
        ("test_handles_come_from_the_upcalls_and_the_ifs_flag_is_truthful",) * 3,
        "A9/A10/bug 3 (handles only from create_socket_handle/modify_ifs_handle",
    ),
    Broken(
        ForeignInfo,
        "memory",
        "test_protocol_info_propagation and not another",
        ("test_protocol_info_propagation",),
        "A4/bug 7 (protocol-info propagation",
    ),
    Broken(
        CachedInfo,
        "memory",
        "test_protocol_info_propagation",
        ("test_protocol_info_propagation_under_another_layer",),
        "A4/bug 7 (protocol-info propagation",
        below="observe,",
    ),
    Broken(
        NoWildcards,
        "memory",
        "wildcards",
        ("test_wildcards_and_from_protocol_info_are_accepted",),
        "A4 (wildcards and FROM_PROTOCOL_INFO",
    ),
    Broken(
        Decliner,
        "memory",
        "selection_by_triplet",
        ("test_selection_by_triplet_finds_the_chain_first",),
        "A2/bug 6",
    ),
    Broken(
        WrongCount,
        "memory",
        "test_stream_integrity",
        ("test_stream_integrity_under_random_fragmentation",),
        "bug 10: ",
    ),
    Broken(
        Dropper,
        "tcpip",
        "overlapped_stream_integrity",
        ("test_overlapped_stream_integrity",),
        "bug 10: overlapped stream",
    ),
    Broken(
        Coalesce,
        "tcpip",
        "datagram",
        ("test_datagram_boundaries", "test_datagram_sockets_of_every_entry"),
        "bug 10 (datagrams)",
    ),
    Broken(
        DoubleComplete,
        "memory",
        "every_operation",
        ("test_every_operation_completes_exactly_once",) * 3,
        "A14/A15 (every operation completes exactly once)",
    ),
    Broken(
        SwallowAbort,
        "tcpip",
        "test_close_with_pending or last_cleanup",
        (
            "test_close_with_pending_io_aborts_each_operation_once",
            "test_last_cleanup_aborts_pending_io_and_the_chain_starts_again",
        ),
        "bug 9: close() with I/O pending: a pending recv (port) completed with 0 (success), "
        "expected WSA_OPERATION_ABORTED (995)",
    ),
    Broken(
        NoCloseBelow,
        "memory",
        "close_gives_the_peer",
        ("test_close_gives_the_peer_end_of_stream",),
        "bug 9: the peer of a closed socket got",
    ),
    Broken(
        LeakyClose,
        "memory",
        "exception_above",
        ("test_exception_above_the_chain_is_contained",),
        "bug 9/11: a socket() that failed above the chain left handle(s)",
    ),
    Broken(
        NoRestart,
        "memory",
        "last_cleanup",
        ("test_last_cleanup_aborts_pending_io_and_the_chain_starts_again",),
        "bug 13: the chain cannot start again",
    ),
    Broken(
        Leaky,
        "memory",
        "no_descriptor_or_thread",
        ("test_no_descriptor_or_thread_left_after_cleanup",),
        "A8/bug 13: cycle 1: thread(s) left after cleanup: ['leaky']",
    ),
    Broken(
        WrongCode,
        "tcpip",
        "test_errors",
        (
            "test_connection_refused",
            "test_connection_reset",
            "test_would_block_and_timeout",
            "test_not_connected",
            "test_message_size",
        ),
        "bug 10/A12: ",
    ),
    Broken(
        Unconverted,
        "memory",
        "connection_refused",
        ("test_connection_refused",),
        "bug 10/A12: connect() to a closed port must fail with WSAECONNREFUSED (10061), but it "
        "failed with WSASYSCALLFAILURE (10107) (a provider raised something other than a WSAError)",
    ),
    Broken(
        Swallow,
        "memory",
        "failure_below",
        ("test_failure_below_the_layers_reaches_the_application",) * 2,
        "bug 11: send() failing in the base reported success",
    ),
    Broken(
        Poisoned,
        "memory",
        "other_sockets_survive",
        ("test_other_sockets_survive_a_failing_one",),
        "bug 11: after another socket of the chain failed",
    ),
    Broken(
        ShutdownBoth,
        "memory",
        "sd_send",
        ("test_sd_send_ends_one_direction",),
        "bug 10 (shutdown): SD_SEND also ended the other direction",
    ),
    Broken(
        ShutdownSendOnly,
        "tcpip",
        "receive_shutdown",
        ("test_receive_shutdown_behaves_as_on_the_base",) * 2,
        "bug 10 (shutdown): after shutdown(SD_RECEIVE) (recv, send, peer recv) gave",
    ),
    Broken(
        NoDuplicate,
        "memory",
        "duplicate",
        (
            "test_duplicate_is_honoured_once_and_shares_the_socket",
            "test_duplicate_of_an_overlapped_listener",
        ),
        "A16: duplicating a socket of the chain failed",
    ),
]


@pytest.mark.parametrize("broken", BROKEN, ids=[b.layer.name for b in BROKEN])
def test_each_check_fails_on_a_layer_broken_in_its_respect(
    pytester: pytest.Pytester, broken: Broken
) -> None:
    path = f"{__name__}:{broken.layer.__name__}"
    Leaky.release.clear()
    try:
        result = run_suite(pytester, [broken.spec], (path,), "-k", broken.select)
    finally:
        Leaky.release.set()
        for fd in Leaky.pipes:
            os.close(fd)
        Leaky.pipes.clear()
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    failed = [
        line
        for line in result.outlines
        if line.startswith(("FAILED ", "ERROR ")) and f"[{broken.spec}" in line
    ]
    names = sorted(line.split("::")[1].split("[")[0] for line in failed)
    assert sorted(set(names)) == sorted(set(broken.fails)), out
    # A check failing at teardown too counts once per test.
    assert len({line.split(" - ")[0].split(" ", 1)[1] for line in failed}) == len(broken.fails)
    assert broken.rule in out, out


HONOURS_TWICE = """
import pytest
from wspframe._host import Host


@pytest.fixture(autouse=True)
def _honour_twice(monkeypatch):
    original = Host._open_shared

    def reusable(self, info):
        core = self._shared.get(info.shared_token)
        sock = original(self, info)
        if core is not None:
            self._shared[info.shared_token] = core  # the bug: the token stays usable
        return sock

    monkeypatch.setattr(Host, "_open_shared", reusable)
"""


def test_the_duplicate_check_catches_a_shared_info_honoured_twice(
    pytester: pytest.Pytester,
) -> None:
    """A16/bug 12: no layer can make the host honour a shared protocol info
    twice (the host consumes it), so the check is shown failing on a host
    patched to keep it usable."""
    pytester.makeconftest(HONOURS_TWICE)
    result = run_suite(pytester, ["memory"], (), "-k", "honoured_once")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*A16/bug 12: a shared protocol info was honoured twice (second use: succeeded, "
            "expected WSAEINVAL)*",
            "FAILED *test_duplicate_is_honoured_once_and_shares_the_socket[[]memory]*",
        ]
    )


def test_every_check_of_the_suite_is_shown_to_fail() -> None:
    """Each test function of the suite appears among the broken-layer demonstrations."""
    import ast

    folder = Path(wspframe.__file__).parent.parent.parent / "pytest_wspframe" / "conformance"
    checks = set()
    for path in folder.glob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        checks |= {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        }
    shown = {name for b in BROKEN for name in b.fails}
    assert checks - shown == set()
    assert shown - checks == set()


# -- the CLI ----------------------------------------------------------------------------
def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("wspframe")
    command = [exe] if exe else [sys.executable, "-m", "wspframe"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WSPFRAME_", "PYTEST_"))}
    env["PYTHONPATH"] = str(cwd)  # where a layer under development lives
    return subprocess.run(
        [*command, "conformance", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_runs_the_suite(tmp_path: Path) -> None:
    proc = _cli(
        "memory", "observe,tcpip", "--seed", "7", "-k", "stream or duplicate", "-v", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "wspframe 0.1.0: chains memory, observe,tcpip; seed 7\n" in out
    assert (
        "test_duplicate.py::test_duplicate_of_an_overlapped_listener[observe,tcpip] PASSED" in out
    )
    m = re.search(r"(\d+) passed, (\d+) deselected", out)
    # test_streams.py (4), end_of_stream (1) and test_duplicate.py (2), on both chains
    assert m and int(m.group(1)) == 2 * 7 and "failed" not in out, out


def test_cli_reports_a_failing_chain(tmp_path: Path) -> None:
    path = "careless_layer:Careless"
    (tmp_path / "careless_layer.py").write_text(
        "import wspframe\n\n\n"
        "class Careless(wspframe.LayeredProvider):\n"
        "    name = 'careless'\n"
        "    ifs = False\n\n"
        "    def recv_overlapped(self, s, bufsize, flags, ov):\n"
        "        s.lower.recv_overlapped(bufsize, flags, ov)\n",
        encoding="utf-8",
    )
    proc = _cli(
        "careless,memory", "--provider", path, "-k", "immediate_success", "-v", cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "bug 2: a receive that could complete at once" in proc.stdout
    assert "test_immediate_success_is_still_reported_to_the_port[careless,memory] FAILED" in (
        proc.stdout
    )


def test_cli_usage_error_for_an_unknown_provider(tmp_path: Path) -> None:
    proc = _cli("nosuch,memory", cwd=tmp_path)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "no provider named 'nosuch'; installed:" in proc.stdout + proc.stderr
