"""Identifier styles found in the wild, one drawn per database.

Real schemas name the same thing many ways: `birth_date`, `BirthDate`, `birthDate`, `Birth_Date`
(Spider's mixed case), `BIRTH_DATE`, `dob`, `"Birth Date"` (needs quoting); tables singular or
plural (`student`, `students`), sometimes abbreviated (`dept`, `emp`, `qty`); primary keys called
`id` in every table or `student_id`; labels called `name` in every table or `student_name`. A
model that reads schemas must have seen all of them, so every database draws one Style.

Names that are SQL keywords (`order`, `match`) or contain a space are written quoted, with
backticks, in the DDL and in the gold SQL alike."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

CASES = ("snake", "pascal", "camel", "spider", "upper")
CASE_WEIGHTS = (0.44, 0.22, 0.10, 0.18, 0.06)

# Words some schemas abbreviate; a style with `abbreviate` uses them all.
ABBREVIATIONS = {
    "number": "num", "quantity": "qty", "amount": "amt", "department": "dept", "employee": "emp",
    "description": "descr", "address": "addr", "customer": "cust", "product": "prod", "category": "cat",
    "maximum": "max", "minimum": "min", "average": "avg", "identifier": "id", "telephone": "tel",
    "percentage": "pct", "organization": "org", "information": "info", "transaction": "txn",
    "reservation": "resv", "appointment": "appt", "registration": "reg", "experience": "exp",
    "manufacturer": "mfr", "professor": "prof", "instructor": "instr", "population": "pop",
    "year": "yr", "temperature": "temp", "street": "st",
}

# Keywords a bare identifier may not be (SQLite's, and the words our SQL readers treat as reserved).
KEYWORDS = frozenset("""abort action add after all alter analyze and as asc attach autoincrement before
begin between by cascade case cast check collate column commit conflict constraint create cross current
current_date current_time current_timestamp database default deferrable deferred delete desc detach
distinct drop each else end escape except exclusive exists explain fail for foreign from full glob group
having if ignore immediate in index indexed initially inner insert instead intersect into is isnull join
key left like limit match natural no not notnull null of offset on or order outer plan pragma primary
query raise recursive references regexp reindex release rename replace restrict right rollback row
savepoint select set table temp temporary then to transaction trigger union unique update using vacuum
values view virtual when where with without""".split())

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def quote(name: str) -> str:
    """The identifier as SQL must write it: bare when it can be, else in backticks."""
    if _PLAIN.fullmatch(name) and name.lower() not in KEYWORDS:
        return name
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class Style:
    case: str  # one of CASES
    plural_tables: bool  # `students` rather than `student`
    abbreviate: bool  # `dept_id`, `emp`, `qty`
    shared_keys: bool  # every primary key is `id` (and foreign keys `<table>_id`)
    shared_labels: bool  # every label column is `name` / `title`
    spaced_share: float  # share of attribute columns named with spaces, BIRD-like ("Birth Date")
    alt_names: float  # share of attributes that take one of their other names (dob for birth_date)
    types: str  # "sqlite" (INTEGER, TEXT, REAL), "ansi" (INT, VARCHAR(n), DECIMAL(10,2), DATE), "loose"
    inline_fk: bool  # `x INTEGER REFERENCES t(y)` rather than a FOREIGN KEY clause
    not_null: bool  # NOT NULL on required columns
    id_start: int  # first primary key value: 1, 101 or 1001


def sample_style(rng: random.Random) -> Style:
    return Style(
        case=rng.choices(CASES, CASE_WEIGHTS)[0],
        plural_tables=rng.random() < 0.35,
        abbreviate=rng.random() < 0.2,
        shared_keys=rng.random() < 0.35,
        shared_labels=rng.random() < 0.6,
        spaced_share=0.25 if rng.random() < 0.1 else 0.0,
        alt_names=rng.choice((0.0, 0.3, 0.6)),
        types=rng.choices(("sqlite", "ansi", "loose"), (0.55, 0.3, 0.15))[0],
        inline_fk=rng.random() < 0.25,
        not_null=rng.random() < 0.4,
        id_start=rng.choices((1, 101, 1001), (0.7, 0.15, 0.15))[0],
    )


def join_words(words: tuple[str, ...] | list[str], style: Style, *, spaced: bool = False) -> str:
    """Words -> one identifier in the style's case: ("birth", "date") -> birth_date / BirthDate / ..."""
    words = [ABBREVIATIONS.get(w, w) if style.abbreviate else w for w in words]
    words = [w for w in words if w] or ["x"]
    if spaced:
        return " ".join(w.capitalize() for w in words)
    case = style.case
    if case == "snake":
        return "_".join(w.lower() for w in words)
    if case == "upper":
        return "_".join(w.upper() for w in words)
    if case == "spider":  # Spider's Title_Case, with ID in capitals
        return "_".join("ID" if w == "id" else w.capitalize() for w in words)
    caps = ["ID" if w == "id" and case == "pascal" else w.capitalize() for w in words]
    if case == "camel":
        return words[0].lower() + "".join(caps[1:])
    return "".join(caps)


def key_name(entity_words: tuple[str, ...], style: Style, *, own: bool) -> str:
    """A primary key (`own`: the table's own key) or a foreign key to an entity's key."""
    if own and style.shared_keys:
        return join_words(("id",), style)
    return join_words(tuple(entity_words) + ("id",), style)
