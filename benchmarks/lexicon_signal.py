"""What each built-in lexicon flags on real rows: keyword-NSFW rows, the share flagged only
through decoy words, and every term's matches (word, with forms, substring).

    .venv/bin/python benchmarks/lexicon_signal.py FILE.parquet [--profile laion400m]

The counts come from shardwatch's engine. The decoy share is worked out here in plain Python:
a keyword-NSFW row is "decoy-only" when it stops being flagged once every word containing a
decoy (DECOYS below, e.g. 'photo', 'hotel', 'grapes') is blanked from its TEXT and URL.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pyarrow.parquet as pq

from shardwatch.core.lexicon import BUILTIN_LEXICONS, Lexicon
from shardwatch.scan.engine import scan_shard
from shardwatch.settings.config import load_settings

# Words that hold a keyword or a term without meaning it (docs/lexicons.md).
DECOYS = (
    "photo", "shot", "hotel", "hotline", "grapes", "grape", "therapeutic", "therapist",
    "sussex", "essex", "middlesex", "xxxl", "rapeseed", "design", "adulthood", "adultery",
    "shotgun", "hotels", "photos", "photography", "photographer", "screenshot",
)  # fmt: skip
_WORD = re.compile(r"\w+")


def _blank_decoys(text: str) -> str:
    """Every \\w+ run that contains a decoy replaced by spaces of the same length."""
    return _WORD.sub(
        lambda m: " " * len(m.group()) if any(d in m.group() for d in DECOYS) else m.group(),
        text,
    )


def _flagged(lexicon: Lexicon, text: str, url: str) -> bool:
    for p in lexicon.keywords:
        for needle in p.needles:
            for hay in (text, url):
                if p.mode == "substring" and needle in hay:
                    return True
                if p.mode == "word" and re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", hay):
                    return True
    return False


def decoy_only(lexicon: Lexicon, path: Path, text_col: str, url_col: str) -> tuple[int, int]:
    """(flagged rows, rows flagged only through decoy words), in plain Python."""
    table = pq.read_table(path, columns=[text_col, url_col])
    flagged = only = 0
    for text, url in zip(
        table.column(text_col).to_pylist(), table.column(url_col).to_pylist(), strict=True
    ):
        low_text, low_url = (text or "").lower(), (url or "").lower()
        if _flagged(lexicon, low_text, low_url):
            flagged += 1
            only += not _flagged(lexicon, _blank_decoys(low_text), _blank_decoys(low_url))
    return flagged, only


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a parquet shard with TEXT and URL columns")
    parser.add_argument("--profile", default="laion400m", help="dataset profile (laion400m)")
    args = parser.parse_args(argv)
    profile = load_settings(profile=args.profile).dataset_profile()
    text_col, url_col = profile.column("text"), profile.column("url")
    if text_col is None or url_col is None:
        parser.error(f"profile {profile.name} has no text or url column")
    results = {}
    for name, lexicon in BUILTIN_LEXICONS.items():
        metrics = scan_shard(args.file, profile, lexicon, workers=1)
        flagged, only = decoy_only(lexicon, args.file, text_col, url_col)
        if flagged != metrics.keyword_nsfw_rows:
            print(
                f"{name}: engine {metrics.keyword_nsfw_rows} != Python {flagged}", file=sys.stderr
            )
            return 1
        results[name] = (metrics, flagged, only)
    print(f"{args.file.name}: {next(iter(results.values()))[0].rows:,} rows\n")
    print(f"{'lexicon':<14}{'keyword-NSFW rows':>20}{'decoy-only':>12}{'share':>8}")
    for name, (_, flagged, only) in results.items():
        share = f"{only / flagged:.0%}" if flagged else "-"
        print(f"{name:<14}{flagged:>20,}{only:>12,}{share:>8}")
    paper = results["birhane2021"][0]
    precise = results["precise2026"][0]
    assert paper.terms is not None and precise.terms is not None
    print(f"\n{'term':<14}{'word (birhane2021)':>20}{'forms (precise2026)':>21}{'substring':>11}")
    for term, stats in paper.terms.items():
        print(
            f"{term:<14}{stats.matches:>20,}{precise.terms[term].matches:>21,}"
            f"{stats.substring_matches:>11,}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
