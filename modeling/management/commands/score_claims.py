"""`manage.py score_claims`: a persona's label probabilities for every framed claim of a split."""
from django.core.management.base import BaseCommand, CommandError

from annotation.claims.selectors import dataset_lookup
from annotation.models import Dataset, Split
from core.progress import done_of_total_bar
from modeling.score_services import (
    ScoreServiceError,
    base_persona_get_or_create,
    persona_lookup,
    score_table_create,
    score_table_enqueue,
    score_table_run,
    score_tables_run_together,
)


class Command(BaseCommand):
    help = ("Score every framed claim of a dataset split with a persona: P(SUPPORTS), P(REFUTES), "
            "the predicted label and its confidence, written to a Parquet score table.")

    def add_arguments(self, parser):
        from modeling.scoring import (
            DEFAULT_BATCH_SIZE,  # torch loads when the command runs, not on import
        )

        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--persona", action="append",
                         help="persona name or id; repeat it to score several personas of one "
                              "base model together in one pass (mixed-adapter batches)")
        who.add_argument("--base-model",
                         help="score the untrained base model (a packaged name such as "
                              "smollm2-135m-instruct, or a local model folder); its base persona "
                              "is created on first use")
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument("--split", default=Split.TEST, choices=Split.values,
                            help="split to score (default test)")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                            help=f"claims per forward pass (default {DEFAULT_BATCH_SIZE})")
        parser.add_argument("--threads", type=int, default=None,
                            help="torch CPU threads (default: torch's choice; on a busy shared "
                                 "machine 1 is often faster)")
        parser.add_argument("--background", action="store_true",
                            help="queue it for a worker (the models queue) instead of running here")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        if options["batch_size"] < 1:
            raise CommandError(f"--batch-size must be at least 1, got {options['batch_size']}")
        if options["threads"] is not None:
            if options["threads"] < 1:
                raise CommandError(f"--threads must be at least 1, got {options['threads']}")
            import torch

            torch.set_num_threads(options["threads"])
        try:
            dataset = dataset_lookup(options["dataset"])
            personas = ([persona_lookup(reference) for reference in options["persona"]]
                        if options["persona"]
                        else [base_persona_get_or_create(base_model=options["base_model"])])
            personas = list({p.pk: p for p in personas}.values())
            tables = [score_table_create(persona=p, dataset=dataset, split=options["split"])
                      for p in personas]
        except (Dataset.DoesNotExist, ScoreServiceError) as exc:
            raise CommandError(str(exc)) from None
        if len(tables) > 1:
            if options["background"]:
                raise CommandError("--background takes one persona; queue them one by one")
            self._together(tables, options)
            return
        persona, table = personas[0], tables[0]
        if options["background"]:
            score_table_enqueue(score_table=table)
            self.stdout.write(f"queued score table #{table.pk}: {persona.name} on {dataset.name} "
                              f"({options['split']})")
            return
        with done_of_total_bar(f"score {persona.name}", " claims", disable=options["no_progress"]) as progress:
            try:
                table = score_table_run(score_table=table, batch_size=options["batch_size"],
                                        progress=progress)
            except Exception as exc:  # the table is marked failed with the same message
                raise CommandError(f"scoring failed: {exc}") from None
        if table.status != table.Status.SUCCEEDED:
            raise CommandError(f"score table #{table.pk} ended {table.status}: {table.error}")
        rate = table.provenance.get("claims_per_second")
        self.stdout.write(
            f"scored {table.rows:,} framed claims of '{dataset.name}' ({table.split}) with "
            f"{persona.name} in {table.provenance.get('seconds')} s ({rate} claims/s); "
            f"score table #{table.pk}: {table.path}")

    def _together(self, tables, options):
        with done_of_total_bar(f"score {len(tables)} personas", " rows",
                               disable=options["no_progress"]) as progress:
            try:
                tables = score_tables_run_together(score_tables=tables,
                                                   batch_size=options["batch_size"],
                                                   progress=progress)
            except Exception as exc:
                raise CommandError(f"scoring failed: {exc}") from None
        seconds = tables[0].provenance.get("seconds")
        self.stdout.write(f"scored {tables[0].rows:,} framed claims with {len(tables)} personas "
                          f"together in {seconds} s:")
        for table in tables:
            self.stdout.write(f"  {table.persona.name}: score table #{table.pk}: {table.path}")
