"""`manage.py compare_personas`: per-framing metrics of several personas side by side."""
import json
import math

from django.core.management.base import BaseCommand, CommandError

from annotation.claims.selectors import dataset_lookup
from annotation.models import Dataset, Split
from modeling.metrics import (
    ALL,
    METRIC_COLUMNS,
    MetricsError,
    bootstrap_intervals,
    compare_personas,
    paired_differences,
)
from modeling.score_services import ScoreServiceError, persona_lookup, persona_scores

SHOWN = {  # column -> header in the text table
    "balanced_accuracy": "bal_acc", "mspr": "mspr_raw", "mspr_normalised": "mspr_norm",
    "accuracy": "accuracy", "false_acceptance_rate": "false_acc", "mean_confidence": "mean_conf",
}


class Command(BaseCommand):
    help = ("Compare personas on one dataset split: balanced accuracy, MSPR (raw and normalised), "
            "accuracy, false acceptance and mean confidence per framing, from their score tables; "
            "then each persona's differences from the first, claim for claim (with paired "
            "bootstrap intervals under --bootstrap).")

    def add_arguments(self, parser):
        parser.add_argument("personas", nargs="+", help="persona names or ids")
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument("--split", default=Split.TEST, choices=Split.values)
        parser.add_argument("--format", default="text", choices=["text", "json", "csv"])
        parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                            help="add 95%% intervals of MSPR (raw and normalised) and balanced "
                                 "accuracy from N bootstrap resamples of base claims (e.g. 1000)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")

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
        if options["bootstrap"] < 0:
            raise CommandError(f"--bootstrap must be 0 or more, got {options['bootstrap']}")
        if options["bootstrap"]:
            metrics = ("mspr", "mspr_normalised", "balanced_accuracy")
            intervals = [bootstrap_intervals(tables[row.persona], metrics,
                                             framing=None if row.framing == ALL else row.framing,
                                             reps=options["bootstrap"], seed=options["seed"])
                         for row in comparison.itertuples(index=False)]
            for metric in metrics:
                comparison[f"{metric}_low"] = [interval[metric][0] for interval in intervals]
                comparison[f"{metric}_high"] = [interval[metric][1] for interval in intervals]
        first = next(iter(tables))
        try:
            differences = {name: paired_differences(tables[first], table, reps=options["bootstrap"],
                                                    seed=options["seed"])
                           for name, table in list(tables.items())[1:]}
        except MetricsError as exc:
            raise CommandError(str(exc)) from None
        if options["format"] == "csv":
            self.stdout.write(comparison.to_csv(index=False), ending="")
            return
        if options["format"] == "json":
            rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                     for k, v in row.items()} for row in comparison.to_dict(orient="records")]
            self.stdout.write(json.dumps({
                "dataset": dataset.name, "split": options["split"],
                "metrics": list(METRIC_COLUMNS), "rows": rows,
                "differences_from": first,
                "differences": {name: [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                                        for k, v in row.items()} for row in table.to_dict(orient="records")]
                                for name, table in differences.items()},
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
            if options["bootstrap"]:
                self.stdout.write(
                    f"{'':<28} {'  95% CI':<15} {'':>6} "
                    f"[{row.balanced_accuracy_low:.3f}, {row.balanced_accuracy_high:.3f}] "
                    f"mspr_raw [{row.mspr_low:.3f}, {row.mspr_high:.3f}] "
                    f"mspr_norm [{row.mspr_normalised_low:.3f}, {row.mspr_normalised_high:.3f}]")
        for name, table in differences.items():
            self._write_differences(first, name, table, options["bootstrap"])

    def _write_differences(self, first, name, table, reps):
        self.stdout.write("")
        self.stdout.write(f"{name} minus {first}, claim for claim"
                          + (f" (95% paired bootstrap over base claims, {reps} resamples)" if reps else "")
                          + "; vs others = this framing's MSPR difference minus the mean of the other framings'")
        columns = (("mspr", "mspr_raw"), ("mspr_normalised", "mspr_norm"), ("balanced_accuracy", "bal_acc"),
                   ("mspr_vs_others", "vs_others"))
        width = 26 if reps else 10
        header = f"  {'framing':<15}" + "".join(f"{label:>{width}}" for _, label in columns)
        self.stdout.write(header)
        for row in table.to_dict(orient="records"):
            cells = []
            for metric, _ in columns:
                value = row.get(metric, math.nan)
                if value is None or math.isnan(value):
                    cells.append(f"{'-':>{width}}")
                elif reps:
                    low, high = row[f"{metric}_low"], row[f"{metric}_high"]
                    cells.append(f"{value:+.3f} [{low:+.3f}, {high:+.3f}]".rjust(width))
                else:
                    cells.append(f"{value:>+{width}.3f}")
            self.stdout.write(f"  {row['framing']:<15}" + "".join(cells))
