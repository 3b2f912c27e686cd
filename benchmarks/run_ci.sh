#!/usr/bin/env bash
# CI: the quick benchmark (under a minute): the JSON kept, the table on the log.
# Gross regressions fail tests/test_bench.py, which runs the same quick mode.
set -euo pipefail
out="${1:-bench-quick.json}"
python -m wspframe bench --quick --json > "$out"
python -c '
import json, sys
from wspframe._bench import Report, format_table
print(format_table(Report.from_dict(json.load(open(sys.argv[1])))), end="")
' "$out"
