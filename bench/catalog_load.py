"""A catalog of 10⁶ items: import speed and memory, then how fast every feature vector
loads into one NumPy array (the array training and the constraint engine work on).

    python bench/catalog_load.py [--items 1000000]

Writes ITEMS simulator items to a JSONL file (not timed), imports it with
`manage.py import_items` in a child process (wall time with Django's start-up, and that
process's peak memory), then times `catalog.selectors.item_feature_matrix()`.
Prints one JSON line last: {"items", "feature_dim", "import_seconds", "import_items_per_s",
"import_peak_rss_mb", "matrix_seconds", "matrix_mb"}.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, django_setup, emit, fresh_database, manage, run_measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--database", default="shepherd_bench_catalog")
    args = parser.parse_args()

    database_url = fresh_database(args.database)
    manage("migrate", "-v0", database_url=database_url)
    django_setup(database_url)

    from catalog.demo import item_rows, topic_specs
    from catalog.selectors import item_feature_matrix
    from catalog.services import topics_ensure
    from training.ml.simulator import SimConfig, Simulator

    sim = Simulator(SimConfig(n_items=args.items, n_users=10), seed=0)
    topics_ensure(specs=topic_specs(sim))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "items.jsonl"
        with path.open("wb") as handle:
            for row in item_rows(sim):
                handle.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
        run = run_measured(
            ROOT / "manage.py",
            ["import_items", str(path)],
            env={**os.environ, "DATABASE_URL": database_url},
        )
    if run.returncode != 0:
        raise SystemExit(f"the import failed with exit code {run.returncode}")

    started = time.monotonic()
    pks, matrix = item_feature_matrix()
    matrix_seconds = time.monotonic() - started
    if matrix.shape != (args.items, sim.config.feature_dim):
        raise SystemExit(f"expected {args.items} vectors, loaded {matrix.shape}")
    emit(
        {
            "items": args.items,
            "feature_dim": int(matrix.shape[1]),
            "import_seconds": round(run.seconds, 2),
            "import_items_per_s": round(args.items / run.seconds),
            "import_peak_rss_mb": round(run.peak_rss_mb, 1),
            "matrix_seconds": round(matrix_seconds, 2),
            "matrix_mb": round(matrix.nbytes / 2**20, 1),
        }
    )


if __name__ == "__main__":
    main()
