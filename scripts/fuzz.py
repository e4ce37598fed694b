"""Run the property fuzzers with many cases (10,000 per property by default).

The suite runs `tests/unit/test_fuzz_parsers.py` with a few hundred cases each, to stay fast;
this runs the same properties with `--examples` cases each (Range parser, conditional headers,
the CAR readers of extract and verify) and prints one line per property. The HTTP servers are
fuzzed from their OpenAPI documents by tests/integration/test_api_schemathesis.py and
tests/integration/test_provider_schemathesis.py.

    .venv/bin/python scripts/fuzz.py [--examples 10000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULE = "tests/unit/test_fuzz_parsers.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="cases per property")
    args = parser.parse_args()
    env = {**os.environ, "DW_FUZZ_EXAMPLES": str(args.examples)}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "0", "-q", "-rA", "-p", "no:cacheprovider",
         "--timeout", "0", MODULE],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    for line in result.stdout.splitlines():
        found = re.match(r"(PASSED|FAILED|ERROR) \S+::(\w+)", line)
        if found:
            print(f"{found[2]}: {args.examples} cases, {found[1].lower()}")
    print(f"total {seconds:.0f}s, exit code {result.returncode}")
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-2000:], sep="\n")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
