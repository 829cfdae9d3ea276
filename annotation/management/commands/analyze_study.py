"""`manage.py analyze_study`: a study's framing analysis as a text report or JSON.

The same numbers as the study's report page for the same options. `--out-dir` writes every
table as CSV and every figure as PNG and SVG, ready for a paper; `--table` analyses a tidy
table file (FrameRef's own, or an export) without a study in the database.
"""
import re
from pathlib import Path

import orjson
from django.core.management.base import BaseCommand, CommandError

from annotation.analysis.options import (
    DEFAULT_INTERVAL,
    EXCLUSION_RULES,
    INTERVAL_METHODS,
    AnalysisOptions,
)
from annotation.analysis.plots import PLOTS, plot_bytes
from annotation.analysis.statistics import analyze
from annotation.analysis.study import study_analysis
from annotation.models import Study
from annotation.studies.services import study_lookup
from core.figures import FIGURE_FORMATS


def read_table(path: Path):
    """A tidy table from CSV (optionally gzipped), JSON Lines or Parquet."""
    import pandas as pd

    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    if name.endswith((".jsonl", ".jsonl.gz")):
        return pd.read_json(path, lines=True, dtype=False, convert_dates=False)
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    raise CommandError(f"{path}: unknown table format; accepted: .csv, .csv.gz, .jsonl, .jsonl.gz, .parquet")


class Command(BaseCommand):
    help = ("Analyse a study's judgments: per-framing rates with intervals clustered by participant "
            "and base claim, a permutation test of each framing's effect on false acceptance, "
            "descriptive chi-square and binomial tests, Krippendorff's alpha and a mixed-effects model, "
            "after the exclusions (persona raters, returned/rejected/excluded/timed out, failed attention "
            "checks, implausibly fast, judgments of a base claim a rater saw in two framings).")

    def add_arguments(self, parser):
        parser.add_argument("study", nargs="?", help="the study's name or id")
        parser.add_argument("--table", type=Path, metavar="FILE",
                            help="analyse a tidy table file (CSV, JSON Lines, Parquet) instead of a study")
        parser.add_argument("--format", choices=("text", "json"), default="text")
        parser.add_argument("--out", type=Path, metavar="FILE", help="write the report here instead of stdout")
        parser.add_argument("--out-dir", type=Path, metavar="DIR",
                            help="also write every table (CSV), figure (PNG, SVG) and the report (JSON, text) here")
        parser.add_argument("--exclusions", metavar="RULES",
                            help=f"comma-separated rules to apply ({', '.join(EXCLUSION_RULES)}, all or none); "
                                 "default: all")
        parser.add_argument("--no-exclusions", action="store_true", help="apply no exclusion rule")
        parser.add_argument("--min-median-response-ms", metavar="MS",
                            help="the 'fast' rule's threshold: median milliseconds per item (default 2000)")
        parser.add_argument("--familiarity", metavar="LEVELS",
                            help="familiarity levels for the binomial tests, e.g. 4,5 (the default)")
        parser.add_argument("--interval", metavar="METHOD",
                            help=f"how intervals are computed: {', '.join(INTERVAL_METHODS)} "
                                 f"(default {DEFAULT_INTERVAL}: clustered by participant and base claim)")
        parser.add_argument("--bootstrap", metavar="N",
                            help="bootstrap resamples of the bootstrap intervals (default 2000; 0: no intervals)")
        parser.add_argument("--permutations", metavar="N",
                            help="permutations of the primary framing test (default 2000; 0: no test)")
        parser.add_argument("--confidence-level", metavar="P", help="interval level (default 0.95)")
        parser.add_argument("--seed", metavar="N",
                            help="seed of the bootstrap, the permutations and the model fit (default 0)")
        parser.add_argument("--no-mixed-model", action="store_true", help="skip the mixed-effects model")

    def handle(self, *args, **options):
        if bool(options["study"]) == bool(options["table"]):
            raise CommandError("give a study (name or id) or --table FILE, not both")
        if options["no_exclusions"] and options["exclusions"]:
            raise CommandError("--exclusions and --no-exclusions contradict each other")
        params = {}
        for option, parameter in (("exclusions", "exclusions"), ("min_median_response_ms", "min_median_response_ms"),
                                  ("familiarity", "familiarity"), ("bootstrap", "bootstrap"),
                                  ("interval", "interval"), ("permutations", "permutations"),
                                  ("confidence_level", "confidence_level"), ("seed", "seed")):
            if options[option] is not None:
                params[parameter] = options[option]
        if options["no_exclusions"]:
            params["exclusions"] = "none"
        if options["no_mixed_model"]:
            params["mixed_model"] = "0"
        try:
            analysis_options = AnalysisOptions.from_params(params)
        except ValueError as exc:
            # "parameter 'min_median_response_ms': ..." -> "option --min-median-response-ms: ..."
            message = re.sub(r"parameter '([a-z_]+)'", lambda m: "option --" + m.group(1).replace("_", "-"),
                             str(exc))
            raise CommandError(message) from None

        if options["table"]:
            path = options["table"]
            if not path.is_file():
                raise CommandError(f"{path}: no such file")
            try:
                result = analyze(read_table(path), analysis_options, progress=self.model_progress)
            except (ValueError, OSError) as exc:
                raise CommandError(f"{path}: {exc}") from None
            title = {"table": str(path)}
        else:
            try:
                study = study_lookup(options["study"])
            except Study.DoesNotExist as exc:
                raise CommandError(str(exc)) from None
            result = study_analysis(study=study, options=analysis_options, progress=self.model_progress)
            title = {"study": {"id": study.pk, "name": study.name}}

        if options["format"] == "json":
            report = orjson.dumps({**title, **result.to_dict()}, option=orjson.OPT_INDENT_2).decode() + "\n"
        else:
            heading = f"Study: {title['study']['name']} (id {title['study']['id']})" if "study" in title \
                else f"Table: {title['table']}"
            report = f"{heading}\n\n{result.to_text()}"
        if options["out"]:
            options["out"].write_text(report, encoding="utf-8")
            self.stderr.write(f"wrote {options['out']}")
        else:
            self.stdout.write(report, ending="")
        if options["out_dir"]:
            self.write_files(options["out_dir"], result, title)

    def model_progress(self, fraction: float, stage: str) -> None:
        """The mixed model's sampling, on standard error (the report stays on standard output)."""
        self.stderr.write(f"mixed model: {fraction:4.0%} {stage}")

    def write_files(self, folder: Path, result, title) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, table in result.tables().items():
            target = folder / f"{name}.csv"
            table.to_csv(target, index=False)
            written.append(target)
        for name in PLOTS:
            for fmt in FIGURE_FORMATS:
                target = folder / f"{name}.{fmt}"
                target.write_bytes(plot_bytes(result, name, fmt))
                written.append(target)
        (folder / "analysis.json").write_bytes(orjson.dumps({**title, **result.to_dict()}, option=orjson.OPT_INDENT_2))
        (folder / "analysis.txt").write_text(result.to_text(), encoding="utf-8")
        written += [folder / "analysis.json", folder / "analysis.txt"]
        self.stderr.write(f"wrote {len(written)} files to {folder}")
