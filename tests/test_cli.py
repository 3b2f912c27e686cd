"""The ``wspframe`` command: catalog, providers and chain.

Most checks call :func:`wspframe._cli.main` in-process with the built-in
plugin only (``WSPFRAME_PLUGINS=""``) from a folder without a
``pyproject.toml``; a few run the installed console script in a fresh process.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import wspframe
from wspframe import FIRST_CATALOG_ID, XP1, provider_uuid
from wspframe._cli import main

BASES = ("tcpip", "memory")
LAYERS = ("passthrough", "observe")
FORM_HINT = "name[option=value,...]"

#: The netsh-like fields of every catalog entry, in order.
FIELDS = (
    "Entry Type",
    "Description",
    "Provider ID",
    "Provider Path",
    "Catalog Entry ID",
    "Version",
    "Address Family",
    "Max Address Length",
    "Min Address Length",
    "Socket Type",
    "Protocol",
    "Service Flags",
    "Protocol Chain Length",
)


@pytest.fixture(autouse=True)
def builtins_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from an empty folder, with the built-in plugin only."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WSPFRAME_PLUGINS", "")
    return tmp_path


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(list(argv), out=out)
    return status, out.getvalue()


def run_ok(*argv: str) -> str:
    status, text = run(*argv)
    assert status == 0
    return text


def catalog_json(*argv: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(run_ok("catalog", "--json", *argv))
    return data


def console_script() -> str:
    here = Path(sys.executable).parent / "wspframe"
    found = str(here) if here.exists() else shutil.which("wspframe")
    assert found, "the 'wspframe' console script is not installed"
    return found


def run_script(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["WSPFRAME_PLUGINS"] = ""
    return subprocess.run(
        [console_script(), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def parse_blocks(text: str) -> list[dict[str, str]]:
    """The text catalog as one dict per entry (field name -> value)."""
    blocks = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        assert lines[0] == "Winsock Catalog Provider Entry"
        assert set(lines[1]) == {"-"}
        fields = {}
        for line in lines[2:]:
            match = re.fullmatch(r"([A-Za-z ]+):\s+(.*)", line)
            assert match, line
            fields[match.group(1)] = match.group(2)
        blocks.append(fields)
    return blocks


# -- catalog -------------------------------------------------------------------------------
def test_catalog_json_lists_the_builtin_base_entries() -> None:
    entries = catalog_json()
    ids = [e["catalog_entry_id"] for e in entries]
    assert ids == list(range(FIRST_CATALOG_ID, FIRST_CATALOG_ID + len(entries)))
    tcpip = [e for e in entries if e["name"].startswith("tcpip [")]
    memory = [e for e in entries if e["name"].startswith("memory [")]
    assert len(tcpip) >= 1
    assert len(memory) >= 1
    assert len(tcpip) + len(memory) == len(entries)
    assert max(e["catalog_entry_id"] for e in tcpip) < min(e["catalog_entry_id"] for e in memory)
    for entry in entries:
        assert entry["catalog_entry_id"] >= 1001
        assert entry["entry_type"] == "Base Service Provider"
        assert entry["chain"] == [entry["catalog_entry_id"]]
        assert entry["chain_len"] == 1
    for entry in tcpip:
        assert entry["service_flags"] & 0x20000
        assert entry["provider_id"] == str(provider_uuid("tcpip"))
    for entry in memory:
        assert not entry["service_flags"] & 0x20000
        assert entry["provider_id"] == str(provider_uuid("memory"))
    assert {(e["address_family"], e["socket_type"], e["protocol"]) for e in tcpip} >= {
        (wspframe.AF_INET, wspframe.SOCK_STREAM, wspframe.IPPROTO_TCP),
        (wspframe.AF_INET, wspframe.SOCK_DGRAM, wspframe.IPPROTO_UDP),
    }
    assert entries[0]["name"] == "tcpip [TCP/IP]"


def test_catalog_json_matches_a_host() -> None:
    host = wspframe.Host(config=False)
    assert catalog_json() == [e.to_dict() for e in host.enum_all()]


def test_catalog_text_has_the_netsh_fields_of_each_entry() -> None:
    entries = catalog_json()
    blocks = parse_blocks(run_ok("catalog"))
    assert len(blocks) == len(entries)
    for fields, entry in zip(blocks, entries, strict=True):
        assert list(fields) == [*FIELDS, "Protocol Chain"]
        assert fields["Entry Type"] == entry["entry_type"] == "Base Service Provider"
        assert fields["Description"] == entry["name"]
        assert fields["Provider ID"] == "{" + entry["provider_id"].upper() + "}"
        assert fields["Catalog Entry ID"] == str(entry["catalog_entry_id"])
        assert fields["Version"] == str(entry["version"])
        assert fields["Address Family"] == str(entry["address_family"])
        assert fields["Max Address Length"] == str(entry["max_sockaddr"])
        assert fields["Min Address Length"] == str(entry["min_sockaddr"])
        assert fields["Socket Type"] == str(entry["socket_type"])
        assert fields["Protocol"] == str(entry["protocol"])
        assert fields["Service Flags"] == hex(entry["service_flags"])
        assert fields["Protocol Chain Length"] == "1"
        assert fields["Protocol Chain"] == str(entry["catalog_entry_id"])
    first = blocks[0]
    assert first["Description"] == "tcpip [TCP/IP]"
    assert first["Provider Path"] == "wspframe._tcpip:TcpipProvider"
    assert first["Catalog Entry ID"] == "1001"
    assert int(first["Service Flags"], 16) & XP1.IFS_HANDLES
    memory = [b for b in blocks if b["Description"].startswith("memory [")]
    assert memory
    assert all(not int(b["Service Flags"], 16) & XP1.IFS_HANDLES for b in memory)


def test_catalog_with_a_chain_shows_chain_and_layered_entries() -> None:
    entries = catalog_json("--chain", "observe,memory")
    blocks = parse_blocks(run_ok("catalog", "--chain", "observe,memory"))
    assert [b["Catalog Entry ID"] for b in blocks] == [str(e["catalog_entry_id"]) for e in entries]
    memory = [e for e in entries if e["name"].startswith("memory [")]
    layered = [e for e in entries if e["entry_type"] == "Layered Service Provider"]
    assert [e["name"] for e in layered] == ["observe"]
    layer_id = layered[0]["catalog_entry_id"]
    chains = entries[: len(memory)]
    for chain, base in zip(chains, memory, strict=True):
        assert chain["entry_type"] == "Layered Chain Entry"
        assert chain["name"] == f"observe over [{base['name']}]"
        assert chain["chain"] == [layer_id, base["catalog_entry_id"]]
    by_id = {b["Catalog Entry ID"]: b for b in blocks}
    chain_block = by_id[str(chains[0]["catalog_entry_id"])]
    assert chain_block["Entry Type"] == "Layered Chain Entry"
    assert chain_block["Protocol Chain Length"] == "2"
    assert chain_block["Protocol Chain"] == f"{layer_id} : {memory[0]['catalog_entry_id']}"
    assert chain_block["Provider Path"] == "wspframe._passthrough:ObserveLayer"
    layer_block = by_id[str(layer_id)]
    assert layer_block["Entry Type"] == "Layered Service Provider"
    assert layer_block["Protocol Chain Length"] == "0"
    assert "Protocol Chain" not in layer_block


def test_catalog_with_two_chains_orders_them_as_given() -> None:
    entries = catalog_json("--chain", "passthrough,memory", "--chain", "observe,tcpip")
    names = [e["name"] for e in entries]
    assert names[0] == "passthrough over [memory [TCP/IP]]"
    first_observe = next(i for i, n in enumerate(names) if n.startswith("observe over"))
    last_passthrough = max(i for i, n in enumerate(names) if n.startswith("passthrough over"))
    assert last_passthrough < first_observe


def test_catalog_with_a_bad_chain_is_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, text = run("catalog", "--chain", "observe,nosuch")
    assert status == 2
    assert text == ""
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert "'nosuch'" in err[0]


# -- chain -------------------------------------------------------------------------------
def test_chain_describes_a_valid_chain() -> None:
    text = run_ok("chain", "observe , passthrough,tcpip")
    lines = text.splitlines()
    assert lines[:5] == [
        "chain observe,passthrough,tcpip: valid",
        "  0: observe (layer, wspframe)",
        "  1: passthrough (layer, wspframe)",
        "  2: tcpip (base, wspframe)",
        "entries:",
    ]
    entries = lines[5:]
    tcpip = [e for e in catalog_json() if e["name"].startswith("tcpip [")]
    assert len(entries) == len(tcpip)
    for line, base in zip(entries, tcpip, strict=True):
        match = re.fullmatch(
            r"  (\d+)  (.*)  flags=(0x[0-9a-f]+)  chain=\((\d+), (\d+), (\d+)\)", line
        )
        assert match, line
        assert int(match.group(1)) >= FIRST_CATALOG_ID
        assert match.group(2) == f"observe over [passthrough over [{base['name']}]]"
        assert int(match.group(3), 16) == base["service_flags"]
        assert int(match.group(6)) == base["catalog_entry_id"]


def test_chain_shows_layer_options() -> None:
    text = run_ok("chain", "passthrough[tag=x],memory")
    lines = text.splitlines()
    assert lines[0] == "chain passthrough[tag=x],memory: valid"
    assert lines[1] == "  0: passthrough (layer, wspframe) options {'tag': 'x'}"
    assert lines[2] == "  1: memory (base, wspframe)"
    assert all("passthrough[tag=x] over [memory [" in line for line in lines[4:])
    assert len(lines) > 4


def test_chain_of_a_bare_base_lists_its_entries() -> None:
    text = run_ok("chain", "memory")
    lines = text.splitlines()
    assert lines[:3] == ["chain memory: valid", "  0: memory (base, wspframe)", "entries:"]
    memory = [e for e in catalog_json() if e["name"].startswith("memory [")]
    assert [int(line.split()[0]) for line in lines[3:]] == [e["catalog_entry_id"] for e in memory]


BAD_SPECS = [
    # (spec, words the one error line must hold)
    ("tarce", ["'tarce'", *BASES, *LAYERS]),
    ("tarce,tcpip", ["'tarce'", *BASES, *LAYERS]),
    ("observe,tcpip,memory", ["'tcpip'", *LAYERS]),
    ("tcpip,memory", ["'tcpip'", *LAYERS]),
    ("observe,passthrough", ["'passthrough'", *BASES]),
    ("observe", ["'observe'", *BASES]),
]


def _names_choices(line: str) -> bool:
    """A syntax error names the form of a spec, or the installed providers."""
    return FORM_HINT in line or all(n in line for n in (*BASES, *LAYERS))


@pytest.mark.parametrize(("spec", "words"), BAD_SPECS)
def test_chain_with_a_bad_spec_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], spec: str, words: list[str]
) -> None:
    status, text = run("chain", spec)
    captured = capsys.readouterr()
    assert status == 2
    assert text == ""
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("wspframe: error: ")
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize(
    "spec", ["trace[", "trace[latency", "trace[=1],tcpip", "", "Trace,tcpip", "trace,,tcpip"]
)
def test_chain_with_malformed_spec_names_the_form(
    capsys: pytest.CaptureFixture[str], spec: str
) -> None:
    status, text = run("chain", spec)
    captured = capsys.readouterr()
    assert status == 2
    assert text == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("wspframe: error: ")
    assert _names_choices(lines[0]), lines[0]


def test_chain_with_bad_layer_option_is_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, _ = run("chain", "observe[nosuch=1],tcpip")
    assert status == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "observe" in lines[0]
    assert "nosuch" in lines[0]


# -- providers -------------------------------------------------------------------------
def test_providers_text_lists_plugins_and_providers() -> None:
    lines = run_ok("providers").splitlines()
    version = wspframe.__version__
    described = wspframe.Host(config=False).discovery.providers
    kinds = (
        ("tcpip", "base "),
        ("memory", "base "),
        ("passthrough", "layer"),
        ("observe", "layer"),
    )
    assert lines == [
        "Plugins:",
        f"  {'builtin':<14} wspframe {version}: tcpip, memory, passthrough, observe",
        "Providers:",
        *(f"  {name:<14} {kind}  wspframe  {described[name].description}" for name, kind in kinds),
    ]
    assert all(described[name].description for name, _ in kinds)
    assert "Load failures:" not in lines


def test_providers_json() -> None:
    data = json.loads(run_ok("providers", "--json"))
    assert data["plugins"] == [
        {
            "name": "builtin",
            "distribution": "wspframe",
            "version": wspframe.__version__,
            "providers": ["tcpip", "memory", "passthrough", "observe"],
        }
    ]
    assert {n: p["kind"] for n, p in data["providers"].items()} == {
        "tcpip": "base",
        "memory": "base",
        "passthrough": "layer",
        "observe": "layer",
    }
    assert all(p["distribution"] == "wspframe" for p in data["providers"].values())
    assert all(p["description"] for p in data["providers"].values())
    assert data["failures"] == []


# -- configuration ---------------------------------------------------------------------
def test_catalog_follows_pyproject_config_unless_no_config(builtins_only: Path) -> None:
    (builtins_only / "pyproject.toml").write_text(
        '[tool.wspframe]\nchains = ["observe,memory"]\norder = ["memory"]\n', encoding="utf-8"
    )
    entries = catalog_json()
    names = [e["name"] for e in entries]
    assert names[0] == "observe over [memory [TCP/IP]]"
    memory_at = names.index("memory [TCP/IP]")
    assert all(not n.startswith("tcpip") for n in names[:memory_at])
    plain = json.loads(run_ok("--no-config", "catalog", "--json"))
    assert plain[0]["name"] == "tcpip [TCP/IP]"
    assert not any(e["name"].startswith("observe") for e in plain)


def test_bad_pyproject_config_is_status_2(
    builtins_only: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (builtins_only / "pyproject.toml").write_text(
        "[tool.wspframe]\nmax_sockets = 0\n", encoding="utf-8"
    )
    status, text = run("catalog")
    assert status == 2
    assert text == ""
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "max_sockets" in lines[0]
    assert run("--no-config", "catalog")[0] == 0


# -- the console script, in fresh processes ------------------------------------------------
def test_console_script_catalog_json(tmp_path: Path) -> None:
    proc = run_script(tmp_path, "catalog", "--json")
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)
    assert entries == catalog_json()
    by_name = {e["name"]: e for e in entries}
    assert by_name["tcpip [TCP/IP]"]["catalog_entry_id"] == FIRST_CATALOG_ID
    assert by_name["tcpip [TCP/IP]"]["service_flags"] & 0x20000
    assert by_name["memory [TCP/IP]"]["catalog_entry_id"] > FIRST_CATALOG_ID
    assert not by_name["memory [TCP/IP]"]["service_flags"] & 0x20000


def test_console_script_catalog_text(tmp_path: Path) -> None:
    proc = run_script(tmp_path, "catalog")
    assert proc.returncode == 0, proc.stderr
    assert parse_blocks(proc.stdout) == parse_blocks(run_ok("catalog"))


def test_console_script_chain(tmp_path: Path) -> None:
    proc = run_script(tmp_path, "chain", "observe,memory")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == run_ok("chain", "observe,memory")


@pytest.mark.parametrize(
    ("spec", "word"),
    [("tarce,tcpip", "'tarce'"), ("trace[", "trace"), ("tcpip,memory", "'tcpip'")],
)
def test_console_script_bad_spec(tmp_path: Path, spec: str, word: str) -> None:
    proc = run_script(tmp_path, "chain", spec)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("wspframe: error: ")
    assert word in lines[0]
    assert "Traceback" not in proc.stderr


def test_console_script_providers(tmp_path: Path) -> None:
    proc = run_script(tmp_path, "providers")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == run_ok("providers")


def test_python_dash_m_matches_console_script(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["WSPFRAME_PLUGINS"] = ""
    proc = subprocess.run(
        [sys.executable, "-m", "wspframe", "catalog", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == catalog_json()
