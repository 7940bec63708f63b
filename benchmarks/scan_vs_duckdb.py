"""Time `shardwatch scan` vs DuckDB SQL on a synthetic LAION-400M part; all counts must agree."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

KEYWORDS = ("porn", "hot", "adult", "xxx", "sex", "fuck", "rape")
TERMS = ("desi", "nun", "latina", "mom", "sister", "daughter", "daddy", "mother", "aunty", "mummy",
         "maa", "abuela", "asian", "indian", "nigerian", "african", "korean", "black woman",
         "school girl", "school boy", "european")
EXTRA_TERMS = ("girl", "woman", "wife", "bride")
DECOYS = ("photo", "hotel", "shot", "design", "announcement", "grapes", "therapeutic", "sussex",
          "adulthood", "moment", "caucasian", "indiana", "nunavut")
LABELS = ("UNLIKELY", "UNSURE", "NSFW")
THRESHOLD = 0.3
COLUMNS = {"id": "SAMPLE_ID", "url": "URL", "text": "TEXT", "nsfw_tag": "NSFW",
           "similarity": "similarity", "width": "WIDTH", "height": "HEIGHT", "license": "LICENSE"}
HIST_LO, HIST_HI, HIST_BPU = -1.0, 1.0, 200
RSS_TARGET_MB, SPEED_TARGET, TERM_TARGET = 1536.0, 0.75, 2.0


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- generator
def write_shard(out: Path, rows: int, seed: int, rg_size: int) -> None:
    """Generate the shard with shardwatch.demo.synth (imported here: the parent stays small)."""
    from shardwatch.demo.synth import write_shard as synth_write

    t0 = time.perf_counter()
    synth_write(out, rows, seed, rg_size, log=log)
    log(f"generated {out} in {time.perf_counter() - t0:.1f}s ({out.stat().st_size / 1e6:.0f} MB)")


def _vocabulary() -> list[str]:
    """The synth vocabulary, read in a child so this process never loads numpy/pyarrow."""
    code = (
        "import json; from shardwatch.demo.synth import vocabulary; "
        "print(json.dumps(vocabulary()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    words: list[str] = json.loads(out.stdout)
    return words


# ---------------------------------------------------------------------------- DuckDB
def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _rx(term: str) -> str:
    body = "".join("\\" + c if c in r"\.^$|?*+()[]{}" else c for c in term.lower())
    return rf"(^|[^\p{{L}}\p{{N}}_]){body}([^\p{{L}}\p{{N}}_]|$)"


def duckdb_metrics(path: str) -> dict[str, Any]:
    """The docs/metrics.md counts for the laion400m profile and birhane2021 lexicon, in SQL."""
    import duckdb

    con, src, nbins = duckdb.connect(), f"read_parquet({_q(path)})", int(2 * HIST_BPU)
    labels = ", ".join(map(_q, LABELS))

    def tags(c: str) -> list[str]:
        return [*(f"count_if({c} AND tag = {_q(x)})" for x in LABELS),
                f"count_if({c} AND tag NOT IN ({labels}))", f"count_if({c} AND tag IS NULL)"]

    kw = " OR ".join(f"contains(t, {_q(k)}) OR contains(u, {_q(k)})" for k in KEYWORDS)
    # word mode: RE2 regex, only evaluated (CASE) where the plain substring occurs
    flags = ", ".join(f"contains(t, {_q(x)}) AS s{i}, CASE WHEN contains(t, {_q(x)}) THEN "
                      f"regexp_matches(t, {_q(_rx(x))}) ELSE false END AS m{i}"
                      for i, x in enumerate(TERMS))
    aggs = ["count(*)", *tags("true"), "count_if(kw)"]
    for i in range(len(TERMS)):
        aggs += [f"count_if(m{i})", f"count_if(m{i} AND kw)", f"count_if(s{i})", *tags(f"m{i}")]
    it = iter(con.execute(f"""
        WITH b AS (SELECT lower(coalesce(TEXT, '')) AS t, lower(coalesce(URL, '')) AS u,
                          NSFW AS tag FROM {src}),
             f AS (SELECT tag, ({kw}) AS kw, {flags} FROM b)
        SELECT {', '.join(aggs)} FROM f""").fetchone())

    def counts() -> dict[str, int]:
        return dict(zip([*LABELS, "other", "null"], [next(it) for _ in range(5)], strict=True))

    res: dict[str, Any] = {"rows": next(it), "nsfw_flag_counts": counts(),
                           "keyword_nsfw_rows": next(it)}
    res["terms"] = {x: {"matches": next(it), "keyword_nsfw": next(it),
                        "substring_matches": next(it), "nsfw_flag_counts": counts()} for x in TERMS}
    ok, sim = "NOT isnan(similarity)", "similarity"  # NULL fails every test; NaN is null too
    nulls = ", ".join(f"count_if({c} IS NULL OR isnan({c}))" if c in (
        "SAMPLE_ID", "similarity", "WIDTH", "HEIGHT") else f"count_if({c} IS NULL)"
        for c in COLUMNS.values())
    r = con.execute(f"""
        SELECT count({sim}) FILTER ({ok}), count(*) - count({sim}) FILTER ({ok}),
               count_if({ok} AND {sim} < {THRESHOLD}::DOUBLE),
               min({sim}) FILTER ({ok}), max({sim}) FILTER ({ok}), sum({sim}) FILTER ({ok}),
               count_if({ok} AND {sim} < {HIST_LO}::DOUBLE),
               count_if({ok} AND {sim} > {HIST_HI}::DOUBLE), {nulls}
        FROM {src}""").fetchone()
    # duplicates: separate queries (DuckDB is ~1.6x slower with DISTINCT mixed into the above)
    dup_id = con.execute(f"""SELECT count(SAMPLE_ID) - count(DISTINCT SAMPLE_ID)
        FROM {src} WHERE NOT isnan(SAMPLE_ID)""").fetchone()[0]
    dup_url = con.execute(f"SELECT count(URL) - count(DISTINCT URL) FROM {src}").fetchone()[0]
    hist = [0] * nbins
    for i, c in con.execute(f"""
            SELECT least(floor(({sim} - ({HIST_LO})::DOUBLE) * {HIST_BPU}::DOUBLE)::BIGINT,
                         {nbins - 1}) AS i, count(*)
            FROM {src} WHERE {ok} AND {sim} BETWEEN {HIST_LO}::DOUBLE AND {HIST_HI}::DOUBLE
            GROUP BY i""").fetchall():
        hist[i] = c
    res["similarity"] = {"count": r[0], "null": r[1], "below_threshold": r[2], "min": r[3],
                         "max": r[4], "sum": r[5],
                         "histogram": {"counts": hist, "underflow": r[6], "overflow": r[7]}}
    res["duplicates"] = {"id": dup_id, "url": dup_url}
    res["nulls"] = dict(zip(COLUMNS, r[8:], strict=True))
    return res


# ---------------------------------------------------------------------------- measuring
def run_measured(label: str, cmd: list[str], repeat: int) -> tuple[float, float, Any]:
    """Best wall time of `repeat` runs of `cmd`, the highest child peak RSS (MiB, from
    os.wait4's ru_maxrss in KiB) and the JSON the last run printed on stdout."""
    best, peak, doc = math.inf, 0.0, None
    for i in range(repeat):
        log(f"{label}: run {i + 1}/{repeat} ...")
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:  # e.g. Ctrl-C: do not leave the child running
                proc.kill()
                raise
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{stderr[-3000:]}")
        try:
            doc = json.loads(stdout)
        except json.JSONDecodeError as e:
            raise RuntimeError(f"{' '.join(cmd)}: stdout is not JSON ({e}): {stdout[:300]}") from e
        best, peak = min(best, wall), max(peak, usage.ru_maxrss / 1024)
        log(f"{label}: {wall:.2f}s, peak RSS {usage.ru_maxrss / 1024:.0f} MiB")
    return best, peak, doc


def engine_cmd(path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "shardwatch", "scan", str(path), "--json", *extra]


def _flatten(d: Any, prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    if isinstance(d, dict | list):
        items = d.items() if isinstance(d, dict) else enumerate(d)
        return [kv for k, v in items for kv in _flatten(v, (*prefix, k))]
    return [(prefix, d)]


def compare(engine: dict[str, Any], ref: dict[str, Any]) -> tuple[int, list[str]]:
    """Compare every value of `ref` with the engine's: ints exactly, floats to 1e-9 relative."""
    problems, flat = [], _flatten(ref)
    for path, want in flat:
        name, got = ".".join(map(str, path)), engine
        try:
            for key in path:
                got = got[key]
        except (KeyError, IndexError, TypeError):
            problems.append(f"{name}: missing in engine JSON")
            continue
        if isinstance(want, float) and isinstance(got, int | float):
            same = math.isclose(got, want, rel_tol=1e-9)
        else:
            same = type(got) is type(want) and got == want
        if not same:
            problems.append(f"{name}: engine {got!r} != duckdb {want!r}")
    return len(flat), problems


def term_sets() -> dict[int, list[str]]:
    """The 3/25/100-term lexicons: Table 1, + the other birhane2021 terms, + decoys and words."""
    import random

    sets = {3: ["desi", "nun", "latina"], 25: [*TERMS, *EXTRA_TERMS]}
    words = [w for w in _vocabulary()[20:1500] if w.isalpha() and len(w) > 3
             and w not in sets[25]]
    sets[100] = [*sets[25], *DECOYS, *random.Random(100).sample(words, 62)]
    assert len(set(sets[100])) == 100
    return sets


def term_scaling(path: Path, default: Any, repeat: int, problems: list[str]) -> dict[int, float]:
    """Engine wall times with the 3/25/100-term lexicons; their shared terms' counts must match
    the default (birhane2021) run."""
    times, sets, toml = {}, term_sets(), []
    for n, terms in sets.items():  # plain strings: keywords are substring, terms word mode
        toml += [f"[lexicons.bench{n}]", f"keywords = {json.dumps(list(KEYWORDS))}",
                 f"terms = {json.dumps(terms, ensure_ascii=False)}", ""]
    with tempfile.TemporaryDirectory() as tmp:
        (cfg := Path(tmp) / "bench_lexicons.toml").write_text("\n".join(toml), encoding="utf-8")
        for n, terms in sets.items():
            cmd = engine_cmd(path, "--config", str(cfg), "--lexicon", f"bench{n}")
            times[n], _, doc = run_measured(f"engine {n} terms", cmd, repeat)
            if len(doc["total"]["terms"]) != n:
                problems.append(f"bench{n}: engine did not report {n} terms")
            for t in sorted(set(terms) & set(TERMS)):
                got, want = (d["total"]["terms"].get(t) for d in (doc, default))
                if got != want:
                    problems.append(f"terms.{t}: bench{n} run {got} != default run {want}")
    return times


# ---------------------------------------------------------------------------- main
HELP = """Generates (or reuses) a deterministic LAION-400M-like parquet shard, then times
`python -m shardwatch scan FILE --json` (laion400m profile, birhane2021 lexicon) and the same
metrics as DuckDB SQL, each in a subprocess (wall time; peak RSS from os.wait4). Every count of
docs/metrics.md must agree (exit 1 otherwise; 2 if a run fails). Then times the engine with
3/25/100-term lexicons (a temporary TOML via --config/--lexicon) and prints the targets:
engine <= 0.75x DuckDB wall time, engine peak RSS <= 1.5 GiB, 100 terms <= 2x 3 terms."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"{__doc__}\n\n{HELP}",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add("--rows", type=int, default=12_900_000, help="rows to generate (default: one real part)")
    add("--seed", type=int, default=0, help="generator seed (default 0)")
    add("--out", type=Path, help="shard path (default .shardwatch/bench/"
        "laion_like_<rows>_<seed>.parquet); reused if it exists")
    add("--regenerate", action="store_true", help="rewrite the shard even if it exists")
    add("--row-group-size", type=int, default=1_048_576, help="rows per row group and chunk")
    add("--repeat", type=int, default=1, help="report the best of N runs (default 1)")
    add("--skip-duckdb", action="store_true", help="do not run DuckDB (so no count check)")
    add("--skip-terms", action="store_true", help="skip the 3/25/100-term scaling runs")
    add("--generate-only", action="store_true", help="only (re)write the shard, then exit")
    add("--_duckdb-worker", dest="worker", metavar="FILE",
        help="internal: print the DuckDB metrics of FILE as JSON and exit")
    return p.parse_args(argv)


def report(path: Path, rows: int, r: dict[str, Any], problems: list[str], checked: int) -> None:
    busy = r["load"] > 0.75 * (os.cpu_count() or 1)
    print(f"\nshard: {path}\n  {rows:,} rows, {path.stat().st_size / 1e6:,.0f} MB, "
          f"best of {r['repeat']} run(s), {os.cpu_count()} CPUs, load average {r['load']:.1f} "
          f"at start{' (busy machine: timings unreliable)' if busy else ''}\n")
    print(f"{'':10}{'wall (s)':>10}{'rows/s':>14}{'peak RSS (MiB)':>16}")
    for name in ("engine", "duckdb") if "duckdb" in r else ("engine",):
        print(f"{name:10}{r[name][0]:>10.2f}{rows / r[name][0]:>14,.0f}{r[name][1]:>16,.0f}")
    targets = [(f"engine peak RSS <= {RSS_TARGET_MB:.0f} MiB", f"{r['engine'][1]:.0f} MiB",
                r["engine"][1] <= RSS_TARGET_MB)]
    if "duckdb" in r:
        ratio = r["engine"][0] / r["duckdb"][0]
        print(f"engine/duckdb wall time: {ratio:.2f}x")
        targets.insert(0, (f"engine wall <= {SPEED_TARGET}x DuckDB", f"{ratio:.2f}x",
                           ratio <= SPEED_TARGET))
    if "terms" in r:
        ratio = r["terms"][100] / r["terms"][3]
        print("\nterm scaling (engine, 7 keywords):")
        print("\n".join(f"  {n:>3} terms {wall:>8.2f} s" for n, wall in r["terms"].items()))
        print(f"  100/3 terms: {ratio:.2f}x")
        targets.append((f"100 terms <= {TERM_TARGET}x 3 terms", f"{ratio:.2f}x",
                        ratio <= TERM_TARGET))
    print("\ntargets:")
    for text, shown, ok in targets:
        print(f"  {text:34}{shown:>10}  {'PASS' if ok else 'MISS'}")
    if "duckdb" not in r:
        print("\ncounts: not checked against DuckDB (--skip-duckdb)")
    elif not problems:
        print(f"\ncounts: all {checked} values agree between engine and DuckDB")
    if problems:
        print(f"\ncounts: {len(problems)} DISAGREEMENT(S):")
        print("\n".join(f"  {p}" for p in problems[:60]))
        if len(problems) > 60:
            print(f"  ... and {len(problems) - 60} more")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(duckdb_metrics(args.worker)))
        return 0
    out = args.out or Path(f".shardwatch/bench/laion_like_{args.rows}_{args.seed}.parquet")
    if args.generate_only:
        write_shard(out, args.rows, args.seed, args.row_group_size)
        return 0
    if args.regenerate or not out.exists():  # in a child, so this process stays small: a
        # child's ru_maxrss starts at its parent's RSS at fork time (Linux keeps it over exec)
        subprocess.run([sys.executable, __file__, "--generate-only", "--rows", str(args.rows),
                        "--seed", str(args.seed), "--out", str(out),
                        "--row-group-size", str(args.row_group_size)], check=True)
    else:
        log(f"reusing {out} (--regenerate to rewrite it)")
    path = out.resolve()
    duck_cmd = [sys.executable, str(Path(__file__).resolve()), "--_duckdb-worker", str(path)]
    r: dict[str, Any] = {"repeat": args.repeat, "load": os.getloadavg()[0]}
    problems: list[str] = []
    checked = 0
    try:
        # The SQL is the paper's rule (birhane2021), so the engine runs that lexicon too.
        paper_rule = engine_cmd(path, "--lexicon", "birhane2021")
        *r["engine"], e_doc = run_measured("engine", paper_rule, args.repeat)
        if not args.skip_duckdb:
            *r["duckdb"], d_doc = run_measured("duckdb", duck_cmd, args.repeat)
            checked, problems = compare(e_doc["total"], d_doc)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not args.skip_terms:
        try:
            r["terms"] = term_scaling(path, e_doc, args.repeat, problems)
        except RuntimeError as e:
            problems.append(f"term scaling failed: {e}")
    report(path, e_doc["total"]["rows"], r, problems, checked)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
