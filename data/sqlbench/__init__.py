"""The bundled text-to-SQL benchmark: generated SQLite databases and questions in Spider's layout.

    from data.sqlbench import bundled_benchmark_dir, BENCHMARK_SPLITS
    root = bundled_benchmark_dir()      # built once under the cache, then reused
    root / "train.json", root / "tables.json", root / "database" / db_id / f"{db_id}.sqlite"

Modules, in the order the build uses them: vocab (attributes, labels) and domains (entities and
relations) are the vocabularies; values draws row values; naming gives identifier styles;
compose makes one database; grammar samples SQL with its question, worded by phrasing; build
writes the databases and the splits."""

from data.sqlbench.build import BENCHMARK_SPLITS, SPLIT_ALIASES, VERSION, bundled_benchmark_dir, split_name

__all__ = ["BENCHMARK_SPLITS", "SPLIT_ALIASES", "VERSION", "bundled_benchmark_dir", "split_name"]
