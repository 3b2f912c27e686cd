"""Fixtures of the trace layer's tests: hosts, and Debian's tshark."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator

import pytest

import wspframe
from wspframe import Host

TSHARK_PACKAGE = "tshark"


@pytest.fixture
def make_host() -> Iterator[Callable[..., Host]]:
    """``make_host("trace,memory")``: a started host, cleaned up after."""
    hosts: list[Host] = []

    def make(*chains: str) -> Host:
        host = wspframe.Host(chains=list(chains), config=False)
        host.startup()
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        if host.started:
            host.cleanup()


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        ["apt-get", *args], capture_output=True, text=True, env=env, timeout=900, check=False
    )


@pytest.fixture(scope="session")
def tshark() -> str:
    """The path of tshark, installed from Debian's packages if it is missing.

    Skips (saying why) only where it cannot be installed: no apt-get, not
    root, or the package manager failing.
    """
    found = shutil.which("tshark")
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("tshark is not installed and there is no apt-get to install it with")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        pytest.skip("tshark is not installed and installing it needs root (apt-get)")
    proc = _apt("install", "-y", "--no-install-recommends", TSHARK_PACKAGE)
    if proc.returncode != 0:
        _apt("update")
        proc = _apt("install", "-y", "--no-install-recommends", TSHARK_PACKAGE)
    found = shutil.which("tshark")
    if proc.returncode != 0 or not found:
        tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-5:])
        pytest.skip(f"tshark could not be installed with apt-get: {tail}")
    return found
