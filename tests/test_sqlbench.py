"""The generated benchmark: Spider layout, sound databases, executable gold SQL, clean splits."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

import data.sqlbench.build as build_module
from data.sqlbench import BENCHMARK_SPLITS, VERSION, bundled_benchmark_dir
from data.sqlbench.build import build
from data.sqlbench.domains import HELDOUT_DB
from data.sqlbench.templates import LEVELS, TEMPLATES
from eval.hardness import hardness


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> dict:
    """The benchmark built once through the public entry point into a private cache."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QLORA_ENGINE_CACHE", str(cache))
        start = time.perf_counter()
        root = bundled_benchmark_dir()
        seconds = time.perf_counter() - start
    splits = {name: json.loads((root / f"{name}.json").read_text()) for name in BENCHMARK_SPLITS}
    tables = json.loads((root / "tables.json").read_text())
    return {"root": root, "cache": cache, "seconds": seconds, "splits": splits, "tables": tables,
            "all": [e for name in BENCHMARK_SPLITS for e in splits[name]]}


def connect(root: Path, db_id: str) -> sqlite3.Connection:
    return sqlite3.connect(root / "database" / db_id / f"{db_id}.sqlite")


def test_layout_counts_and_build_time(bench):
    root = bench["root"]
    assert root == bench["cache"] / f"sqlbench-v{VERSION}"
    assert BENCHMARK_SPLITS == ("train", "test", "heldout")
    db_ids = [t["db_id"] for t in bench["tables"]]
    assert len(db_ids) >= 9 and len(set(db_ids)) == len(db_ids)
    assert sorted(p.name for p in (root / "database").iterdir()) == sorted(db_ids)
    sizes = {name: len(items) for name, items in bench["splits"].items()}
    assert sum(sizes.values()) >= 3000
    assert sizes["train"] >= 2400 and sizes["test"] >= 250 and sizes["heldout"] >= 250
    for e in bench["all"]:
        assert set(e) == {"db_id", "question", "query", "template", "level"}
    assert bench["seconds"] < 15


def test_cache_is_reused(bench, monkeypatch):
    monkeypatch.setenv("QLORA_ENGINE_CACHE", str(bench["cache"]))
    before = (bench["root"] / "train.json").stat().st_mtime_ns
    monkeypatch.setattr(build_module, "build", lambda path: pytest.fail("rebuilt a complete cache"))
    assert bundled_benchmark_dir() == bench["root"]
    assert (bench["root"] / "train.json").stat().st_mtime_ns == before


def test_databases_have_keys_and_clean_foreign_keys(bench):
    for entry in bench["tables"]:
        conn = connect(bench["root"], entry["db_id"])
        ddl = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
        assert 3 <= len(ddl) <= 6, entry["db_id"]
        assert list(ddl) == entry["table_names_original"]
        assert all("PRIMARY KEY" in sql for sql in ddl.values())
        n_foreign = sum(sql.count("FOREIGN KEY") for sql in ddl.values())
        assert n_foreign == len(entry["foreign_keys"]) >= 2
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        for name in ddl:
            n_rows = conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            assert 10 <= n_rows <= 500, (entry["db_id"], name, n_rows)
        # tables.json describes exactly the SQLite columns, in order, with index 0 = "*"
        columns = [[-1, "*"]] + [[ti, row[1]] for ti, name in enumerate(ddl)
                                 for row in conn.execute(f"PRAGMA table_info({name})")]
        assert entry["column_names_original"] == columns
        assert len(entry["column_names"]) == len(entry["column_types"]) == len(columns)
        for child, parent in entry["foreign_keys"]:
            assert columns[child][1] == columns[parent][1]  # fk is named after the key it references
            assert parent in entry["primary_keys"]
        conn.close()


def test_every_gold_query_executes_and_most_return_rows(bench):
    conns = {t["db_id"]: connect(bench["root"], t["db_id"]) for t in bench["tables"]}
    non_empty = sum(bool(conns[e["db_id"]].execute(e["query"]).fetchall()) for e in bench["all"])
    assert non_empty / len(bench["all"]) >= 0.9


def test_questions_carry_the_literals_of_their_query(bench):
    """Values in the SQL come from the question's words (case included), never from nowhere."""
    for e in bench["all"]:
        for value in re.findall(r"'([^']*)'", e["query"]):
            assert value.strip("%") in e["question"], e


def test_no_duplicates_and_no_leak_between_splits(bench):
    splits = bench["splits"]
    pairs = [(e["db_id"], e["question"]) for e in bench["all"]]
    assert len(pairs) == len(set(pairs))
    assert {e["db_id"] for e in splits["heldout"]} == {HELDOUT_DB}
    assert HELDOUT_DB not in {e["db_id"] for e in splits["train"] + splits["test"]}
    train_questions = {e["question"] for e in splits["train"]}
    assert not train_questions & {e["question"] for e in splits["test"]}
    train_queries = {(e["db_id"], e["query"]) for e in splits["train"]}
    assert not train_queries & {(e["db_id"], e["query"]) for e in splits["test"]}
    assert len({e["db_id"] for e in splits["test"]}) == len(bench["tables"]) - 1


def test_templates_transfer_to_the_heldout_domain(bench):
    """The held-out questions are new instances of patterns trained on several other domains."""
    names = {t.name for t in TEMPLATES}
    in_heldout = {e["template"] for e in bench["splits"]["heldout"]}
    assert len(in_heldout) >= 0.9 * len(names)
    domains_per_template = Counter()
    for template, db_id in {(e["template"], e["db_id"]) for e in bench["splits"]["train"]}:
        domains_per_template[template] += 1
    assert all(domains_per_template[name] >= 5 for name in in_heldout)


def test_levels_cover_spider_hardness_and_match_the_official_rules(bench):
    for name in ("train", "heldout"):
        counts = Counter(e["level"] for e in bench["splits"][name])
        assert set(counts) == set(LEVELS)
        assert min(counts.values()) / sum(counts.values()) >= 0.1, counts
    mismatched = [(e["template"], e["level"], hardness(e["query"]))
                  for e in bench["all"] if hardness(e["query"]) != e["level"]]
    assert mismatched == []


def table_contents(root: Path) -> dict:
    out = {}
    for path in sorted((root / "database").glob("*/*.sqlite")):
        conn = sqlite3.connect(path)
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out[path.name] = {n: conn.execute(f"SELECT * FROM {n}").fetchall() for n in names}
        conn.close()
    return out


def test_building_twice_gives_identical_files_and_rows(bench, tmp_path):
    again = tmp_path / "again"
    build(again)
    for name in ["tables.json"] + [f"{s}.json" for s in BENCHMARK_SPLITS]:
        assert (again / name).read_bytes() == (bench["root"] / name).read_bytes(), name
    assert table_contents(again) == table_contents(bench["root"])


def test_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("QLORA_ENGINE_CACHE", str(tmp_path))

    def crash(*args):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(build_module, "split", crash)
    with pytest.raises(RuntimeError, match="interrupted"):
        bundled_benchmark_dir()
    assert list(tmp_path.iterdir()) == []
