"""`manage.py load_demo`: the demo dataset and a demo researcher login, safe to run again."""
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from annotation.claims.services import claims_import

DEMO_FILE = Path(__file__).resolve().parents[2] / "demo_data" / "framelab-demo.jsonl"
DEMO_DATASET = "FrameLab demo"


class Command(BaseCommand):
    help = "Load the demo dataset (64 base claims in six framings) and create a demo login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo")
        parser.add_argument("--no-user", action="store_true", help="only load the dataset")

    def handle(self, *args, **options):
        summary = claims_import(
            paths=[DEMO_FILE],
            dataset_name=DEMO_DATASET,
            skip_existing=True,
            verification="passed",
            generator="framelab-demo (written and checked by hand)",
            description=(
                "64 general-knowledge claims, half true and half false, restated by hand in "
                "the five FrameRef framings without changing what any of them asserts."
            ),
            source="FrameLab project (hand-written)",
            licence="CC0-1.0",
        )
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
