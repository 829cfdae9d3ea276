"""`manage.py recover_jobs`: retry or fail the running jobs whose worker died (docs/jobs.md).

Beat runs the same every RECOVER_JOBS_EVERY_SECONDS; the command is for a deployment without
beat, or to see at once what a restart left behind."""
from django.core.management.base import BaseCommand

from core.recovery import jobs_recover


class Command(BaseCommand):
    help = ("Find running jobs whose lease expired (their worker died): queue them again, or "
            "fail them with a message that says so.")

    def handle(self, *args, **options):
        self.stdout.write(f"{jobs_recover()}.")
