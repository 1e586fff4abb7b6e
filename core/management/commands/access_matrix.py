"""Print the permission matrix, role by role, from the access every view declares.
The README's table is this command's output (a test holds them equal)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.urls import resolve

from core.urlwalk import site_urls
from governance.access import audience_for, declared_access
from governance.roles import Role

# Django's admin enforces its own rule (staff accounts); these pages are the only others
# that declare nothing.
UNDECLARED = {"admin": "staff accounts only (Django's admin)"}
METHOD_ORDER = ["GET", "POST", "PUT", "PATCH", "DELETE"]
COLUMNS = [Role.CURATOR, Role.SAFETY_REVIEWER, Role.STUDY_PARTICIPANT, Role.POLICY_ADMIN]


def matrix_rows() -> list[tuple[str, str, object, str]]:
    """(route, method, audience, what anonymous visitors get) for every declared URL and
    method, in URL order."""
    rows = []
    for url in site_urls():
        if url.path.startswith("/admin/"):
            continue
        view = resolve(url.path).func
        declared = declared_access(view)
        if declared is None:
            continue
        # API views skip the login redirect and answer 401 themselves.
        anonymous = "401" if getattr(view, "login_required", True) is False else "login"
        for method in sorted(declared, key=METHOD_ORDER.index):
            audience = audience_for(declared, method)
            rows.append((url.route, method, audience, "yes" if audience.public else anonymous))
    return rows


def markdown_table() -> str:
    header = ["URL", "method", *(role.label.lower() for role in COLUMNS), "no role", "anonymous"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for route, method, audience, anonymous in matrix_rows():
        cells = [_cell(audience, role) for role in COLUMNS]
        cells.append("yes" if audience.public or audience.roles is None else "403")
        cells.append(anonymous)
        lines.append(f"| `{route}` | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(audience, role: Role) -> str:
    if audience.public or audience.roles is None or role in audience.roles:
        return "yes"
    return "403"


START, END = "<!-- access-matrix:start -->", "<!-- access-matrix:end -->"


class Command(BaseCommand):
    help = "Print the role × action permission matrix (Markdown) from the views' declarations."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--update", metavar="FILE", help="rewrite the table between the markers in FILE"
        )

    def handle(self, *args, **options) -> None:
        if not options["update"]:
            self.stdout.write(markdown_table())
            return
        path = Path(options["update"])
        text = path.read_text()
        if START not in text or END not in text:
            raise CommandError(f"{path}: no {START} … {END} markers")
        before, rest = text.split(START, 1)
        _, after = rest.split(END, 1)
        path.write_text(f"{before}{START}\n{markdown_table()}\n{END}{after}")
        self.stdout.write(f"{path}: the permission matrix is up to date")
