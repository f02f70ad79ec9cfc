"""The bundled text-to-SQL benchmark: generated SQLite databases and questions in Spider's layout.

    from data.sqlbench import bundled_benchmark_dir, BENCHMARK_SPLITS
    root = bundled_benchmark_dir()      # built once under the cache, then reused
    root / "train.json", root / "tables.json", root / "database" / db_id / f"{db_id}.sqlite"
"""

from data.sqlbench.build import BENCHMARK_SPLITS, VERSION, bundled_benchmark_dir

__all__ = ["BENCHMARK_SPLITS", "VERSION", "bundled_benchmark_dir"]
