"""Spider hardness levels. Each expected level is worked out by hand from the official rules
(evaluation.py: count_component1 / count_component2 / count_others / eval_hardness); the comment
gives (component1, component2, others) and why."""

from __future__ import annotations

import pytest

from eval.hardness import SQLParseError, components, hardness

SCHEMA = {
    "singer": ["singer_id", "name", "country", "age", "is_male"],
    "concert": ["concert_id", "concert_name", "stadium_id", "year"],
    "stadium": ["stadium_id", "name", "location", "capacity", "highest", "lowest"],
    "singer_in_concert": ["concert_id", "singer_id"],
}

JOIN_SC = ("singer_in_concert AS T1 JOIN singer AS T2 ON T1.singer_id = T2.singer_id")

CASES = [
    # ---- easy: comp1 <= 1, others == 0, comp2 == 0
    # (0,0,0): count(*) is one aggregate; one aggregate is not "more than one"
    ("SELECT count(*) FROM singer", (0, 0, 0), "easy"),
    # (1,0,0): WHERE is one component1
    ("SELECT name FROM singer WHERE age > 20", (1, 0, 0), "easy"),
    # (1,0,0): one JOIN = two table units = one component1; ON is not WHERE
    (f"SELECT T2.name FROM {JOIN_SC}", (1, 0, 0), "easy"),
    # (1,0,0): ORDER BY without LIMIT is a single component1
    ("SELECT name FROM singer ORDER BY age DESC", (1, 0, 0), "easy"),
    # (1,0,0): HAVING is not a component1 and its count(*) is not counted as an aggregate
    ("SELECT country FROM singer GROUP BY country HAVING count(*) > 1", (1, 0, 0), "easy"),
    # (1,0,0): quirk: one AND in HAVING adds one "aggregate" -> still only 1, not > 1
    ("SELECT country FROM singer GROUP BY country HAVING count(*) > 1 AND avg(age) > 20",
     (1, 0, 0), "easy"),
    # (1,0,0): BETWEEN ... AND ... is one condition; NOT BETWEEN adds 1 "aggregate" (quirk) = 1
    ("SELECT name FROM singer WHERE age NOT BETWEEN 20 AND 30", (1, 0, 0), "easy"),
    # (0,0,0): a subquery in FROM is a table unit, not a nested query
    ("SELECT count(*) FROM (SELECT * FROM singer WHERE age > 20)", (0, 0, 0), "easy"),
    # ---- medium
    # (0,0,1): two select columns -> others 1
    ("SELECT name, country FROM singer", (0, 0, 1), "medium"),
    # (0,0,2): two aggregates (+1) and two select columns (+1): others <= 2 and comp1 <= 1
    ("SELECT count(*), max(age) FROM singer", (0, 0, 2), "medium"),
    # (2,0,0): ORDER BY and LIMIT count separately
    ("SELECT name FROM singer ORDER BY age DESC LIMIT 1", (2, 0, 0), "medium"),
    # (2,0,1): WHERE + one OR; two WHERE conditions -> others 1
    ("SELECT name FROM singer WHERE age > 20 OR country = 'France'", (2, 0, 1), "medium"),
    # (2,0,0): WHERE + LIKE (NOT LIKE is a LIKE too; its NOT adds 1 "aggregate" only)
    ("SELECT name FROM singer WHERE name NOT LIKE '%a%'", (2, 0, 0), "medium"),
    # (2,0,0): two joins = three table units
    (f"SELECT T2.name FROM {JOIN_SC} JOIN concert AS T3 ON T1.concert_id = T3.concert_id",
     (2, 0, 0), "medium"),
    # (1,0,2): GROUP BY; two select columns; two GROUP BY columns
    ("SELECT country, is_male FROM singer GROUP BY country, is_male", (1, 0, 2), "medium"),
    # (1,0,1): four WHERE conditions still give only one "others" point
    ("SELECT name FROM singer WHERE age > 20 AND age < 40 AND country = 'x' AND is_male = 'T'",
     (1, 0, 1), "medium"),
    # (1,0,1): quirk: two ANDs in HAVING count as two "aggregates" -> others 1
    ("SELECT country FROM singer GROUP BY country "
     "HAVING count(*) > 1 AND avg(age) > 20 AND max(age) > 30", (1, 0, 1), "medium"),
    # (2,0,0): an a - b ORDER BY expression without aggregates
    ("SELECT name FROM stadium ORDER BY highest - lowest DESC LIMIT 1", (2, 0, 0), "medium"),
    # ---- hard
    # (1,1,0): IN (subquery) is one nested query; comp1 <= 1, others 0, comp2 <= 1
    ("SELECT name FROM singer WHERE country IN (SELECT country FROM singer WHERE age > 30)",
     (1, 1, 0), "hard"),
    # (1,1,0): a scalar subquery as a comparison value is nested too
    ("SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)", (1, 1, 0), "hard"),
    # (0,1,0): UNION right-hand side is the single component2
    ("SELECT name FROM singer UNION SELECT name FROM stadium", (0, 1, 0), "hard"),
    # (1,1,0): only the left query's WHERE counts; the right one's WHERE belongs to the nested query
    ("SELECT name FROM singer WHERE age > 20 INTERSECT SELECT name FROM singer WHERE age < 40",
     (1, 1, 0), "hard"),
    # (1,1,0): a trailing ORDER BY after UNION belongs to the right-hand query, as officially
    ("SELECT name FROM singer WHERE country = 'x' UNION "
     "SELECT name FROM singer WHERE country = 'y' ORDER BY name", (1, 1, 0), "hard"),
    # (3,0,0): GROUP BY + ORDER BY + LIMIT; count(*) in ORDER BY is the only aggregate
    ("SELECT country FROM singer GROUP BY country ORDER BY count(*) DESC LIMIT 1",
     (3, 0, 0), "hard"),
    # (3,0,2): + count(*) in SELECT makes two aggregates (+1) and two select columns (+1)
    ("SELECT country, count(*) FROM singer GROUP BY country ORDER BY count(*) DESC LIMIT 1",
     (3, 0, 2), "hard"),
    # (3,0,1): WHERE + two ORs; three WHERE conditions -> others 1
    ("SELECT name FROM singer WHERE age > 20 OR country = 'France' OR age < 10", (3, 0, 1), "hard"),
    # (3,0,0): two joins + WHERE
    (f"SELECT T2.name FROM {JOIN_SC} JOIN concert AS T3 ON T1.concert_id = T3.concert_id "
     "WHERE T3.year = 2014", (3, 0, 0), "hard"),
    # ---- extra
    # (1,1,1): quirk: NOT IN adds an "aggregate" to count(*) -> 2 aggregates -> others 1,
    # and with a nested query no rule but "extra" accepts others > 0 (the IN version is hard)
    ("SELECT count(*) FROM stadium WHERE stadium_id NOT IN (SELECT stadium_id FROM concert)",
     (1, 1, 1), "extra"),
    # (2,1,0): WHERE + ORDER BY with a nested query: comp2 == 1 needs comp1 <= 1 for hard
    ("SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer) ORDER BY name",
     (2, 1, 0), "extra"),
    # (1,2,1): two nested queries (one per comparison)
    ("SELECT name FROM singer WHERE age > (SELECT min(age) FROM singer) "
     "AND age < (SELECT max(age) FROM singer)", (1, 2, 1), "extra"),
    # (1,2,0): IN-subquery + UNION = two nested queries
    ("SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM singer_in_concert) "
     "UNION SELECT name FROM stadium WHERE capacity > 1000", (1, 2, 0), "extra"),
    # (2,1,0): JOIN + WHERE on the left of INTERSECT
    ("SELECT T1.name FROM stadium AS T1 JOIN concert AS T2 ON T1.stadium_id = T2.stadium_id "
     "WHERE T2.year = 2014 INTERSECT SELECT T1.name FROM stadium AS T1 JOIN concert AS T2 "
     "ON T1.stadium_id = T2.stadium_id WHERE T2.year = 2015", (2, 1, 0), "extra"),
    # (5,0,1): JOIN + WHERE + GROUP BY + ORDER BY + LIMIT
    ("SELECT T1.name, T1.capacity FROM stadium AS T1 JOIN concert AS T2 "
     "ON T1.stadium_id = T2.stadium_id WHERE T2.year > 2013 GROUP BY T2.stadium_id "
     "ORDER BY count(*) DESC LIMIT 1", (5, 0, 1), "extra"),
    # (4,0,1): WHERE + one OR + two LIKEs; two WHERE conditions
    ("SELECT sum(capacity) FROM stadium WHERE name LIKE '%a%' OR location LIKE '%b%'",
     (4, 0, 1), "extra"),
    # (2,0,2): GROUP BY + ORDER BY with 2 aggregates and 2 columns: medium needs comp1 <= 1 when
    # others == 2, hard needs others > 2 or comp1 > 2
    ("SELECT count(*), country FROM singer GROUP BY country HAVING avg(age) > 30 "
     "ORDER BY count(*)", (2, 0, 2), "extra"),
]


@pytest.mark.parametrize("sql, expected_components, expected_level", CASES)
def test_hardness_matches_official_rules(sql: str, expected_components: tuple[int, int, int],
                                         expected_level: str) -> None:
    assert components(sql, SCHEMA) == expected_components
    assert hardness(sql, SCHEMA) == expected_level
    assert hardness(sql) == expected_level  # the schema only validates table names


def test_every_level_is_covered() -> None:
    assert {level for _, _, level in CASES} == {"easy", "medium", "hard", "extra"}


def test_case_quotes_semicolon_and_whitespace_do_not_matter() -> None:
    a = 'select NAME from SINGER where AGE > 20 or COUNTRY = "France";'
    b = "SELECT name\n  FROM singer\n WHERE age > 20\n    OR country = 'France'"
    assert components(a) == components(b) == (2, 0, 1)


def test_parenthesised_conditions_are_flattened() -> None:
    # (a OR b) AND c: WHERE + one OR = 2; three conditions -> others 1
    sql = "SELECT name FROM singer WHERE (age > 20 OR age < 10) AND country = 'x'"
    assert components(sql) == (2, 0, 1)
    # parentheses around an arithmetic operand are not a condition group
    assert components("SELECT name FROM stadium WHERE (highest - lowest) > 10") == (1, 0, 0)


def test_comma_join_counts_like_join() -> None:
    sql = "SELECT T1.name FROM singer AS T1, singer_in_concert AS T2 WHERE T1.singer_id = T2.singer_id"
    assert components(sql) == (2, 0, 0)  # WHERE + one extra table unit


def test_exists_and_scalar_select_subqueries_are_nested() -> None:
    assert components("SELECT name FROM singer AS s WHERE EXISTS "
                      "(SELECT 1 FROM singer_in_concert AS c WHERE c.singer_id = s.singer_id)") \
        == (1, 1, 0)
    assert components("SELECT name, (SELECT max(age) FROM singer) FROM singer") == (0, 1, 1)


def test_union_all_is_a_set_operation() -> None:
    assert components("SELECT name FROM singer UNION ALL SELECT name FROM stadium") == (0, 1, 0)


def test_unknown_table_with_schema_is_an_error() -> None:
    with pytest.raises(SQLParseError, match="unknown table 'singers'"):
        hardness("SELECT name FROM singers", SCHEMA)


@pytest.mark.parametrize(
    "sql",
    ["", "SELECT", "SELECT name FROM", "SELECT name FROM singer WHERE", "DROP TABLE singer",
     "SELECT name FROM singer WHERE age > 20 extra tokens", "SELECT 'unterminated FROM t"],
)
def test_unparseable_sql_raises_one_line_value_error(sql: str) -> None:
    with pytest.raises(ValueError) as info:
        hardness(sql)
    assert "\n" not in str(info.value)
