"""`manage.py make_synthetic_claims`: FrameRef-shaped synthetic shards for benchmarks and scale tests."""
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.claims.synthetic import write_synthetic_claims

FRAMEREF_ROWS = 1_073_740


class Command(BaseCommand):
    help = (
        "Write synthetic claims in FrameRef's layout (OUT/train/train-0000.jsonl, dev/, test/; "
        "six framings per base claim, 80/10/10 by rows). The texts are random and not true "
        "or false in any real sense: use them to measure, never to study."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=FRAMEREF_ROWS,
                            help=f"framed claims to write (default {FRAMEREF_ROWS:,}, FrameRef's size)")
        parser.add_argument("--out", type=Path, required=True, help="output folder")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--shard-rows", type=int, default=100_000)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        started = time.perf_counter()
        with tqdm(total=options["rows"], desc="synthesise", unit=" rows", unit_scale=True,
                  mininterval=0.5, disable=options["no_progress"]) as bar:
            try:
                summary = write_synthetic_claims(
                    rows=options["rows"], out_dir=options["out"], seed=options["seed"],
                    shard_size=options["shard_rows"], progress=bar.update,
                )
            except (ValueError, FileExistsError) as exc:
                raise CommandError(str(exc)) from None
        per_split = ", ".join(f"{k} {v:,}" for k, v in summary.rows_per_split.items())
        self.stdout.write(
            f"wrote {summary.rows:,} framed claims of {summary.base_claims:,} base claims to "
            f"{options['out']} in {len(summary.files)} files ({per_split}) in "
            f"{time.perf_counter() - started:.1f} s"
        )
