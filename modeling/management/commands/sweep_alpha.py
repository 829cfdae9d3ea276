"""`manage.py sweep_alpha`: one persona per alpha, scored on the test split, MSPR and BAcc vs alpha.

FrameRef's sweep (method.md section 3.1) trains the same target framing at alpha 1.0, 0.7, 0.5,
0.3, 0.1 and 0.0 and reports that MSPR on the target framing rises as alpha falls while
balanced accuracy stays about the same. This command reproduces that design: the personas
share everything (data, subsample, seed, hyperparameters) except alpha, so the curves
isolate the attenuation's effect. Personas that already exist under the sweep's names and
succeeded are reused, so an interrupted sweep continues where it stopped.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.claims.selectors import dataset_lookup
from annotation.models import Dataset, Framing, Split
from core.jobs import JobStatus
from modeling.cli import (
    add_hyperparameter_arguments,
    hyperparameters_from,
    train_in_process,
)
from modeling.models import Persona
from modeling.plots import render, sweep_figure
from modeling.services import RESUMABLE, PersonaError, persona_create

DEFAULT_ALPHAS = "1.0,0.7,0.5,0.3,0.1,0.0"


def parse_alphas(text: str) -> list[float]:
    alphas = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise CommandError(f"--alphas: '{part}' is not a number (e.g. {DEFAULT_ALPHAS})") from None
        if not 0.0 <= value <= 1.0:
            raise CommandError(f"--alphas: {value} lies outside 0..1")
        alphas.append(value)
    if len(set(alphas)) != len(alphas):
        raise CommandError(f"--alphas: a value is repeated in '{text}'")
    return alphas


class Command(BaseCommand):
    help = ("Train one persona per alpha for a target framing, score each on the test split, "
            "and plot MSPR and balanced accuracy against alpha (PNG and SVG, with a CSV).")

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--target-framing", required=True,
                            choices=[f for f in Framing.values if f != "original"] + ["original"])
        parser.add_argument("--alphas", default=DEFAULT_ALPHAS,
                            help=f"comma-separated alphas (default {DEFAULT_ALPHAS})")
        parser.add_argument("--name-prefix", default="sweep",
                            help="personas are named '<prefix> <dataset> <framing> a<alpha> s<seed>'")
        parser.add_argument("--score-split", default=Split.TEST, choices=Split.values,
                            help="split the personas are scored on (default test)")
        parser.add_argument("--score-batch-size", type=int, default=32)
        parser.add_argument("--out", type=Path, required=True,
                            help="folder for sweep.png, sweep.svg, sweep.csv and sweep.json")
        parser.add_argument("--no-score", action="store_true",
                            help="only train (score later with score_claims)")
        parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
        parser.add_argument("--quiet", action="store_true", help="no progress bars")
        add_hyperparameter_arguments(parser)

    def handle(self, *args, **options):
        alphas = parse_alphas(options["alphas"])
        try:
            dataset = dataset_lookup(options["dataset"])
        except Dataset.DoesNotExist as exc:
            raise CommandError(str(exc)) from None
        framing, seed = options["target_framing"], options["seed"]
        out: Path = options["out"]
        out.mkdir(parents=True, exist_ok=True)
        personas = []
        for alpha in alphas:
            persona = self._trained_persona(options, dataset=dataset, framing=framing, alpha=alpha)
            personas.append(persona)
        summary = [{"alpha": p.alpha, "persona": p.pk, "name": p.name,
                    "final_loss": p.loss_curve[-1]["loss"] if p.loss_curve else None,
                    "training_seconds": p.provenance.get("training_seconds")} for p in personas]
        if options["no_score"]:
            (out / "sweep.json").write_text(json.dumps({"personas": summary}, indent=2))
            self.stdout.write(f"trained {len(personas)} personas; not scored (--no-score). "
                              f"Summary in {out / 'sweep.json'}")
            return
        rows = self._score(options, personas, dataset=dataset)
        self._write(out, rows, summary, framing=framing)

    def _trained_persona(self, options, *, dataset, framing: str, alpha: float) -> Persona:
        name = f"{options['name_prefix']} {dataset.name} {framing} a{alpha:g} s{options['seed']}"
        persona = Persona.objects.filter(name=name).first()
        if persona is not None and persona.status == JobStatus.SUCCEEDED:
            self.stdout.write(f"alpha {alpha:g}: reusing persona {persona.pk} ({name})")
            return persona
        if persona is None:
            try:
                persona = persona_create(
                    name=name, dataset=dataset, target_framing=framing, alpha=alpha,
                    base_model=options["base_model"], split=options["split"],
                    hyperparameters=hyperparameters_from(options), seed=options["seed"])
            except PersonaError as exc:
                raise CommandError(str(exc)) from None
            resume = False
        elif persona.status == JobStatus.RUNNING and not persona.is_stale:
            raise CommandError(
                f"persona {persona.pk} ({name}) is being trained by another process (progress "
                f"{persona.progress:.0%}); wait for it, or resume it with `train_persona "
                f"--resume {persona.pk} --force` if that process died")
        elif persona.status in RESUMABLE or persona.status == JobStatus.QUEUED:
            resume = persona.status != JobStatus.QUEUED
        else:
            raise CommandError(f"persona {persona.pk} ({name}) is {persona.status}")
        self.stdout.write(f"alpha {alpha:g}: training persona {persona.pk} ({name})")
        persona = train_in_process(persona, resume=resume, quiet=options["quiet"],
                                   device=options["device"], threads=options["threads"])
        if persona.status != JobStatus.SUCCEEDED:
            raise CommandError(f"persona {persona.pk} ended {persona.status}; the sweep stops here")
        return persona

    def _score(self, options, personas, *, dataset) -> list[dict]:
        from modeling.metrics import framing_metrics
        from modeling.score_services import (
            score_table_create,
            score_table_load,
            score_table_run,
        )

        rows = []
        for persona in personas:
            self.stdout.write(f"alpha {persona.alpha:g}: scoring {persona.name} on "
                              f"{dataset.name} ({options['score_split']})")
            table = score_table_create(persona=persona, dataset=dataset,
                                       split=options["score_split"])
            table = score_table_run(score_table=table, batch_size=options["score_batch_size"])
            if table.status != JobStatus.SUCCEEDED:
                raise CommandError(f"scoring {persona.name} ended {table.status}: {table.error}")
            metrics = framing_metrics(score_table_load(table))
            for record in metrics.to_dict("records"):
                rows.append({"alpha": persona.alpha, "persona": persona.pk, **record})
        return rows

    def _write(self, out: Path, rows: list[dict], summary: list[dict], *, framing: str) -> None:
        columns = list(rows[0])
        with open(out / "sweep.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        per_framing = [row for row in rows if row["framing"] != "all"]
        figure = sweep_figure(per_framing, target_framing=framing)
        for fmt in ("png", "svg"):
            (out / f"sweep.{fmt}").write_bytes(render(figure, fmt))
        (out / "sweep.json").write_text(json.dumps({"personas": summary, "metrics": rows},
                                                   indent=2, default=float))
        self.stdout.write(f"{'alpha':>6} {'MSPR target':>12} {'MSPR others':>12} {'BAcc all':>9}")
        for alpha in sorted({row["alpha"] for row in rows}, reverse=True):
            mine = [r for r in per_framing if r["alpha"] == alpha]
            target = next((r["mspr"] for r in mine if r["framing"] == framing), float("nan"))
            others = [r["mspr"] for r in mine if r["framing"] != framing]
            overall = next(r["balanced_accuracy"] for r in rows
                           if r["alpha"] == alpha and r["framing"] == "all")
            other_mean = sum(others) / len(others) if others else float("nan")
            self.stdout.write(f"{alpha:>6g} {target:>12.4f} {other_mean:>12.4f} {overall:>9.4f}")
        self.stdout.write(f"wrote {out / 'sweep.png'}, sweep.svg, sweep.csv and sweep.json")
