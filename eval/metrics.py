"""Text-to-SQL metrics: a match on normalised SQL text, and execution accuracy (EX).
(Spider's exact-set match, the official EM, is eval/spider_match.py.)

EX has the default semantics of the test-suite evaluator (test-suite-sql-eval `exec_eval.py`, as run by
`evaluation.py --etype exec`): DISTINCT is removed from both queries before they run (`keep_distinct`
keeps it); the result tables must be equal as multisets of rows up to a permutation of the columns, and as
lists when the gold query's text contains ORDER BY anywhere (a subquery's included); values compare
exactly, as Python compares them (2 == 2.0, but 0.1 + 0.2 != 0.3: no tolerance that could accept a
rounded wrong answer). With plug_value (the evaluator's --plug_value, for models that do not predict
values), the prediction as written is tried first, then with the gold query's literals plugged into
its own literal slots in every combination (at most PLUG_VALUE_LIMIT of them, a bound the official
code does not have: 5 slots over 6 values would be 7,776 executions).
"""

from __future__ import annotations

import itertools
import math
import sqlite3
from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlparse
import sqlparse.lexer
import sqlparse.sql
from sqlparse import tokens as T

from eval.sqlite_exec import QueryError, execute, split_statements

# Words that are SQL syntax in the SELECT subset we evaluate. sqlparse also tags many ordinary
# column names as keywords (year, type, level, position, result, ...); those are identifiers here.
SQL_SYNTAX_WORDS = frozenset(
    """select distinct all from where group by having order limit offset as on using join inner
    left right full outer cross natural and or not in like glob escape between is null exists
    case when then else end cast collate asc desc union intersect except with recursive
    values""".split()
)

PLUG_VALUE_LIMIT = 256

# ----------------------------------------------------------------------------- text match

def _significant_tokens(sql: str) -> list[Any]:
    """The first statement's tokens, from sqlparse's lexer alone: the parser's grouping adds nothing
    here and raises on deep nesting (120 parentheses), which a prediction must never do."""
    tokens = []
    for ttype, value in sqlparse.lexer.tokenize(sql):
        if ttype in T.Punctuation and value == ";":
            break
        token = sqlparse.sql.Token(ttype, value)
        if not token.is_whitespace and ttype not in T.Comment:
            tokens.append(token)
    return tokens


def _canonical_string_literal(quoted: str) -> str:
    """'abc' and "abc" (Spider writes values in double quotes) -> 'abc', escapes undone/redone."""
    quote = quoted[0]
    inner = quoted[1:-1].replace(quote * 2, quote)
    return "'" + inner.replace("'", "''") + "'"


def _is_keyword_use(tokens: list[Any], i: int) -> bool:
    """True when the Keyword-typed token tokens[i] is SQL syntax rather than a column/table name."""
    word = " ".join(tokens[i].value.split()).lower()
    next_value = tokens[i + 1].value if i + 1 < len(tokens) else ""
    prev_value = tokens[i - 1].value if i > 0 else ""
    if next_value == "." or prev_value == ".":  # t.year, year.x: a qualified name
        return False
    if " " in word:  # sqlparse only merges real syntax: "order by", "left outer join", "not null"
        return True
    if tokens[i].ttype in T.Keyword.DML or tokens[i].ttype in T.Keyword.DDL:  # insert, drop...
        return True
    return word in SQL_SYNTAX_WORDS


def normalize_sql(sql: str) -> str:
    """Canonical text of `sql` for exact match.

    SQL keywords are uppercased; identifiers and function names are lowercased (SQLite and Spider
    treat them case-insensitively), including ones sqlparse mistakes for keywords (year, type,
    name); string literals keep their case but always use single quotes; whitespace is collapsed,
    '<>' becomes '!=', and trailing semicolons are dropped."""
    tokens = _significant_tokens(sql)
    while tokens and tokens[-1].value == ";":
        tokens.pop()
    words: list[tuple[str, bool]] = []  # (text, is a name)
    for i, tok in enumerate(tokens):
        value = tok.value
        if tok.ttype in T.String.Single or tok.ttype in T.String.Symbol:
            text = _canonical_string_literal(value)
        elif tok.ttype in T.Keyword:
            word = " ".join(value.split())
            text = word.upper() if _is_keyword_use(tokens, i) else word.lower()
        elif tok.ttype in T.Operator.Comparison:
            text = {"<>": "!=", "==": "="}.get(value, " ".join(value.split()).upper())
        elif tok.ttype in T.Name:
            text = value.lower()
        else:
            text = value
        words.append((text, tok.ttype in T.Name))
    return _join_words(words)


def _join_words(words: list[tuple[str, bool]]) -> str:
    """Join with single spaces, but none inside t.col, f(x), (a, b)."""
    out = ""
    prev, prev_is_name = "", False
    for word, is_name in words:
        glued = (
            word in {",", ")", ".", ";"}
            or prev in {"(", "."}
            or (word == "(" and prev_is_name)  # a function call: count(
        )
        out += word if (not out or glued) else " " + word
        prev, prev_is_name = word, is_name
    return out


def text_match(pred: str, gold: str) -> bool:
    """Normalised text equality; an empty gold query is a data error. A prediction with more than one
    statement is wrong (normalize_sql reads the first statement only)."""
    if not gold.strip():
        raise ValueError("gold SQL is empty")
    return len(split_statements(pred)) == 1 and normalize_sql(pred) == normalize_sql(gold)


def gold_is_ordered(gold_sql: str) -> bool:
    """The test-suite evaluator's rule, to agree with it example by example: order matters when the
    gold text contains "order by" anywhere (a subquery's, even a string literal's)."""
    return "order by" in gold_sql.lower()


def remove_distinct(sql: str) -> str:
    """`sql` with every DISTINCT keyword dropped, as the test-suite evaluator does by default (so
    count(DISTINCT x) becomes count(x) there too). Lexer tokens only: no nesting depth to overflow."""
    return "".join(value for ttype, value in sqlparse.lexer.tokenize(sql)
                   if not (ttype in T.Keyword and value.lower() == "distinct"))


# ----------------------------------------------------------------------------- execution

def _canonical_value(value: Any) -> Any:
    """The value as Python equality sees it (2 == 2.0 == True): integral floats become ints, so that
    sorting values inside a row never depends on int vs float. Nothing is rounded."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _canonical_rows(rows: Sequence[Sequence[Any]]) -> list[tuple]:
    return [tuple(_canonical_value(v) for v in row) for row in rows]


def _values_sorted(row: tuple) -> tuple:
    # Sorting inside a row forgets column order; keyed by type name so mixed types never compare.
    return tuple(sorted(row, key=lambda v: (type(v).__name__, repr(v))))


def _same(a: list, b: list, ordered: bool) -> bool:
    return a == b if ordered else Counter(a) == Counter(b)


def results_match(pred_rows: Sequence[Sequence[Any]], gold_rows: Sequence[Sequence[Any]], *,
                  ordered: bool) -> bool:
    """Same denotation: equal bags (lists if `ordered`) of rows under some column permutation.

    Search as in test-suite-sql-eval: reject early on rows with their values sorted, then only
    try pred columns whose bag of values equals the gold column's, pruning each partial
    assignment by comparing the projected rows."""
    pred, gold = _canonical_rows(pred_rows), _canonical_rows(gold_rows)
    if not pred and not gold:
        return True
    if len(pred) != len(gold):
        return False
    width = len(gold[0])
    if any(len(row) != width for row in pred) or any(len(row) != width for row in gold):
        return False
    if not _same([_values_sorted(r) for r in pred], [_values_sorted(r) for r in gold], ordered):
        return False

    gold_columns = [Counter(row[c] for row in gold) for c in range(width)]
    pred_columns = [Counter(row[c] for row in pred) for c in range(width)]
    # candidates[g]: pred columns that could play the role of gold column g
    candidates = [[p for p in range(width) if pred_columns[p] == gold_columns[g]]
                  for g in range(width)]

    def extend(assigned: list[int]) -> bool:
        k = len(assigned)
        if k == width:
            return True
        for p in candidates[k]:
            if p in assigned:
                continue
            chosen = assigned + [p]
            projected_pred = [tuple(row[c] for c in chosen) for row in pred]
            projected_gold = [row[: k + 1] for row in gold]
            if _same(projected_pred, projected_gold, ordered) and extend(chosen):
                return True
        return False

    return extend([])


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe_difference(pred: list[tuple], gold: list[tuple], ordered: bool) -> str:
    if len(pred) != len(gold):
        return f"{len(pred)} rows vs {len(gold)} gold rows"
    pred_width, gold_width = len(pred[0]), len(gold[0])
    if pred_width != gold_width:
        return f"{pred_width} columns vs {gold_width} gold columns"
    if ordered and results_match(pred, gold, ordered=False):
        return "same rows in a different order (gold has ORDER BY)"
    gold_bag = Counter(_values_sorted(r) for r in _canonical_rows(gold))
    for row in pred:
        key = _values_sorted(_canonical_rows([row])[0])
        if gold_bag[key] == 0:
            return f"row {_short(row)} not in gold"
        gold_bag[key] -= 1
    return "same values but different column pairing"


def _literal(ttype) -> bool:
    return ttype in T.Literal.String.Single or ttype in T.Literal.String.Symbol or ttype in T.Literal.Number


def plugged_variants(pred_sql: str, gold_sql: str, limit: int = PLUG_VALUE_LIMIT) -> list[str]:
    """`pred_sql` with the gold query's literals (strings and numbers) put into its literal slots, in
    every combination with repetition (test-suite-sql-eval's plugin_all_permutations), at most `limit`."""
    gold_values = list(dict.fromkeys(v for t, v in sqlparse.lexer.tokenize(gold_sql) if _literal(t)))
    tokens = list(sqlparse.lexer.tokenize(pred_sql))
    slots = [i for i, (t, _) in enumerate(tokens) if _literal(t)]
    if not slots or not gold_values:
        return []
    variants = []
    for values in itertools.islice(itertools.product(gold_values, repeat=len(slots)), limit):
        filled = [v for _, v in tokens]
        for i, value in zip(slots, values):
            filled[i] = value
        variants.append("".join(filled))
    return variants


def execution_match(conn: sqlite3.Connection, pred_sql: str, gold_sql: str, *,
                    keep_distinct: bool = False, plug_value: bool = False) -> tuple[bool, str | None]:
    """(correct, None) or (False, why), why about the prediction as written. A failing gold query
    raises QueryError: that is a data error, not a wrong prediction."""
    ordered = gold_is_ordered(gold_sql)
    if not keep_distinct:
        pred_sql, gold_sql = remove_distinct(pred_sql), remove_distinct(gold_sql)
    try:
        gold = execute(conn, gold_sql)
    except QueryError as exc:
        raise QueryError(f"gold query failed: {exc}") from None
    try:
        pred = execute(conn, pred_sql)
    except QueryError as exc:
        pred, why = None, f"error: {exc}"
    if pred is not None:
        if results_match(pred, gold, ordered=ordered):
            return True, None
        why = _describe_difference(pred, gold, ordered)
    for variant in plugged_variants(pred_sql, gold_sql) if plug_value else ():
        try:
            if results_match(execute(conn, variant), gold, ordered=ordered):
                return True, None
        except QueryError:
            continue
    return False, why
