"""Question/SQL templates, generic over a schema description (placeholders: see slots.py).

Every template is instantiated on every domain, so a pattern learnt on concerts transfers to books.
The wording determines the SQL: one phrase always means one construct ("greater than" -> `>`,
"at least" -> `>=`, "descending order of" -> `ORDER BY ... DESC`, "that have no" -> `NOT IN`).
SQL follows Spider's style: uppercase keywords, lowercase functions, single-quoted strings, and
`T1`, `T2`, `T3` aliases in joins, T1 being the table whose columns are returned.

`level` is the template's Spider hardness under the official rules (evaluation.py of Spider):
component1 counts WHERE, GROUP BY, ORDER BY, LIMIT, each JOIN, OR and LIKE; component2 counts
nested queries and INTERSECT/UNION/EXCEPT; "others" counts >1 aggregate, >1 selected column,
>1 WHERE condition, >1 GROUP BY column. Each template's comment gives its (comp1, comp2, others);
eval.hardness computes the same levels from the SQL (tests/test_sqlbench.py checks they agree)."""

from __future__ import annotations

from dataclasses import dataclass

from data.sqlbench import slots as S
from data.sqlbench.slots import COMPARE, ORDERS, Filler, expand, only, with_count

LEVELS = ("easy", "medium", "hard", "extra")

JOIN_CP = "{ct} AS T1 JOIN {pt} AS T2 ON T1.{fk} = T2.{ppk}"  # child first: child's columns returned
JOIN_PC = "{pt} AS T1 JOIN {ct} AS T2 ON T1.{ppk} = T2.{fk}"  # parent first
JOIN_LINK = "{at} AS T1 JOIN {lt} AS T2 ON T1.{apk} = T2.{afk} JOIN {bt} AS T3 ON T2.{bfk} = T3.{bpk}"


@dataclass(frozen=True)
class Template:
    name: str
    level: str
    fill: Filler
    sql: str
    questions: tuple[str, ...]  # paraphrases; any of them must mean exactly `sql`


def T(name: str, level: str, fill: Filler, sql: str, *questions: str) -> Template:
    assert level in LEVELS and 2 <= len(questions) <= 4, name
    return Template(name, level, fill, sql.replace("JOIN_CP", JOIN_CP).replace("JOIN_PC", JOIN_PC)
                    .replace("JOIN_LINK", JOIN_LINK), questions)


TEMPLATES: tuple[Template, ...] = (
    # ------------------------------------------------------------------ easy
    T("count_all", "easy", S.any_tables,  # (0, 0, 0)
      "SELECT count(*) FROM {t}",
      "How many {pl} are there?", "Count the number of {pl}.", "What is the total number of {pl}?"),
    T("list_column", "easy", S.columns,  # (0, 0, 0)
      "SELECT {c} FROM {t}",
      "List the {cp} of all {pl}.", "What is the {cp} of each {sg}?", "Show the {cp} of every {sg}."),
    T("filter_eq", "easy", S.equalities,  # (1, 0, 0)
      "SELECT {L} FROM {t} WHERE {c} = {vs}",
      "List the {Lp} of {pl} whose {cp} is {v}.", "Find the {Lp} of the {pl} with {cp} {v}.",
      "Which {pl} have {cp} {v}? Give their {Lp}."),
    T("count_eq", "easy", S.any_equalities,  # (1, 0, 0)
      "SELECT count(*) FROM {t} WHERE {c} = {vs}",
      "How many {pl} have {cp} {v}?", "Count the {pl} whose {cp} is {v}.",
      "What is the number of {pl} with {cp} {v}?"),
    T("filter_compare", "easy", expand(S.thresholds, *COMPARE),  # (1, 0, 0)
      "SELECT {L} FROM {t} WHERE {m} {op} {x}",
      "List the {Lp} of {pl} whose {mp} is {than} {x}.", "Which {pl} have {mp} {over} {x}? Give their {Lp}.",
      "Find the {Lp} of {pl} with {mp} {than} {x}."),
    T("aggregate", "easy", S.aggregates,  # (0, 0, 0)
      "SELECT {f}({m}) FROM {t}",
      "What is the {fw} {mp} of all {pl}?", "Find the {fw} {mp} of {pl}.", "Show the {fw} {mp} across all {pl}."),
    T("aggregate_eq", "easy", S.equality_aggregates,  # (1, 0, 0)
      "SELECT {f}({m}) FROM {t} WHERE {c} = {vs}",
      "What is the {fw} {mp} of {pl} whose {cp} is {v}?", "Find the {fw} {mp} among {pl} with {cp} {v}.",
      "For {pl} with {cp} {v}, what is the {fw} {mp}?"),
    T("distinct", "easy", S.categories,  # (0, 0, 0)
      "SELECT DISTINCT {c} FROM {t}",
      "What are the distinct {cp} values of {pl}?", "List all the different {cp} values of {pl}.",
      "Show each distinct {cp} of the {pl}."),
    T("count_distinct", "easy", S.categories,  # (0, 0, 0)
      "SELECT count(DISTINCT {c}) FROM {t}",
      "How many distinct {cp} values do {pl} have?", "Count the number of different {cp} values among {pl}.",
      "How many different {cp} values are there for {pl}?"),
    T("between", "easy", S.ranges,  # (1, 0, 0): BETWEEN is one condition
      "SELECT {L} FROM {t} WHERE {m} BETWEEN {a} AND {b}",
      "List the {Lp} of {pl} whose {mp} is between {a} and {b}.",
      "Which {pl} have {mp} between {a} and {b}? Give their {Lp}.", "Find the {Lp} of {pl} with {mp} from {a} to {b}."),
    T("lookup", "easy", S.lookups,  # (1, 0, 0)
      "SELECT {c} FROM {t} WHERE {L} = {lvs}",
      "What is the {cp} of the {sg} whose {Lp} is {lv}?", "Find the {cp} of the {sg} {lv}.",
      "Give the {cp} of the {sg} with {Lp} {lv}."),
    T("order_by", "easy", expand(S.numbers, *ORDERS),  # (1, 0, 0)
      "SELECT {L} FROM {t} ORDER BY {m} {dir}",
      "List the {Lp} of all {pl} in {dword} order of {mp}.", "Show the {Lp} of {pl} sorted by {mp} from {frm} to {to}.",
      "List the {Lp} of {pl} ordered by {mp} in {dword} order."),
    T("group_having", "easy", S.group_sizes,  # (1, 0, 0): Spider counts no aggregate in HAVING
      "SELECT {c} FROM {t} GROUP BY {c} HAVING count(*) >= {k}",
      "Which {cp} values have at least {k} {pl}?", "Show the {cp} values shared by at least {k} {pl}.",
      "Find each {cp} that has {k} or more {pl}."),
    # ------------------------------------------------------------------ medium
    T("two_columns", "medium", S.attributes,  # (0, 0, 1)
      "SELECT {L}, {c} FROM {t}",
      "List the {Lp} and {cp} of all {pl}.", "Show the {Lp} and {cp} of every {sg}.",
      "What are the {Lp} and {cp} of each {sg}?"),
    T("top_one", "medium", expand(S.numbers, *ORDERS),  # (2, 0, 0)
      "SELECT {L} FROM {t} ORDER BY {m} {dir} LIMIT 1",
      "What is the {Lp} of the {sg} with the {hi} {mp}?", "Which {sg} has the {hi} {mp}? Give its {Lp}.",
      "Find the {Lp} of the {sg} whose {mp} is the {hi}."),
    T("top_k", "medium", with_count(expand(S.numbers, *ORDERS)),  # (2, 0, 0)
      "SELECT {L} FROM {t} ORDER BY {m} {dir} LIMIT {k}",
      "List the {Lp} of the {k} {pl} with the {hi} {mp}.", "Show the {Lp} of the {k} {pl} whose {mp} is the {hi}.",
      "Which {k} {pl} have the {hi} {mp}? Give their {Lp}."),
    T("group_count", "medium", S.categories,  # (1, 0, 1)
      "SELECT {c}, count(*) FROM {t} GROUP BY {c}",
      "How many {pl} are there for each {cp}?", "Show each {cp} and the number of {pl} with it.",
      "Count the {pl} for each {cp}."),
    T("group_aggregate", "medium", S.group_measures,  # (1, 0, 1)
      "SELECT {c}, {f}({m}) FROM {t} GROUP BY {c}",
      "What is the {fw} {mp} of {pl} for each {cp}?", "Show each {cp} and the {fw} {mp} of its {pl}.",
      "For each {cp}, find the {fw} {mp} of {pl}."),
    T("filter_and", "medium", S.equality_and_threshold,  # (1, 0, 1)
      "SELECT {L} FROM {t} WHERE {c} = {vs} AND {m} > {x}",
      "List the {Lp} of {pl} whose {cp} is {v} and whose {mp} is greater than {x}.",
      "Which {pl} have {cp} {v} and {mp} above {x}? Give their {Lp}.",
      "Find the {Lp} of {pl} with {cp} {v} and {mp} greater than {x}."),
    T("filter_or", "medium", S.value_pairs,  # (2, 0, 1)
      "SELECT {L} FROM {t} WHERE {c} = {v1s} OR {c} = {v2s}",
      "List the {Lp} of {pl} whose {cp} is {v1} or {v2}.", "Which {pl} have {cp} {v1} or {v2}? Give their {Lp}.",
      "Find the {Lp} of {pl} with {cp} either {v1} or {v2}."),
    T("count_or", "medium", S.any_value_pairs,  # (2, 0, 1)
      "SELECT count(*) FROM {t} WHERE {c} = {v1s} OR {c} = {v2s}",
      "How many {pl} have {cp} {v1} or {v2}?", "Count the {pl} whose {cp} is either {v1} or {v2}.",
      "What is the number of {pl} with {cp} {v1} or {v2}?"),
    T("like", "medium", S.label_words,  # (2, 0, 0): WHERE + LIKE
      "SELECT {L} FROM {t} WHERE {L} LIKE '%{w}%'",
      "List the {Lp} of {pl} whose {Lp} contains {w}.", "Which {pl} have {w} in their {Lp}? Give the {Lp}.",
      "Find the {Lp} of {pl} with a {Lp} containing the word {w}."),
    T("stats", "medium", S.measures,  # (0, 0, 2)
      "SELECT avg({m}), min({m}), max({m}) FROM {t}",
      "What are the average, minimum and maximum {mp} of {pl}?",
      "Show the average, minimum and maximum {mp} across all {pl}.",
      "Find the average, lowest and highest {mp} of all {pl}."),
    T("join_filter", "medium", S.parent_equalities,  # (2, 0, 0)
      "SELECT T1.{cL} FROM JOIN_CP WHERE T2.{pc} = {vs}",
      "List the {cLp} of {cpl} {rel} {pone} whose {pcp} is {v}.",
      "Find the {cLp} of all {cpl} {rel} {pone} with {pcp} {v}.",
      "Show the {cLp} of the {cpl} {rel} {pone} whose {pcp} is {v}."),
    T("join_named", "medium", S.parent_names,  # (2, 0, 0)
      "SELECT T1.{cL} FROM JOIN_CP WHERE T2.{pL} = {pvs}",
      "List the {cLp} of {cpl} {rel} the {psg} {pv}.", "Find the {cLp} of all {cpl} {rel} the {psg} named {pv}.",
      "Show the {cLp} of the {cpl} {rel} the {psg} whose {pLp} is {pv}."),
    T("join_parent_filter", "medium", S.child_equalities,  # (2, 0, 0)
      "SELECT DISTINCT T1.{pL} FROM JOIN_PC WHERE T2.{cc} = {vs}",  # "distinct": the only cue for DISTINCT
      "List the distinct {pLp} of {ppl} that have {cone} whose {ccp} is {v}.",
      "Show the distinct {pLp} of the {ppl} with at least one {csg} whose {ccp} is {v}.",
      "Find the distinct {pLp} of {ppl} with {cone} whose {ccp} is {v}."),
    T("join_pair", "medium", S.labelled_relations,  # (1, 0, 1)
      "SELECT T1.{cL}, T2.{pL} FROM JOIN_CP",
      "Show the {cLp} of each {csg} together with the {pLp} of its {psg}.",
      "List the {cLp} of every {csg} and the {pLp} of its {psg}.",
      "For each {csg}, show its {cLp} and the {pLp} of its {psg}."),
    T("join_count", "medium", S.any_parent_equalities,  # (2, 0, 0)
      "SELECT count(*) FROM JOIN_CP WHERE T2.{pc} = {vs}",
      "How many {cpl} are {rel} {pone} whose {pcp} is {v}?", "Count the {cpl} {rel} {pone} with {pcp} {v}.",
      "What is the number of {cpl} {rel} {pone} whose {pcp} is {v}?"),
    T("join_group_count", "medium", S.relations,  # (2, 0, 1)
      "SELECT T1.{pL}, count(*) FROM JOIN_PC GROUP BY T1.{ppk}",
      "Show the {pLp} of each {psg} and the number of {cpl} it has.",
      "For each {psg}, show its {pLp} and its number of {cpl}.",
      "How many {cpl} does each {psg} have? Show the {pLp} and the count."),
    T("join_having", "medium", S.child_counts,  # (2, 0, 0)
      "SELECT T1.{pL} FROM JOIN_PC GROUP BY T1.{ppk} HAVING count(*) >= {k}",
      "List the {pLp} of {ppl} that have at least {k} {cpl}.", "Which {ppl} have {k} or more {cpl}? Give their {pLp}.",
      "Find the {pLp} of the {ppl} with at least {k} {cpl}."),
    T("join_group_aggregate", "medium", S.child_measures,  # (2, 0, 1)
      "SELECT T1.{pL}, {f}(T2.{cm}) FROM JOIN_PC GROUP BY T1.{ppk}",
      "For each {psg}, show its {pLp} and the {fw} {cmp} of its {cpl}.",
      "What is the {fw} {cmp} of the {cpl} of each {psg}? Show the {pLp} too.",
      "Show the {pLp} of every {psg} and the {fw} {cmp} of its {cpl}."),
    # ------------------------------------------------------------------ hard
    T("group_top", "hard", S.categories,  # (3, 0, 0)
      "SELECT {c} FROM {t} GROUP BY {c} ORDER BY count(*) DESC LIMIT 1",
      "Which {cp} has the most {pl}?", "What is the {cp} with the largest number of {pl}?",
      "Find the {cp} shared by the most {pl}."),
    T("group_top_average", "hard", expand(S.category_thresholds, *ORDERS),  # (3, 0, 0)
      "SELECT {c} FROM {t} GROUP BY {c} ORDER BY avg({m}) {dir} LIMIT 1",
      "Which {cp} has the {hi} average {mp} of {pl}?", "Find the {cp} whose {pl} have the {hi} average {mp}.",
      "What is the {cp} with the {hi} average {mp} among {pl}?"),
    T("compare_average", "hard", expand(S.measures, *COMPARE),  # (1, 1, 0)
      "SELECT {L} FROM {t} WHERE {m} {op} (SELECT avg({m}) FROM {t})",
      "List the {Lp} of {pl} whose {mp} is {than} the average {mp}.",
      "Which {pl} have {mp} {over} the average? Give their {Lp}.",
      "Find the {Lp} of {pl} with {mp} {than} the average {mp} of all {pl}."),
    T("no_children", "hard", S.childless,  # (1, 1, 0)
      "SELECT {pL} FROM {pt} WHERE {ppk} NOT IN (SELECT {fk} FROM {ct})",
      "List the {pLp} of {ppl} that have no {cpl}.", "Which {ppl} do not have any {cpl}? Give their {pLp}.",
      "Find the {pLp} of {ppl} without any {csg}."),
    T("count_no_children", "extra", S.childless,  # (1, 1, 1): the official code counts a NOT-ed
      # WHERE condition as an aggregation, so with count(*) that is two
      "SELECT count(*) FROM {pt} WHERE {ppk} NOT IN (SELECT {fk} FROM {ct})",
      "How many {ppl} have no {cpl}?", "Count the {ppl} that do not have any {cpl}.",
      "What is the number of {ppl} without any {csg}?"),
    T("no_children_with", "hard", S.child_equalities,  # (1, 1, 0)
      "SELECT {pL} FROM {pt} WHERE {ppk} NOT IN (SELECT {fk} FROM {ct} WHERE {cc} = {vs})",
      "List the {pLp} of {ppl} that have no {csg} whose {ccp} is {v}.",
      "Which {ppl} do not have any {csg} with {ccp} {v}? Give their {pLp}.",
      "Find the {pLp} of {ppl} without {cone} whose {ccp} is {v}."),
    T("intersect", "hard", S.category_thresholds,  # (1, 1, 0)
      "SELECT {c} FROM {t} WHERE {m} > {x} INTERSECT SELECT {c} FROM {t} WHERE {m} < {y}",
      "Which {cp} values have both {pl} with {mp} above {x} and {pl} with {mp} below {y}?",
      "Find the {cp} values that have {pl} with {mp} greater than {x} and also {pl} with {mp} less than {y}.",
      "Show the {cp} values shared by {pl} with {mp} above {x} and by {pl} with {mp} below {y}."),
    T("except", "hard", S.category_thresholds,  # (0, 1, 0)
      "SELECT {c} FROM {t} EXCEPT SELECT {c} FROM {t} WHERE {m} > {x}",
      "Which {cp} values have no {sg} with {mp} above {x}?",
      "Find the {cp} values for which no {sg} has {mp} greater than {x}.",
      "Show the {cp} values that do not have any {pl} with {mp} above {x}."),
    T("union", "hard", S.category_value_thresholds,  # (1, 1, 0)
      "SELECT {L} FROM {t} WHERE {c} = {vs} UNION SELECT {L} FROM {t} WHERE {m} > {x}",
      "List the {Lp} of {pl} that either have {cp} {v} or have {mp} above {x}.",
      "Find the {Lp} of {pl} whose {cp} is {v} or whose {mp} is greater than {x}.",
      "Which {pl} have {cp} {v} or {mp} above {x}? Give their {Lp}."),
    T("link_named", "hard", S.link_names,  # (3, 0, 0): two JOINs + WHERE
      "SELECT T1.{aL} FROM JOIN_LINK WHERE T3.{bL} = {bvs}",
      "List the {aLp} of {apl} {rel} the {bsg} {bv}.", "Find the {aLp} of all {apl} {rel} the {bsg} {bv}.",
      "Show the {aLp} of the {apl} {rel} the {bsg} whose {bLp} is {bv}."),
    T("link_count", "hard", S.link_names,  # (3, 0, 0)
      "SELECT count(*) FROM JOIN_LINK WHERE T3.{bL} = {bvs}",
      "Count the {apl} {rel} the {bsg} {bv}.", "What is the number of {apl} {rel} the {bsg} {bv}?",
      "Find the number of {apl} {rel} the {bsg} whose {bLp} is {bv}."),
    T("join_filter_order", "hard", expand(S.parent_equality_child_measures, *ORDERS),  # (3, 0, 0)
      "SELECT T1.{cL} FROM JOIN_CP WHERE T2.{pc} = {vs} ORDER BY T1.{cm} {dir}",
      "List the {cLp} of {cpl} {rel} {pone} whose {pcp} is {v}, in {dword} order of {cmp}.",
      "Show the {cLp} of the {cpl} {rel} {pone} with {pcp} {v}, sorted by {cmp} from {frm} to {to}.",
      "For {cpl} {rel} {pone} whose {pcp} is {v}, list the {cLp} ordered by {cmp} in {dword} order."),
    # ------------------------------------------------------------------ extra
    T("join_top", "extra", S.labelled_relations,  # (4, 0, 0); link tables: see link_top
      "SELECT T1.{pL} FROM JOIN_PC GROUP BY T1.{ppk} ORDER BY count(*) DESC LIMIT 1",
      "What is the {pLp} of the {psg} with the most {cpl}?",
      "Which {psg} has the largest number of {cpl}? Give its {pLp}.",
      "Find the {pLp} of the {psg} that has the most {cpl}."),
    T("join_top_average", "extra", expand(only(S.child_measures, f="avg"), *ORDERS),  # (4, 0, 0)
      "SELECT T1.{pL} FROM JOIN_PC GROUP BY T1.{ppk} ORDER BY avg(T2.{cm}) {dir} LIMIT 1",
      "Which {psg} has the {hi} average {cmp} of its {cpl}? Give its {pLp}.",
      "Find the {pLp} of the {psg} whose {cpl} have the {hi} average {cmp}.",
      "What is the {pLp} of the {psg} with the {hi} average {cmp} over its {cpl}?"),
    T("join_intersect", "extra", S.child_value_pairs,  # (2, 1, 0)
      "SELECT T1.{pL} FROM JOIN_PC WHERE T2.{cc} = {v1s} INTERSECT SELECT T1.{pL} FROM JOIN_PC WHERE T2.{cc} = {v2s}",
      "Which {ppl} have both {cone} with {ccp} {v1} and {cone} with {ccp} {v2}? Give their {pLp}.",
      "Find the {pLp} of {ppl} that have {cone} whose {ccp} is {v1} and also {cone} whose {ccp} is {v2}.",
      "List the {pLp} of the {ppl} with {cpl} of both {ccp} {v1} and {ccp} {v2}."),
    T("two_columns_average", "extra", expand(S.measures, *COMPARE),  # (1, 1, 1)
      "SELECT {L}, {m} FROM {t} WHERE {m} {op} (SELECT avg({m}) FROM {t})",
      "List the {Lp} and {mp} of {pl} whose {mp} is {than} the average.",
      "Show the {Lp} and {mp} of every {sg} with {mp} {over} the average {mp}.",
      "Which {pl} have {mp} {than} the average? Give their {Lp} and {mp}."),
    T("no_children_columns", "extra", S.childless_attributes,  # (1, 1, 1)
      "SELECT {pL}, {pc} FROM {pt} WHERE {ppk} NOT IN (SELECT {fk} FROM {ct})",
      "List the {pLp} and {pcp} of {ppl} that have no {cpl}.",
      "Show the {pLp} and {pcp} of every {psg} without any {csg}.",
      "Which {ppl} do not have any {cpl}? Give their {pLp} and {pcp}."),
    T("join_filter_top", "extra", expand(S.parent_equality_child_measures, *ORDERS),  # (4, 0, 0)
      "SELECT T1.{cL} FROM JOIN_CP WHERE T2.{pc} = {vs} ORDER BY T1.{cm} {dir} LIMIT 1",
      "Among the {cpl} {rel} {pone} whose {pcp} is {v}, which has the {hi} {cmp}? Give its {cLp}.",
      "What is the {cLp} of the {csg} with the {hi} {cmp} among those {rel} {pone} with {pcp} {v}?",
      "Find the {cLp} of the {csg} {rel} {pone} whose {pcp} is {v} that has the {hi} {cmp}."),
    T("link_top", "extra", S.link_directions,  # (4, 0, 0)
      "SELECT T1.{aL} FROM {at} AS T1 JOIN {lt} AS T2 ON T1.{apk} = T2.{afk} "
      "GROUP BY T1.{apk} ORDER BY count(*) DESC LIMIT 1",
      "Find the {aLp} of the {asg} {rel} the most {bpl}.",
      "What is the {aLp} of the {asg} {rel} the largest number of {bpl}?",
      "Give the {aLp} of the {asg} {rel} the most {bpl}."),
    T("link_intersect", "extra", S.link_name_pairs,  # (3, 1, 0)
      "SELECT T1.{aL} FROM JOIN_LINK WHERE T3.{bL} = {bv1s} "
      "INTERSECT SELECT T1.{aL} FROM JOIN_LINK WHERE T3.{bL} = {bv2s}",
      "List the {aLp} of {apl} {rel} both the {bsg} {bv1} and the {bsg} {bv2}.",
      "Find the {aLp} of the {apl} {rel} the {bsg} {bv1} and also the {bsg} {bv2}.",
      "Show the {aLp} of all {apl} {rel} both {bv1} and {bv2}."),
    T("group_top_filtered", "extra", S.category_thresholds,  # (4, 0, 0)
      "SELECT {c} FROM {t} WHERE {m} > {y} GROUP BY {c} ORDER BY count(*) DESC LIMIT 1",
      "Among {pl} with {mp} above {y}, which {cp} is the most common?",
      "Which {cp} has the most {pl} with {mp} greater than {y}?",
      "Find the {cp} with the largest number of {pl} whose {mp} is above {y}."),
    T("above_average_with", "extra", S.category_value_measures,  # (1, 1, 1)
      "SELECT {L} FROM {t} WHERE {c} = {vs} AND {m} > (SELECT avg({m}) FROM {t})",
      "List the {Lp} of {pl} with {cp} {v} whose {mp} is above the average {mp} of all {pl}.",
      "Which {pl} have {cp} {v} and {mp} greater than the average {mp} of all {pl}? Give their {Lp}.",
      "Find the {Lp} of {pl} whose {cp} is {v} and whose {mp} is above the overall average."),
)
