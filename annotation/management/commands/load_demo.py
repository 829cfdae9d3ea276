"""`manage.py load_demo`: the demo dataset and a demo researcher login, safe to run again."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from annotation.claims.demo import demo_dataset_load


class Command(BaseCommand):
    help = "Load the demo dataset (64 base claims in six framings) and create a demo login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo")
        parser.add_argument("--no-user", action="store_true", help="only load the dataset")

    def handle(self, *args, **options):
        summary = demo_dataset_load()
        self.stdout.write(
            f"demo dataset '{summary.dataset}': {summary.rows_imported} claims added, "
            f"{summary.rows_skipped} already present"
        )
        if options["no_user"]:
            return
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=options["username"], defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(options["password"])
            user.save()
            self.stdout.write(f"demo login created: {options['username']} / {options['password']}")
        else:
            self.stdout.write(f"demo login exists: {options['username']}")
