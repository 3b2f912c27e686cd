"""Instructions per layer per operation, counted under ``valgrind --tool=callgrind``."""

from __future__ import annotations

import gc
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from ._common import Context, _chain_pair, _close, _host, _nodelay, _raw_tcp_pair, _stream_entry
from ._layers import BenchFastLayer, BenchRelayLayer, layered_spec
from ._report import UNAVAILABLE, Row, _join, _spread

# -- instructions per layer (callgrind) ----------------------------------------------------------
#: The C function whose entry cuts the callgrind profile (``os.getppid()``).
_MARKER: Final = "os_getppid"
VARIANTS: Final = ("raw", "bare", "bare2", "pass", "fast", "fast2x", "relay", "relay2x")
#: Layers in the chains measured under callgrind.
CALLGRIND_LAYERS: Final = 3


def _send_phase(send: Callable[[bytes], Any], msg: bytes, n: int) -> None:
    for _ in range(n):
        send(msg)


def _recv_phase(recv: Callable[[int], Any], size: int, n: int) -> None:
    for _ in range(n):
        recv(size)


def _own_copy(fn: Callable[..., None]) -> Callable[..., None]:
    """``fn`` with a code object of its own: CPython specializes bytecode per
    code object, and a call site that served another variant first (a C
    method, then a Python one) would stay deoptimized for thousands of calls."""
    copy: Callable[..., None] = types.FunctionType(fn.__code__.replace(), fn.__globals__)
    return copy


def callgrind_child(ops: int, layers: int, batch: int) -> None:
    """Run under callgrind: the measured phases, separated by ``os.getppid()``.

    Per variant (raw TCP, bare tcpip, bare tcpip again as a control,
    ``layers`` passthrough layers, ``layers`` and ``2 * layers`` benchfast
    layers, the same of benchrelay layers), ``ops //
    batch`` times: ``batch`` sends of 16 bytes, then ``batch`` receives of 16
    bytes, each batch its own profile part.  Each variant runs its own copy of
    the loops, warmed up first, so every instruction measured is specialized.
    """
    specs = {
        "bare": "tcpip",
        "bare2": "tcpip",  # a control: how far two identical chains differ
        "pass": layered_spec("passthrough", layers, "tcpip"),
        "fast": layered_spec(BenchFastLayer.name, layers, "tcpip"),
        "fast2x": layered_spec(BenchFastLayer.name, 2 * layers, "tcpip"),
        "relay": layered_spec(BenchRelayLayer.name, layers, "tcpip"),
        "relay2x": layered_spec(BenchRelayLayer.name, 2 * layers, "tcpip"),
    }
    msg = b"\x00" * 16
    size = len(msg)
    with _host(sorted(set(specs.values()))) as host:
        pairs: list[tuple[Any, Any]] = [_raw_tcp_pair()]
        for name in VARIANTS[1:]:
            pairs.append(_chain_pair(host, _stream_entry(host, specs[name])))
        try:
            phases = []
            for a, b in pairs:
                _nodelay(a, b)
                send_phase, recv_phase = _own_copy(_send_phase), _own_copy(_recv_phase)
                for _ in range(4):  # bind every slot, specialize every instruction
                    send_phase(a.send, msg, batch)
                    recv_phase(b.recv, size, batch)
                phases.append((send_phase, recv_phase, a.send, b.recv))
            gc.collect()
            gc.disable()
            mark = os.getppid
            for send_phase, recv_phase, send, recv in phases:
                for _ in range(ops // batch):
                    mark()
                    send_phase(send, msg, batch)
                    mark()
                    recv_phase(recv, size, batch)
            mark()
            gc.enable()
        finally:
            for a, b in pairs:
                _close(a, b)


def callgrind_command(out: Path, ops: int, layers: int, batch: int) -> list[str]:
    valgrind = shutil.which("valgrind") or "valgrind"
    code = (
        "from wspframe._bench._callgrind import callgrind_child; "
        f"callgrind_child({ops}, {layers}, {batch})"
    )
    return [
        valgrind,
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        f"--dump-before={_MARKER}",
        "--dump-instr=no",
        "--collect-jumps=no",
        sys.executable,
        "-c",
        code,
    ]


def callgrind_parts(folder: Path) -> list[int]:
    """The instruction totals of the profile parts in ``folder``, in order."""
    parts: list[tuple[int, int]] = []
    for path in folder.glob("cg.out*"):
        text = path.read_text(encoding="utf-8", errors="replace")
        part = re.search(r"^part:\s*(\d+)", text, re.MULTILINE)
        total = re.search(r"^(?:totals|summary):\s*(\d+)", text, re.MULTILINE)
        if part and total:
            parts.append((int(part.group(1)), int(total.group(1))))
    return [t for _, t in sorted(parts)]


def per_operation(parts: Sequence[int], ops: int, batch: int) -> dict[str, dict[str, float]]:
    """Instructions per send and per recv for each variant, from the parts."""
    batches = ops // batch
    need = 1 + 2 * batches * len(VARIANTS)
    if len(parts) < need:
        raise RuntimeError(
            f"callgrind gave {len(parts)} profile parts, expected at least {need}: "
            f"is the marker function {_MARKER!r} visible (a Python built with symbols)?"
        )
    phases = parts[1:need]
    out: dict[str, dict[str, float]] = {}
    for i, name in enumerate(VARIANTS):
        mine = phases[i * 2 * batches : (i + 1) * 2 * batches]
        out[name] = {
            "send": sum(mine[0::2]) / (batches * batch),
            "recv": sum(mine[1::2]) / (batches * batch),
        }
    return out


def callgrind_counts(
    ops: int, layers: int, batch: int, runs: int = 2
) -> list[dict[str, dict[str, float]]]:
    """Run the callgrind harness ``runs`` times (in parallel); per run, the
    instructions per operation of each variant."""
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = "0"
    env["WSPFRAME_PLUGINS"] = ""
    with tempfile.TemporaryDirectory(prefix="wspframe-callgrind-") as tmp:
        procs = []
        for i in range(runs):
            folder = Path(tmp) / f"run{i}"
            folder.mkdir()
            cmd = callgrind_command(folder / "cg.out", ops, layers, batch)
            procs.append(
                (
                    folder,
                    subprocess.Popen(
                        cmd,
                        cwd=folder,
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    ),
                )
            )
        results = []
        for folder, proc in procs:
            try:
                _, err = proc.communicate(timeout=600)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise RuntimeError("callgrind run timed out") from None
            if proc.returncode != 0:
                tail = "\n".join(err.strip().splitlines()[-15:])
                raise RuntimeError(f"callgrind run failed ({proc.returncode}):\n{tail}")
            results.append(per_operation(callgrind_parts(folder), ops, batch))
    return results


def instructions(ctx: Context, row: Row, variant: str, lower: str, layers: int = 0) -> Row:
    """An instruction row: ``variant`` against ``lower``, per operation (per
    layer when ``layers``), from the callgrind runs (made once per context)."""
    if shutil.which("valgrind") is None:
        row.status = UNAVAILABLE
        row.note = _join(row.note, "valgrind not found (apt-get install valgrind)")
        return row
    try:
        runs = ctx.callgrind()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        row.status = UNAVAILABLE
        row.note = _join(row.note, f"callgrind failed: {exc}")
        return row

    def avg(run: dict[str, dict[str, float]], name: str) -> float:
        return (run[name]["send"] + run[name]["recv"]) / 2

    row.finish([avg(r, lower) for r in runs], [avg(r, variant) for r in runs], layers or 1)
    assert row.result is not None
    per_op = {
        op: [(r[variant][op] - r[lower][op]) / (layers or 1) for r in runs]
        for op in ("send", "recv")
    }
    spread = _spread(row.result.values)
    row.extra.update(
        layers=layers,
        ops=ctx.mode.callgrind_ops,
        runs=len(runs),
        per_op=per_op,
        reproducibility=spread,
    )
    shown = (
        f"{spread:.3%}"
        if row.compare == "ratio" or abs(row.result.median) >= 1
        else (f"{spread:.2f} instructions")
    )
    control = statistics.mean(avg(r, "bare2") - avg(r, "bare") for r in runs)
    row.extra["control"] = control
    row.note = _join(
        row.note,
        f"send {statistics.mean(per_op['send']):.1f}, recv {statistics.mean(per_op['recv']):.1f}; "
        f"{len(runs)} runs differ by {shown}; two identical bare chains differ by "
        f"{control:.1f} per op",
    )
    return row
