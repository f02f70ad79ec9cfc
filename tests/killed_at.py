"""train.py, SIGKILLed at one chosen point, for the fault-injection tests (tests/test_trust.py).

    python tests/killed_at.py POINT <train.py flags>

POINT: after-step:K (step K done, its checkpoint not yet written), checkpoint:K (inside the write of
checkpoint-K, its files complete under the temporary name, not renamed yet), adapter (inside the final
adapter write, likewise), metrics:K (half of step K's metrics.jsonl line written).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import train  # noqa: E402
from engine.observers import MetricsWriter, StepObserver  # noqa: E402


def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAfterStep(StepObserver):
    def __init__(self, step: int):
        self.step = step

    def on_log(self, state, record) -> None:
        if state.step == self.step:
            kill()


def kill_when_renaming(name: str) -> None:
    """The atomic writes end in os.replace(tmp, final): die just before the one that makes `name`."""
    replace = os.replace

    def dying_replace(src, dst, *args, **kwargs):
        if Path(dst).name == name and Path(src).name.endswith(".tmp"):
            kill()
        return replace(src, dst, *args, **kwargs)

    os.replace = dying_replace


def kill_mid_line(step: int) -> None:
    on_log = MetricsWriter.on_log

    def half_written(self, state, record) -> None:
        if state.step == step:
            import json

            line = json.dumps(record) + "\n"
            self.file.write(line[: len(line) // 2])
            self.file.flush()
            kill()
        on_log(self, state, record)

    MetricsWriter.on_log = half_written


if __name__ == "__main__":
    point = sys.argv.pop(1)
    kind, _, value = point.partition(":")
    observers = []
    if kind == "after-step":
        observers.append(KillAfterStep(int(value)))
    elif kind == "checkpoint":
        kill_when_renaming(f"checkpoint-{value}")
    elif kind == "adapter":
        kill_when_renaming("adapter")
    elif kind == "metrics":
        kill_mid_line(int(value))
    else:
        sys.exit(f"unknown point {point!r}")
    sys.exit(train.main(observers=observers))
