"""Shared fixtures: hosts that always clean up, and leak counting."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

import wspframe


def open_fds() -> set[int]:
    """Descriptors open in this process (Linux: /proc/self/fd)."""
    return {int(n) for n in os.listdir("/proc/self/fd")}


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fail if the test leaves a descriptor or a thread behind."""
    fds = open_fds()
    threads = set(threading.enumerate())
    yield
    # Anything opened in between (listdir's own fd aside) must be gone.
    leaked_fds = open_fds() - fds
    leaked_threads = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
    assert not leaked_fds, f"descriptors leaked: {sorted(leaked_fds)}"
    assert not leaked_threads, f"threads leaked: {leaked_threads}"


@pytest.fixture
def host() -> Iterator[wspframe.Host]:
    """A started host with the built-in providers and no pyproject configuration."""
    with wspframe.Host(config=False) as h:
        yield h
