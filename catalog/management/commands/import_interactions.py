from catalog.management.base import ImportCommand
from catalog.models import ImportRun


class Command(ImportCommand):
    help = "Import interactions from a JSONL or CSV file (all rows or none; see the README)."
    kind = ImportRun.Kind.INTERACTIONS

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--allow-repeat",
            action="store_true",
            help="import a file even if the same bytes were imported before",
        )
