"""`manage.py export_claims`: write a dataset in FrameRef's JSON Lines layout."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.claims.frameref_export import SHARD_ROWS, export_dataset
from annotation.claims.selectors import dataset_lookup
from annotation.models import Dataset, FramedClaim


class Command(BaseCommand):
    help = "Export a dataset as FrameRef shards: OUT/train/train-0000.jsonl, OUT/dev/..., OUT/test/..."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument("--out", required=True, type=Path, help="output folder")
        parser.add_argument("--shard-rows", type=int, default=SHARD_ROWS,
                            help=f"rows per shard file (default {SHARD_ROWS:,}, as FrameRef)")
        parser.add_argument("--overwrite", action="store_true",
                            help="replace shard files already in the output folder")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        try:
            dataset = dataset_lookup(options["dataset"])
        except Dataset.DoesNotExist as exc:
            raise CommandError(str(exc)) from None
        total = FramedClaim.objects.filter(base_claim__dataset=dataset).count()
        with tqdm(total=total, desc="export", unit=" rows", unit_scale=True, mininterval=0.5,
                  disable=options["no_progress"]) as bar:
            try:
                summary = export_dataset(
                    dataset=dataset, out_dir=options["out"], shard_rows=options["shard_rows"],
                    overwrite=options["overwrite"], progress=bar.update,
                )
            except (FileExistsError, ValueError) as exc:
                raise CommandError(str(exc)) from None
        per_split = ", ".join(f"{split} {rows:,}" for split, rows in summary.rows_per_split.items())
        self.stdout.write(
            f"wrote {summary.rows:,} framed claims of '{dataset.name}' to {options['out']} "
            f"in {len(summary.files)} file(s) ({per_split})"
        )
