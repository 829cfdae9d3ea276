"""`manage.py import_prolific_results`: a study from Prolific's wide annotation export."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.claims.selectors import dataset_lookup
from annotation.dataio.prolific_import import ProlificFileError
from annotation.dataio.services import prolific_results_import
from annotation.models import Dataset, Participant


class Command(BaseCommand):
    help = ("Import results collected on Prolific (the wide export: one row per data point and "
            "question, Annotator{i}_ID/_Response/_Timestamp columns) as a closed study of the "
            "dataset whose framed claims the texts match. All or nothing.")

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="the Prolific export (CSV)")
        parser.add_argument("--dataset", required=True, help="the dataset whose claims were shown")
        parser.add_argument("--study", required=True, help="name of the study to create")
        parser.add_argument("--exclude", nargs="+", default=[], metavar="ID",
                            help="annotator ids to import as excluded from analysis, e.g. those "
                                 "who returned the study on Prolific")
        parser.add_argument("--exclude-as", default=Participant.Status.RETURNED,
                            choices=Participant.EXCLUDED_FROM_ANALYSIS,
                            help="the status given to --exclude ids (default: returned)")
        parser.add_argument("--owner", help="username of the researcher who owns the study")

    def handle(self, *args, **options):
        path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            dataset = dataset_lookup(options["dataset"])
        except Dataset.DoesNotExist as exc:
            raise CommandError(str(exc)) from None
        owner = None
        if options["owner"]:
            from django.contrib.auth import get_user_model

            owner = get_user_model().objects.filter(username=options["owner"]).first()
            if owner is None:
                raise CommandError(f"no user named '{options['owner']}'")
        try:
            summary = prolific_results_import(
                path=path, dataset=dataset, study_name=options["study"],
                exclude=options["exclude"], exclude_status=options["exclude_as"], owner=owner,
            )
        except (ProlificFileError, ValueError) as exc:
            raise CommandError(f"{exc}\nNothing was imported.") from None
        self.stdout.write(
            f"created study {summary.study.pk} '{summary.study.name}' (closed) from {path}: "
            f"{summary.rows} rows, {summary.data_points} data points in {summary.task_groups} task "
            f"groups, {summary.participants} participants ({summary.completed} completed, "
            f"{summary.excluded} excluded from analysis), {summary.judgments} judgments"
        )
        if summary.several_groups:
            self.stdout.write(
                f"{summary.several_groups} participant(s) answered in more than one task group; their "
                "judgments of a base claim seen in two framings break the design and are left out by "
                "the analysis's design-violations exclusion rule (on by default, counted in the report)")
