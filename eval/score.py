"""Score prediction files with the official evaluator's interface: no model, no generation.

    python -m eval.score --gold gold.txt --pred pred.txt --db spider/database --table spider/tables.json \\
        --etype all --out runs/scored

The arguments of test-suite-sql-eval's `evaluation.py` (its underscore spellings --keep_distinct and
--plug_value are accepted too): gold lines are `SQL<TAB>db_id`, prediction lines one SQL query each (a
`<TAB>db_id` after it is ignored), blank lines skipped in both, as the official script reads them;
--db holds <db_id>/<db_id>.sqlite; --table is Spider's tables.json (without it the schema is read from
each SQLite file). Prints the official table (execution accuracy, exact matching accuracy and the
partial matching rows per hardness level, then our text match under its own heading) and, with --out,
writes eval.json and predictions.jsonl there: one line per example with index, db_id, hardness, exec,
exact, text_match, error (why execution is wrong) and exact_reason. eval.evaluate scores through the
same code (eval/report.score_predictions).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data.files import atomic_write_json, atomic_write_text, check_output_path
from eval.report import ETYPES, build_report, check_databases, format_table, score_predictions


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m eval.score", description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--gold", required=True, help="gold file: SQL<TAB>db_id per line")
    p.add_argument("--pred", required=True, help="prediction file: one SQL query per line, aligned with --gold")
    p.add_argument("--db", required=True, help="directory of <db_id>/<db_id>.sqlite")
    p.add_argument("--table", default=None,
                   help="Spider's tables.json for the exact-set match (default: read each SQLite file's schema)")
    p.add_argument("--etype", default="all", choices=ETYPES,
                   help="exec: execution accuracy, match: exact-set match, all: both (default: all)")
    p.add_argument("--keep-distinct", "--keep_distinct", dest="keep_distinct", action="store_true",
                   help="run DISTINCT as written; without it DISTINCT is removed from both queries, as the official "
                        "evaluator does (default: off)")
    p.add_argument("--plug-value", "--plug_value", dest="plug_value", action="store_true",
                   help="also try the prediction with the gold query's values plugged in (for models that "
                        "predict no values) (default: off)")
    p.add_argument("--out", default=None, help="directory for eval.json and predictions.jsonl (default: print only)")
    return p


def read_lines(path: str | Path, what: str) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_items(gold_path: str | Path, pred_path: str | Path) -> list[dict]:
    """[{db_id, gold, pred, question}] from the two files; mismatched lengths or a gold line without
    its db_id are one-line errors."""
    gold_lines, pred_lines = read_lines(gold_path, "gold"), read_lines(pred_path, "prediction")
    if not gold_lines:
        raise ValueError(f"no examples in {gold_path}")
    if len(gold_lines) != len(pred_lines):
        raise ValueError(f"{gold_path} has {len(gold_lines)} queries but {pred_path} has {len(pred_lines)}: "
                         f"one prediction per gold line is needed")
    items = []
    for number, (gold, pred) in enumerate(zip(gold_lines, pred_lines), start=1):
        sql, tab, db_id = gold.rpartition("\t")
        if not tab or not sql.strip() or not db_id.strip():
            raise ValueError(f"{gold_path}, query {number}: expected SQL<TAB>db_id, got {gold[:60]!r}")
        items.append({"question": "", "db_id": db_id.strip(), "gold": sql.strip(),
                      "pred": pred.split("\t")[0].strip()})
    return items


def run(args: argparse.Namespace) -> dict:
    if args.out:
        check_output_path(Path(args.out))
    if not Path(args.db).is_dir():
        raise ValueError(f"database directory not found: {args.db}")
    if args.table is not None and not Path(args.table).is_file():
        raise ValueError(f"tables file not found: {args.table}")
    items = read_items(args.gold, args.pred)
    check_databases((it["db_id"] for it in items), args.db)
    scored = score_predictions(items, args.db, keep_distinct=args.keep_distinct, plug_value=args.plug_value,
                               etype=args.etype, tables=args.table)
    settings = {"gold": str(args.gold), "pred": str(args.pred), "db": str(args.db), "table": args.table,
                "etype": args.etype, "keep_distinct": args.keep_distinct, "plug_value": args.plug_value}
    report = build_report(scored, settings)
    print(format_table(report["metrics"], args.etype))
    if args.out:
        import json

        out = Path(args.out)
        public = [{k: v for k, v in r.items() if not k.startswith("_") and k != "question"} for r in scored]
        atomic_write_text(out / "predictions.jsonl",
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in public))
        atomic_write_json(out / "eval.json", report)  # last: its presence means the run completed
        print(f"report: {out / 'eval.json'}, per example: {out / 'predictions.jsonl'}")
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (ValueError, KeyError, OSError) as error:  # bad input, a full disk: one line, exit 2
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
