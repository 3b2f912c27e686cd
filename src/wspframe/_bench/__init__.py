"""``wspframe bench``: what a chain costs, measured against raw sockets in the same run.

Theory of operation
-------------------
Every row compares a *chain* measurement with its *baseline* taken in the same
process, interleaved: each round opens fresh resources for both, warms both
up, then runs them in alternating slices (A B B A A B ...) and sums each
side's time, so that drift of the machine (frequency, a neighbour's load)
falls on both alike.  A row reports the median over its rounds of the
baseline, of the chain and of the per-round ratio (chain / baseline), with
the ratio's min-max as its spread.

* **Throughput** (64 KiB sends): one thread sends a 64 KiB chunk and then
  receives it at the other end, chunk after chunk ("lock-step").  With a
  sender and a receiver thread instead, on a small machine, the scheduler and
  the GIL hand-off dominate the variance (the same raw loopback pair ran at
  1.7 to 8 GB/s); lock-step measures what the chain adds per call.
* **Round trip** (64 B): a client thread and an echo server thread, pinned to
  one CPU with :func:`os.sched_setaffinity` where the OS allows (and
  unpinned); both ends run through the chain (or both raw).
* **Create + close**: ``host.socket()`` + ``close()`` vs ``socket.socket()`` +
  ``close()``.
* **Completion port**: producer threads complete pre-started overlapped
  operations (``Upcalls.complete_overlapped_request``, what a provider does)
  on handles associated with one port; one consumer ``get()``s them.  The
  baseline hands the same tuples over a bare :class:`queue.SimpleQueue`.
* **Redirected handle**: ``os.write`` in a writer thread, ``os.read`` here,
  on memory sockets after :meth:`~wspframe.Socket.redirect` vs on a raw
  ``socketpair`` (streamed: the redirector is a pipeline stage, and lock-step
  would measure its latency); and the 64 B round trip added over the Socket
  API on the same memory network, both ends redirected.
* **Instructions per layer** (``valgrind --tool=callgrind``): one process runs
  N sends and N receives through a raw socket, a bare ``tcpip`` chain (twice:
  the second is a control), k layers overriding send/recv with a plain
  pass-through, and k ``passthrough`` layers (which override nothing);
  ``--dump-before=os_getppid`` cuts the profile at markers between the
  phases, so imports and set-up do not count.  (chain - bare) / (k * N) is
  the cost of one layer per operation.  Counts are deterministic (fixed hash
  seed, GC off, each variant's loops warmed up in a code object of their
  own): two runs, in parallel, agree to well within 1%.

``MAX_PROTOCOL_CHAIN`` (7) counts the base, so the longest chain holds 6
layers: the "7 layers" targets of the issue are measured on that 7-long chain.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from .._host import Host
from ._callgrind import callgrind_counts
from ._common import FULL, MIB, QUICK, Context, Mode
from ._layers import BenchFastLayer, BenchRelayLayer, layered_spec
from ._report import (
    INFO,
    MISS,
    NOT_INSTALLED,
    PASS,
    UNAVAILABLE,
    Report,
    Row,
    Stat,
    Target,
    _join,
    format_table,
    machine,
)
from ._rows import default_rows, spec_rows

__all__ = [
    "FULL",
    "INFO",
    "MIB",
    "MISS",
    "NOT_INSTALLED",
    "PASS",
    "QUICK",
    "UNAVAILABLE",
    "BenchFastLayer",
    "BenchRelayLayer",
    "Context",
    "Mode",
    "Report",
    "Row",
    "Stat",
    "Target",
    "callgrind_counts",
    "default_rows",
    "format_table",
    "layered_spec",
    "machine",
    "main",
    "run",
    "spec_rows",
]


def run(
    specs: Sequence[str] = (),
    *,
    mode: Mode = FULL,
    only: Sequence[str] = (),
    progress: TextIO | None = None,
) -> Report:
    """Run the benchmark: the default rows, or rows for ``specs``; ``only``
    keeps the rows whose key contains one of its strings."""
    ctx = Context(mode, progress)
    plan = spec_rows(ctx, specs) if specs else default_rows(ctx)
    if only:
        plan = [(row, fn) for row, fn in plan if any(o in row.key for o in only)]
    started = time.perf_counter()
    where = machine()
    rows: list[Row] = []
    for row, fn in plan:
        if row.status in (NOT_INSTALLED, UNAVAILABLE):
            rows.append(row)
            continue
        ctx.say(f"  {row.key} ...")
        t0 = time.perf_counter()
        try:
            fn(row)
        except Exception as exc:
            row.status = UNAVAILABLE
            row.note = _join(row.note, f"failed: {type(exc).__name__}: {exc}")
        ctx.say(f" {time.perf_counter() - t0:.1f} s\n")
        rows.append(row)
    try:
        where["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        pass
    return Report(
        mode=mode.name,
        rounds=mode.rounds,
        machine=where,
        rows=rows,
        elapsed=time.perf_counter() - started,
    )


def main(
    specs: Sequence[str],
    *,
    quick: bool,
    rounds: int | None,
    as_json: bool,
    only: Sequence[str],
    out: TextIO,
    progress: TextIO | None,
) -> int:
    """The ``wspframe bench`` command."""
    if specs:  # a bad spec is the command's error (exit 2), not a failed row
        checker = Host(config=False, providers=[BenchRelayLayer, BenchFastLayer])
        for spec in specs:
            checker.resolve_chain(spec)
    mode = QUICK if quick else FULL
    if rounds is not None:
        if rounds < 1:
            print(f"wspframe: error: --rounds must be >= 1, got {rounds}", file=sys.stderr)
            return 2
        mode = mode.with_rounds(rounds)
    report = run(specs, mode=mode, only=only, progress=progress)
    if as_json:
        json.dump(report.to_dict(), out, indent=2)
        out.write("\n")
    else:
        out.write(format_table(report))
    return 0
