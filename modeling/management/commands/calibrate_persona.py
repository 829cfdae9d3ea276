"""`manage.py calibrate_persona`: a persona against a study's human raters, and its adjustment."""
import json
import math

from django.core.management.base import BaseCommand, CommandError

from annotation.analysis.options import EXCLUSION_RULES, AnalysisOptions
from annotation.models import Study
from annotation.studies.services import study_lookup
from core.progress import done_of_total_bar
from modeling.calibration import METHODS, CalibrationError, nearest_to_humans
from modeling.score_services import ScoreServiceError, calibration_run, persona_lookup


def _fmt(value, width=8, digits=3):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{'-':>{width}}"
    return f"{value:>{width}.{digits}f}"


class Command(BaseCommand):
    help = ("Score the items a study's participants saw with a persona, compare it with the humans "
            "(false acceptance and rejection, confidence, framing effects, ECE, Brier, item "
            "agreement), fit a per-framing temperature or Platt scaling, and store the result. "
            "Several --persona options (an alpha sweep) also report whose framing effects are "
            "nearest the humans'.")

    def add_arguments(self, parser):
        from modeling.scoring import (
            DEFAULT_BATCH_SIZE,  # torch loads when the command runs, not on import
        )

        parser.add_argument("--persona", action="append", required=True,
                            help="persona name or id; repeat for an alpha sweep")
        parser.add_argument("--study", required=True, help="study name or id")
        parser.add_argument("--method", default="temperature", choices=METHODS,
                            help="per-framing rescaling of P(SUPPORTS) (default temperature)")
        parser.add_argument("--seed", type=int, default=0,
                            help="seed of the held-out folds and bootstrap (default 0)")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
        parser.add_argument("--exclusions", metavar="RULES",
                            help=f"which raters count: comma-separated exclusion rules "
                                 f"({', '.join(EXCLUSION_RULES)}, all or none; persona always applies); "
                                 "default all, as the study's report applies them")
        parser.add_argument("--min-median-response-ms", metavar="MS",
                            help="the 'fast' rule's threshold (default 2000), as for analyze_study")
        parser.add_argument("--format", default="text", choices=["text", "json"])
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        try:
            study = study_lookup(options["study"])
            personas = [persona_lookup(reference) for reference in options["persona"]]
        except (Study.DoesNotExist, ValueError) as exc:
            raise CommandError(str(exc)) from None
        params = {key: options[option] for option, key in (
            ("exclusions", "exclusions"), ("min_median_response_ms", "min_median_response_ms"))
            if options[option] is not None}
        try:
            policy = AnalysisOptions.from_params(params).policy
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        calibrations = []
        for persona in personas:
            with done_of_total_bar(f"score {persona.name}", " items",
                                   disable=options["no_progress"]) as progress:
                try:
                    calibrations.append(calibration_run(
                        persona=persona, study=study, method=options["method"],
                        seed=options["seed"], batch_size=options["batch_size"], progress=progress,
                        exclusions=policy))
                except (ScoreServiceError, CalibrationError) as exc:
                    raise CommandError(str(exc)) from None
        best, distances = nearest_to_humans({c.persona.name: c.result for c in calibrations})
        if options["format"] == "json":
            self.stdout.write(json.dumps({
                "study": study.name,
                "calibrations": [{"id": c.pk, "persona": c.persona.name, "result": {
                    k: v for k, v in c.result.items() if k not in ("items", "human_profile")}}
                    for c in calibrations],
                "nearest_to_humans": best, "effect_rmse": distances,
            }, indent=2))
            return
        for calibration in calibrations:
            self._report(calibration)
        if len(calibrations) > 1:
            self.stdout.write("\nframing effects (false acceptance, framing minus original), "
                              "RMSE against the humans':")
            for name, rmse in sorted(distances.items(), key=lambda kv: kv[1]):
                self.stdout.write(f"  {name:<40} {_fmt(rmse)}")
            self.stdout.write(f"nearest to the humans: {best}")

    def _report(self, calibration):
        result = calibration.result
        out = self.stdout.write
        out(f"\ncalibration #{calibration.pk}: {calibration.persona.name} vs {calibration.study.name} "
            f"({result['n_items']} items, {result['n_judgments']} judgments; "
            f"method {result['method']})")
        raters = result.get("raters") or {}
        record = raters.get("exclusions") or {}
        if record:
            out(f"raters counted: {raters['n_raters']} of {record['raters_before']} "
                f"({raters['n_judgments']} of {record['judgments_before']} judgments); {record['summary']}")
        out("per framing: false acceptance (FA) and false rejection (FR); humans with 95% Wilson "
            "interval, persona = mean P(SUPPORTS) (hard = its predicted labels)")
        out(f"{'framing':<15} {'FA human':>8} {'[95% CI]':>15} {'persona':>8} {'hard':>8} "
            f"{'FR human':>8} {'persona':>8} {'conf hum':>8} {'conf per':>8}")
        for row in result["before"]["rates"]:
            ci = f"[{_fmt(row['false_acceptance_human_low'], 5, 2)},{_fmt(row['false_acceptance_human_high'], 5, 2)}]"
            out(f"{row['framing']:<15} {_fmt(row['false_acceptance_human'])} {ci:>15} "
                f"{_fmt(row['false_acceptance_persona'])} {_fmt(row['false_acceptance_persona_hard'])} "
                f"{_fmt(row['false_rejection_human'])} {_fmt(row['false_rejection_persona'])} "
                f"{_fmt(row['confidence_human'])} {_fmt(row['confidence_persona'])}")
        agreement = result["before"]["effect_agreement"]
        out(f"framing effects: correlation {_fmt(agreement['correlation'], 0)}, sign agreement "
            f"{_fmt(agreement['sign_agreement'], 0)}, RMSE {_fmt(agreement['rmse'], 0)}")
        overall = result["before"]["confidence_distances"][-1]
        out(f"confidence distributions (1-5 scale; persona max(p,1-p) -> nearest level of "
            f"0.5+0.125*(k-1)): Wasserstein-1 {_fmt(overall['wasserstein_1'], 0)}, "
            f"Jensen-Shannon {_fmt(overall['jensen_shannon'], 0)}")
        rules = result["before"]["scoring_rules"][-1]
        out(f"against the truth: ECE persona {_fmt(rules['ece_persona'], 0)} humans "
            f"{_fmt(rules['ece_human'], 0)}; Brier persona {_fmt(rules['brier_persona'], 0)} "
            f"humans {_fmt(rules['brier_human'], 0)}")
        items = result["before"]["item_agreement"]
        out(f"item level: Pearson {_fmt(items['pearson'], 0)}, Spearman {_fmt(items['spearman'], 0)}, "
            f"majority agreement {_fmt(items['majority_agreement'], 0)} "
            f"on {items['items_with_majority']} items with a majority")
        gaps = result["gap_summary"]
        out(f"mean |gap| before -> after {result['method']} (held-out items): false acceptance "
            f"{_fmt(gaps['false_acceptance_before'], 0)} -> {_fmt(gaps['false_acceptance_after'], 0)}, "
            f"false rejection {_fmt(gaps['false_rejection_before'], 0)} -> "
            f"{_fmt(gaps['false_rejection_after'], 0)}")
        parameters = result["parameters"]
        for framing, values in parameters.get("per_framing", {}).items():
            shown = ", ".join(f"{k} {v:.3f}" for k, v in values.items() if k != "nll")
            out(f"  {framing:<15} {shown}")
