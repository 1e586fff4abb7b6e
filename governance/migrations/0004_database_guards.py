"""Database triggers that hold what the services promise, whatever code path writes:
published and retired versions never change (except published → retired), and the audit
log is append-only. PostgreSQL and SQLite each get their own dialect."""

from django.db import migrations

# table -> columns frozen once a version is published
VERSIONED = {
    "governance_policyversion": [
        "policy_id", "number", "rules", "changelog", "created_by_id", "created_at",
        "published_by_id", "published_at",
    ],
    "governance_guidelineversion": [
        "guideline_id", "number", "body", "changelog", "created_by_id", "created_at",
        "published_at",
    ],
}  # fmt: skip
AUDIT = "governance_auditevent"


def _unchanged(columns: list[str], same: str) -> str:
    return " AND ".join(f"NEW.{c} {same} OLD.{c}" for c in columns)


def _postgresql(table: str, columns: list[str]) -> list[str]:
    function = f"{table}_guard"
    return [
        f"""
        CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$
        BEGIN
            IF OLD.status = 'draft' THEN
                RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
            END IF;
            IF TG_OP = 'UPDATE' AND OLD.status = 'published' AND NEW.status = 'retired'
               AND {_unchanged(columns, "IS NOT DISTINCT FROM")} THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION '% %: a % version cannot change', TG_TABLE_NAME, OLD.id, OLD.status
                USING ERRCODE = 'integrity_constraint_violation';
        END $$ LANGUAGE plpgsql
        """,
        f"""
        CREATE TRIGGER {function} BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION {function}()
        """,
    ]


def _sqlite(table: str, columns: list[str]) -> list[str]:
    allowed = f"OLD.status = 'published' AND NEW.status = 'retired' AND {_unchanged(columns, 'IS')}"
    return [
        f"""
        CREATE TRIGGER {table}_guard_update BEFORE UPDATE ON {table}
        WHEN OLD.status <> 'draft' AND NOT ({allowed})
        BEGIN SELECT RAISE(ABORT, 'a published or retired version cannot change'); END
        """,
        f"""
        CREATE TRIGGER {table}_guard_delete BEFORE DELETE ON {table}
        WHEN OLD.status <> 'draft'
        BEGIN SELECT RAISE(ABORT, 'a published or retired version cannot be deleted'); END
        """,
    ]


AUDIT_POSTGRESQL = [
    f"""
    CREATE OR REPLACE FUNCTION {AUDIT}_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'audit events are append-only'
            USING ERRCODE = 'integrity_constraint_violation';
    END $$ LANGUAGE plpgsql
    """,
    f"""
    CREATE TRIGGER {AUDIT}_append_only BEFORE UPDATE OR DELETE ON {AUDIT}
    FOR EACH ROW EXECUTE FUNCTION {AUDIT}_append_only()
    """,
]
AUDIT_SQLITE = [
    f"""CREATE TRIGGER {AUDIT}_no_update BEFORE UPDATE ON {AUDIT}
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END""",
    f"""CREATE TRIGGER {AUDIT}_no_delete BEFORE DELETE ON {AUDIT}
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END""",
]


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        statements = [s for t, c in VERSIONED.items() for s in _postgresql(t, c)] + AUDIT_POSTGRESQL
    elif vendor == "sqlite":
        statements = [s for t, c in VERSIONED.items() for s in _sqlite(t, c)] + AUDIT_SQLITE
    else:
        raise RuntimeError(f"no guards written for {vendor}")
    for statement in statements:
        schema_editor.execute(statement, params=None)  # the SQL holds literal % signs


def uninstall(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in VERSIONED:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_guard ON {table}")
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {table}_guard()")
        else:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_guard_update")
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_guard_delete")
    if vendor == "postgresql":
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {AUDIT}_append_only ON {AUDIT}")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {AUDIT}_append_only()")
    else:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {AUDIT}_no_update")
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {AUDIT}_no_delete")


class Migration(migrations.Migration):
    dependencies = [("governance", "0003_seed_criteria")]
    operations = [migrations.RunPython(install, uninstall)]
