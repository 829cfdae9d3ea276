"""`manage.py load_demo`: the demo dataset, and with `--demo-user` a demo login; safe to run again.

The demo login (demo/demo unless told otherwise) is for the embedded quick start only:
`scripts/run.sh` asks for it. It is an ordinary researcher unless `--superuser` is given. The
production settings refuse to run while an active account has such a password (core/checks.py).
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from annotation.claims.demo import demo_dataset_load


class Command(BaseCommand):
    help = ("Load the demo dataset (64 base claims in six framings); with --demo-user, also a "
            "demo login for the quick start.")

    def add_arguments(self, parser):
        parser.add_argument("--demo-user", action="store_true",
                            help="create the demo login (a researcher; see --superuser)")
        parser.add_argument("--superuser", action="store_true",
                            help="make the demo login a superuser with the admin (implies --demo-user)")
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo")
        parser.add_argument("--no-user", action="store_true",
                            help="only load the dataset (the default; kept for older scripts)")

    def handle(self, *args, **options):
        summary = demo_dataset_load()
        self.stdout.write(
            f"demo dataset '{summary.dataset}': {summary.rows_imported} claims added, "
            f"{summary.rows_skipped} already present"
        )
        if options["no_user"] or not (options["demo_user"] or options["superuser"]):
            return
        self.demo_login(options["username"], options["password"], superuser=options["superuser"])

    def demo_login(self, username: str, password: str, *, superuser: bool) -> None:
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_password(password)
        kind = "superuser" if superuser else "researcher"
        if created or user.is_superuser != superuser or user.is_staff != superuser:
            # An existing demo login is made what was asked for: no longer a superuser unless
            # asked (older quick starts made it one). Its password is left as it is.
            user.is_superuser = user.is_staff = superuser
            user.save()
        if created:
            self.stdout.write(f"demo login created: {username} / {password} ({kind})")
        else:
            self.stdout.write(f"demo login exists: {username} ({kind})")
