"""`manage.py rate_study`: a persona takes a human study through its real pages, as raters."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Study
from annotation.studies.services import study_lookup
from core.progress import done_of_total_bar
from modeling.persona_raters import PersonaRaterError, persona_rate_study
from modeling.score_services import persona_lookup


class Command(BaseCommand):
    help = ("Let a persona take a study over HTTP as simulated participants (one per batch by "
            "default): it answers every item by its predicted label, with confidence and "
            "familiarity mapped to 1-5 (see docs/personas.md), and its participants are marked "
            "with source 'persona', so its answers sit beside the humans' in exports and "
            "analyses. Exits with status 1 if any simulated participant hit an error.")

    def add_arguments(self, parser):
        from modeling.scoring import (
            DEFAULT_BATCH_SIZE,  # torch loads when the command runs, not on import
        )

        parser.add_argument("--persona", required=True, help="persona name or id")
        parser.add_argument("--study", required=True, help="study name or id")
        parser.add_argument("--base-url", required=True,
                            help="where the platform is served, e.g. http://127.0.0.1:8000")
        parser.add_argument("--participants", type=int, default=None, metavar="N",
                            help="simulated participants (default: one per batch of the study)")
        parser.add_argument("--concurrency", type=int, default=4, metavar="C",
                            help="participants in flight at once (default 4)")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                            help="claims per forward pass when scoring")
        parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                            help="per request (default 60)")
        parser.add_argument("--answers-out", type=Path, metavar="CSV",
                            help="also write the persona's answer to every text of the study")
        parser.add_argument("--calibration", metavar="ID", default=None,
                            help="a calibration of the persona (calibrate_persona): answer the claims from "
                                 "the calibrated P(SUPPORTS), sampled unless --decision says otherwise")
        parser.add_argument("--decision", default=None, metavar="RULE",
                            help="the persona's decision rule: argmax (default: the more probable label; "
                                 "every participant gives the same answers), frameref (sampled at "
                                 "temperature 0.6, top-p 0.9, as FrameRef's model generated) or sample:T:P "
                                 "(each participant draws its own answers)")
        parser.add_argument("--seed", type=int, default=0,
                            help="seed of the participants' draws (sampling rules; default 0)")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        import torch

        try:
            study = study_lookup(options["study"])
            persona = persona_lookup(options["persona"])
        except (Study.DoesNotExist, ValueError) as exc:
            raise CommandError(str(exc)) from None
        if options["threads"] is not None:
            if options["threads"] < 1:
                raise CommandError(f"--threads must be at least 1, got {options['threads']}")
            torch.set_num_threads(options["threads"])
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1")
        from modeling.decisions import DecisionRuleError, parse_decision

        calibration = None
        if options["calibration"] is not None:
            from modeling.score_services import ScoreServiceError, persona_calibration

            try:
                _, calibration = persona_calibration(persona=persona, reference=options["calibration"])
            except ScoreServiceError as exc:
                raise CommandError(f"--calibration {options['calibration']}: {exc}") from None
        try:
            decision = parse_decision(options["decision"] if options["decision"] is not None
                                      else ("sample:1:1" if calibration else "argmax"))
        except DecisionRuleError as exc:
            raise CommandError(f"--decision: {exc}") from None
        with done_of_total_bar(f"score {persona.name}", " texts", disable=options["no_progress"]) as progress:
            try:
                rating = persona_rate_study(
                    persona=persona, study=study, base_url=options["base_url"],
                    participants=options["participants"], concurrency=options["concurrency"],
                    timeout=options["timeout"], batch_size=options["batch_size"], progress=progress,
                    decision=decision, seed=options["seed"], calibration=calibration)
            except PersonaRaterError as exc:
                raise CommandError(str(exc)) from None
        answers = rating.answers
        if options["answers_out"]:
            answers.to_csv(options["answers_out"], index=False)
        self.stdout.write(f"persona {persona.pk} '{persona.name}' took study {study.pk} '{study.name}' "
                          f"at {options['base_url']}")
        claims = answers[answers["kind"] == "claim"]
        calibrated_note = f", calibration {options['calibration']}" if calibration else ""
        self.stdout.write(f"its answers to the study's {len(claims)} claims (decision {decision.text()}"
                          f"{calibrated_note}; "
                          f"share answered Yes{' in the table' if decision.samples else ''}, mean confidence 1-5):")
        self.stdout.write(f"  {'framing':<16}{'Yes | true':>12}{'Yes | false':>13}{'confidence':>12}")
        for framing, rows in claims.groupby("framing", sort=False):
            true = rows[rows["true_label"] == "SUPPORTS"]["accurate"]
            false = rows[rows["true_label"] == "REFUTES"]["accurate"]
            self.stdout.write(f"  {framing:<16}{_share(true):>12}{_share(false):>13}"
                              f"{rows['confidence'].mean():>12.2f}")
        self.stdout.write(rating.report.summary())
        self.stdout.write(f"participants marked as persona raters: {rating.participants_marked} "
                          f"(ids {rating.id_prefix}...)")
        if options["answers_out"]:
            self.stdout.write(f"answers written to {options['answers_out']}")
        if rating.report.errors:
            raise CommandError(f"{len(rating.report.errors)} simulated participant(s) hit an unexpected error")


def _share(values) -> str:
    return f"{values.mean():.3f}" if len(values) else "-"
