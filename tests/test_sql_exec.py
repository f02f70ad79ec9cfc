from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

import pytest

from eval.sqlite_exec import QueryError, execute, open_readonly, split_statements


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "bench.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        PRAGMA synchronous = OFF;  -- test fixture: no fsync, ~10x faster setup
        CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, year INTEGER);
        CREATE INDEX t_year ON t(year);
        INSERT INTO t VALUES (1, 'ann', 2001), (2, 'bob', 2002), (3, 'cy', 2002);
        CREATE TABLE raw (txt TEXT);
        -- 0xff is never valid UTF-8: Spider has a few such rows
        INSERT INTO raw VALUES (CAST(x'ff41' AS TEXT));
        """
    )
    conn.commit()
    conn.close()
    return path


def test_select_returns_rows(db_path: Path) -> None:
    conn = open_readonly(db_path)
    rows = execute(conn, "SELECT name, year FROM t WHERE year = 2002 ORDER BY id;")
    assert rows == [("bob", 2002), ("cy", 2002)]


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE t",
        "DELETE FROM t",
        "UPDATE t SET name = 'x'",
        "INSERT INTO t VALUES (9, 'z', 1999)",
        "REPLACE INTO t VALUES (1, 'z', 1999)",
        "CREATE TABLE u (a)",
        "CREATE INDEX t_name ON t(name)",
        "CREATE VIEW v AS SELECT * FROM t",
        # (its body's ';' already makes it two statements: refused before SQLite sees it)
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM t; END",
        "CREATE TEMP TABLE scratch (a)",
        "ALTER TABLE t ADD COLUMN extra TEXT",
        "ALTER TABLE t RENAME TO t2",
        "DROP INDEX t_year",
        "PRAGMA writable_schema=ON",
        "PRAGMA journal_mode=WAL",
        "PRAGMA journal_mode=DELETE",
        "PRAGMA user_version=7",
        "VACUUM",
        "ANALYZE",
        "REINDEX t_year",
        "BEGIN",
        "WITH x AS (SELECT 1) DELETE FROM t",
    ],
)
def test_write_attempts_are_refused_and_file_is_untouched(db_path: Path, sql: str) -> None:
    before_hash, before_files = _sha256(db_path), sorted(p.name for p in db_path.parent.iterdir())
    conn = open_readonly(db_path)
    with pytest.raises(QueryError):
        execute(conn, sql)
    # the connection still works and sees the original data
    assert execute(conn, "SELECT count(*) FROM t") == [(3,)]
    conn.close()
    assert _sha256(db_path) == before_hash
    # no journal/WAL/new files appeared next to the database
    assert sorted(p.name for p in db_path.parent.iterdir()) == before_files


def test_write_denial_names_the_action(db_path: Path) -> None:
    conn = open_readonly(db_path)
    with pytest.raises(QueryError, match=r"^write denied: INSERT t$"):
        execute(conn, "INSERT INTO t VALUES (9, 'z', 1999)")


def test_attach_cannot_create_a_file(db_path: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "new.db"
    target.parent.mkdir()
    before = _sha256(db_path)
    conn = open_readonly(db_path)
    with pytest.raises(QueryError, match="ATTACH"):
        execute(conn, f"ATTACH DATABASE '{target}' AS other")
    with pytest.raises(QueryError):
        execute(conn, "DETACH DATABASE main")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []
    assert _sha256(db_path) == before


def test_vacuum_into_cannot_create_a_file(db_path: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy.db"
    before = _sha256(db_path)
    conn = open_readonly(db_path)
    with pytest.raises(QueryError):
        execute(conn, f"VACUUM INTO '{target}'")
    assert not target.exists()
    assert _sha256(db_path) == before


def test_read_only_pragmas_are_allowed(db_path: Path) -> None:
    conn = open_readonly(db_path)
    columns = [row[1] for row in execute(conn, "PRAGMA table_info(t)")]
    assert columns == ["id", "name", "year"]


def test_runaway_recursive_cte_is_interrupted_in_time(db_path: Path) -> None:
    conn = open_readonly(db_path)
    runaway = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"
    start = time.monotonic()
    with pytest.raises(QueryError, match="timeout"):
        execute(conn, runaway, timeout_s=1.0)
    elapsed = time.monotonic() - start
    assert 1.0 <= elapsed <= 2.0
    # the handler is removed afterwards: a normal query on the same connection still runs
    assert execute(conn, "SELECT count(*) FROM t") == [(3,)]


def test_default_timeout_stops_runaway_within_two_seconds(db_path: Path) -> None:
    conn = open_readonly(db_path)
    runaway = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"
    start = time.monotonic()
    with pytest.raises(QueryError, match="timeout"):
        execute(conn, runaway)
    # 2.0 s budget + the gap between two progress-handler calls (well under 50 ms here)
    assert time.monotonic() - start <= 2.0 + 0.25


def test_missing_database_raises_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite"
    with pytest.raises(FileNotFoundError, match="nope.sqlite"):
        open_readonly(missing)
    assert not missing.exists()
    assert list(tmp_path.iterdir()) == []


def test_invalid_utf8_is_read_with_replacement_character(db_path: Path) -> None:
    conn = open_readonly(db_path)
    assert execute(conn, "SELECT txt FROM raw") == [("\ufffdA",)]


def test_select_then_drop_is_rejected_and_table_survives(db_path: Path) -> None:
    conn = open_readonly(db_path)
    with pytest.raises(QueryError, match="multiple statements"):
        execute(conn, "SELECT 1; DROP TABLE t")
    assert execute(conn, "SELECT count(*) FROM t") == [(3,)]


def test_two_selects_are_rejected(db_path: Path) -> None:
    conn = open_readonly(db_path)
    with pytest.raises(QueryError, match=r"multiple statements \(2\)"):
        execute(conn, "SELECT 1; SELECT 2")


def test_trailing_semicolons_and_comments_are_one_statement(db_path: Path) -> None:
    conn = open_readonly(db_path)
    assert execute(conn, "SELECT 1;;  -- done\n") == [(1,)]
    assert execute(conn, "SELECT ';' -- not a separator; really\n") == [(";",)]


def test_split_statements_ignores_separators_in_quotes_and_comments() -> None:
    assert split_statements("SELECT 'a;b', \"c;d\" /* ; */ FROM t") == [
        "SELECT 'a;b', \"c;d\" /* ; */ FROM t"
    ]
    assert split_statements("SELECT 'it''s;'; SELECT 2") == ["SELECT 'it''s;'", " SELECT 2"]
    assert split_statements(" ; -- only a comment\n ;") == []


@pytest.mark.parametrize("sql", ["", "   ", ";", "-- nothing"])
def test_empty_query_is_an_error(db_path: Path, sql: str) -> None:
    conn = open_readonly(db_path)
    with pytest.raises(QueryError, match="empty query"):
        execute(conn, sql)


def test_syntax_error_is_a_one_line_query_error(db_path: Path) -> None:
    conn = open_readonly(db_path)
    with pytest.raises(QueryError) as info:
        execute(conn, "SELEC name\nFROM t")
    message = str(info.value)
    assert "\n" not in message
    assert "syntax error" in message


def test_unknown_column_is_a_query_error(db_path: Path) -> None:
    conn = open_readonly(db_path)
    with pytest.raises(QueryError, match="no such column: salary"):
        execute(conn, "SELECT salary FROM t")


def test_max_rows_limit(db_path: Path) -> None:
    conn = open_readonly(db_path)
    assert len(execute(conn, "SELECT * FROM t", max_rows=3)) == 3
    with pytest.raises(QueryError, match="max_rows=2"):
        execute(conn, "SELECT * FROM t", max_rows=2)


def test_bad_limits_are_value_errors(db_path: Path) -> None:
    conn = open_readonly(db_path)
    with pytest.raises(ValueError, match="timeout_s"):
        execute(conn, "SELECT 1", timeout_s=0)
    with pytest.raises(ValueError, match="max_rows"):
        execute(conn, "SELECT 1", max_rows=0)


def test_pragma_table_functions_read_and_schema_writes_stay_denied(db_path: Path) -> None:
    before = _sha256(db_path)
    conn = open_readonly(db_path)
    assert execute(conn, "SELECT name FROM pragma_table_info('t') ORDER BY cid") == [("id",), ("name",), ("year",)]
    assert execute(conn, "SELECT count(*) FROM pragma_index_list('t')") == [(1,)]
    with pytest.raises(QueryError, match="write denied: PRAGMA journal_mode"):
        execute(conn, "SELECT * FROM pragma_journal_mode")
    with pytest.raises(QueryError, match="sqlite_master may not be modified"):
        execute(conn, "UPDATE sqlite_master SET sql = 'x'")
    conn.close()
    assert _sha256(db_path) == before


@pytest.mark.parametrize("sql, match", [
    ("SELECT zeroblob(400000000)", "string or blob too big"),
    ("SELECT length(randomblob(2000000))", "string or blob too big"),
    # each value is under the value limit; together they are not
    ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT zeroblob(900000) FROM c",
     "result holds more than 64 MiB"),
    # printf pads inside one call, where no time limit can reach: the width itself is refused
    ("SELECT printf('%.*c', 2147483647, 'x')", "user-defined function raised exception"),
    ("SELECT format('%2000000000d', 1)", "user-defined function raised exception"),
    ("SELECT '\ud800'", "not valid Unicode text"),
])
def test_hostile_predictions_are_query_errors_in_little_time_and_memory(db_path: Path, sql: str, match: str) -> None:
    conn = open_readonly(db_path)
    started = time.monotonic()
    with pytest.raises(QueryError, match=match):
        execute(conn, sql)
    assert time.monotonic() - started < 1.0
    # and the connection still answers, printf included, as SQLite's own printf does
    assert execute(conn, "SELECT printf('%5.2f|%03d|%s|%%|%*d', 3.14159, 7, 'ab', 4, 9)") == [(" 3.14|007|ab|%|   9",)]
