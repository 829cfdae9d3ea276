"""`manage.py frame_claims`: restate your own base claims in the FrameRef framings, offline."""
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.claim_files import ClaimFileError
from annotation.framer import (
    FRAMINGS, GENERATOR, assign_missing_splits, read_base_claims, write_framed_claims,
)
from annotation.services import claims_import
from annotation.vocabulary import SPLITS, TRUTH_LABELS


class Command(BaseCommand):
    help = (
        "Frame base claims from a CSV or JSON Lines file (id,text,true_label[,split,topic,source]) "
        "with the template framer and write FrameRef JSON Lines shards (OUT/train/, dev/, test/) "
        "that import_claims reads. Claims without a split get one, 80/10/10 by topic."
    )

    def add_arguments(self, parser):
        parser.add_argument("input", type=Path, metavar="INPUT", help="a .csv or .jsonl file")
        parser.add_argument("--out", type=Path, required=True, help="output folder (empty or new)")
        parser.add_argument("--seed", type=int, default=0, help="seed for templates and splits")
        parser.add_argument("--framings", nargs="+", choices=FRAMINGS, default=list(FRAMINGS),
                            help="framings to write (the original is always written)")
        parser.add_argument("--shard-rows", type=int, default=100_000)
        parser.add_argument("--import-as", metavar="NAME", default=None,
                            help="also import the files as dataset NAME")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        try:
            claims = read_base_claims(options["input"], display=str(options["input"]))
        except ClaimFileError as exc:
            raise CommandError(f"{exc}\nNothing was written.") from None
        claims = assign_missing_splits(claims, options["seed"])
        with tqdm(total=len(claims), desc="frame", unit=" claims", file=sys.stderr,
                  disable=options["no_progress"], mininterval=0.5) as bar:
            try:
                written = write_framed_claims(
                    claims, options["out"], seed=options["seed"], framings=options["framings"],
                    shard_size=options["shard_rows"], progress=bar.update,
                )
            except (FileExistsError, ValueError) as exc:
                raise CommandError(str(exc)) from None
        self.stdout.write(f"wrote {written.rows:,} framed claims of {len(claims):,} base claims "
                          f"to {options['out']} in {len(written.files)} file(s)")
        for split in (*SPLITS, "none"):
            row = [written.base_by_split_truth[(split, label)] for label in TRUTH_LABELS]
            if sum(row):
                self.stdout.write(f"  {split:<6} SUPPORTS {row[0]:>7,}  REFUTES {row[1]:>7,}")
        if options["import_as"]:
            try:
                summary = claims_import(paths=[options["out"]], dataset_name=options["import_as"],
                                        generator=GENERATOR)
            except ClaimFileError as exc:
                raise CommandError(f"{exc}\nNothing was imported.") from None
            self.stdout.write(f"imported {summary.rows_imported:,} framed claims into dataset "
                              f"'{summary.dataset}'")
