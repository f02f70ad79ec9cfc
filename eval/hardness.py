"""Spider's difficulty levels (easy / medium / hard / extra) of a gold SQL query.

The rules are those of the official Spider evaluator (`Evaluator.eval_hardness` in
test-suite-sql-eval's evaluation.py), re-implemented over our own small parser. Only the
top-level query is inspected; nested queries matter only by their number.

  component1 = [WHERE] + [GROUP BY] + [ORDER BY] + [LIMIT] + (table units in FROM - 1)
               + number of OR + number of LIKE          (in ON, WHERE and HAVING conditions)
  component2 = number of nested queries: subqueries used as condition values (ON, WHERE,
               HAVING) + the INTERSECT/UNION/EXCEPT right-hand query
  others     = [aggregations > 1] + [select columns > 1] + [WHERE conditions > 1]
               + [GROUP BY columns > 1]

  easy    comp1 <= 1 and others == 0 and comp2 == 0
  medium  (others <= 2 and comp1 <= 1 and comp2 == 0) or (comp1 <= 2 and others < 2 and comp2 == 0)
  hard    (others > 2 and comp1 <= 2 and comp2 == 0) or (2 < comp1 <= 3 and others <= 2 and
          comp2 == 0) or (comp1 <= 1 and others == 0 and comp2 <= 1)
  extra   everything else

The aggregation count reproduces what the official code actually computes, quirks included, so
that our levels agree with published Spider breakdowns: aggregates are counted in SELECT items,
GROUP BY columns and ORDER BY expressions; in WHERE it counts NOT-negated conditions instead
(the official code reads a condition's NOT flag where it expects an aggregate id), and in HAVING
it counts NOT-negated conditions plus every AND/OR connector (it also iterates the connectors),
so `HAVING count(*) > 1` adds no aggregation.

A subquery in FROM is a table unit (a join) and not a nested query, as in the official parser.
Scalar subqueries in SELECT items, which the official parser cannot read, count as nested.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

AGGREGATES = frozenset({"count", "sum", "avg", "min", "max"})
COMPARISONS = frozenset({"=", "==", "!=", "<>", "<", ">", "<=", ">="})
SET_OPERATORS = ("intersect", "union", "except")
# Words that end an expression or cannot be a bare alias after a select item / table name.
RESERVED = frozenset(
    """select distinct all from where group by having order limit offset as on using join inner
    left right full outer cross natural and or not in like glob regexp match escape between is
    null exists case when then else end cast collate asc desc union intersect except with""".split()
)

_TOKEN_RE = re.compile(
    r"""\s+
    | (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?P<str>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<name>`[^`]*`|\[[^\]]*\]|[A-Za-z_][\w$]*(?:\s*\.\s*(?:`[^`]*`|\[[^\]]*\]|[A-Za-z_][\w$]*|\*))*)
    | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<op><=|>=|!=|<>|==|\|\||[-+*/%=<>(),;.~])""",
    re.VERBOSE | re.DOTALL,
)


class SQLParseError(ValueError):
    """The query is outside the SQL subset this parser reads."""


@dataclass(frozen=True)
class _Token:
    kind: str   # "name" | "str" | "num" | "op" | "end"
    value: str  # names and ops lowercased; literals as written


def _tokenize(sql: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(sql):
        m = _TOKEN_RE.match(sql, pos)
        if m is None:
            raise SQLParseError(f"cannot read SQL at character {pos}: {sql[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind is None or kind == "comment":
            continue
        value = m.group(kind)
        if kind == "name":
            value = re.sub(r"\s+", "", value).lower()
        tokens.append(_Token(kind, value))
    tokens.append(_Token("end", ""))
    return tokens


@dataclass
class _Condition:
    """A flat list of predicates joined by AND/OR, as the official parser represents it."""
    negated: list[bool] = field(default_factory=list)  # per predicate
    ops: list[str] = field(default_factory=list)        # per predicate: "=", "like", "in", ...
    connectors: list[str] = field(default_factory=list)  # "and"/"or", len(ops) - 1 of them
    subqueries: int = 0                                  # nested SELECTs among the operands

    def extend(self, other: _Condition, connector: str | None) -> None:
        if connector is not None:
            self.connectors.append(connector)
        self.negated += other.negated
        self.ops += other.ops
        self.connectors += other.connectors
        self.subqueries += other.subqueries


@dataclass
class _Expr:
    aggregates: int = 0  # aggregate calls, not counting those inside subqueries
    subqueries: int = 0  # nested SELECTs inside this expression


@dataclass
class _Query:
    select_aggregates: list[int] = field(default_factory=list)  # per select item
    select_subqueries: int = 0
    table_units: int = 0
    on: _Condition = field(default_factory=_Condition)
    where: _Condition = field(default_factory=_Condition)
    group_by_aggregates: list[int] = field(default_factory=list)  # per GROUP BY column
    having: _Condition = field(default_factory=_Condition)
    order_by_aggregates: list[int] = field(default_factory=list)  # per ORDER BY expression
    has_order_by: bool = False
    has_limit: bool = False
    set_operation: tuple[str, _Query] | None = None  # ("union", right-hand query)


class _Parser:
    """Recursive descent over the Spider subset of SQLite's SELECT."""

    def __init__(self, sql: str, tables: set[str] | None) -> None:
        self.tokens = _tokenize(sql)
        self.pos = 0
        self.tables = tables

    # -- token helpers
    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def at(self, *values: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind in ("name", "op") and tok.value in values

    def accept(self, *values: str) -> str | None:
        if self.at(*values):
            self.pos += 1
            return self.tokens[self.pos - 1].value
        return None

    def expect(self, *values: str) -> str:
        found = self.accept(*values)
        if found is None:
            raise self.error(" or ".join(repr(v) for v in values))
        return found

    def error(self, wanted: str) -> SQLParseError:
        tok = self.peek()
        seen = repr(tok.value) if tok.kind != "end" else "end of query"
        return SQLParseError(f"expected {wanted} at token {self.pos}, found {seen}")

    def at_subquery(self) -> bool:
        return self.at("(") and self.at("select", ahead=1)

    # -- queries
    def parse_statement(self) -> _Query:
        query = self.parse_query()
        while self.accept(";"):
            pass
        if self.peek().kind != "end":
            raise self.error("end of query")
        return query

    def parse_query(self) -> _Query:
        if self.at_subquery():
            self.expect("(")
            query = self.parse_query()
            self.expect(")")
        else:
            query = self.parse_select()
        if self.at(*SET_OPERATORS):
            if query.set_operation is not None:
                raise self.error("a single set operation per level")
            operator = self.expect(*SET_OPERATORS)
            self.accept("all")
            query.set_operation = (operator, self.parse_query())
        return query

    def parse_subquery(self) -> None:
        """'(' query ')': its own structure does not matter at the outer level."""
        self.expect("(")
        self.parse_query()
        self.expect(")")

    def parse_select(self) -> _Query:
        query = _Query()
        self.expect("select")
        self.accept("distinct", "all")
        while True:
            item = self.parse_expr()
            query.select_aggregates.append(item.aggregates)
            query.select_subqueries += item.subqueries
            self.skip_alias()
            if not self.accept(","):
                break
        if self.accept("from"):
            self.parse_from(query)
        if self.accept("where"):
            query.where = self.parse_condition()
        if self.accept("group"):
            self.expect("by")
            while True:
                query.group_by_aggregates.append(self.parse_expr().aggregates)
                if not self.accept(","):
                    break
        if self.accept("having"):
            query.having = self.parse_condition()
        if self.accept("order"):
            self.expect("by")
            query.has_order_by = True
            while True:
                query.order_by_aggregates.append(self.parse_expr().aggregates)
                self.accept("asc", "desc")
                if not self.accept(","):
                    break
        if self.accept("limit"):
            query.has_limit = True
            self.parse_expr()
            if self.accept("offset", ","):
                self.parse_expr()
        return query

    def skip_alias(self) -> None:
        if self.accept("as"):
            if self.peek().kind not in ("name", "str"):
                raise self.error("an alias")
            self.pos += 1
        elif self.peek().kind == "name" and self.peek().value not in RESERVED:
            self.pos += 1

    def parse_from(self, query: _Query) -> None:
        self.parse_table_unit(query)
        while True:
            if self.accept(","):
                self.parse_table_unit(query)
                continue
            self.accept("natural")
            if self.accept("left", "right", "full"):
                self.accept("outer")
            else:
                self.accept("inner", "cross")
            if not self.accept("join"):
                break
            self.parse_table_unit(query)
            if self.accept("on"):
                connector = "and" if query.on.ops else None  # official: ON clauses joined by AND
                query.on.extend(self.parse_condition(), connector)
            elif self.accept("using"):
                self.expect("(")
                while self.peek().kind == "name":
                    self.pos += 1
                    if not self.accept(","):
                        break
                self.expect(")")

    def parse_table_unit(self, query: _Query) -> None:
        query.table_units += 1
        if self.at_subquery():
            self.parse_subquery()
        else:
            tok = self.peek()
            if tok.kind != "name" or tok.value in RESERVED:
                raise self.error("a table name")
            self.pos += 1
            name = tok.value.strip("`[]")
            if self.tables is not None and name not in self.tables:
                raise SQLParseError(f"unknown table {name!r} (not in the given schema)")
        self.skip_alias()

    # -- conditions
    def parse_condition(self) -> _Condition:
        condition = self.parse_predicate()
        while connector := self.accept("and", "or"):
            condition.extend(self.parse_predicate(), connector)
        return condition

    def parse_predicate(self) -> _Condition:
        negated = False
        while self.accept("not"):
            negated = not negated
        if self.at("(") and not self.at_subquery():
            group = self.try_parenthesized_condition()
            if group is not None:
                return group  # (a OR b) is flattened into the enclosing list, as officially
        if self.accept("exists"):
            self.parse_subquery()
            return _Condition([negated], ["exists"], [], 1)
        left = self.parse_expr()
        if self.accept("not"):
            negated = not negated
        subqueries = left.subqueries
        if op := self.accept(*COMPARISONS):
            subqueries += self.parse_expr().subqueries
        elif op := self.accept("like", "glob", "regexp", "match"):
            subqueries += self.parse_expr().subqueries
            if self.accept("escape"):
                self.parse_expr()
        elif op := self.accept("in"):
            self.expect("(")
            if self.at("select"):
                self.parse_query()
                subqueries += 1
            else:
                while True:
                    subqueries += self.parse_expr().subqueries
                    if not self.accept(","):
                        break
            self.expect(")")
        elif op := self.accept("between"):
            subqueries += self.parse_expr().subqueries
            self.expect("and")
            subqueries += self.parse_expr().subqueries
        elif op := self.accept("is"):
            if self.accept("not"):
                negated = not negated
            subqueries += self.parse_expr().subqueries
        else:
            op = "truth"  # a bare expression used as a boolean: WHERE flag
        return _Condition([negated], [op], [], subqueries)

    def try_parenthesized_condition(self) -> _Condition | None:
        """'(' condition ')' unless the parentheses only group an expression, as in (a + b) > 3."""
        start = self.pos
        try:
            self.expect("(")
            group = self.parse_condition()
            self.expect(")")
        except SQLParseError:
            self.pos = start
            return None
        continues_expression = self.at(*COMPARISONS, "like", "glob", "in", "between", "is", "not",
                                       "+", "-", "*", "/", "%", "||")
        if continues_expression or group.ops == ["truth"]:
            self.pos = start
            return None
        return group

    # -- expressions
    def parse_expr(self) -> _Expr:
        expr = self.parse_term()
        while self.accept("+", "-", "*", "/", "%", "||"):
            term = self.parse_term()
            expr.aggregates += term.aggregates
            expr.subqueries += term.subqueries
        if self.accept("collate"):
            self.pos += 1
        return expr

    def parse_term(self) -> _Expr:
        tok = self.peek()
        if self.accept("-", "+", "~"):
            return self.parse_term()
        if self.at_subquery():
            self.parse_subquery()
            return _Expr(subqueries=1)
        if self.accept("("):
            expr = self.parse_expr()
            while self.accept(","):  # a row value: (a, b)
                inner = self.parse_expr()
                expr.aggregates += inner.aggregates
                expr.subqueries += inner.subqueries
            self.expect(")")
            return expr
        if tok.kind in ("str", "num") or self.at("*"):
            self.pos += 1
            return _Expr()
        if self.accept("case"):
            return self.parse_case()
        if self.accept("cast"):
            self.expect("(")
            expr = self.parse_expr()
            self.expect("as")
            while self.peek().kind == "name":  # type name, possibly several words
                self.pos += 1
            if self.accept("("):  # VARCHAR(10), DECIMAL(10, 2)
                while not self.accept(")"):
                    if self.peek().kind == "end":
                        raise self.error("')'")
                    self.pos += 1
            self.expect(")")
            return expr
        if tok.kind == "name" and (tok.value not in RESERVED or tok.value == "null"):
            self.pos += 1
            if self.at("("):
                return self.parse_call(tok.value)
            return _Expr()
        raise self.error("an expression")

    def parse_call(self, function: str) -> _Expr:
        self.expect("(")
        expr = _Expr()
        self.accept("distinct")
        if not self.accept("*") and not self.at(")"):
            while True:
                arg = self.parse_expr()
                expr.aggregates += arg.aggregates
                expr.subqueries += arg.subqueries
                if not self.accept(","):
                    break
        self.expect(")")
        if function in AGGREGATES:
            expr.aggregates = 1  # one aggregate, whatever its argument holds
        return expr

    def parse_case(self) -> _Expr:
        expr = _Expr()
        if not self.at("when"):
            expr.subqueries += self.parse_expr().subqueries
        while self.accept("when"):
            expr.subqueries += self.parse_condition().subqueries
            self.expect("then")
            expr.subqueries += self.parse_expr().subqueries
        if self.accept("else"):
            expr.subqueries += self.parse_expr().subqueries
        self.expect("end")
        return expr


def _component1(query: _Query) -> int:
    conditions = (query.on, query.where, query.having)
    return (
        bool(query.where.ops)
        + bool(query.group_by_aggregates)
        + query.has_order_by
        + query.has_limit
        + max(query.table_units - 1, 0)  # each join
        + sum(c.connectors.count("or") for c in conditions)
        + sum(c.ops.count("like") for c in conditions)
    )


def _component2(query: _Query) -> int:
    nested = query.on.subqueries + query.where.subqueries + query.having.subqueries
    nested += query.select_subqueries
    return nested + (query.set_operation is not None)


def _others(query: _Query) -> int:
    aggregates = (
        sum(n > 0 for n in query.select_aggregates)      # one aggregate slot per select item
        + sum(query.where.negated)                        # official quirk, see module docstring
        + sum(n > 0 for n in query.group_by_aggregates)
        + sum(min(n, 2) for n in query.order_by_aggregates)  # official: up to 2 per a-op-b unit
        + sum(query.having.negated) + len(query.having.connectors)  # official quirk
    )
    return (
        (aggregates > 1)
        + (len(query.select_aggregates) > 1)
        + (len(query.where.ops) > 1)
        + (len(query.group_by_aggregates) > 1)
    )


def components(sql: str, schema: Mapping[str, Sequence[str]] | None = None) -> tuple[int, int, int]:
    """(component1, component2, others) of the top-level query, as in Spider's evaluator."""
    tables = None if schema is None else {t.lower() for t in schema}
    query = _Parser(sql, tables).parse_statement()
    return _component1(query), _component2(query), _others(query)


def hardness(sql: str, schema: Mapping[str, Sequence[str]] | None = None) -> str:
    """"easy" | "medium" | "hard" | "extra" by Spider's rules.

    `schema` ({table: [columns]}) is optional; when given, every table in a FROM clause must be
    one of its tables. Raises SQLParseError (a ValueError) for SQL outside the Spider subset."""
    comp1, comp2, others = components(sql, schema)
    if comp1 <= 1 and others == 0 and comp2 == 0:
        return "easy"
    if (others <= 2 and comp1 <= 1 and comp2 == 0) or (comp1 <= 2 and others < 2 and comp2 == 0):
        return "medium"
    if ((others > 2 and comp1 <= 2 and comp2 == 0)
            or (2 < comp1 <= 3 and others <= 2 and comp2 == 0)
            or (comp1 <= 1 and others == 0 and comp2 <= 1)):
        return "hard"
    return "extra"
