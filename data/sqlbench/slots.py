"""Slot fillers: everything a question template can be instantiated with on one database.

Each filler is `(db, rng) -> list[dict]`; a dict maps the placeholders of a template's SQL and
questions to text. Values come from the generated rows (thresholds are data quantiles, names are
real rows), so most gold queries return rows. Placeholder naming, for a table with prefix P
("" for a single table, "p"/"c" for a foreign-key parent/child, "a"/"b" for a many-to-many pair):
  {P}t table, {P}sg / {P}pl singular / plural wording, {P}one "a singer" / "an author",
  {P}L label column and {P}Lp its phrase, {P}pk primary key
  column X: {X} name, {X}p phrase;  value: {v} as worded, {vs} as an SQL literal"""

from __future__ import annotations

import random
from collections import Counter
from typing import Callable, Iterable

from data.sqlbench.schema import Column, Database, Table

Filler = Callable[[Database, random.Random], list[dict]]

FUNC_WORDS = {"avg": "average", "max": "maximum", "min": "minimum", "sum": "total"}
ORDERS = (
    {"dir": "DESC", "hi": "highest", "dword": "descending", "frm": "highest", "to": "lowest"},
    {"dir": "ASC", "hi": "lowest", "dword": "ascending", "frm": "lowest", "to": "highest"},
)
COMPARE = (
    {"op": ">", "than": "greater than", "over": "above"},
    {"op": "<", "than": "less than", "over": "below"},
)
VALUES_PER_COLUMN = 3  # keeps every column (not only the ones with many values) represented


def fmt(value: object) -> str:
    return str(value)


def literal(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) else fmt(value)


def article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def table_slots(t: Table, p: str = "") -> dict:
    slots = {f"{p}t": t.name, f"{p}sg": t.singular, f"{p}pl": t.plural, f"{p}one": article(t.singular)}
    if t.label:
        slots |= {f"{p}L": t.label.name, f"{p}Lp": t.label.phrase}
    if len(t.primary_key) == 1:
        slots[f"{p}pk"] = t.primary_key[0].name
    return slots


def col_slots(c: Column, key: str) -> dict:
    return {key: c.name, f"{key}p": c.phrase}


def value_slots(value: object, key: str = "v") -> dict:
    return {key: fmt(value), f"{key}s": literal(value)}


def sample(rng: random.Random, items: Iterable, k: int = VALUES_PER_COLUMN) -> list:
    items = sorted(set(items), key=str)  # sorted first: the draw depends only on the seed
    return rng.sample(items, min(k, len(items)))


def quantile(rng: random.Random, values: list, low: float, high: float) -> object:
    ordered = sorted(values)
    return ordered[int(rng.uniform(low, high) * (len(ordered) - 1))]


def expand(filler: Filler, *choices: dict) -> Filler:
    """Every slot dict of `filler`, once per choice (e.g. per sort direction)."""
    return lambda db, rng: [s | c for s in filler(db, rng) for c in choices]


def only(filler: Filler, **fixed: str) -> Filler:
    """The slot dicts of `filler` that have the given values, e.g. only(..., f="avg")."""
    return lambda db, rng: [s for s in filler(db, rng) if all(s[k] == v for k, v in fixed.items())]


def with_count(filler: Filler, low: int = 2, high: int = 5) -> Filler:
    """Adds {k}, a small row count for LIMIT k."""
    return lambda db, rng: [s | {"k": str(rng.randint(low, high))} for s in filler(db, rng)]


# ----------------------------------------------------------------------------- one table

def _tables(db: Database, labelled: bool = True) -> list[Table]:
    return [t for t in db.domain.tables if t.label or not labelled]


def tables(db: Database, rng: random.Random, labelled: bool = True) -> list[dict]:
    return [table_slots(t) for t in _tables(db, labelled)]


def any_tables(db: Database, rng: random.Random) -> list[dict]:
    return tables(db, rng, labelled=False)


def columns(db: Database, rng: random.Random, kinds=("label", "category", "measure", "year"),
            labelled: bool = True) -> list[dict]:
    return [table_slots(t) | col_slots(c, "c") for t in _tables(db, labelled) for c in t.of_kind(*kinds)]


def attributes(db: Database, rng: random.Random) -> list[dict]:
    return columns(db, rng, kinds=("category", "measure", "year"))


def categories(db: Database, rng: random.Random) -> list[dict]:
    return columns(db, rng, kinds=("category",), labelled=False)


def numbers(db: Database, rng: random.Random, kinds=("measure", "year")) -> list[dict]:
    return [s | {"m": s["c"], "mp": s["cp"]} for s in columns(db, rng, kinds=kinds)]


def measures(db: Database, rng: random.Random) -> list[dict]:
    return numbers(db, rng, kinds=("measure",))


def equalities(db: Database, rng: random.Random, labelled: bool = True) -> list[dict]:
    return [s | value_slots(v)
            for s in columns(db, rng, kinds=("category", "year"), labelled=labelled)
            for v in sample(rng, db.values(s["t"], s["c"]))]


def any_equalities(db: Database, rng: random.Random) -> list[dict]:
    return equalities(db, rng, labelled=False)


def thresholds(db: Database, rng: random.Random) -> list[dict]:
    """A cut inside the data (20th-80th percentile), so both sides of it have rows."""
    return [s | value_slots(quantile(rng, db.values(s["t"], s["m"]), 0.2, 0.8), "x")
            for s in numbers(db, rng) for _ in range(2)]


def ranges(db: Database, rng: random.Random) -> list[dict]:
    out = []
    for s in numbers(db, rng):
        values = db.values(s["t"], s["m"])
        low, high = quantile(rng, values, 0.1, 0.4), quantile(rng, values, 0.6, 0.9)
        if low < high:
            out.append(s | value_slots(low, "a") | value_slots(high, "b"))
    return out


def lookups(db: Database, rng: random.Random) -> list[dict]:
    """The attribute of one named row."""
    return [s | value_slots(name, "lv")
            for s in attributes(db, rng) for name in sample(rng, db.values(s["t"], s["L"]), 2)]


def aggregates(db: Database, rng: random.Random, labelled: bool = False) -> list[dict]:
    """avg/min/max of measures, sum only of totals, min/max of years."""
    out = []
    for t in _tables(db, labelled):
        for c in t.of_kind("measure", "year"):
            funcs = ["max", "min"] + (["avg"] if c.kind == "measure" else []) + (["sum"] if c.total else [])
            out += [table_slots(t) | col_slots(c, "m") | {"f": f, "fw": FUNC_WORDS[f]} for f in funcs]
    return out


def equality_aggregates(db: Database, rng: random.Random) -> list[dict]:
    """An aggregate over the rows with c = v."""
    return [e | {k: v for k, v in a.items() if k in ("m", "mp", "f", "fw")}
            for e in any_equalities(db, rng) for a in aggregates(db, rng)
            if a["t"] == e["t"] and a["m"] != e["c"]]


def group_measures(db: Database, rng: random.Random) -> list[dict]:
    return [g | {k: v for k, v in a.items() if k in ("m", "mp", "f", "fw")}
            for g in categories(db, rng) for a in aggregates(db, rng) if a["t"] == g["t"]]


def equality_and_threshold(db: Database, rng: random.Random) -> list[dict]:
    """c = v AND m > x with x below most of the rows that have c = v."""
    out = []
    for e in equalities(db, rng):
        for m in measures(db, rng):
            if m["t"] == e["t"] and e["c"] != m["m"]:
                matching = [r[m["m"]] for r in db.rows[e["t"]] if fmt(r[e["c"]]) == e["v"]]
                out.append(e | {"m": m["m"], "mp": m["mp"]} | value_slots(quantile(rng, matching, 0.1, 0.5), "x"))
    return out


def value_pairs(db: Database, rng: random.Random, labelled: bool = True) -> list[dict]:
    out = []
    for s in columns(db, rng, kinds=("category",), labelled=labelled):
        for _ in range(2):
            pair = sample(rng, db.values(s["t"], s["c"]), 2)
            if len(pair) == 2:
                out.append(s | value_slots(pair[0], "v1") | value_slots(pair[1], "v2"))
    return out


def any_value_pairs(db: Database, rng: random.Random) -> list[dict]:
    return value_pairs(db, rng, labelled=False)


def label_words(db: Database, rng: random.Random) -> list[dict]:
    """A word that occurs inside some label values, for LIKE '%word%'."""
    out = []
    for s in tables(db, rng):
        words = [w for name in db.values(s["t"], s["L"]) for w in name.split() if w.isalpha() and len(w) >= 4]
        out += [s | {"w": w} for w in sample(rng, words)]
    return out


def group_sizes(db: Database, rng: random.Random) -> list[dict]:
    """HAVING count(*) >= k with k reached by the larger groups only."""
    out = []
    for s in columns(db, rng, kinds=("category",)):
        sizes = sorted(Counter(db.values(s["t"], s["c"])).values(), reverse=True)
        k = sizes[rng.randrange(max(1, len(sizes) // 2))]
        if k >= 2:
            out.append(s | {"k": str(k)})
    return out


def category_thresholds(db: Database, rng: random.Random) -> list[dict]:
    """Category x measure with a high cut x and a low cut y (for INTERSECT / EXCEPT / UNION)."""
    out = []
    for c in columns(db, rng, kinds=("category",)):
        for m in measures(db, rng):
            if m["t"] == c["t"]:
                values = db.values(c["t"], m["m"])
                out.append(c | {"m": m["m"], "mp": m["mp"]}
                           | value_slots(quantile(rng, values, 0.6, 0.9), "x")
                           | value_slots(quantile(rng, values, 0.1, 0.4), "y"))
    return out


def category_value_thresholds(db: Database, rng: random.Random) -> list[dict]:
    return [s | value_slots(rng.choice(sorted(set(db.values(s["t"], s["c"])))))
            for s in category_thresholds(db, rng)]


def category_value_measures(db: Database, rng: random.Random) -> list[dict]:
    return [e | {"m": m["m"], "mp": m["mp"]}
            for e in equalities(db, rng) for m in measures(db, rng)
            if m["t"] == e["t"] and e["c"] != m["m"]]


# ----------------------------------------------------------------------------- foreign keys

def _relations(db: Database, child_labelled: bool) -> list[tuple[Table, Column, Table]]:
    """(child, fk column, parent) for every foreign key whose parent has a label."""
    out = []
    for child in _tables(db, child_labelled):
        for col in child.of_kind("fk"):
            parent = db.domain.table(col.references)
            if parent.label:
                out.append((child, col, parent))
    return out


def relation_slots(child: Table, col: Column, parent: Table) -> dict:
    return table_slots(parent, "p") | table_slots(child, "c") | {"fk": col.name, "rel": col.rel}


def relations(db: Database, rng: random.Random, child_labelled: bool = False) -> list[dict]:
    return [relation_slots(*r) for r in _relations(db, child_labelled)]


def labelled_relations(db: Database, rng: random.Random) -> list[dict]:
    return relations(db, rng, child_labelled=True)


def _parents_with_children(db: Database, s: dict) -> list[dict]:
    keys = set(db.values(s["ct"], s["fk"]))
    return [r for r in db.rows[s["pt"]] if r[s["ppk"]] in keys]


def parent_equalities(db: Database, rng: random.Random, child_labelled: bool = True) -> list[dict]:
    """Child rows whose parent has column pc = v (v taken from parents that have children)."""
    out = []
    for s in relations(db, rng, child_labelled):
        parents = _parents_with_children(db, s)
        for c in db.domain.table(s["pt"]).of_kind("category", "year"):
            out += [s | col_slots(c, "pc") | value_slots(v) for v in sample(rng, [p[c.name] for p in parents], 2)]
    return out


def any_parent_equalities(db: Database, rng: random.Random) -> list[dict]:
    return parent_equalities(db, rng, child_labelled=False)


def parent_names(db: Database, rng: random.Random) -> list[dict]:
    return [s | value_slots(name, "pv")
            for s in labelled_relations(db, rng)
            for name in sample(rng, [p[s["pL"]] for p in _parents_with_children(db, s)], 4)]


def child_equalities(db: Database, rng: random.Random) -> list[dict]:
    out = []
    for s in relations(db, rng):
        for c in db.domain.table(s["ct"]).of_kind("category", "year"):
            out += [s | col_slots(c, "cc") | value_slots(v) for v in sample(rng, db.values(s["ct"], c.name), 2)]
    return out


def child_counts(db: Database, rng: random.Random) -> list[dict]:
    """HAVING count(*) >= k over children per parent, k reached by the busier parents."""
    out = []
    for s in relations(db, rng):
        sizes = sorted(Counter(db.values(s["ct"], s["fk"])).values(), reverse=True)
        for _ in range(2):
            k = sizes[rng.randrange(max(1, len(sizes) // 3))]
            if k >= 2:
                out.append(s | {"k": str(k)})
    return out


def child_measures(db: Database, rng: random.Random) -> list[dict]:
    out = []
    for s in relations(db, rng):
        for c in db.domain.table(s["ct"]).of_kind("measure"):
            funcs = ["avg", "max", "min"] + (["sum"] if c.total else [])
            out += [s | col_slots(c, "cm") | {"f": f, "fw": FUNC_WORDS[f]} for f in funcs]
    return out


def childless(db: Database, rng: random.Random) -> list[dict]:
    """Relations where some parent has no child at all (NOT IN has an answer)."""
    return [s for s in relations(db, rng) if len(_parents_with_children(db, s)) < len(db.rows[s["pt"]])]


def childless_attributes(db: Database, rng: random.Random) -> list[dict]:
    return [s | col_slots(c, "pc") for s in childless(db, rng)
            for c in db.domain.table(s["pt"]).of_kind("category", "measure", "year")]


def child_value_pairs(db: Database, rng: random.Random) -> list[dict]:
    """Two values of a child column that some parent has children with both of."""
    out = []
    for s in relations(db, rng):
        for c in db.domain.table(s["ct"]).of_kind("category", "year"):
            per_parent: dict[int, set] = {}
            for r in db.rows[s["ct"]]:
                per_parent.setdefault(r[s["fk"]], set()).add(r[c.name])
            both = sorted(tuple(sorted(vs, key=str)) for vs in per_parent.values() if len(vs) >= 2)
            for values in sample(rng, both, 2):
                v1, v2 = sample(rng, values, 2)
                out.append(s | col_slots(c, "cc") | value_slots(v1, "v1") | value_slots(v2, "v2"))
    return out


def parent_equality_child_measures(db: Database, rng: random.Random) -> list[dict]:
    return [s | col_slots(c, "cm")
            for s in parent_equalities(db, rng)
            for c in db.domain.table(s["ct"]).of_kind("measure", "year")]


# ----------------------------------------------------------------------------- many-to-many

def link_directions(db: Database, rng: random.Random) -> list[dict]:
    """Both readings of every link table: singers that performed in / concerts featuring."""
    out = []
    for lt in db.domain.tables:
        if lt.link is None:
            continue
        fk_a, fk_b, a_to_b, b_to_a = lt.link
        a, b = (db.domain.table(lt.column(f).references) for f in (fk_a, fk_b))
        base = {"lt": lt.name}
        out.append(base | table_slots(a, "a") | table_slots(b, "b") | {"afk": fk_a, "bfk": fk_b, "rel": a_to_b})
        out.append(base | table_slots(b, "a") | table_slots(a, "b") | {"afk": fk_b, "bfk": fk_a, "rel": b_to_a})
    return out


def link_names(db: Database, rng: random.Random) -> list[dict]:
    out = []
    for s in link_directions(db, rng):
        linked = set(db.values(s["lt"], s["bfk"]))
        names = [r[s["bL"]] for r in db.rows[s["bt"]] if r[s["bpk"]] in linked]
        out += [s | value_slots(n, "bv") for n in sample(rng, names, 4)]
    return out


def link_name_pairs(db: Database, rng: random.Random) -> list[dict]:
    """Two b rows that share at least one a partner (so the INTERSECT is not empty)."""
    out = []
    for s in link_directions(db, rng):
        names = {r[s["bpk"]]: r[s["bL"]] for r in db.rows[s["bt"]]}
        partners: dict[int, list] = {}
        for r in db.rows[s["lt"]]:
            partners.setdefault(r[s["afk"]], []).append(names[r[s["bfk"]]])
        shared = sorted(tuple(sorted(v)) for v in partners.values() if len(v) >= 2)
        for group in sample(rng, shared, 3):
            n1, n2 = sample(rng, group, 2)
            out.append(s | value_slots(n1, "bv1") | value_slots(n2, "bv2"))
    return out
