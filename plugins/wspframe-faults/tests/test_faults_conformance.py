"""trace and faults pass the SPI conformance suite: the whole suite with no
toxic active, and stream integrity with `slice` fragmenting every send."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

CHAINS = ["faults,memory", "faults,tcpip", "trace,memory", "trace,faults,tcpip"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wspframe", "conformance", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("spec", CHAINS)
def test_quiet_layers_pass_the_whole_suite(spec: str) -> None:
    result = run(spec, "--seed", "7")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " failed" not in result.stdout


@pytest.mark.parametrize("base", ["memory", "tcpip"])
def test_slice_keeps_stream_integrity(base: str) -> None:
    spec = f"faults[slice=7,slice_variation=3,direction=both],{base}"
    result = run(spec, "--seed", "7", "-k", "integrity")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    ran = re.search(r"(\d+) passed", result.stdout)
    assert ran and int(ran.group(1)) >= 2, result.stdout[-2000:]  # both integrity checks ran
