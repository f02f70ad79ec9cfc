"""Score predicted SQL against gold SQL on the benchmark databases, and write the evaluation report.

Per example, bucketed by the Spider hardness of the gold query (eval/hardness.py):
  exec        execution accuracy with test-suite-sql-eval's defaults (eval/metrics.py);
  exact       Spider's exact-set match, as `evaluation.py --etype match` (eval/spider_match.py);
  text_match  our stricter equality of normalised SQL text (eval/metrics.py), printed under its own
              heading: it is not Spider's exact match and is not comparable with published numbers.
The table is the official script's (print_scores): count, EXECUTION ACCURACY, EXACT MATCHING ACCURACY
with its PARTIAL MATCHING accuracy / recall / F1 rows, then SQL TEXT MATCH. eval.score prints it for
prediction files, eval.evaluate for a model's generations.

Files written into the output directory (each atomically, data/files.py):
    eval.json          every number: overall and per level, counts, settings of the run
    predictions.jsonl  one record per example: index, question, db_id, gold, pred, hardness, exec,
                       exact, text_match, error (why execution failed or how the results differ),
                       exact_reason (which components differ, or why the prediction does not parse),
                       raw model output
    mistakes.csv       the examples whose execution is wrong: question, gold, predicted, error
    gold.txt pred.txt  `SQL<TAB>db_id`, one line per example, aligned: the official evaluator runs
                       on them (evaluation.py --gold gold.txt --pred pred.txt --db DIR --etype exec)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from data.files import atomic_write_json, atomic_write_text
from eval.generate import EMPTY_SQL
from eval.hardness import SQLParseError, hardness
from eval.metrics import execution_match, text_match
from eval.spider_match import PARTIAL_COMPONENTS, aggregate_partial, exact_set_match, load_schemas
from eval.sqlite_exec import QueryError, execute, open_readonly, split_statements

LEVELS = ("easy", "medium", "hard", "extra")
COLUMNS = LEVELS + ("all",)
ETYPES = ("all", "exec", "match")
DEFINITIONS = {
    "execution": "test-suite-sql-eval's execution accuracy (evaluation.py --etype exec, its defaults)",
    "exact_match": "Spider's exact-set match (evaluation.py --etype match): components as sets, values "
                   "ignored, aliases resolved, foreign-key columns merged (eval/spider_match.py)",
    "text_match": "equality of normalised SQL text (keyword/identifier case, quotes, whitespace): "
                  "stricter than Spider's exact-set match, not comparable with it",
}


def database_path(db_root: str | Path, db_id: str) -> Path:
    """Spider layout: <db_root>/<db_id>/<db_id>.sqlite."""
    return Path(db_root) / db_id / f"{db_id}.sqlite"


def check_databases(db_ids: Iterable[str], db_root: str | Path) -> None:
    """Every db_id must have its database file; the first that does not raises a one-line ValueError."""
    for db_id in dict.fromkeys(db_ids):
        if not db_id:
            raise ValueError("an example has no db_id: execution accuracy needs Spider-format data "
                             "(db_id, question, query)")
        path = database_path(db_root, db_id)
        if not path.is_file():
            raise ValueError(f"database for db_id {db_id!r} not found: {path} "
                             f"(the database directory must hold <db_id>/<db_id>.sqlite)")


def _flat(sql: str) -> str:
    """One line, for the `SQL<TAB>db_id` files: every whitespace run (tabs, newlines) -> one space."""
    return " ".join(sql.split())


def _level(gold: str) -> str | None:
    try:
        return hardness(gold)
    except SQLParseError:
        return None  # outside the hardness parser's subset: counted in "all" only


class _Connections:
    """One read-only connection per database, opened on first use."""

    def __init__(self, db_root: str | Path):
        self.db_root = Path(db_root)
        self.open: dict[str, sqlite3.Connection] = {}

    def __call__(self, db_id: str) -> sqlite3.Connection:
        if db_id not in self.open:
            path = database_path(self.db_root, db_id)
            if not path.is_file():
                raise ValueError(f"database for db_id {db_id!r} not found: {path}")
            self.open[db_id] = open_readonly(path)
        return self.open[db_id]

    def close(self) -> None:
        for conn in self.open.values():
            conn.close()
        self.open.clear()


def check_gold(items: Sequence[dict], db_root: str | Path) -> None:
    """Run every gold query once: a failing one is a data error, reported before any generation."""
    connect = _Connections(db_root)
    try:
        for i, item in enumerate(items):
            try:
                execute(connect(item["db_id"]), item["gold"])
            except QueryError as exc:
                raise ValueError(f"example {i} (db {item['db_id']}): gold query failed: {exc}") from None
    finally:
        connect.close()


def score_predictions(items: Sequence[dict], db_root: str | Path, *, keep_distinct: bool = False,
                      plug_value: bool = False, etype: str = "all", tables: str | Path | None = None) -> list[dict]:
    """Score items {question, db_id, gold, pred, ...}: returns them with index, hardness, exec, exact,
    text_match, error (why execution is wrong) and exact_reason (why the exact-set match is not).

    exec is None under etype "match", exact None under "exec" and when the gold query is outside
    Spider's parser subset (counted, left out of the exact-match mean). The schema for the exact-set
    match comes from `tables` (Spider's tables.json) or else each SQLite file. Databases are only
    ever opened read-only (eval/sqlite_exec.py); a missing database or a failing gold query raises
    ValueError."""
    if etype not in ETYPES:
        raise ValueError(f"unknown etype {etype!r}; choose one of {', '.join(ETYPES)}")
    connect = _Connections(db_root)
    schemas = load_schemas(tables_json=tables, db_root=db_root)
    scored = []
    try:
        for i, item in enumerate(items):
            gold, pred = item["gold"], item["pred"]
            record = dict(item, index=i, hardness=_level(gold), exec=None, exact=None, error=None,
                          exact_reason=None)
            record["text_match"] = text_match(pred, gold)
            # The empty placeholder keeps files aligned; it is never run, never counted as right.
            empty = pred.strip() in ("", EMPTY_SQL)
            if empty and etype != "match":
                record.update(exec=False, error="empty prediction")
            elif etype != "match":
                try:
                    correct, why = execution_match(connect(item["db_id"]), pred, gold,
                                                   keep_distinct=keep_distinct, plug_value=plug_value)
                except QueryError as exc:  # the gold query failed: a data error, not a wrong answer
                    raise ValueError(f"example {i} (db {item['db_id']}): {exc}") from None
                record.update(exec=correct, error=why)
            if etype != "exec":
                # Spider's parser stops after the first query; a second statement is still wrong here
                several = not empty and len(split_statements(pred)) > 1
                try:
                    result = exact_set_match("" if empty or several else pred, gold, schemas(item["db_id"]))
                except ValueError as exc:  # the gold query is outside the parser's SQL subset
                    record.update(exact_reason=str(exc).splitlines()[0])
                else:
                    record.update(exact=result.exact, _partial=result.partial,
                                  exact_reason="empty prediction" if empty else
                                  "multiple statements" if several else result.reason)
            scored.append(record)
    finally:
        connect.close()
    return scored


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def summarize(scored: Sequence[dict]) -> dict:
    """{level: {count, execution, exact_match, text_match[, partial]}} for easy..extra and all;
    an accuracy is None when no example of the level has it."""
    metrics = {}
    for column in COLUMNS:
        rows = [r for r in scored if column == "all" or r["hardness"] == column]
        metrics[column] = {
            "count": len(rows),
            "execution": _mean([r["exec"] for r in rows]),
            "exact_match": _mean([r["exact"] for r in rows]),
            "text_match": _mean([r["text_match"] for r in rows]),
        }
        partials = [r["_partial"] for r in rows if r.get("_partial") is not None]
        if partials:
            metrics[column]["partial"] = aggregate_partial(partials)
    return metrics


def examples_digest(scored: Sequence[dict]) -> str:
    """sha256 of the (db_id, gold) sequence: two reports compare only if it is equal."""
    text = "\n".join(f"{_flat(r['gold'])}\t{r['db_id']}" for r in scored)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_report(scored: Sequence[dict], settings: dict | None = None) -> dict:
    """The content of eval.json."""
    return {
        "metrics": summarize(scored),
        "counts": {
            "examples": len(scored),
            "execution_correct": sum(bool(r["exec"]) for r in scored),
            "exact_correct": sum(bool(r["exact"]) for r in scored),
            "text_match_correct": sum(r["text_match"] for r in scored),
            "gold_outside_match_parser": sum(1 for r in scored if r["exact"] is None and r["exact_reason"]),
            "prediction_errors": sum(1 for r in scored if (r["error"] or "").startswith("error:")),
            "empty_predictions": sum(1 for r in scored if r["pred"].strip() in ("", EMPTY_SQL)),
            "truncated_generations": sum(1 for r in scored if r.get("stopped") is False),
            "without_hardness": sum(1 for r in scored if r["hardness"] is None),
        },
        "definitions": DEFINITIONS,
        "examples_digest": examples_digest(scored),
        "settings": dict(settings or {}),
    }


# ----------------------------------------------------------------------------- printing

def _row(name: str, values: Sequence, fmt: str) -> str:
    # test-suite-sql-eval: "{:20} " then one 20-wide left-aligned field per column
    return ("{:20} " + " ".join([fmt] * len(values))).format(name, *values).rstrip()


def format_table(metrics: dict, etype: str = "all") -> str:
    """test-suite-sql-eval's table (print_scores): count, execution accuracy, exact matching accuracy
    and the partial matching rows for easy..extra and all; then our text match under its own heading.
    Like the official script, a level without examples shows 0.000."""
    def scores(key: str) -> list[float]:
        return [metrics[c][key] or 0.0 for c in COLUMNS]

    def partial(component: str, key: str) -> list[float]:
        return [metrics[c].get("partial", {}).get(component, {}).get(key, 0.0) for c in COLUMNS]

    lines = [_row("", COLUMNS, "{:20}"), _row("count", [metrics[c]["count"] for c in COLUMNS], "{:<20d}")]
    if etype in ("all", "exec"):
        lines += ["=====================   EXECUTION ACCURACY     =====================",
                  _row("execution", scores("execution"), "{:<20.3f}")]
    if etype in ("all", "match"):
        lines += ["", "====================== EXACT MATCHING ACCURACY =====================",
                  _row("exact match", scores("exact_match"), "{:<20.3f}")]
        for title, key in (("\n---------------------PARTIAL MATCHING ACCURACY----------------------", "acc"),
                           ("---------------------- PARTIAL MATCHING RECALL ----------------------", "rec"),
                           ("---------------------- PARTIAL MATCHING F1 --------------------------", "f1")):
            lines += title.split("\n")
            lines += [_row(component, partial(component, key), "{:<20.3f}") for component in PARTIAL_COMPONENTS]
    lines += ["", "=========== SQL TEXT MATCH (not Spider's exact-set match) ==========",
              _row("text match", scores("text_match"), "{:<20.3f}")]
    return "\n".join(lines)


def format_comparison(base: dict, tuned: dict, names: tuple[str, str] = ("base", "fine-tuned")) -> str:
    """Two eval.json reports side by side per level, with the gain in percentage points.

    Both must come from the same examples (same examples_digest), else ValueError."""
    if base.get("examples_digest") != tuned.get("examples_digest"):
        raise ValueError("the two reports were computed on different examples (examples_digest differs): "
                         "evaluate both on the same --data/--split/--limit")
    b, t = base["metrics"], tuned["metrics"]
    lines = [_row("", COLUMNS, "{:12}"), _row("count", [t[c]["count"] for c in COLUMNS], "{:<12d}")]
    for key, title in (("execution", "execution"), ("exact_match", "exact match"), ("text_match", "text match")):
        before = [b[c][key] or 0.0 for c in COLUMNS]
        after = [t[c][key] or 0.0 for c in COLUMNS]
        lines += [
            title,
            _row(f"  {names[0]}", before, "{:<12.3f}"),
            _row(f"  {names[1]}", after, "{:<12.3f}"),
            _row("  gain (points)", [f"{100 * (a - z):+.1f}" for a, z in zip(after, before)], "{:<12}"),
        ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- files

def _csv_text(rows: Iterable[Sequence]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def write_report(out_dir: str | Path, scored: Sequence[dict], report: dict) -> Path:
    """predictions.jsonl, mistakes.csv, gold.txt, pred.txt and eval.json into `out_dir`."""
    out = Path(out_dir)
    public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in scored]
    atomic_write_text(out / "predictions.jsonl",
                      "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in public))
    mistakes = [("index", "db_id", "hardness", "question", "gold", "predicted", "error")]
    mistakes += [(i, r["db_id"], r["hardness"] or "", r["question"], r["gold"], r["pred"], r["error"] or "")
                 for i, r in enumerate(scored) if r["exec"] is False]
    atomic_write_text(out / "mistakes.csv", _csv_text(mistakes))
    atomic_write_text(out / "gold.txt", "".join(f"{_flat(r['gold'])}\t{r['db_id']}\n" for r in scored))
    atomic_write_text(out / "pred.txt", "".join(f"{_flat(r['pred']) or EMPTY_SQL}\t{r['db_id']}\n" for r in scored))
    atomic_write_json(out / "eval.json", report)  # last: an eval.json means the files beside it are complete
    return out


def load_report(path: str | Path) -> dict:
    """An eval.json, given as the file or the directory holding it."""
    path = Path(path)
    if path.is_dir():
        path = path / "eval.json"
    if not path.is_file():
        raise ValueError(f"evaluation report not found: {path}")
    try:
        report = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"cannot read {path} as JSON: {exc}") from None
    if "metrics" not in report:
        raise ValueError(f"{path} is not an eval.json written by eval.evaluate (no 'metrics')")
    return report
