"""The shared shape of the import commands: FILE, --format, all or nothing."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.importing.importers import ImportFailed, ImportRepeated, open_source, run_import
from catalog.importing.memory import pin_mmap_threshold
from catalog.importing.progress import Progress


class ImportCommand(BaseCommand):
    kind: str

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="a .jsonl or .csv file")
        parser.add_argument(
            "--format", choices=["jsonl", "csv"], help="override the format the extension implies"
        )
        parser.add_argument("--batch-rows", type=int, default=None, help="rows written per batch")

    def handle(self, *args, **options) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            source = open_source(self.kind, path, options["format"])
        except ValueError as error:
            raise CommandError(str(error)) from None
        pin_mmap_threshold()  # flat memory however large the file (see the module)
        progress = Progress(sys.stderr, total_bytes=source.total_bytes, label=path.name)
        try:
            result = run_import(
                self.kind,
                source,
                allow_repeat=options.get("allow_repeat", False),
                progress=progress,
                batch_rows=options["batch_rows"],
            )
        except (ImportFailed, ImportRepeated) as error:
            raise CommandError(str(error)) from None
        summary = (
            f"{path}: imported {result.rows:,} {self.kind} ({result.created:,} new, "
            f"{result.updated:,} updated) in {result.seconds:.1f}s"
        )
        self.stdout.write(self.style.SUCCESS(summary))
        for label, slugs in (("topics", result.new_topics), ("sources", result.new_sources)):
            if slugs:
                self.stdout.write(f"new {label}: {', '.join(slugs)}")
        if result.new_topics:
            self.stdout.write("New topics are not sensitive: mark any that are in the admin.")
