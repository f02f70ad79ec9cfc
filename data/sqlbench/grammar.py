"""The SQL grammar: queries sampled over one database, each with its question.

A query is a small tree (Select: items, FROM, WHERE conditions, GROUP BY, HAVING, ORDER BY, LIMIT,
a set operation) built by one of the productions below from parts drawn on the database:
conditions on any column kind, joins along foreign keys (child-parent, two hops, and through link
tables), nested subqueries in WHERE and FROM, aggregates with DISTINCT, INTERSECT / UNION / EXCEPT.
Each production writes the SQL and the question together, from the same drawn parts, so the
question always means the query. Values come from the rows (thresholds are data quantiles, names
are real rows), so queries return rows.

The tree also knows its Spider hardness: Select.level() applies the official evaluator's rules
(component1, component2, others; eval/hardness.py has the same rules over parsed SQL, and the
tests check that both agree on every gold query). build.py draws productions until each level
has its quota."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

from data.sqlbench.compose import Column, Database, ForeignKey, Table
from data.sqlbench.naming import quote
from data.sqlbench.phrasing import (COUNT_ALL, QUESTION_OPENERS, Words, article, cap, fmt, literal,
                                    plural_phrase)

LEVELS = ("easy", "medium", "hard", "extra")
ATTRIBUTE_KINDS = ("category", "text", "flag", "int", "money", "real", "year", "date")
MEASURES = ("int", "money", "real")
ORDERABLE = ("int", "money", "real", "year", "date")


# ----------------------------------------------------------------------------- the query tree

@dataclass
class Cond:
    sql: str
    phrase: str  # a relative clause for the noun it filters: "whose age is above 30"
    like: bool = False
    negated: bool = False  # NOT IN, IS NOT NULL: the official hardness counts these as aggregates
    nested: int = 0  # subqueries inside the condition
    column: Column | None = None  # the column it tests, when it tests one


@dataclass
class Select:
    items: list[str]
    source: str  # the FROM clause: tables joined with JOIN ... ON, or one (subquery)
    distinct: bool = False
    where: list[Cond] = field(default_factory=list)
    where_or: bool = False
    group_by: list[str] = field(default_factory=list)
    having: Cond | None = None
    order: tuple[str, str] | None = None  # (expression, ASC|DESC)
    order_aggs: int = 0
    limit: int | None = None
    compound: tuple[str, "Select"] | None = None

    @property
    def item_aggs(self) -> list[bool]:
        return [_has_aggregate(i) for i in self.items]

    @property
    def table_units(self) -> int:
        """Tables (or one subquery) in FROM: each JOIN adds one."""
        return 1 if self.source.startswith("(") else self.source.count(" JOIN ") + 1

    def sql(self) -> str:
        parts = ["SELECT " + ("DISTINCT " if self.distinct else "") + ", ".join(self.items), "FROM " + self.source]
        if self.where:
            parts.append("WHERE " + (" OR " if self.where_or else " AND ").join(c.sql for c in self.where))
        if self.group_by:
            parts.append("GROUP BY " + ", ".join(self.group_by))
        if self.having:
            parts.append("HAVING " + self.having.sql)
        if self.order:
            parts.append(f"ORDER BY {self.order[0]} {self.order[1]}")
        if self.limit is not None:
            parts.append(f"LIMIT {self.limit}")
        text = " ".join(parts)
        if self.compound:
            text += f" {self.compound[0]} {self.compound[1].sql()}"
        return text

    def components(self) -> tuple[int, int, int]:
        """(component1, component2, others) of Spider's evaluator (eval/hardness.py's docstring)."""
        conds = self.where + ([self.having] if self.having else [])
        ors = len(self.where) - 1 if self.where_or else 0
        comp1 = (bool(self.where) + bool(self.group_by) + bool(self.order) + (self.limit is not None)
                 + self.table_units - 1 + ors + sum(c.like for c in conds))
        comp2 = sum(c.nested for c in conds) + (self.compound is not None)
        aggregates = (sum(self.item_aggs) + sum(c.negated for c in self.where) + min(self.order_aggs, 2)
                      + (self.having.negated if self.having else 0))
        others = (aggregates > 1) + (len(self.items) > 1) + (len(self.where) > 1) + (len(self.group_by) > 1)
        return comp1, comp2, others

    def level(self) -> str:
        c1, c2, others = self.components()
        if c1 <= 1 and others == 0 and c2 == 0:
            return "easy"
        if (others <= 2 and c1 <= 1 and c2 == 0) or (c1 <= 2 and others < 2 and c2 == 0):
            return "medium"
        if (others > 2 and c1 <= 2 and c2 == 0) or (2 < c1 <= 3 and others <= 2 and c2 == 0) or (
                c1 <= 1 and others == 0 and c2 <= 1):
            return "hard"
        return "extra"

    def alone(self) -> "Select":
        """The left-hand query of a set operation."""
        return dataclasses.replace(self, compound=None)

    def without_where(self) -> "Select":
        return dataclasses.replace(self, where=[], where_or=False, compound=None)

    def without_having(self) -> "Select":
        return dataclasses.replace(self, having=None, compound=None)

    def order_keys(self) -> "Select":
        """The same query returning its sort key, one row past the LIMIT: shows ties at the cut."""
        return dataclasses.replace(self, items=[self.order[0]], distinct=False,
                                   limit=self.limit + 1, compound=None)


def _has_aggregate(item: str) -> bool:
    return item.split("(", 1)[0].lower() in ("count", "sum", "avg", "min", "max")


@dataclass
class Example:
    query: Select
    question: str
    production: str


# ----------------------------------------------------------------------------- the database, as the grammar sees it

def ref(alias: str | None, c: Column) -> str:
    return f"{alias}.{c.sql}" if alias else c.sql


def join(t1: Table, c1: Column | str, t2: Table, c2: Column | str, a1: str = "T1", a2: str = "T2") -> str:
    left = c1.sql if isinstance(c1, Column) else quote(c1)
    right = c2.sql if isinstance(c2, Column) else quote(c2)
    return f"{t1.sql} AS {a1} JOIN {t2.sql} AS {a2} ON {a1}.{left} = {a2}.{right}"


@dataclass
class Relation:
    """child --fk--> parent."""
    child: Table
    fk: ForeignKey
    parent: Table

    @property
    def pk(self) -> Column:
        return self.parent.primary_key[0]


class Sampler:
    """Draws the parts of queries on one database; productions combine them."""

    def __init__(self, db: Database, rng: random.Random):
        self.db, self.rng = db, rng
        self.labelled = [t for t in db.tables if t.label is not None]
        self.relations = [Relation(t, f, db.table(f.parent)) for t in db.tables for f in t.foreign_keys]
        self.named_relations = [r for r in self.relations if r.parent.label is not None]
        self.links = []  # (a, link, b, fk to a, fk to b, verb a->b), both directions
        for t in db.tables:
            if t.link_verbs:
                fa, fb = t.foreign_keys
                a, b = db.table(fa.parent), db.table(fb.parent)
                self.links.append((a, t, b, fa, fb, t.link_verbs[0]))
                self.links.append((b, t, a, fb, fa, t.link_verbs[1]))
        self.chains = [(r1, r2) for r1 in self.relations for r2 in self.named_relations
                       if r1.parent is r2.child and r1.child is not r2.parent]

    def choice(self, items):
        return items[self.rng.randrange(len(items))] if items else None

    def quantile(self, t: Table, c: Column, low: float, high: float):
        values = sorted(t.values(c))
        return values[int(self.rng.uniform(low, high) * (len(values) - 1))] if values else None

    def attrs(self, t: Table, *kinds: str) -> list[Column]:
        return [c for c in t.columns if c.kind in (kinds or ATTRIBUTE_KINDS)]

    def shown(self, t: Table, k: int) -> list[Column]:
        """k columns to show: the label first when there is one, then attributes."""
        others = [c for c in self.attrs(t) if c.kind != "text" or self.rng.random() < 0.3]
        picked = self.rng.sample(others, min(len(others), k - (t.label is not None)))
        return ([t.label] if t.label else []) + [c for c in others if c in picked]

    # ---------------------------------------------------------------- conditions

    def condition(self, w: Words, t: Table, alias: str | None, avoid: tuple = ()) -> Cond | None:
        """One condition on a column of t, of a kind that suits the column."""
        cols = [c for c in t.columns if c.kind in ATTRIBUTE_KINDS + ("label",) and c not in avoid]
        c = self.choice(cols)
        if c is None:
            return None
        cond = self._condition(w, t, c, ref(alias, c))
        if cond is not None:
            cond.column = c
        return cond

    def _condition(self, w: Words, t: Table, c: Column, col: str) -> Cond | None:
        values = t.values(c)
        if not values:
            return None
        r = self.rng.random()
        if (c.kind in ("category", "year") and r < 0.75) or (c.kind == "label" and r < 0.3):
            v = self.choice(sorted(set(values), key=str))
            return Cond(f"{col} = {literal(v)}", w.equals(c, v))
        if c.kind == "category" and r < 0.9:
            v = self.choice(sorted(set(values), key=str))
            return Cond(f"{col} != {literal(v)}", w.not_equals(c, v))
        if c.kind in ("label", "text"):
            if c.kind == "text" and len(values) < len(t.rows) and r < 0.5:
                negated = self.rng.random() < 0.3
                return Cond(f"{col} IS {'NOT ' if negated else ''}NULL", w.is_null(c, negated), negated=negated)
            words = sorted({x for v in values for x in str(v).split() if x.isalpha() and len(x) >= 4})
            if self.rng.random() < 0.7 and words:
                word = self.choice(words)
                return Cond(f"{col} LIKE '%{word}%'", w.contains(c, word), like=True)
            prefix = str(self.choice(values))[: self.rng.choice((1, 1, 2))]
            return Cond(f"{col} LIKE '{prefix}%'", w.starts_with(c, prefix), like=True)
        if c.kind == "flag":
            yes = self.rng.random() < 0.7
            return Cond(f"{col} = {int(yes)}", w.flag(c, yes))
        if c.kind == "category":  # IS NULL on a column that has NULLs, else equality
            if len(values) < len(t.rows):
                return Cond(f"{col} IS NULL", w.is_null(c, False))
            v = self.choice(sorted(set(values), key=str))
            return Cond(f"{col} = {literal(v)}", w.equals(c, v))
        if c.kind == "date" and r < 0.2:
            year = str(self.choice(values))[:4]
            return Cond(f"{col} LIKE '{year}%'", w.in_year(c, year), like=True)
        if r < 0.8:
            op = self.rng.choice((">", "<", ">", "<", ">=", "<="))
            v = self.quantile(t, c, 0.2, 0.8)
            return Cond(f"{col} {op} {literal(v)}", w.compare(c, op, v))
        low, high = self.quantile(t, c, 0.1, 0.4), self.quantile(t, c, 0.6, 0.9)
        if low == high:
            return None
        return Cond(f"{col} BETWEEN {literal(low)} AND {literal(high)}", w.between(c, low, high))

    def conditions(self, w: Words, t: Table, alias: str | None, n: int,
                   avoid: tuple = ()) -> tuple[list[Cond], bool] | None:
        """n conditions on distinct columns, joined by AND (or, a quarter of the time, OR)."""
        conds, used = [], list(avoid)
        for _ in range(n):
            cond = self.condition(w, t, alias, avoid=tuple(used))
            if cond is None:
                return None
            conds.append(cond)
            used.append(cond.column)
        return conds, n > 1 and self.rng.random() < 0.25

    def name_equals(self, w: Words, t: Table, alias: str | None) -> tuple[Cond, str] | None:
        """label = 'X' for a row of t; also returns how the question names it ("the singer X")."""
        if t.label is None:
            return None
        v = self.choice(t.values(t.label))
        noun = w.noun(t)
        said = w.value(v)
        naming = self.choice([f"the {noun.sg} {said}", f"the {noun.sg} named {said}",
                              f"the {noun.sg} whose {w.col(t.label)} is {said}", said])
        return Cond(f"{ref(alias, t.label)} = {literal(v)}", naming), naming


def join_phrase(conds: list[Cond], use_or: bool) -> str:
    if not conds:
        return ""
    if len(conds) == 1:
        return conds[0].phrase
    return f" {'or' if use_or else 'and'} ".join(c.phrase for c in conds)


def with_conds(noun: str, conds: list[Cond], use_or: bool) -> str:
    return f"{noun} {join_phrase(conds, use_or)}".rstrip()


# ----------------------------------------------------------------------------- productions: one table

def p_rows(s: Sampler, w: Words) -> Example | None:
    """SELECT columns FROM t [WHERE ...] [ORDER BY ...]: the list question."""
    t = s.choice(s.labelled)
    if t is None:
        return None
    n_conds = s.rng.choice((0, 1, 1, 1, 2))
    cols = s.shown(t, s.rng.choice((1, 1, 1, 2, 2, 3)))
    got = s.conditions(w, t, None, n_conds, avoid=tuple(c for c in cols if c is not t.label))
    if got is None:
        return None
    conds, use_or = got
    if any(c.column is t.label for c in conds):  # a named row: show its other columns (a lookup)
        cols = [c for c in cols if c is not t.label] or [s.choice([c for c in s.attrs(t) if c.kind != "text"])]
        if cols == [None]:
            return None
    noun = w.noun(t)
    star = s.rng.random() < 0.06 and n_conds > 0
    q = Select(["*"] if star else [c.sql for c in cols], t.sql, where=conds, where_or=use_or)
    order_txt = ""
    orderable = s.attrs(t, *ORDERABLE) + [t.label]
    if s.rng.random() < 0.3:
        key = s.choice(orderable)
        direction = "ASC" if key.kind == "label" else s.rng.choice(("ASC", "DESC"))
        q.order = (key.sql, direction)
        order_txt = w.order(key, direction)
    clause = join_phrase(conds, use_or)
    who = with_conds(noun.pl, conds, use_or)
    what = "all the information" if star else f"the {w.cols_list(cols)}"
    forms = [f"{w.opener()} {what} of {who if conds else 'all ' + noun.pl}{order_txt}.",
             f"{s.choice(QUESTION_OPENERS)} {what} of the {who}{order_txt}?"]
    which = w.which(noun.pl, clause) if conds and not order_txt and not star else None
    if which:
        forms.append(f"{which}? {s.choice(['Give', 'List', 'Show'])} their {w.cols_list(cols)}.")
    if conds:
        forms.append(f"For {who}, {s.choice(['show', 'list', 'give'])} {what}{order_txt}.")
    return Example(q, cap(s.choice(forms)), "rows")


def p_distinct(s: Sampler, w: Words) -> Example | None:
    """SELECT DISTINCT category FROM t [WHERE ...]."""
    t = s.choice([t for t in s.db.tables if s.attrs(t, "category")])
    if t is None:
        return None
    c = s.choice(s.attrs(t, "category"))
    got = s.conditions(w, t, None, s.rng.choice((0, 1)), avoid=(c,))
    if got is None:
        return None
    conds, use_or = got
    noun, name = w.noun(t), w.col(c)
    who = with_conds(noun.pl, conds, use_or)
    q = Select([c.sql], t.sql, distinct=True, where=conds)
    forms = [f"What are the distinct {plural_phrase(name)} of {who}?", f"List the different {plural_phrase(name)} of {who}.",
             f"Show each distinct {name} among {who}.", f"Which {plural_phrase(name)} do {who} have? List each once."]
    return Example(q, cap(s.choice(forms)), "distinct")


def p_count(s: Sampler, w: Words) -> Example | None:
    """SELECT count(*) FROM t [WHERE ...]."""
    t = s.choice(s.db.tables)
    got = s.conditions(w, t, None, s.rng.choice((0, 1, 1, 2)))
    if got is None:
        return None
    conds, use_or = got
    noun = w.noun(t)
    q = Select(["count(*)"], t.sql, where=conds, where_or=use_or)
    if not conds:
        return Example(q, cap(s.choice(COUNT_ALL).format(n=noun.pl)), "count")
    return Example(q, cap(w.count(noun.pl, join_phrase(conds, use_or))), "count")


def p_count_distinct(s: Sampler, w: Words) -> Example | None:
    """SELECT count(DISTINCT category) FROM t [WHERE ...]."""
    t = s.choice([t for t in s.db.tables if s.attrs(t, "category", "year")])
    if t is None:
        return None
    c = s.choice(s.attrs(t, "category", "year"))
    got = s.conditions(w, t, None, s.rng.choice((0, 1)), avoid=(c,))
    if got is None:
        return None
    conds, use_or = got
    noun, name = w.noun(t), plural_phrase(w.col(c))
    who = with_conds(noun.pl, conds, use_or)
    q = Select([f"count(DISTINCT {c.sql})"], t.sql, where=conds)
    forms = [f"How many different {name} do {who} have?", f"Count the distinct {name} among {who}.",
             f"How many distinct {name} are there among {who}?", f"What is the number of different {name} of {who}?"]
    return Example(q, cap(s.choice(forms)), "count_distinct")


def _aggregates(s: Sampler, t: Table) -> list[tuple[str, Column]]:
    out = []
    for c in s.attrs(t, *ORDERABLE):
        funcs = ["max", "min"] + (["avg"] if c.kind in MEASURES else [])
        funcs += ["sum"] if c.attribute and c.attribute.additive else []
        out += [(f, c) for f in funcs]
    return out


def p_aggregate(s: Sampler, w: Words) -> Example | None:
    """SELECT agg(m)[, agg(m')] FROM t [WHERE ...]."""
    t = s.choice([t for t in s.db.tables if _aggregates(s, t)])
    if t is None:
        return None
    aggs = _aggregates(s, t)
    picked = [s.choice(aggs)]
    if s.rng.random() < 0.3:
        second = s.choice([a for a in aggs if a != picked[0]])
        if second:
            picked.append(second)
    got = s.conditions(w, t, None, s.rng.choice((0, 0, 1, 1, 2)), avoid=tuple(c for _, c in picked))
    if got is None:
        return None
    conds, use_or = got
    noun = w.noun(t)
    who = with_conds(noun.pl, conds, use_or)
    q = Select([f"{f}({c.sql})" for f, c in picked], t.sql, where=conds, where_or=use_or)
    said = " and the ".join(f"{w.agg(f, c)} {w.col(c)}" for f, c in picked)
    forms = [f"What is the {said} of {who}?", f"Find the {said} among {who}.", f"Show the {said} of {who}.",
             f"Give the {said} across {who}."]
    if len(picked) == 2 and picked[0][1] is picked[1][1]:
        f1, f2, c = picked[0][0], picked[1][0], picked[0][1]
        forms = [f"What are the {w.agg(f1, c)} and {w.agg(f2, c)} {w.col(c)} of {who}?",
                 f"Show the {w.agg(f1, c)} and the {w.agg(f2, c)} {w.col(c)} among {who}."]
    return Example(q, cap(s.choice(forms)), "aggregate")


def p_top(s: Sampler, w: Words) -> Example | None:
    """SELECT columns FROM t [WHERE ...] ORDER BY m DIR LIMIT k: superlatives and top-k."""
    t = s.choice([t for t in s.labelled if s.attrs(t, *ORDERABLE)])
    if t is None:
        return None
    key = s.choice(s.attrs(t, *ORDERABLE))
    got = s.conditions(w, t, None, s.rng.choice((0, 0, 1, 1, 2)), avoid=(key,))
    if got is None:
        return None
    conds, use_or = got
    direction = s.rng.choice(("ASC", "DESC"))
    k = s.rng.choice((1, 1, 1, 2, 3, 5))
    cols = [c for c in s.shown(t, s.rng.choice((1, 1, 2))) if c is not key] or [t.label]
    noun = w.noun(t)
    q = Select([c.sql for c in cols], t.sql, where=conds, where_or=use_or, order=(key.sql, direction), limit=k)
    what, hi, name = w.cols_list(cols, many=k > 1), w.high(direction, key), w.col(key)
    cond_txt = (" " + join_phrase(conds, use_or)) if conds else ""
    if k == 1:
        forms = [f"What is the {what} of the {noun.sg}{cond_txt} with the {hi} {name}?",
                 f"Which {noun.sg}{cond_txt} has the {hi} {name}? Give its {what}.",
                 f"Find the {what} of the {noun.sg} with the {hi} {name}{', among those' + cond_txt if conds else ''}."]
        sup = w.superlative(key, direction)
        if sup and not conds:
            forms.append(f"What is the {what} of the {sup} {noun.sg}?")
    else:
        forms = [f"{w.opener()} the {what} of the {k} {noun.pl}{cond_txt} with the {hi} {name}.",
                 f"What are the {what} of the {k} {noun.pl}{cond_txt} with the {hi} {name}?"]
        if direction == "DESC" and key.kind in MEASURES:
            forms.append(f"{w.opener()} the {what} of the top {k} {noun.pl}{cond_txt} by {name}.")
    return Example(q, cap(s.choice(forms)), "top")


def p_group(s: Sampler, w: Words) -> Example | None:
    """GROUP BY a category: counts or aggregates per group, HAVING, the biggest group."""
    t = s.choice([t for t in s.db.tables if s.attrs(t, "category")])
    if t is None:
        return None
    g = s.choice(s.attrs(t, "category"))
    got = s.conditions(w, t, None, s.rng.choice((0, 0, 0, 1)), )
    if got is None or any(c.column is g for c in got[0]):
        return None
    conds, use_or = got
    noun, gname = w.noun(t), w.col(g)
    who = with_conds(noun.pl, conds, use_or)
    aggs = [a for a in _aggregates(s, t) if a[0] != "sum" or s.rng.random() < 0.5]
    variant = s.rng.choice(("count", "count", "agg", "having", "having_agg", "top", "top", "ranked", "top_agg"))
    q = Select([g.sql], t.sql, where=conds, where_or=use_or, group_by=[g.sql])
    if variant == "count":
        q.items = [g.sql, "count(*)"]
        forms = [f"How many {who} are there for each {gname}?", f"For each {gname}, how many {who} are there?",
                 f"Show each {gname} and the number of {who}.", f"Count the {who} in each {gname}.",
                 f"What is the number of {who} per {gname}?"]
    elif variant in ("agg", "having_agg", "top_agg"):
        if not aggs:
            return None
        f, m = s.choice(aggs)
        if variant == "agg":
            q.items = [g.sql, f"{f}({m.sql})"]
            forms = [f"What is the {w.agg(f, m)} {w.col(m)} of {who} for each {gname}?",
                     f"For each {gname}, show the {w.agg(f, m)} {w.col(m)} of the {who}.",
                     f"Show the {w.agg(f, m)} {w.col(m)} of {who}, grouped by {gname}."]
        elif variant == "having_agg":
            per_group = {}
            for row in t.rows:
                key, val = row[t.index(g)], row[t.index(m)]
                if key is not None and val is not None:
                    per_group.setdefault(key, []).append(val)
            if f != "avg" or len(per_group) < 3:
                return None
            means = sorted(sum(v) / len(v) for v in per_group.values())
            x = fmt(round(means[len(means) // 2], 1) if m.kind in MEASURES else int(means[len(means) // 2]))
            op = s.rng.choice((">", "<"))
            q.having = Cond(f"avg({m.sql}) {op} {x}", "")
            side = "above" if op == ">" else "below"
            forms = [f"Which {plural_phrase(gname)} have {article(w.agg('avg'))} {w.col(m)} of {who} {side} {x}?",
                     f"List the {plural_phrase(gname)} whose {who} have an average {w.col(m)} {side} {x}."]
        else:
            if f not in ("avg", "sum"):  # "the highest maximum ..." reads badly
                return None
            direction = s.rng.choice(("ASC", "DESC"))
            q.order, q.order_aggs, q.limit = (f"{f}({m.sql})", direction), 1, 1
            if m.kind not in MEASURES:
                return None
            forms = [f"Which {gname} has the {w.high(direction)} {w.agg(f)} {w.col(m)} of {who}?",
                     f"Find the {gname} whose {who} have the {w.high(direction)} {w.agg(f)} {w.col(m)}."]
    elif variant == "having":
        sizes = sorted({sum(1 for r in t.rows if r[t.index(g)] == v) for v in set(t.values(g))})
        if len(sizes) < 2:
            return None
        k = s.choice(sizes[1:])
        op = s.rng.choice((">=", ">=", ">"))
        k = k - 1 if op == ">" else k
        q.having = Cond(f"count(*) {op} {k}", "")
        amount = f"at least {k}" if op == ">=" else f"more than {k}"
        forms = [f"Which {plural_phrase(gname)} have {amount} {who}?",
                 f"List the {plural_phrase(gname)} shared by {amount} {who}.",
                 f"Find each {gname} with {amount} {who}."]
    elif variant == "top":
        direction = s.rng.choice(("DESC", "DESC", "ASC"))
        q.order, q.order_aggs, q.limit = ("count(*)", direction), 1, 1
        most = "most" if direction == "DESC" else "fewest"
        common = "most common" if direction == "DESC" else "least common"
        forms = [f"Which {gname} has the {most} {who}?", f"What is the {common} {gname} among {who}?",
                 f"Find the {gname} with the {'largest' if direction == 'DESC' else 'smallest'} number of {who}."]
    else:  # ranked
        q.items = [g.sql, "count(*)"]
        q.order, q.order_aggs = ("count(*)", "DESC"), 1
        forms = [f"List each {gname} with its number of {who}, from the most to the fewest.",
                 f"Show the {plural_phrase(gname)} and how many {who} each has, sorted by that count in descending order."]
    return Example(q, cap(s.choice(forms)), f"group_{variant}")


# ----------------------------------------------------------------------------- productions: joins

def p_join_rows(s: Sampler, w: Words) -> Example | None:
    """child JOIN parent: children filtered by their parent, or shown with their parent's name."""
    variant = s.rng.choice(("filter", "filter", "filter", "with_parent", "count", "aggregate", "parents"))
    needs = {"filter": lambda r: r.child.label, "with_parent": lambda r: r.child.label and r.parent.label,
             "parents": lambda r: r.parent.label, "aggregate": lambda r: _aggregates(s, r.child)}
    r = s.choice([r for r in s.relations if needs.get(variant, lambda r: True)(r)])
    if r is None:
        return None
    child, parent = r.child, r.parent
    cn, pn = w.noun(child), w.noun(parent)
    rel = r.fk.reference
    source = join(child, r.fk.column, parent, r.fk.parent_key)
    if variant == "parents":  # parents that have some child with a condition
        cond = s.condition(w, child, "T1")
        if cond is None:
            return None
        q = Select([f"T2.{parent.label.sql}"], source, distinct=True, where=[cond])
        p2c = rel.parent_to_child
        label = w.cols_list([parent.label])
        forms = [f"{w.opener()} the {label} of {pn.pl} {p2c} {cn.pl} {cond.phrase}.",
                 f"Which {pn.pl} have at least one {cn.sg} {cond.phrase}? Give their {label}.",
                 f"What are the {label} of the {pn.pl} that have {cn.pl} {cond.phrase}?"]
        return Example(q, cap(s.choice(forms)), "join_parents")
    if variant == "with_parent":
        cols = s.shown(child, s.rng.choice((1, 2)))
        q = Select([f"T1.{c.sql}" for c in cols] + [f"T2.{parent.label.sql}"], source)
        pl = w.col(parent.label)
        forms = [f"{w.opener()} the {w.cols_list(cols)} of each {cn.sg} together with the {pl} of its {pn.sg}.",
                 f"For every {cn.sg}, show its {w.cols_list(cols)} and the {pl} of the {pn.sg} it is {rel.child_to_parent}.",
                 f"What are the {w.cols_list(cols)} of all {cn.pl} and the {pl} of their {pn.pl}?"]
        if s.rng.random() < 0.3 and s.attrs(child, *ORDERABLE):
            key = s.choice(s.attrs(child, *ORDERABLE))
            direction = s.rng.choice(("ASC", "DESC"))
            q.order = (f"T1.{key.sql}", direction)
            forms = [f[:-1] + w.order(key, direction) + "." for f in forms if f.endswith(".")]
        return Example(q, cap(s.choice(forms)), "join_with_parent")
    # the children of parents with a condition (or of one named parent)
    named = s.name_equals(w, parent, "T2") if parent.label and s.rng.random() < 0.4 else None
    if named:
        cond, naming = named
        whose = f"{rel.child_to_parent} {naming}"
    else:
        cond = s.condition(w, parent, "T2")
        if cond is None:
            return None
        whose = f"{rel.child_to_parent} {article(pn.sg)} {cond.phrase}"
    extra = s.condition(w, child, "T1") if s.rng.random() < 0.25 else None
    conds = [cond] + ([extra] if extra else [])
    clause = whose + (f" and {extra.phrase}" if extra else "")
    who = f"{cn.pl} {clause}"
    if variant == "count":
        q = Select(["count(*)"], source, where=conds)
        return Example(q, cap(w.count(cn.pl, clause)), "join_count")
    if variant == "aggregate":
        f, m = s.choice(_aggregates(s, child))
        q = Select([f"{f}(T1.{m.sql})"], source, where=conds)
        forms = [f"What is the {w.agg(f, m)} {w.col(m)} of {who}?", f"Find the {w.agg(f, m)} {w.col(m)} among {who}."]
        return Example(q, cap(s.choice(forms)), "join_aggregate")
    cols = s.shown(child, s.rng.choice((1, 1, 2)))
    q = Select([f"T1.{c.sql}" for c in cols], source, where=conds)
    forms = [f"{w.opener()} the {w.cols_list(cols)} of {who}.", f"What are the {w.cols_list(cols)} of the {who}?"]
    which = w.which(cn.pl, clause)
    if which:
        forms.append(f"{which}? Give their {w.cols_list(cols)}.")
    return Example(q, cap(s.choice(forms)), "join_filter")


def p_join_group(s: Sampler, w: Words) -> Example | None:
    """parent JOIN child GROUP BY parent: children per parent, HAVING, the parent with the most."""
    r = s.choice(s.named_relations)
    if r is None:
        return None
    child, parent = r.child, r.parent
    cn, pn, pl = w.noun(child), w.noun(parent), w.col(parent.label)
    source = join(parent, r.pk, child, r.fk.column)
    group = [f"T1.{r.pk.sql}"]
    variant = s.rng.choice(("count", "having", "top", "top", "agg", "top_agg"))
    cond = s.condition(w, child, "T2") if s.rng.random() < 0.3 else None
    conds = [cond] if cond else []
    kids = cn.pl + (f" {cond.phrase}" if cond else "")
    if variant == "count":
        q = Select([f"T1.{parent.label.sql}", "count(*)"], source, where=conds, group_by=group)
        forms = [f"For each {pn.sg}, show its {pl} and the number of {kids}.",
                 f"How many {kids} does each {pn.sg} have? List the {pl} and the count.",
                 f"Show the {pl} of every {pn.sg} together with its number of {kids}."]
        return Example(q, cap(s.choice(forms)), "join_group_count")
    if variant == "having":
        counts = {}
        for row in child.rows:
            counts[row[child.index(r.fk.column)]] = counts.get(row[child.index(r.fk.column)], 0) + 1
        sizes = sorted(set(counts.values()))
        if len(sizes) < 2:
            return None
        k = s.choice(sizes[len(sizes) // 3:])
        op = s.rng.choice((">=", ">"))
        k = k - 1 if op == ">" else k
        amount = f"at least {k}" if op == ">=" else f"more than {k}"
        q = Select([f"T1.{parent.label.sql}"], source, where=conds, group_by=group,
                   having=Cond(f"count(*) {op} {k}", ""))
        forms = [f"{w.opener()} the {pl} of {pn.pl} that have {amount} {kids}.",
                 f"Which {pn.pl} have {amount} {kids}? Give their {pl}."]
        return Example(q, cap(s.choice(forms)), "join_having")
    if variant == "top":
        direction = s.rng.choice(("DESC", "DESC", "ASC"))
        most = "most" if direction == "DESC" else "fewest"
        q = Select([f"T1.{parent.label.sql}"], source, where=conds, group_by=group,
                   order=("count(*)", direction), order_aggs=1, limit=1)
        forms = [f"Which {pn.sg} has the {most} {kids}? Give its {pl}.",
                 f"What is the {pl} of the {pn.sg} with the {most} {kids}?",
                 f"Find the {pl} of the {pn.sg} that has the {most} {kids}."]
        return Example(q, cap(s.choice(forms)), "join_top")
    aggs = _aggregates(s, child)
    if not aggs:
        return None
    f, m = s.choice(aggs)
    if variant == "top_agg" and (m.kind not in MEASURES or f not in ("avg", "sum")):
        return None
    if variant == "agg":
        q = Select([f"T1.{parent.label.sql}", f"{f}(T2.{m.sql})"], source, where=conds, group_by=group)
        forms = [f"For each {pn.sg}, what is the {w.agg(f, m)} {w.col(m)} of its {kids}? Show the {pl} too.",
                 f"Show the {pl} of each {pn.sg} and the {w.agg(f, m)} {w.col(m)} of its {kids}."]
        return Example(q, cap(s.choice(forms)), "join_group_agg")
    direction = s.rng.choice(("ASC", "DESC"))
    q = Select([f"T1.{parent.label.sql}"], source, where=conds, group_by=group,
               order=(f"{f}(T2.{m.sql})", direction), order_aggs=1, limit=1)
    hi = w.high(direction)
    forms = [f"Which {pn.sg} has the {hi} {w.agg(f)} {w.col(m)} of its {kids}? Give its {pl}.",
             f"Find the {pl} of the {pn.sg} whose {kids} have the {hi} {w.agg(f)} {w.col(m)}."]
    return Example(q, cap(s.choice(forms)), "join_top_agg")


def p_link(s: Sampler, w: Words) -> Example | None:
    """a JOIN link JOIN b: rows of a related to a named (or filtered) b through a link table."""
    if not s.links:
        return None
    a, lt, b, fa, fb, verb = s.choice(s.links)
    if a.label is None:
        return None
    an, bn = w.noun(a), w.noun(b)
    apk, bpk = a.primary_key[0], b.primary_key[0]
    source = (f"{a.sql} AS T1 JOIN {lt.sql} AS T2 ON T1.{apk.sql} = T2.{fa.column.sql} "
              f"JOIN {b.sql} AS T3 ON T2.{fb.column.sql} = T3.{bpk.sql}")
    named = s.name_equals(w, b, "T3") if b.label else None
    variant = s.rng.choice(("rows", "rows", "count", "top"))
    if variant == "top":
        direction = s.rng.choice(("DESC", "DESC", "ASC"))
        most = "most" if direction == "DESC" else "fewest"
        q = Select([f"T1.{a.label.sql}"], f"{a.sql} AS T1 JOIN {lt.sql} AS T2 ON T1.{apk.sql} = T2.{fa.column.sql}",
                   group_by=[f"T1.{apk.sql}"], order=("count(*)", direction), order_aggs=1, limit=1)
        forms = [f"Which {an.sg} {verb} the {most} {bn.pl}? Give its {w.col(a.label)}.",
                 f"What is the {w.col(a.label)} of the {an.sg} {verb} the {most} {bn.pl}?"]
        return Example(q, cap(s.choice(forms)), "link_top")
    if named and s.rng.random() < 0.7:
        cond, naming = named
        distinct = False  # a link table holds each (a, b) pair once
        target = naming
    else:
        cond = s.condition(w, b, "T3")
        if cond is None:
            return None
        distinct = True
        target = f"{article(bn.sg)} {cond.phrase}"
    clause = f"{verb} {target}"
    who = f"{an.pl} {clause}"
    if variant == "count":
        q = Select([f"count(DISTINCT T1.{apk.sql})" if distinct else "count(*)"], source,
                   where=[cond])
        return Example(q, cap(w.count(an.pl, clause)), "link_count")
    cols = s.shown(a, s.rng.choice((1, 1, 2)))
    q = Select([f"T1.{c.sql}" for c in cols], source, distinct=distinct, where=[cond])
    forms = [f"{w.opener()} the {w.cols_list(cols)} of the {who}.", f"What are the {w.cols_list(cols)} of {who}?"]
    which = w.which(an.pl, clause)
    if which:
        forms.append(f"{which}? Give their {w.cols_list(cols)}.")
    return Example(q, cap(s.choice(forms)), "link_rows")


def p_chain(s: Sampler, w: Words) -> Example | None:
    """grandchild JOIN child JOIN parent: two foreign-key hops, filtered by the parent."""
    if not s.chains:
        return None
    r1, r2 = s.choice(s.chains)  # r1: gc -> c, r2: c -> p
    gc, c, p = r1.child, r1.parent, r2.parent
    gn, cn = w.noun(gc), w.noun(c)
    source = (f"{gc.sql} AS T1 JOIN {c.sql} AS T2 ON T1.{r1.fk.column.sql} = T2.{quote(r1.fk.parent_key)} "
              f"JOIN {p.sql} AS T3 ON T2.{r2.fk.column.sql} = T3.{quote(r2.fk.parent_key)}")
    named = s.name_equals(w, p, "T3")
    if named is None:
        return None
    cond, naming = named
    clause = f"{r1.fk.reference.child_to_parent} {cn.pl} {r2.fk.reference.child_to_parent} {naming}"
    who = f"{gn.pl} {clause}"
    if gc.label is None or s.rng.random() < 0.4:
        q = Select(["count(*)"], source, where=[cond])
        return Example(q, cap(w.count(gn.pl, clause)), "chain_count")
    cols = s.shown(gc, s.rng.choice((1, 2)))
    q = Select([f"T1.{col.sql}" for col in cols], source, where=[cond])
    forms = [f"{w.opener()} the {w.cols_list(cols)} of {who}.", f"What are the {w.cols_list(cols)} of the {who}?"]
    return Example(q, cap(s.choice(forms)), "chain_rows")


# ----------------------------------------------------------------------------- productions: nesting

def p_nested_compare(s: Sampler, w: Words) -> Example | None:
    """WHERE m op (SELECT agg(m) FROM t [WHERE ...]): above the average, the maximum, ..."""
    t = s.choice([t for t in s.labelled if s.attrs(t, *MEASURES)])
    if t is None:
        return None
    m = s.choice(s.attrs(t, *MEASURES))
    noun, name = w.noun(t), w.col(m)
    variant = s.rng.choice(("avg", "avg", "avg_filtered", "max", "max_filtered"))
    cols = s.shown(t, s.rng.choice((1, 1, 2)))
    what = w.cols_list(cols)
    if variant == "max":
        direction = s.rng.choice(("max", "min"))
        cond = Cond(f"{m.sql} = (SELECT {direction}({m.sql}) FROM {t.sql})", "", nested=1)
        hi = "highest" if direction == "max" else "lowest"
        q = Select([c.sql for c in cols], t.sql, where=[cond])
        forms = [f"What is the {what} of the {noun.sg} with the {hi} {name}?",
                 f"Find the {what} of the {noun.pl} whose {name} equals the {direction}imum {name}."]
        return Example(q, cap(s.choice(forms)), "nested_extreme")
    op = s.rng.choice((">", "<"))
    inner = None
    if variant in ("avg_filtered", "max_filtered"):
        inner = s.condition(w, t, None, avoid=(m, t.label))
        if inner is None:
            return None
    func = "avg" if variant.startswith("avg") else ("max" if op == ">" else "min")
    sub = f"SELECT {func}({m.sql}) FROM {t.sql}" + (f" WHERE {inner.sql}" if inner else "")
    side = "above" if op == ">" else "below"
    more = "higher" if op == ">" else "lower"
    if func == "avg" and inner is None:
        phrase = s.choice([f"whose {name} is {side} the average", f"with {name} {side} the average {name}",
                           f"with a {more}-than-average {name}", f"whose {name} is {more} than the average {name}"])
    elif func == "avg":
        phrase = s.choice([f"whose {name} is {more} than the average {name} of {noun.pl} {inner.phrase}",
                           f"with {name} {side} the average of the {noun.pl} {inner.phrase}"])
    else:
        every = "every" if s.rng.random() < 0.5 else "any"
        phrase = s.choice([f"whose {name} is {more} than that of {every} {noun.sg} {inner.phrase}",
                           f"with a {name} {more} than the {name} of {every} {noun.sg} {inner.phrase}"])
    cond = Cond(f"{m.sql} {op} ({sub})", phrase, nested=1)
    count = s.rng.random() < 0.2
    q = Select(["count(*)"] if count else [c.sql for c in cols], t.sql, where=[cond])
    if count:
        return Example(q, cap(w.count(noun.pl, phrase)), "nested_count")
    forms = [f"{w.opener()} the {what} of {noun.pl} {phrase}.", f"What are the {what} of the {noun.pl} {phrase}?"]
    which = w.which(noun.pl, phrase)
    if which:
        forms.append(f"{which}? Give their {what}.")
    return Example(q, cap(s.choice(forms)), f"nested_{variant}")


def p_nested_in(s: Sampler, w: Words) -> Example | None:
    """WHERE key [NOT] IN (SELECT fk FROM child [WHERE ...]): parents with or without some child."""
    r = s.choice(s.named_relations)
    if r is None:
        return None
    child, parent = r.child, r.parent
    cn, pn = w.noun(child), w.noun(parent)
    negated = s.rng.random() < 0.6
    inner = s.condition(w, child, None) if s.rng.random() < (0.4 if negated else 0.9) else None
    sub = f"SELECT {r.fk.column.sql} FROM {child.sql}" + (f" WHERE {inner.sql}" if inner else "")
    kids = f"{cn.pl} {inner.phrase}" if inner else cn.pl
    kid = f"{cn.sg} {inner.phrase}" if inner else cn.sg
    if negated:
        phrase = s.choice([f"that have no {kids}", f"without any {kid}", f"with no {kids}"])
    else:
        phrase = s.choice([f"that have at least one {kid}", f"{r.fk.reference.parent_to_child} {kids}",
                           f"with some {kid}"])
    cond = Cond(f"{r.pk.sql} {'NOT IN' if negated else 'IN'} ({sub})", phrase, negated=negated, nested=1)
    if s.rng.random() < 0.25:
        q = Select(["count(*)"], parent.sql, where=[cond])
        return Example(q, cap(w.count(pn.pl, phrase)), "nested_in_count")
    cols = s.shown(parent, s.rng.choice((1, 1, 2)))
    q = Select([c.sql for c in cols], parent.sql, where=[cond])
    what = w.cols_list(cols)
    forms = [f"{w.opener()} the {what} of {pn.pl} {phrase}.", f"What are the {what} of the {pn.pl} {phrase}?"]
    which = w.which(pn.pl, phrase)
    if which:
        forms.append(f"{which}? Give their {what}.")
    return Example(q, cap(s.choice(forms)), "nested_in")


def p_from_subquery(s: Sampler, w: Words) -> Example | None:
    """SELECT ... FROM (SELECT ... GROUP BY ...): statistics over groups."""
    r = s.choice(s.relations)
    if r is None:
        return None
    child, parent = r.child, r.parent
    cn, pn = w.noun(child), w.noun(parent)
    fk = r.fk.column.sql
    variant = s.rng.choice(("count_having", "max_total", "avg_count"))
    if variant == "count_having":
        counts = sorted({sum(1 for row in child.rows if row[child.index(r.fk.column)] == k)
                         for k in set(child.values(r.fk.column))})
        if len(counts) < 3:
            return None
        k = s.choice(counts[1:-1])
        q = Select(["count(*)"], f"(SELECT {fk} FROM {child.sql} GROUP BY {fk} HAVING count(*) > {k})")
        forms = [f"How many {pn.pl} have more than {k} {cn.pl}?", f"Count the {pn.pl} with more than {k} {cn.pl}."]
        return Example(q, cap(s.choice(forms)), "from_count_having")
    if variant == "max_total":
        totals = [c for c in s.attrs(child, *MEASURES) if c.attribute and c.attribute.additive]
        if not totals:
            return None
        m = s.choice(totals)
        func = s.rng.choice(("max", "min"))
        q = Select([f"{func}(total)"], f"(SELECT sum({m.sql}) AS total FROM {child.sql} GROUP BY {fk})")
        hi = "largest" if func == "max" else "smallest"
        forms = [f"What is the {hi} total {w.col(m)} of the {cn.pl} of a single {pn.sg}?",
                 f"Across {pn.pl}, what is the {hi} sum of {w.col(m)} over one {pn.sg}'s {cn.pl}?"]
        return Example(q, cap(s.choice(forms)), "from_max_total")
    q = Select(["avg(n)"], f"(SELECT count(*) AS n FROM {child.sql} GROUP BY {fk})")
    forms = [f"On average, how many {cn.pl} does a {pn.sg} that has any have?",
             f"What is the average number of {cn.pl} per {pn.sg}, counting only {pn.pl} that have at least one?"]
    return Example(q, cap(s.choice(forms)), "from_avg_count")


# ----------------------------------------------------------------------------- productions: set operations

def p_set(s: Sampler, w: Words) -> Example | None:
    """INTERSECT / UNION / EXCEPT of two selects on one table."""
    t = s.choice(s.labelled)
    if t is None:
        return None
    noun = w.noun(t)
    op = s.rng.choice(("INTERSECT", "UNION", "EXCEPT", "EXCEPT"))
    cats = s.attrs(t, "category")
    on_category = op == "INTERSECT" or (op == "EXCEPT" and cats and s.rng.random() < 0.5)
    shown = s.choice(cats) if on_category and cats else t.label
    if on_category and not cats:
        return None
    measures = s.attrs(t, *ORDERABLE)
    if op == "INTERSECT" and measures and s.rng.random() < 0.7:
        # the categories that have both a high and a low value of one measure: a real intersection
        m = s.choice(measures)
        high, low = s.quantile(t, m, 0.6, 0.9), s.quantile(t, m, 0.1, 0.4)
        c1 = Cond(f"{m.sql} > {literal(high)}", w.compare(m, ">", high), column=m)
        c2 = Cond(f"{m.sql} < {literal(low)}", w.compare(m, "<", low), column=m)
    else:
        c1 = s.condition(w, t, None, avoid=(shown,))
        c2 = s.condition(w, t, None, avoid=(shown,))
    if c1 is None or c2 is None or c1.sql == c2.sql:
        return None
    name = w.col(shown)
    left = Select([shown.sql], t.sql, where=[c1] if op != "EXCEPT" else [])
    right = Select([shown.sql], t.sql, where=[c2])
    left.compound = (op, right)
    if op == "INTERSECT":
        forms = [f"Which {plural_phrase(name)} have both {noun.pl} {c1.phrase} and {noun.pl} {c2.phrase}?",
                 f"Find the {plural_phrase(name)} shared by {noun.pl} {c1.phrase} and by {noun.pl} {c2.phrase}."]
    elif op == "UNION":
        forms = [f"{w.opener()} the {name} of {noun.pl} {c1.phrase} or {c2.phrase}.",
                 f"What are the {name} of the {noun.pl} {c1.phrase}, and of those {c2.phrase}?",
                 f"Find the {name} of every {noun.sg} {c1.phrase}, together with those {c2.phrase}."]
    elif on_category:
        forms = [f"Which {plural_phrase(name)} have no {noun.sg} {c2.phrase}?",
                 f"Find the {plural_phrase(name)} of {noun.pl}, except those that also occur among {noun.pl} {c2.phrase}."]
    else:
        forms = [f"{w.opener()} the {name} of all {noun.pl} except those {c2.phrase}.",
                 f"Find the {name} of the {noun.pl} other than the ones {c2.phrase}."]
    return Example(left, cap(s.choice(forms)), f"set_{op.lower()}")


def p_join_set(s: Sampler, w: Words) -> Example | None:
    """Set operations over joins: parents with children of two kinds, or without a kind of child."""
    r = s.choice(s.named_relations)
    if r is None:
        return None
    child, parent = r.child, r.parent
    cn, pn, pl = w.noun(child), w.noun(parent), w.col(parent.label)
    source = join(parent, r.pk, child, r.fk.column)
    op = s.rng.choice(("INTERSECT", "EXCEPT", "UNION"))
    c2 = s.condition(w, child, "T2")
    if c2 is None:
        return None
    right = Select([f"T1.{parent.label.sql}"], source, where=[c2])
    if op == "INTERSECT":
        c1 = s.condition(w, child, "T2")
        if c1 is None or c1.sql == c2.sql:
            return None
        left = Select([f"T1.{parent.label.sql}"], source, where=[c1])
        forms = [f"Which {pn.pl} have both {cn.pl} {c1.phrase} and {cn.pl} {c2.phrase}? Give their {pl}.",
                 f"Find the {pl} of {pn.pl} that have {article(cn.sg)} {c1.phrase} and also {article(cn.sg)} {c2.phrase}."]
    elif op == "EXCEPT":
        left = Select([parent.label.sql], parent.sql)
        forms = [f"{w.opener()} the {pl} of {pn.pl} that do not have any {cn.sg} {c2.phrase}.",
                 f"Which {pn.pl} have no {cn.pl} {c2.phrase}? Give their {pl}."]
    else:
        c1 = s.condition(w, parent, None)
        if c1 is None:
            return None
        left = Select([parent.label.sql], parent.sql, where=[c1])
        forms = [f"{w.opener()} the {pl} of {pn.pl} {c1.phrase}, and of those that have {cn.pl} {c2.phrase}.",
                 f"Find the {pl} of {pn.pl} {c1.phrase}, together with those that have {article(cn.sg)} {c2.phrase}."]
    left.compound = (op, right)
    return Example(left, cap(s.choice(forms)), f"join_set_{op.lower()}")


# ----------------------------------------------------------------------------- the grammar's entry point

# production -> weight per target level: which productions tend to give which Spider level
PRODUCTIONS = (
    (p_rows, {"easy": 5, "medium": 3, "hard": 0.5, "extra": 0.3}),
    (p_distinct, {"easy": 1, "medium": 0.3}),
    (p_count, {"easy": 3, "medium": 1.5, "hard": 0.2}),
    (p_count_distinct, {"easy": 1, "medium": 0.3}),
    (p_aggregate, {"easy": 3, "medium": 2, "hard": 0.3}),
    (p_top, {"easy": 0.2, "medium": 3, "hard": 2, "extra": 1}),
    (p_group, {"easy": 1.5, "medium": 2.5, "hard": 2, "extra": 0.8}),
    (p_join_rows, {"medium": 3, "hard": 2.5, "extra": 1}),
    (p_join_group, {"medium": 1.5, "hard": 1.5, "extra": 3}),
    (p_link, {"medium": 0.5, "hard": 2.5, "extra": 1.5}),
    (p_chain, {"hard": 1.5, "extra": 0.5}),
    (p_nested_compare, {"hard": 2.5, "extra": 1.5}),
    (p_nested_in, {"hard": 2.5, "extra": 1.5}),
    (p_from_subquery, {"easy": 0.6, "medium": 0.3}),
    (p_set, {"hard": 2.5, "extra": 1.5}),
    (p_join_set, {"extra": 3}),
)


def sample(s: Sampler, target: str) -> Example | None:
    """One query with its question, drawn from the productions that suit the target level (its
    actual level may differ: the caller files it under Select.level())."""
    productions = [(p, weights[target]) for p, weights in PRODUCTIONS if target in weights]
    production = s.rng.choices([p for p, _ in productions], [wt for _, wt in productions])[0]
    return production(s, Words(s.rng))

