"""Spider's exact-set match (EM) between a predicted and a gold SQL query, with its partial scores.

This is what the official evaluator reports with `evaluation.py --etype match` (test-suite-sql-eval,
evaluation.py and process_sql.py), re-implemented here:

  parsing      process_sql.get_sql: the query becomes Spider's structure (select items as
               (aggregate, value unit), FROM table units and ON conditions, WHERE/HAVING as flat
               condition lists with their AND/OR connectors, GROUP BY column units, ORDER BY
               direction and value units, LIMIT, INTERSECT/UNION/EXCEPT). Column references are
               resolved through the schema: `T1.x` through the table aliases, a bare column to the
               first FROM table that has it, `*` kept as is. Identifiers are case-insensitive.
  normalising  evaluation.py with its defaults: rebuild_sql_val (values are not compared, except
               inside a FROM subquery, which the official code never rebuilds), DISTINCT not
               compared (rebuild_sql_col), and build_foreign_key_map / rebuild_sql_col: a column
               linked to others by foreign keys is replaced by one representative of its group,
               when its table is in the query's top-level FROM.
  comparing    Evaluator.eval_partial_match (select, select(no AGG), where, where(no OP),
               group(no Having), group, order, and/or, IUEN, keywords) and eval_exact_match:
               every component must score 1 and the FROM table units must be equal as multisets.
               ON conditions are not compared, LIMIT only by its presence (the official parser
               reads every LIMIT as 1).
  aggregating  how evaluate() accumulates those partial scores into the printed
               "PARTIAL MATCHING ACCURACY / RECALL / F1" rows (`aggregate_partial`).

The official parser's quirks are reproduced because they decide which pairs match: table aliases
are collected over the whole query (the last `x AS t1` wins, also across subqueries), only `JOIN`
joins tables (no commas, LEFT or INNER), a table alias needs AS, select items cannot have aliases,
IN lists and IS NULL are not read, a bare column value swallows the tokens up to the next `,`,
`)`, AND or clause keyword, tokens after a complete top-level query are ignored, the ORDER BY
direction is the last one written, nested queries used as condition values are compared by exact
structure (order-sensitive, DISTINCT and foreign keys not normalised), GROUP BY without HAVING
compares bare column names, and the and/or row returns its totals swapped when it does not match.

Deliberate differences from the official code:
  * `<>` is read as `!=` (the official tokenizer splits it into two tokens and fails).
  * The tokenizer is eval.hardness's regex, not nltk's word_tokenize. They agree on SQL written
    the way Spider's gold is (spaces around operators; "! =" is joined into "!=" here too), but
    nltk leaves an operator without spaces glued to its operands (`age=3`, `age>=3`, `name='x'`)
    and the official parser then fails; here such queries are read normally, as is `- 5`.
  * A prediction that does not parse never raises: it scores False with a one-line reason, and its
    partial scores are those of an empty query, as the official evaluate() does. Nesting deeper
    than MAX_DEPTH queries is refused instead of exhausting Python's recursion limit.
  * Two conditions with no AND/OR between them are refused; the official parser stores them
    side by side, which breaks its own alternating condition list.
  * A gold query that does not parse raises ValueError (the official evaluate() crashes).
  * evaluate()'s `p_str.replace("value", "1")` on the prediction is not done: it corrupts column
    names that contain "value" and only helped models that output a placeholder.
  * Schema.from_tables_json parses with tables.json's original names; the official evaluate()
    parses with the SQLite file's names and takes only the foreign keys from tables.json (the two
    agree for Spider's databases).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import NamedTuple, Union

from eval.hardness import SQLParseError, _tokenize

AGGREGATES = ("max", "min", "count", "sum", "avg")
NO_AGG = "none"
UNIT_OPS = ("-", "+", "*", "/")
CONDITION_OPS = ("not", "between", "=", ">", "<", ">=", "<=", "!=", "in", "like", "is", "exists")
CLAUSE_KEYWORDS = ("select", "from", "where", "group", "order", "limit", "intersect", "union", "except")
JOIN_KEYWORDS = ("join", "on", "as")
SET_OPS = ("intersect", "union", "except")
PARTIAL_COMPONENTS = ("select", "select(no AGG)", "where", "where(no OP)", "group(no Having)",
                      "group", "order", "and/or", "IUEN", "keywords")
# Nested queries (subqueries and INTERSECT/UNION/EXCEPT parts) allowed in one query; Spider needs 4.
MAX_DEPTH = 40
ALL_COLUMNS = "*"


# ---------------------------------------------------------------------------- schema

@dataclass
class Schema:
    """Tables (in order) -> their columns (in order), all lowercase, and foreign-key column pairs
    ("table.column", "table.column") in declaration order (the order decides the key groups)."""

    tables: dict[str, tuple[str, ...]]
    foreign_keys: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_tables_json(cls, path: str | Path, db_id: str) -> Schema:
        """The schema of `db_id` in a Spider tables.json file."""
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
        for entry in entries:
            if entry["db_id"] == db_id:
                return cls.from_tables_entry(entry)
        raise KeyError(f"database {db_id!r} is not in {path}")

    @classmethod
    def from_tables_entry(cls, entry: Mapping) -> Schema:
        """From one tables.json entry (table_names_original, column_names_original, foreign_keys)."""
        names = [t.lower() for t in entry["table_names_original"]]
        tables: dict[str, list[str]] = {t: [] for t in names}
        qualified = []
        for table_index, column in entry["column_names_original"]:
            if table_index < 0:  # Spider's (-1, "*")
                qualified.append(ALL_COLUMNS)
                continue
            tables[names[table_index]].append(column.lower())
            qualified.append(f"{names[table_index]}.{column.lower()}")
        keys = tuple((qualified[a], qualified[b]) for a, b in entry.get("foreign_keys", ()))
        return cls({t: tuple(cols) for t, cols in tables.items()}, keys)

    @classmethod
    def from_sqlite(cls, path: str | Path) -> Schema:
        """Read tables, columns and foreign keys from the SQLite file itself (opened read-only)."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"no SQLite database at {path}")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            names = [row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
            tables, primary, raw_keys = {}, {}, []
            for name in names:
                info = conn.execute("SELECT name, pk FROM pragma_table_info(?)", (name,)).fetchall()
                tables[name.lower()] = tuple(col.lower() for col, _ in info)
                primary[name.lower()] = [col.lower() for col, pk in sorted(info, key=lambda r: r[1]) if pk]
                rows = conn.execute('SELECT seq, "table", "from", "to" FROM pragma_foreign_key_list(?)',
                                    (name,)).fetchall()
                raw_keys += [(name.lower(), seq, ref.lower(), src.lower(), dst) for seq, ref, src, dst in rows]
        finally:
            conn.close()
        keys = []
        for table, seq, ref, src, dst in raw_keys:
            # REFERENCES t without a column list means t's primary key
            target = dst.lower() if dst else (primary.get(ref) or [None] * (seq + 1))[seq]
            if target is not None and src in tables[table] and target in tables.get(ref, ()):
                keys.append((f"{table}.{src}", f"{ref}.{target}"))
        return cls(tables, tuple(keys))

    def has_column(self, qualified: str) -> bool:
        table, _, column = qualified.partition(".")
        return column in self.tables.get(table, ())

    @cached_property
    def key_map(self) -> dict[str, str]:
        """Column -> the representative of its foreign-key group (build_foreign_key_map).

        Groups are formed the official way: each pair joins the first group that holds either of
        its columns (groups are never merged), and the representative is the group's column that
        comes first in schema order."""
        order = {ALL_COLUMNS: -1}
        for table, columns in self.tables.items():
            for column in columns:
                order.setdefault(f"{table}.{column}", len(order))
        groups: list[set[str]] = []
        for a, b in self.foreign_keys:
            group = next((g for g in groups if a in g or b in g), None)
            if group is None:
                group = set()
                groups.append(group)
            group.update((a, b))
        mapping = {}
        for group in groups:
            first = min(group, key=lambda c: order.get(c, len(order)))
            for column in group:
                mapping[column] = first
        return mapping


def load_schemas(tables_json: str | Path | None = None,
                 db_root: str | Path | None = None) -> Callable[[str], Schema]:
    """A cached db_id -> Schema lookup: from tables.json when given, else from
    <db_root>/<db_id>/<db_id>.sqlite."""
    cache: dict[str, Schema] = {}
    if tables_json is not None:
        entries = {e["db_id"]: e for e in json.loads(Path(tables_json).read_text(encoding="utf-8"))}

        def build(db_id: str) -> Schema:
            if db_id not in entries:
                raise KeyError(f"database {db_id!r} is not in {tables_json}")
            return Schema.from_tables_entry(entries[db_id])
    elif db_root is not None:
        def build(db_id: str) -> Schema:
            return Schema.from_sqlite(Path(db_root) / db_id / f"{db_id}.sqlite")
    else:
        raise ValueError("load_schemas needs tables_json or db_root")

    def lookup(db_id: str) -> Schema:
        if db_id not in cache:
            cache[db_id] = build(db_id)
        return cache[db_id]

    return lookup


# ---------------------------------------------------------------------------- structure

class ColUnit(NamedTuple):
    agg: str                # "none" or an aggregate
    column: str             # "table.column" or "*"
    distinct: bool | None   # None once DISTINCT is disabled


class ValUnit(NamedTuple):
    op: str                 # "none" or an arithmetic operator between left and right
    left: ColUnit
    right: ColUnit | None


class Cond(NamedTuple):
    negated: bool
    op: str
    left: ValUnit
    value1: object          # float | str | ColUnit | Query | None (None once values are disabled)
    value2: object


# A flat condition list as in the official structure: [Cond, "and"/"or", Cond, ...].
Condition = tuple[Union[Cond, str], ...]


@dataclass(frozen=True)
class Query:
    """One SELECT in Spider's structure; equality is the official dict equality."""

    distinct: bool | None = False
    select: tuple[tuple[str, ValUnit], ...] = ()
    tables: tuple[tuple[str, object], ...] = ()   # ("table", name) or ("sql", Query)
    join_on: Condition = ()
    where: Condition = ()
    group_by: tuple[ColUnit, ...] = ()
    having: Condition = ()
    order_by: tuple[str, tuple[ValUnit, ...]] | None = None
    limit: int | None = None
    intersect: Query | None = None
    union: Query | None = None
    except_: Query | None = None

    def set_ops(self) -> tuple[Query | None, Query | None, Query | None]:
        return self.intersect, self.except_, self.union


EMPTY_QUERY = Query()


# ---------------------------------------------------------------------------- parsing

_SPACED_NOT_EQUAL = re.compile(r"""('(?:[^']|'')*'|"(?:[^"]|"")*")|!\s+=""")


class _Tokens:
    """Lowercased token texts plus their kinds ("name", "str", "num", "op")."""

    def __init__(self, sql: str) -> None:
        self.text: list[str] = []
        self.kind: list[str] = []
        # Spider's gold queries write "! =": join it outside string literals, as officially
        sql = _SPACED_NOT_EQUAL.sub(lambda m: m.group(1) or "!=", sql)
        for tok in _tokenize(sql)[:-1]:  # drop the end marker
            value = tok.value
            if tok.kind == "op" and value == "<>":
                value = "!="
            elif (tok.kind == "op" and value == "=" and self.text and self.kind[-1] == "op"
                  and self.text[-1] in ("<", ">")):
                self.text[-1] += "="  # "> =" is ">=", as the official tokenizer joins them
                continue
            self.text.append(value)
            self.kind.append(tok.kind)


class _Parser:
    """Reads the official get_sql subset, one position-passing function per official clause."""

    def __init__(self, sql: str, schema: Schema) -> None:
        tokens = _Tokens(sql)
        self.toks = tokens.text
        self.kinds = tokens.kind
        self.end = len(self.toks)  # a bare column value is parsed inside a shorter window
        self.schema = schema
        self.depth = 0
        self.aliases = self.collect_aliases()

    # -- helpers
    def tok(self, i: int) -> str:
        return self.toks[i] if i < self.end else ""

    def expect(self, i: int, value: str) -> int:
        if self.tok(i) != value:
            found = repr(self.tok(i)) if i < self.end else "end of query"
            raise SQLParseError(f"expected {value!r} at token {i}, found {found}")
        return i + 1

    def is_stop(self, i: int) -> bool:
        """Whether token i ends a condition, GROUP BY or ORDER BY list."""
        t = self.tok(i)
        return t in CLAUSE_KEYWORDS or t in (")", ";")

    def collect_aliases(self) -> dict[str, str]:
        """alias -> what precedes its AS, over the whole query, plus every table -> itself."""
        aliases = {}
        for i, t in enumerate(self.toks):
            if t == "as" and self.kinds[i] == "name":
                if i + 1 >= len(self.toks):
                    raise SQLParseError("AS at the end of the query")
                aliases[self.toks[i + 1]] = self.toks[i - 1] if i > 0 else ""
        for table in self.schema.tables:
            if table in aliases:
                raise SQLParseError(f"alias {table!r} is also a table name")
            aliases[table] = table
        return aliases

    # -- columns and values
    def column(self, i: int, tables: Sequence[str]) -> tuple[int, str]:
        t = self.tok(i)
        if t == "*":
            return i + 1, ALL_COLUMNS
        if "." in t:
            parts = t.split(".")
            if len(parts) != 2 or self.kinds[i] != "name":
                raise SQLParseError(f"cannot read column {t!r}")
            if parts[0] not in self.aliases:
                raise SQLParseError(f"unknown table or alias {parts[0]!r}")
            qualified = f"{self.aliases[parts[0]]}.{parts[1]}"
            if not self.schema.has_column(qualified):
                raise SQLParseError(f"unknown column {t}")
            return i + 1, qualified
        if not tables:
            raise SQLParseError(f"column {t!r} outside a query with FROM tables")
        for table in tables:
            if t in self.schema.tables[table]:
                return i + 1, f"{table}.{t}"
        raise SQLParseError(f"unknown column {t}" if t else "a column expected, end of query found")

    def col_unit(self, i: int, tables: Sequence[str]) -> tuple[int, ColUnit]:
        block = self.tok(i) == "("
        i += block
        if self.tok(i) in AGGREGATES:
            agg = self.tok(i)
            i = self.expect(i + 1, "(")
            distinct = self.tok(i) == "distinct"
            i, column = self.column(i + distinct, tables)
            # as officially: an aggregate returns before closing its own opening parenthesis
            return self.expect(i, ")"), ColUnit(agg, column, distinct)
        distinct = self.tok(i) == "distinct"
        i, column = self.column(i + distinct, tables)
        if block:
            i = self.expect(i, ")")
        return i, ColUnit(NO_AGG, column, distinct)

    def val_unit(self, i: int, tables: Sequence[str]) -> tuple[int, ValUnit]:
        block = self.tok(i) == "("
        i, left = self.col_unit(i + block, tables)
        op, right = NO_AGG, None
        if self.tok(i) in UNIT_OPS:
            op = self.tok(i)
            i, right = self.col_unit(i + 1, tables)
        if block:
            i = self.expect(i, ")")
        return i, ValUnit(op, left, right)

    def value(self, i: int, tables: Sequence[str]) -> tuple[int, object]:
        block = self.tok(i) == "("
        i += block
        t = self.tok(i)
        if t == "select":
            i, val = self.query(i)
        elif i < self.end and self.kinds[i] == "str":
            val = t[1:-1].replace(t[0] * 2, t[0])
            i += 1
        elif i < self.end and self.kinds[i] == "num":
            val = float(t)
            i += 1
        elif t == "-" and i + 1 < self.end and self.kinds[i + 1] == "num":
            val = -float(self.toks[i + 1])
            i += 2
        else:
            # a column value: the official parser reads one column unit from the tokens up to
            # the next separator and skips the rest of them
            stop = i
            while stop < self.end and not (self.toks[stop] in (",", ")", "and")
                                           or self.toks[stop] in CLAUSE_KEYWORDS
                                           or self.toks[stop] in JOIN_KEYWORDS):
                stop += 1
            outer_end, self.end = self.end, stop
            try:
                _, val = self.col_unit(i, tables)
            finally:
                self.end = outer_end
            i = stop
        if block:
            i = self.expect(i, ")")
        return i, val

    def condition(self, i: int, tables: Sequence[str]) -> tuple[int, Condition]:
        items: list[Cond | str] = []
        while i < self.end:
            i, left = self.val_unit(i, tables)
            negated = self.tok(i) == "not"
            i += negated
            op = self.tok(i)
            if op not in CONDITION_OPS:
                raise SQLParseError(f"expected a comparison at token {i}, found "
                                    + (repr(op) if i < self.end else "end of query"))
            i += 1
            value2 = None
            i, value1 = self.value(i, tables)
            if op == "between":
                i, value2 = self.value(self.expect(i, "and"), tables)
            items.append(Cond(negated, op, left, value1, value2))
            if i < self.end and (self.is_stop(i) or self.tok(i) in JOIN_KEYWORDS):
                break
            if self.tok(i) in ("and", "or"):
                items.append(self.tok(i))
                i += 1
            elif i < self.end:
                # the official parser would store two conditions without a connector, which
                # breaks its own alternating list; such a query is refused instead
                raise SQLParseError(f"expected AND or OR at token {i}, found {self.tok(i)!r}")
        return i, tuple(items)

    # -- clauses
    def select(self, i: int, tables: Sequence[str]) -> tuple[bool, tuple[tuple[str, ValUnit], ...]]:
        i = self.expect(i, "select")
        distinct = self.tok(i) == "distinct"
        i += distinct
        items = []
        while i < self.end and self.tok(i) not in CLAUSE_KEYWORDS:
            agg = NO_AGG
            if self.tok(i) in AGGREGATES:
                agg = self.tok(i)
                i += 1
            i, unit = self.val_unit(i, tables)
            items.append((agg, unit))
            if self.tok(i) == ",":
                i += 1
        return distinct, tuple(items)

    def table_unit(self, i: int) -> tuple[int, str]:
        t = self.tok(i)
        name = self.aliases.get(t)
        if name not in self.schema.tables:
            raise SQLParseError(f"unknown table {t}" if t else "a table expected, end of query found")
        return (i + 3 if self.tok(i + 1) == "as" else i + 1), name

    def from_clause(self, start: int) -> tuple[int, tuple, Condition, list[str]]:
        try:
            i = self.toks.index("from", start, self.end) + 1
        except ValueError:
            raise SQLParseError("no FROM clause") from None
        units, on, tables = [], [], []
        while i < self.end:
            block = self.tok(i) == "("
            i += block
            if self.tok(i) == "select":
                i, sub = self.query(i)
                units.append(("sql", sub))
            else:
                i += self.tok(i) == "join"
                i, name = self.table_unit(i)
                units.append(("table", name))
                tables.append(name)
            if self.tok(i) == "on":
                i, conds = self.condition(i + 1, tables)
                if on:
                    on.append("and")
                on.extend(conds)
            if block:
                i = self.expect(i, ")")
            if self.is_stop(i):
                break
        return i, tuple(units), tuple(on), tables

    def group_by(self, i: int, tables: Sequence[str]) -> tuple[int, tuple[ColUnit, ...]]:
        if self.tok(i) != "group":
            return i, ()
        i = self.expect(i + 1, "by")
        units = []
        while i < self.end and not self.is_stop(i):
            i, unit = self.col_unit(i, tables)
            units.append(unit)
            if self.tok(i) != ",":
                break
            i += 1
        return i, tuple(units)

    def order_by(self, i: int, tables: Sequence[str]) -> tuple[int, tuple | None]:
        if self.tok(i) != "order":
            return i, None
        i = self.expect(i + 1, "by")
        direction, units = "asc", []
        while i < self.end and not self.is_stop(i):
            i, unit = self.val_unit(i, tables)
            units.append(unit)
            if self.tok(i) in ("asc", "desc"):
                direction = self.tok(i)  # one direction for the whole clause: the last one
                i += 1
            if self.tok(i) != ",":
                break
            i += 1
        return i, (direction, tuple(units))

    def query(self, start: int) -> tuple[int, Query]:
        """One query from `start` (a '(' or SELECT), with its INTERSECT/UNION/EXCEPT part."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SQLParseError(f"more than {MAX_DEPTH} nested queries")
        try:
            block = self.tok(start) == "("
            i, tables, join_on, names = self.from_clause(start)
            distinct, select = self.select(start + block, names)
            where = having = ()
            if self.tok(i) == "where":
                i, where = self.condition(i + 1, names)
            i, group_by = self.group_by(i, names)
            if self.tok(i) == "having":
                i, having = self.condition(i + 1, names)
            i, order_by = self.order_by(i, names)
            limit = None
            if self.tok(i) == "limit":
                if i + 1 >= self.end:
                    raise SQLParseError("LIMIT without a value")
                i, limit = i + 2, 1  # the official parser reads every LIMIT value as 1
            while self.tok(i) == ";":
                i += 1
            if block:
                i = self.expect(i, ")")
            while self.tok(i) == ";":
                i += 1
            parts = {}
            if self.tok(i) in SET_OPS:
                op = self.tok(i)
                i, parts[op] = self.query(i + 1)
            return i, Query(distinct, select, tables, join_on, where, group_by, having, order_by,
                            limit, parts.get("intersect"), parts.get("union"), parts.get("except"))
        finally:
            self.depth -= 1


def parse(sql: str, schema: Schema) -> Query:
    """Spider's structure of `sql` (process_sql.get_sql). Raises SQLParseError (a ValueError)."""
    if not isinstance(sql, str) or not sql.strip():
        raise SQLParseError("empty query")
    try:
        parser = _Parser(sql, schema)
        _, query = parser.query(0)  # as officially, tokens after a complete query are ignored
    except RecursionError:
        raise SQLParseError("query nested too deeply") from None
    except IndexError:
        raise SQLParseError("query ends too early") from None
    return query


# ---------------------------------------------------------------------------- normalising

def _drop_values(cond: Condition) -> Condition:
    return tuple(
        item._replace(value1=_without_values(item.value1) if isinstance(item.value1, Query) else None,
                      value2=_without_values(item.value2) if isinstance(item.value2, Query) else None)
        if isinstance(item, Cond) else item
        for item in cond
    )


def _without_values(query: Query | None) -> Query | None:
    """rebuild_sql_val: condition values become None, nested queries used as values keep their
    structure (FROM subqueries and select items are left untouched, as officially)."""
    if query is None:
        return None
    return replace(query, join_on=_drop_values(query.join_on), where=_drop_values(query.where),
                   having=_drop_values(query.having), intersect=_without_values(query.intersect),
                   union=_without_values(query.union), except_=_without_values(query.except_))


class _ColumnRewriter:
    """rebuild_sql_col: foreign-key representatives for columns of the top-level FROM tables and
    DISTINCT dropped, in every clause and set-operation part, but not inside subqueries."""

    def __init__(self, valid_tables: set[str], key_map: Mapping[str, str]) -> None:
        self.valid_tables = valid_tables
        self.key_map = key_map

    def col(self, unit: ColUnit | None) -> ColUnit | None:
        if unit is None:
            return None
        column = unit.column
        if column in self.key_map and column.partition(".")[0] in self.valid_tables:
            column = self.key_map[column]
        return ColUnit(unit.agg, column, None)

    def val(self, unit: ValUnit | None) -> ValUnit | None:
        return None if unit is None else ValUnit(unit.op, self.col(unit.left), self.col(unit.right))

    def cond(self, cond: Condition) -> Condition:
        return tuple(c._replace(left=self.val(c.left)) if isinstance(c, Cond) else c for c in cond)

    def query(self, q: Query | None) -> Query | None:
        if q is None:
            return None
        order = None if q.order_by is None else (q.order_by[0], tuple(self.val(u) for u in q.order_by[1]))
        return replace(
            q, distinct=None, select=tuple((agg, self.val(u)) for agg, u in q.select),
            join_on=self.cond(q.join_on), where=self.cond(q.where),
            group_by=tuple(self.col(u) for u in q.group_by), having=self.cond(q.having),
            order_by=order, intersect=self.query(q.intersect), union=self.query(q.union),
            except_=self.query(q.except_))


def normalise(query: Query, schema: Schema) -> Query:
    """The official match defaults: values and DISTINCT disabled, foreign keys unified."""
    valid = {name for kind, name in query.tables if kind == "table"}
    return _ColumnRewriter(valid, schema.key_map).query(_without_values(query))


# ---------------------------------------------------------------------------- comparing

Counts = tuple[int, int, int]  # (label_total, pred_total, cnt)


def _common(pred: Iterable, gold: Iterable) -> int:
    """How many of pred's items can be paired with an equal gold item (a multiset intersection)."""
    return sum((Counter(pred) & Counter(gold)).values())


def _conds(cond: Condition) -> tuple:
    return cond[::2]


def _keywords(q: Query) -> set[str]:
    """get_keywords: the SQL keywords a query uses, as the official keyword component counts them."""
    found = set()
    for name, present in (("where", q.where), ("group", q.group_by), ("having", q.having),
                          ("limit", q.limit is not None), ("except", q.except_),
                          ("union", q.union), ("intersect", q.intersect)):
        if present:
            found.add(name)
    if q.order_by is not None:
        found.update(("order", q.order_by[0]))
    if "or" in q.join_on[1::2] + q.where[1::2] + q.having[1::2]:
        found.add("or")
    units = _conds(q.join_on) + _conds(q.where) + _conds(q.having)
    if any(u.negated for u in units):
        found.add("not")
    if any(u.op == "in" for u in units):
        found.add("in")
    if any(u.op == "like" for u in units):
        found.add("like")
    return found


def _group_name(column: str) -> str:
    return column.split(".")[1] if "." in column else column


def partial_counts(pred: Query, gold: Query) -> dict[str, Counts]:
    """eval_partial_match: (label_total, pred_total, cnt) for each partial component."""
    res = {}
    res["select"] = (len(gold.select), len(pred.select), _common(pred.select, gold.select))
    res["select(no AGG)"] = (len(gold.select), len(pred.select),
                             _common((u for _, u in pred.select), (u for _, u in gold.select)))
    p_where, g_where = _conds(pred.where), _conds(gold.where)
    res["where"] = (len(g_where), len(p_where), _common(p_where, g_where))
    res["where(no OP)"] = (len(g_where), len(p_where),
                           _common((c.left for c in p_where), (c.left for c in g_where)))
    res["group(no Having)"] = (len(gold.group_by), len(pred.group_by), _common(
        (_group_name(u.column) for u in pred.group_by), (_group_name(u.column) for u in gold.group_by)))
    same_group = ([u.column for u in pred.group_by] == [u.column for u in gold.group_by]
                  and pred.having == gold.having)
    res["group"] = (int(bool(gold.group_by)), int(bool(pred.group_by)),
                    int(bool(pred.group_by) and bool(gold.group_by) and same_group))
    same_order = (gold.order_by is not None and pred.order_by == gold.order_by
                  and (pred.limit is None) == (gold.limit is None))
    res["order"] = (int(gold.order_by is not None), int(pred.order_by is not None), int(same_order))
    p_ao, g_ao = set(pred.where[1::2]), set(gold.where[1::2])
    # official: on a mismatch the totals come back in (pred, gold) order
    res["and/or"] = (1, 1, 1) if p_ao == g_ao else (len(p_ao), len(g_ao), 0)
    label_total = pred_total = cnt = 0
    for p_part, g_part in zip(pred.set_ops(), gold.set_ops()):
        label_total += g_part is not None
        pred_total += p_part is not None
        if p_part is not None and g_part is not None:
            cnt += _exact(p_part, g_part)
    res["IUEN"] = (label_total, pred_total, cnt)
    p_kw, g_kw = _keywords(pred), _keywords(gold)
    res["keywords"] = (len(g_kw), len(p_kw), len(p_kw & g_kw))
    return res


def component_score(counts: Counts) -> int:
    """get_scores: a component scores 1 (acc, rec and f1) only when both totals equal the count."""
    label_total, pred_total, cnt = counts
    return int(label_total == pred_total == cnt)


def _differences(pred: Query, gold: Query) -> tuple[dict[str, Counts], list[str]]:
    partial = partial_counts(pred, gold)
    differ = [name for name in PARTIAL_COMPONENTS if not component_score(partial[name])]
    if gold.tables and Counter(pred.tables) != Counter(gold.tables):
        differ.append("from")
    return partial, differ


def _exact(pred: Query, gold: Query) -> bool:
    """eval_exact_match on normalised queries."""
    return not _differences(pred, gold)[1]


# ---------------------------------------------------------------------------- public

@dataclass
class MatchResult:
    exact: bool
    reason: str | None  # None when exact; else the differing components or why pred does not parse
    partial: dict[str, Counts] = field(default_factory=dict)  # component -> (label_total, pred_total, cnt)


def exact_set_match(pred: str, gold: str, schema: Schema) -> MatchResult:
    """Spider's exact-set match of `pred` against `gold` under `schema`, with partial counts.

    Raises ValueError when the gold query does not parse; a prediction that does not parse is
    scored False (against an empty query for the partial counts)."""
    try:
        gold_q = normalise(parse(gold, schema), schema)
    except SQLParseError as err:
        raise ValueError(f"gold query does not parse: {err}") from None
    try:
        pred_q = normalise(parse(pred, schema), schema)
    except SQLParseError as err:
        partial, _ = _differences(EMPTY_QUERY, gold_q)
        return MatchResult(False, f"prediction does not parse: {err}", partial)
    try:
        partial, differ = _differences(pred_q, gold_q)
    except RecursionError:
        return MatchResult(False, "prediction nested too deeply to compare", {})
    if differ:
        return MatchResult(False, "differs in " + ", ".join(differ), partial)
    return MatchResult(True, None, partial)


def aggregate_partial(partials: Iterable[Mapping[str, Counts]]) -> dict[str, dict[str, float]]:
    """The official PARTIAL MATCHING rows over many examples: per component, acc is the mean
    component score over examples whose prediction has the component (pred_total > 0), rec the
    mean over examples whose gold has it (label_total > 0), f1 their harmonic mean (1 when both
    are 0, as evaluate() prints it)."""
    sums = {name: [0, 0, 0, 0] for name in PARTIAL_COMPONENTS}  # acc, acc_count, rec, rec_count
    for partial in partials:
        for name in PARTIAL_COMPONENTS:
            if name not in partial:
                continue
            label_total, pred_total, _ = partial[name]
            score = component_score(partial[name])
            s = sums[name]
            if pred_total > 0:
                s[0] += score
                s[1] += 1
            if label_total > 0:
                s[2] += score
                s[3] += 1
    rows = {}
    for name, (acc, acc_n, rec, rec_n) in sums.items():
        acc = acc / acc_n if acc_n else 0.0
        rec = rec / rec_n if rec_n else 0.0
        f1 = 1.0 if acc == 0 and rec == 0 else 2.0 * acc * rec / (acc + rec)
        rows[name] = {"acc": acc, "rec": rec, "f1": f1}
    return rows
