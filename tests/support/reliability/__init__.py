"""Helpers of the reliability suite (tests/reliability/; docs/reliability.md), kept out of
its folder so that it holds only its conftest.py and test modules. Imported as
`from support.reliability.leaks import ...` (tests/ is on sys.path through the root conftest).

Helper modules:

- `leaks`: the secrets scenario (9): the session's canary secrets, the leak watch behind the
  `leaks` fixture, the DEBUG log of a test, and the paths the suite's conftest uses (`SUITE`,
  the tests/reliability/ folder; `FIGURES`, build/reliability-figures.jsonl);
- `concurrency_checks`: the concurrency and soak scenarios (7, 10): small shards, the
  `concurrency_worker` processes, the independent row counts;
- `crash_checks`: the crash and PostgreSQL-restart scenarios (6): the cluster a test may stop
  and restart, per-shard row counts;
- `drift_shards`: the schema-drift scenario (2): a clean shard and its drifted variants;
- `malparquet_shards`: the malicious parquet files of scenario 1 (and the decoded bombs);
- `thrift_rewrite`: rewrites integer fields of thrift compact structs (footers, page headers
  whose declared sizes lie);
- `netfaults_server`: loopback servers of the network-fault and SSRF scenarios (4, 5);
- `versioned_server`: a loopback file server whose files change under the client (splicing).

Worker scripts, each run as a child process BY PATH, `[sys.executable, str(FOLDER /
"name.py"), ...]`, with `env=subprocess_env()` (support/store_checks.py), whose PYTHONPATH
holds src/ and tests/, so that they import `support...` and `shardwatch...` exactly as the
tests do (the script's own folder, which Python puts first on sys.path, is not what makes
them work). By hand: `PYTHONPATH=src:tests python tests/support/reliability/NAME.py ...`.

- `concurrency_worker`: `ingest_shards` with its own claim owner (scenarios 7, 10);
- `crash_worker`: forks ingest workers that stop at a chosen point to be SIGKILLed (6);
- `malparquet_worker`: footer checks and ingests of hostile files in a child, under
  RLIMIT_AS (test_malicious_parquet.py, test_decoded_bombs.py);
- `relay_kill_worker`: relay passes that SIGKILL themselves at a chosen point
  (test_relay_faults.py);
- `upgrade_worker`: `shardwatch db upgrade` children that SIGKILL themselves at a chosen
  statement (test_killed_upgrade.py).

Data: `malparquet_corpus/` holds the inputs that once crashed the reader, replayed by
test_malicious_parquet.py (`FOLDER / "malparquet_corpus"`).
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent  # this package's folder: worker scripts, corpus
