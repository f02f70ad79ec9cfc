"""How a benchmark domain is described: tables, typed columns with a natural phrase each, and the
seeded row generator. The database writer (build.py) and the question templates (templates.py)
both read these descriptions, so a column's SQL name and its wording in questions never drift.

Column kinds decide what a template may do with a column:
  key       integer primary key (never asked about)
  label     the unique human name of a row ("name", "title"); what questions ask to list
  category  text with a handful of repeated values (city, genre): equality filters, GROUP BY
  measure   a number (age, price): comparisons, ordering, avg/min/max (sum only if `total`)
  year      an integer year: equality, comparisons, ordering, min/max
  fk        integer foreign key to another table's primary key"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from data.sqlbench.values import Maker, weighted

ACTIVE_PARENT_SHARE = 0.85  # children point at 85% of parents: the rest answer "... that have no X"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    sql_type: str  # INTEGER | REAL | TEXT
    phrase: str  # how questions say it: birth_year -> "birth year"
    make: Callable[..., Any] | None = None  # label: (rng, n) -> n distinct; else (rng) or (rng, row)
    references: str | None = None  # fk: parent table
    rel: str = ""  # fk: child-to-parent wording, concert "held at" a stadium
    total: bool = False  # measure: sum() means something (price, capacity), not for ages
    derived: bool = False  # make(rng, row) sees the row's earlier columns


@dataclass(frozen=True)
class Table:
    name: str
    singular: str
    plural: str
    n_rows: int
    columns: tuple[Column, ...]
    # Many-to-many tables: (fk to A, fk to B, "A <wording> the B x", "B <wording> the A y"),
    # e.g. ("singer_id", "concert_id", "that performed in", "featuring").
    link: tuple[str, str, str, str] | None = None

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def of_kind(self, *kinds: str) -> list[Column]:
        return [c for c in self.columns if c.kind in kinds]

    @property
    def label(self) -> Column | None:
        return next(iter(self.of_kind("label")), None)

    @property
    def primary_key(self) -> list[Column]:
        keys = self.of_kind("key")
        return keys if keys or self.link is None else [self.column(n) for n in self.link[:2]]


@dataclass(frozen=True)
class Domain:
    db_id: str
    seed: int
    tables: tuple[Table, ...]  # parents before children

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)


@dataclass
class Database:
    """A domain with its generated rows: {table: [{column: value}]}."""

    domain: Domain
    rows: dict[str, list[dict]] = field(default_factory=dict)

    def values(self, table: str, column: str) -> list:
        return [r[column] for r in self.rows[table]]


# ----------------------------------------------------------------------------- column helpers

def _phrase(name: str, phrase: str | None) -> str:
    return phrase or name.replace("_", " ")


def pk(name: str) -> Column:
    return Column(name, "key", "INTEGER", _phrase(name, None))


def label(name: str, maker: Maker, phrase: str | None = None) -> Column:
    return Column(name, "label", "TEXT", _phrase(name, phrase), maker)


def cat(name: str, pool: list, phrase: str | None = None, skew: float = 0.7) -> Column:
    return Column(name, "category", "TEXT", _phrase(name, phrase), weighted(pool, skew))


def num(name: str, low: int, high: int, step: int = 1, phrase: str | None = None,
        total: bool = False) -> Column:
    return Column(name, "measure", "INTEGER", _phrase(name, phrase),
                  lambda rng: rng.randrange(low, high + 1, step), total=total)


def real(name: str, low: float, high: float, digits: int = 1, phrase: str | None = None,
         total: bool = False) -> Column:
    return Column(name, "measure", "REAL", _phrase(name, phrase),
                  lambda rng: round(rng.uniform(low, high), digits), total=total)


def year(name: str, low: int, high: int, phrase: str | None = None) -> Column:
    return Column(name, "year", "INTEGER", _phrase(name, phrase), lambda rng: rng.randint(low, high))


def fk(name: str, parent: str, rel: str, phrase: str | None = None) -> Column:
    return Column(name, "fk", "INTEGER", _phrase(name, phrase), references=parent, rel=rel)


def derived(name: str, kind: str, sql_type: str, fn: Callable[[random.Random, dict], Any],
            phrase: str | None = None) -> Column:
    """A column computed from the row so far, e.g. a team's city from its name."""
    return Column(name, kind, sql_type, _phrase(name, phrase), fn, derived=True)


def pluralize(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in tuple("aeiou"):
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    return word + "s"


def table(name: str, n_rows: int, *columns: Column, singular: str | None = None,
          plural: str | None = None, link: tuple[str, str, str, str] | None = None) -> Table:
    singular = singular or name.replace("_", " ")
    return Table(name, singular, plural or pluralize(singular), n_rows, columns, link)


# ----------------------------------------------------------------------------- rows

def generate_rows(domain: Domain) -> Database:
    """Seeded rows for every table, parents first; foreign keys only point at existing rows."""
    rng = random.Random(f"sqlbench:{domain.db_id}:{domain.seed}")
    db = Database(domain)
    for t in domain.tables:
        records: list[dict] = [{} for _ in range(t.n_rows)]
        link_pairs = _link_pairs(db, t, rng) if t.link else None
        for col in t.columns:
            if col.kind == "key":
                values = list(range(1, t.n_rows + 1))
            elif link_pairs is not None and col.name in t.link[:2]:
                values = [pair[t.link.index(col.name)] for pair in link_pairs]
            elif col.kind == "fk":
                pick = _parent_picker(db, domain.table(col.references), rng)
                values = [pick() for _ in records]
            elif col.kind == "label":
                values = col.make(rng, t.n_rows)
            elif col.derived:
                values = [col.make(rng, r) for r in records]
            else:
                values = [col.make(rng) for _ in records]
            for record, value in zip(records, values):
                record[col.name] = value
        db.rows[t.name] = records
    return db


def _parent_picker(db: Database, parent: Table, rng: random.Random) -> Callable[[], int]:
    """Draw parent keys from a seeded 85% subset, mildly skewed so that counts per parent differ."""
    keys = db.values(parent.name, parent.primary_key[0].name)
    active = sorted(rng.sample(keys, round(ACTIVE_PARENT_SHARE * len(keys))))
    rng.shuffle(active)
    pick = weighted(active, skew=0.4)
    return lambda: pick(rng)


def _link_pairs(db: Database, t: Table, rng: random.Random) -> list[tuple[int, int]]:
    """n distinct (a, b) key pairs, so that count(*) over a link table counts distinct partners."""
    pick_a = _parent_picker(db, db.domain.table(t.column(t.link[0]).references), rng)
    pick_b = _parent_picker(db, db.domain.table(t.column(t.link[1]).references), rng)
    pairs: dict[tuple[int, int], None] = {}  # insertion-ordered set
    for _ in range(50 * t.n_rows):
        pairs.setdefault((pick_a(), pick_b()), None)
        if len(pairs) == t.n_rows:
            return list(pairs)
    raise ValueError(f"{db.domain.db_id}.{t.name}: cannot draw {t.n_rows} distinct pairs")


# ----------------------------------------------------------------------------- schema text

def create_table_sql(t: Table) -> str:
    """Readable DDL, one column per line; it is what prompts show (read back from sqlite_master)."""
    keys = t.primary_key
    lines = []
    for c in t.columns:
        line = f"    {c.name} {c.sql_type}"
        if len(keys) == 1 and c is keys[0]:
            line += " PRIMARY KEY"
        elif c.kind in ("label", "fk"):
            line += " NOT NULL"
        lines.append(line)
    if len(keys) > 1:
        lines.append(f"    PRIMARY KEY ({', '.join(c.name for c in keys)})")
    for c in t.of_kind("fk"):
        lines.append(f"    FOREIGN KEY ({c.name}) REFERENCES {c.references} ({c.name})")
    return f"CREATE TABLE {t.name} (\n" + ",\n".join(lines) + "\n)"


def spider_tables_entry(domain: Domain) -> dict:
    """The domain in Spider's tables.json format (column index 0 is the `*` pseudo-column)."""
    originals: list[list] = [[-1, "*"]]
    phrases: list[list] = [[-1, "*"]]
    types = ["text"]
    index: dict[tuple[str, str], int] = {}
    for ti, t in enumerate(domain.tables):
        for c in t.columns:
            index[(t.name, c.name)] = len(originals)
            originals.append([ti, c.name])
            phrases.append([ti, c.phrase])
            types.append("text" if c.sql_type == "TEXT" else "number")
    return {
        "db_id": domain.db_id,
        "table_names_original": [t.name for t in domain.tables],
        "table_names": [t.name.replace("_", " ") for t in domain.tables],
        "column_names_original": originals,
        "column_names": phrases,
        "column_types": types,
        "primary_keys": [index[(t.name, c.name)] for t in domain.tables for c in t.primary_key],
        "foreign_keys": [
            [index[(t.name, c.name)], index[(c.references, c.name)]]
            for t in domain.tables for c in t.of_kind("fk")
        ],
    }
