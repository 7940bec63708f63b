"""Blocklist overhead (issue 20): list load time and memory, and `shardwatch scan` with a
`url_sha256` list of 1M and 10M entries against the bare scan of the 12.9M-row shard.

Targets: a 10M-entry list fits in at most 1 GB; matching it costs at most 20% on top of the
bare scan. Two measures, the rounds alternating bare and with the list, the best of each
compared: the engine (`scan_shard` in one process, the list compiled before the clock starts:
what a monitor pass pays per shard, since it compiles a list once per process) and the
`shardwatch scan --json` command (which compiles the list first: load time included). Each
list holds random digests plus the SHA-256 of `--matching` URLs taken from the shard, so the
scan must find at least that many rows (checked). Run under `flock /work/coord/bench.lock`.

    python benchmarks/blocklist_overhead.py [--shard PATH] [--sizes 1000000 10000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_SHARD = HERE.parent / ".shardwatch" / "bench" / "laion_like_12900000_0.parquet"
RATIO_TARGET = 1.2
MEMORY_TARGET_MB = 1000.0  # the 1 GB, in MB (10^6 bytes), for the 10M-entry list

LOAD = """
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from shardwatch.scan.blocklists import compile_blocklist
t1 = time.perf_counter()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
b = compile_blocklist("bench", "url_sha256", Path(sys.argv[1]), "critical")
t2 = time.perf_counter()
print(json.dumps({"entries": b.entries, "load_s": t2 - t1, "import_s": t1 - t0,
                  "set_mb": b.keys.nbytes / 1e6, "rss_before_mb": before * 1024 / 1e6}))
"""


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], cwd: Path) -> dict[str, Any]:
    """One command in a child: wall time, peak RSS (os.wait4), CPU time, exit code, stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARDWATCH_")}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if code != 0:
        raise SystemExit(f"{cmd[:4]} exited {code}: {stderr[-2000:]}")
    return {
        "wall_s": wall,
        "peak_mb": usage.ru_maxrss * 1024 / 1e6,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "stdout": stdout,
    }


ENGINE = """
import json, sys, time
from pathlib import Path
from shardwatch.core.lexicon import PRECISE2026
from shardwatch.core.profiles import LAION400M
from shardwatch.scan.blocklists import compile_blocklist
from shardwatch.scan.engine import CompiledLexicon, scan_shard
shard, list_path, rounds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
lists = [compile_blocklist("bench", "url_sha256", list_path, "critical")]
lexicon = CompiledLexicon(PRECISE2026)
out = {"bare": [], "list": [], "rows": None}
for _ in range(rounds):
    for label, given in (("bare", ()), ("list", lists)):
        t = time.perf_counter()
        metrics = scan_shard(shard, LAION400M, lexicon, workers=2, blocklists=given)
        out[label].append(time.perf_counter() - t)
        if given:
            out["rows"] = metrics.blocklists["bench"].rows
print(json.dumps(out))
"""

DIGESTS = """
import hashlib, sys
import numpy as np, pyarrow.parquet as pq
pf = pq.ParquetFile(sys.argv[1])
count = int(sys.argv[2])
groups = pf.num_row_groups
picked = np.linspace(0, groups - 1, num=min(groups, 16)).astype(int).tolist()
per_group = max(1, count // len(picked) + 1)
found = []
for g in picked:
    urls = pf.read_row_group(g, columns=["URL"]).column(0).drop_null().to_pylist()
    step = max(1, len(urls) // per_group)
    found += [hashlib.sha256(u.encode()).hexdigest() for u in urls[::step]]
    if len(found) >= count:
        break
print("\\n".join(found[:count]))
"""


def shard_url_digests(shard: Path, count: int, cwd: Path) -> list[bytes]:
    """Hex SHA-256 of `count` non-null URLs spread over the shard's row groups (read in a
    child: a child's peak RSS on Linux starts from its parent's at fork)."""
    out = run([sys.executable, "-c", DIGESTS, str(shard), str(count)], cwd)["stdout"]
    return [line.encode() for line in out.split()]


def write_list(path: Path, size: int, matching: list[bytes], seed: int) -> None:
    """`size` lines: random hex digests with the matching ones spread among them."""
    rng = np.random.default_rng(seed)
    random_count = size - len(matching)
    with path.open("wb") as f:
        f.write(b"# benchmark remove-list: random SHA-256 digests and some of the shard's\n")
        done = 0
        chunk = 1_000_000
        inserted = 0
        while done < random_count:
            n = min(chunk, random_count - done)
            raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
            hexed = np.frombuffer(raw.tobytes().hex().encode(), dtype=np.uint8).reshape(n, 64)
            lines = np.concatenate([hexed, np.full((n, 1), ord("\n"), np.uint8)], axis=1)
            f.write(lines.tobytes())
            share = len(matching) * (done + n) // random_count
            f.write(b"".join(d + b"\n" for d in matching[inserted:share]))
            inserted = share
            done += n
        f.write(b"".join(d + b"\n" for d in matching[inserted:]))


def config(folder: Path, name: str, list_path: Path | None) -> Path:
    path = folder / f"{name}.toml"
    body = f'state_dir = "{folder / "state"}"\n'
    if list_path is not None:
        body += f'\n[blocklists.bench]\nkind = "url_sha256"\npath = "{list_path}"\n'
    path.write_text(body)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shard", type=Path, default=DEFAULT_SHARD)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--matching", type=int, default=2236, help="list entries in the shard")
    parser.add_argument("--rounds", type=int, default=2, help="scans of each kind, alternating")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if not args.shard.exists():
        raise SystemExit(f"no shard at {args.shard}: see benchmarks/README.md")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="blocklist-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    matching = shard_url_digests(args.shard, args.matching, work)
    log(f"{len(matching)} matching digests from {args.shard.name}; lists in {work}")
    shardwatch = [sys.executable, "-m", "shardwatch"]
    results: dict[str, Any] = {"shard": str(args.shard), "sizes": {}}
    ok = True
    for size in args.sizes:
        list_path = work / f"list_{size}.txt"
        if not list_path.exists():
            t = time.perf_counter()
            write_list(list_path, size, matching, seed=size)
            log(
                f"wrote {list_path.name} ({list_path.stat().st_size / 1e6:.0f} MB) in "
                f"{time.perf_counter() - t:.1f} s"
            )
        load = run([sys.executable, "-c", LOAD, str(list_path)], work)
        info = json.loads(load["stdout"])
        info["peak_mb"] = load["peak_mb"]
        info["added_mb"] = load["peak_mb"] - info["rss_before_mb"]
        log(
            f"{size:,} entries: load {info['load_s']:.2f} s, set {info['set_mb']:.0f} MB, "
            f"peak RSS {info['peak_mb']:.0f} MB (+{info['added_mb']:.0f} MB over the import)"
        )
        engine = json.loads(
            run(
                [sys.executable, "-c", ENGINE, str(args.shard), str(list_path), str(args.rounds)],
                work,
            )["stdout"]
        )
        if engine["rows"] < len(matching):
            raise SystemExit(f"the engine matched {engine['rows']} rows, expected more")
        engine_ratio = min(engine["list"]) / min(engine["bare"])
        log(
            f"engine: bare {[round(x, 2) for x in engine['bare']]} s, with the list "
            f"{[round(x, 2) for x in engine['list']]} s: {engine_ratio:.3f}x"
        )
        bare_cfg, list_cfg = config(work, "bare", None), config(work, f"with_{size}", list_path)
        bare, listed = [], []
        for r in range(args.rounds):
            for label, cfg, into in (("bare", bare_cfg, bare), ("list", list_cfg, listed)):
                res = run(
                    [*shardwatch, "scan", "--json", "--config", str(cfg), str(args.shard)], work
                )
                doc = json.loads(res["stdout"])
                if label == "list":
                    rows = doc["total"]["blocklists"]["bench"]["rows"]
                    if rows < len(matching):
                        raise SystemExit(
                            f"the list matched {rows} rows, expected >= {len(matching)}"
                        )
                    res["rows"] = rows
                into.append(res)
                log(
                    f"round {r + 1} {label}: {res['wall_s']:.2f} s wall, {res['cpu_s']:.1f} s "
                    f"CPU, {res['peak_mb']:.0f} MB"
                )
        best_bare = min(x["wall_s"] for x in bare)
        best_list = min(x["wall_s"] for x in listed)
        ratio = best_list / best_bare
        memory_ok = size < 10_000_000 or info["peak_mb"] <= MEMORY_TARGET_MB
        verdict = "PASS" if engine_ratio <= RATIO_TARGET and memory_ok else "MISS"
        ok = ok and verdict == "PASS"
        results["sizes"][str(size)] = {
            "load": info,
            "bare_wall_s": [round(x["wall_s"], 2) for x in bare],
            "list_wall_s": [round(x["wall_s"], 2) for x in listed],
            "list_peak_mb": round(max(x["peak_mb"] for x in listed)),
            "bare_peak_mb": round(max(x["peak_mb"] for x in bare)),
            "rows_matched": listed[0]["rows"],
            "engine_bare_s": [round(x, 2) for x in engine["bare"]],
            "engine_list_s": [round(x, 2) for x in engine["list"]],
            "engine_ratio": round(engine_ratio, 3),
            "command_ratio": round(ratio, 3),
            "verdict": verdict,
        }
        print(
            f"{size:>11,} entries: load {info['load_s']:.2f} s, peak RSS {info['peak_mb']:.0f} "
            f"MB (set {info['set_mb']:.0f} MB); engine {min(engine['bare']):.2f} s bare vs "
            f"{min(engine['list']):.2f} s with the list: {engine_ratio:.3f}x (target <= "
            f"{RATIO_TARGET}x) {verdict}; scan command {best_bare:.2f} vs {best_list:.2f} s "
            f"(list load included): {ratio:.3f}x"
        )
    print(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
