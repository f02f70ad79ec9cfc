"""python -m eval.score: the official evaluator's interface over prediction files, scored by the same
code as eval.evaluate; exact numbers, the per-example file, one-line errors, the database untouched."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from eval.score import main

GOLD = [
    ("SELECT count(*) FROM singer", "select count(*) from singer"),  # right, text match too
    ("SELECT name FROM singer WHERE age > 30", "SELECT T1.name FROM singer AS T1 WHERE T1.age > 40"),  # EM only
    ("SELECT name, country FROM singer", "SELECT country, name FROM singer"),  # both right, text differs
    ("SELECT name FROM singer WHERE country = 'France'", "SELECT name FROM singer WHERE country = 'Japan'"),
    ("SELECT name FROM singer", "SELECT " + "(" * 120 + "1" + ")" * 120 + " FROM singer"),  # hostile
    ("SELECT age FROM singer", "DELETE FROM singer"),
]


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    db = tmp_path / "database" / "concert"
    db.mkdir(parents=True)
    conn = sqlite3.connect(db / "concert.sqlite")
    conn.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER)")
    conn.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)",
                     [(1, "Ann", "France", 25), (2, "Bob", "France", 35), (3, "Cy", "Japan", 45)])
    conn.commit()
    conn.close()
    (tmp_path / "gold.txt").write_text("".join(f"{g}\tconcert\n" for g, _ in GOLD))
    (tmp_path / "pred.txt").write_text("".join(f"{p}\n\n" for _, p in GOLD))  # blank lines are skipped
    tables = [{"db_id": "concert", "table_names_original": ["singer"], "table_names": ["singer"],
               "column_names_original": [[-1, "*"], [0, "singer_id"], [0, "name"], [0, "country"], [0, "age"]],
               "column_names": [[-1, "*"], [0, "singer id"], [0, "name"], [0, "country"], [0, "age"]],
               "column_types": ["text", "number", "text", "text", "number"], "primary_keys": [1],
               "foreign_keys": []}]
    (tmp_path / "tables.json").write_text(json.dumps(tables))
    return {"gold": tmp_path / "gold.txt", "pred": tmp_path / "pred.txt", "db": tmp_path / "database",
            "table": tmp_path / "tables.json", "out": tmp_path / "out", "sqlite": db / "concert.sqlite"}


def _args(f, *extra):
    return ["--gold", str(f["gold"]), "--pred", str(f["pred"]), "--db", str(f["db"]), *extra]


def test_scores_and_files(files, capsys):
    before = hashlib.sha256(files["sqlite"].read_bytes()).hexdigest()
    assert main(_args(files, "--table", str(files["table"]), "--etype", "all", "--out", str(files["out"]))) == 0
    printed = capsys.readouterr().out
    assert "====================== EXACT MATCHING ACCURACY =====================" in printed
    report = json.loads((files["out"] / "eval.json").read_text())
    assert report["counts"]["examples"] == 6
    assert report["counts"]["execution_correct"] == 2  # count(*) and the swapped columns
    assert report["counts"]["exact_correct"] == 4  # those two and the two that differ only in values
    assert report["counts"]["text_match_correct"] == 1
    rows = [json.loads(line) for line in (files["out"] / "predictions.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(6))
    assert [(r["exec"], r["exact"]) for r in rows] == [(True, True), (False, True), (True, True),
                                                      (False, True), (False, False), (False, False)]
    assert rows[4]["exact_reason"].startswith("prediction does not parse")
    assert rows[5]["error"].startswith("error: write denied")
    assert {"db_id", "hardness", "exec", "exact", "error", "exact_reason"} <= set(rows[0])
    assert hashlib.sha256(files["sqlite"].read_bytes()).hexdigest() == before


def test_schema_from_sqlite_gives_the_same_match_and_etypes_print_their_part(files, capsys):
    assert main(_args(files, "--etype", "match")) == 0
    printed = capsys.readouterr().out
    assert "EXECUTION ACCURACY" not in printed
    # the same as with tables.json: 3 of the 5 easy ones, the medium one, 4 of 6
    assert "exact match          0.600                1.000                0.000                0.000                0.667" \
        in printed
    assert main(_args(files, "--etype", "exec", "--keep_distinct")) == 0
    assert "EXACT MATCHING" not in capsys.readouterr().out


def test_plug_value_accepts_a_prediction_with_other_values(files, tmp_path):
    assert main(_args(files, "--etype", "exec", "--plug-value", "--out", str(tmp_path / "p"))) == 0
    rows = [json.loads(line) for line in (tmp_path / "p" / "predictions.jsonl").read_text().splitlines()]
    # 'Japan' -> 'France' and 40 -> 30 are the gold's own values: now right
    assert [r["exec"] for r in rows] == [True, True, True, True, False, False]


@pytest.mark.parametrize("change, message", [
    (lambda f: f["pred"].write_text("SELECT 1\n"), "has 6 queries but"),
    (lambda f: (f["gold"].write_text("SELECT 1\n"), f["pred"].write_text("SELECT 1\n")), "expected SQL<TAB>db_id"),
    (lambda f: (f["gold"].write_text("SELECT 1\tnowhere\n"), f["pred"].write_text("SELECT 1\n")),
     "database for db_id 'nowhere' not found"),
    (lambda f: f["gold"].write_bytes(b"\xff\xfe"), "is not UTF-8 text"),
])
def test_bad_input_is_one_line(files, capsys, change, message):
    change(files)
    assert main(_args(files)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


HOSTILE = [
    "SELECT " + "(" * 120 + "1" + ")" * 120 + " FROM singer",  # the parser's stack
    "SELECT zeroblob(400000000) FROM singer",  # one 400 MB value
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT zeroblob(900000) FROM c",
    "SELECT printf('%.*c', 1000000000, 'x')",  # pads inside one call
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",  # never ends
    "DELETE FROM singer",
    "ATTACH DATABASE 'elsewhere.sqlite' AS e",
    "SELECT name FROM pragma_table_info('singer')",  # read-only: runs
    "SELECT count(*) FROM singer",  # and a right one after them all
]


def test_hostile_predictions_cannot_crash_stall_or_blow_up_an_evaluation(files, tmp_path):
    """All hostile predictions in one file, scored in a process of its own that reports its peak memory:
    the evaluation completes with every row, in bounded time and memory, and the database is unchanged."""
    import subprocess
    import sys
    import time

    files["gold"].write_text("".join(f"{g}\tconcert\n" for g in
                                     ["SELECT count(*) FROM singer"] * (len(HOSTILE) - 2)
                                     + ["SELECT name FROM pragma_table_info('singer')", "SELECT count(*) FROM singer"]))
    files["pred"].write_text("".join(f"{p}\n" for p in HOSTILE))
    before = hashlib.sha256(files["sqlite"].read_bytes()).hexdigest()
    # VmHWM, this process's own peak: ru_maxrss would carry the parent's peak across fork and exec
    code = ("import sys; from eval.score import main; rc = main(sys.argv[1:]); "
            "hwm = next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')); "
            "print('maxrss_kib', hwm); sys.exit(rc)")
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", code, *_args(files, "--etype", "all", "--out", str(files["out"]))],
                         capture_output=True, text=True, cwd=Path(__file__).parent.parent, timeout=120)
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    peak_mib = int(run.stdout.split("maxrss_kib")[1].split()[0]) / 1024
    rows = [json.loads(line) for line in (files["out"] / "predictions.jsonl").read_text().splitlines()]
    assert [r["exec"] for r in rows] == [False] * (len(HOSTILE) - 2) + [True, True]
    assert "timeout" in rows[4]["error"] and "write denied" in rows[5]["error"]
    print(f"peak {peak_mib:.0f} MiB in {seconds:.1f} s")
    assert peak_mib < 600, f"peak {peak_mib:.0f} MiB"  # a 400 MB value or 100 x 0.9 MB rows never exist
    assert seconds < 30  # one 2 s time limit, the rest refused at once
    assert hashlib.sha256(files["sqlite"].read_bytes()).hexdigest() == before
    assert not (tmp_path / "database" / "concert" / "elsewhere.sqlite").exists()
