"""`manage.py import_claims`: load FrameRef JSON Lines, Parquet or CSV claim files into a dataset."""
from django.core.management.base import BaseCommand, CommandError

from annotation.claims.files import (
    VERIFICATION_STATES,
    ClaimFileError,
    discover_claim_files,
)
from annotation.claims.services import claims_import
from core.progress import byte_progress_bar
from core.vocabulary import NO_SPLIT, SPLITS


class Command(BaseCommand):
    help = (
        "Import claim files (FrameRef JSON Lines, Parquet or CSV; single files or folders with "
        "train/ dev/ test/ shards) into a dataset, all or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH", help="claim files or folders")
        parser.add_argument("--dataset", required=True, help="dataset name; created if new")
        parser.add_argument(
            "--skip-existing", action="store_true",
            help="skip rows whose claim is already in the dataset with the same text",
        )
        parser.add_argument(
            "--split", default=NO_SPLIT, choices=(*SPLITS, NO_SPLIT),
            help="split for rows whose folder, file name and 'split' field name none",
        )
        parser.add_argument(
            "--verification", default="unverified", choices=VERIFICATION_STATES,
            help="verification state of restatements without a 'verification' field "
                 "(FrameRef's release holds only restatements that passed: use 'passed')",
        )
        parser.add_argument("--generator", default="", help="provenance of the texts, e.g. frameref-v1")
        parser.add_argument("--description", help="dataset description")
        parser.add_argument("--source", help="where the dataset comes from (paper, URL)")
        parser.add_argument("--licence", help="the dataset's licence")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        try:
            total_bytes = sum(f.size for f in discover_claim_files(options["paths"]))
            with byte_progress_bar(total_bytes, "import", disable=options["no_progress"]) as bar:
                summary = claims_import(
                    paths=options["paths"],
                    dataset_name=options["dataset"],
                    skip_existing=options["skip_existing"],
                    default_split=options["split"],
                    verification=options["verification"],
                    generator=options["generator"],
                    description=options["description"],
                    source=options["source"],
                    licence=options["licence"],
                    progress=bar.update_rows,
                )
        except ClaimFileError as exc:
            raise CommandError(f"{exc}\nNothing was imported.") from None
        verb = "created" if summary.dataset_created else "added to"
        self.stdout.write(
            f"{verb} dataset '{summary.dataset}': {summary.rows_imported:,} framed claims "
            f"({summary.base_claims_created:,} new base claims) from {summary.files} file(s), "
            f"{summary.rows_skipped:,} skipped as already present, in {summary.seconds:.1f} s "
            f"({summary.rows_per_second:,.0f} rows/s)"
        )
