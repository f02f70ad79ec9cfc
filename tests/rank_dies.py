"""torchrun entry point for failure tests: train.py whose rank R dies abruptly at step S, as a crash would.

    torchrun --nproc-per-node 2 tests/rank_dies.py 1:2 <train.py flags>    # rank 1 exits at step 2
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # torchrun puts tests/ first, not the root

import train  # noqa: E402
from engine.distributed import launch_environment  # noqa: E402
from engine.observers import StepObserver  # noqa: E402

EXIT_STATUS = 17


class DieAtStep(StepObserver):
    def __init__(self, rank: int, step: int):
        self.rank, self.step = rank, step

    def on_step_end(self, state) -> None:
        if launch_environment().rank == self.rank and state.step == self.step:
            os._exit(EXIT_STATUS)  # no cleanup, no message: what a killed process leaves behind


if __name__ == "__main__":
    rank, step = (int(x) for x in sys.argv.pop(1).split(":"))
    sys.exit(train.main(observers=[DieAtStep(rank, step)]))
