"""`manage.py make_fact_claims`: the verifiable fact corpus, framed six ways, as FrameRef shards."""
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.claims.facts import (
    RELATIONS,
    SOURCES,
    FactBase,
    FactsUnavailable,
    dataset_licence,
    dataset_source,
    enumerate_slots,
    generate_base_claims,
    summarize,
)
from annotation.claims.files import ClaimFileError
from annotation.claims.framer import (
    FRAMINGS,
    GENERATOR,
    InputClaim,
    write_framed_claims,
)
from annotation.claims.services import claims_import
from core.progress import byte_progress_bar
from core.vocabulary import SPLITS, TRUTH_LABELS

DEFAULT_DATASET = "framelab-facts"


class Command(BaseCommand):
    help = (
        "Generate true and false claims from facts shipped in PyPI packages (countries, "
        "periodic table, US states, units), balanced by truth, split 80/10/10 by topic, "
        "each in the six FrameRef framings through the template framer; write them as "
        "FrameRef JSON Lines (OUT/train/train-0000.jsonl, dev/, test/) and optionally import."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, required=True, help="output folder (empty or new)")
        parser.add_argument("--seed", type=int, default=0,
                            help="seed for truth assignment, wrong values, splits and templates")
        parser.add_argument("--base-claims", type=int, default=None, metavar="N",
                            help="a balanced subset of N base claims (default: every fact)")
        parser.add_argument("--framings", nargs="+", choices=FRAMINGS, default=list(FRAMINGS),
                            help="framings to write (the original is always written)")
        parser.add_argument("--import-as", metavar="NAME", nargs="?", const=DEFAULT_DATASET,
                            default=None,
                            help=f"also import the files as dataset NAME (without NAME: "
                                 f"'{DEFAULT_DATASET}')")
        parser.add_argument("--shard-rows", type=int, default=100_000)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        started = time.perf_counter()
        quiet = options["no_progress"]
        try:
            facts = FactBase.load()
        except FactsUnavailable as exc:
            raise CommandError(str(exc)) from None
        total_facts = len(enumerate_slots(facts))
        with tqdm(total=total_facts, desc="claims", unit=" facts", file=sys.stderr,
                  disable=quiet, mininterval=0.5) as bar:
            try:
                claims = generate_base_claims(facts, seed=options["seed"],
                                              base_claims=options["base_claims"],
                                              progress=bar.update)
            except ValueError as exc:
                raise CommandError(f"--base-claims: {exc}") from None
        inputs = [InputClaim(c.base_id, c.text, c.true_label, c.split, c.topic, c.source)
                  for c in claims]
        with tqdm(total=len(inputs), desc="frame", unit=" claims", file=sys.stderr,
                  disable=quiet, mininterval=0.5) as bar:
            try:
                written = write_framed_claims(
                    inputs, options["out"], seed=options["seed"], framings=options["framings"],
                    shard_size=options["shard_rows"], progress=bar.update,
                )
            except (FileExistsError, ValueError) as exc:
                raise CommandError(str(exc)) from None
        counts = summarize(claims)
        (options["out"] / "DATASET.md").write_text(
            dataset_card(counts, written, options), encoding="utf-8")
        self.stdout.write(
            f"wrote {written.rows:,} framed claims of {len(claims):,} base claims to "
            f"{options['out']} in {len(written.files)} file(s) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        self.stdout.write(count_table(counts, written))

        if options["import_as"]:
            try:
                with byte_progress_bar(sum((options["out"] / f).stat().st_size
                                           for f in written.files),
                                       "import", disable=quiet) as bar:
                    summary = claims_import(
                        paths=[options["out"]], dataset_name=options["import_as"],
                        description=description(len(claims), options["seed"]),
                        source=dataset_source()[:500], licence=dataset_licence()[:200],
                        progress=bar.update_rows,
                    )
            except ClaimFileError as exc:
                raise CommandError(f"{exc}\nNothing was imported.") from None
            self.stdout.write(
                f"imported {summary.rows_imported:,} framed claims "
                f"({summary.base_claims_created:,} new base claims) into dataset "
                f"'{summary.dataset}' in {summary.seconds:.1f} s"
            )


def description(base_claims: int, seed: int) -> str:
    return (
        f"{base_claims:,} verifiable base claims generated from structured facts in PyPI "
        f"packages (make_fact_claims, seed {seed}); false claims swap in a plausible wrong "
        f"value checked false against the facts; splits by topic; framings by {GENERATOR}."
    )


def count_table(counts, written) -> str:
    lines = ["base claims by split and truth:",
             f"  {'split':<6} {'SUPPORTS':>9} {'REFUTES':>9} {'total':>7}"]
    for split in SPLITS:
        row = [counts["split_truth"][(split, label)] for label in TRUTH_LABELS]
        lines.append(f"  {split:<6} {row[0]:>9,} {row[1]:>9,} {sum(row):>7,}")
    lines.append("framed claims by framing:")
    for framing, n in sorted(written.rows_by_framing.items(), key=lambda kv: FRAMINGS.index(kv[0])):
        templates = written.templates_used.get(framing)
        used = f"  ({len(templates)} templates)" if templates else ""
        lines.append(f"  {framing:<15} {n:>7,}{used}")
    lines.append("base claims by relation:")
    for relation, n in sorted(counts["relation"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {relation:<19} {n:>6,}  {SOURCES[RELATIONS[relation].source].package}")
    return "\n".join(lines)


def dataset_card(counts, written, options) -> str:
    sources = "\n".join(f"| {s.package} | {s.version} | {s.licence} | {s.what} |"
                        for s in SOURCES.values())
    subset = "" if options["base_claims"] is None else f" --base-claims {options['base_claims']}"
    return (
        "# FrameLab fact claims\n\n"
        f"Generated by `manage.py make_fact_claims --seed {options['seed']}{subset}`.\n\n"
        f"Licence: {dataset_licence()}.\n\n"
        "| package | version | licence | facts used |\n| --- | --- | --- | --- |\n"
        f"{sources}\n\n```\n{count_table(counts, written)}\n```\n"
    )
