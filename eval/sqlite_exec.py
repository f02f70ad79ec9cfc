"""Run model-written SQL against a benchmark database without letting it change anything.

Three independent guards, because a generated query is untrusted input:
  1. the file is opened read-only through a `file:...?mode=ro` URI (SQLite itself refuses writes),
  2. an authorizer allows only reads: SELECT, column reads, functions, recursive CTEs and a few
     introspection PRAGMAs (also as table functions: pragma_table_info('t')); every write, DDL, ATTACH/DETACH (also how VACUUM INTO creates its
     output file), transaction control and state-changing PRAGMA is denied at prepare time,
  3. `execute` accepts exactly one statement and stops it from inside SQLite when its time is up
     (a progress handler), so even a runaway recursive CTE ends on schedule; values and results
     have a size limit, so a query cannot fill memory either.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path


class QueryError(Exception):
    """A query that could not be run: syntax error, timeout, denied write, several statements..."""


# PRAGMAs that only describe the schema; anything else (journal_mode=, writable_schema=, optimize,
# wal_checkpoint, ...) may change state and is denied.
READ_ONLY_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
     "foreign_key_list"}
)

_ALLOWED_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)

# action code -> readable name for error messages ("DROP_TABLE", "ATTACH", ...)
_ACTION_NAMES = {
    getattr(sqlite3, name): name.removeprefix("SQLITE_")
    for name in (
        "SQLITE_ALTER_TABLE", "SQLITE_ANALYZE", "SQLITE_ATTACH", "SQLITE_CREATE_INDEX",
        "SQLITE_CREATE_TABLE", "SQLITE_CREATE_TEMP_INDEX", "SQLITE_CREATE_TEMP_TABLE",
        "SQLITE_CREATE_TEMP_TRIGGER", "SQLITE_CREATE_TEMP_VIEW", "SQLITE_CREATE_TRIGGER",
        "SQLITE_CREATE_VIEW", "SQLITE_CREATE_VTABLE", "SQLITE_DELETE", "SQLITE_DETACH",
        "SQLITE_DROP_INDEX", "SQLITE_DROP_TABLE", "SQLITE_DROP_TEMP_INDEX", "SQLITE_DROP_TEMP_TABLE",
        "SQLITE_DROP_TEMP_TRIGGER", "SQLITE_DROP_TEMP_VIEW", "SQLITE_DROP_TRIGGER",
        "SQLITE_DROP_VIEW", "SQLITE_DROP_VTABLE", "SQLITE_INSERT", "SQLITE_PRAGMA",
        "SQLITE_REINDEX", "SQLITE_SAVEPOINT", "SQLITE_TRANSACTION", "SQLITE_UPDATE",
    )
    if hasattr(sqlite3, name)
}

# The largest string or blob one value may be (SQLite's SQLITE_LIMIT_LENGTH, default 1 GB): zeroblob(4e8)
# or printf('%.*c', 1e9, 'x') fail at once instead of filling memory. Benchmark values are far smaller.
MAX_VALUE_BYTES = 1 << 20
# The text and blob bytes one result may hold in all: a big value times many rows is stopped too.
MAX_RESULT_BYTES = 64 << 20
# Registering an eponymous virtual table (pragma_table_info('t') and the other read-only PRAGMA
# functions) asks the authorizer for an UPDATE of these sqlite_master columns; nothing is written:
# SQLite refuses to modify sqlite_master without writable_schema (a denied PRAGMA) and the file is read-only.
_SCHEMA_COLUMNS = frozenset({"type", "name", "tbl_name", "rootpage", "sql"})

# SQLite runs the progress handler every this many virtual-machine instructions; ~1000 keeps the
# overhead negligible while checking the clock many thousand times per second.
_PROGRESS_EVERY_N_OPS = 1000


class ReadOnlyConnection(sqlite3.Connection):
    """A connection that remembers what its authorizer denied, to name it in the error."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.denied: list[str] = []


def _decode_text(raw: bytes) -> str:
    # Benchmark databases contain some invalid UTF-8; a row must never crash the evaluation.
    return raw.decode("utf-8", errors="replace")


def open_readonly(db_path: str | os.PathLike) -> sqlite3.Connection:
    """Open `db_path` read-only with the write-denying authorizer installed.

    A missing file raises FileNotFoundError (SQLite would otherwise happily create it)."""
    path = Path(db_path)
    if not path.is_file():
        raise FileNotFoundError(f"database file not found: {path}")
    # as_uri() percent-encodes '?', '#' and '%' in the path, so no file name can inject parameters.
    uri = path.resolve().as_uri() + "?mode=ro"
    # isolation_level=None: no implicit BEGIN is ever issued on our behalf.
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, factory=ReadOnlyConnection)
    conn.text_factory = _decode_text

    def authorize(action: int, arg1: str | None, arg2: str | None, db: str | None,
                  trigger: str | None) -> int:
        if action in _ALLOWED_ACTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in READ_ONLY_PRAGMAS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master" and arg2 in _SCHEMA_COLUMNS:
            return sqlite3.SQLITE_OK
        name = _ACTION_NAMES.get(action, f"action {action}")
        conn.denied.append(f"{name} {arg1}" if arg1 else name)
        return sqlite3.SQLITE_DENY

    conn.set_authorizer(authorize)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    # printf pads in one uninterruptible call (printf('%.*c', 2147483647, 'x'): seconds past any time limit):
    # widths beyond the value limit are refused, the rest is SQLite's own printf on a private connection.
    plain = sqlite3.connect(":memory:", check_same_thread=False)
    plain.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    for name in ("printf", "format"):
        conn.create_function(name, -1, _bounded_printf(plain, name), deterministic=True)
    return conn


_FORMAT_SPEC = re.compile(r"%[-+ 0#,!]*(\*|\d+)?(?:\.(\*|\d+))?([a-zA-Z%])")


def _as_int(value) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return 0


def _bounded_printf(plain: sqlite3.Connection, name: str):
    def bounded(fmt, *args):
        if fmt is None:
            return None
        used = 0
        for spec in _FORMAT_SPEC.finditer(str(fmt)):
            for part in spec.groups()[:2]:
                if part == "*":
                    size, used = _as_int(args[used] if used < len(args) else 0), used + 1
                else:
                    size = int(part) if part else 0
                if abs(size) > MAX_VALUE_BYTES:
                    raise ValueError(f"{name} width {size} is past the {MAX_VALUE_BYTES}-byte value limit")
            used += spec.group(3) != "%"
        return plain.execute(f"SELECT {name}({', '.join('?' * (1 + len(args)))})", (fmt, *args)).fetchone()[0]
    return bounded


def _skip_quoted(sql: str, i: int) -> int:
    """Index just past the quoted run starting at sql[i] ('...', "...", `...` or [...])."""
    close = "]" if sql[i] == "[" else sql[i]
    j = i + 1
    while j < len(sql):
        if sql[j] == close:
            # a doubled quote ('it''s') is an escaped quote, not the end
            if close != "]" and j + 1 < len(sql) and sql[j + 1] == close:
                j += 2
                continue
            return j + 1
        j += 1
    return j


def split_statements(sql: str) -> list[str]:
    """The non-empty statements of `sql`, split on ';' outside quotes and comments.

    Statements holding only whitespace or comments (e.g. after a trailing ';') are dropped."""
    statements, start, has_content, i = [], 0, False, 0
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"`[":
            i, has_content = _skip_quoted(sql, i), True
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = len(sql) if end < 0 else end + 2
        elif ch == ";":
            if has_content:
                statements.append(sql[start:i])
            start, has_content, i = i + 1, False, i + 1
        else:
            has_content = has_content or not ch.isspace()
            i += 1
    if has_content:
        statements.append(sql[start:])
    return statements


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def execute(conn: sqlite3.Connection, sql: str, *, timeout_s: float = 2.0,
            max_rows: int = 100_000) -> list[tuple]:
    """Run one statement and return all its rows; any failure raises QueryError (one line).

    The time limit is enforced inside SQLite (progress handler -> "interrupted"), so it covers
    both preparing/stepping the statement and fetching its rows."""
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    if max_rows <= 0:
        raise ValueError(f"max_rows must be > 0, got {max_rows}")
    statements = split_statements(sql)
    if not statements:
        raise QueryError("empty query")
    if len(statements) > 1:
        # Checked before SQLite sees anything, so no part of the text is ever executed.
        raise QueryError(f"multiple statements ({len(statements)}); only one is allowed")

    deadline = time.monotonic() + timeout_s
    timed_out = False

    def past_deadline() -> int:
        nonlocal timed_out
        timed_out = time.monotonic() > deadline
        return int(timed_out)  # non-zero aborts the running statement

    denied = getattr(conn, "denied", None)
    if denied is not None:
        denied.clear()
    conn.set_progress_handler(past_deadline, _PROGRESS_EVERY_N_OPS)
    cursor = conn.cursor()
    rows: list[tuple] = []
    size = 0
    try:
        cursor.execute(statements[0])
        while batch := cursor.fetchmany(1000):
            rows.extend(batch)
            if len(rows) > max_rows:
                raise QueryError(f"result has more than max_rows={max_rows} rows")
            size += sum(len(v) for row in batch for v in row if isinstance(v, (str, bytes)))
            if size > MAX_RESULT_BYTES:
                raise QueryError(f"result holds more than {MAX_RESULT_BYTES >> 20} MiB of text and blobs")
    except UnicodeEncodeError:  # a lone surrogate: the text cannot even reach SQLite
        raise QueryError("the query is not valid Unicode text (a lone surrogate)") from None
    except (sqlite3.Error, sqlite3.Warning) as exc:
        if timed_out:
            raise QueryError(f"timeout: query ran longer than {timeout_s:g} s") from None
        if denied:
            raise QueryError(f"write denied: {', '.join(dict.fromkeys(denied))}") from None
        raise QueryError(f"{type(exc).__name__}: {_one_line(exc)}") from None
    finally:
        cursor.close()
        conn.set_progress_handler(None, 0)
    return rows
