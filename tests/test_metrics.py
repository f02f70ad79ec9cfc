from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from eval.metrics import (
    text_match,
    execution_match,
    gold_is_ordered,
    normalize_sql,
    results_match,
)
from eval.sqlite_exec import QueryError, open_readonly

# ----------------------------------------------------------------------------- results_match


def test_order_matters_only_when_ordered() -> None:
    a, b = [(1,), (2,), (3,)], [(3,), (1,), (2,)]
    assert results_match(a, b, ordered=False) is True
    assert results_match(a, b, ordered=True) is False
    assert results_match(a, list(a), ordered=True) is True


def test_duplicates_are_a_multiset() -> None:
    assert results_match([(1,), (1,), (2,)], [(1,), (2,)], ordered=False) is False
    assert results_match([(1,), (1,), (2,)], [(1,), (2,), (2,)], ordered=False) is False
    assert results_match([(1,), (2,), (1,)], [(1,), (1,), (2,)], ordered=False) is True


def test_column_order_does_not_matter() -> None:
    gold = [("ann", 2001), ("bob", 2002)]
    pred = [(2001, "ann"), (2002, "bob")]
    assert results_match(pred, gold, ordered=False) is True
    assert results_match(pred, gold, ordered=True) is True


def test_column_permutation_must_keep_rows_together() -> None:
    # Each column has the same bag of values in both, but the pairing differs: (1,x),(2,y) vs
    # (1,y),(2,x). No column permutation turns one into the other.
    assert results_match([(1, "x"), (2, "y")], [(1, "y"), (2, "x")], ordered=False) is False
    # columns with identical bags: only the right permutation works, and it is found
    gold = [(1, 2, 3), (2, 3, 1), (3, 1, 2)]
    pred = [(c, a, b) for a, b, c in gold]
    assert results_match(pred, gold, ordered=True) is True


def test_wide_rows_with_repeated_values() -> None:
    gold = [(i % 2, (i + 1) % 2, i % 3, 7, 7, i) for i in range(20)]
    pred = [(r[5], r[4], r[3], r[2], r[1], r[0]) for r in gold]  # columns reversed
    assert results_match(pred, gold, ordered=True) is True
    assert results_match(pred[::-1], gold, ordered=False) is True
    assert results_match(pred[::-1], gold, ordered=True) is False


def test_nulls_compare_equal_to_nulls() -> None:
    assert results_match([(None, 1), (2, None)], [(2, None), (None, 1)], ordered=False) is True
    assert results_match([(None,)], [(0,)], ordered=False) is False
    assert results_match([(None,)], [("",)], ordered=False) is False


def test_values_compare_exactly_and_int_equals_float() -> None:
    assert results_match([(2,)], [(2.0,)], ordered=True) is True
    assert results_match([(1, 2.0)], [(1.0, 2)], ordered=True) is True
    assert results_match([(True,)], [(1,)], ordered=True) is True
    # as the test-suite evaluator: no tolerance, so a rounded answer is not the answer
    assert results_match([(0.1 + 0.2,)], [(0.3,)], ordered=True) is False
    assert results_match([(1022071.0,)], [(1022071.2333,)], ordered=True) is False
    assert results_match([(0.3,)], [(0.31,)], ordered=True) is False
    assert results_match([(2.5,)], [(2,)], ordered=True) is False
    # a number is not its text
    assert results_match([("1",)], [(1,)], ordered=True) is False

# ----------------------------------------------------------------------------- gold_is_ordered


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("SELECT name FROM t ORDER BY age", True),
        ("select name from t order by age desc limit 1;", True),
        ("SELECT name FROM t", False),
        ("SELECT a FROM t UNION SELECT a FROM u ORDER BY a", True),
        # The test-suite evaluator's rule is a substring test, kept so that scores agree example by
        # example: a subquery's ORDER BY, or the words in a string, make the comparison ordered...
        ("SELECT count(*) FROM (SELECT a FROM t ORDER BY a LIMIT 3)", True),
        ("SELECT a FROM t WHERE b IN (SELECT b FROM u ORDER BY b LIMIT 2)", True),
        ("SELECT a FROM t WHERE note = 'order by'", True),
        # ...and two spaces between the words do not.
        ("SELECT name FROM t ORDER  BY age", False),
    ],
)
def test_gold_is_ordered(sql: str, expected: bool) -> None:
    assert gold_is_ordered(sql) is expected


# ----------------------------------------------------------------------------- normalisation


def test_keyword_case_and_trailing_semicolon() -> None:
    assert text_match("select year, type from t", "SELECT year, type FROM t;") is True
    assert normalize_sql("select year, type from t") == "SELECT year, type FROM t"


def test_identifiers_that_sqlparse_calls_keywords_stay_lowercase() -> None:
    # sqlparse's keyword_case='upper' would turn these into YEAR, TYPE, ... ; they are columns
    out = normalize_sql("select name, year, type, level, position from t "
                        "where t.year = 2000 order by year")
    assert out == ("SELECT name, year, type, level, position FROM t "
                   "WHERE t.year = 2000 ORDER BY year")
    assert "YEAR" not in out and "TYPE" not in out and "NAME" not in out


def test_identifiers_are_case_insensitive_literals_are_not() -> None:
    assert text_match("SELECT Name FROM Singer AS T1", "select name from singer as t1") is True
    assert text_match("SELECT a FROM t WHERE c = 'France'",
                       "SELECT a FROM t WHERE c = 'france'") is False


def test_trailing_semicolons_and_whitespace() -> None:
    assert normalize_sql("SELECT a\n\tFROM   t ;;  \n") == "SELECT a FROM t"
    assert text_match("SELECT  count( * )\nFROM t", "SELECT count(*) FROM t") is True


def test_double_and_single_quoted_strings_are_equal() -> None:
    assert text_match('SELECT a FROM t WHERE b = "abc"', "SELECT a FROM t WHERE b = 'abc'") is True
    assert normalize_sql('SELECT a FROM t WHERE b = "it\'s"') == "SELECT a FROM t WHERE b = 'it''s'"
    assert normalize_sql("SELECT a FROM t WHERE b = 'it''s'") == "SELECT a FROM t WHERE b = 'it''s'"


def test_operator_spelling_and_multiword_keywords() -> None:
    assert normalize_sql("select a from t where b<>1 and c not  like 'x%' order  by a") == (
        "SELECT a FROM t WHERE b != 1 AND c NOT LIKE 'x%' ORDER BY a")
    assert text_match("SELECT a FROM t LEFT  OUTER JOIN u ON t.id=u.id",
                       "select a from t left outer join u on t.id = u.id") is True


def test_different_queries_do_not_match() -> None:
    assert text_match("SELECT a FROM t ORDER BY a", "SELECT a FROM t ORDER BY a DESC") is False
    assert text_match("SELECT a, b FROM t", "SELECT b, a FROM t") is False
    assert text_match("", "SELECT 1") is False


def test_empty_gold_is_an_error() -> None:
    with pytest.raises(ValueError, match="gold SQL is empty"):
        text_match("SELECT 1", "  ")


# ----------------------------------------------------------------------------- execution_match


@pytest.fixture()
def conn(tmp_path: Path) -> sqlite3.Connection:
    path = tmp_path / "shop.sqlite"
    setup = sqlite3.connect(path)
    setup.executescript(
        """
        PRAGMA synchronous = OFF;
        CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price REAL, shop TEXT);
        INSERT INTO item VALUES (1, 'pen', 1.5, 'a'), (2, 'ink', 3.0, 'a'), (3, 'pad', 2.25, 'b');
        """
    )
    setup.commit()
    setup.close()
    return open_readonly(path)


def test_execution_match_equivalent_queries(conn: sqlite3.Connection) -> None:
    gold = "SELECT name, price FROM item WHERE shop = 'a'"
    assert execution_match(conn, "SELECT price, name FROM item WHERE shop = \"a\"", gold) == (True, None)
    assert execution_match(conn, "SELECT name, price FROM item WHERE price < 3.5 AND id < 3", gold) \
        == (True, None)


def test_execution_match_respects_gold_order(conn: sqlite3.Connection) -> None:
    gold = "SELECT name FROM item ORDER BY price DESC"
    ok, why = execution_match(conn, "SELECT name FROM item ORDER BY price", gold)
    assert (ok, why) == (False, "same rows in a different order (gold has ORDER BY)")
    # without ORDER BY in gold, any order is fine
    assert execution_match(conn, "SELECT name FROM item ORDER BY price",
                           "SELECT name FROM item") == (True, None)


def test_execution_match_explains_differences(conn: sqlite3.Connection) -> None:
    gold = "SELECT name FROM item WHERE shop = 'a'"
    assert execution_match(conn, "SELECT name FROM item", gold) == (False, "3 rows vs 2 gold rows")
    assert execution_match(conn, "SELECT name, id FROM item WHERE shop = 'a'", gold) == (
        False, "2 columns vs 1 gold columns")
    assert execution_match(conn, "SELECT name FROM item WHERE shop = 'b' OR id = 1", gold) == (
        False, "row ('pad',) not in gold")


def test_execution_match_prediction_errors(conn: sqlite3.Connection) -> None:
    gold = "SELECT count(*) FROM item"
    ok, why = execution_match(conn, "SELECT count(*) FROM items", gold)
    assert ok is False and why == "error: OperationalError: no such table: items"
    ok, why = execution_match(conn, "DELETE FROM item", gold)
    assert ok is False and why == "error: write denied: DELETE item"
    assert execution_match(conn, gold, gold) == (True, None)  # nothing was deleted


def test_execution_match_float_aggregates(conn: sqlite3.Connection) -> None:
    gold = "SELECT avg(price) FROM item"
    assert execution_match(conn, "SELECT sum(price) / count(*) FROM item", gold) == (True, None)
    assert execution_match(conn, "SELECT sum(price) / 3.0 FROM item", gold) == (True, None)
    # SQLite's own float arithmetic: 0.1 + 0.2 is 0.30000000000000004, not 0.3 (the test-suite evaluator agrees)
    assert execution_match(conn, "SELECT 0.1 + 0.2", "SELECT 0.3")[0] is False
    assert execution_match(conn, "SELECT 2", "SELECT 2.0") == (True, None)
    assert execution_match(conn, "SELECT round(avg(price))", gold)[0] is False


def test_distinct_is_removed_from_both_queries_unless_kept(conn: sqlite3.Connection) -> None:
    gold = "SELECT DISTINCT shop FROM item"  # a, a, b
    assert execution_match(conn, "SELECT shop FROM item", gold) == (True, None)  # both run without DISTINCT
    assert execution_match(conn, "SELECT DISTINCT shop FROM item", "SELECT shop FROM item") == (True, None)
    assert execution_match(conn, "SELECT shop FROM item", gold, keep_distinct=True) == (False, "3 rows vs 2 gold rows")
    assert execution_match(conn, "SELECT count(DISTINCT shop) FROM item", "SELECT count(shop) FROM item") == (True, None)


def test_failing_gold_raises(conn: sqlite3.Connection) -> None:
    with pytest.raises(QueryError, match="^gold query failed: .*no such column: colour"):
        execution_match(conn, "SELECT 1", "SELECT colour FROM item")


def test_text_match_rejects_a_second_statement():
    assert text_match("SELECT name FROM t", "SELECT name FROM t")
    assert not text_match("SELECT name FROM t; SELECT 1", "SELECT name FROM t")
    assert not text_match("SELECT name FROM t; DROP TABLE t", "SELECT name FROM t")


def test_deep_nesting_is_scored_not_raised(conn: sqlite3.Connection) -> None:
    deep = "SELECT " + "(" * 120 + "1" + ")" * 120  # sqlparse's parser stops at 100 levels
    assert text_match(deep, "SELECT 1") is False and text_match("SELECT ((1))", "SELECT ((1))") is True
    ok, why = execution_match(conn, deep, "SELECT 1")  # SQLite's own parser refuses it: a wrong answer, not a crash
    assert not ok and why.startswith("error: ") and "stack overflow" in why
