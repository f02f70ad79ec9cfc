"""What a run actually ran with, beyond its settings: recorded under `resolved` in its config.json
(train.py), so that a result can be traced to the code and the libraries that produced it. Trainer keeps
none of it (its `training_args.bin` holds the arguments as given)."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

LIBRARIES = ("transformers", "peft", "bitsandbytes", "accelerate", "datasets", "safetensors")
REPO_ROOT = Path(__file__).resolve().parents[1]


def library_versions() -> dict[str, str | None]:
    """python, torch (its own version string: +cpu or +cu130 says which build) and the libraries the
    engine drives; None for one that is not installed."""
    versions: dict[str, str | None] = {"python": platform.python_version(), "torch": torch.__version__}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(root: Path = REPO_ROOT) -> dict[str, object] | None:
    """{"commit": the checked-out commit of this code, "dirty": whether tracked files differ from it};
    None when the code is not a git checkout (an installed copy) or git is missing."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
