"""Fixed costs of the command line: start-up and a monitor pass that finds nothing new.

Each case runs in fresh subprocesses (best of --repeat, default 5), from a temporary folder
that holds its own state (store, cache, GX project, Prefect home):
1. `shardwatch --version`;
2. `shardwatch scan --help`;
3. `shardwatch report --json` on a small store (2 shards of --rows rows, built here);
4. `shardwatch run` over a local folder source of those 2 shards, already ingested (nothing
   new), once per mode: `prefect` through Prefect's temporary server (no PREFECT_API_URL),
   `prefect` against a running `prefect server start` that the script starts on a loopback
   port first (skip with --no-server), and `local` (`run --local`: the same stages in this
   process, no Prefect API). A mode the installed `shardwatch run` lacks is printed as n/a.

Prints each best wall time next to its target with PASS or MISS. The store is built by one
untimed `shardwatch run` (in the local mode when there is one). Opt-in: about 2 minutes.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

START_TARGET = 0.3  # s: `--version`, `scan --help`, `report --json`
PASS_TARGET = 5.0  # s: a monitor pass that finds nothing new


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def best_of(cmd: list[str], cwd: Path, env: dict[str, str], repeat: int) -> tuple[float, str]:
    """(best wall seconds of `repeat` fresh runs, last stdout); the command must exit 0."""
    times = []
    out = ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            sys.exit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
        out = done.stdout
    return min(times), out


@contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """`prefect server start` on a free loopback port, its database under `home`; yields
    its API URL once /api/health answers, and stops it after."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false"
    )
    exe = str(Path(sys.executable).with_name("prefect"))
    cmd = [exe, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit("prefect server start did not answer /api/health within 180 s")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def verdict(seconds: float | None, target: float) -> str:
    if seconds is None:
        return f"{'n/a':>8}   target <= {target:4.1f} s   -"
    return f"{seconds:8.2f} s target <= {target:4.1f} s   {'PASS' if seconds <= target else 'MISS'}"


def nothing_new(config: Path, env: dict[str, str], repeat: int, *extra: str) -> float:
    """Best wall time of `shardwatch run` when every shard is already stored."""
    exe = str(Path(sys.executable).with_name("shardwatch"))
    cmd = [exe, "run", "--config", str(config), *extra]
    log(" ".join(cmd[1:]) + (" (PREFECT_API_URL)" if "PREFECT_API_URL" in env else "") + " ...")
    seconds, out = best_of(cmd, config.parent, env, repeat)
    said = [line for line in out.splitlines() if line.startswith("run ")]
    if not said or not said[0].endswith(": 2 unchanged"):
        sys.exit(f"expected nothing new, the pass said {said}")
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per case (best of N)")
    parser.add_argument("--rows", type=int, default=1_000, help="rows per shard (default 1000)")
    parser.add_argument(
        "--no-server", action="store_true", help="skip the pass against a running Prefect server"
    )
    args = parser.parse_args(argv)
    exe = str(Path(sys.executable).with_name("shardwatch"))
    with tempfile.TemporaryDirectory(prefix="sw-fixed-costs-") as tmp:
        work = Path(tmp)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SHARDWATCH_") and k != "PREFECT_API_URL"
        }
        env.update(PREFECT_HOME=str(work / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
        shards = work / "shards"
        shards.mkdir()
        from shardwatch.demo.synth import write_shard

        for seed in (1, 2):
            write_shard(shards / f"part-{seed:05d}.parquet", args.rows, seed)
        config = work / "shardwatch.toml"
        config.write_text(
            f'dataset = "bench"\n[sources.bench]\ntype = "local"\npath = "{shards}"\n'
        )
        run_help = subprocess.run(
            [exe, "run", "--help"], capture_output=True, text=True, env=env, check=True
        ).stdout
        local = "--local" in run_help
        first = [exe, "run", "--config", str(config)] + (["--local"] if local else [])
        log("first pass (builds the store) ...")
        done = subprocess.run(first, cwd=work, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"the first pass exited {done.returncode}:\n{done.stderr[-2000:]}")
        rows: list[tuple[str, float | None, float]] = []
        cases = [
            ("shardwatch --version", [exe, "--version"]),
            ("shardwatch scan --help", [exe, "scan", "--help"]),
            (
                "shardwatch report --json (2 shards)",
                [exe, "report", "--json", "--config", str(config)],
            ),
        ]
        for name, cmd in cases:
            log(f"{name} ...")
            rows.append((name, best_of(cmd, work, env, args.repeat)[0], START_TARGET))
        prefix = "run, nothing new, "
        rows.append(
            (
                prefix + "prefect (temporary server)",
                nothing_new(config, env, args.repeat),
                PASS_TARGET,
            )
        )
        name = prefix + "prefect (server running, PREFECT_API_URL)"
        if args.no_server:
            rows.append((name, None, PASS_TARGET))
        else:
            log("starting prefect server ...")
            with prefect_server(work / "prefect-server") as url:
                served = {**env, "PREFECT_API_URL": url}
                rows.append((name, nothing_new(config, served, args.repeat), PASS_TARGET))
        seconds = nothing_new(config, env, args.repeat, "--local") if local else None
        rows.append((prefix + "local (run --local)", seconds, PASS_TARGET))
    print(f"\nfixed costs, best of {args.repeat}, {os.cpu_count()} CPUs, {args.rows:,} rows/shard")
    for name, seconds, target in rows:
        print(f"  {name:<60} {verdict(seconds, target)}")


if __name__ == "__main__":
    main()
