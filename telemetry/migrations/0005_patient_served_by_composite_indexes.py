"""Drop the single-column patient indexes of observations and ECG segments.

obs_patient_code_time and ecg_patient_start lead with the patient, so they serve
every lookup by patient; the single-column index only cost each stored row
another B-tree insert (COPY about 10 % slower, measured) and disk.

Django's own AlterField would drop the foreign key and add it back, which checks
every row under a lock that blocks uploads for as long as that takes on months of
readings. This drops only the index; on PostgreSQL with CONCURRENTLY, so uploads
go on meanwhile (hence not atomic).
"""

from django.db import migrations, models
from django.db.models.deletion import PROTECT

TABLES = ("telemetry_observation", "telemetry_ecgsegment")


def _patient_index(connection, table: str) -> str | None:
    """The name of the table's index on patient_id alone, if it has one."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    for name, info in constraints.items():
        if (
            info["index"]
            and info["columns"] == ["patient_id"]
            and not info["primary_key"]
            and not info["unique"]
        ):
            return name
    return None


def _concurrently(connection) -> str:
    return " CONCURRENTLY" if connection.vendor == "postgresql" else ""


def drop_indexes(apps, schema_editor):
    connection = schema_editor.connection
    for table in TABLES:
        name = _patient_index(connection, table)
        if name is not None:
            quoted = schema_editor.quote_name(name)
            schema_editor.execute(f"DROP INDEX{_concurrently(connection)} {quoted}")


def create_indexes(apps, schema_editor):
    connection = schema_editor.connection
    for table in TABLES:
        if _patient_index(connection, table) is None:
            name = schema_editor.quote_name(f"{table}_patient_id")
            schema_editor.execute(
                f"CREATE INDEX{_concurrently(connection)} {name} "
                f"ON {schema_editor.quote_name(table)} (patient_id)"
            )


def _patient(**options) -> models.ForeignKey:
    return models.ForeignKey(
        on_delete=PROTECT, related_name="+", to="patients.patient", **options
    )


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY refuses to run in a transaction

    dependencies = [
        ("patients", "0002_device_overdue"),
        ("telemetry", "0004_batch_urgent"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
            state_operations=[
                migrations.AlterField(
                    model_name="ecgsegment",
                    name="patient",
                    field=_patient(db_index=False),
                ),
                migrations.AlterField(
                    model_name="observation",
                    name="patient",
                    field=_patient(db_index=False),
                ),
            ],
        ),
    ]
