from catalog.management.base import ImportCommand
from catalog.models import ImportRun


class Command(ImportCommand):
    help = "Import contexts from a JSONL or CSV file (all rows or none; see the README)."
    kind = ImportRun.Kind.CONTEXTS
