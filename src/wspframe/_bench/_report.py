"""Rows, reports and the terminal table of ``wspframe bench``."""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import shutil
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final


# -- results -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Stat:
    """Median and range of one quantity over the rounds."""

    median: float
    min: float
    max: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        vals = tuple(float(v) for v in values)
        return cls(statistics.median(vals), min(vals), max(vals), vals)

    def to_dict(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "values": list(self.values),
        }


@dataclasses.dataclass(frozen=True)
class Target:
    """``result op value``: ``>=``, ``<=`` or ``==`` (the latter within ``tolerance``)."""

    op: str
    value: float
    tolerance: float = 0.0

    def met(self, x: float) -> bool:
        if self.op == ">=":
            return x >= self.value
        if self.op == "<=":
            return x <= self.value
        return abs(x - self.value) <= self.tolerance

    def __str__(self) -> str:
        if self.op == "==" and self.tolerance:
            return f"{self.value:g} ± {self.tolerance:g}"
        return f"{self.op} {self.value:g}"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "value": self.value, "tolerance": self.tolerance}


#: Row statuses.
PASS: Final = "pass"
MISS: Final = "miss"
INFO: Final = "info"
NOT_INSTALLED: Final = "not installed"
UNAVAILABLE: Final = "unavailable"


@dataclasses.dataclass
class Row:
    """One measure: baseline and chain values, their comparison, the target."""

    key: str
    title: str
    unit: str
    baseline_label: str
    chain_label: str
    #: "ratio" (chain / baseline), "difference" (chain - baseline) or
    #: "per-layer" ((chain - baseline) / layers).
    compare: str
    target: Target | None
    baseline: Stat | None = None
    chain: Stat | None = None
    result: Stat | None = None
    status: str = INFO
    note: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def finish(self, baseline: Sequence[float], chain: Sequence[float], layers: int = 1) -> Row:
        """Fill in the statistics from per-round values, and the status."""
        if self.compare == "ratio":
            results = [c / b for b, c in zip(baseline, chain, strict=True)]
        elif self.compare == "difference":
            results = [c - b for b, c in zip(baseline, chain, strict=True)]
        else:
            results = [(c - b) / layers for b, c in zip(baseline, chain, strict=True)]
        self.baseline = Stat.of(baseline)
        self.chain = Stat.of(chain)
        self.result = Stat.of(results)
        if self.target is None:
            self.status = INFO
        else:
            self.status = PASS if self.target.met(self.result.median) else MISS
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "unit": self.unit,
            "baseline_label": self.baseline_label,
            "chain_label": self.chain_label,
            "compare": self.compare,
            "baseline": None if self.baseline is None else self.baseline.to_dict(),
            "chain": None if self.chain is None else self.chain.to_dict(),
            "result": None if self.result is None else self.result.to_dict(),
            "target": None if self.target is None else self.target.to_dict(),
            "status": self.status,
            "note": self.note,
            "extra": self.extra,
        }


@dataclasses.dataclass
class Report:
    """A whole run: the machine, the mode, the rows."""

    mode: str
    rounds: int
    machine: dict[str, Any]
    rows: list[Row]
    elapsed: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """The report :meth:`to_dict` (``--json``) describes."""

        def stat(d: Mapping[str, Any] | None) -> Stat | None:
            if d is None:
                return None
            return Stat(d["median"], d["min"], d["max"], tuple(d["values"]))

        rows = []
        for r in data["rows"]:
            t = r["target"]
            rows.append(
                Row(
                    r["key"],
                    r["title"],
                    r["unit"],
                    r["baseline_label"],
                    r["chain_label"],
                    r["compare"],
                    None if t is None else Target(t["op"], t["value"], t["tolerance"]),
                    stat(r["baseline"]),
                    stat(r["chain"]),
                    stat(r["result"]),
                    r["status"],
                    r["note"],
                    dict(r["extra"]),
                )
            )
        return cls(data["mode"], data["rounds"], dict(data["machine"]), rows, data["elapsed_s"])

    def to_dict(self) -> dict[str, Any]:
        from .. import __version__

        return {
            "wspframe": __version__,
            "mode": self.mode,
            "rounds": self.rounds,
            "elapsed_s": round(self.elapsed, 3),
            "machine": self.machine,
            "rows": [r.to_dict() for r in self.rows],
        }


def machine() -> dict[str, Any]:
    """The machine, as the report describes it."""
    model = ""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        model = found.group(1).strip() if found else ""
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": model or platform.processor() or "unknown",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "valgrind": _valgrind_version(),
        "load_average": load,
    }


def _valgrind_version() -> str | None:
    exe = shutil.which("valgrind")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _spread(values: Sequence[float]) -> float:
    """Relative difference between the extreme values (0 for one value)."""
    if len(values) < 2:
        return 0.0
    hi, lo = max(values), min(values)
    scale = max(abs(hi), abs(lo))
    if scale < 1.0:  # ~0 instructions: compare absolutely
        return hi - lo
    return (hi - lo) / scale


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b


# -- output -------------------------------------------------------------------------------------
def _num(x: float) -> str:
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _result(row: Row) -> tuple[str, str]:
    if row.result is None:
        return "-", "-"
    r = row.result
    if row.compare == "ratio":
        return f"{r.median:.3f}", f"{r.min:.3f}..{r.max:.3f}"
    unit = row.unit
    return f"{_num(r.median)} {unit}", f"{_num(r.min)}..{_num(r.max)}"


def _load(values: Any) -> str:
    if not values:
        return "?"
    return "/".join(f"{v:.2f}" for v in values)


def format_table(report: Report) -> str:
    """The report as a terminal table (every row: baseline, chain, result, spread,
    target, status), then notes."""
    m = report.machine
    lines = [
        f"wspframe bench ({report.mode} mode, {report.rounds} rounds, "
        f"{report.elapsed:.0f} s): {m.get('nproc')} CPUs ({m.get('cpu_model')}), "
        f"{m.get('implementation')} {m.get('python')}; load average "
        f"{_load(m.get('load_average'))} before, {_load(m.get('load_average_after'))} after",
        "each row: median over rounds of baseline and chain, and of the per-round "
        "ratio (chain / baseline) or difference, with its min-max",
        "",
    ]
    header = ("measure", "baseline", "chain", "result", "spread", "target", "status")
    body: list[tuple[str, ...]] = []
    notes: list[str] = []
    for row in report.rows:
        base = "-" if row.baseline is None else f"{_num(row.baseline.median)} {row.unit}"
        chain = "-" if row.chain is None else f"{_num(row.chain.median)} {row.unit}"
        result, spread = _result(row)
        target = "-" if row.target is None else str(row.target)
        body.append((row.title, base, chain, result, spread, target, row.status))
        if row.note:
            notes.append(f"  {row.key}: {row.note}")
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]
    widths[0] = min(widths[0], 86)

    def fmt(cells: tuple[str, ...]) -> str:
        first = cells[0] if len(cells[0]) <= widths[0] else cells[0][: widths[0] - 1] + "…"
        parts = [first.ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1], strict=True)]
        parts.append(cells[-1])
        return "  ".join(parts)

    lines.append(fmt(header))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(fmt(r) for r in body)
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines) + "\n"
