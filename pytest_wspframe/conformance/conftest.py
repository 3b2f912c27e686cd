"""Shared fixtures of the conformance suite.

The suite's own layers (``conformance-record``, ``conformance-explode``) are
added to the hosts of the run, so a check can layer them *above* the chain
under test with ``wsp_host.install_chain("conformance-record," + spec)``.
"""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_wspframe.plugin import providers_key, seed_key

from ._layers import SUITE_LAYERS


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect the suite's modules even where the project's ``python_files``
    would not match ``test_*.py`` (the suite runs inside any project)."""
    if not (file_path.name.startswith("test_") and file_path.suffix == ".py"):
        return None
    if file_path.parent != Path(__file__).parent:
        return None
    try:
        from _pytest.python import path_matches_patterns
    except ImportError:  # pragma: no cover - pytest's own collection then decides
        return None
    if path_matches_patterns(file_path, parent.config.getini("python_files")):
        return None  # pytest's python plugin collects it
    return pytest.Module.from_parent(parent, path=file_path)  # type: ignore[no-any-return]


def pytest_configure(config: pytest.Config) -> None:
    extra = list(config.stash.get(providers_key, []))
    names = {cls.name for cls in extra}
    extra += [cls for cls in SUITE_LAYERS if cls.name not in names]
    config.stash[providers_key] = extra


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A random generator seeded from ``--wsp-seed`` and the test's name, so a
    run is replayed exactly with the seed its header printed."""
    node = request.node
    return random.Random(f"{request.config.stash[seed_key]}:{node.module.__name__}:{node.name}")


@pytest.fixture(autouse=True)
def _no_escaped_exceptions() -> Iterator[None]:
    """Fail a check when a provider let an exception escape into a thread or a
    completion callback (reported to ``sys.unraisablehook``/``threading.excepthook``):
    bug 11, and for "completed twice" errors the exactly-once rule (A14/A15)."""
    escaped: list[str] = []
    old_unraisable, old_thread = sys.unraisablehook, threading.excepthook

    def unraisable(info: Any) -> None:
        escaped.append(f"{info.err_msg or 'unraisable'}: {info.exc_value!r}")

    def thread_hook(args: Any) -> None:
        name = args.thread.name if args.thread is not None else "?"
        escaped.append(f"in thread {name}: {args.exc_value!r}")

    sys.unraisablehook = unraisable
    threading.excepthook = thread_hook
    try:
        yield
    finally:
        sys.unraisablehook, threading.excepthook = old_unraisable, old_thread
    if escaped:
        twice = any("completed twice" in e for e in escaped)
        rule = "A14/A15 (every operation completes exactly once)" if twice else "bug 11"
        pytest.fail(
            f"{rule}: exceptions escaped from the chain with nobody to report them to:\n  "
            + "\n  ".join(escaped),
            pytrace=False,
        )
