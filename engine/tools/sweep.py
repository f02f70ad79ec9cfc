"""Memory-profiling sweep: the book's gpu_memory_experiment (seed 003, Table 5.1) over a grid, each
configuration in its own process, every component predicted first and measured after.

    python -m engine.tools.sweep --model arch:polyglot-ko-1.3b --peft full lora qlora --batch-size 4 8 16 \\
        --ckpt off on --accum 1 4 --optim adamw paged_adamw_8bit --seq-len 256 --steps 3 --out runs/sweep-x
    python -m engine.tools.sweep --timeline runs/sweep-x/qlora-b16-ckpt-a1-adamw-t256   # one run's per-step figure

Grid flags take several values and the sweep runs their cartesian product: --peft, --batch-size, --ckpt
(off/on), --accum, --optim, --seq-len. Each configuration runs
    python train.py --data dummy:<seq_len> --max-steps <steps> --out <out>/<name> --save-every 0 ...
in a fresh process (a fresh CUDA context: no memory left over from the previous configuration), with
--memory-snapshot <out>/<name>/memory_snapshot.pickle when --memory-snapshot is given. Before it runs, the
predictor's estimate (engine/tools/predict.py) is printed; after, the run's metrics.jsonl is read (the last
step's record; the maximum over steps for activations, peak_allocated and reserved) and each component
is printed as predicted vs measured with the error in percent.

A configuration whose process dies of CUDA out-of-memory ("CUDA out of memory" / torch.OutOfMemoryError
in its stderr) is recorded as OOM at the batch size it tried; any other failure as "error: <last line of
stderr>"; either way the sweep goes on. Outputs in --out (written atomically):
    results.csv       one row per configuration: status, tokens/s, predicted / measured / error % per component
    results.md        the book's Table 5.1 layout: configuration | parameters | gradients | optimizer |
                      activations | peak total | tokens/s, plus the predicted peak and its error
    components.png    stacked bars per configuration, measured next to predicted
    <name>.log        the child's output;  <name>/timeline.png  per-step components of each finished run
On a CPU there are no CUDA numbers: "peak total" is then the tracked sum (parameters + gradients +
optimizer + activations) and is compared with the predicted sum of the same components.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from data.files import atomic_write_text, check_output_path
from engine.memory import format_bytes
from engine.tools.predict import GIB, MEMORY_COMPONENTS, OPTIMIZERS, PEFT_MODES, predict_for_spec

ROOT = Path(__file__).resolve().parents[2]
OOM_MARKERS = ("CUDA out of memory", "OutOfMemoryError")
COMPARED = MEMORY_COMPONENTS + ("peak",)
PARAM_KEYS = ("params_4bit", "params_frozen", "params_trainable")


@dataclass(frozen=True)
class SweepPoint:
    """One configuration of the grid."""

    peft: str
    batch_size: int
    ckpt: bool
    accum: int
    optim: str
    seq_len: int

    @property
    def name(self) -> str:
        return (f"{self.peft}-b{self.batch_size}-{'ckpt' if self.ckpt else 'nockpt'}-a{self.accum}"
                f"-{self.optim}-t{self.seq_len}")


@dataclass
class RunOutcome:
    """What a runner reports: the child's exit status and output."""

    returncode: int
    stdout: str = ""
    stderr: str = ""


@dataclass
class PointResult:
    point: SweepPoint
    status: str                               # "ok", "OOM", or "error: <last line>"
    predicted: dict
    measured: dict | None = None              # mem-like: last step, peak over steps for activations etc.
    tokens_per_s: float | None = None
    errors: dict[str, float | None] = field(default_factory=dict)  # component -> (pred - meas) / meas, %


Runner = Callable[[list[str], Path], RunOutcome]


def train_py_runner(argv: list[str], log_path: Path) -> RunOutcome:
    """Run `python train.py argv` in a fresh process; its output goes to `log_path` as well."""
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *argv], cwd=ROOT, capture_output=True, text=True)
    atomic_write_text(log_path, proc.stdout + ("\n--- stderr ---\n" + proc.stderr if proc.stderr else ""))
    return RunOutcome(proc.returncode, proc.stdout, proc.stderr)


def grid(pefts, batch_sizes, ckpts, accums, optims, seq_lens) -> list[SweepPoint]:
    return [SweepPoint(*values) for values in itertools.product(pefts, batch_sizes, ckpts, accums, optims, seq_lens)]


def train_argv(point: SweepPoint, *, model: str, steps: int, run_dir: Path, memory_snapshot: bool,
               extra: list[str]) -> list[str]:
    argv = ["--model", model, "--peft", point.peft, "--batch-size", str(point.batch_size),
            "--accum", str(point.accum), "--ckpt" if point.ckpt else "--no-ckpt", "--optim", point.optim,
            "--data", f"dummy:{point.seq_len}", "--max-length", str(max(16, point.seq_len)),
            "--max-steps", str(steps), "--out", str(run_dir), "--save-every", "0"]
    if memory_snapshot:
        argv += ["--memory-snapshot", str(run_dir / "memory_snapshot.pickle")]
    return argv + list(extra)


def classify_failure(outcome: RunOutcome) -> str:
    text = outcome.stderr + outcome.stdout
    if any(marker in text for marker in OOM_MARKERS):
        return "OOM"
    if outcome.returncode < 0:
        return f"error: killed by signal {-outcome.returncode}"
    lines = [line.strip() for line in outcome.stderr.splitlines() if line.strip()]
    return "error: " + (lines[-1] if lines else f"exit status {outcome.returncode}")


def read_measured(run_dir: Path) -> tuple[dict, float | None]:
    """(mem-like dict, tokens/s) from a finished run's metrics.jsonl."""
    from engine.tools.plots import read_metrics

    records = read_metrics(run_dir)
    if not records:
        raise ValueError(f"{run_dir}/metrics.jsonl holds no step")
    measured = dict(records[-1]["mem"])
    for key in ("activations", "peak_allocated", "reserved"):  # these vary by step: keep the worst
        values = [r["mem"].get(key) for r in records if r["mem"].get(key) is not None]
        measured[key] = max(values) if values else None
    timed = records[1:] or records  # the first step pays for warm-up (allocator, kernels)
    return measured, sum(r["tokens_per_s"] for r in timed) / len(timed)


def tracked_sum(mem: dict) -> int:
    return sum(mem[k] or 0 for k in PARAM_KEYS + ("grads", "optimizer", "activations"))


def peaks(predicted: dict, measured: dict | None) -> tuple[int, int | None]:
    """(predicted, measured) peak: CUDA's peak_allocated when the run has it, else the tracked sum."""
    if measured is not None and measured.get("peak_allocated") is not None:
        return predicted["peak_allocated"], measured["peak_allocated"]
    return tracked_sum(predicted), (tracked_sum(measured) if measured is not None else None)


def percent_error(predicted: int | None, measured: int | None) -> float | None:
    if predicted is None or not measured:
        return None
    return 100.0 * (predicted - measured) / measured


def compare(predicted: dict, measured: dict) -> dict[str, float | None]:
    errors = {k: percent_error(predicted[k], measured.get(k)) for k in MEMORY_COMPONENTS}
    errors["peak"] = percent_error(*peaks(predicted, measured))
    return errors


def _fmt_gib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / GIB:.3f}"


def _fmt_err(e: float | None) -> str:
    return "" if e is None else f"{e:+.1f}%"


def comparison_lines(result: PointResult) -> list[str]:
    lines = [f"  {'component':<18}{'predicted':>14}{'measured':>14}{'error':>10}"]
    for key in MEMORY_COMPONENTS:
        lines.append(f"  {key:<18}{format_bytes(result.predicted[key]):>14}{format_bytes(result.measured.get(key)):>14}"
                     f"{_fmt_err(result.errors.get(key)):>10}")
    pred_peak, meas_peak = peaks(result.predicted, result.measured)
    label = "peak_allocated" if result.measured.get("peak_allocated") is not None else "tracked total"
    lines.append(f"  {label:<18}{format_bytes(pred_peak):>14}{format_bytes(meas_peak):>14}"
                 f"{_fmt_err(result.errors.get('peak')):>10}")
    return lines


def run_sweep(points: list[SweepPoint], *, model: str, steps: int, out_dir: Path, runner: Runner = train_py_runner,
              memory_snapshot: bool = False, extra: list[str] = (), predict_kwargs: dict | None = None,
              log: Callable[[str], None] = print) -> list[PointResult]:
    """Run every point (one process each through `runner`), compare with the predictor, write the outputs."""
    from engine.tools.plots import timeline_figure

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for index, point in enumerate(points, 1):
        predicted = predict_for_spec(model, peft=point.peft, optim=point.optim, batch_size=point.batch_size,
                                     seq_len=point.seq_len, ckpt=point.ckpt, accum=point.accum, **(predict_kwargs or {}))
        log(f"[{index}/{len(points)}] {point.name}: predicted peak {format_bytes(predicted['peak_allocated'])} "
            f"(activations {format_bytes(predicted['activations'])}, optimizer {format_bytes(predicted['optimizer'])})")
        run_dir = out_dir / point.name
        outcome = runner(train_argv(point, model=model, steps=steps, run_dir=run_dir, memory_snapshot=memory_snapshot,
                                    extra=list(extra)), out_dir / f"{point.name}.log")
        result = PointResult(point, "ok", predicted)
        if outcome.returncode != 0:
            result.status = classify_failure(outcome)
            log(f"  {result.status}" + (f" at batch size {point.batch_size}" if result.status == "OOM" else ""))
        else:
            try:
                result.measured, result.tokens_per_s = read_measured(run_dir)
            except (OSError, ValueError, KeyError) as error:
                result.status = f"error: unreadable metrics ({error})"
                log(f"  {result.status}")
            else:
                result.errors = compare(predicted, result.measured)
                log("\n".join(comparison_lines(result)))
                timeline_figure(run_dir)
        results.append(result)
        write_outputs(results, out_dir, model=model)  # after every configuration: a cut-short sweep keeps its rows
    return results


# ---- outputs -------------------------------------------------------------------------------------

def results_csv(results: list[PointResult]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["name", "peft", "batch_size", "ckpt", "accum", "optim", "seq_len", "status", "tokens_per_s"]
    for key in COMPARED:
        header += [f"pred_{key}", f"meas_{key}", f"err_{key}_pct"]
    writer.writerow(header)
    for r in results:
        p = r.point
        row = [p.name, p.peft, p.batch_size, int(p.ckpt), p.accum, p.optim, p.seq_len, r.status,
               "" if r.tokens_per_s is None else f"{r.tokens_per_s:.1f}"]
        pred_peak, meas_peak = peaks(r.predicted, r.measured)
        for key in COMPARED:
            pred = pred_peak if key == "peak" else r.predicted[key]
            meas = meas_peak if key == "peak" else (r.measured or {}).get(key)
            err = r.errors.get(key)
            row += [pred, "" if meas is None else meas, "" if err is None else f"{err:.2f}"]
        writer.writerow(row)
    return buffer.getvalue()


def results_markdown(results: list[PointResult], model: str) -> str:
    cuda = any(r.measured and r.measured.get("peak_allocated") is not None for r in results)
    peak_label = "peak total (CUDA peak allocated)" if cuda else "peak total (tracked sum)"
    lines = [f"# Memory sweep: {model}", "",
             "GiB = 1024^3 bytes. Measured values; the predicted peak is engine/tools/predict.py's estimate.", "",
             f"| configuration | parameters | gradients | optimizer | activations | {peak_label} | tokens/s "
             "| predicted peak | error |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        pred_peak, meas_peak = peaks(r.predicted, r.measured)
        if r.measured is None:
            what = f"OOM (batch {r.point.batch_size})" if r.status == "OOM" else r.status.replace("|", "/")
            lines.append(f"| {r.point.name} | | | | | {what} | | {_fmt_gib(pred_peak)} | |")
            continue
        m = r.measured
        lines.append(f"| {r.point.name} | {_fmt_gib(sum(m[k] for k in PARAM_KEYS))} | {_fmt_gib(m['grads'])} | "
                     f"{_fmt_gib(m['optimizer'])} | {_fmt_gib(m['activations'])} | {_fmt_gib(meas_peak)} | "
                     f"{r.tokens_per_s:.0f} | {_fmt_gib(pred_peak)} | {_fmt_err(r.errors.get('peak'))} |")
    return "\n".join(lines) + "\n"


def write_outputs(results: list[PointResult], out_dir: Path, *, model: str) -> None:
    from engine.tools.plots import components_figure

    atomic_write_text(out_dir / "results.csv", results_csv(results))
    atomic_write_text(out_dir / "results.md", results_markdown(results, model))
    rows = [{"name": r.point.name, "status": r.status, "predicted": r.predicted, "measured": r.measured,
             "measured_peak": (r.measured or {}).get("peak_allocated")} for r in results]
    components_figure(rows, out_dir / "components.png", title=model)


# ---- command line --------------------------------------------------------------------------------

def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return text == "on"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.tools.sweep", description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--model", default="arch:polyglot-ko-1.3b",
                   help="model spec, as train.py --model (default: arch:polyglot-ko-1.3b, the book's model)")
    p.add_argument("--peft", nargs="+", choices=PEFT_MODES, default=["qlora"],
                   help="grid: fine-tuning modes (default: qlora)")
    p.add_argument("--batch-size", nargs="+", type=int, default=[4], help="grid: micro-batch sizes (default: 4)")
    p.add_argument("--ckpt", nargs="+", type=_on_off, default=[False], metavar="{off,on}",
                   help="grid: gradient checkpointing off and/or on (default: off)")
    p.add_argument("--accum", nargs="+", type=int, default=[1], help="grid: gradient accumulation steps (default: 1)")
    p.add_argument("--optim", nargs="+", choices=OPTIMIZERS, default=["adamw"],
                   help="grid: optimizers (default: adamw, the book's torch AdamW)")
    p.add_argument("--seq-len", nargs="+", type=int, default=[256],
                   help="grid: dummy sequence lengths (default: 256, the book's)")
    p.add_argument("--steps", type=int, default=3, help="optimizer steps per configuration (default: 3)")
    p.add_argument("--out", type=Path, default=None,
                   help="sweep directory; with --timeline, the PNG file (default: runs/sweep-<timestamp>; with "
                        "--timeline, RUN_DIR/timeline.png)")
    p.add_argument("--memory-snapshot", action="store_true",
                   help="ask train.py for a CUDA memory snapshot per run (default: off)")
    p.add_argument("--compute-dtype", choices=("auto", "bf16", "fp16", "fp32"), default="auto",
                   help="passed to train.py: auto is bf16 on a GPU that supports it, else fp32 (default: auto)")
    p.add_argument("--device", default="auto", help="passed to train.py: auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--timeline", type=Path, default=None, metavar="RUN_DIR",
                   help="only draw RUN_DIR's per-step memory figure from its metrics.jsonl and exit "
                        "(default: run the sweep)")
    return p


def main(argv: list[str] | None = None) -> int:
    """The command line: bad input (and a full disk) is one line and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        return timeline(args) if args.timeline else sweep(args)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def timeline(args: argparse.Namespace) -> int:
    from engine.tools.plots import timeline_figure

    print(timeline_figure(args.timeline, args.out))
    return 0


def sweep(args: argparse.Namespace) -> int:
    for name in ("batch_size", "accum", "seq_len"):
        if min(getattr(args, name)) < (2 if name == "seq_len" else 1):
            raise ValueError(f"--{name.replace('_', '-')} values must be >= {2 if name == 'seq_len' else 1}")
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    from engine.device import resolve_compute_dtype, resolve_device  # the child resolves "auto" the same way

    device = resolve_device(args.device)
    dtype = resolve_compute_dtype(args.compute_dtype, device)
    out = args.out or Path("runs") / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    check_output_path(out)  # before any run starts
    points = grid(args.peft, args.batch_size, args.ckpt, args.accum, args.optim, args.seq_len)
    print(f"{len(points)} configurations of {args.model} on {device} ({str(dtype).removeprefix('torch.')}), "
          f"{args.steps} steps each -> {out}")
    extra = ["--device", args.device, "--compute-dtype", args.compute_dtype]
    results = run_sweep(points, model=args.model, steps=args.steps, out_dir=out, memory_snapshot=args.memory_snapshot,
                        extra=extra, predict_kwargs={"compute_dtype": dtype, "device": device.type})
    done = sum(r.status == "ok" for r in results)
    print(f"{done}/{len(results)} finished, {sum(r.status == 'OOM' for r in results)} OOM | "
          f"{out / 'results.md'} {out / 'results.csv'} {out / 'components.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
