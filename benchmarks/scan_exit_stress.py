"""Stress `shardwatch scan --json`'s exit status: repeat it many times and tally the codes.

Each case runs `python -m shardwatch scan --json ...` RUNS times in fresh processes, JOBS at a
time (two or more at once is how a scheduler runs them), and checks every run:
- the exit code is one of the documented table (shardwatch.cli.exit_codes.ExitCode) and the one
  the case expects (0 for the real rows, 3 for the malformed TSV);
- stdout is exactly one complete JSON document.
Cases: the real LAION-400M rows (parquet), the real COYO-700M rows (CSV, --profile coyo700m)
and a malformed CC3M TSV (a row with 3 fields, --profile cc3m).

Exit 134 ("terminate called without an active exception") used to appear here about once in
16-70 runs: see docs/exit-134.md. This script exits 1 if any run breaks the rules above.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shardwatch.cli.exit_codes import ExitCode

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REAL = ROOT.parent / "shared" / "fixtures" / "real"


def malformed_tsv(folder: Path) -> Path:
    """A header-less CC3M TSV whose second row has three fields."""
    path = folder / "malformed_cc3m.tsv"
    rows = ["a dog on a beach\thttp://example.com/1.jpg"] * 50
    rows.insert(1, "a row with\tthree\tfields")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def one_run(args: list[str], cwd: Path) -> tuple[int, str]:
    """(exit code, problem or '') of one `scan --json` run."""
    cmd = [sys.executable, "-m", "shardwatch", "scan", "--json", "--no-progress", *args]
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    code = done.returncode if done.returncode >= 0 else 128 - done.returncode
    try:
        doc = json.loads(done.stdout)
        problem = "" if isinstance(doc, dict) and "total" in doc else "JSON without a total"
    except json.JSONDecodeError:
        problem = "stdout is not one JSON document"
    lines = done.stderr.strip().splitlines()
    fatal = [line for line in lines if "terminate called" in line or "Fatal Python" in line]
    if fatal or "Traceback" in done.stderr:
        problem = (fatal[0] if fatal else lines[-1])[:200]
    return code, problem


def stress(name: str, args: list[str], expected: int, runs: int, jobs: int, cwd: Path) -> bool:
    tally: Counter[int] = Counter()
    problems: Counter[str] = Counter()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for i, (code, problem) in enumerate(pool.map(lambda _: one_run(args, cwd), range(runs))):
            tally[code] += 1
            if problem:
                problems[problem] += 1
            if (i + 1) % 25 == 0 or i + 1 == runs:
                seen = ", ".join(f"{c}: {n}" for c, n in sorted(tally.items()))
                print(f"  {name}: {i + 1}/{runs} runs; exit codes {seen}", flush=True)
    wall = time.perf_counter() - t0
    documented = {int(c) for c in ExitCode}
    bad = {c: n for c, n in tally.items() if c not in documented}
    wrong = {c: n for c, n in tally.items() if c != expected}
    ok = not bad and not wrong and not problems
    seen = ", ".join(f"exit {c}: {n}" for c, n in sorted(tally.items()))
    print(f"{name}: {runs} runs in {wall:.0f} s, {jobs} at a time: {seen}")
    for problem, n in problems.most_common():
        print(f"  {n} run(s): {problem}")
    if bad:
        print(f"  UNDOCUMENTED exit code(s): {bad}")
    if wrong:
        print(f"  expected exit {expected} only; got {wrong}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200, help="runs per case (default 200)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument(
        "--real", type=Path, default=DEFAULT_REAL, help=f"real-rows folder (default {DEFAULT_REAL})"
    )
    parser.add_argument(
        "--case",
        action="append",
        choices=["laion", "coyo", "malformed"],
        help="run only this case (repeatable; default all)",
    )
    args = parser.parse_args(argv)
    chosen = args.case or ["laion", "coyo", "malformed"]
    with tempfile.TemporaryDirectory(prefix="scan-exit-stress-") as tmp:
        cwd = Path(tmp)
        cases = {
            "laion": ([str(args.real / "laion400m_url_text_10000.parquet")], ExitCode.OK),
            "coyo": (
                [str(args.real / "coyo700m_sample_rows.csv"), "--profile", "coyo700m"],
                ExitCode.OK,
            ),
            "malformed": ([str(malformed_tsv(cwd)), "--profile", "cc3m"], ExitCode.INPUT),
        }
        os.environ.setdefault("PYTHONFAULTHANDLER", "1")
        results = [
            stress(name, cases[name][0], int(cases[name][1]), args.runs, args.jobs, cwd)
            for name in chosen
        ]
    print("PASS: only the expected, documented exit codes" if all(results) else "FAIL")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
