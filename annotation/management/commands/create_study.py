"""`manage.py create_study`: design a balanced study from a dataset and print its participant URL."""
from django.core.management.base import BaseCommand, CommandError

from annotation.claims.selectors import dataset_lookup
from annotation.models import Dataset, Study
from annotation.studies.design import DesignError
from annotation.studies.services import StudyRuleError, study_create
from core.vocabulary import FRAMINGS, NO_SPLIT, SPLITS


def _attention_check(value: str):
    try:
        position, expected, text = value.split(":", 2)
        expected = {"yes": True, "no": False}[expected.strip().lower()]
        return text.strip(), expected, int(position)
    except (ValueError, KeyError):
        raise CommandError(
            f"--attention-check '{value}': expected POSITION:yes|no:TEXT, "
            f"e.g. '10:no:Water boils at 20 degrees Celsius at sea level.'"
        ) from None


class Command(BaseCommand):
    help = ("Create a human study: base claims balanced by truth, every chosen framing dealt "
            "into batches with no two framings of one claim in a batch. Prints the study's id "
            "and participant URL.")

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--base-claims", type=int, default=40,
                            help="number of base claims, half true and half false (default 40)")
        parser.add_argument("--base-claim-ids", nargs="+", metavar="ID",
                            help="use exactly these base claims (external ids) instead")
        parser.add_argument("--framings", default="all",
                            help=f"comma-separated framings or 'all' ({', '.join(FRAMINGS)})")
        parser.add_argument("--batch-size", type=int, default=20)
        parser.add_argument("--raters-per-batch", type=int, default=3)
        parser.add_argument("--split", default="", choices=("", *SPLITS, NO_SPLIT),
                            help="only base claims of this split (default: any)")
        parser.add_argument("--seed", type=int, default=123)
        parser.add_argument("--completion-code", help="default: a random code")
        parser.add_argument("--completion-url", default="",
                            help="e.g. https://app.prolific.com/submissions/complete?cc=CODE")
        parser.add_argument("--time-limit", type=int, default=60, metavar="MINUTES")
        parser.add_argument("--attention-check", action="append", default=[], type=str,
                            metavar="POSITION:yes|no:TEXT")
        parser.add_argument("--attention-fail-policy", default=Study.AttentionFailPolicy.RECORD,
                            choices=Study.AttentionFailPolicy.values)
        parser.add_argument("--owner", help="username of the researcher who owns the study "
                                               "(others see it only if they are superusers)")
        parser.add_argument("--draft", action="store_true",
                            help="create it as a draft instead of open for participants")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000",
                            help="the platform's public address, for the printed URL")

    def handle(self, *args, **options):
        try:
            dataset = dataset_lookup(options["dataset"])
        except Dataset.DoesNotExist as exc:
            raise CommandError(str(exc)) from None
        if Study.objects.filter(name=options["name"]).exists():
            raise CommandError(f"a study named '{options['name']}' already exists")
        owner = None
        if options["owner"]:
            from django.contrib.auth import get_user_model

            owner = get_user_model().objects.filter(username=options["owner"]).first()
            if owner is None:
                raise CommandError(f"no user named '{options['owner']}'")
        framings = (list(FRAMINGS) if options["framings"] == "all"
                    else [f.strip() for f in options["framings"].split(",") if f.strip()])
        unknown = [f for f in framings if f not in FRAMINGS]
        if unknown:
            raise CommandError(f"unknown framing(s) {', '.join(unknown)}; accepted: {', '.join(FRAMINGS)}")
        try:
            study = study_create(
                dataset=dataset,
                name=options["name"],
                owner=owner,
                base_claims=None if options["base_claim_ids"] else options["base_claims"],
                base_claim_external_ids=options["base_claim_ids"],
                framings=framings,
                batch_size=options["batch_size"],
                raters_per_batch=options["raters_per_batch"],
                split=options["split"],
                seed=options["seed"],
                status=Study.Status.DRAFT if options["draft"] else Study.Status.OPEN,
                completion_code=options["completion_code"],
                completion_url=options["completion_url"],
                time_limit_minutes=options["time_limit"],
                attention_checks=[_attention_check(v) for v in options["attention_check"]],
                attention_fail_policy=options["attention_fail_policy"],
            )
        except (DesignError, StudyRuleError) as exc:
            raise CommandError(str(exc)) from None
        url = f"{options['base_url'].rstrip('/')}/s/{study.pk}/"
        batches = study.batches.count()
        self.stdout.write(
            f"created study {study.pk} '{study.name}' ({study.status}): {study.base_claim_count} base "
            f"claims x {len(study.framings)} framings in {batches} batches of {study.batch_size}, "
            f"{study.raters_per_batch} raters each ({batches * study.raters_per_batch} sessions); "
            f"completion code {study.completion_code}\n"
            f"participant URL: {url}\n"
            f"for Prolific:    {url}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&STUDY_ID={{{{%STUDY_ID%}}}}"
            f"&SESSION_ID={{{{%SESSION_ID%}}}}"
        )
