"""`manage.py frame_claims`: restate your own base claims in the FrameRef framings, offline."""
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.claims.files import ClaimFileError
from annotation.claims.framer import (
    FRAMINGS,
    GENERATOR,
    assign_missing_splits,
    read_base_claims,
    write_framed_claims,
)
from annotation.claims.services import claims_import
from core.vocabulary import SPLITS, TRUTH_LABELS

REPORT_NAME = "verification-report.tsv"


class Command(BaseCommand):
    help = (
        "Frame base claims from a CSV or JSON Lines file (id,text,true_label[,split,topic,source]) "
        "and write FrameRef JSON Lines shards (OUT/train/, dev/, test/) that import_claims reads. "
        "Claims without a split get one, 80/10/10 by topic. The template framer is the default; "
        "--framer llm restates with a local causal LM and keeps what passes verification."
    )

    def add_arguments(self, parser):
        parser.add_argument("input", type=Path, metavar="INPUT", help="a .csv or .jsonl file")
        parser.add_argument("--out", type=Path, required=True, help="output folder (empty or new)")
        parser.add_argument("--seed", type=int, default=0, help="seed for templates and splits")
        parser.add_argument("--framings", nargs="+", choices=FRAMINGS, default=list(FRAMINGS),
                            help="framings to write (the original is always written)")
        parser.add_argument("--shard-rows", type=int, default=100_000)
        parser.add_argument("--import-as", metavar="NAME", default=None,
                            help="also import the files as dataset NAME")
        parser.add_argument("--framer", choices=("template", "llm"), default="template")
        parser.add_argument("--model", default="smollm2-135m-instruct",
                            help="--framer llm: a packaged model name or a local model folder")
        parser.add_argument("--verifier", default=None,
                            help="--framer llm: the verifying model (default: --model)")
        parser.add_argument("--on-fail", choices=("drop", "template"), default="drop",
                            help="--framer llm: what replaces a restatement that fails "
                                 "verification (drop, as FrameRef did, or the template framing)")
        parser.add_argument("--batch-size", type=int, default=8)
        parser.add_argument("--max-new-tokens", type=int, default=64)
        parser.add_argument("--threads", type=int, default=1,
                            help="--framer llm: CPU threads for torch (default 1: on a shared "
                                 "CPU more threads spin against each other)")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        try:
            claims = read_base_claims(options["input"], display=str(options["input"]))
        except ClaimFileError as exc:
            raise CommandError(f"{exc}\nNothing was written.") from None
        claims = assign_missing_splits(claims, options["seed"])
        framer, results = None, None
        if options["framer"] == "llm":
            framer, results = self._llm_framer(claims, options)
        with tqdm(total=len(claims), desc="write", unit=" claims", file=sys.stderr,
                  disable=options["no_progress"], mininterval=0.5) as bar:
            try:
                written = write_framed_claims(
                    claims, options["out"], seed=options["seed"], framings=options["framings"],
                    shard_size=options["shard_rows"], progress=bar.update, framer=framer,
                )
            except (FileExistsError, ValueError) as exc:
                raise CommandError(str(exc)) from None
        self.stdout.write(f"wrote {written.rows:,} framed claims of {len(claims):,} base claims "
                          f"to {options['out']} in {len(written.files)} file(s)")
        for split in (*SPLITS, "none"):
            row = [written.base_by_split_truth[(split, label)] for label in TRUTH_LABELS]
            if sum(row):
                self.stdout.write(f"  {split:<6} SUPPORTS {row[0]:>7,}  REFUTES {row[1]:>7,}")
        if results is not None:
            from annotation.claims.llm_framer import write_verification_report

            write_verification_report(results, options["out"] / REPORT_NAME)
            passed = sum(r.verdict == "PASS" for r in results)
            self.stdout.write(f"LLM restatements: {passed:,} of {len(results):,} passed "
                              f"verification; report in {options['out'] / REPORT_NAME}")
        if options["import_as"]:
            try:
                summary = claims_import(paths=[options["out"]], dataset_name=options["import_as"],
                                        generator=GENERATOR)
            except ClaimFileError as exc:
                raise CommandError(f"{exc}\nNothing was imported.") from None
            self.stdout.write(f"imported {summary.rows_imported:,} framed claims into dataset "
                              f"'{summary.dataset}'")

    def _llm_framer(self, claims, options):
        import torch

        from annotation.claims.llm_framer import llm_frame, rows_framer
        from core.language_models import BaseModelError, load_base_model

        torch.set_num_threads(max(1, options["threads"]))

        try:
            model, tokenizer = load_base_model(options["model"])
            verifier, verifier_tokenizer = (
                load_base_model(options["verifier"]) if options["verifier"] else (model, tokenizer))
        except BaseModelError as exc:
            raise CommandError(str(exc)) from None
        framings = [f for f in options["framings"] if f != "original"]
        with tqdm(total=len(claims) * len(framings), desc="restate", unit=" claims",
                  file=sys.stderr, disable=options["no_progress"], mininterval=0.5) as bar:
            results = llm_frame(
                [(c.base_id, c.text) for c in claims], framings, model=model, tokenizer=tokenizer,
                verifier_model=verifier, verifier_tokenizer=verifier_tokenizer,
                batch_size=options["batch_size"], max_new_tokens=options["max_new_tokens"],
                progress=bar.update,
            )
        label = f"llm:{Path(options['model']).name} verified by " \
                f"{Path(options['verifier'] or options['model']).name}"
        return rows_framer(results, generator=label, fallback=options["on_fail"]), results
