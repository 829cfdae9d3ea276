"""`manage.py mark_participants`: mark sessions returned, timed out, rejected or excluded."""
from django.core.management.base import BaseCommand, CommandError

from annotation.models import Participant, Study
from annotation.studies.assignment import MARKABLE, participant_mark
from annotation.studies.services import study_lookup


class Command(BaseCommand):
    help = ("Mark participants of a study (by their platform id) returned, timed out, rejected "
            "or excluded: their slots reopen and their judgments leave the analysis.")

    def add_arguments(self, parser):
        parser.add_argument("study", help="the study's name or id")
        parser.add_argument("participant_ids", nargs="+", metavar="ID")
        parser.add_argument("--status", required=True, choices=MARKABLE)
        parser.add_argument("--note", default="", help="why, kept with the participant")

    def handle(self, *args, **options):
        try:
            study = study_lookup(options["study"])
        except Study.DoesNotExist as exc:
            raise CommandError(str(exc)) from None
        found = {p.external_id: p for p in
                 Participant.objects.filter(study=study, external_id__in=options["participant_ids"])}
        missing = [pid for pid in options["participant_ids"] if pid not in found]
        if missing:
            raise CommandError(f"study '{study.name}' has no participant(s) {', '.join(missing)}; "
                               f"nothing was changed")
        for external_id in options["participant_ids"]:
            participant_mark(participant=found[external_id], status=options["status"],
                             note=options["note"])
        self.stdout.write(f"marked {len(found)} participant(s) of '{study.name}' {options['status']}")
