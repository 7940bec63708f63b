"""Builders of adversarial LAION-style shards for the engine-vs-reference tests.

Every builder is deterministic (seeded) and returns either a `pyarrow.Table` or the path of a
parquet file written under a directory the caller owns (normally pytest's `tmp_path`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shardwatch.core.lexicon import Lexicon, Pattern
from shardwatch.core.profiles import DatasetProfile
from support.builtin_literals import PRECISE2026 as PRECISE2026_LITERAL

# The LAION-400M column order (PROVENANCE.md): HEIGHT is stored before WIDTH.
LAION_COLUMNS = ("SAMPLE_ID", "URL", "TEXT", "HEIGHT", "WIDTH", "LICENSE", "NSFW", "similarity")

# --- text fragments -----------------------------------------------------------------------

# Substring decoys: contain an NSFW keyword or a watched term without being that word.
SUBSTRING_DECOYS = (
    "photo", "hotel", "shot", "PHOTOSHOOT", "Hotline",  # hot
    "design", "Designer",  # desi
    "announcement", "Announcement!",  # listed as a 'nun' decoy, but it spells 'nounce'
    "nunchaku", "Nunavut",  # nun
    "grapes", "therapeutic",  # rape
    "Sussex", "Essex",  # sex
    "adulthood", "Adultery",  # adult
)

# Decoys of the precise2026 keywords and terms (never matches there) and its forms (always).
PRECISE_DECOYS = (
    "xxxl", "XXXL tee", "rapeseed", "Sussex", "Essex", "grapes", "therapeutic", "photo",
    "hotel", "shot", "hot sale", "hot tub", "adult costume", "motherboard", "caucasian",
    "indiana", "designer", "sexting", "pornhubx", "milfy",
)  # fmt: skip
# Every spelling of every precise2026 entry (from the literal copy), in TEXT and in URLs.
ALL_PRECISE_SPELLINGS = tuple(
    spelling
    for entry in PRECISE2026_LITERAL.keywords + PRECISE2026_LITERAL.terms
    for spelling in (entry.term, *entry.forms)
)
PRECISE_FORMS = (
    "sexy", "SEXY!", "porno", "Porn-Star", "porn star", "raped", "fucking", "hot girls",
    "Hot-Girl", "hotties", "adult videos", "NSFW", "milfs", "hentai", "nuns", "latinas",
    "black women", "Black-woman", "black-women", "schoolgirl", "school girls",
    "School-Boys", "mommy", "moms", "sisters", "mothers", "aunties", "auntie", "desis",
    "europeans", "asians", *ALL_PRECISE_SPELLINGS,
)  # fmt: skip

# Term occurrences that must word-match (case and punctuation variants).
WORD_HITS = (
    "desi", "#Desi", "DESI-style", "desi's", "über-desi", "desi.", "(nun)", "LATINA!",
    "Nun", "mom", "Mom's", "sister,", "Aunty", "maa", "abuela", "Asian", "Indian",
    "Korean", "black woman", "Black Woman", "school girl", "SCHOOL GIRL", "school boy",
    "european", "desi\n", "\tnun", "daddy?", "mummy:",
)

# Words containing a term that must NOT word-match it (they still substring-match).
WORD_MISSES = (
    "design", "desis", "desiñ", "nun_", "desi2", "nunnery", "schoolgirl", "School  girl",
    "school\u00a0girl", "black\u00a0woman", "blackwoman", "momentum", "maasai", "indiana",
    "asiana", "latinas", "_desi", "desi_", "nun3",
)

# Unicode next to or inside terms; the truth is Python's `str.lower` plus `re`'s `\w`.
UNICODE_TRICKS = (
    "İ", "DESİS", "ASİAN", "NUNİ", "ẞ", "STRAẞE", "ΣΑΣ", "ΟΔΟΣ desi", "\u212aOREAN",
    "\uff44\uff45\uff53\uff49", "\uff24\uff25\uff33\uff29", "desi\u0301", "\u0301desi",
    "देसी desi", "desi\u0940", "\u0663desi", "🔥desi🔥", "🔥DESI🔥", "desi\u200dx",
    "\u200cnun", "nun\u200d", "desi\u203fgirl", "\uff3fdesi", "\u00b2desi", "\u00bddesi",
    "\u216bdesi", "\u24b6desi", "\u01c5desi", "\u02b0desi", "desi\u00a0x", "desi\u2028",
    "de\u017fi", "\U0001d41d\U0001d41e\U0001d42c\U0001d422", "d\u0435si",
    "\uff2c\uff21\uff34\uff29\uff2e\uff21",
    "Ädesi", "desiä", "nun\u0308", "ñun", "\u03a3", "a\u03a3", "\u03a3\u03a3\u03a3 nun",
)

BENIGN = (
    "bla la la", "a.b", "c++", ".net", "a red car", "sunset over the sea", "Wedding",
    "stock image", "", " ", "  ",
    "12345", "...", "-", "blue sky", "Vintage poster", "img_2031.jpg",
)

# Separators used to glue fragments: some create new word-character adjacencies.
SEPARATORS = (" ", " ", " ", "", "-", ", ", "\n", "  ", "_", "/", "\u00a0", "'")

NSFW_TAGS = ("UNLIKELY", "UNSURE", "NSFW", "nsfw", "Unlikely", "", "NSFW ", " NSFW", None)

URLS = (
    None,
    "",
    "http://example.com/img/1.jpg",
    "https://cdn.example.org/photos/2.png",  # 'hot' only via 'photos'
    "http://hotels.example/room.jpg",
    "https://xxx-site.example/a.jpg",
    "http://example.com/desi-wedding.jpg",  # a term in the URL only: terms ignore URLs
    "http://ADULT.example.com/x.jpg",
    "http://example.com/Sussex.jpg",
    "http://example.com/grapes.jpg",
    "HTTP://EXAMPLE.COM/A.JPG",
    "http://example.com/a.jpg ",
    "http://example.com/a.jpg",
    "http://example.com/porn/1.jpg",
    "https://example.com/F%C3%BCck.jpg",
    "http://example.com/\u0130mage.jpg",
)

LICENSES = ("?", None, "CC-BY", "https://creativecommons.org/licenses/by/4.0/")

SIMILARITY_EDGES: tuple[float | None, ...] = (
    None,
    float("nan"),
    float("inf"),  # non-finite values count as null
    float("-inf"),
    0.3,
    0.29999999999999993,
    0.30000000000000004,
    -1.0,
    1.0,
    1.5,
    -3.0,
    0.0,
    -0.0,
    1 - 2**-53,  # (v - lo) * 200 rounds to 400.0: must still land in the last bin
    -1 + 2**-53,
    -1.0000000000000002,  # just below lo: underflow
    1.0000000000000002,  # just above hi: overflow
    5e-324,
    0.005,
    -0.995,
    0.995,
)

# Ids: 5 and 5.0 are one id; 0.0 and -0.0 are one id; 2**53 and 2**53 + 1 are distinct ints.
ID_POOL_FLOAT: tuple[Any, ...] = (None, float("nan"), 5, 5.0, 0.0, -0.0, 7, 7.5, 2.0**53, 1e18)
ID_POOL_INT: tuple[Any, ...] = (None, 5, 0, -1, 2**53, 2**53 + 1, 2**63 - 1, 2**63 - 2, 7)

ALL_FRAGMENTS = (
    SUBSTRING_DECOYS + WORD_HITS + WORD_MISSES + UNICODE_TRICKS + BENIGN + PRECISE_DECOYS
    + PRECISE_FORMS
)  # fmt: skip


# --- profiles and lexicons ----------------------------------------------------------------


def lower_case_profile() -> DatasetProfile:
    """A LAION-like profile whose column names differ in case from the shard's."""
    return DatasetProfile(
        name="laion-lower",
        columns={
            "id": "sample_id",
            "url": "url",
            "text": "text",
            "nsfw_tag": "nsfw",
            "similarity": "SIMILARITY",
            "width": "width",
            "height": "height",
            "license": "license",
        },
        similarity_threshold=0.3,
        nsfw_labels=("UNLIKELY", "UNSURE", "NSFW"),
    )


def tricky_lexicon() -> Lexicon:
    """Terms whose lower-casing, regex escaping or boundaries are easy to get wrong."""
    return Lexicon(
        name="tricky",
        terms=(
            Pattern("DESI", "word"),  # needle 'desi'
            Pattern("nun", "substring"),
            Pattern("school girl", "word"),
            Pattern("ΣΑΣ", "word"),  # needle 'σας' (final sigma)
            Pattern("\u03bf\u03b4\u03bf\u03c2", "substring"),  # 'οδος', final sigma: 'ΟΔΟΣ' lowered
            Pattern("İ", "substring"),  # needle 'i̇' (two code points)
            Pattern("straße", "word"),
            Pattern("a.b", "word"),  # regex metacharacter
            Pattern("c++", "word"),  # ends in a non-word character
            Pattern(".net", "word"),  # starts with a non-word character
            Pattern("(nun)", "word"),
            Pattern("hot", "word"),
            Pattern("Latina", "word"),
            Pattern("la la", "word"),  # self-overlapping: 'bla la la' matches at its 2nd 'la la'
        ),
        keywords=(
            Pattern("hot", "word"),
            Pattern("xxx", "substring"),
            Pattern("ADULT", "substring"),
            Pattern("rape", "word"),
        ),
    )


def desi_hot_lexicon() -> Lexicon:
    """The two terms whose counts on the real LAION file PROVENANCE.md states."""
    return Lexicon(
        name="desi-hot",
        terms=(Pattern("desi", "word"), Pattern("hot", "word")),
        keywords=(Pattern("hot", "substring"),),
    )


# --- rows and tables ----------------------------------------------------------------------


def random_text(rng: random.Random) -> str | None:
    """A caption glued from 0-4 fragments of every class, or null."""
    roll = rng.random()
    if roll < 0.04:
        return None
    if roll < 0.07:
        return ""
    parts = [rng.choice(ALL_FRAGMENTS) for _ in range(rng.randint(1, 4))]
    out = parts[0]
    for part in parts[1:]:
        out += rng.choice(SEPARATORS) + part
    if rng.random() < 0.3:
        out = out.upper() if rng.random() < 0.5 else out.title()
    return out


def random_similarity(rng: random.Random) -> float | None:
    roll = rng.random()
    if roll < 0.25:
        return rng.choice(SIMILARITY_EDGES)
    if roll < 0.45:
        return 0.005 * rng.randint(-200, 200)  # bin edges computed as 0.005 * k
    if roll < 0.55:
        return -1.0 + rng.randint(0, 400) / 200
    if roll < 0.8:
        return rng.uniform(0.25, 0.45)
    return rng.uniform(-1.2, 1.2)


def random_url(rng: random.Random, i: int) -> str | None:
    if rng.random() < 0.5:
        return rng.choice(URLS)
    # Mostly unique URLs, some built from a text fragment (keywords in the URL only).
    pool = SUBSTRING_DECOYS + WORD_HITS + BENIGN + PRECISE_DECOYS + PRECISE_FORMS
    frag = rng.choice(pool).strip().replace(" ", "-")
    return f"https://img{rng.randint(0, 40)}.example.net/{frag}/{i % 997}.jpg"


def random_size(rng: random.Random) -> float | None:
    roll = rng.random()
    if roll < 0.05:
        return None
    if roll < 0.1:
        return float("nan")
    return float(rng.choice((64, 256, 512, 640, 1024, rng.randint(1, 5000))))


def adversarial_rows(n_rows: int, seed: int, *, int_ids: bool = False) -> list[dict[str, Any]]:
    """`n_rows` LAION-style rows mixing every decoy class, edge value and null kind."""
    rng = random.Random(seed)
    pool = ID_POOL_INT if int_ids else ID_POOL_FLOAT
    rows = []
    for i in range(n_rows):
        # from the edge pool, or a random id with some natural collisions
        sample_id = rng.choice(pool) if rng.random() < 0.3 else rng.randint(0, 4 * n_rows + 10)
        if not int_ids and sample_id is not None:
            sample_id = float(sample_id)
        rows.append(
            {
                "SAMPLE_ID": sample_id,
                "URL": random_url(rng, i),
                "TEXT": random_text(rng),
                "HEIGHT": random_size(rng),
                "WIDTH": random_size(rng),
                "LICENSE": rng.choice(LICENSES),
                "NSFW": rng.choice(NSFW_TAGS),
                "similarity": random_similarity(rng),
            }
        )
    return rows


def laion_schema(
    *,
    int_ids: bool = False,
    similarity_type: pa.DataType | None = None,
    text_type: pa.DataType | None = None,
    url_type: pa.DataType | None = None,
) -> pa.Schema:
    """The LAION-400M schema, floats where the real files have nulls."""
    return pa.schema(
        [
            ("SAMPLE_ID", pa.int64() if int_ids else pa.float64()),
            ("URL", url_type or pa.string()),
            ("TEXT", text_type or pa.string()),
            ("HEIGHT", pa.float64()),
            ("WIDTH", pa.float64()),
            ("LICENSE", pa.string()),
            ("NSFW", pa.string()),
            ("similarity", similarity_type or pa.float64()),
        ]
    )


def rows_to_table(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows to a table; NaN stays NaN in float columns (pyarrow does not turn it into null)."""
    arrays = []
    for field in schema:
        values = [row[field.name] for row in rows]
        if pa.types.is_dictionary(field.type):
            arrays.append(pa.array(values, type=field.type.value_type).dictionary_encode())
        else:
            arrays.append(pa.array(values, type=field.type, from_pandas=False))
    return pa.Table.from_arrays(arrays, schema=schema)


def shuffled_columns(table: pa.Table, seed: int) -> pa.Table:
    names = list(table.column_names)
    random.Random(seed).shuffle(names)
    return table.select(names)


def adversarial_table(
    n_rows: int,
    seed: int,
    *,
    int_ids: bool = False,
    similarity_type: pa.DataType | None = None,
    text_type: pa.DataType | None = None,
    url_type: pa.DataType | None = None,
    shuffle: bool = True,
) -> pa.Table:
    """A seeded random LAION-style table mixing every adversarial class, columns shuffled."""
    rows = adversarial_rows(n_rows, seed, int_ids=int_ids)
    schema = laion_schema(
        int_ids=int_ids, similarity_type=similarity_type, text_type=text_type, url_type=url_type
    )
    table = rows_to_table(rows, schema)
    return shuffled_columns(table, seed) if shuffle else table


def edge_case_rows() -> list[dict[str, Any]]:
    """One hand-written row per edge case (see the module constants for the classes)."""
    texts: list[str | None] = [
        *SUBSTRING_DECOYS, *WORD_HITS, *WORD_MISSES, *UNICODE_TRICKS, None, "", "   ",
        "hello desi world", "DESI desi Desi", "design by a desi", "school girl uniform",
        "School  girl", "schoolgirl", "a nun, a NUN, (nun)", "photoshoot at the hotel",
        "desi.desi", "desi-desi", "desidesi", "xdesi desi", "c++ and .net", "a.b", "axb",
        "αΣ ΣΑΣ", "hot", "HOT!", "not hot", "shot", "rape", "grapes", "bla la la", "bla la",
        "xnunun nun", "DİZ", "ΟΔΟΣ", "οδοσ", "a c++ b", "c++x", "asp.net", "x .net!",
    ]
    urls = list(URLS)
    tags = list(NSFW_TAGS)
    sims = list(SIMILARITY_EDGES) + [0.005 * k for k in range(-201, 202, 7)]
    rows = []
    for i, text in enumerate(texts):
        rows.append(
            {
                "SAMPLE_ID": ID_POOL_FLOAT[i % len(ID_POOL_FLOAT)],
                "URL": urls[i % len(urls)],
                "TEXT": text,
                "HEIGHT": (None, float("nan"), 480.0, 0.0)[i % 4],
                "WIDTH": (640.0, None, float("nan"))[i % 3],
                "LICENSE": LICENSES[i % len(LICENSES)],
                "NSFW": tags[i % len(tags)],
                "similarity": sims[i % len(sims)],
            }
        )
    # Keywords only in the URL, over a benign text.
    for url in ("http://porn.example/1.jpg", "http://example.com/hot.jpg", "http://x.com/XXX"):
        rows.append({**rows[-1], "TEXT": "a red car", "URL": url, "NSFW": "UNLIKELY"})
    # Every similarity edge value, on otherwise plain rows.
    for sim in sims:
        rows.append({**rows[0], "TEXT": "plain", "URL": None, "similarity": sim})
    return rows


def edge_case_table() -> pa.Table:
    """The fixed hand-written edge-case table, HEIGHT before WIDTH, float ids with NaN."""
    return rows_to_table(edge_case_rows(), laion_schema())


# --- shards with missing, renamed or degenerate columns -----------------------------------

MISSING_COLUMN_CASES: dict[str, tuple[str, ...]] = {
    "url_text": ("URL", "TEXT"),
    "text_only": ("TEXT",),
    "url_only": ("URL",),
    "no_text_url": ("SAMPLE_ID", "HEIGHT", "WIDTH", "LICENSE", "NSFW", "similarity"),
    "no_tag_no_similarity": ("SAMPLE_ID", "URL", "TEXT", "HEIGHT", "WIDTH", "LICENSE"),
    "tag_and_text": ("NSFW", "TEXT"),
    "similarity_only": ("similarity",),
}


def table_with_columns(columns: Sequence[str], n_rows: int = 400, seed: int = 7) -> pa.Table:
    """An adversarial table reduced to `columns`, plus an unrelated extra column."""
    table = adversarial_table(n_rows, seed, shuffle=False).select(list(columns))
    return table.append_column("__index_level_0__", pa.array(range(n_rows), type=pa.int64()))


def renamed_case_table(n_rows: int = 300, seed: int = 11) -> pa.Table:
    """LAION columns renamed: 'TEXT' -> 'Text', 'URL' -> 'url', etc. (case-insensitive find)."""
    table = adversarial_table(n_rows, seed, shuffle=False)
    renames = {"SAMPLE_ID": "Sample_Id", "URL": "url", "TEXT": "Text", "NSFW": "nsfw",
               "similarity": "SIMILARITY"}
    return table.rename_columns([renames.get(n, n) for n in table.column_names])


def ambiguous_case_table(n_rows: int = 300, seed: int = 13) -> pa.Table:
    """'url' and 'Url' both present and no exact 'URL': the URL column cannot be resolved.

    'TEXT' exists exactly alongside 'text' (a different caption): the exact name must win.
    """
    table = adversarial_table(n_rows, seed, shuffle=False)
    other = adversarial_table(n_rows, seed + 1, shuffle=False)
    table = table.rename_columns(["url" if n == "URL" else n for n in table.column_names])
    table = table.append_column("Url", other.column("URL"))
    return table.append_column("text", other.column("TEXT"))


def all_null_table(n_rows: int = 50) -> pa.Table:
    """Every LAION column present but entirely null, most typed as pyarrow `null`."""
    null = pa.nulls(n_rows)
    return pa.table(
        {
            "SAMPLE_ID": null,
            "URL": pa.nulls(n_rows, type=pa.string()),
            "TEXT": null,
            "HEIGHT": null,
            "WIDTH": pa.array([float("nan")] * n_rows),
            "LICENSE": null,
            "NSFW": null,
            "similarity": pa.array([float("nan")] * (n_rows - 1) + [None]),
        }
    )


def integer_columns_table() -> pa.Table:
    """Numeric fields stored as integers of several widths, with nulls."""
    return pa.table(
        {
            "SAMPLE_ID": pa.array([1, 1, None, 2**31 - 1, 2**31 - 1, 0], type=pa.int32()),
            "similarity": pa.array([0, 1, -1, 2, None, -2], type=pa.int64()),
            "WIDTH": pa.array([640, None, 0, 65535, 1, 1], type=pa.uint16()),
            "HEIGHT": pa.array([None, None, 3, 4, 5, 6], type=pa.int8()),
            "TEXT": ["desi", "nun", None, "hot", "", "x"],
        }
    )


def unsigned_ids_table() -> pa.Table:
    """uint64 ids beyond the int64 range: 2**64 - 1 twice is one duplicate."""
    ids = [2**64 - 1, 2**64 - 1, 5, 2**63, 0, None, 2**63 - 1]
    return pa.table({"SAMPLE_ID": pa.array(ids, type=pa.uint64()), "URL": ["a"] * 7})


def empty_table() -> pa.Table:
    """The LAION schema with zero rows."""
    return laion_schema().empty_table()


def int_tag_table() -> tuple[pa.Table, DatasetProfile]:
    """An integer NSFW tag column with a profile whose labels are its string forms."""
    profile = DatasetProfile(
        name="int-tags",
        columns={"text": "TEXT", "nsfw_tag": "NSFW", "url": "URL"},
        similarity_threshold=0.5,
        nsfw_labels=("0", "1"),
    )
    table = pa.table(
        {
            "TEXT": ["desi", "nun", None, "hot desi", "x", "desi"],
            "URL": ["a", "a", None, "b", "b", None],
            "NSFW": pa.array([0, 1, 2, None, 1, -1], type=pa.int64()),
        }
    )
    return table, profile


# --- writing ------------------------------------------------------------------------------


def write_shard(
    table: pa.Table,
    directory: Path,
    name: str = "shard.parquet",
    *,
    row_group_size: int | None = None,
) -> Path:
    """Write `table` as one parquet shard under `directory` and return its path."""
    path = Path(directory) / name
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def write_adversarial_shard(directory: Path, n_rows: int, seed: int, **kwargs: Any) -> Path:
    """`adversarial_table(n_rows, seed, **kwargs)` written with small row groups."""
    table = adversarial_table(n_rows, seed, **kwargs)
    return write_shard(table, directory, f"adversarial_{seed}.parquet", row_group_size=1009)


REAL_FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real"


def real_fixture(name: str) -> Path:
    """A file from ../shared/fixtures/real; its absence fails the test (never skips it)."""
    path = REAL_FIXTURES / name
    if not path.is_file():
        pytest.fail(f"real fixture {path} is missing: the checkout needs ../shared beside it")
    return path


def tagged_table(rows: int, nsfw: int, *, seed: int = 0, keyword: int = 0) -> pa.Table:
    """LAION-400M rows with exactly `nsfw` tagged NSFW (the rest UNLIKELY) and `keyword`
    captions holding a keyword; no watched terms; every similarity 0.35 (above the cut-off).

    Captions and URLs avoid every keyword substring ("photo" would match "hot")."""
    if not 0 <= nsfw <= rows or not 0 <= keyword <= rows:
        raise ValueError("nsfw and keyword must be between 0 and rows")
    data = [
        {
            "SAMPLE_ID": float(seed * 1_000_000 + i),
            "URL": f"https://img.example.org/{seed}/{i}.jpg",
            "TEXT": "xxx poster" if i < keyword else f"a picture of a tree {i}",
            "HEIGHT": 256.0,
            "WIDTH": 256.0,
            "LICENSE": "?",
            "NSFW": "NSFW" if i < nsfw else "UNLIKELY",
            "similarity": 0.35,
        }
        for i in range(rows)
    ]
    return rows_to_table(data, laion_schema())
