"""Training data in, chat conversations out: every source becomes rows of
{"messages": [...], "db_id": str, "answer": str}, the last message being the assistant's answer.

Sources:
  "bundled"                 the generated benchmark (data/sqlbench), split = train | test | heldout_db |
                            heldout_domain (heldout: another name of heldout_domain)
  a directory               Spider's layout: <dir>/<split>.json, tables.json, database/; or BIRD's:
                            <dir>/<split>.json, <split>_tables.json, <split>_databases/
  *.csv                     Spider CSV (db_id, query, question, ...), as in seed 000
  *.json / *.jsonl          Spider records {db_id, question, query}, BIRD records {db_id, question,
                            evidence, SQL}, chat records {messages}, {prompt, completion} or alpaca
                            {instruction, input, output}

Text-to-SQL records get the schema DDL in the prompt when it can be found: from
<db_dir>/<db_id>/<db_id>.sqlite (preferred: the real CREATE statements; with sample_rows, a few rows
of each table under it) or a tables.json entry; BIRD's evidence goes into the prompt too. Beside a
data file, <db_dir> is database/ (Spider) or <stem>_databases/ (BIRD: train.json ->
train_databases/), and tables.json or <stem>_tables.json.
Files are read with `datasets` (load_dataset("csv"/"json", data_files=...)), never from the hub."""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Callable

import datasets

from data.prompts import sql_messages
from data.schema import ddl_from_sqlite, ddl_from_tables_json

# Format name -> keys that identify it (a record must have all of them).
FORMATS = {
    "spider": {"db_id", "question", "query"},
    "bird": {"db_id", "question", "SQL"},
    "chat": {"messages"},
    "prompt-completion": {"prompt", "completion"},
    "alpaca": {"instruction", "output"},
}


def detect_format(keys: set[str], where: str) -> str:
    """The one format whose keys are all present; none or several -> ValueError."""
    found = [name for name, required in FORMATS.items() if required <= keys]
    if len(found) > 1:
        raise ValueError(f"{where}: ambiguous record format, keys {sorted(keys)} fit {' and '.join(found)}")
    if not found:
        known = "; ".join(f"{n}: {', '.join(sorted(k))}" for n, k in FORMATS.items())
        raise ValueError(f"{where}: unknown record format, keys {sorted(keys)} (known formats: {known})")
    return found[0]


class SchemaLookup:
    """db_id -> compact DDL, from the SQLite file when present, else the tables.json entry; cached.
    With sample_rows, the SQLite file is required (tables.json holds no rows)."""

    def __init__(self, tables: Path | None, db_dir: Path | None, sample_rows: int = 0):
        self.tables, self.db_dir, self.sample_rows = tables, db_dir, sample_rows
        try:
            self.entries = {e["db_id"]: e for e in json.loads(tables.read_text())} if tables else {}
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"cannot read {tables} as Spider tables.json: {e!r}") from None
        self.cache: dict[str, str] = {}

    def __call__(self, db_id: str) -> str:
        if db_id not in self.cache:
            db_path = self.db_dir / db_id / f"{db_id}.sqlite" if self.db_dir else None
            if db_path is not None and db_path.is_file():
                self.cache[db_id] = ddl_from_sqlite(db_path, self.sample_rows)
            elif self.sample_rows:
                raise ValueError(f"--sample-rows needs the database of db_id {db_id!r}: "
                                 f"{db_path or 'no database directory'} not found")
            elif db_id in self.entries:
                self.cache[db_id] = ddl_from_tables_json(self.entries[db_id])
            else:
                looked = " nor ".join(str(p) for p in (self.db_dir, self.tables) if p is not None)
                raise ValueError(f"no schema for db_id {db_id!r} in {looked}")
        return self.cache[db_id]


def beside(data_file: Path, spider_name: str, bird_suffix: str) -> Path:
    """A file or directory next to a data file: Spider's name (database/, tables.json) when it
    exists, else BIRD's (<stem>_databases/, <stem>_tables.json) when that exists, else Spider's."""
    spider = data_file.parent / spider_name
    bird = data_file.parent / f"{data_file.stem}{bird_suffix}"
    return bird if not spider.exists() and bird.exists() else spider


def default_database_dir(data_file: Path) -> Path:
    return beside(data_file, "database", "_databases")


def spider_schema_lookup(data_file: Path, tables: str | None, db_dir: str | None,
                         sample_rows: int = 0) -> SchemaLookup | None:
    """Schema sources for a Spider- or BIRD-format file: the given ones (which must exist), else
    tables.json and database/ (or BIRD's names) beside the file when present; None when there is neither."""
    tables_path = Path(tables) if tables else beside(data_file, "tables.json", "_tables.json")
    database_dir = Path(db_dir) if db_dir else default_database_dir(data_file)
    if tables and not tables_path.is_file():
        raise ValueError(f"tables file not found: {tables_path}")
    if db_dir and not database_dir.is_dir():
        raise ValueError(f"database directory not found: {database_dir}")
    found_tables = tables_path if tables_path.is_file() else None
    found_dir = database_dir if database_dir.is_dir() else None
    if found_tables is None and found_dir is None:
        return None
    return SchemaLookup(found_tables, found_dir, sample_rows)


def _check_text(path: Path) -> None:
    """The file is UTF-8 text with something in it; else one line naming the file (and the byte)."""
    decoder, offset, blank = codecs.getincrementaldecoder("utf-8")(), 0, True
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            pending = decoder.getstate()[0]  # bytes of a character cut by the previous chunk
            try:
                blank = not decoder.decode(chunk, final=not chunk).strip() and blank
            except UnicodeDecodeError as e:
                at = offset - len(pending) + e.start
                raise ValueError(f"{path} is not UTF-8 text: byte 0x{(pending + chunk)[e.start]:02x} at offset "
                                 f"{at}") from None
            if not chunk:
                break
            offset += len(chunk)
    if blank:
        raise ValueError(f"no examples in {path}: the file is empty")


def _read_rows(path: Path) -> list[dict]:
    _check_text(path)
    builder = "csv" if path.suffix == ".csv" else "json"
    try:
        rows = datasets.load_dataset(builder, data_files=str(path), split="train").to_list()
    except Exception as e:
        while e.__cause__ is not None:  # datasets wraps the parser's error: report the parser's
            e = e.__cause__
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if "corresponds to no data" in first_line:  # `[]`, or a CSV header with no row under it
            raise ValueError(f"no examples in {path}") from None
        raise ValueError(f"cannot read {path}: {first_line}") from None
    if builder == "csv":  # CSV has no types: a cell is text, whatever pandas made of it
        rows = [{k: None if v is None else str(v) for k, v in row.items()} for row in rows]
    return rows


def _present_keys(record: dict) -> set[str]:
    # datasets unifies the columns of all records; a key a record lacks comes back as None.
    return {k for k, v in record.items() if v is not None}


def _text(record: dict, key: str, where: str) -> str:
    """record[key] as given: a string. A number or a list is refused, not stringified and trained on."""
    value = record[key]
    if not isinstance(value, str):
        raise ValueError(f"{where}: {key!r} must be a string, got {type(value).__name__} {json.dumps(value)[:60]}")
    return value


def _answer(record: dict, key: str, where: str) -> str:
    answer = _text(record, key, where).strip()
    if not answer:
        raise ValueError(f"{where}: empty answer")
    return answer


def _chat(record: dict, where: str) -> tuple[list[dict], str]:
    if not isinstance(record["messages"], list) or not record["messages"]:
        raise ValueError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    messages = []
    for j, m in enumerate(record["messages"]):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ValueError(f"{where}: message {j} has no 'role' string (each message is {{role, content}})")
        content = "" if m.get("content") is None else _text(m, "content", f"{where} message {j}")
        messages.append({"role": m["role"], "content": content})
    if messages[-1]["role"] != "assistant":
        raise ValueError(f"{where}: the last message must be the assistant's answer")
    # Stripped: Llama-3-style templates trim it anyway, and trailing spaces are nothing to learn.
    messages[-1]["content"] = _answer(messages[-1], "content", where)
    return messages, messages[-1]["content"]


def _prompt_completion(record: dict, where: str) -> tuple[list[dict], str]:
    answer = _answer(record, "completion", where)
    return [{"role": "user", "content": _text(record, "prompt", where)}, {"role": "assistant", "content": answer}], answer


def _alpaca(record: dict, where: str) -> tuple[list[dict], str]:
    answer = _answer(record, "output", where)
    prompt = _text(record, "instruction", where)
    if record.get("input"):
        prompt += "\n\n" + _text(record, "input", where)
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], answer


CONVERTERS: dict[str, Callable[[dict, str], tuple[list[dict], str]]] = {
    "chat": _chat,
    "prompt-completion": _prompt_completion,
    "alpaca": _alpaca,
}


def _sql_columns(records: list[dict], path: Path, schema_of: SchemaLookup | None, kind: str) -> dict[str, list]:
    """Spider records {db_id, question, query}, or BIRD's {db_id, question, evidence, SQL}."""
    out: dict[str, list] = {"messages": [], "db_id": [], "answer": []}
    for i, record in enumerate(records):
        where = f"{path} record {i}"
        answer = _answer(record, "SQL" if kind == "bird" else "query", where)
        db_id = _text(record, "db_id", where)
        schema = schema_of(db_id) if schema_of is not None else None
        evidence = _text(record, "evidence", where) if kind == "bird" and record.get("evidence") is not None else None
        out["messages"].append(sql_messages(_text(record, "question", where), schema, answer, evidence))
        out["db_id"].append(db_id)
        out["answer"].append(answer)
    return out


def _records(source: str, split: str) -> tuple[Path, list[dict], str]:
    """(the file, its records, their format) of `source` as load_examples takes it."""
    if source == "bundled":
        from data.sqlbench import bundled_benchmark_dir, split_name

        split = split_name(split)  # an unknown split fails before the corpus is built
        source = str(bundled_benchmark_dir())
    path = Path(source)
    if path.is_dir():
        path = path / f"{split}.json"
    if not path.is_file():
        raise ValueError(f"data file not found: {path}")
    if path.suffix not in (".csv", ".json", ".jsonl"):
        raise ValueError(f"unsupported data file {path}: expected .csv, .json or .jsonl")

    records = _read_rows(path)
    if not records:
        raise ValueError(f"no examples in {path}")
    kind = detect_format(_present_keys(records[0]), f"{path} record 0")
    for i, record in enumerate(records):  # a file mixing formats is an error, not a guess per record
        if detect_format(_present_keys(record), f"{path} record {i}") != kind:
            raise ValueError(f"{path}: record {i} is not {kind} like record 0 (keys {sorted(_present_keys(record))})")
    return path, records, kind


def record_format(source: str, split: str = "train") -> str:
    """The format of `source`'s records (a key of FORMATS), read as load_examples reads them: "spider"
    and "bird" are text-to-SQL that eval.evaluate can score."""
    return _records(source, split)[2]


def load_examples(
    source: str,
    split: str = "train",
    *,
    schema: bool = True,
    tables: str | None = None,
    db_dir: str | None = None,
    require_schema: bool = False,
    sample_rows: int = 0,
) -> datasets.Dataset:
    """Rows of {"messages", "db_id", "answer"}; `split` names the file only for "bundled" and
    Spider- or BIRD-layout directories. schema=False leaves the DDL out of text-to-SQL prompts; with
    `require_schema` a Spider or BIRD file whose schema cannot be found is an error rather than a note
    (training: its prompts would differ from the evaluation's, which reads the databases);
    sample_rows > 0 puts that many rows of each table under its CREATE TABLE."""
    if sample_rows < 0:
        raise ValueError(f"--sample-rows must be >= 0, got {sample_rows}")
    if sample_rows and not schema:
        raise ValueError("--sample-rows shows rows under the schema: it needs the schema in the prompt")
    path, records, kind = _records(source, split)
    print(f"{path}: {len(records)} {kind} records")

    if kind in ("spider", "bird"):
        schema_of = spider_schema_lookup(path, tables, db_dir, sample_rows) if schema else None
        if schema and schema_of is None and require_schema:
            raise ValueError(f"{path}: no schema for its text-to-SQL prompts (no tables.json or database/ beside "
                             "it): give --db-dir DIR (holding <db_id>/<db_id>.sqlite) or --tables FILE, as to "
                             "eval.evaluate, or --no-schema to leave the schema out")
        if schema and schema_of is None:
            if sample_rows:
                raise ValueError(f"--sample-rows needs the databases: no database directory beside {path} "
                                 "(give --db-dir)")
            print(f"{path}: no tables.json or database/ beside it: prompts carry no schema")
        return datasets.Dataset.from_dict(_sql_columns(records, path, schema_of, kind))

    if tables or db_dir:
        raise ValueError(f"{path} holds {kind} records: tables/db_dir apply only to Spider- or BIRD-format data")
    if sample_rows:
        raise ValueError(f"{path} holds {kind} records: --sample-rows applies only to text-to-SQL data with databases")
    columns: dict[str, list] = {"messages": [], "db_id": [], "answer": []}
    convert = CONVERTERS[kind]
    for i, record in enumerate(records):
        messages, answer = convert(record, f"{path} record {i}")
        columns["messages"].append(messages)
        columns["db_id"].append(record["db_id"] if isinstance(record.get("db_id"), str) else "")
        columns["answer"].append(answer)
    return datasets.Dataset.from_dict(columns)
