"""Synth: deterministic, vectorised LAION-400M-like shards for the demo and the benchmarks.

Captions are Zipf-drawn English-like words with the birhane2021 terms, keywords, decoys
('photo', 'design', 'Sussex') and non-ASCII neighbours planted at realistic low rates; URLs,
ids, tags, similarity and sizes follow the real parts' types, nulls and duplicates.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shardwatch.core.lexicon import BIRHANE2021

# What the generator plants: the built-in lexicon's keywords and terms.
KEYWORDS = tuple(p.term for p in BIRHANE2021.keywords)
TERMS = tuple(p.term for p in BIRHANE2021.terms)
DECOYS = (
    "photo",
    "hotel",
    "shot",
    "design",
    "announcement",
    "grapes",
    "therapeutic",
    "sussex",
    "adulthood",
    "moment",
    "caucasian",
    "indiana",
    "nunavut",
)
LABELS = ("UNLIKELY", "UNSURE", "NSFW")
COMMON = """the of and a in for with on to by at from new is your my this how best top free
black white red blue green pink gold grey brown dark light women men kids baby dress shirt shoes
bag wedding vintage print poster art canvas wall house home kitchen garden table chair bed room
bathroom car dog cat flower tree beach sea mountain city street park sky sunset night day summer
winter christmas birthday party cake food coffee wine bottle book cover logo icon vector
illustration pattern background wallpaper set size large small big long style fashion modern
classic retro custom handmade cotton leather wood metal gift card case iphone phone watch ring
necklace jewelry diamond sale buy online store cheap review ideas diy easy beautiful cute funny
happy love family people man woman boy girl children school team game football music movie star
world map usa uk london paris 2019 2020 4k hd 3d - | & x 1 2 10 stock image picture vs one"""
ONSETS = "b c d f g h j k l m n p r s t v w br cr dr fr gr pr tr bl cl fl pl sl st sp ch th"
VOWELS, CODAS = "a e i o u ea ai ou ee oo y", "- n r l s t m nd st ng ck rt ll"


def vocabulary() -> list[str]:
    """A fixed list of 3,200 English-like lowercase words containing no term/keyword/decoy."""
    rng, banned = random.Random(20210804), (*TERMS, *KEYWORDS, *DECOYS)
    on, vowels, codas = ONSETS.split(), VOWELS.split(), CODAS.split()
    words = list(dict.fromkeys(w for w in COMMON.split() if not any(b in w for b in banned)))
    seen = set(words)
    while len(words) < 3200:
        w = "".join(
            rng.choice(on) + rng.choice(vowels) + rng.choice(codas).strip("-")
            for _ in range(rng.choices((1, 2, 3), (0.4, 0.55, 0.05))[0])
        )
        if len(w) > 2 and w not in seen and not any(b in w for b in banned):
            words.append(w)
            seen.add(w)
    return words


def _caption_plants() -> list[tuple[str, float]]:
    """(token, per-row rate) for terms, keywords, decoys and non-ASCII neighbours in captions."""
    terms = {t: 0.001 if t in ("desi", "nun", "latina") else 0.0003 for t in TERMS}
    kws = {
        "porn": 0.0008,
        "hot": 0.004,
        "adult": 0.0015,
        "xxx": 0.0005,
        "sex": 0.0015,
        "fuck": 0.0003,
        "rape": 0.0002,
    }
    decoys = {
        "photo": 0.02,
        "hotel": 0.006,
        "shot": 0.004,
        "design": 0.01,
        "announcement": 0.001,
        "grapes": 0.001,
        "therapeutic": 0.0005,
        "sussex": 0.001,
        "adulthood": 0.0003,
        "moment": 0.003,
        "caucasian": 0.0003,
        "indiana": 0.001,
        "nunavut": 0.0002,
    }
    odd = [
        "über-desi",
        "desiñ",
        "DESIÑ",
        "desi²",
        "desi_style",
        "desi2",
        "ñdesi",
        "desi\u0661",
        "latina\u0301",
        "nun😀",
        "mom\u2019s",
        "café",
        "naïve",
        "señora",
        "Köln",
        "東京",
        "Ⅻ-nun",
        "school  girl",
        "schoolgirl",
        "school-girl",
        "BLACK\u00a0WOMAN",
    ]
    out = [(o, 0.0001) for o in odd]
    forms_of: tuple[tuple[dict[str, float], Callable[[str], list[str]]], ...] = (
        (
            terms,
            lambda t: [
                t,
                t.title(),
                t.upper(),
                "#" + t.title().replace(" ", ""),
                t.upper() + "-style",
                t + "'s",
                f"({t})",
                t + "s",
                t.title() + ",",
            ],
        ),
        (kws, lambda k: [k, k.title(), k.upper(), k + "y", "#" + k]),
        (decoys, lambda d: [d, d.title(), d + "s", d.upper()]),
    )
    for rates, forms in forms_of:
        for word, rate in rates.items():
            out += [(f, rate / len(forms(word))) for f in forms(word)]
    return out


URL_PLANTS = {
    "photo": 0.02,
    "photos": 0.005,
    "hotel": 0.01,
    "shot": 0.005,
    "hot": 0.003,
    "sexy": 0.002,
    "porn": 0.0005,
    "xxx": 0.0005,
    "adult": 0.001,
    "desi": 0.0005,
    "design": 0.01,
    "latina": 0.0003,
    "nun": 0.0002,
}
URL_DIRS = [
    "",
    "",
    "images/",
    "wp-content/uploads/2019/05/",
    "wp-content/uploads/2020/11/",
    "products/",
    "media/catalog/product/cache/1/image/9df78eab/",
    "originals/3f/a2/",
    "files/",
    "img/",
    "s/files/1/0123/4567/products/",
    "upload/",
    "photos/",
    "",
    "",
]


class Generator:
    """Deterministic, vectorised LAION-400M-like chunk generator (numpy + pyarrow only)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        words = vocabulary()
        self.v = len(words)
        w = 1.0 / (np.arange(self.v) + 10.0) ** 1.05
        self.cdf = np.cumsum(w) / w.sum()
        plants = _caption_plants()
        self.rates = np.array([r for _, r in plants])
        self.kw_plant = np.array([any(k in p.lower() for k in KEYWORDS) for p, _ in plants])
        self.tokens = pa.array(
            words + [x.title() for x in words] + [x.upper() for x in words] + [p for p, _ in plants]
        )
        self.url_tokens = pa.array(words + list(URL_PLANTS))
        self.url_rates = np.array(list(URL_PLANTS.values()))
        r = np.random.default_rng(7)
        doms = [
            "i.pinimg.com",
            "cdn.shopify.com",
            "i.ebayimg.com",
            "i.etsystatic.com",
            "images-na.ssl-images-amazon.com",
            "ae01.alicdn.com",
            "static.wixstatic.com",
        ]
        pats = ["www.{}{}.com", "cdn.{}{}.net", "images.{}.co.uk", "{}{}.org", "static.{}.com"]
        while len(doms) < 400:
            a, b = words[r.integers(100, 3000)], words[r.integers(100, 3000)]
            doms.append(pats[r.integers(len(pats))].format(a, b))
        self.domains, self.dirs = pa.array(doms), pa.array(URL_DIRS)
        self.dom_p = 1.0 / (np.arange(len(doms)) + 3.0)
        self.dom_p /= self.dom_p.sum()
        self.pool_ids = np.empty(0)
        self.pool_urls = pa.array([], pa.string())

    def _words(
        self,
        rng: np.random.Generator,
        lengths: npt.NDArray[np.integer[Any]],
        tokens: pa.Array,
        rates: npt.NDArray[np.float64],
        first: int,
        sep: str,
        style: npt.NDArray[np.int64] | None = None,
    ) -> tuple[pa.Array, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Join Zipf-drawn words per row (cased by `style`), planting tokens at per-row `rates`.

        Returns the joined strings, the planted token ids and the row of each planted token."""
        n, v = len(lengths), self.v
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(lengths, out=offsets[1:])
        idx = np.searchsorted(self.cdf, rng.random(int(offsets[-1]))).astype(np.int32)
        if style is not None:  # 0: sentence case, 1: Title Case, 2: UPPER
            idx += np.repeat(np.array([0, v, 2 * v], np.int32)[style], lengths)
            idx[offsets[:-1][style == 0]] += v
        tok = np.repeat(np.arange(len(rates)), rng.binomial(n, rates))
        pos = rng.integers(0, idx.size, tok.size)
        idx[pos] = first + tok
        lists = pa.ListArray.from_arrays(pa.array(offsets), tokens.take(pa.array(idx)))
        return pc.binary_join(lists, sep), tok, np.searchsorted(offsets, pos, "right") - 1

    def chunk(self, index: int, start: int, n: int) -> pa.Table:
        """Rows [start, start+n) as a pyarrow Table with the real LAION-400M column order."""
        rng, v = np.random.default_rng([self.seed, index]), self.v
        null = pa.scalar(None, pa.string())
        # TEXT: lognormal word counts (median 8, 2..40), Zipf words, casing, planted tokens.
        lengths = np.clip(np.rint(rng.lognormal(math.log(8.0), 0.6, n)), 2, 40).astype(np.int32)
        style = rng.choice(3, n, p=[0.55, 0.40, 0.05])
        text, tok, rows = self._words(rng, lengths, self.tokens, self.rates, 3 * v, " ", style)
        kw_rows = rows[self.kw_plant[tok]]
        text = pc.if_else(pa.array(rng.random(n) < 1e-4), "", text)
        text = pc.if_else(pa.array(rng.random(n) < 1e-5), null, text)
        # URL: https://<domain>/<dir><slug-words>-<n>.<ext>, with duplicates (also across chunks).
        slug = self._words(rng, rng.integers(2, 9, n), self.url_tokens, self.url_rates, v, "-")[0]
        dom = self.domains.take(pa.array(rng.choice(len(self.dom_p), n, p=self.dom_p)))
        dirs = self.dirs.take(pa.array(rng.integers(0, len(self.dirs), n)))
        scheme = pa.array(np.where(rng.random(n) < 0.8, "https://", "http://"))
        ext = pa.array(
            np.array([".jpg", ".jpg", ".jpeg", ".png", ".jpg?w=600"])[rng.integers(0, 5, n)]
        )
        num = pc.cast(pa.array(rng.integers(1, 10**7, n)), pa.string())
        url = pc.binary_join_element_wise(scheme, dom, "/", dirs, slug, "-", num, ext, "")
        take = np.arange(n)
        m = rng.binomial(n, 0.004)
        take[rng.integers(0, n, m)] = rng.integers(0, n, m)
        if len(self.pool_urls):
            m = rng.binomial(n, 0.0005)
            take[rng.integers(0, n, m)] = n + rng.integers(0, len(self.pool_urls), m)
        url = pa.concat_arrays([url, self.pool_urls]).take(pa.array(take))
        url = pc.if_else(pa.array(rng.random(n) < 2e-6), null, url)
        self.pool_urls = url.slice(0, 5000)
        # SAMPLE_ID: increasing ids, some duplicated (within and across chunks), nulls, NaNs.
        ids = (10**9 + 3 * (start + np.arange(n)) + rng.integers(0, 3, n)).astype(np.float64)
        m = rng.binomial(n, 2e-4)
        ids[rng.integers(0, n, m)] = ids[rng.integers(0, n, m)]
        if self.pool_ids.size:
            m = rng.binomial(n, 5e-5)
            ids[rng.integers(0, n, m)] = self.pool_ids[rng.integers(0, self.pool_ids.size, m)]
        ids[rng.random(n) < 1e-6] = np.nan
        self.pool_ids = ids[:5000].copy()
        # NSFW tags (keyword rows skew UNSURE/NSFW), similarity, sizes, licence.
        vals = np.array([*LABELS, "None", "unlikely", "", "NSFW "])
        tag = rng.choice(7, n, p=[0.92, 0.055, 0.024, 0.0004, 0.0003, 0.0002, 0.0001])
        tag[kw_rows] = rng.choice(3, kw_rows.size, p=[0.55, 0.30, 0.15])
        sim = 0.3 + rng.gamma(2.0, 0.035, n)
        low = rng.random(n) < 0.0015
        sim[low] = rng.uniform(0.15, 0.3, int(low.sum()))
        rnd = rng.random(n) < 0.02
        sim[rnd] = np.round(sim[rnd], 3)
        sim[rng.random(n) < 1e-5] = 0.3
        sim[rng.random(n) < 1e-5] = np.nan
        sizes = np.array([256, 300, 400, 480, 500, 600, 640, 720, 768, 800, 1000, 1024, 1200])
        hw = [
            np.where(
                rng.random(n) < 0.3,
                rng.integers(100, 2000, n),
                sizes[rng.integers(0, len(sizes), n)],
            ).astype(np.float64)
            for _ in "hw"
        ]
        lic = np.where(rng.random(n) < 0.97, "?", "https://creativecommons.org/licenses/by/2.0/")

        def col(a: npt.NDArray[Any], null_rate: float) -> pa.Array:
            return pa.array(a, mask=rng.random(n) < null_rate)

        return pa.table(
            {
                "SAMPLE_ID": col(ids, 3e-4),
                "URL": url,
                "TEXT": text,
                "HEIGHT": col(hw[0], 2e-4),
                "WIDTH": col(hw[1], 2e-4),
                "LICENSE": col(lic, 1e-5),
                "NSFW": col(vals[tag], 5e-4),
                "similarity": col(sim, 5e-5),
            }
        )


def write_shard(
    out: Path,
    rows: int,
    seed: int = 0,
    row_group_size: int = 1_048_576,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write a `rows`-row shard atomically, one row group per chunk, snappy-compressed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    gen = Generator(seed)
    writer: pq.ParquetWriter | None = None
    try:
        for i, start in enumerate(range(0, rows, row_group_size)):
            table = gen.chunk(i, start, min(row_group_size, rows - start))
            writer = writer or pq.ParquetWriter(tmp, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=row_group_size)
            if log is not None:
                log(f"generated {start + table.num_rows:,}/{rows:,} rows")
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(out)
    return out
