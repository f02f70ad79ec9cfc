"""Loading every data format into chat conversations, schemas as compact DDL, and load errors.

The fixtures are written here into tmp_path: a tiny Spider-layout directory (two SQLite databases,
tables.json with a third schema-only database, train.json), a Spider CSV in seed 000's shape, and
chat / prompt-completion / alpaca files."""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
import sys
import types
from pathlib import Path

import pytest

from data.formats import load_examples
from data.prompts import INSTRUCTION, SYSTEM_PROMPT, sql_messages
from data.schema import ddl_from_sqlite, ddl_from_tables_json

CONCERT_DDL = """
CREATE TABLE singer (
    singer_id INTEGER PRIMARY KEY,  -- row id, comments must not reach the prompt
    name      TEXT NOT NULL,
    country   TEXT DEFAULT 'New  Zealand',
    birth_year INTEGER
);
CREATE TABLE concert (
    concert_id   INTEGER PRIMARY KEY,
    concert_name TEXT,
    year         INTEGER,
    singer_id    INTEGER,
    FOREIGN KEY (singer_id) REFERENCES singer(singer_id)
);
"""
CONCERT_COMPACT = (
    "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "country TEXT DEFAULT 'New  Zealand', birth_year INTEGER)\n"
    "CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, concert_name TEXT, year INTEGER, "
    "singer_id INTEGER, FOREIGN KEY (singer_id) REFERENCES singer(singer_id))"
)
LIBRARY_DDL = """
CREATE TABLE book (book_id INTEGER, title TEXT, PRIMARY KEY (book_id));
CREATE TABLE author (author_id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE book_author (
    book_id INTEGER, author_id INTEGER,
    PRIMARY KEY (book_id, author_id),
    FOREIGN KEY (book_id) REFERENCES book(book_id),
    FOREIGN KEY (author_id) REFERENCES author(author_id)
);
"""


def spider_tables_entry(db_id: str, tables: dict[str, list[tuple[str, str]]], primary: list, foreign: list) -> dict:
    """A tables.json entry in Spider's shape; primary/foreign name columns as (table, column)."""
    columns = [[-1, "*"]] + [[t, col] for t, cols in enumerate(tables.values()) for col, _ in cols]
    types_ = ["text"] + [typ for cols in tables.values() for _, typ in cols]
    names = list(tables)
    index = {(names[t], col): i for i, (t, col) in enumerate(columns) if t >= 0}
    return {
        "db_id": db_id,
        "table_names_original": names,
        "table_names": [n.replace("_", " ") for n in names],
        "column_names_original": columns,
        "column_names": [[t, c.replace("_", " ")] for t, c in columns],
        "column_types": types_,
        "primary_keys": [index[k] if isinstance(k, tuple) else [index[x] for x in k] for k in primary],
        "foreign_keys": [[index[a], index[b]] for a, b in foreign],
    }


CONCERT_ENTRY = spider_tables_entry(
    "concert",
    {"singer": [("singer_id", "number"), ("name", "text"), ("country", "text"), ("birth_year", "number")],
     "concert": [("concert_id", "number"), ("concert_name", "text"), ("year", "number"), ("singer_id", "number")]},
    primary=[("singer", "singer_id"), ("concert", "concert_id")],
    foreign=[(("concert", "singer_id"), ("singer", "singer_id"))],
)
LIBRARY_ENTRY = spider_tables_entry(
    "library",
    {"book": [("book_id", "number"), ("title", "text")],
     "author": [("author_id", "number"), ("name", "text")],
     "book_author": [("book_id", "number"), ("author_id", "number")]},
    # Newer Spider releases nest a composite key as a list.
    primary=[("book", "book_id"), ("author", "author_id"), [("book_author", "book_id"), ("book_author", "author_id")]],
    foreign=[(("book_author", "book_id"), ("book", "book_id")), (("book_author", "author_id"), ("author", "author_id"))],
)
ORCHESTRA_ENTRY = spider_tables_entry(  # only in tables.json: no SQLite file
    "orchestra",
    {"conductor": [("conductor_id", "number"), ("name", "text"), ("age", "number")]},
    primary=[("conductor", "conductor_id")],
    foreign=[],
)
ORCHESTRA_COMPACT = "CREATE TABLE conductor (conductor_id NUMERIC, name TEXT, age NUMERIC, PRIMARY KEY (conductor_id))"

SPIDER_RECORDS = [
    {"db_id": "concert", "question": "How many singers do we have?", "query": "SELECT count(*) FROM singer"},
    {"db_id": "concert", "question": "List the names of singers born after 1990.",
     "query": "SELECT name FROM singer WHERE birth_year  >  1990 "},
    {"db_id": "library", "question": "What are the titles of all books?", "query": "SELECT title FROM book"},
    {"db_id": "orchestra", "question": "What is the average age of conductors?",
     "query": "SELECT avg(age) FROM conductor"},
]
CHAT_RECORDS = [
    {"messages": [{"role": "system", "content": "You answer with SQL only."},
                  {"role": "user", "content": "Count the singers."},
                  {"role": "assistant", "content": "SELECT count(*) FROM singer"}]},
    {"messages": [{"role": "user", "content": "Oldest singer?"},
                  {"role": "assistant", "content": "SELECT name FROM singer ORDER BY birth_year LIMIT 1"},
                  {"role": "user", "content": "And the youngest?"},
                  {"role": "assistant", "content": "SELECT name FROM singer ORDER BY birth_year DESC LIMIT 1"}]},
]
ALPACA_RECORDS = [
    {"instruction": "Write SQL that counts the books.", "input": "", "output": "SELECT count(*) FROM book"},
    {"instruction": "Write SQL for the question.", "input": "Which titles start with A?",
     "output": "SELECT title FROM book WHERE title LIKE 'A%'"},
]
PROMPT_COMPLETION_RECORDS = [
    {"prompt": "Count the conductors.", "completion": "SELECT count(*) FROM conductor"},
    {"prompt": "Names of conductors older than 50.", "completion": "SELECT name FROM conductor WHERE age > 50"},
]


def write_sqlite(path: Path, ddl: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(ddl)
    conn.close()


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_spider_dir(root: Path) -> Path:
    """<root>/spider in Spider's layout; train.json records carry Spider's extra fields, including
    the nested, mixed-type "sql" parse that a naive Arrow conversion chokes on."""
    spider = root / "spider"
    write_sqlite(spider / "database" / "concert" / "concert.sqlite", CONCERT_DDL)
    write_sqlite(spider / "database" / "library" / "library.sqlite", LIBRARY_DDL)
    (spider / "tables.json").write_text(json.dumps([CONCERT_ENTRY, LIBRARY_ENTRY, ORCHESTRA_ENTRY]))
    records = [dict(r, query_toks=r["query"].split(), sql={"select": [False, [[3, [0, [0, 0, False], None]]]]})
               for r in SPIDER_RECORDS]
    (spider / "train.json").write_text(json.dumps(records, indent=2))
    return spider


SHOP_DDL = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, `Customer Name` TEXT, segment TEXT, notes TEXT);
CREATE TABLE purchases (
    id INTEGER PRIMARY KEY, customer_id INTEGER, amount REAL, purchase_date DATE,
    FOREIGN KEY (customer_id) REFERENCES customers(id)
);
INSERT INTO customers VALUES (1, 'Ana Silva', 'SME', NULL), (2, 'Ben Okafor', 'LAM', 'Pays late,
asks for the manager every single time he calls us'), (3, 'Chen Wei', 'SME', 'Loyal');
INSERT INTO purchases VALUES (1, 1, 12.5, '2024-01-03'), (2, 2, 80.0, '2024-02-11'), (3, 2, 7.25, '2024-03-09'),
    (4, 3, 55.0, '2024-03-30');
"""
BIRD_RECORDS = [
    {"question_id": 0, "db_id": "shop", "question": "How many customers are small businesses?",
     "evidence": "small businesses refers to segment = 'SME'", "SQL": "SELECT count(*) FROM customers WHERE segment = 'SME'",
     "difficulty": "simple"},
    {"question_id": 1, "db_id": "shop", "question": "What is the total amount of all purchases?", "evidence": "",
     "SQL": "SELECT sum(amount) FROM purchases", "difficulty": "simple"},
    {"question_id": 2, "db_id": "shop", "question": "Which customer spent the most?",
     "evidence": "spent the most refers to MAX(SUM(amount)); customer refers to `Customer Name`",
     "SQL": "SELECT T1.`Customer Name` FROM customers AS T1 JOIN purchases AS T2 ON T1.id = T2.customer_id "
            "GROUP BY T1.id ORDER BY sum(T2.amount) DESC LIMIT 1", "difficulty": "moderate"},
]


def write_bird_dir(root: Path) -> Path:
    """<root>/bird in BIRD's layout: train.json and dev.json (question, evidence, SQL, db_id) with
    train_databases/<db_id>/<db_id>.sqlite and dev_databases/ beside them, and dev_tables.json."""
    bird = root / "bird"
    for split in ("train", "dev"):
        write_sqlite(bird / f"{split}_databases" / "shop" / "shop.sqlite", SHOP_DDL)
        (bird / f"{split}.json").write_text(json.dumps(BIRD_RECORDS, indent=2))
    (bird / "dev_tables.json").write_text(json.dumps([spider_tables_entry(
        "shop", {"customers": [("id", "number"), ("Customer Name", "text"), ("segment", "text"), ("notes", "text")],
                 "purchases": [("id", "number"), ("customer_id", "number"), ("amount", "number"),
                               ("purchase_date", "time")]},
        primary=[("customers", "id"), ("purchases", "id")],
        foreign=[(("purchases", "customer_id"), ("customers", "id"))])]))
    return bird


def write_spider_csv(path: Path) -> Path:
    """Seed 000's CSV: an unnamed index column, then db_id, query, question and token columns."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["", "db_id", "query", "question", "query_toks", "query_toks_no_value", "question_toks"])
        for i, r in enumerate(SPIDER_RECORDS[:3]):
            toks = str(r["query"].split())
            writer.writerow([i, r["db_id"], r["query"], r["question"], toks, toks.lower(), str(r["question"].split())])
    return path


def write_all_formats(root: Path) -> dict[str, dict]:
    """name -> load_examples kwargs, for every supported format."""
    spider = write_spider_dir(root)
    return {
        "spider-json": {"source": str(spider / "train.json")},
        "spider-csv": {"source": str(write_spider_csv(root / "train.csv")), "db_dir": str(spider / "database"),
                       "tables": str(spider / "tables.json")},
        "chat-jsonl": {"source": str(write_jsonl(root / "chat.jsonl", CHAT_RECORDS))},
        "alpaca-jsonl": {"source": str(write_jsonl(root / "alpaca.jsonl", ALPACA_RECORDS))},
        "prompt-completion": {"source": str(write_jsonl(root / "pc.jsonl", PROMPT_COMPLETION_RECORDS))},
    }


def user_prompt(question: str, schema: str | None) -> str:
    schema_part = f"\n\n<SCHEMA>\n{schema}\n</SCHEMA>" if schema else ""
    return f"{INSTRUCTION}{schema_part}\n\n<USER_QUERY>\n{question}\n</USER_QUERY>"


# --- prompts and schemas -------------------------------------------------------------------------


def test_prompt_is_seed_000s_without_schema_and_gains_the_ddl_with_it():
    assert SYSTEM_PROMPT == ("You are a text to SQL query translator. Users will ask you questions in English "
                             "and you will generate a SQL query.")
    plain = sql_messages("How many heads of the departments are older than 56 ?", None, "SELECT 1")
    assert plain[1]["content"] == (
        "Given the <USER_QUERY>, generate the corresponding SQL command to retrieve the desired data, "
        "considering the query's syntax, semantics, and schema constraints.\n\n"
        "<USER_QUERY>\nHow many heads of the departments are older than 56 ?\n</USER_QUERY>")
    assert [m["role"] for m in plain] == ["system", "user", "assistant"]
    with_schema = sql_messages("Q?", "CREATE TABLE t (a INT)", None)
    assert [m["role"] for m in with_schema] == ["system", "user"]
    assert with_schema[1]["content"] == (INSTRUCTION + "\n\n<SCHEMA>\nCREATE TABLE t (a INT)\n</SCHEMA>"
                                         "\n\n<USER_QUERY>\nQ?\n</USER_QUERY>")


def test_ddl_from_sqlite_is_compact_and_reads_without_writing(tmp_path):
    db = tmp_path / "concert.sqlite"
    write_sqlite(db, CONCERT_DDL)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    assert ddl_from_sqlite(db) == CONCERT_COMPACT
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["concert.sqlite"]  # no journal left behind

    missing = tmp_path / "missing.sqlite"
    with pytest.raises(ValueError, match="database not found"):
        ddl_from_sqlite(missing)
    assert not missing.exists()


def _structure(conn: sqlite3.Connection) -> dict:
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")]
    return {
        t: ([(r[1], r[5]) for r in conn.execute(f"PRAGMA table_info({t})")],  # (column, position in PK)
            sorted((r[3], r[2], r[4]) for r in conn.execute(f"PRAGMA foreign_key_list({t})")))
        for t in tables
    }


@pytest.mark.parametrize("entry, ddl", [(CONCERT_ENTRY, CONCERT_DDL), (LIBRARY_ENTRY, LIBRARY_DDL)])
def test_ddl_from_tables_json_has_the_same_tables_keys_and_references_as_the_database(entry, ddl):
    generated = ddl_from_tables_json(entry)
    assert len(generated.splitlines()) == len(entry["table_names_original"])
    original, rebuilt = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    original.executescript(ddl)
    rebuilt.executescript(generated.replace("\n", ";\n"))
    assert _structure(rebuilt) == _structure(original)


def test_ddl_from_tables_json_exact_text():
    assert ddl_from_tables_json(ORCHESTRA_ENTRY) == ORCHESTRA_COMPACT
    assert ddl_from_tables_json(LIBRARY_ENTRY).splitlines()[2] == (
        "CREATE TABLE book_author (book_id NUMERIC, author_id NUMERIC, PRIMARY KEY (book_id, author_id), "
        "FOREIGN KEY (book_id) REFERENCES book(book_id), FOREIGN KEY (author_id) REFERENCES author(author_id))")


# --- loading every format ------------------------------------------------------------------------


def test_spider_json_gets_schemas_from_sqlite_then_tables_json(tmp_path):
    spider = write_spider_dir(tmp_path)
    data = load_examples(str(spider / "train.json"))
    assert data.column_names == ["messages", "db_id", "answer"]
    assert data["db_id"] == [r["db_id"] for r in SPIDER_RECORDS]
    assert data["answer"] == [r["query"].strip() for r in SPIDER_RECORDS]
    schemas = {"concert": CONCERT_COMPACT, "library": ddl_from_sqlite(spider / "database/library/library.sqlite"),
               "orchestra": ORCHESTRA_COMPACT}
    for row, record in zip(data, SPIDER_RECORDS):
        assert row["messages"] == [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user_prompt(record["question"], schemas[record["db_id"]])},
            {"role": "assistant", "content": record["query"].strip()},
        ]
    # A Spider-layout directory with a split name loads the same file.
    assert load_examples(str(spider), "train").to_list() == data.to_list()


def test_spider_without_schema_is_seed_000s_prompt(tmp_path):
    spider = write_spider_dir(tmp_path)
    data = load_examples(str(spider / "train.json"), schema=False)
    assert [m[1]["content"] for m in data["messages"]] == [user_prompt(r["question"], None) for r in SPIDER_RECORDS]


def test_bundled_source_reads_the_benchmark_directory(tmp_path, monkeypatch):
    spider = write_spider_dir(tmp_path)
    (spider / "test.json").write_text(json.dumps(SPIDER_RECORDS[:2]))
    from data.sqlbench import split_name

    fake = types.ModuleType("data.sqlbench")
    fake.bundled_benchmark_dir = lambda: spider
    fake.split_name = split_name
    monkeypatch.setitem(sys.modules, "data.sqlbench", fake)
    data = load_examples("bundled", "test")
    assert data["answer"] == [r["query"].strip() for r in SPIDER_RECORDS[:2]]
    assert data["messages"][0][1]["content"] == user_prompt(SPIDER_RECORDS[0]["question"], CONCERT_COMPACT)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_examples("bundled", "dev")


SHOP_COMPACT = (
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, `Customer Name` TEXT, segment TEXT, notes TEXT)\n"
    "CREATE TABLE purchases (id INTEGER PRIMARY KEY, customer_id INTEGER, amount REAL, purchase_date DATE, "
    "FOREIGN KEY (customer_id) REFERENCES customers(id))")


def test_bird_records_get_the_schema_from_their_databases_and_the_evidence(tmp_path):
    bird = write_bird_dir(tmp_path)
    data = load_examples(str(bird / "train.json"))
    assert data["db_id"] == ["shop"] * 3 and data["answer"] == [r["SQL"] for r in BIRD_RECORDS]
    assert data["messages"][0][1]["content"] == (
        f"{INSTRUCTION}\n\n<SCHEMA>\n{SHOP_COMPACT}\n</SCHEMA>\n\n"
        "<EVIDENCE>\nsmall businesses refers to segment = 'SME'\n</EVIDENCE>\n\n"
        "<USER_QUERY>\nHow many customers are small businesses?\n</USER_QUERY>")
    # an empty evidence adds nothing: the prompt is the Spider one
    assert data["messages"][1][1]["content"] == user_prompt(BIRD_RECORDS[1]["question"], SHOP_COMPACT)
    # a BIRD directory with a split name reads <split>.json with <split>_databases/ beside it
    dev = load_examples(str(bird), "dev")
    assert [m[1]["content"] for m in dev["messages"]] == [m[1]["content"] for m in data["messages"]]
    (bird / "dev_databases" / "shop" / "shop.sqlite").unlink()  # then dev_tables.json gives the schema
    from_tables = load_examples(str(bird / "dev.json"))
    assert "CREATE TABLE customers (id NUMERIC, \"Customer Name\" TEXT" in from_tables["messages"][0][1]["content"]


def test_sample_rows_go_under_each_create_table(tmp_path):
    bird = write_bird_dir(tmp_path)
    data = load_examples(str(bird / "train.json"), sample_rows=2)
    schema = data["messages"][1][1]["content"].split("<SCHEMA>\n")[1].split("\n</SCHEMA>")[0]
    lines = SHOP_COMPACT.splitlines()
    assert schema == "\n".join([
        lines[0],
        "/* 2 example rows:",
        "id | Customer Name | segment | notes",
        "1 | Ana Silva | SME | NULL",
        "2 | Ben Okafor | LAM | Pays late, asks for the manager every... */",  # one line, cut at 40 characters
        lines[1],
        "/* 2 example rows:",
        "id | customer_id | amount | purchase_date",
        "1 | 1 | 12.5 | 2024-01-03",
        "2 | 2 | 80.0 | 2024-02-11 */",
    ])
    # asked for more rows than a table has: all of them, and the comment says how many
    more = ddl_from_sqlite(bird / "train_databases" / "shop" / "shop.sqlite", 9).splitlines()
    assert len(more) == (1 + 2 + 3) + (1 + 2 + 4) and (more[1], more[7]) == ("/* 3 example rows:", "/* 4 example rows:")
    # rows need the database file, a text-to-SQL record and a schema in the prompt
    spider = write_spider_dir(tmp_path)
    with pytest.raises(ValueError, match="--sample-rows needs the database of db_id 'orchestra'"):
        load_examples(str(spider / "train.json"), sample_rows=1)
    with pytest.raises(ValueError, match="--sample-rows applies only to text-to-SQL data"):
        load_examples(str(write_jsonl(tmp_path / "chat.jsonl", CHAT_RECORDS)), sample_rows=1)
    with pytest.raises(ValueError, match="it needs the schema in the prompt"):
        load_examples(str(bird / "train.json"), schema=False, sample_rows=1)
    with pytest.raises(ValueError, match="--sample-rows must be >= 0"):
        load_examples(str(bird / "train.json"), sample_rows=-1)


def test_spider_csv_adds_the_schema_only_when_told_where(tmp_path):
    spider = write_spider_dir(tmp_path)
    path = write_spider_csv(tmp_path / "train.csv")
    plain = load_examples(str(path))
    assert plain["db_id"] == ["concert", "concert", "library"]
    assert plain["messages"][2][1]["content"] == user_prompt(SPIDER_RECORDS[2]["question"], None)
    from_db = load_examples(str(path), db_dir=str(spider / "database"))
    assert from_db["messages"][0][1]["content"] == user_prompt(SPIDER_RECORDS[0]["question"], CONCERT_COMPACT)
    from_tables = load_examples(str(path), tables=str(spider / "tables.json"))
    assert from_tables["messages"][0][1]["content"] == user_prompt(
        SPIDER_RECORDS[0]["question"], ddl_from_tables_json(CONCERT_ENTRY))


def test_chat_records_keep_their_messages_and_add_no_system_prompt(tmp_path):
    data = load_examples(str(write_jsonl(tmp_path / "chat.jsonl", CHAT_RECORDS)))
    assert data["messages"] == [r["messages"] for r in CHAT_RECORDS]
    assert data["answer"] == [r["messages"][-1]["content"] for r in CHAT_RECORDS]
    assert data["db_id"] == ["", ""]


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_alpaca_records_join_instruction_and_input(tmp_path, suffix):
    path = tmp_path / f"alpaca{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(ALPACA_RECORDS))
    else:
        write_jsonl(path, ALPACA_RECORDS)
    data = load_examples(str(path))
    assert data["messages"] == [
        [{"role": "user", "content": "Write SQL that counts the books."},
         {"role": "assistant", "content": "SELECT count(*) FROM book"}],
        [{"role": "user", "content": "Write SQL for the question.\n\nWhich titles start with A?"},
         {"role": "assistant", "content": "SELECT title FROM book WHERE title LIKE 'A%'"}],
    ]


def test_prompt_completion_records(tmp_path):
    data = load_examples(str(write_jsonl(tmp_path / "pc.jsonl", PROMPT_COMPLETION_RECORDS)))
    assert data["messages"] == [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["completion"]}]
                                for r in PROMPT_COMPLETION_RECORDS]
    assert data["answer"] == [r["completion"] for r in PROMPT_COMPLETION_RECORDS]


# --- errors: one line, naming what is wrong ------------------------------------------------------


def _one_line_error(match: str, **kwargs) -> str:
    with pytest.raises(ValueError, match=match) as info:
        load_examples(**kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_format_names_the_file_and_keys(tmp_path):
    path = write_jsonl(tmp_path / "odd.jsonl", [{"text": "hello", "label": 1}])
    message = _one_line_error("unknown record format", source=str(path))
    assert str(path) in message and "['label', 'text']" in message


def test_mixed_formats_are_refused(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [PROMPT_COMPLETION_RECORDS[0], ALPACA_RECORDS[1]])
    message = _one_line_error("record 1 is not prompt-completion", source=str(path))
    assert str(path) in message and "'instruction'" in message


@pytest.mark.parametrize("records, match", [
    ([PROMPT_COMPLETION_RECORDS[0], {"prompt": "Count.", "completion": "  "}], "record 1: empty answer"),
    ([ALPACA_RECORDS[0], ALPACA_RECORDS[1], dict(ALPACA_RECORDS[0], output="")], "record 2: empty answer"),
    ([CHAT_RECORDS[0], {"messages": CHAT_RECORDS[0]["messages"][:2]}], "record 1: the last message must be the assistant"),
    ([dict(SPIDER_RECORDS[0], query="")], "record 0: empty answer"),
    # Wrong types are refused with the record number, not stringified and trained on.
    ([PROMPT_COMPLETION_RECORDS[0], {"prompt": "Count.", "completion": 5}], "record 1: 'completion' must be a string, got int 5"),
    ([dict(SPIDER_RECORDS[0], db_id=7)], "record 0: 'db_id' must be a string, got int 7"),
    ([{"messages": "hello"}], "record 0: 'messages' must be a non-empty list"),
    ([CHAT_RECORDS[0], {"messages": [{"content": "hi"}, {"role": "assistant", "content": "x"}]}],
     "record 1: message 0 has no 'role' string"),
])
def test_bad_records_name_their_index(tmp_path, records, match):
    _one_line_error(match, source=str(write_jsonl(tmp_path / "bad.jsonl", records)))


@pytest.mark.parametrize("name, content, match", [
    ("zero.jsonl", b"", r"no examples in .*zero.jsonl: the file is empty"),
    ("blank.jsonl", b"\n  \n", r"no examples in .*blank.jsonl: the file is empty"),
    ("list.json", b"[]", r"no examples in .*list.json$"),
    ("header.csv", b"question,query\n", r"no examples in .*header.csv$"),
    # 0xe4 is a Latin-1 'a-umlaut': the offset is where a user's hex editor finds it.
    ("latin.jsonl", b'{"prompt": "a", "completion": "\xe4"}\n', r"latin.jsonl is not UTF-8 text: byte 0xe4 at offset 31$"),
])
def test_empty_or_undecodable_files_are_one_line(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    _one_line_error(match, source=str(tmp_path / name))


def test_a_character_cut_by_the_read_buffer_is_not_an_error(tmp_path):
    path = tmp_path / "long.jsonl"
    # The 3-byte character straddles the 1 MiB chunk boundary: an incremental decoder carries it over.
    prefix = '{"prompt": "' + "a" * ((1 << 20) - 13)
    path.write_text(prefix + '\u20ac", "completion": "SELECT 1"}\n', encoding="utf-8")
    assert path.read_bytes()[(1 << 20) - 1:(1 << 20) + 2] == "\u20ac".encode()
    examples = load_examples(source=str(path))
    assert examples[0]["answer"] == "SELECT 1"


def test_missing_or_unsupported_sources(tmp_path):
    _one_line_error("data file not found", source=str(tmp_path / "nope.jsonl"))
    (tmp_path / "data.txt").write_text("SELECT 1")
    _one_line_error("unsupported data file", source=str(tmp_path / "data.txt"))
    (tmp_path / "broken.jsonl").write_text('{"prompt": "a", "completion": \n')
    _one_line_error("cannot read", source=str(tmp_path / "broken.jsonl"))


def test_schema_sources_must_exist_and_cover_every_database(tmp_path):
    spider = write_spider_dir(tmp_path)
    csv_path = write_spider_csv(tmp_path / "train.csv")
    _one_line_error("tables file not found", source=str(csv_path), tables=str(tmp_path / "no_tables.json"))
    _one_line_error("database directory not found", source=str(csv_path), db_dir=str(tmp_path / "no_db"))
    # library has a SQLite file but no tables.json entry is needed; orchestra has neither here.
    (spider / "tables.json").unlink()
    _one_line_error("no schema for db_id 'orchestra'", source=str(spider / "train.json"))
    chat = write_jsonl(tmp_path / "chat.jsonl", CHAT_RECORDS)
    _one_line_error("apply only to Spider- or BIRD-format data", source=str(chat), tables=str(csv_path))
