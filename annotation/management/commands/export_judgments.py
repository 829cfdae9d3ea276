"""`manage.py export_judgments`: a study's tidy judgment table as CSV, JSON Lines or Parquet."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.dataio.judgment_table import (
    DEFAULT_CHUNK_ROWS,
    EXPORT_FORMATS,
    clean_filters,
    export_chunks,
    export_to_file,
    judgment_export_queryset,
)
from annotation.models import Participant, Study
from annotation.studies.services import study_lookup
from core.vocabulary import FRAMINGS


class Command(BaseCommand):
    help = ("Export a study's judgments as the tidy table: one row per participant and item, "
            "FrameRef's ten columns, then the platform's own; streamed with constant memory.")

    def add_arguments(self, parser):
        parser.add_argument("--study", required=True, help="study name or id")
        parser.add_argument("--format", required=True, choices=EXPORT_FORMATS, dest="fmt")
        parser.add_argument("--out", required=True,
                            help="output file, or - for standard output (csv and jsonl only)")
        parser.add_argument("--framing", action="append", metavar="FRAMING",
                            help=f"only these framings (repeat or comma-separate; {', '.join(FRAMINGS)})")
        parser.add_argument("--truth", choices=("SUPPORTS", "REFUTES", "true", "false"),
                            help="only true (SUPPORTS) or only false (REFUTES) claims")
        parser.add_argument("--participant-status", action="append", metavar="STATUS",
                            help=f"only participants in these statuses ({', '.join(Participant.Status.values)})")
        parser.add_argument("--exclude-excluded", action="store_true",
                            help="leave out participants excluded from analysis "
                                 "(returned, timed out, rejected, excluded)")
        parser.add_argument("--include-attention-checks", action="store_true",
                            help="add the attention-check items (is_attention_check = true)")
        parser.add_argument("--raw-csv", action="store_true",
                            help="CSV cells exactly as stored; by default a text cell starting "
                                 "with = + - @ ' or a tab or CR gets a ' in front, so that "
                                 "spreadsheets show it as text instead of running it")
        parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
        parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_ROWS,
                            help=f"rows per chunk and per Parquet row group (default {DEFAULT_CHUNK_ROWS:,})")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        try:
            study = study_lookup(options["study"])
        except Study.DoesNotExist as exc:
            raise CommandError(str(exc)) from None
        fmt, out = options["fmt"], options["out"]
        try:
            filters = clean_filters(
                framing=options["framing"], truth=options["truth"],
                participant_status=options["participant_status"],
                include_excluded=not options["exclude_excluded"],
                include_attention_checks=options["include_attention_checks"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if options["chunk_size"] < 1:
            raise CommandError(f"--chunk-size must be at least 1, got {options['chunk_size']}")
        if out == "-":
            if fmt == "parquet":
                raise CommandError("Parquet is binary: give --out a file name, or use csv or jsonl for -")
            for data in export_chunks(study=study, fmt=fmt, chunk_size=options["chunk_size"],
                                      raw_csv=options["raw_csv"], **filters):
                self.stdout.write(data.decode("utf-8"), ending="")
            return
        path = Path(out)
        if path.exists() and not options["overwrite"]:
            raise CommandError(f"{path} already exists; choose another name or add --overwrite")
        if path.is_dir():
            raise CommandError(f"{path} is a folder; give a file name")
        total = judgment_export_queryset(study=study, **filters).count()
        with tqdm(total=total, desc="export", unit=" rows", unit_scale=True, mininterval=0.5,
                  disable=options["no_progress"]) as bar:
            rows = export_to_file(study=study, fmt=fmt, path=path, progress=bar.update,
                                  chunk_size=options["chunk_size"], raw_csv=options["raw_csv"],
                                  **filters)
        self.stdout.write(f"wrote {rows:,} judgments of '{study.name}' to {path} ({fmt})")
