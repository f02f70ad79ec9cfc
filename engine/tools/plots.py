"""Memory figures (matplotlib, Agg backend: no display needed).

    components_figure(rows, path)   stacked bars per sweep configuration: measured next to predicted
    timeline_figure(run_dir, path)  one run, per optimizer step: the memory.png every run draws at its end
                                    (engine/plots.py), for any run directory (an older or a killed one)
    python -m engine.tools.plots RUN_DIR [--out timeline.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data.files import check_output_path
from engine import plots as run_plots
from engine.plots import GIB, plt, save_figure  # pyplot after engine.plots chose the Agg backend

# What the bars stack, bottom to top: the book's four kinds of memory (seed 003, "GPU 메모리 분석하기").
STACK = (("parameters", ("params_4bit", "params_frozen", "params_trainable"), "#4c72b0"),
         ("gradients", ("grads",), "#dd8452"),
         ("optimizer", ("optimizer",), "#55a868"),
         ("activations", ("activations",), "#c44e52"))


def _stack_values(mem: dict) -> list[float]:
    return [sum(mem.get(k) or 0 for k in keys) / GIB for _, keys, _ in STACK]


def components_figure(rows: list[dict], path: Path, title: str = "memory per configuration") -> Path:
    """rows: {"name", "status", "predicted": mem-like dict, "measured": mem-like dict or None,
    "measured_peak": bytes or None}. Failed configurations get an empty slot with their status."""
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.8))
    width = 0.38
    peak_labelled = False
    for i, row in enumerate(rows):
        for offset, key, hatch in ((-width / 2, "measured", None), (width / 2, "predicted", "//")):
            mem = row.get(key)
            if not mem:
                continue
            bottom = 0.0
            for (label, _, color), value in zip(STACK, _stack_values(mem)):
                ax.bar(i + offset, value, width, bottom=bottom, color=color, hatch=hatch, edgecolor="white",
                       label=label if (i == 0 and key == "measured") else None)
                bottom += value
        if row.get("measured_peak") and row.get("predicted"):  # CUDA run: compare the allocator peaks
            ax.plot([i, i + width], [row["predicted"]["peak_allocated"] / GIB] * 2, color="black", lw=2, ls="--",
                    label=None if peak_labelled else "predicted peak allocated")
        if row.get("measured_peak"):
            ax.plot([i - width, i], [row["measured_peak"] / GIB] * 2, color="black", lw=2,
                    label=None if peak_labelled else "CUDA peak allocated")
            peak_labelled = True
        if row.get("status", "ok") != "ok":
            ax.text(i - width / 2, 0, row["status"][:18], rotation=90, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(rows)), [r["name"] for r in rows], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("GiB")
    ax.set_title(f"{title} (left: measured, right hatched: predicted)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never over a bar
    return save_figure(fig, path)


def read_metrics(run_dir: Path) -> list[dict]:
    """A run's step records (engine/checkpoint.py reads them: a last line cut by a kill is left out)."""
    from engine.checkpoint import read_metrics as read_run_metrics

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    if not (run_dir / "metrics.jsonl").is_file():
        raise FileNotFoundError(f"{run_dir} has no metrics.jsonl: not a train.py run directory")
    return read_run_metrics(run_dir)


def timeline_figure(run_dir: Path, path: Path | None = None) -> Path:
    """Per-step stacked components of one run, with peak_allocated and reserved (CUDA) on top."""
    path = Path(path) if path else Path(run_dir) / "timeline.png"
    check_output_path(path, is_file=True)
    return run_plots.timeline_figure(read_metrics(run_dir), run_dir, path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine.tools.plots",
                                     description="Draw one run's memory per step from its metrics.jsonl.")
    parser.add_argument("run_dir", type=Path, help="a train.py run directory")
    parser.add_argument("--out", type=Path, default=None, help="PNG path (default: RUN_DIR/timeline.png)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        print(timeline_figure(args.run_dir, args.out))
    except (ValueError, OSError) as error:  # a missing run, --out a directory, a full disk: one line
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
