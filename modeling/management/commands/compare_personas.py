"""`manage.py compare_personas`: per-framing metrics of several personas side by side."""
import json
import math

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Dataset, Split
from annotation.selectors import dataset_lookup
from modeling.metrics import METRIC_COLUMNS, compare_personas
from modeling.score_services import ScoreServiceError, persona_lookup, persona_scores

SHOWN = {  # column -> header in the text table
    "balanced_accuracy": "bal_acc", "mspr": "mspr_raw", "mspr_normalised": "mspr_norm",
    "accuracy": "accuracy", "false_acceptance_rate": "false_acc", "mean_confidence": "mean_conf",
}


class Command(BaseCommand):
    help = ("Compare personas on one dataset split: balanced accuracy, MSPR (raw and normalised), "
            "accuracy, false acceptance and mean confidence per framing, from their score tables.")

    def add_arguments(self, parser):
        parser.add_argument("personas", nargs="+", help="persona names or ids")
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument("--split", default=Split.TEST, choices=Split.values)
        parser.add_argument("--format", default="text", choices=["text", "json", "csv"])

    def handle(self, *args, **options):
        try:
            dataset = dataset_lookup(options["dataset"])
            tables = {}
            for reference in options["personas"]:
                persona = persona_lookup(reference)
                tables[persona.name] = persona_scores(persona=persona, dataset=dataset,
                                                      split=options["split"])
        except (Dataset.DoesNotExist, ScoreServiceError) as exc:
            raise CommandError(str(exc)) from None
        comparison = compare_personas(tables)
        if options["format"] == "csv":
            self.stdout.write(comparison.to_csv(index=False), ending="")
            return
        if options["format"] == "json":
            rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                     for k, v in row.items()} for row in comparison.to_dict(orient="records")]
            self.stdout.write(json.dumps({
                "dataset": dataset.name, "split": options["split"],
                "metrics": list(METRIC_COLUMNS), "rows": rows,
            }, indent=2, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
            return
        self.stdout.write(f"{dataset.name} ({options['split']}); MSPR raw = mean P(SUPPORTS) on "
                          "false claims, normalised = P(S)/(P(S)+P(R))")
        header = f"{'persona':<28} {'framing':<15} {'n':>6} " + " ".join(
            f"{label:>10}" for label in SHOWN.values())
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for row in comparison.itertuples(index=False):
            values = " ".join(
                f"{getattr(row, name):>10.3f}" if not math.isnan(getattr(row, name))
                else f"{'-':>10}" for name in SHOWN)
            self.stdout.write(f"{row.persona[:28]:<28} {row.framing:<15} {row.n:>6} {values}")
