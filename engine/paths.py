"""Where the project keeps what it builds once and reuses: the converted bundled model and the
generated text-to-SQL benchmark. One function, so that every module agrees on one place."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "QLORA_ENGINE_CACHE"


def cache_root() -> Path:
    """`$QLORA_ENGINE_CACHE`, else `~/.cache/qlora-engine`. Created on first use."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "qlora-engine")
    root.mkdir(parents=True, exist_ok=True)
    return root
