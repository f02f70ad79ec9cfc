"""Evaluate a model on text-to-SQL: greedy generation, execution accuracy and Spider's exact-set match by hardness.

    python -m eval.evaluate --split heldout_db --limit 64 --out runs/eval-base       # bundled SmolLM2
    python -m eval.evaluate --adapter runs/x/adapter --split heldout_domain --out runs/x/eval
    python -m eval.evaluate --adapter runs/x/adapter --merge runs/x/merged --out runs/x/eval-merged
    python -m eval.evaluate --adapter runs/x/adapter --out runs/x/eval --compare runs/eval-base
    python -m eval.evaluate --model DIR --data spider/dev.json --out runs/spider-dev
    python -m eval.evaluate --data validation.csv --db-dir spider/database --out runs/csv-eval

Data: "bundled" (the generated benchmark, --split heldout_db|heldout_domain|test|train), a Spider JSON file (with
tables.json and database/<db_id>/<db_id>.sqlite beside it, or --tables / --db-dir), a BIRD JSON file
(dev.json with dev_databases/ beside it; its evidence goes into the prompt), a Spider- or BIRD-layout
directory (<dir>/<split>.json), or seed 000's CSV (db_id, query, question) with --db-dir. The prompt
carries the schema DDL whenever data/formats.load_examples finds it (--sample-rows N: N rows of each
table under its CREATE TABLE), built exactly as in training.

Python API, e.g. for an evaluation at the end of training:
    examples, db_root = evaluation_data("bundled", "heldout_db")
    report = evaluate_model(model, tokenizer, examples, db_root, run_dir / "eval", limit=64)
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import transformers
from torch import nn

from data.files import check_output_path
from engine.device import resolve_compute_dtype, resolve_device
from eval.generate import DECODERS, extract_sql, generate
from eval.report import (build_report, check_databases, check_gold, format_comparison, format_table,
                         load_report, score_predictions, write_report)

# the last <USER_QUERY> block: the instruction above it mentions the tag too
_QUESTION = re.compile(r".*<USER_QUERY>\s*(.*?)\s*</USER_QUERY>", re.DOTALL)


# ----------------------------------------------------------------------------- data

def evaluation_data(data: str, split: str = "heldout_db", *, tables: str | None = None,
                    db_dir: str | None = None, schema: bool = True, sample_rows: int = 0) -> tuple[list[dict], Path]:
    """(examples, database root) for `data` as the CLI's --data/--split/--tables/--db-dir/--no-schema/
    --sample-rows take it, and as train.py builds its prompts from the same flags.

    Examples are load_examples rows {messages, db_id, answer}, their prompts built exactly as
    training builds them; the database root holds <db_id>/<db_id>.sqlite (bundled: the benchmark's
    database/; a Spider or BIRD file or directory: database/ or <split>_databases/ beside it unless
    --db-dir)."""
    from data.formats import default_database_dir, load_examples

    if data == "bundled":
        from data.sqlbench import bundled_benchmark_dir, split_name

        if tables or db_dir:
            raise ValueError("--tables and --db-dir apply to Spider files; the bundled benchmark has its own")
        split = split_name(split)  # before the corpus is built
        db_root = bundled_benchmark_dir() / "database"
    else:
        path = Path(data)
        if not path.exists():
            raise ValueError(f"data file not found: {path}")
        if db_dir is not None:
            db_root = Path(db_dir)
        else:
            db_root = default_database_dir(path / f"{split}.json" if path.is_dir() else path)
    if not db_root.is_dir():
        raise ValueError(f"database directory not found: {db_root} (give --db-dir DIR holding "
                         f"<db_id>/<db_id>.sqlite)")
    examples = load_examples(data, split, schema=schema, tables=tables if schema else None,
                             db_dir=str(db_root) if data != "bundled" and schema else None, sample_rows=sample_rows)
    return examples.to_list(), db_root


def question_of(example: dict) -> str:
    """The natural-language question: a "question" field, else the <USER_QUERY> part of the prompt
    (data/prompts.py), else the whole last user message."""
    if example.get("question"):
        return str(example["question"])
    user = [m["content"] for m in example["messages"] if m["role"] == "user"]
    text = user[-1] if user else ""
    found = _QUESTION.search(text)
    return found.group(1) if found else text.strip()


def spread_indices(total: int, limit: int | None) -> list[int]:
    """`limit` indices spread evenly over range(total), first one 0; all of them if limit is None.

    Benchmark files are often grouped by database and difficulty (Spider's dev.json, the earlier
    bundled corpus), so the first N examples would measure one database or level only."""
    if limit is None or limit >= total:
        return list(range(total))
    if limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    return [i * total // limit for i in range(limit)]


# ----------------------------------------------------------------------------- the evaluation

def evaluate_model(model: nn.Module, tokenizer, examples: Sequence[dict], db_root: str | Path,
                   out_dir: str | Path | None, *, batch_size: int = 16, max_new_tokens: int = 160,
                   limit: int | None = None, settings: dict | None = None, keep_distinct: bool = False,
                   decoder: str = "auto", plug_value: bool = False, tables: str | Path | None = None,
                   log: Callable[[str], None] | None = print) -> dict:
    """Generate, score and write the report for `examples` (rows {messages, db_id, answer}).

    The model may be in training (a PeftModel mid-run): its train/eval mode and use_cache are
    restored afterwards. Returns the eval.json content, written to `out_dir` unless it is None (a
    validation during training keeps only the number); prints the table when `log` is given."""
    examples = list(examples)
    if not examples:
        raise ValueError("no examples to evaluate")
    picked = [examples[i] for i in spread_indices(len(examples), limit)]
    items = [{"question": question_of(e), "db_id": str(e.get("db_id") or ""), "gold": e["answer"]}
             for e in picked]
    # Everything that can fail on the data fails here, before minutes of generation.
    check_databases((it["db_id"] for it in items), db_root)
    check_gold(items, db_root)

    started = time.perf_counter()
    outputs = generate(model, tokenizer, [e["messages"] for e in picked], batch_size=batch_size,
                       max_new_tokens=max_new_tokens, decoder=decoder, progress=log is not None)
    seconds = time.perf_counter() - started
    for item, out in zip(items, outputs):
        item.update(pred=extract_sql(out.text), raw=out.text, generated_tokens=out.num_tokens,
                    stopped=out.stopped)

    scored = score_predictions(items, db_root, keep_distinct=keep_distinct, plug_value=plug_value, tables=tables)
    timing = {
        "generation_seconds": round(seconds, 2),
        "examples_per_second": round(len(items) / seconds, 4),
        "generated_tokens_per_second": round(sum(o.num_tokens for o in outputs) / seconds, 2),
        "mean_generated_tokens": round(sum(o.num_tokens for o in outputs) / len(outputs), 2),
    }
    run_settings = dict(settings or {}, batch_size=batch_size, max_new_tokens=max_new_tokens,
                        limit=limit, db_root=str(db_root), keep_distinct=keep_distinct,
                        plug_value=plug_value, decoder=decoder, **timing)
    report = build_report(scored, run_settings)
    if out_dir is not None:
        write_report(out_dir, scored, report)
    if log is not None:
        log(format_table(report["metrics"]))
        counts = report["counts"]
        log(f"{len(items)} examples in {seconds:.1f} s ({timing['examples_per_second']:.3f} examples/s, "
            f"{timing['generated_tokens_per_second']:.1f} generated tokens/s); "
            f"{counts['prediction_errors']} predictions failed to run, {counts['empty_predictions']} empty, "
            f"{counts['truncated_generations']} cut at --max-new-tokens {max_new_tokens}")
        if counts["without_hardness"]:
            log(f"note: {counts['without_hardness']} gold queries are outside the hardness parser's SQL "
                f"subset: counted in 'all' only")
        if out_dir is not None:
            log(f"report: {Path(out_dir) / 'eval.json'}, mistakes: {Path(out_dir) / 'mistakes.csv'}, "
                f"official-evaluator files: gold.txt, pred.txt")
    return report


# ----------------------------------------------------------------------------- command line

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def _int_at_least(minimum: int):
    """An argparse type: a whole number >= minimum, else argparse's one-line error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


_positive_int, _non_negative_int = _int_at_least(1), _int_at_least(0)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m eval.evaluate", description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--model", default=None,
                   help="model spec: smollm2-135m-instruct, arch:<preset>, or a model directory (default: the "
                        "adapter's run's model from runs/<name>/config.json, else smollm2-135m-instruct)")
    p.add_argument("--adapter", default=None,
                   help="PEFT adapter directory of a run, runs/<name>/adapter (default: the base model alone)")
    p.add_argument("--merge", default=None, metavar="OUT_DIR",
                   help="merge the adapter into its base, save the standalone model to OUT_DIR, evaluate that "
                        "(default: evaluate the adapter unmerged)")
    p.add_argument("--merge-base", default="auto", choices=("auto", "dequantized", "original"),
                   help="weights to merge into: dequantized = the 4-bit weights the adapter was trained on, "
                        "original = the checkpoint's float weights; auto = dequantized for qlora runs, else "
                        "original (default: auto)")
    p.add_argument("--quant", default="auto", choices=("auto", "none", "nf4", "fp4"),
                   help="base weights: auto = as the adapter's run trained (qlora: 4-bit), float without an "
                        "adapter (default: auto)")
    p.add_argument("--data", default="bundled",
                   help="bundled, a Spider .json/.csv file, a BIRD .json file, or a Spider or BIRD directory "
                        "(default: bundled)")
    p.add_argument("--split", default="heldout_db",
                   help="bundled split: heldout_db (databases never trained on, of training domains), "
                        "heldout_domain (domains never trained on; also: heldout), test, train; "
                        "a Spider or BIRD directory: the name of its <split>.json (default: heldout_db)")
    p.add_argument("--tables", default=None, help="Spider tables.json (default: tables.json beside the data file)")
    p.add_argument("--sample-rows", type=_non_negative_int, default=0, metavar="N",
                   help="show N rows of each table under its CREATE TABLE in the prompt; use the value the model "
                        "was trained with (default: 0, none)")
    p.add_argument("--db-dir", default=None, help="directory of <db_id>/<db_id>.sqlite (default: database/ "
                                                  "beside the data file)")
    p.add_argument("--schema", action=argparse.BooleanOptionalAction, default=None,
                   help="the schema DDL in each prompt; --no-schema for a run trained with train.py --no-schema "
                        "(default: as the adapter's run trained, on without an adapter)")
    p.add_argument("--limit", type=_positive_int, default=None,
                   help="evaluate N examples spread evenly over the split, as files are grouped by difficulty "
                        "(default: all of them)")
    p.add_argument("--batch-size", type=_positive_int, default=16,
                   help="prompts generated together (default: 16)")
    p.add_argument("--max-new-tokens", type=_positive_int, default=160,
                   help="generated tokens per answer at most (default: 160)")
    p.add_argument("--decoder", default="auto", choices=DECODERS,
                   help="static: dense weights with the adapter beside them in fp32 as peft computes it, static "
                        "KV cache, CUDA graph on a GPU; static-split: the same, the prefill's adapter term from bf16 "
                        "matmuls at fp32 precision; static-fused: the adapter inside the base matmul in the "
                        "compute dtype (faster on a GPU, a little further from the 4-bit model's greedy choices: README, "
                        "Evaluation); "
                        "plain: the model as loaded (4-bit + LoRA), a growing cache; auto: static-split where "
                        "the architecture allows (Llama family) (default: auto)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--compute-dtype", default="auto", choices=("auto", "bf16", "fp16", "fp32"),
                   help="auto: bf16 on a CUDA GPU that supports it, else fp32 (default: auto)")
    p.add_argument("--compare", default=None, metavar="EVAL_JSON",
                   help="an earlier report (eval.json or its directory), e.g. of the base model: printed "
                        "side by side with this one, with the gain in points (default: none)")
    p.add_argument("--keep-distinct", action="store_true",
                   help="run DISTINCT as written, the test-suite evaluator's --keep_distinct; without it "
                        "DISTINCT is removed from both queries, as the official evaluator does (default: off)")
    p.add_argument("--plug-value", action="store_true",
                   help="execution also tries the gold query's values in the prediction's value slots (the "
                        "test-suite evaluator's --plug_value) (default: off)")
    p.add_argument("--out", required=True, help="output directory for eval.json, mistakes.csv, gold.txt, pred.txt")
    return p


def run(args: argparse.Namespace) -> dict:
    from models.merge import check_adapter_dir, load_for_eval, merge_adapter, read_run_config

    if args.merge and not args.adapter:
        raise ValueError("--merge needs --adapter (the adapter to merge into its base)")
    check_output_path(Path(args.out))  # before minutes of generation, not after
    if args.merge:
        check_output_path(Path(args.merge), flag="--merge")
    if args.adapter:
        check_adapter_dir(args.adapter)
    baseline = load_report(args.compare) if args.compare else None  # fail now, not after generation
    device = resolve_device(args.device)
    compute_dtype = resolve_compute_dtype(args.compute_dtype, device)
    run_config = read_run_config(args.adapter) if args.adapter else None
    schema = args.schema if args.schema is not None else (run_config or {}).get("schema", True)
    examples, db_root = evaluation_data(args.data, args.split, tables=args.tables, db_dir=args.db_dir, schema=schema,
                                        sample_rows=args.sample_rows)
    check_databases((str(e.get("db_id") or "") for e in examples), db_root)  # before loading a model

    model_spec, adapter, quant = args.model, args.adapter, args.quant
    if args.merge:
        merged = merge_adapter(args.model, args.adapter, args.merge, base_weights=args.merge_base)
        print(f"merged model: {merged}")
        model_spec, adapter, quant = str(merged), None, "none" if args.quant == "auto" else args.quant
    model, tokenizer, description = load_for_eval(model_spec, adapter, quant=quant,
                                                  compute_dtype=compute_dtype, device=device)
    print(f"model {description['model']} | adapter {description['adapter']} | base weights "
          f"{description['base_quant']} | {description['compute_dtype']} on {device}")
    split = args.split if args.data == "bundled" or Path(args.data).is_dir() else None  # files have no splits
    settings = dict(description, data=args.data, split=split, schema=schema, sample_rows=args.sample_rows,
                    device=str(device),
                    merged_from=args.adapter if args.merge else None)
    report = evaluate_model(model, tokenizer, examples, db_root, args.out, batch_size=args.batch_size,
                            max_new_tokens=args.max_new_tokens, limit=args.limit, settings=settings,
                            keep_distinct=args.keep_distinct, decoder=args.decoder, plug_value=args.plug_value,
                            tables=args.tables)
    if baseline is not None:
        print(format_comparison(baseline, report, names=("compared", "this run")))
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import datasets

    datasets.disable_progress_bars()  # "Generating train split" bars for a file read in a blink
    transformers.utils.logging.disable_progress_bar()
    try:
        run(args)
    except (ValueError, OSError) as error:  # bad input, a full disk: one line, exit 2, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
