"""Make the audit log append-only in the database itself: on PostgreSQL a trigger
refuses every UPDATE and DELETE, whoever asks, the application's own role included.

SQLite (the embedded default, for demos and tests) refuses UPDATE only: Django's
test flush empties SQLite tables with DELETE, where PostgreSQL uses TRUNCATE.
"""

from django.db import migrations

POSTGRES = """
CREATE OR REPLACE FUNCTION rpm_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER rpm_audit_append_only
    BEFORE UPDATE OR DELETE ON security_auditevent
    FOR EACH ROW EXECUTE FUNCTION rpm_audit_append_only();
"""
POSTGRES_UNDO = """
DROP TRIGGER IF EXISTS rpm_audit_append_only ON security_auditevent;
DROP FUNCTION IF EXISTS rpm_audit_append_only();
"""
SQLITE = [
    """CREATE TRIGGER rpm_audit_no_update BEFORE UPDATE ON security_auditevent
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;""",
]
SQLITE_UNDO = ["DROP TRIGGER IF EXISTS rpm_audit_no_update;"]


def forwards(apps, schema_editor):
    _run(schema_editor, POSTGRES, SQLITE)


def backwards(apps, schema_editor):
    _run(schema_editor, POSTGRES_UNDO, SQLITE_UNDO)


def _run(schema_editor, postgres, sqlite):
    vendor = schema_editor.connection.vendor
    statements = (
        [postgres] if vendor == "postgresql" else sqlite if vendor == "sqlite" else []
    )
    for statement in statements:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("security", "0003_audit_rows_are_kept")]
    operations = [migrations.RunPython(forwards, backwards)]
