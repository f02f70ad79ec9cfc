"""Question phrasing: the words a question uses for tables, columns, values and each SQL construct.

A question never spells out identifiers: a table is named by its entity's noun or a synonym
("performers" for `singer`), a column by one of its attribute's wordings ("date of birth" for
`dob`), and every construct has several phrasings ("whose age is above 30", "older than 30",
"with an age of more than 30"). Which wording is used is drawn per question, so a model cannot
learn one template per construct. Values are shown as the database holds them, so the literal in
the gold SQL is always in the question."""

from __future__ import annotations

import random
from dataclasses import dataclass

from data.sqlbench.compose import Column, Table
from data.sqlbench.domains import pluralize

AGG_WORDS = {
    "avg": ("average", "mean"),
    "max": ("maximum", "highest", "largest"),
    "min": ("minimum", "lowest", "smallest"),
    "sum": ("total", "combined"),
}
HIGH = {"DESC": ("highest", "largest", "greatest"), "ASC": ("lowest", "smallest")}
# Attributes with their own superlatives: the oldest singer, the cheapest product.
SUPERLATIVES = {
    "age": ("oldest", "youngest"), "price": ("most expensive", "cheapest"), "height": ("tallest", "shortest"),
    "salary": ("best-paid", "lowest-paid"), "birth_date": ("youngest", "oldest"), "capacity": ("largest", "smallest"),
}
LIST_OPENERS = ("List", "Show", "Give", "Return", "Display", "Find", "Get", "Retrieve", "Show me", "Tell me")
QUESTION_OPENERS = ("What are", "Which are")
COUNT_FORMS = ("Count the {n} {c}.", "What is the number of {n} {c}?", "Find the number of {n} {c}.",
               "Return the count of {n} {c}.")
COUNT_ALL = ("How many {n} are there?", "Count the {n}.", "What is the total number of {n}?",
             "Find the number of {n}.", "How many {n} does the database list?", "Give the count of all {n}.")


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def fmt(value: object) -> str:
    """A value as questions and SQL both write it (1200.0 -> 1200: SQLite compares them equal)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def literal(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) else fmt(value)


def plural_phrase(phrase: str) -> str:
    """"blood type" -> "blood types", "date of birth" -> "dates of birth"; plurals stay as they are."""
    for joint in (" of ", " in ", " per "):
        if joint in phrase:
            head, _, tail = phrase.partition(joint)
            return plural_phrase(head) + joint + tail
    if phrase.endswith(("s", "ness", "information")) or phrase in ("GPA", "ABV", "GNP", "h-index", "h index"):
        return phrase
    head, _, last = phrase.rpartition(" ")
    return (head + " " if head else "") + pluralize(last)


@dataclass
class Noun:
    """One table's wording, fixed for one question: singular and plural."""

    sg: str
    pl: str


class Words:
    """The wordings drawn for one question: each table and column keeps one wording throughout."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.nouns: dict[int, Noun] = {}
        self.cols: dict[int, str] = {}
        self.quoted = rng.random() < 0.15  # text values in double quotes, throughout the question
        self.plural_cols = rng.random() < 0.6  # "the names of" rather than "the name of"

    def pick(self, options):
        return options[self.rng.randrange(len(options))]

    def noun(self, t: Table) -> Noun:
        if id(t) not in self.nouns:
            # the entity's own noun half of the time, a synonym otherwise
            i = 0 if len(t.singulars) == 1 or self.rng.random() < 0.5 else self.rng.randrange(1, len(t.singulars))
            self.nouns[id(t)] = Noun(t.singulars[i], t.plurals[i])
        return self.nouns[id(t)]

    def col(self, c: Column) -> str:
        if id(c) not in self.cols:
            self.cols[id(c)] = self.pick(c.phrases)
        return self.cols[id(c)]

    def value(self, value: object) -> str:
        text = fmt(value)
        return f'"{text}"' if isinstance(value, str) and self.quoted else text

    def cols_list(self, cols: list[Column], many: bool = True) -> str:
        """"the names and ages": `many` rows are asked about (plural wording, drawn per question)."""
        names = [plural_phrase(self.col(c)) if many and self.plural_cols else self.col(c) for c in cols]
        if len(names) == 1:
            return names[0]
        return ", ".join(names[:-1]) + " and " + names[-1]

    def agg(self, func: str, c: Column | None = None) -> str:
        if c is not None and c.kind in ("date", "year") and func in ("max", "min"):
            return self.pick(("latest", "most recent") if func == "max" else ("earliest", "first"))
        return self.pick(AGG_WORDS[func])

    def which(self, noun_pl: str, clause: str) -> str | None:
        """"Which singers are older than 30", "Which singers have no concerts": a question head over
        a relative clause, or None when the clause does not read as a predicate ("whose age ...")."""
        first, _, rest = clause.partition(" ")
        if first in ("that", "which", "who"):
            return f"Which {noun_pl} {rest}"
        if first in ("whose", "where", "with", "having", ""):
            return None
        return f"Which {noun_pl} are {clause}"

    def how_many(self, noun_pl: str, clause: str) -> str:
        head = self.which(noun_pl, clause)
        if head and self.rng.random() < 0.6:
            return "How many" + head[len("Which"):] + "?"
        return f"How many {noun_pl} are there {clause}?"

    def count(self, noun_pl: str, clause: str) -> str:
        """A count question over the rows of noun_pl that satisfy clause."""
        if self.rng.random() < 0.4:
            return self.how_many(noun_pl, clause)
        return self.pick(COUNT_FORMS).format(n=noun_pl, c=clause)

    def high(self, direction: str, c: Column | None = None) -> str:
        """"highest" / "lowest"; for dates and years "latest" / "earliest"."""
        if c is not None and c.kind in ("date", "year"):
            return self.pick(("latest", "most recent") if direction == "DESC" else ("earliest",))
        return self.pick(HIGH[direction])

    def opener(self) -> str:
        return self.pick(LIST_OPENERS)

    # ---------------------------------------------------------------- conditions (relative clauses)

    def equals(self, c: Column, v: object) -> str:
        name, val = self.col(c), self.value(v)
        forms = [f"whose {name} is {val}", f"with {name} {val}", f"where the {name} is {val}",
                 f"that have {val} as their {name}", f"with a {name} of {val}"]
        if c.attribute and c.attribute.eq:
            forms += [e.format(v=val) for e in c.attribute.eq] * 2
        return self.pick(forms)

    def not_equals(self, c: Column, v: object) -> str:
        name, val = self.col(c), self.value(v)
        return self.pick([f"whose {name} is not {val}", f"with a {name} other than {val}",
                          f"where the {name} is different from {val}"])

    def compare(self, c: Column, op: str, v: object) -> str:
        name, val = self.col(c), self.value(v)
        generic = {
            ">": [f"whose {name} is greater than {val}", f"with {name} above {val}", f"with a {name} of more than {val}",
                  f"whose {name} exceeds {val}", f"with {name} over {val}", f"having a {name} higher than {val}"],
            "<": [f"whose {name} is less than {val}", f"with {name} below {val}", f"with a {name} of less than {val}",
                  f"whose {name} is under {val}", f"having a {name} lower than {val}"],
            ">=": [f"whose {name} is at least {val}", f"with {name} of {val} or more", f"with a {name} no less than {val}",
                   f"whose {name} is {val} or higher"],
            "<=": [f"whose {name} is at most {val}", f"with {name} of {val} or less", f"with a {name} no more than {val}",
                   f"whose {name} does not exceed {val}"],
        }[op]
        idioms = ()
        if c.attribute and op in (">", "<"):
            idioms = c.attribute.gt if op == ">" else c.attribute.lt
        return self.pick(generic + [i.format(v=val) for i in idioms] * 2)

    def between(self, c: Column, low: object, high: object) -> str:
        name, a, b = self.col(c), self.value(low), self.value(high)
        return self.pick([f"whose {name} is between {a} and {b}", f"with {name} from {a} to {b}",
                          f"with a {name} in the range {a} to {b}", f"with {name} between {a} and {b}"])

    def contains(self, c: Column, word: str) -> str:
        name = self.col(c)
        return self.pick([f"whose {name} contains {word}", f"with {word} in their {name}",
                          f"whose {name} includes the word {word}", f"whose {name} mentions {word}"])

    def starts_with(self, c: Column, prefix: str) -> str:
        name = self.col(c)
        return self.pick([f"whose {name} starts with {prefix}", f"whose {name} begins with {prefix}",
                          f"with a {name} starting with {prefix}"])

    def in_year(self, c: Column, y: str) -> str:
        name = self.col(c)
        return self.pick([f"whose {name} is in {y}", f"with a {name} in {y}", f"with {name} during {y}"])

    def is_null(self, c: Column, negated: bool) -> str:
        name = self.col(c)
        if negated:
            return self.pick([f"that have a {name}", f"with a recorded {name}", f"whose {name} is known",
                              f"whose {name} is not missing"])
        return self.pick([f"with no {name} recorded", f"whose {name} is missing", f"without a {name}",
                          f"whose {name} is unknown"])

    def flag(self, c: Column, yes: bool) -> str:
        adjective = c.attribute.yes
        return self.pick([f"that are {adjective}", f"which are {adjective}"] if yes
                         else [f"that are not {adjective}", f"which are not {adjective}"])

    def superlative(self, c: Column, direction: str) -> str | None:
        """"oldest" for ORDER BY age DESC, or None when the attribute has no such word."""
        words = SUPERLATIVES.get(c.attribute.key) if c.attribute else None
        if not words:
            return None
        return words[0] if direction == "DESC" else words[1]

    def order(self, c: Column, direction: str) -> str:
        name = self.col(c)
        if c.kind == "label" and direction == "ASC":
            return self.pick([" in alphabetical order", f", sorted by {name} alphabetically", f" ordered by {name}"])
        if c.kind in ("date", "year"):
            return self.pick([f", from the latest {name} to the earliest", f", most recent {name} first",
                              f" in descending order of {name}"] if direction == "DESC" else
                             [f", from the earliest {name} to the latest", f", oldest {name} first",
                              f" in chronological order of {name}", f" ordered by {name}"])
        if direction == "DESC":
            return self.pick([f", sorted by {name} in descending order", f" ordered by {name} from highest to lowest",
                              f", from the highest {name} to the lowest", f", with the largest {name} first",
                              f" in descending order of {name}"])
        return self.pick([f", sorted by {name}", f" in ascending order of {name}",
                          f", from the lowest {name} to the highest", f" ordered by {name}",
                          f", sorted by {name} in ascending order"])
