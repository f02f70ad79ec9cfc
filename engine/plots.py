"""A run's figures, drawn from its metrics.jsonl at the end of every run (matplotlib, Agg backend: no
display needed; Trainer draws none, `tensorboard` shows curves live):

    loss.png    training loss per optimizer step, and the validation loss at the steps that have one
    memory.png  the memory components per step, stacked (4-bit, frozen and trainable weights, gradients,
                optimizer state, activations), with the CUDA allocator's peak and reserved bytes on top

Each figure is drawn from a series function (`loss_series`, `memory_series`) whose numbers are the
record's own, so what a figure shows can be checked against metrics.jsonl (tests/test_run_files.py).
engine/tools/plots.py draws the same memory figure for any run directory, and the sweep's figures.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from data.files import atomic_write_bytes, check_output_path  # noqa: E402

MIB, GIB = 1024**2, 1024**3
# Bottom to top: what stays for the whole run, then what each step adds (the book's four kinds, seed 003,
# with the weights split as the record splits them).
MEMORY_STACK = (("4-bit weights", ("params_4bit",), "#4c72b0"),
                ("frozen weights", ("params_frozen",), "#64b5cd"),
                ("trainable weights", ("params_trainable",), "#8172b3"),
                ("gradients", ("grads",), "#dd8452"),
                ("optimizer state", ("optimizer",), "#55a868"),
                ("activations", ("activations",), "#c44e52"))
CUDA_LINES = (("peak_allocated", "-"), ("reserved", "--"))


def save_figure(fig, path: Path) -> Path:
    """The PNG written atomically (data/files.py): a reader never sees half a figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def loss_series(records: list[dict]) -> dict[str, list]:
    """{steps, loss, val_steps, val_loss}: the numbers loss.png draws."""
    validated = [r for r in records if r.get("val_loss") is not None]
    return {"steps": [r["step"] for r in records], "loss": [r["loss"] for r in records],
            "val_steps": [r["step"] for r in validated], "val_loss": [r["val_loss"] for r in validated]}


def memory_series(records: list[dict]) -> dict[str, list]:
    """{steps, <component label>: bytes per step, ..., <CUDA key>: bytes or None}: what memory.png draws."""
    series: dict[str, list] = {"steps": [r["step"] for r in records]}
    for label, keys, _ in MEMORY_STACK:
        series[label] = [sum(r["mem"].get(k) or 0 for k in keys) for r in records]
    for key, _ in CUDA_LINES:
        series[key] = [r["mem"].get(key) for r in records]
    return series


def loss_figure(records: list[dict], path: Path, title: str) -> Path:
    series = loss_series(records)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(series["steps"], series["loss"], color="#4c72b0", lw=1.2, label="training loss")
    if series["val_steps"]:
        ax.plot(series["val_steps"], series["val_loss"], "o-", color="#c44e52", lw=1.5, ms=4, label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss (token-weighted mean cross-entropy)")
    ax.set_title(f"{title}: loss per step")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def memory_figure(records: list[dict], path: Path, title: str) -> Path:
    """Stacked components per step; MiB when everything stays under 1 GiB, else GiB."""
    series = memory_series(records)
    stacked = [series[label] for label, _, _ in MEMORY_STACK]
    cuda = [v for key, _ in CUDA_LINES for v in series[key] if v is not None]
    top = max([sum(column) for column in zip(*stacked)] + cuda, default=0)
    unit, name = (GIB, "GiB") if top >= GIB else (MIB, "MiB")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.stackplot(series["steps"], *[[v / unit for v in values] for values in stacked],
                 labels=[label for label, _, _ in MEMORY_STACK], colors=[c for _, _, c in MEMORY_STACK], alpha=0.85)
    for key, style in CUDA_LINES:
        if any(v is not None for v in series[key]):
            ax.plot(series["steps"], [(v or 0) / unit for v in series[key]], "k" + style, lw=1.5, label=f"CUDA {key}")
    ax.set_xlabel("optimizer step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(name)
    ax.set_title(f"{title}: memory per step")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never over the areas
    return save_figure(fig, path)


def run_figures(run_dir: Path, records: list[dict]) -> list[Path]:
    """loss.png and memory.png of a run directory, from its records (all of them, a resumed run's too)."""
    run_dir = Path(run_dir)
    if not records:
        return []
    return [loss_figure(records, run_dir / "loss.png", run_dir.name),
            memory_figure(records, run_dir / "memory.png", run_dir.name)]


def timeline_figure(records: list[dict], run_dir: Path, path: Path | None = None) -> Path:
    """memory.png's figure of any run, written to `path` (default <run_dir>/timeline.png)."""
    path = Path(path) if path else Path(run_dir) / "timeline.png"
    check_output_path(path, is_file=True)
    if not records:
        raise ValueError(f"{run_dir}/metrics.jsonl holds no step")
    return memory_figure(records, path, Path(run_dir).name)
