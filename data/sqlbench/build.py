"""Build the benchmark in Spider's on-disk layout, once, into the cache.

    <dir>/database/<db_id>/<db_id>.sqlite   one SQLite file per database
    <dir>/tables.json                       Spider schema descriptions
    <dir>/<split>.json                      [{"db_id", "question", "query", "level", "production"}]

Splits, each measuring a further step of generalisation:
    train           databases of the training domains
    test            new questions on training databases (two per database)
    heldout_db      databases never trained on, of domains seen in training (one per domain)
    heldout_domain  every database of HELDOUT_DOMAINS, domains never seen in training
`heldout` is kept as another name of `heldout_domain` (it was a held-out domain before).

Every database gets a quota of questions per Spider hardness level; a sampled query is kept only
if its level still has room, it is new on its database, and it executes on the freshly written
SQLite file with an informative result (informative())."""

from __future__ import annotations

import random
import sqlite3
import time
from collections import Counter
from pathlib import Path

from data.files import atomic_directory, atomic_write_json, cache_root
from data.sqlbench.compose import Database, compose, create_table_sql, spider_tables_entry
from data.sqlbench.domains import DOMAINS, Domain
from data.sqlbench.grammar import LEVELS, Example, Sampler, Select, sample

VERSION = 4  # bump on any change of the output: the cache directory name changes and it rebuilds
SEED = "sqlbench"  # every draw derives from it (not from VERSION: a bump changes only what the code changed)
BENCHMARK_SPLITS = ("train", "test", "heldout_db", "heldout_domain")
SPLIT_ALIASES = {"heldout": "heldout_domain"}
DATABASES_PER_DOMAIN = 5
# Never trained on: typical domains (no odd schema), spread over kinds of data.
HELDOUT_DOMAINS = ("zoo", "theater", "wine_cellar", "parking", "mountaineering", "veterinary", "railway",
                   "chess_club")
TRAIN_QUOTA = 13  # questions per level on a training database (52; two of them go to `test`)
HELDOUT_QUOTA = 3  # per level on a held-out database (12)
TEST_PER_DATABASE = 2
ATTEMPTS_PER_QUESTION = 25  # a database that cannot fill a level stops trying after this many draws each


def bundled_benchmark_dir() -> Path:
    """The benchmark directory in the cache, built on first use (under a minute)."""
    path = cache_root() / f"sqlbench-v{VERSION}"
    if not path.is_dir():  # atomic_directory: if it exists, it is complete
        build(path)
    return path


def split_name(split: str) -> str:
    """The split a name stands for (`heldout` -> `heldout_domain`); ValueError for an unknown one."""
    name = SPLIT_ALIASES.get(split, split)
    if name not in BENCHMARK_SPLITS:
        choices = ", ".join(BENCHMARK_SPLITS + tuple(SPLIT_ALIASES))
        raise ValueError(f"unknown split {split!r} for the bundled benchmark: use one of {choices}")
    return name


def database_plan(domains: tuple[Domain, ...] = DOMAINS, per_domain: int = DATABASES_PER_DOMAIN) -> list[tuple]:
    """(domain, index, role) for every database: role is train, heldout_db or heldout_domain."""
    plan = []
    for d in domains:
        held = random.Random(f"{SEED}:heldout:{d.name}").randrange(per_domain)
        for k in range(per_domain):
            role = "heldout_domain" if d.name in HELDOUT_DOMAINS else "heldout_db" if k == held else "train"
            plan.append((d, k, role))
    return plan


def build(path: str | Path, domains: tuple[Domain, ...] = DOMAINS, per_domain: int = DATABASES_PER_DOMAIN) -> dict:
    """Write the whole benchmark to `path` (atomically) and return its statistics."""
    start = time.perf_counter()
    splits: dict[str, list[dict]] = {name: [] for name in BENCHMARK_SPLITS}
    tables = []
    with atomic_directory(path) as tmp:
        for domain, index, role in database_plan(domains, per_domain):
            db = compose(domain, index, SEED)
            sqlite_path = tmp / "database" / db.db_id / f"{db.db_id}.sqlite"
            conn = write_database(db, sqlite_path)
            try:
                quota = TRAIN_QUOTA if role == "train" else HELDOUT_QUOTA
                examples = database_examples(db, conn, quota)
            finally:
                conn.close()
            if role == "train":
                rng = random.Random(f"{SEED}:test:{db.db_id}")
                test = set(rng.sample(range(len(examples)), min(TEST_PER_DATABASE, len(examples))))
                splits["test"] += [e for i, e in enumerate(examples) if i in test]
                splits["train"] += [e for i, e in enumerate(examples) if i not in test]
            else:
                splits[role] += examples
            tables.append(spider_tables_entry(db))
        # a test question worded exactly like a training one (on another database) is not new: train
        train_questions = {e["question"] for e in splits["train"]}
        splits["train"] += [e for e in splits["test"] if e["question"] in train_questions]
        splits["test"] = [e for e in splits["test"] if e["question"] not in train_questions]
        for name in BENCHMARK_SPLITS:  # seeded shuffle: `--limit N` (evenly spread) is then a fair sample
            random.Random(f"{SEED}:order:{name}").shuffle(splits[name])
        atomic_write_json(tmp / "tables.json", tables)
        for name in BENCHMARK_SPLITS:
            atomic_write_json(tmp / f"{name}.json", splits[name])
    return {
        "seconds": round(time.perf_counter() - start, 2),
        "databases": len(tables),
        "domains": len(domains),
        "splits": {name: len(items) for name, items in splits.items()},
        "levels": {name: dict(Counter(e["level"] for e in items)) for name, items in splits.items()},
    }


def write_database(db: Database, path: Path) -> sqlite3.Connection:
    """Create the SQLite file (foreign keys enforced while inserting) and return a connection to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    for t in db.tables:
        conn.execute(create_table_sql(t, db.style))
        conn.executemany(f"INSERT INTO {t.sql} VALUES ({', '.join('?' * len(t.columns))})", t.rows)
    conn.commit()
    bad = conn.execute("PRAGMA foreign_key_check").fetchall()
    if bad:
        raise ValueError(f"{db.db_id}: foreign key violations {bad[:3]}")
    return conn


def database_examples(db: Database, conn: sqlite3.Connection, quota: int) -> list[dict]:
    """Up to `quota` informative questions per hardness level on one database, in drawing order."""
    rng = random.Random(f"{SEED}:questions:{db.db_id}")
    sampler = Sampler(db, rng)
    kept: dict[str, list[dict]] = {level: [] for level in LEVELS}
    seen_sql, seen_questions = set(), set()
    for _ in range(ATTEMPTS_PER_QUESTION * quota * len(LEVELS)):
        open_levels = [level for level in LEVELS if len(kept[level]) < quota]
        if not open_levels:
            break
        example = sample(sampler, rng.choice(open_levels))
        if example is None:
            continue
        level, sql = example.query.level(), example.query.sql()
        if len(kept[level]) >= quota or sql in seen_sql or example.question in seen_questions:
            continue
        if not informative(conn, example):
            continue
        seen_sql.add(sql)
        seen_questions.add(example.question)
        kept[level].append({"db_id": db.db_id, "question": example.question, "query": sql, "level": level,
                            "production": example.production})
    return [e for level in LEVELS for e in kept[level]]


def _rows(conn: sqlite3.Connection, query: Select) -> list[tuple]:
    return conn.execute(query.sql()).fetchall()


def informative(conn: sqlite3.Connection, example: Example) -> bool:
    """Rows that tell a right query from a wrong one:
      - not empty, not one row of NULLs and zeros;
      - every WHERE and HAVING filters something (the query without it answers differently);
      - ORDER BY ... LIMIT k: no NULL among the first k keys and no tie between the k-th and the
        (k+1)-th (the answer would depend on how the engine breaks ties);
      - a set operation changes its operands (INTERSECT and UNION differ from either side alone,
        EXCEPT removes something);
      - `= (SELECT max ...)` finds exactly one row, so ORDER BY ... LIMIT 1 is right too."""
    q = example.query
    try:
        rows = _rows(conn, q)
        if not rows or (len(rows) == 1 and all(v is None or v == 0 for v in rows[0])):
            return False
        if q.where and q.compound is None and sorted(map(repr, _rows(conn, q.without_where()))) == sorted(map(repr, rows)):
            return False
        if q.having and sorted(map(repr, _rows(conn, q.without_having()))) == sorted(map(repr, rows)):
            return False
        if q.order and q.limit is not None:
            keys = [k for (k,) in _rows(conn, q.order_keys())]
            if None in keys[: q.limit] or len(keys) <= q.limit or keys[q.limit - 1] == keys[q.limit]:
                return False
        if q.compound:
            op, right = q.compound
            result = set(rows)
            left_rows, right_rows = set(_rows(conn, q.alone())), set(_rows(conn, right))
            if op in ("INTERSECT", "UNION") and result in (left_rows, right_rows):
                return False
            if op == "EXCEPT" and result == left_rows:
                return False
        if example.production == "nested_extreme" and len(rows) != 1:
            return False
    except sqlite3.Error as e:  # the grammar writes only valid SQL: a failure here is a bug, not noise
        raise ValueError(f"generated query fails: {q.sql()}: {e}") from None
    return True
