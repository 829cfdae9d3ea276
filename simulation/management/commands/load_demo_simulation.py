"""`manage.py load_demo_simulation`: one finished simulation on the demo dataset, so that a
newcomer opens /simulations/ and sees a report. Safe to run again: an existing demo run that
did not fail is left as it is.

Parametric agents only (no persona needs training, no study needs raters): a sceptical
reader (the baseline of the differences), a credulous one, one swayed by authoritative and
consensus framings, and the oracle, over all 64 base claims of the demo dataset.
`scripts/run.sh` passes --enqueue, so the worker it starts computes the run in the
background and start-up stays quick.
"""
from django.core.management.base import BaseCommand, CommandError

from annotation.claims.demo import DEMO_DATASET
from annotation.models import Dataset
from core.jobs import JobStatus
from simulation.agent_builders import DEMO_PARAMETRIC_SPECS
from simulation.models import SimulationRun
from simulation.services import (
    SimulationConfigError,
    simulation_run_create,
    simulation_run_enqueue,
    simulation_run_execute,
)

DEMO_RUN = "Demo: sceptical vs credulous vs swayed by authority vs oracle"
DEMO_AGENTS = [*DEMO_PARAMETRIC_SPECS, {"kind": "oracle"}]


class Command(BaseCommand):
    help = "Create (and run) the demo simulation on the demo dataset, if it is not there yet."

    def add_arguments(self, parser):
        parser.add_argument("--enqueue", action="store_true",
                            help="queue it for a Celery worker instead of running it in this process")
        parser.add_argument("--trajectories", type=int, default=100)
        parser.add_argument("--steps", type=int, default=30)
        parser.add_argument("--runs", type=int, default=3)
        parser.add_argument("--seed", type=int, default=2026)

    def handle(self, *args, **options):
        existing = SimulationRun.objects.filter(name=DEMO_RUN).exclude(
            status__in=[JobStatus.FAILED, JobStatus.CANCELLED]).first()
        if existing is not None:
            self.stdout.write(f"demo simulation exists: run {existing.pk} ({existing.status})")
            return
        if not Dataset.objects.filter(name=DEMO_DATASET).exists():
            raise CommandError(f"the dataset '{DEMO_DATASET}' is missing; run `manage.py load_demo` first")
        try:
            run = simulation_run_create(
                name=DEMO_RUN, dataset=DEMO_DATASET, split="all", agents=DEMO_AGENTS, policy="frameref",
                trajectories=options["trajectories"], steps=options["steps"], runs=options["runs"],
                seed=options["seed"])
        except SimulationConfigError as exc:
            raise CommandError(str(exc)) from None
        if options["enqueue"]:
            simulation_run_enqueue(run=run, shards=2)
            self.stdout.write(f"demo simulation queued: run {run.pk}; a worker computes it in a minute or so")
            return
        run = simulation_run_execute(run=run, show_progress=True)
        self.stdout.write(f"demo simulation: run {run.pk} {run.status}")
