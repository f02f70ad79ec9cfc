"""Schema composition: one database from one domain, with its rows, DDL, SQLite file and Spider entry.

compose(domain, index) draws, all from one seed:
  - a connected subset of the domain's entities (2-8 tables; an entity with two references becomes
    a link table when both parents are in), ordered parents first;
  - a subset of each entity's attributes, within a size budget (the schema is most of the prompt);
  - an identifier style (naming.py) and the names it gives every table and column;
  - rows: distinct labels, foreign keys to 80-95% of the parents (so "X that have no Y" has an
    answer) with skewed counts per parent, attribute values from the vocabulary's draws, NULLs at
    each attribute's rate.
The result carries everything the SQL grammar and the question phrasing need: per column its kind
and its wordings, per table its nouns and how it relates to its parents."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from data.sqlbench.domains import Domain, Entity, Reference, pluralize
from data.sqlbench.naming import Style, join_words, key_name, quote, sample_style
from data.sqlbench.values import distinct, weighted
from data.sqlbench.vocab import Attribute

TABLE_COUNTS = (2, 3, 4, 5, 6, 7, 8)
TABLE_WEIGHTS = (0.05, 0.14, 0.20, 0.18, 0.15, 0.14, 0.14)
# The schema is most of the prompt. Up to four tables it gets ~250 tokens (SCHEMA_BUDGET), which keeps
# prompt + answer within 512 tokens (the default --max-length); each table past the fourth adds ~37, so
# that 7-8 table schemas exist at all, and the longest questions on them pass 512 (3.5% of the training
# split; --max-length 672 keeps them). The split's mean stays near the earlier corpus's 384 tokens.
SCHEMA_BUDGET = 240  # in schema_tokens() units: SmolLM2's tokenizer gives 1.06 tokens per unit (0.96-1.21)
SCHEMA_BUDGET_PER_TABLE = 35
ROWS_PARENT = (8, 60)  # rows of a table without foreign keys
ROWS_CHILD = (30, 240)


def schema_budget(tables: int) -> int:
    return SCHEMA_BUDGET + SCHEMA_BUDGET_PER_TABLE * max(0, tables - 4)


_TYPES = {  # kind -> declared type, per style.types
    "sqlite": {"key": "INTEGER", "fk": "INTEGER", "label": "TEXT", "category": "TEXT", "text": "TEXT",
               "int": "INTEGER", "money": "REAL", "real": "REAL", "year": "INTEGER", "date": "TEXT",
               "flag": "INTEGER"},
    "ansi": {"key": "INT", "fk": "INT", "label": "VARCHAR(100)", "category": "VARCHAR(40)",
             "text": "VARCHAR(255)", "int": "INT", "money": "DECIMAL(12,2)", "real": "FLOAT", "year": "INT",
             "date": "DATE", "flag": "BOOLEAN"},
    "loose": {"key": "int", "fk": "int", "label": "text", "category": "text", "text": "text", "int": "int",
              "money": "real", "real": "real", "year": "int", "date": "datetime", "flag": "bool"},
}
_SPIDER_TYPES = {"key": "number", "fk": "number", "label": "text", "category": "text", "text": "text",
                 "int": "number", "money": "number", "real": "number", "year": "number", "date": "time",
                 "flag": "boolean"}


@dataclass
class Column:
    name: str  # as declared, unquoted
    kind: str  # key | fk | label | category | text | flag | int | money | real | year | date
    sql_type: str
    phrases: tuple[str, ...]  # how questions say it
    attribute: Attribute | None = None
    references: str | None = None  # fk: the parent table's name
    nullable: bool = False
    null_rate: float = 0.0

    @property
    def sql(self) -> str:
        return quote(self.name)


@dataclass
class ForeignKey:
    column: Column
    parent: str  # table name
    parent_key: str  # the parent's primary key column (`id` while this one is `singer_id`)
    reference: Reference  # the wordings of the relation


@dataclass
class Table:
    name: str
    entity: Entity
    columns: list[Column]
    primary_key: list[Column]  # one column, or the two foreign keys of a link table without its own
    label: Column | None
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    link_verbs: tuple[str, str] | None = None  # set when both parents of a link entity are present
    rows: list[tuple] = field(default_factory=list)

    @property
    def sql(self) -> str:
        return quote(self.name)

    @property
    def singulars(self) -> tuple[str, ...]:
        return (self.entity.noun,) + self.entity.synonyms

    @property
    def plurals(self) -> tuple[str, ...]:
        return (self.entity.plural,) + tuple(pluralize(s) for s in self.entity.synonyms)

    def index(self, column: Column) -> int:
        return next(i for i, c in enumerate(self.columns) if c is column)

    def values(self, column: Column) -> list:
        """The column's non-NULL values, row order."""
        i = self.index(column)
        return [r[i] for r in self.rows if r[i] is not None]

    def of_kind(self, *kinds: str) -> list[Column]:
        return [c for c in self.columns if c.kind in kinds]

    def foreign_key(self, parent: str) -> ForeignKey | None:
        return next((f for f in self.foreign_keys if f.parent == parent), None)


@dataclass
class Database:
    db_id: str
    domain: str
    style: Style
    tables: list[Table]  # parents before children

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)


# ----------------------------------------------------------------------------- composition

def compose(domain: Domain, index: int, seed: str) -> Database:
    """Database `index` of `domain`: tables, names, rows. Deterministic in (domain, index, seed)."""
    rng = random.Random(f"{seed}:{domain.name}:{index}")
    style = sample_style(rng)
    entities = _pick_entities(domain, rng)
    attributes = {e.name: _pick_attributes(e, rng, len(entities)) for e in entities}
    tables = _name_tables(entities, attributes, style, rng)
    _fit_budget(tables, style, rng)
    db = Database(f"{domain.name}_{index + 1}", domain.name, style, tables)
    _fill_rows(db, rng)
    return db


def _pick_entities(domain: Domain, rng: random.Random) -> list[Entity]:
    """A connected subset, grown from a random entity one neighbour at a time; parents first."""
    n = rng.choices(TABLE_COUNTS, TABLE_WEIGHTS)[0]
    n = min(n, len(domain.entities))
    neighbours = {e.name: set() for e in domain.entities}
    for e in domain.entities:
        for r in e.references:
            neighbours[e.name].add(r.parent)
            neighbours[r.parent].add(e.name)
    chosen = [rng.choice([e for e in domain.entities if neighbours[e.name]]).name]
    while len(chosen) < n:
        frontier = sorted({x for c in chosen for x in neighbours[c]} - set(chosen))
        if not frontier:
            break
        chosen.append(rng.choice(frontier))
    picked = [e for e in domain.entities if e.name in chosen]
    return _parents_first(picked)


def _parents_first(entities: list[Entity]) -> list[Entity]:
    names = {e.name for e in entities}
    done: list[Entity] = []
    pending = list(entities)
    while pending:
        for e in pending:
            if all(r.parent in {d.name for d in done} or r.parent not in names for r in e.references):
                done.append(e)
                pending.remove(e)
                break
        else:
            raise ValueError(f"reference cycle among {[e.name for e in pending]}")
    return done


def _pick_attributes(entity: Entity, rng: random.Random, n_tables: int) -> list[Attribute]:
    """Two to five of the entity's attributes; one to three in a schema of six tables or more."""
    attrs = list(entity.attributes)
    if not attrs:
        return []
    low, high = (1, 3) if n_tables >= 6 else (2, 5)
    k = rng.randint(min(low, len(attrs)), min(len(attrs), high))
    keep = set(rng.sample(range(len(attrs)), k))
    return [a for i, a in enumerate(attrs) if i in keep]


def _name_tables(entities: list[Entity], attributes: dict[str, list[Attribute]], style: Style,
                 rng: random.Random) -> list[Table]:
    present = {e.name for e in entities}
    types = _TYPES[style.types]
    names = {}
    for e in entities:
        words = tuple(e.plural.split(" ")) if style.plural_tables else tuple(e.name.split("_"))
        if style.case == "spider":  # Spider: lowercase tables, Title_Case columns
            names[e.name] = "_".join(words).lower()
        else:
            names[e.name] = join_words(words, style)
    tables = []
    for e in entities:
        words = tuple(e.name.split("_"))
        columns: list[Column] = []
        used: set[str] = set()

        def add(col: Column) -> Column:
            base, k = col.name, 2
            while col.name.lower() in used:  # two attributes may share a name (e.g. two `date`s)
                col.name = f"{base}{k}" if " " not in base else f"{base} {k}"
                k += 1
            used.add(col.name.lower())
            columns.append(col)
            return col

        refs = [r for r in e.references if r.parent in present]
        referenced = any(r.parent == e.name for other in entities for r in other.references)
        # a link table (no key of its own) when both parents its verbs name are its only present
        # references, and nothing references it
        is_link = (e.link_verbs is not None and refs == list(e.references[:2]) and e.label is None
                   and not referenced)
        pk = None
        if not is_link:
            pk = add(Column(key_name(words, style, own=True), "key", types["key"],
                            ("id", f"{e.noun} id", "identifier")))
        label_col = None
        if e.label is not None:
            label_words = e.label.names[0] if style.shared_labels else words + e.label.names[0][-1:]
            label_col = add(Column(join_words(label_words, style), "label", types["label"], e.label.phrases))
        fks = []
        for r in refs:
            parent = next(p for p in entities if p.name == r.parent)
            col = add(Column(key_name(tuple(parent.name.split("_")), style, own=False), "fk", types["fk"],
                             (f"{parent.noun} id",), references=names[r.parent]))
            fks.append(ForeignKey(col, names[r.parent], key_name(tuple(parent.name.split("_")), style, own=True), r))
        for a in attributes[e.name]:
            spaced = rng.random() < style.spaced_share
            alt = a.names[rng.randrange(len(a.names))] if rng.random() < style.alt_names else a.names[0]
            null = a.null if a.null else (0.05 if a.kind != "flag" and rng.random() < 0.15 else 0.0)
            add(Column(join_words(alt, style, spaced=spaced), a.kind, types[a.kind], a.phrases, a,
                       nullable=True, null_rate=null))
        primary = [pk] if pk else [f.column for f in fks]
        tables.append(Table(names[e.name], e, columns, primary, label_col, fks,
                            e.link_verbs if is_link else None))
    return tables


_PIECES = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|[^\sA-Za-z\d]")
_SQL_WORD_TOKENS = {"CREATE": 1, "TABLE": 1, "INTEGER": 2, "TEXT": 1, "REAL": 2, "PRIMARY": 2, "KEY": 1,
                    "FOREIGN": 2, "REFERENCES": 2, "NOT": 1, "NULL": 1, "VARCHAR": 3, "DECIMAL": 2, "FLOAT": 2,
                    "DATE": 1, "BOOLEAN": 2, "INT": 1}


def schema_tokens(ddl: str) -> int:
    """A tokenizer-free estimate of the schema's length in BPE tokens: one per word piece or symbol,
    two for a long word, a third of the letters of a capitalised identifier or a number (BPE splits
    `STADIUM_ID` more than `stadium_id`), the usual count for SQL keywords."""
    n = 0
    for piece in _PIECES.findall(ddl):
        if piece in _SQL_WORD_TOKENS:
            n += _SQL_WORD_TOKENS[piece]
        elif piece.isupper() and len(piece) > 1 or piece.isdigit():
            n += -(-len(piece) // 3)
        else:
            n += 2 if len(piece) > 8 else 1
    return n


def _ddl_size(tables: list[Table], style: Style) -> int:
    return sum(schema_tokens(create_table_sql(t, style)) for t in tables)


_ATTRIBUTE_KINDS = ("category", "text", "flag", "int", "money", "real", "year", "date")


def _fit_budget(tables: list[Table], style: Style, rng: random.Random) -> None:
    """Shrink an over-long schema: attributes down to two per table, then one, then tables."""
    for keep in (2, 1):
        while _ddl_size(tables, style) > schema_budget(len(tables)) and _drop_attribute(tables, rng, keep):
            pass
    while _ddl_size(tables, style) > schema_budget(len(tables)) and _drop_table(tables, keep=2):
        pass


def _drop_attribute(tables: list[Table], rng: random.Random, keep: int) -> bool:
    """Remove one attribute column from the widest table, if it has more than `keep`."""
    widest = max(tables, key=lambda t: len(t.of_kind(*_ATTRIBUTE_KINDS)))
    attrs = widest.of_kind(*_ATTRIBUTE_KINDS)
    if len(attrs) <= keep:
        return False
    widest.columns.remove(rng.choice(attrs))
    return True


def _drop_table(tables: list[Table], keep: int) -> bool:
    """Remove the last table that no other table references (with any table it alone connected),
    keeping at least `keep` tables, connected."""
    for t in reversed(tables):
        if any(f.parent == t.name for other in tables for f in other.foreign_keys):
            continue
        rest = _largest_component([x for x in tables if x is not t])
        if len(rest) >= keep:
            tables[:] = [x for x in tables if x in rest]
            return True
    return False


def _largest_component(tables: list[Table]) -> list[Table]:
    names = {t.name for t in tables}
    edges = {t.name: set() for t in tables}
    for t in tables:
        for f in t.foreign_keys:
            if f.parent in names:
                edges[t.name].add(f.parent)
                edges[f.parent].add(t.name)
    best: set[str] = set()
    for t in tables:  # first-found wins ties: the earlier tables' component
        seen, todo = set(), [t.name]
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo += edges[n] - seen
        if len(seen) > len(best):
            best = seen
    return [t for t in tables if t.name in best]


# ----------------------------------------------------------------------------- rows

def _row_count(table: Table, rng: random.Random) -> int:
    low, high = ROWS_PARENT if not table.foreign_keys else ROWS_CHILD
    n = rng.randint(low, high)
    if table.entity.label is not None:  # labels are distinct: at most one row per label value
        n = min(n, len(table.entity.label.pool))
    return n


def _fill_rows(db: Database, rng: random.Random) -> None:
    start = db.style.id_start
    for t in db.tables:
        n = _row_count(t, rng)
        columns: dict[str, list] = {}
        if t.link_verbs is not None:
            pairs = _link_pairs(db, t, n, rng)
            n = len(pairs)
            for k, f in enumerate(t.foreign_keys):
                columns[f.column.name] = [p[k] for p in pairs]
        for c in t.columns:
            if c.name in columns:
                continue
            if c.kind == "key":
                columns[c.name] = list(range(start, start + n))
            elif c.kind == "fk":
                pick = _parent_picker(db.table(c.references), rng)
                columns[c.name] = [pick() for _ in range(n)]
            elif c.kind == "label":
                columns[c.name] = distinct(list(t.entity.label.pool), rng, n)
            else:
                draw = c.attribute.draw()
                columns[c.name] = [None if rng.random() < c.null_rate else draw(rng) for _ in range(n)]
        t.rows = [tuple(columns[c.name][i] for c in t.columns) for i in range(n)]


def _parent_picker(parent: Table, rng: random.Random):
    """Parent keys from a seeded 80-95% subset, skewed so that counts per parent differ."""
    keys = parent.values(parent.primary_key[0])
    active = sorted(rng.sample(keys, max(1, round(rng.uniform(0.8, 0.95) * len(keys)))))
    rng.shuffle(active)
    pick = weighted(active, skew=rng.uniform(0.2, 0.6))
    return lambda: pick(rng)


def _link_pairs(db: Database, t: Table, n: int, rng: random.Random) -> list[tuple[int, int]]:
    """Up to n distinct (a, b) key pairs: a link table holds each partnership once."""
    pick_a, pick_b = (_parent_picker(db.table(f.parent), rng) for f in t.foreign_keys)
    pairs: dict[tuple[int, int], None] = {}  # insertion-ordered set
    for _ in range(20 * n):
        pairs.setdefault((pick_a(), pick_b()), None)
        if len(pairs) == n:
            break
    return list(pairs)


# ----------------------------------------------------------------------------- DDL, SQLite, tables.json

def create_table_sql(t: Table, style: Style) -> str:
    """The CREATE TABLE statement as the database stores it, one column per line."""
    lines = []
    single_key = t.primary_key[0] if len(t.primary_key) == 1 else None
    for c in t.columns:
        line = f"    {c.sql} {c.sql_type}"
        if c is single_key:
            line += " PRIMARY KEY"
        elif style.not_null and c.kind in ("label", "fk"):
            line += " NOT NULL"
        if c.kind == "fk" and style.inline_fk:
            parent = next(f for f in t.foreign_keys if f.column is c)
            line += f" REFERENCES {quote(parent.parent)}({quote(parent.parent_key)})"
        lines.append(line)
    if single_key is None:
        lines.append(f"    PRIMARY KEY ({', '.join(c.sql for c in t.primary_key)})")
    if not style.inline_fk:
        for f in t.foreign_keys:
            lines.append(f"    FOREIGN KEY ({f.column.sql}) REFERENCES {quote(f.parent)}({quote(f.parent_key)})")
    return f"CREATE TABLE {t.sql} (\n" + ",\n".join(lines) + "\n)"


def parent_key(db: Database, f: ForeignKey) -> Column:
    return db.table(f.parent).primary_key[0]


def spider_tables_entry(db: Database) -> dict:
    """The database in Spider's tables.json format (column 0 is the `*` pseudo-column)."""
    originals: list[list] = [[-1, "*"]]
    natural: list[list] = [[-1, "*"]]
    types = ["text"]
    index: dict[int, int] = {}
    for ti, t in enumerate(db.tables):
        for c in t.columns:
            index[id(c)] = len(originals)
            originals.append([ti, c.name])
            natural.append([ti, c.phrases[0]])
            types.append(_SPIDER_TYPES[c.kind])
    return {
        "db_id": db.db_id,
        "table_names_original": [t.name for t in db.tables],
        "table_names": [t.entity.noun for t in db.tables],
        "column_names_original": originals,
        "column_names": natural,
        "column_types": types,
        "primary_keys": [index[id(t.primary_key[0])] if len(t.primary_key) == 1
                         else [index[id(c)] for c in t.primary_key] for t in db.tables],
        "foreign_keys": [[index[id(f.column)], index[id(parent_key(db, f))]] for t in db.tables
                         for f in t.foreign_keys],
    }
