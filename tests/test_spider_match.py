"""Spider exact-set match (eval/spider_match.py). Each expected outcome is the one the official
evaluator (test-suite-sql-eval evaluation.py, `--etype match` defaults) gives for the pair."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from eval.spider_match import (
    PARTIAL_COMPONENTS,
    MatchResult,
    Schema,
    aggregate_partial,
    exact_set_match,
    load_schemas,
    parse,
)

DDL = """
CREATE TABLE stadium (Stadium_ID INTEGER PRIMARY KEY, Location TEXT, Name TEXT, Capacity INTEGER,
                      Highest INTEGER, Lowest INTEGER, Average INTEGER);
CREATE TABLE singer (Singer_ID INTEGER PRIMARY KEY, Name TEXT, Country TEXT, Song_Name TEXT,
                     Song_release_year TEXT, Age INTEGER, Is_male TEXT);
CREATE TABLE concert (concert_ID INTEGER PRIMARY KEY, concert_Name TEXT, Theme TEXT,
                      Stadium_ID INTEGER REFERENCES stadium(Stadium_ID), Year TEXT);
CREATE TABLE singer_in_concert (concert_ID INTEGER REFERENCES concert(concert_ID),
                                Singer_ID INTEGER REFERENCES singer,
                                PRIMARY KEY (concert_ID, Singer_ID));
"""

TABLES = {
    "stadium": ["Stadium_ID", "Location", "Name", "Capacity", "Highest", "Lowest", "Average"],
    "singer": ["Singer_ID", "Name", "Country", "Song_Name", "Song_release_year", "Age", "Is_male"],
    "concert": ["concert_ID", "concert_Name", "Theme", "Stadium_ID", "Year"],
    "singer_in_concert": ["concert_ID", "Singer_ID"],
}
FOREIGN_KEYS = [("concert", "Stadium_ID", "stadium", "Stadium_ID"),
                ("singer_in_concert", "concert_ID", "concert", "concert_ID"),
                ("singer_in_concert", "Singer_ID", "singer", "Singer_ID")]


def tables_entry(db_id: str = "concert_singer") -> dict:
    names = list(TABLES)
    columns = [[-1, "*"]] + [[names.index(t), c] for t in names for c in TABLES[t]]
    index = {(names[t].lower(), c.lower()): i for i, (t, c) in enumerate(columns) if t >= 0}
    keys = [[index[a.lower(), b.lower()], index[c.lower(), d.lower()]] for a, b, c, d in FOREIGN_KEYS]
    return {"db_id": db_id, "table_names_original": names, "table_names": names,
            "column_names_original": columns, "column_names": columns,
            "column_types": ["text"] * len(columns), "primary_keys": [], "foreign_keys": keys}


@pytest.fixture(scope="module")
def tables_json(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("spider") / "tables.json"
    path.write_text(json.dumps([tables_entry("other_db") | {"foreign_keys": []}, tables_entry()]))
    return str(path)


@pytest.fixture(scope="module")
def db_root(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("database")
    (root / "concert_singer").mkdir()
    conn = sqlite3.connect(root / "concert_singer" / "concert_singer.sqlite")
    conn.executescript(DDL)
    conn.close()
    return str(root)


@pytest.fixture(scope="module")
def schema(tables_json) -> Schema:
    return Schema.from_tables_json(tables_json, "concert_singer")


def match(pred: str, gold: str, schema: Schema) -> MatchResult:
    return exact_set_match(pred, gold, schema)


JOIN_CS = "FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id = T2.stadium_id"

MATCHING = [
    # alias names do not matter
    (f"SELECT T2.name {JOIN_CS}",
     "SELECT b.Name FROM concert AS a JOIN stadium AS b ON a.stadium_id = b.stadium_id"),
    # values are not compared
    ("SELECT name FROM singer WHERE age > 30", "SELECT name FROM singer WHERE age > 40"),
    ("SELECT name FROM singer WHERE country = 'France'", 'SELECT name FROM singer WHERE country = "Japan"'),
    # condition order and select order do not matter
    ("SELECT name FROM singer WHERE age > 30 AND country = 'France'",
     "SELECT name FROM singer WHERE country = 'France' AND age > 30"),
    ("SELECT name, age FROM singer", "SELECT age, name FROM singer"),
    # JOIN order does not matter (nor the ON condition)
    (f"SELECT T2.name {JOIN_CS}",
     "SELECT T2.name FROM stadium AS T2 JOIN concert AS T1 ON T2.stadium_id = T1.stadium_id"),
    ("SELECT avg (age) FROM singer", "SELECT avg(age) FROM singer"),
    # only the presence of LIMIT counts
    ("SELECT name FROM singer ORDER BY age DESC LIMIT 1", "SELECT name FROM singer ORDER BY age DESC LIMIT 3"),
    # DISTINCT is disabled by default
    ("SELECT DISTINCT country FROM singer", "SELECT country FROM singer"),
    ("SELECT count(DISTINCT country) FROM singer", "SELECT count(country) FROM singer"),
    # <> is != (the official parser cannot read <>)
    ("SELECT name FROM singer WHERE country <> 'France'", "SELECT name FROM singer WHERE country != 'France'"),
    ("SELECT name FROM singer WHERE country != 'France'", "SELECT name FROM singer WHERE country ! = 'France'"),
    # foreign-key-linked columns are the same column
    (f"SELECT T1.stadium_id {JOIN_CS}", f"SELECT T2.stadium_id {JOIN_CS}"),
    # identifiers are case-insensitive, bare columns resolve to their table
    ("select NAME from SINGER where AGE >= 20", "SELECT T1.name FROM singer AS T1 WHERE T1.age >= 20"),
    # values inside a nested query are not compared either
    ("SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM singer_in_concert WHERE concert_id = 1)",
     "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM singer_in_concert WHERE concert_id = 2)"),
    ("SELECT name FROM stadium WHERE capacity BETWEEN 1 AND 5", "SELECT name FROM stadium WHERE capacity BETWEEN 10 AND 50"),
    ("SELECT name FROM singer INTERSECT SELECT name FROM stadium",
     "SELECT name FROM singer INTERSECT SELECT name FROM stadium;"),
]

NOT_MATCHING = [
    # (pred, gold, a component that differs)
    ("SELECT name FROM singer ORDER BY age LIMIT 1", "SELECT name FROM singer ORDER BY age", "order"),
    ("SELECT name FROM singer", "SELECT country FROM singer", "select"),
    ("SELECT max(age) FROM singer", "SELECT min(age) FROM singer", "select"),
    ("SELECT name FROM singer WHERE age > 30 AND country = 'France'",
     "SELECT name FROM singer WHERE age > 30", "where"),
    ("SELECT name FROM singer WHERE age > 30 OR country = 'France'",
     "SELECT name FROM singer WHERE age > 30 AND country = 'France'", "and/or"),
    ("SELECT name FROM singer ORDER BY age ASC", "SELECT name FROM singer ORDER BY age DESC", "order"),
    ("SELECT name FROM singer UNION SELECT name FROM stadium",
     "SELECT name FROM singer INTERSECT SELECT name FROM stadium", "IUEN"),
    ("SELECT name FROM singer WHERE singer_id IN (SELECT concert_id FROM singer_in_concert)",
     "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM singer_in_concert)", "where"),
    ("SELECT name FROM singer WHERE age > 30", "SELECT name FROM singer WHERE age < 30", "where"),
    ("SELECT name FROM stadium", "SELECT name FROM singer", "from"),
    ("SELECT country, count(*) FROM singer GROUP BY country HAVING count(*) > 1",
     "SELECT country, count(*) FROM singer GROUP BY country", "group"),
    # not linked by a foreign key: two different columns
    (f"SELECT T2.name {JOIN_CS}", f"SELECT T2.location {JOIN_CS}", "select"),
    # inside a nested query the official code compares the exact structure, DISTINCT included
    ("SELECT name FROM singer WHERE singer_id IN (SELECT DISTINCT singer_id FROM singer_in_concert)",
     "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM singer_in_concert)", "where"),
]


@pytest.mark.parametrize("pred, gold", MATCHING)
def test_matching_pairs(pred, gold, schema):
    result = match(pred, gold, schema)
    assert result.exact, result.reason
    assert result.reason is None
    assert set(result.partial) == set(PARTIAL_COMPONENTS)


@pytest.mark.parametrize("pred, gold, component", NOT_MATCHING)
def test_non_matching_pairs(pred, gold, component, schema):
    result = match(pred, gold, schema)
    assert not result.exact
    assert result.reason.startswith("differs in ") and component in result.reason


def test_partial_counts_pinned(schema):
    # counts as the official eval_partial_match gives them: (label_total, pred_total, cnt)
    result = match("SELECT name, age FROM singer WHERE age > 30 AND country = 'France' ORDER BY age",
                   "SELECT name, max(age) FROM singer WHERE age < 3 OR country = 'x' ORDER BY age LIMIT 1",
                   schema)
    assert not result.exact
    assert result.partial == {
        "select": (2, 2, 1), "select(no AGG)": (2, 2, 2), "where": (2, 2, 1),
        "where(no OP)": (2, 2, 2), "group(no Having)": (0, 0, 0), "group": (0, 0, 0),
        "order": (1, 1, 0), "and/or": (1, 1, 0), "IUEN": (0, 0, 0), "keywords": (5, 3, 3),
    }
    assert result.reason == "differs in select, where, order, and/or, keywords"

    same = match("SELECT T1.name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.singer_id = T2.singer_id"
                 " GROUP BY T1.name HAVING count(*) > 2 EXCEPT SELECT name FROM singer WHERE age > 3",
                 "SELECT T2.name FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.singer_id = T2.singer_id"
                 " GROUP BY T2.name HAVING count(*) > 1 EXCEPT SELECT name FROM singer WHERE age > 1", schema)
    assert same.exact
    assert same.partial["group"] == (1, 1, 1) and same.partial["IUEN"] == (1, 1, 1)
    assert same.partial["keywords"] == (3, 3, 3)  # group, having, except; the WHERE is the EXCEPT part's


def test_and_or_totals_come_back_swapped_as_officially(schema):
    # eval_and_or returns (len(pred set), len(gold set), 0) where the caller reads (label, pred, cnt)
    result = match("SELECT name FROM singer WHERE age > 1 AND age < 9 OR age = 5",
                   "SELECT name FROM singer WHERE age > 1 AND age < 9", schema)
    assert result.partial["and/or"] == (2, 1, 0)


@pytest.mark.parametrize("pred, reason", [
    ("SELECT " + "(" * 120 + "age" + ")" * 120 + " FROM singer", "prediction does not parse"),
    ("SELECT name FROM singer WHERE age IN " + "(SELECT age FROM singer WHERE age IN " * 120
     + "(SELECT 1)" + ")" * 120, "nested queries"),
    ("hello world, this is not SQL", "prediction does not parse"),
    ("", "empty query"),
    ("   ", "empty query"),
    ("SELECT name FROM nowhere", "unknown table nowhere"),
    ("SELECT foo FROM singer", "unknown column foo"),
    ("SELECT T9.name FROM singer AS T1", "unknown table or alias 't9'"),
    ("SELECT name FROM singer WHERE age >", "end of query"),
    ("SELECT name FROM singer WHERE name = 'unterminated", "prediction does not parse"),
    ("SELECT name FROM singer " + "x " * 10_000, "prediction does not parse"),
    ("SELECT name FROM singer LEFT JOIN concert", "unknown table left"),  # outside the official subset
])
def test_hostile_predictions_score_false_with_a_reason(pred, reason, schema):
    start = time.perf_counter()
    result = match(pred, "SELECT name FROM singer", schema)
    assert time.perf_counter() - start < 1.0
    assert not result.exact
    assert reason in result.reason and "\n" not in result.reason
    assert result.reason.startswith("prediction does not parse: ")
    # scored against an empty query, as the official evaluate() does for unparsable predictions
    assert result.partial["select"] == (1, 0, 0)


def test_long_valid_prediction_is_fast(schema):
    pred = "SELECT name FROM singer WHERE " + " AND ".join(f"age > {i}" for i in range(2500))
    start = time.perf_counter()
    result = match(pred, "SELECT name FROM singer WHERE age > 3", schema)
    assert time.perf_counter() - start < 2.0
    assert not result.exact and result.partial["where"] == (1, 2500, 1)


def test_gold_that_does_not_parse_raises(schema):
    with pytest.raises(ValueError, match="gold query does not parse: unknown column nope"):
        match("SELECT name FROM singer", "SELECT nope FROM singer", schema)
    with pytest.raises(ValueError, match="gold query does not parse"):
        match("SELECT name FROM singer", "", schema)


def test_schema_from_sqlite_equals_tables_json(tables_json, db_root):
    from_json = Schema.from_tables_json(tables_json, "concert_singer")
    from_file = Schema.from_sqlite(f"{db_root}/concert_singer/concert_singer.sqlite")
    assert from_file.tables == from_json.tables
    assert set(from_file.foreign_keys) == set(from_json.foreign_keys) == {
        ("concert.stadium_id", "stadium.stadium_id"),
        ("singer_in_concert.concert_id", "concert.concert_id"),
        ("singer_in_concert.singer_id", "singer.singer_id"),  # REFERENCES singer: its primary key
    }
    assert list(from_json.tables["singer"]) == [c.lower() for c in TABLES["singer"]]
    pair = (f"SELECT T1.stadium_id {JOIN_CS}", f"SELECT T2.stadium_id {JOIN_CS}")
    assert exact_set_match(*pair, from_file).exact and exact_set_match(*pair, from_json).exact


def test_from_sqlite_does_not_write(db_root, tmp_path):
    with pytest.raises(FileNotFoundError):
        Schema.from_sqlite(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()


def test_load_schemas(tables_json, db_root):
    lookup = load_schemas(tables_json=tables_json)
    assert lookup("concert_singer") is lookup("concert_singer")
    assert lookup("other_db").foreign_keys == ()
    with pytest.raises(KeyError):
        lookup("no_such_db")
    from_files = load_schemas(db_root=db_root)
    assert from_files("concert_singer").tables == lookup("concert_singer").tables
    with pytest.raises(ValueError):
        load_schemas()


def test_parse_resolves_aliases_and_bare_columns(schema):
    query = parse(f"SELECT T2.name, count(*) {JOIN_CS} WHERE year > 2014 GROUP BY T2.name", schema)
    assert [name for kind, name in query.tables] == ["concert", "stadium"]
    assert query.select[0][1].left.column == "stadium.name"
    assert query.select[1][0] == "count" and query.select[1][1].left.column == "*"
    assert query.where[0].left.left.column == "concert.year"  # bare column: first FROM table with it
    assert query.where[0].value1 == 2014.0


def test_aggregate_partial_official_way():
    rows = aggregate_partial([
        {"select": (1, 1, 1), "where": (1, 0, 0)},   # where: gold has it, prediction does not
        {"select": (1, 1, 0), "where": (0, 0, 0)},   # where: neither has it, not counted
        {"select": (2, 2, 2), "where": (1, 1, 1)},
    ])
    assert rows["select"] == {"acc": 2 / 3, "rec": 2 / 3, "f1": pytest.approx(2 / 3)}
    assert rows["where"]["acc"] == 1.0 and rows["where"]["rec"] == 0.5
    assert rows["where"]["f1"] == pytest.approx(2 * 0.5 / 1.5)
    assert rows["order"] == {"acc": 0.0, "rec": 0.0, "f1": 1.0}  # as evaluate() prints an empty row
