"""`manage.py run_bots`: simulated participants take a study through its real HTTP pages."""
from django.core.management.base import BaseCommand, CommandError

from annotation.models import Study
from annotation.studies.bots import POLICIES, make_policy, run_bots
from annotation.studies.selectors import study_truth_table
from annotation.studies.services import study_lookup


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = ("Run simulated participants through a study over HTTP, like people entering from "
            "Prolific, and print how many completed, were turned away or hit an error, the "
            "judgments per second and the latency of showing and submitting an item. Exits "
            "with status 1 if any bot hit an unexpected error.")

    def add_arguments(self, parser):
        parser.add_argument("study", help="the study's id or name")
        parser.add_argument("--participants", type=int, required=True, metavar="N")
        parser.add_argument("--base-url", required=True,
                            help="where the platform is served, e.g. http://127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=10, metavar="C",
                            help="bots in flight at once (default 10)")
        parser.add_argument("--policy", choices=POLICIES, default="random",
                            help="how bots answer (default random); truthful looks the claims "
                                 "up in this database")
        parser.add_argument("--seed", type=int, help="makes the answers reproducible")
        parser.add_argument("--id-prefix",
                            help="participant ids are PREFIX00000, PREFIX00001, ... "
                                 "(default: a fresh random prefix)")
        parser.add_argument("--double-submit", type=_fraction, default=0.0, metavar="P",
                            help="chance per item of sending the answer twice at once (0..1)")
        parser.add_argument("--reload", type=_fraction, default=0.0, metavar="P",
                            help="chance per item of reloading or re-entering first (0..1)")
        parser.add_argument("--think-ms", type=float, default=0.0, metavar="MS",
                            help="mean pause before each answer, in milliseconds")
        parser.add_argument("--leave-after", type=int, metavar="N",
                            help="each bot quits after N answers (0: right after consent), "
                                 "leaving its session open")
        parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                            help="per request (default 60)")
        parser.add_argument("--json", metavar="PATH",
                            help="also write every bot's requests and acknowledged answers")

    def handle(self, *args, **options):
        try:
            study = study_lookup(options["study"])
        except Study.DoesNotExist as missing:
            raise CommandError(str(missing)) from None
        if options["participants"] < 0:
            raise CommandError("--participants must be 0 or more")
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1")
        truth = study_truth_table(study) if options["policy"] == "truthful" else None
        policy = make_policy(options["policy"], truth)
        try:
            report = run_bots(
                base_url=options["base_url"], study_id=study.pk,
                participants=options["participants"], concurrency=options["concurrency"],
                policy=policy, seed=options["seed"], id_prefix=options["id_prefix"],
                double_submit=options["double_submit"], reload=options["reload"],
                think_time=options["think_ms"] / 1000, leave_after=options["leave_after"],
                timeout=options["timeout"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"study {study.pk} '{study.name}' at {options['base_url']}, "
                          f"policy {policy.name}, concurrency {options['concurrency']}")
        self.stdout.write(report.summary())
        if options["json"]:
            report.write_json(options["json"])
        if report.errors:
            raise CommandError(f"{len(report.errors)} bot(s) hit an unexpected error")
