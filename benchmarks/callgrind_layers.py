"""Instructions per layer per operation, with valgrind's callgrind, and where they go.

Runs the harness of ``wspframe bench`` (``wspframe._bench._callgrind.callgrind_child``)
under ``valgrind --tool=callgrind``: one process sends and receives N times
through a raw TCP socket, a bare ``tcpip`` chain (twice: the second is a
control), K ``passthrough`` layers (which override nothing), K and 2K
``benchfast`` layers (send/recv pass-throughs on the socket class, the fast
form) and K and 2K ``benchrelay`` layers (the same as provider methods), with
the profile cut at ``os.getppid()`` markers between the phases.  Prints
instructions per operation for each variant and per layer (what K more
layers add); ``--functions`` adds, per C function of the interpreter, what K
more layers of ``--form`` add per layer and operation
(``callgrind_annotate``), which is how the cost of a ``__getattr__`` on the
dispatch class was found.

    python benchmarks/callgrind_layers.py [--ops N] [--layers K] [--runs R] [--functions]

Set PYTHONPATH to measure another copy of wspframe (an experiment).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from wspframe._bench import _callgrind as _cg


def run_once(folder: Path, ops: int, layers: int, batch: int) -> dict[str, dict[str, float]]:
    env = dict(os.environ, PYTHONHASHSEED="0", WSPFRAME_PLUGINS="")
    cmd = _cg.callgrind_command(folder / "cg.out", ops, layers, batch)
    done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode:
        sys.exit(f"callgrind failed:\n{done.stderr[-3000:]}")
    return _cg.per_operation(_cg.callgrind_parts(folder), ops, batch)


def self_costs(path: Path) -> dict[str, int]:
    """Self cost per function of one profile part (``callgrind_annotate``)."""
    out = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--inclusive=no", "--auto=no", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    costs: dict[str, int] = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(\S.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            name = re.sub(r" \[.*\]$", "", m.group(2)).split("/")[-1]
            costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def function_diff(folder: Path, ops: int, layers: int, batch: int, top: int, form: str) -> None:
    """Per function: what ``layers`` more layers of ``form`` (fast or relay)
    add, / (layers * ops), send and recv phases together."""
    batches = ops // batch
    parts = {}
    for path in folder.glob("cg.out*"):
        m = re.search(r"^part:\s*(\d+)", path.read_text(errors="replace"), re.MULTILINE)
        if m:
            parts[int(m.group(1))] = path
    variants = list(_cg.VARIANTS)

    def phase_files(variant: str) -> list[Path]:
        first = 2 + variants.index(variant) * 2 * batches
        return [parts[i] for i in range(first, first + 2 * batches)]

    def total(variant: str) -> dict[str, int]:
        acc: dict[str, int] = {}
        for path in phase_files(variant):
            for name, cost in self_costs(path).items():
                acc[name] = acc.get(name, 0) + cost
        return acc

    bare, relay = total(form), total(f"{form}2x")
    scale = layers * ops * 2
    rows = sorted(((relay.get(k, 0) - bare.get(k, 0)) / scale, k) for k in set(bare) | set(relay))

    def totals(variant: str) -> int:
        found = (
            re.search(r"^totals:\s*(\d+)", path.read_text(errors="replace"), re.MULTILINE)
            for path in phase_files(variant)
        )
        return sum(int(m.group(1)) for m in found if m)

    whole = (totals(f"{form}2x") - totals(form)) / scale
    # callgrind_annotate also lists, at the full cost, the frames the loop
    # runs under (main, run_mod, ...): leave those out.
    rows = [(cost, name) for cost, name in rows if abs(cost) < 0.99 * abs(whole)]
    print(f"\nper layer per operation, {whole:.1f} in all; by function (top {top}):")
    for cost, name in sorted(rows, key=lambda r: -abs(r[0]))[:top]:
        print(f"  {cost:8.1f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=10_000, help="operations per phase")
    parser.add_argument("--batch", type=int, default=500, help="operations per profile part")
    parser.add_argument("--layers", type=int, default=3, help="layers in the measured chains")
    parser.add_argument("--runs", type=int, default=2, help="runs (in parallel)")
    parser.add_argument("--functions", action="store_true", help="per-function breakdown")
    parser.add_argument("--top", type=int, default=25, help="functions shown")
    parser.add_argument(
        "--form",
        choices=("fast", "relay"),
        default="fast",
        help="layers of --functions: fast form (benchfast) or provider methods (benchrelay)",
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="wspframe-callgrind-") as tmp:
        folders = [Path(tmp) / f"run{i}" for i in range(args.runs)]
        for f in folders:
            f.mkdir()
        with ThreadPoolExecutor(args.runs) as pool:
            runs = list(pool.map(lambda f: run_once(f, args.ops, args.layers, args.batch), folders))
        k = args.layers
        for i, r in enumerate(runs):
            print(f"run {i + 1}: instructions per operation")
            for variant, ops in r.items():
                print(f"  {variant:6} send {ops['send']:9.1f}  recv {ops['recv']:9.1f}")
            for variant in ("fast", "relay"):
                send = (r[f"{variant}2x"]["send"] - r[variant]["send"]) / k
                recv = (r[f"{variant}2x"]["recv"] - r[variant]["recv"]) / k
                print(f"  per {variant} layer ({k} more): send {send:8.1f}  recv {recv:8.1f}")
            send = (r["pass"]["send"] - r["bare"]["send"]) / k
            recv = (r["pass"]["recv"] - r["bare"]["recv"]) / k
            print(f"  per passthrough layer: send {send:8.1f}  recv {recv:8.1f}")
        if len(runs) > 1:
            per = [
                (r["fast2x"]["send"] + r["fast2x"]["recv"] - r["fast"]["send"] - r["fast"]["recv"])
                / (2 * k)
                for r in runs
            ]
            spread = (max(per) - min(per)) / max(per)
            print(f"per fast-form layer per operation: {per}; runs differ by {spread:.4%}")
        if args.functions:
            function_diff(folders[0], args.ops, args.layers, args.batch, args.top, args.form)


if __name__ == "__main__":
    main()
