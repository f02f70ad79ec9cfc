"""The generated benchmark: many databases and domains in Spider's layout, identifier styles and
value distributions found in the wild, every Spider component in the SQL, executable and
informative gold queries, balanced hardness, worded questions, and splits that hold out databases
and whole domains. The whole corpus is built once, in the project's cache (the suite reuses it);
determinism and atomicity are checked on small builds."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import statistics
import time
from collections import Counter
from pathlib import Path

import pytest

import data.sqlbench.build as build_module
from data.sqlbench import BENCHMARK_SPLITS, VERSION, bundled_benchmark_dir, split_name
from data.sqlbench.build import HELDOUT_DOMAINS, build
from data.sqlbench.domains import DOMAINS
from eval.hardness import hardness
from eval.sqlite_exec import execute, open_readonly

LEVELS = ("easy", "medium", "hard", "extra")


@pytest.fixture(scope="module")
def bench() -> dict:
    """The bundled corpus through its public entry point (built on first use, then cached)."""
    root = bundled_benchmark_dir()
    splits = {name: json.loads((root / f"{name}.json").read_text()) for name in BENCHMARK_SPLITS}
    tables = json.loads((root / "tables.json").read_text())
    return {"root": root, "splits": splits, "tables": {t["db_id"]: t for t in tables},
            "all": [e for name in BENCHMARK_SPLITS for e in splits[name]]}


def connect(root: Path, db_id: str) -> sqlite3.Connection:
    """Read-only, without the evaluator's authorizer (the tests read PRAGMAs it refuses)."""
    return sqlite3.connect((root / "database" / db_id / f"{db_id}.sqlite").as_uri() + "?mode=ro", uri=True)


def domain_of(db_id: str) -> str:
    return db_id.rsplit("_", 1)[0]


def test_layout_counts_and_split_names(bench):
    root = bench["root"]
    assert root.name == f"sqlbench-v{VERSION}" and VERSION == 4
    assert BENCHMARK_SPLITS == ("train", "test", "heldout_db", "heldout_domain")
    assert split_name("heldout") == "heldout_domain" and split_name("heldout_db") == "heldout_db"
    with pytest.raises(ValueError, match="unknown split 'dev' for the bundled benchmark"):
        split_name("dev")
    assert sorted(p.name for p in (root / "database").iterdir()) == sorted(bench["tables"])
    assert len(bench["tables"]) == 260 and len(DOMAINS) == 52
    assert len({domain_of(d) for d in bench["tables"]}) == 52
    sizes = {name: len(items) for name, items in bench["splits"].items()}
    assert sizes == {"train": 8800, "test": 352, "heldout_db": 528, "heldout_domain": 480}
    for e in bench["all"]:
        assert set(e) == {"db_id", "question", "query", "level", "production"}


def test_cache_is_reused(bench, monkeypatch):
    before = (bench["root"] / "train.json").stat().st_mtime_ns
    monkeypatch.setattr(build_module, "build", lambda path: pytest.fail("rebuilt a complete cache"))
    assert bundled_benchmark_dir() == bench["root"]
    assert (bench["root"] / "train.json").stat().st_mtime_ns == before


def test_databases_have_keys_clean_foreign_keys_and_match_tables_json(bench):
    table_counts = Counter()
    for db_id, entry in bench["tables"].items():
        conn = connect(bench["root"], db_id)
        ddl = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
        assert 2 <= len(ddl) <= 8, db_id
        table_counts[len(ddl)] += 1
        assert list(ddl) == entry["table_names_original"]
        assert all("PRIMARY KEY" in sql for sql in ddl.values())
        n_foreign = sum(sql.count("REFERENCES") for sql in ddl.values())
        assert n_foreign == len(entry["foreign_keys"]) >= 1
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        columns = [[-1, "*"]] + [[ti, row[1]] for ti, name in enumerate(ddl)
                                 for row in conn.execute(f'PRAGMA table_info("{name}")')]
        assert entry["column_names_original"] == columns
        for child, parent in entry["foreign_keys"]:
            assert parent in entry["primary_keys"]
        for name in ddl:
            n_rows = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            assert 5 <= n_rows <= 240, (db_id, name, n_rows)
        conn.close()
    assert set(table_counts) == {2, 3, 4, 5, 6, 7, 8}, table_counts
    assert table_counts[2] + table_counts[3] <= 60 and table_counts[7] + table_counts[8] >= 12, table_counts


def test_identifier_styles_found_in_the_wild(bench):
    """snake_case, CamelCase, Spider's Title_Case, plural tables, quoted names, shared `id`/`name`."""
    styles = Counter()
    for entry in bench["tables"].values():
        columns = [c for _, c in entry["column_names_original"][1:]]
        tables = entry["table_names_original"]
        names = Counter(c.lower() for c in columns)
        styles["snake"] += all(re.fullmatch(r"[a-z0-9_ ]+", c) for c in columns)
        styles["camel"] += any(re.fullmatch(r"[A-Z][a-z]+[A-Z][A-Za-z]*", c) for c in columns)
        styles["spider"] += any(re.fullmatch(r"[A-Z][a-z]+(_[A-Z][a-z]*|_ID)+", c) for c in columns)
        styles["upper"] += all(c == c.upper() for c in columns)
        styles["plural"] += any(t.lower().endswith("s") and not t.lower().endswith("ss") for t in tables)
        styles["spaces"] += any(" " in c for c in columns)
        styles["keyword"] += any(t.lower() in ("order", "match", "group") for t in tables)
        styles["shared_id"] += names["id"] >= 2
        styles["shared_name"] += names["name"] >= 2
    assert min(styles.values()) >= 3, styles
    assert styles["snake"] >= 80 and styles["camel"] >= 40 and styles["shared_id"] >= 60, styles


def test_values_have_nulls_ties_dates_money_and_free_text(bench):
    found = Counter()
    for db_id in bench["tables"]:
        conn = connect(bench["root"], db_id)
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for cid, col, typ, *_ in conn.execute(f'PRAGMA table_info("{name}")').fetchall():
                values = [v for (v,) in conn.execute(f'SELECT "{col}" FROM "{name}"').fetchall()]
                present = [v for v in values if v is not None]
                found["null"] += len(present) < len(values)
                found["tie"] += len(set(present)) < len(present)
                found["date"] += bool(present) and all(isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\d", v)
                                                       for v in present)
                found["cents"] += any(isinstance(v, float) and round(v * 100) % 100 not in (0,) for v in present)
                found["text"] += any(isinstance(v, str) and len(v.split()) >= 4 for v in present)
                found["email"] += any(isinstance(v, str) and "@" in v for v in present)
        conn.close()
    assert found["null"] >= 300 and found["tie"] >= 1000 and found["date"] >= 300, found
    assert found["cents"] >= 200 and found["text"] >= 50 and found["email"] >= 40, found


def test_every_gold_query_executes_read_only_with_an_informative_result(bench):
    conns = {db_id: open_readonly(bench["root"] / "database" / db_id / f"{db_id}.sqlite") for db_id in bench["tables"]}
    for e in bench["all"]:
        rows = execute(conns[e["db_id"]], e["query"], timeout_s=5)
        assert rows, e
        assert not (len(rows) == 1 and all(v is None or v == 0 for v in rows[0])), e
    for conn in conns.values():
        conn.close()


def test_sql_covers_every_spider_component(bench):
    train = [e["query"] for e in bench["splits"]["train"]]
    patterns = {
        "join": r" JOIN ", "three tables": r" JOIN .* JOIN ", "nested in WHERE": r"WHERE .*\(SELECT ",
        "nested in FROM": r"FROM \(SELECT ", "GROUP BY": r"GROUP BY", "HAVING": r"HAVING", "ORDER BY": r"ORDER BY",
        "LIMIT": r"LIMIT \d", "INTERSECT": r" INTERSECT ", "UNION": r" UNION ", "EXCEPT": r" EXCEPT ",
        "NOT IN": r" NOT IN \(", "IN": r" IN \(SELECT", "LIKE": r" LIKE '", "BETWEEN": r" BETWEEN ",
        "count(DISTINCT": r"count\(DISTINCT ", "SELECT DISTINCT": r"SELECT DISTINCT ", "avg": r"avg\(",
        "sum": r"sum\(", "min": r"min\(", "max": r"max\(", "OR": r" OR ", "IS NULL": r" IS NULL",
        "!=": r" != ", ">=": r" >= ", "quoted name": r"`",
    }
    counts = {name: sum(bool(re.search(p, q)) for q in train) for name, p in patterns.items()}
    assert min(counts.values()) >= 50, counts


def test_hardness_is_balanced_and_agrees_with_the_official_rules(bench):
    for name, items in bench["splits"].items():
        counts = Counter(e["level"] for e in items)
        assert set(counts) == set(LEVELS)
        assert min(counts.values()) / len(items) >= 0.21 and max(counts.values()) / len(items) <= 0.29, (name, counts)
    assert [e for e in bench["all"] if hardness(e["query"]) != e["level"]] == []


def test_questions_are_worded_not_spelled_and_carry_their_values(bench):
    for e in bench["all"]:
        for value in re.findall(r"'([^']*)'", e["query"]):
            assert value.strip("%") in e["question"], e
    spelled = 0
    for e in bench["all"]:
        entry = bench["tables"][e["db_id"]]
        idents = {c for _, c in entry["column_names_original"][1:]} | set(entry["table_names_original"])
        spelled += any(("_" in i or re.search("[a-z][A-Z]", i)) and i in e["question"] for i in idents)
    assert spelled == 0
    # many phrasings: distinct opening words and distinct question shapes (values and nouns aside)
    openings = Counter(" ".join(e["question"].split()[:2]) for e in bench["splits"]["train"])
    assert len(openings) >= 300, len(openings)
    per_production = Counter(e["production"] for e in bench["splits"]["train"])
    assert len(per_production) >= 40 and min(per_production.values()) >= 5, per_production


def test_splits_hold_out_databases_and_domains(bench):
    s = bench["splits"]
    dbs = {name: {e["db_id"] for e in items} for name, items in s.items()}
    assert not dbs["train"] & (dbs["heldout_db"] | dbs["heldout_domain"]) and dbs["test"] <= dbs["train"]
    train_domains = {domain_of(d) for d in dbs["train"]}
    assert {domain_of(d) for d in dbs["heldout_db"]} == train_domains and len(train_domains) == 44
    assert {domain_of(d) for d in dbs["heldout_domain"]} == set(HELDOUT_DOMAINS)
    assert not train_domains & set(HELDOUT_DOMAINS)
    assert (len(dbs["train"]), len(dbs["heldout_db"]), len(dbs["heldout_domain"])) == (176, 44, 40)
    pairs = [(e["db_id"], e["question"]) for e in bench["all"]]
    assert len(pairs) == len(set(pairs))
    assert not {e["question"] for e in s["train"]} & {e["question"] for e in s["test"]}


def test_prompt_length_stays_near_the_earlier_corpus(bench):
    """Prompt + answer tokens (bundled tokenizer) of every 20th training example: the mean within
    20% of the earlier corpus's 383.6 (the CPU run's step size); the few longer than --max-length
    512 (the largest schemas) are within 672."""
    from transformers import AutoTokenizer

    from data.formats import load_examples
    from data.tokenize import tokenize_conversation
    from models.bundled import bundled_model_dir

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir())
    examples = load_examples("bundled", "train").select(range(0, 8800, 20))
    lengths = [len(tokenize_conversation(e["messages"], tokenizer)[0]) for e in examples]
    assert 0.8 * 383.6 <= statistics.mean(lengths) <= 1.2 * 383.6, statistics.mean(lengths)
    assert sum(n > 512 for n in lengths) <= 0.05 * len(lengths) and max(lengths) <= 672


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_builds_byte_identical_files(tmp_path):
    small = tuple(d for d in DOMAINS if d.name in ("concert_singer", "university", "zoo"))
    stats = build(tmp_path / "a", small, 2)
    build(tmp_path / "b", small, 2)
    assert stats["databases"] == 6 and stats["splits"]["heldout_domain"] == 24
    first, second = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert len(first) == 6 + 1 + len(BENCHMARK_SPLITS) and first == second


def test_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("QLORA_ENGINE_CACHE", str(tmp_path))

    def crash(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(build_module, "spider_tables_entry", crash)
    with pytest.raises(RuntimeError, match="interrupted"):
        bundled_benchmark_dir()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_whole_corpus_builds_in_well_under_two_minutes(tmp_path):
    start = time.perf_counter()
    stats = build(tmp_path / "corpus")
    assert time.perf_counter() - start < 60
    assert stats["databases"] == 260 and sum(stats["splits"].values()) == 10158
    assert digests(tmp_path / "corpus") == digests(bundled_benchmark_dir())
