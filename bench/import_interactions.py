"""Import speed and memory of `manage.py import_interactions` on PostgreSQL.

    python bench/import_interactions.py [--rows 1000000] [--format jsonl|csv]

Builds a catalog with the simulator (2,000 items, 500 contexts) in a fresh database,
writes ROWS logged interactions to a file (not timed), then runs the real import command
in a child process and measures that process alone: wall time (Django's start-up
included) and peak resident memory. Prints one JSON line last:
{"rows", "seconds", "rows_per_s", "peak_rss_mb", "format", "file_mb"}.
"""

import argparse
import csv
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, django_setup, emit, fresh_database, manage, run_measured

INTERACTION_COLUMNS = (
    "context", "slate", "clicks", "reward", "logging_policy", "propensity", "timestamp"
)  # fmt: skip


GENERATED_UNTIL = datetime(2026, 12, 1, tzinfo=UTC)  # fixed, so cached files stay valid


def write_file(path: Path, rows, fmt: str) -> None:
    with path.open("wb") as handle:
        if fmt == "jsonl":
            for row in rows:
                handle.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
            return
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        columns = [
            "context",
            "slate",
            "clicks",
            "reward",
            "logging_policy",
            "propensity",
            "timestamp",
        ]
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                [row["context"], "|".join(row["slate"]), "|".join(map(str, row["clicks"])),
                 row["reward"], row["logging_policy"], row["propensity"], row["timestamp"]]
            )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    parser.add_argument("--database", default="shepherd_bench_import")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="keep the generated file here and reuse it on later runs (same rows, format, seed)",
    )
    args = parser.parse_args()

    database_url = fresh_database(args.database)
    manage("migrate", "-v0", database_url=database_url)
    django_setup(database_url)

    from catalog.demo import context_rows, demo_contexts, interaction_rows, item_rows, topic_specs
    from catalog.importing.importers import import_records
    from catalog.models import ImportRun, LoggedInteraction
    from catalog.services import topics_ensure
    from training.ml.simulator import SimConfig, Simulator

    sim = Simulator(SimConfig(n_items=2000, n_users=500), seed=args.seed)
    rng = np.random.default_rng([args.seed, 2])
    topics_ensure(specs=topic_specs(sim))
    contexts = demo_contexts(sim, rng)
    import_records(ImportRun.Kind.ITEMS, "bench:items", item_rows(sim))
    import_records(ImportRun.Kind.CONTEXTS, "bench:contexts", context_rows(sim, contexts))

    with tempfile.TemporaryDirectory() as folder:
        name = f"interactions-{args.rows}-seed{args.seed}.{args.format}"
        path = (args.cache_dir or Path(folder)) / name
        if not path.exists():
            rows = interaction_rows(sim, contexts, args.rows, rng, end=GENERATED_UNTIL)
            write_file(path.with_suffix(".partial"), rows, args.format)
            path.with_suffix(".partial").rename(path)
        run = run_measured(
            ROOT / "manage.py",
            ["import_interactions", str(path)],
            env={**os.environ, "DATABASE_URL": database_url},
        )
        file_mb = path.stat().st_size / 2**20
    if run.returncode != 0:
        raise SystemExit(f"the import failed with exit code {run.returncode}")
    imported = LoggedInteraction.objects.count()
    if imported != args.rows:
        raise SystemExit(f"expected {args.rows} rows in the table, found {imported}")
    emit(
        {
            "rows": args.rows,
            "seconds": round(run.seconds, 2),
            "rows_per_s": round(args.rows / run.seconds),
            "peak_rss_mb": round(run.peak_rss_mb, 1),
            "format": args.format,
            "file_mb": round(file_mb, 1),
        }
    )


if __name__ == "__main__":
    main()
