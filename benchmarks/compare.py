"""A/B a change: the same ``wspframe bench`` rows on two copies of wspframe.

Runs ``python -m wspframe bench --json`` alternately with each ``src`` folder
first on ``PYTHONPATH`` (``--a`` defaults to this checkout), ``--repeat``
times each, and prints, per row, the median result of each copy and their
ratio.  The way to measure a proposed hot-path change on a scratch copy:

    cp -r src /tmp/wspframe-copy/src   # then edit the copy
    python benchmarks/compare.py --b /tmp/wspframe-copy/src --only tput.tcpip --only rtt.tcpip
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def bench(src: Path, args: argparse.Namespace, cwd: str) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, "-m", "wspframe", "bench", "--json", "--rounds", str(args.rounds)]
    if args.quick:
        cmd.append("--quick")
    for only in args.only or ():
        cmd += ["--only", only]
    cmd += args.specs
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"{src}: wspframe bench failed:\n{done.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="*", help="chain specs, as for wspframe bench")
    parser.add_argument("--a", type=Path, default=ROOT / "src", help="src folder A")
    parser.add_argument("--b", type=Path, required=True, help="src folder B")
    parser.add_argument("--only", action="append", help="row keys (substrings)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each copy")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {"a": {}, "b": {}}
    titles: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(args.repeat):
            for side, src in (("a", args.a), ("b", args.b)):
                for row in bench(src, args, cwd)["rows"]:
                    if row["result"] is None:
                        continue
                    titles[row["key"]] = row["title"]
                    results[side].setdefault(row["key"], []).extend(row["result"]["values"])
    print(f"A = {args.a}\nB = {args.b}\n")
    print(f"{'row':28} {'A median':>10} {'B median':>10} {'B/A':>7}  title")
    for key, title in titles.items():
        a = statistics.median(results["a"].get(key) or [float("nan")])
        b = statistics.median(results["b"].get(key) or [float("nan")])
        ratio = b / a if a else float("nan")
        print(f"{key:28} {a:10.4g} {b:10.4g} {ratio:7.3f}  {title}")


if __name__ == "__main__":
    main()
