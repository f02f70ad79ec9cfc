"""Build the benchmark in Spider's on-disk layout, once, into the cache.

    <dir>/database/<db_id>/<db_id>.sqlite   one SQLite file per domain
    <dir>/tables.json                       Spider schema descriptions
    <dir>/{train,test,heldout}.json         [{"db_id", "question", "query", "template", "level"}]

Every template is instantiated on every domain; each gold query is executed and kept only if it
returns an informative result (not empty, not a lone 0 or NULL, no tie at a LIMIT boundary).
The held-out domain goes entirely to `heldout`; the other domains' queries are split per template
into train and test, so test asks questions (and queries) that train never shows."""

from __future__ import annotations

import random
import re
import sqlite3
import time
from collections import Counter
from pathlib import Path

from data.files import atomic_directory, atomic_write_json, cache_root
from data.sqlbench.domains import HELDOUT_DB, all_domains
from data.sqlbench.schema import Database, create_table_sql, generate_rows, spider_tables_entry
from data.sqlbench.templates import TEMPLATES, Template

VERSION = 2  # bump on any generator change: the cache directory name changes and it rebuilds
BENCHMARK_SPLITS = ("train", "test", "heldout")
TEST_SHARE = 0.1
# Instances per template and domain. Harder templates get more, because they are the ones a
# small model must see most often to learn (and it shifts the mix toward Spider's).
QUOTA = {"easy": 7, "medium": 7, "hard": 9, "extra": 9}


def bundled_benchmark_dir() -> Path:
    """The benchmark directory in the cache, built on first use (about a second)."""
    path = cache_root() / f"sqlbench-v{VERSION}"
    if not path.is_dir():  # atomic_directory: if it exists, it is complete
        build(path)
    return path


def build(path: str | Path) -> dict:
    """Write the whole benchmark to `path` (atomically) and return its statistics."""
    start = time.perf_counter()
    examples, tables = [], []
    with atomic_directory(path) as tmp:
        for domain in all_domains():
            db = generate_rows(domain)
            sqlite_path = tmp / "database" / domain.db_id / f"{domain.db_id}.sqlite"
            conn = write_database(db, sqlite_path)
            try:
                examples += domain_examples(db, conn)
            finally:
                conn.close()
            tables.append(spider_tables_entry(domain))
        splits = split(examples)
        atomic_write_json(tmp / "tables.json", tables)
        for name in BENCHMARK_SPLITS:
            atomic_write_json(tmp / f"{name}.json", splits[name])
    return {
        "seconds": round(time.perf_counter() - start, 2),
        "domains": [t["db_id"] for t in tables],
        "splits": {name: len(items) for name, items in splits.items()},
        "levels": {name: dict(Counter(e["level"] for e in items)) for name, items in splits.items()},
    }


def write_database(db: Database, path: Path) -> sqlite3.Connection:
    """Create the SQLite file (foreign keys enforced while inserting) and return a connection."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    for t in db.domain.tables:
        conn.execute(create_table_sql(t))
        names = [c.name for c in t.columns]
        conn.executemany(
            f"INSERT INTO {t.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            [tuple(r[n] for n in names) for r in db.rows[t.name]],
        )
    conn.commit()
    bad = conn.execute("PRAGMA foreign_key_check").fetchall()
    if bad:
        raise ValueError(f"{db.domain.db_id}: foreign key violations {bad[:3]}")
    return conn


def domain_examples(db: Database, conn: sqlite3.Connection) -> list[dict]:
    """Up to QUOTA[level] informative instances of every template on one database."""
    examples, used = [], set()  # a query belongs to one template (and so to one split)
    for template in TEMPLATES:
        rng = random.Random(f"sqlbench-v{VERSION}:{db.domain.db_id}:{template.name}")
        candidates = {}  # query -> slots, first filling wins; dict keeps the order
        for slots in template.fill(db, rng):
            candidates.setdefault(template.sql.format(**slots), slots)
        queries = [q for q in candidates if q not in used]
        rng.shuffle(queries)
        kept = 0
        for query in queries:
            if kept == QUOTA[template.level]:
                break
            if informative(conn, query):
                examples.append(instance(db.domain.db_id, template, query, candidates[query], rng))
                used.add(query)
                kept += 1
    return examples


def instance(db_id: str, template: Template, query: str, slots: dict, rng: random.Random) -> dict:
    question = rng.choice(template.questions).format(**slots)
    return {"db_id": db_id, "question": question, "query": query,
            "template": template.name, "level": template.level}


_LIMITED = re.compile(r"^SELECT (.+?) FROM (.+) ORDER BY (.+) (ASC|DESC) LIMIT (\d+)$")


def informative(conn: sqlite3.Connection, query: str) -> bool:
    """Rows that tell a right query from a wrong one: not empty, not a lone 0/NULL, and for
    `ORDER BY ... LIMIT k` no tie between the k-th and the (k+1)-th sort key (the answer would
    depend on how the engine breaks ties)."""
    rows = conn.execute(query).fetchall()
    if not rows or rows in ([(0,)], [(None,)]):
        return False
    limited = _LIMITED.match(query)
    if limited:
        _, rest, key, direction, k = limited.groups()
        keys = conn.execute(f"SELECT {key} FROM {rest} ORDER BY {key} {direction} LIMIT {int(k) + 1}").fetchall()
        if len(keys) > int(k) and keys[int(k) - 1] == keys[int(k)]:
            return False
    return True


def split(examples: list[dict]) -> dict[str, list[dict]]:
    """Held-out domain -> heldout; per template, TEST_SHARE of the other domains' items -> test.
    A test item whose question text also occurs in train (possible across domains that share a
    table name) moves to train, so no question is in both."""
    heldout = [e for e in examples if e["db_id"] == HELDOUT_DB]
    train, test = [], []
    for template in TEMPLATES:
        items = [e for e in examples if e["db_id"] != HELDOUT_DB and e["template"] == template.name]
        random.Random(f"sqlbench-v{VERSION}:split:{template.name}").shuffle(items)
        n_test = round(TEST_SHARE * len(items))
        test += items[:n_test]
        train += items[n_test:]
    train_questions = {e["question"] for e in train}
    train += [e for e in test if e["question"] in train_questions]
    test = [e for e in test if e["question"] not in train_questions]
    order = {t.name: i for i, t in enumerate(TEMPLATES)}
    domain_order = {d.db_id: i for i, d in enumerate(all_domains())}
    key = lambda e: (domain_order[e["db_id"]], order[e["template"]], e["question"])  # noqa: E731
    return {"train": sorted(train, key=key), "test": sorted(test, key=key), "heldout": sorted(heldout, key=key)}

