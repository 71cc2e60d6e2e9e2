from django.db import migrations


def create_counter(apps, schema_editor):
    apps.get_model("alerts", "Sequence").objects.get_or_create(name="alerts")


class Migration(migrations.Migration):
    dependencies = [("alerts", "0001_initial")]
    operations = [migrations.RunPython(create_counter, migrations.RunPython.noop)]
