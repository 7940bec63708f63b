"""Time `shardwatch scan` vs DuckDB SQL on a synthetic LAION-400M part; all counts must agree."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
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
# issue 19's targets: engine <= 0.6x DuckDB's best; peak RSS <= 1 GiB and flat in shard size
# (at most FLAT_TARGET x its peak on a --flat-rows shard); 100 terms <= 1.5x 3 terms
RSS_TARGET_MB, SPEED_TARGET, TERM_TARGET, FLAT_TARGET = 1024.0, 0.6, 1.5, 1.25


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


WORD = r"[\p{L}\p{N}_]"  # Python's \w on lower-cased text, as in docs/metrics.md


def _rx_escape(text: str) -> str:
    return "".join("\\" + c if c in r"\.^$|?*+()[]{}" else c for c in text)


def _sql_list(items: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(map(_q, items)) + "]"


def duckdb_metrics(path: str, terms_query: str = "tokens") -> dict[str, Any]:
    """The docs/metrics.md counts for the laion400m profile and birhane2021 lexicon, in DuckDB's
    fastest formulation we know (issue 19): three scans.
    1. Every non-DISTINCT aggregate in one pass: tags, the keyword test as one regexp over
       lower(TEXT) and lower(URL), similarity, the histogram (`histogram()` of the bin
       index) and nulls.
    2. The two DISTINCT counts alone (mixed into 1, DISTINCT de-parallelises it: ~1.6x).
    3. The terms in one pass over lower(TEXT), prefiltered by a regexp union of every term:
       substring hits with `list_filter(terms, lambda x: contains(lt, x))`; word hits with
       `terms_query` = "tokens" (single-word terms as `list_intersect` with the row's word
       tokens, exact; a multi-word term by its own regexp) or "union" (the issue's
       `list_distinct(regexp_extract_all(lt, union))` over text whose non-word characters are
       doubled, so that adjacent terms keep a boundary each); then `unnest` and GROUP BY term,
       tag and keyword flag."""
    import duckdb

    con, src, nbins = duckdb.connect(), f"read_parquet({_q(path)})", int(2 * HIST_BPU)
    labels = ", ".join(map(_q, LABELS))
    kw_rx = _q("|".join(_rx_escape(k) for k in KEYWORDS))
    kw = (f"(coalesce(regexp_matches(lower(TEXT), {kw_rx}), false) "
          f"OR coalesce(regexp_matches(lower(URL), {kw_rx}), false))")

    def tags(c: str) -> list[str]:
        return [*(f"count_if({c} AND NSFW = {_q(x)})" for x in LABELS),
                f"count_if({c} AND NSFW NOT IN ({labels}))", f"count_if({c} AND NSFW IS NULL)"]

    ok, sim = "NOT isnan(similarity)", "similarity"  # NULL fails every test; NaN is null too
    nulls = [f"count_if({c} IS NULL OR isnan({c}))" if c in (
        "SAMPLE_ID", "similarity", "WIDTH", "HEIGHT") else f"count_if({c} IS NULL)"
        for c in COLUMNS.values()]
    binned = (f"least(floor(({sim} - ({HIST_LO})::DOUBLE) * {HIST_BPU}::DOUBLE)::BIGINT, "
              f"{nbins - 1})")
    aggs = ["count(*)", *tags("true"), f"count_if({kw})",
            f"count({sim}) FILTER ({ok})", f"count(*) - count({sim}) FILTER ({ok})",
            f"count_if({ok} AND {sim} < {THRESHOLD}::DOUBLE)",
            *(f"{f}({sim}) FILTER ({ok})" for f in ("min", "max", "sum")),
            f"count_if({ok} AND {sim} < {HIST_LO}::DOUBLE)",
            f"count_if({ok} AND {sim} > {HIST_HI}::DOUBLE)",
            f"histogram(CASE WHEN {ok} AND {sim} BETWEEN {HIST_LO}::DOUBLE AND "
            f"{HIST_HI}::DOUBLE THEN {binned} END)", *nulls]
    r = con.execute(f"SELECT {', '.join(aggs)} FROM {src}").fetchone()
    it = iter(r)

    def counts(values: Any) -> dict[str, int]:
        return dict(zip([*LABELS, "other", "null"], [next(values) for _ in range(5)],
                        strict=True))

    res: dict[str, Any] = {"rows": next(it), "nsfw_flag_counts": counts(it),
                           "keyword_nsfw_rows": next(it)}
    count, null, below, lo, hi, total, under, over, hist_map, *null_counts = it
    hist = [0] * nbins
    for i, c in (hist_map or {}).items():
        hist[i] = c
    res["similarity"] = {"count": count, "null": null, "below_threshold": below, "min": lo,
                         "max": hi, "sum": total,
                         "histogram": {"counts": hist, "underflow": under, "overflow": over}}
    res["nulls"] = dict(zip(COLUMNS, null_counts, strict=True))
    dup_id, dup_url = con.execute(f"""
        SELECT count(SAMPLE_ID) FILTER (NOT isnan(SAMPLE_ID))
                 - count(DISTINCT SAMPLE_ID) FILTER (NOT isnan(SAMPLE_ID)),
               count(URL) - count(DISTINCT URL)
        FROM {src}""").fetchone()
    res["duplicates"] = {"id": dup_id, "url": dup_url}
    res["terms"] = _duckdb_terms(con, src, kw, terms_query)
    return res


def _duckdb_terms(con: Any, src: str, kw: str, terms_query: str) -> dict[str, Any]:
    """Scan 3 of duckdb_metrics: per term, word matches, their keyword-NSFW rows and tags,
    and substring matches."""
    single = [t for t in TERMS if re.fullmatch(r"\w+", t)]
    multi = [t for t in TERMS if t not in single]
    if terms_query == "tokens":
        words = (f"list_intersect(list_distinct(regexp_extract_all(lt, {_q(WORD + '+')})), "
                 f"{_sql_list(single)})")
        for t in multi:  # each by its own regexp, only where its substring occurs
            words = (f"list_concat({words}, CASE WHEN contains(lt, {_q(t)}) AND "
                     f"regexp_matches(lt, {_q(_rx(t))}) THEN [{_q(t)}] ELSE [] END)")
    else:
        nonword = r"([^\p{L}\p{N}_])"

        def doubled(t: str) -> str:
            return "".join(_rx_escape(c) * (1 if re.fullmatch(r"\w", c) else 2) for c in t)

        union = _q(rf"(^|{nonword[1:-1]})({'|'.join(doubled(t) for t in TERMS)})"
                   rf"({nonword[1:-1]}|$)")
        padded = f"regexp_replace(lt, {_q(nonword)}, {_q((chr(92) + '1') * 2)}, 'g')"
        words = f"list_distinct(regexp_extract_all({padded}, {union}, 2))"
    prefilter = _q("|".join(_rx_escape(t) for t in TERMS))
    rows = con.execute(f"""
        WITH b AS (SELECT lower(TEXT) AS lt, NSFW AS tag, {kw} AS kw FROM {src}
                   WHERE regexp_matches(lower(TEXT), {prefilter})),
             h AS (SELECT tag, kw, list_filter({_sql_list(list(TERMS))}, lambda x: contains(lt, x))
                          AS subs, {words} AS words FROM b),
             u AS (SELECT 's' AS kind, unnest(subs) AS term, tag, kw FROM h
                   UNION ALL SELECT 'w', unnest(words), tag, kw FROM h)
        SELECT kind, term, tag, kw, count(*) FROM u GROUP BY ALL""").fetchall()
    out = {t: {"matches": 0, "keyword_nsfw": 0, "substring_matches": 0,
               "nsfw_flag_counts": dict.fromkeys([*LABELS, "other", "null"], 0)} for t in TERMS}
    # the "union" query extracts multi-word terms with their non-word characters doubled
    plain = {"".join(c if re.fullmatch(r"\w", c) else c * 2 for c in t): t for t in TERMS}
    for kind, term, tag, flagged, n in rows:
        entry = out[plain.get(term, term)]
        if kind == "s":
            entry["substring_matches"] += n
            continue
        entry["matches"] += n
        entry["keyword_nsfw"] += n if flagged else 0
        bucket = "null" if tag is None else tag if tag in LABELS else "other"
        entry["nsfw_flag_counts"][bucket] += n
    return out


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
metrics in DuckDB's best formulation we know (see duckdb_metrics), alternating, each in a
subprocess (wall time; peak RSS from os.wait4). Every count of docs/metrics.md must agree (exit
1 otherwise; 2 if a run fails). Then measures the engine's peak RSS on a --flat-rows shard and
times it with 3/25/100-term lexicons (a temporary TOML via --config/--lexicon), and prints the
targets: engine <= 0.6x DuckDB wall time, engine peak RSS <= 1 GiB and at most 1.25x its peak
on the small shard, 100 terms <= 1.5x 3 terms."""


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
    add("--repeat", type=int, default=3,
        help="runs of each, engine and DuckDB alternating; the best is reported (default 3)")
    add("--skip-duckdb", action="store_true", help="do not run DuckDB (so no count check)")
    add("--skip-terms", action="store_true", help="skip the 3/25/100-term scaling runs")
    add("--generate-only", action="store_true", help="only (re)write the shard, then exit")
    add("--duckdb-terms", choices=("union", "tokens"), default="union",
        help="DuckDB's word-match query: the issue's regexp union (default; the faster here) "
        "or word tokens with list_intersect")
    add("--flat-rows", type=int, default=1_000_000,
        help="also measure the engine's peak RSS on a shard of this many rows (0: skip)")
    add("--_duckdb-worker", dest="worker", metavar="FILE",
        help="internal: print the DuckDB metrics of FILE as JSON and exit")
    return p.parse_args(argv)


def report(path: Path, rows: int, r: dict[str, Any], problems: list[str], checked: int) -> None:
    busy = r["load"] > 0.75 * (os.cpu_count() or 1)
    print(f"\nshard: {path}\n  {rows:,} rows, {path.stat().st_size / 1e6:,.0f} MB, "
          f"best of {r['repeat']} run(s) each, alternating, {os.cpu_count()} CPUs, load average "
          f"{r['load']:.1f} at start{' (busy machine: timings unreliable)' if busy else ''}\n"
          f"  DuckDB: its best formulation (3 scans; word matches: {r['duckdb_terms']})\n")
    print(f"{'':10}{'wall (s)':>10}{'rows/s':>14}{'peak RSS (MiB)':>16}")
    for name in ("engine", "duckdb") if "duckdb" in r else ("engine",):
        print(f"{name:10}{r[name][0]:>10.2f}{rows / r[name][0]:>14,.0f}{r[name][1]:>16,.0f}")
    targets = [(f"engine peak RSS <= {RSS_TARGET_MB:.0f} MiB", f"{r['engine'][1]:.0f} MiB",
                r["engine"][1] <= RSS_TARGET_MB)]
    for name in ("engine", "duckdb"):
        if name + "_walls" in r:
            print(f"  {name} runs: " + ", ".join(f"{w:.2f}" for w in r[name + "_walls"]) + " s")
    if "flat" in r:
        growth = r["engine"][1] / r["flat"]
        print(f"engine peak RSS at {r['flat_rows']:,} rows: {r['flat']:,.0f} MiB "
              f"({growth:.2f}x from there to {rows:,} rows)")
        targets.append((f"RSS flat: <= {FLAT_TARGET}x at {r['flat_rows'] // 1000:,}k rows",
                        f"{growth:.2f}x", growth <= FLAT_TARGET))
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


def _shard(out: Path, rows: int, seed: int, rg_size: int, regenerate: bool) -> Path:
    """The cached shard at `out`, generated first if missing (or `regenerate`): in a child, so
    this process stays small (a child's ru_maxrss starts at its parent's RSS at fork time, and
    Linux keeps it over exec)."""
    if regenerate or not out.exists():
        subprocess.run([sys.executable, __file__, "--generate-only", "--rows", str(rows),
                        "--seed", str(seed), "--out", str(out),
                        "--row-group-size", str(rg_size)], check=True)
    else:
        log(f"reusing {out} (--regenerate to rewrite it)")
    return out.resolve()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(duckdb_metrics(args.worker, args.duckdb_terms)))
        return 0
    out = args.out or Path(f".shardwatch/bench/laion_like_{args.rows}_{args.seed}.parquet")
    if args.generate_only:
        write_shard(out, args.rows, args.seed, args.row_group_size)
        return 0
    path = _shard(out, args.rows, args.seed, args.row_group_size, args.regenerate)
    duck_cmd = [sys.executable, str(Path(__file__).resolve()), "--_duckdb-worker", str(path),
                "--duckdb-terms", args.duckdb_terms]
    r: dict[str, Any] = {"repeat": args.repeat, "load": os.getloadavg()[0],
                         "duckdb_terms": args.duckdb_terms}
    problems: list[str] = []
    checked = 0
    try:
        # The SQL is the paper's rule (birhane2021), so the engine runs that lexicon too.
        # Engine and DuckDB alternate, so that a slow patch of the machine hits both.
        paper_rule = engine_cmd(path, "--lexicon", "birhane2021")
        runs: dict[str, list[tuple[float, float, Any]]] = {"engine": [], "duckdb": []}
        for _ in range(args.repeat):
            runs["engine"].append(run_measured("engine", paper_rule, 1))
            if not args.skip_duckdb:
                runs["duckdb"].append(run_measured("duckdb", duck_cmd, 1))
        for name, done in runs.items():
            if done:
                r[name] = (min(w for w, _, _ in done), max(m for _, m, _ in done))
                r[name + "_walls"] = [w for w, _, _ in done]
        e_doc = runs["engine"][-1][2]
        if not args.skip_duckdb:
            checked, problems = compare(e_doc["total"], runs["duckdb"][-1][2])
        if args.flat_rows and args.flat_rows != args.rows:
            small = _shard(out.with_name(f"laion_like_{args.flat_rows}_{args.seed}.parquet"),
                           args.flat_rows, args.seed, args.row_group_size, False)
            _, r["flat"], _ = run_measured("engine (small shard)",
                                           engine_cmd(small, "--lexicon", "birhane2021"), 1)
            r["flat_rows"] = args.flat_rows
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
