"""The table of the embedded default cache (`DatabaseCache`, see CACHES in base settings).

A migration rather than a separate `createcachetable` step, so that every way of setting up a
database (`scripts/run.sh`, a deployment's `migrate`, the test database) has it. It reads the
cache settings when it runs: with CACHE_URL pointing at Redis it creates nothing. Switching an
existing database to a `dbcache://` CACHE_URL later needs `manage.py createcachetable`.
"""
from django.core.management import call_command
from django.db import migrations


def create_cache_tables(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    initial = True
    dependencies: list = []
    operations = [migrations.RunPython(create_cache_tables, migrations.RunPython.noop)]
