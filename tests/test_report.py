"""The evaluation report on hand-written predictions over a small SQLite database made here:
exact numbers per hardness level, the printed table, mistakes.csv, aligned gold/pred files, the
base vs fine-tuned comparison, and that no prediction can change the database."""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

import eval.report as report_module
from eval.generate import EMPTY_SQL
from eval.report import (build_report, check_databases, check_gold, format_comparison, format_table,
                         load_report, score_predictions, write_report)

DB_ID = "concert"
ROWS = [(1, "Ann", "France", 25), (2, "Bob", "France", 35), (3, "Cy", "Japan", 45),
        (4, "Di", "Japan", 33), (5, "Ed", "Chile", 52), (6, "Flo", "France", 41)]
EXTRA_GOLD = ("SELECT country, count(*) FROM singer WHERE age > 20 GROUP BY country "
              "ORDER BY count(*) DESC LIMIT 1")

# (gold, prediction, expected hardness, Spider exact-set match, exec, expected error fragment, text match)
CASES = [
    ("SELECT count(*) FROM singer", "select count(*) from singer;", "easy", True, True, None, True),
    ("SELECT name FROM singer WHERE age > 30", "SELECT name FROM singer WHERE age >= 31",
     "easy", False, True, None, False),
    ("SELECT name, age FROM singer WHERE country = 'France'",
     "SELECT age, name FROM singer WHERE country = \"France\" ORDER BY age", "medium", False, True, None, False),
    ("SELECT name, country FROM singer WHERE age < 40", "SELECT name, country FROM singer",
     "medium", False, False, "6 rows vs 3 gold rows", False),
    ("SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)", "SELEC name FROM singer",
     "hard", False, False, "error: OperationalError: near \"SELEC\": syntax error", False),
    ("SELECT name FROM singer WHERE age < (SELECT avg(age) FROM singer)", EMPTY_SQL,
     "hard", False, False, "empty prediction", False),
    (EXTRA_GOLD, EXTRA_GOLD + "; SELECT 1", "extra", False, False,
     "error: multiple statements (2); only one is allowed", False),
    ("SELECT country, max(age) FROM singer WHERE age > 20 GROUP BY country ORDER BY max(age) DESC LIMIT 1",
     "DELETE FROM singer", "extra", False, False, "error: write denied: DELETE singer", False),
    # Spider's exact-set match ignores values and alias names: right there, wrong by execution
    ("SELECT name FROM singer WHERE age > 30", "SELECT T1.name FROM singer AS T1 WHERE T1.age > 40",
     "easy", True, False, "3 rows vs 5 gold rows", False),
]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def db_root(tmp_path: Path) -> Path:
    root = tmp_path / "database"
    (root / DB_ID).mkdir(parents=True)
    conn = sqlite3.connect(root / DB_ID / f"{DB_ID}.sqlite")
    conn.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER)")
    conn.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)", ROWS)
    conn.commit()
    conn.close()
    return root


def _items() -> list[dict]:
    return [{"question": f"question {i}, with a comma", "db_id": DB_ID, "gold": gold, "pred": pred}
            for i, (gold, pred, *_) in enumerate(CASES)]


def test_every_example_is_scored_as_expected(db_root: Path) -> None:
    scored = score_predictions(_items(), db_root)
    assert [r["hardness"] for r in scored] == [c[2] for c in CASES]
    assert [r["exact"] for r in scored] == [c[3] for c in CASES]
    assert [r["exec"] for r in scored] == [c[4] for c in CASES]
    assert [r["error"] for r in scored] == [c[5] for c in CASES]
    assert [r["text_match"] for r in scored] == [c[6] for c in CASES]
    assert [r["index"] for r in scored] == list(range(len(CASES)))
    assert [r["exact_reason"] for r in scored][4:7] == [
        "prediction does not parse: " + scored[4]["exact_reason"].split(": ", 1)[1],
        "empty prediction", "multiple statements"]


def test_numbers_per_level(db_root: Path) -> None:
    report = build_report(score_predictions(_items(), db_root), {"model": "hand-written"})
    m = report["metrics"]
    assert {level: m[level]["count"] for level in m} == {"easy": 3, "medium": 2, "hard": 2, "extra": 2, "all": 9}
    assert {level: m[level]["execution"] for level in m} == \
        {"easy": 2 / 3, "medium": 0.5, "hard": 0.0, "extra": 0.0, "all": 3 / 9}
    assert {level: m[level]["exact_match"] for level in m} == \
        {"easy": 2 / 3, "medium": 0.0, "hard": 0.0, "extra": 0.0, "all": 2 / 9}
    assert {level: m[level]["text_match"] for level in m} == \
        {"easy": 1 / 3, "medium": 0.0, "hard": 0.0, "extra": 0.0, "all": 1 / 9}
    # partial scores, the official way: easy WHERE is right in 1 of the 2 predictions that have one
    assert m["easy"]["partial"]["where"] == {"acc": 0.5, "rec": 0.5, "f1": 0.5}
    assert m["medium"]["partial"]["where"]["rec"] == 0.5  # one gold WHERE of two is predicted
    assert report["counts"] == {"examples": 9, "execution_correct": 3, "exact_correct": 2,
                                "text_match_correct": 1, "gold_outside_match_parser": 0,
                                "prediction_errors": 3, "empty_predictions": 1,
                                "truncated_generations": 0, "without_hardness": 0}
    assert report["settings"] == {"model": "hand-written"}


def test_printed_table_has_the_official_layout(db_root: Path) -> None:
    lines = format_table(build_report(score_predictions(_items(), db_root))["metrics"]).splitlines()
    assert lines[:7] == [
        "                     easy                 medium               hard                 extra                all",
        "count                3                    2                    2                    2                    9",
        "=====================   EXECUTION ACCURACY     =====================",
        "execution            0.667                0.500                0.000                0.000                0.333",
        "",
        "====================== EXACT MATCHING ACCURACY =====================",
        "exact match          0.667                0.000                0.000                0.000                0.222",
    ]
    assert lines[8] == "---------------------PARTIAL MATCHING ACCURACY----------------------"
    assert lines[11] == "where                0.500                1.000                0.000                0.000                0.667"
    assert lines[19] == "---------------------- PARTIAL MATCHING RECALL ----------------------"
    assert lines[30] == "---------------------- PARTIAL MATCHING F1 --------------------------"
    assert lines[-3:] == [
        "",
        "=========== SQL TEXT MATCH (not Spider's exact-set match) ==========",
        "text match           0.333                0.000                0.000                0.000                0.111",
    ]
    exec_only = format_table(build_report(score_predictions(_items(), db_root, etype="exec"))["metrics"], "exec")
    assert "EXACT MATCHING" not in exec_only and "execution            0.667" in exec_only


def test_files_are_written_and_aligned(db_root: Path, tmp_path: Path) -> None:
    scored = score_predictions(_items(), db_root)
    out = write_report(tmp_path / "out", scored, build_report(scored))
    assert sorted(p.name for p in out.iterdir()) == \
        ["eval.json", "gold.txt", "mistakes.csv", "pred.txt", "predictions.jsonl"]

    gold_lines = (out / "gold.txt").read_text().splitlines()
    pred_lines = (out / "pred.txt").read_text().splitlines()
    assert len(gold_lines) == len(pred_lines) == len(CASES)
    assert [line.split("\t") for line in gold_lines] == [[c[0], DB_ID] for c in CASES]
    assert [line.split("\t") for line in pred_lines] == [[c[1], DB_ID] for c in CASES]

    with open(out / "mistakes.csv", newline="") as f:
        mistakes = list(csv.DictReader(f))
    assert [int(r["index"]) for r in mistakes] == [3, 4, 5, 6, 7, 8]
    assert [r["error"] for r in mistakes] == [c[5] for c in CASES[3:]]
    assert mistakes[0]["question"] == "question 3, with a comma"
    assert (mistakes[0]["gold"], mistakes[0]["predicted"]) == (CASES[3][0], CASES[3][1])
    assert [r["hardness"] for r in mistakes] == ["medium", "hard", "hard", "extra", "extra", "easy"]

    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [(r["exec"], r["exact"]) for r in records] == [(c[4], c[3]) for c in CASES]
    assert all("_partial" not in r for r in records)
    assert json.loads((out / "eval.json").read_text())["metrics"]["all"]["execution"] == 3 / 9


def test_multiline_sql_stays_on_one_line_in_the_files(db_root: Path, tmp_path: Path) -> None:
    items = [{"question": "q", "db_id": DB_ID, "gold": "SELECT name\nFROM singer\tWHERE age > 50",
              "pred": "SELECT name FROM singer WHERE age = 52"}]
    scored = score_predictions(items, db_root)
    assert scored[0]["exec"] is True
    out = write_report(tmp_path / "out", scored, build_report(scored))
    assert (out / "gold.txt").read_text() == f"SELECT name FROM singer WHERE age > 50\t{DB_ID}\n"


def test_two_statements_are_never_executed(db_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    executed: list[str] = []

    def traced(path):
        conn = report_module_open(path)
        conn.set_trace_callback(executed.append)
        return conn

    report_module_open = report_module.open_readonly
    monkeypatch.setattr(report_module, "open_readonly", traced)
    items = [{"question": "q", "db_id": DB_ID, "gold": "SELECT count(*) FROM singer",
              "pred": "SELECT count(*) FROM singer; SELECT count(*) FROM singer"}]
    scored = score_predictions(items, db_root)
    assert (scored[0]["exec"], scored[0]["error"]) == (False, "error: multiple statements (2); only one is allowed")
    assert executed == ["SELECT count(*) FROM singer"]  # the gold query, once; the prediction never


@pytest.mark.parametrize("pred", ["DELETE FROM singer", "DROP TABLE singer", "UPDATE singer SET age = 0",
                                  "INSERT INTO singer VALUES (7, 'Gus', 'Peru', 20)",
                                  "CREATE TABLE t (a)", "PRAGMA journal_mode = WAL", "VACUUM"])
def test_write_attempts_leave_the_database_byte_identical(db_root: Path, pred: str) -> None:
    path = db_root / DB_ID / f"{DB_ID}.sqlite"
    before, mtime = _sha256(path), path.stat().st_mtime_ns
    scored = score_predictions([{"question": "q", "db_id": DB_ID, "gold": "SELECT count(*) FROM singer",
                                 "pred": pred}], db_root)
    assert scored[0]["exec"] is False and scored[0]["error"].startswith("error: ")
    assert (_sha256(path), path.stat().st_mtime_ns) == (before, mtime)
    assert sorted(p.name for p in path.parent.iterdir()) == [f"{DB_ID}.sqlite"]  # no -wal, -journal
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*), sum(age) FROM singer").fetchone() == (6, 231)
    conn.close()


def test_missing_database_and_failing_gold_are_errors(db_root: Path) -> None:
    with pytest.raises(ValueError, match=r"database for db_id 'nowhere' not found: .*nowhere.sqlite"):
        check_databases([DB_ID, "nowhere"], db_root)
    with pytest.raises(ValueError, match="an example has no db_id"):
        check_databases([""], db_root)
    with pytest.raises(ValueError, match=r"database for db_id 'nowhere' not found"):
        score_predictions([{"question": "q", "db_id": "nowhere", "gold": "SELECT 1", "pred": "SELECT 1"}], db_root)
    bad_gold = [{"question": "q", "db_id": DB_ID, "gold": "SELECT nope FROM singer", "pred": "SELECT 1"}]
    with pytest.raises(ValueError, match=r"example 0 \(db concert\): gold query failed: error|"
                                         r"example 0 \(db concert\): gold query failed"):
        check_gold(bad_gold, db_root)
    with pytest.raises(ValueError, match="gold query failed"):
        score_predictions(bad_gold, db_root)


def test_comparison_shows_the_gain_in_points(db_root: Path, tmp_path: Path) -> None:
    tuned_scored = score_predictions(_items(), db_root)
    base_items = [dict(item, pred=EMPTY_SQL) for item in _items()]
    base_items[2]["pred"] = CASES[2][0]  # the base gets one medium question right, exactly
    base_scored = score_predictions(base_items, db_root)
    write_report(tmp_path / "base", base_scored, build_report(base_scored))
    base = load_report(tmp_path / "base")
    text = format_comparison(base, build_report(tuned_scored))
    lines = text.splitlines()
    assert lines[0].split() == ["easy", "medium", "hard", "extra", "all"]
    assert lines[1].split() == ["count", "3", "2", "2", "2", "9"]
    execution = lines[lines.index("execution") + 1: lines.index("execution") + 4]
    assert [line.split() for line in execution] == [
        ["base", "0.000", "0.500", "0.000", "0.000", "0.111"],
        ["fine-tuned", "0.667", "0.500", "0.000", "0.000", "0.333"],
        ["gain", "(points)", "+66.7", "+0.0", "+0.0", "+0.0", "+22.2"],
    ]
    exact = lines[lines.index("exact match") + 1: lines.index("exact match") + 4]
    assert [line.split()[-1] for line in exact] == ["0.111", "0.222", "+11.1"]
    text = lines[lines.index("text match") + 1: lines.index("text match") + 4]
    assert [line.split()[-1] for line in text] == ["0.111", "0.111", "+0.0"]

    other = build_report(tuned_scored[:4])
    with pytest.raises(ValueError, match="different examples"):
        format_comparison(base, other)


def test_load_report_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="evaluation report not found"):
        load_report(tmp_path / "none")
    (tmp_path / "eval.json").write_text("{}")
    with pytest.raises(ValueError, match="not an eval.json"):
        load_report(tmp_path)


def test_distinct_follows_the_official_default_and_keep_distinct(db_root: Path) -> None:
    item = {"question": "Which countries?", "db_id": DB_ID, "gold": "SELECT DISTINCT country FROM singer",
            "pred": "SELECT country FROM singer"}  # 6 rows against 3 distinct ones
    assert score_predictions([item], db_root)[0]["exec"] is True  # both run without DISTINCT
    kept = score_predictions([item], db_root, keep_distinct=True)[0]
    assert (kept["exec"], kept["error"]) == (False, "6 rows vs 3 gold rows")
