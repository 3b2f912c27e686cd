"""The tutorial "Write your own layer" (docs/write-your-own-layer.md) works as written.

Its example distribution, ``docs/examples/wspframe-xor``, is pip-installed
into a ``--target`` folder, then found by ``wspframe providers`` and used by
``wspframe demo`` in fresh processes with that folder on ``PYTHONPATH``, and its
own tests pass there.  Every file the tutorial quotes is the file on disk.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[1]
DOCS = EXAMPLES.parent
TUTORIAL = DOCS / "write-your-own-layer.md"
DISTRIBUTION = EXAMPLES / "wspframe-xor"

# A fence right after a line that names the file it shows: `path`:
_QUOTED = re.compile(
    r"^`(?P<path>docs/examples/[^`]+)`:?\s*\n\s*\n```(?P<lang>\w+)\n(?P<body>.*?)\n```",
    re.MULTILINE | re.DOTALL,
)


def quoted_files() -> list[tuple[str, str]]:
    text = TUTORIAL.read_text(encoding="utf-8")
    return [(m["path"], m["body"] + "\n") for m in _QUOTED.finditer(text)]


def test_the_tutorial_quotes_the_files_as_they_are() -> None:
    quoted = quoted_files()
    paths = [path for path, _ in quoted]
    assert "docs/examples/wspframe-xor/pyproject.toml" in paths
    assert "docs/examples/wspframe-xor/src/wspframe_xor/__init__.py" in paths
    assert "docs/examples/wspframe-xor/tests/test_xor.py" in paths
    for path, body in quoted:
        on_disk = (DOCS.parent / path).read_text(encoding="utf-8")
        assert body == on_disk, f"{TUTORIAL.name} quotes {path} differently from the file"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example distribution, pip-installed into a ``--target`` folder."""
    target = tmp_path_factory.mktemp("xor-site")
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
            str(target),
            str(DISTRIBUTION),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"pip install failed:\n{proc.stdout}\n{proc.stderr}"
    assert (target / "wspframe_xor-1.0.0.dist-info").is_dir()
    return target


def run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WSPFRAME_PLUGINS")}
    env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
        check=False,
    )


def test_installed_layer_is_discovered(site: Path, tmp_path: Path) -> None:
    proc = run(site, tmp_path, "-m", "wspframe", "--no-config", "providers", "--json")
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    assert data["providers"]["xor"] == {
        "kind": "layer",
        "distribution": "wspframe-xor",
        "description": "XORs every byte with a key (option: key=HEX, default 5a)",
    }
    plugin = next(p for p in data["plugins"] if p["name"] == "xor")
    assert plugin["version"] == "1.0.0"


def test_installed_layer_runs_in_the_demo(site: Path, tmp_path: Path) -> None:
    proc = run(
        site, tmp_path, "-m", "wspframe", "--no-config", "demo", "--chain", "xor[key=c0ffee],memory"
    )
    assert proc.returncode == 0, proc.stderr
    assert "echo returned b'hello through the chain'" in proc.stdout
    assert "  xor[key=c0ffee]:\n    key c0ffee (3 bytes)" in proc.stdout


def test_the_distributions_own_tests_pass(site: Path, tmp_path: Path) -> None:
    proc = run(
        site,
        tmp_path,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(DISTRIBUTION / "tests"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"\b6 passed\b", proc.stdout), proc.stdout
