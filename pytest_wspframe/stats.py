"""``--wsp-stats``: per-layer operation and byte counts in the terminal summary.

Layers that offer ``stats()`` (a mapping of counter name to number) are
summed over every test; the others are listed as offering none.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

_stats_key = pytest.StashKey[dict[str, dict[str, int]]]()


def record_stats(config: pytest.Config, view: Any) -> None:
    if not config.getoption("wsp_stats"):
        return
    table = config.stash.setdefault(_stats_key, {})
    for element, layer in zip(view.parsed.layers, view.layers, strict=True):
        row = table.setdefault(str(element), defaultdict(int))
        stats = getattr(layer, "stats", None)
        if not callable(stats):
            row.setdefault("(no stats() offered)", 0)
            continue
        for name, value in dict(stats()).items():
            if isinstance(value, (int, float)):
                row[name] += int(value)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not config.getoption("wsp_stats"):
        return
    terminalreporter.section("wspframe stats")
    table = config.stash.get(_stats_key, {})
    if not table:
        terminalreporter.write_line("no test used a chain with layers")
        return
    for layer, row in sorted(table.items()):
        counters = ", ".join(f"{k}={v}" for k, v in sorted(row.items()))
        terminalreporter.write_line(f"{layer}: {counters}")
