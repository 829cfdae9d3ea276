"""Does the study analysis keep its promises? Coverage, size and power on simulated studies.

Run from the repository root:

    .venv/bin/python bench/validity.py                 # the full run (>= 500 / 1,000 studies)
    .venv/bin/python bench/validity.py --quick         # a smoke run, a few minutes
    .venv/bin/python bench/validity.py --studies 800 --null-studies 1600 --compare 300 --mixed 150
    .venv/bin/python bench/validity.py --mixed-only --mixed 80 --design frameref   # the model alone

Each mixed-model fit takes about 20 s on a quiet 2-core machine (100 per design by default:
over half an hour each); `--workers 2` fits two at a time.

Studies are simulated the way FrameLab runs them: the design module
(`annotation.studies.design.design_study`) chooses the base claims and deals every (base
claim, framing) item into rater batches (no batch holds two framings of one base claim),
several raters take each batch, and every judgment is drawn from a logistic model with
crossed random intercepts and known population values:

    logit P(Yes | rater r, base claim c, framing F, truth t) = mu[t, F] + u_r + v_c,
    u_r ~ N(0, 0.7^2) (rater), v_c ~ N(0, 1.2^2) (base claim),

with mu chosen so that the *population* rates (averaged over raters and claims, what a
study's pooled rate estimates) are: false acceptance 0.35 and true acceptance 0.75 in every
framing (the null), or, for the power studies, false acceptance 0.50 on `authoritative`
(+0.15) and 0.35 elsewhere. Two sizes: FrameRef's (40 base claims, 20 false, 6 framings,
batches of 20, 5 raters per batch: 12 batches, 60 raters, 1,200 judgments) and a larger one
(60 base claims, batches of 20, 5 raters per batch: 18 batches, 90 raters, 1,800 judgments).

Each simulated study's tidy table goes through `annotation.analysis.statistics.analyze` with
the default `AnalysisOptions` (the report's code path and defaults), except that the mixed
model is skipped where its output is not measured (it changes no other number). Printed:

- coverage of the 95% intervals of per-framing false acceptance and of the differences from
  the original wording (every framing of every study, null and power studies together),
  with its Monte Carlo error (the SD of the per-study coverage over the square root of the
  number of studies, since a study's intervals are not independent of each other);
- size of the primary framing test (permutation of framing labels within base claims):
  rejections at 5% per framing, and any framing rejected after Holm, under the null;
- power: the authoritative framing rejected after Holm, under +0.15;
- for comparison, on the first `--compare` studies: the same coverage with
  `interval=participant-bootstrap` (what FrameLab reported before) and
  `interval=two-way-bootstrap` (the pigeonhole bootstrap);
- on `--mixed` studies (half null, half +0.15), the report's mixed model (NUTS), fitted as
  the report's worker fits it: coverage of its fixed effects (each term's truth follows from
  mu: framing terms are mu[false, F] - mu[false, original], the interactions the difference
  of that on true claims), of its implied population false-acceptance rates and their
  differences from original, the share of fits that converged, and the fit time.

Targets (issue 13): coverage 93-97% (over >= 500 studies); size 3.5-6.5% (>= 1,000 null
studies); any-framing-after-Holm at most 6.5% (Holm keeps it at or below 5%); mixed-model
fixed-effect coverage at least 90%. Each is printed MET or NOT MET with its margin.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, special

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT / "platform"), str(ROOT)]

from machine import cpu_model, load_average  # noqa: E402  (bench/machine.py)

from annotation.analysis.options import AnalysisOptions  # noqa: E402
from annotation.analysis.statistics import analyze  # noqa: E402
from annotation.studies.design import CandidateClaim, design_study  # noqa: E402
from core.vocabulary import FRAMINGS  # noqa: E402

RATER_SD = 0.7
CLAIM_SD = 1.2
FALSE_ACCEPTANCE = 0.35
TRUE_ACCEPTANCE = 0.75
EFFECT = ("authoritative", 0.15)
TESTED = tuple(f for f in FRAMINGS if f != "original")

# Gauss-Hermite (probabilists') nodes for E[expit(mu + Z s)], Z ~ N(0, 1).
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def population_rate(mu: float, sd: float) -> float:
    """The population rate E[expit(mu + u + v)] with u + v ~ N(0, sd^2)."""
    return float(np.sum(_WEIGHTS * special.expit(mu + sd * _NODES)))


def intercept_for(rate: float, sd: float) -> float:
    """The logit-scale intercept whose population rate is `rate`."""
    return optimize.brentq(lambda mu: population_rate(mu, sd) - rate, -20, 20, xtol=1e-12)


@dataclass(frozen=True)
class Design:
    name: str
    base_claims: int
    raters_per_batch: int
    batch_size: int = 20


FRAMEREF = Design("FrameRef size (40 base claims, 12 batches of 20, 5 raters each: 60 raters)", 40, 5)
LARGER = Design("larger (60 base claims, 18 batches of 20, 5 raters each: 90 raters)", 60, 5)


@dataclass(frozen=True)
class Population:
    """Known population rates per framing; `mu` the logit intercepts that produce them."""

    false_acceptance: dict
    true_acceptance: dict
    rater_sd: float = RATER_SD
    claim_sd: float = CLAIM_SD

    @property
    def total_sd(self) -> float:
        return float(np.hypot(self.rater_sd, self.claim_sd))

    def mu(self) -> dict:
        return {(truth, framing): intercept_for(rates[framing], self.total_sd)
                for truth, rates in (("false", self.false_acceptance), ("true", self.true_acceptance))
                for framing in FRAMINGS}


def null_population() -> Population:
    return Population({f: FALSE_ACCEPTANCE for f in FRAMINGS}, {f: TRUE_ACCEPTANCE for f in FRAMINGS})


def effect_population() -> Population:
    framing, shift = EFFECT
    return Population({f: FALSE_ACCEPTANCE + (shift if f == framing else 0.0) for f in FRAMINGS},
                      {f: TRUE_ACCEPTANCE for f in FRAMINGS})


def simulate_study(design: Design, population: Population, seed: int, mu: dict | None = None) -> pd.DataFrame:
    """One study's tidy table: the design module's batches, raters drawn per batch."""
    rng = np.random.default_rng([seed, 13])
    candidates = [CandidateClaim(base_claim_id=i, true_label="SUPPORTS" if i % 2 else "REFUTES",
                                 framed_claim_ids={f: i * len(FRAMINGS) + k for k, f in enumerate(FRAMINGS)})
                  for i in range(design.base_claims)]
    plan = design_study(candidates=candidates, framings=FRAMINGS, base_claims=design.base_claims,
                        batch_size=design.batch_size, seed=seed)
    mu = mu or population.mu()
    claim_effect = rng.normal(0.0, population.claim_sd, design.base_claims)
    items = [(b, item) for b, batch in enumerate(plan.batches) for item in batch]
    batch = np.array([b for b, _ in items])
    base = np.array([item.base_claim_id for _, item in items])
    framing = np.array([item.framing for _, item in items])
    label = np.array([item.true_label for _, item in items])
    linear = np.array([mu[("true" if item.true_label == "SUPPORTS" else "false", item.framing)] for _, item in items])
    frames = []
    for b in range(len(plan.batches)):
        in_batch = batch == b
        for k in range(design.raters_per_batch):
            rater = b * design.raters_per_batch + k
            rater_effect = rng.normal(0.0, population.rater_sd)
            accept = rng.random(in_batch.sum()) < special.expit(linear[in_batch] + rater_effect + claim_effect[base[in_batch]])
            frames.append(pd.DataFrame({
                "DataPoint_ID": [f"c{c}:{f}" for c, f in zip(base[in_batch], framing[in_batch])],
                "Task_Group_ID": b,
                "text": "",
                "Annotator_ID": f"R{rater:03d}",
                "full_claim_id": [f"c{c}:{f}" for c, f in zip(base[in_batch], framing[in_batch])],
                "framing_type": framing[in_batch],
                "true_label": label[in_batch],
                "accurate_response": np.where(accept, "SUPPORTS", "REFUTES"),
                "confidence_response": rng.integers(1, 6, in_batch.sum()),
                "familiarity_response": rng.integers(1, 6, in_batch.sum()),
            }))
    return pd.concat(frames, ignore_index=True)


# --- Measuring one study ------------------------------------------------------------------------

def interval_hits(result, population: Population) -> tuple[np.ndarray, np.ndarray]:
    """Whether each framing's false-acceptance interval, and each difference's, holds the truth."""
    rates, differences = [], []
    for framing in FRAMINGS:
        row = result.summary(framing)
        estimate = row["false_acceptance_rate"]
        truth = population.false_acceptance[framing]
        rates.append(estimate["ci_low"] <= truth <= estimate["ci_high"])
        if framing != "original":
            difference = row["difference_from_original"]["false_acceptance_rate"]
            truth_difference = truth - population.false_acceptance["original"]
            differences.append(difference["ci_low"] - 1e-12 <= truth_difference <= difference["ci_high"] + 1e-12)
    return np.array(rates), np.array(differences)


def primary_p_values(result) -> tuple[np.ndarray, np.ndarray]:
    rows = {row["framing"]: row for row in result.framing_tests["rows"]}
    raw = np.array([rows[f]["p_value"] for f in TESTED], dtype=float)
    holm = np.array([rows[f]["p_value_holm"] for f in TESTED], dtype=float)
    return raw, holm


def term_truths(mu: dict) -> dict:
    """The true value of each fixed effect of the report's mixed model (reference: false claims
    in the original wording), from the generator's logit intercepts."""
    reference = ("false", "original")
    truths = {"Intercept": mu[reference], "true claim": mu[("true", "original")] - mu[reference]}
    for framing in TESTED:
        truths[f"framing[{framing}]"] = mu[("false", framing)] - mu[reference]
        truths[f"framing[{framing}]:true claim"] = (
            (mu[("true", framing)] - mu[("true", "original")]) - (mu[("false", framing)] - mu[reference]))
    return truths


def mixed_model_hits(result, mu: dict, population: Population) -> dict | None:
    """Whether each fixed effect's interval holds its truth, and each implied false-acceptance
    rate's (and difference from original's) holds the population value."""
    model = result.mixed_model
    if not model["fitted"]:
        return None
    truths = term_truths(mu)
    terms = np.array([term["ci_low"] <= truths[term["term"]] <= term["ci_high"] for term in model["fixed_effects"]])
    framing_terms = np.array([term["ci_low"] <= truths[term["term"]] <= term["ci_high"]
                              for term in model["fixed_effects"] if term["kind"] == "framing"])
    rates, differences = [], []
    for row in model["implied_rates"]:
        truth = population.false_acceptance[row["framing"]]
        rates.append(row["false_acceptance"]["ci_low"] <= truth <= row["false_acceptance"]["ci_high"])
        if "false_acceptance_minus_original" in row:
            difference = row["false_acceptance_minus_original"]
            truth_difference = truth - population.false_acceptance["original"]
            differences.append(difference["ci_low"] <= truth_difference <= difference["ci_high"])
    return {"terms": terms, "framing_terms": framing_terms, "rates": np.array(rates),
            "differences": np.array(differences),
            "converged": np.array([model["diagnostics"]["converged"]]),
            "seconds": model["diagnostics"]["seconds"]}


def mixed_fit(design_name: str, kind: str, seed: int) -> dict | None:
    """One simulated study's mixed-model fit, as the report's worker fits it (a separate
    process per worker in --workers runs)."""
    design = {FRAMEREF.name: FRAMEREF, LARGER.name: LARGER}[design_name]
    population = null_population() if kind == "null" else effect_population()
    mu = population.mu()
    table = simulate_study(design, population, seed, mu)
    return mixed_model_hits(analyze(table, AnalysisOptions(permutations=0, bootstrap_resamples=0)),
                            mu, population)


# --- Summaries and verdicts ----------------------------------------------------------------------

def share(hits: list[np.ndarray]) -> tuple[float, float]:
    """Pooled share of hits, and its Monte Carlo error from the per-study shares."""
    per_study = np.array([np.mean(h) for h in hits], dtype=float)
    pooled = float(np.concatenate([np.atleast_1d(h) for h in hits]).mean())
    error = float(per_study.std(ddof=1) / np.sqrt(len(per_study))) if len(per_study) > 1 else float("nan")
    return pooled, error


def verdict(value: float, low: float | None, high: float | None) -> str:
    """MET / NOT MET against [low, high] (either may be open), with the margin in points."""
    if low is not None and value < low:
        return f"NOT MET by {100 * (low - value):.1f} points (below {100 * low:.1f}%)"
    if high is not None and value > high:
        return f"NOT MET by {100 * (value - high):.1f} points (above {100 * high:.1f}%)"
    margins = [value - low if low is not None else np.inf, high - value if high is not None else np.inf]
    return f"MET with {100 * min(margins):.1f} points to spare"


@dataclass
class Line:
    label: str
    value: float
    error: float
    count: str
    low: float | None = None
    high: float | None = None

    def target(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{100 * self.low:.1f}-{100 * self.high:.1f}%"
        if self.low is not None:
            return f"at least {100 * self.low:.1f}%"
        if self.high is not None:
            return f"at most {100 * self.high:.1f}%"
        return ""

    def text(self) -> str:
        line = f"  {self.label:<62} {100 * self.value:5.1f}% +- {100 * self.error:.1f}  ({self.count})"
        if self.target():
            line += f"  target {self.target()}: {verdict(self.value, self.low, self.high)}"
        return line


def run_design(design: Design, args, seed_base: int) -> list[Line]:
    null, effect = null_population(), effect_population()
    null_mu, effect_mu = null.mu(), effect.mu()
    options = AnalysisOptions(mixed_model=False)  # the report's defaults; the model is measured apart
    rate_hits, difference_hits, raw_rejections, any_rejection, power = [], [], [], [], []
    compare = {"participant-bootstrap": ([], []), "two-way-bootstrap": ([], [])}
    started = time.perf_counter()
    skip = args.mixed_only
    for kind, population, mu, count in (("null", null, null_mu, 0 if skip else args.null_studies),
                                        ("effect", effect, effect_mu, 0 if skip else args.studies)):
        for i in range(count):
            seed = seed_base + (0 if kind == "null" else 1_000_000) + i
            table = simulate_study(design, population, seed, mu)
            result = analyze(table, options)
            if (i + 1) % 100 == 0:
                print(f"    ... {kind} study {i + 1} of {count}, {time.perf_counter() - started:.0f} s",
                      file=sys.stderr, flush=True)
            rates, differences = interval_hits(result, population)
            rate_hits.append(rates)
            difference_hits.append(differences)
            raw, holm = primary_p_values(result)
            if kind == "null":
                raw_rejections.append(raw < 0.05)
                any_rejection.append(np.array([(holm < 0.05).any()]))
            else:
                power.append(np.array([holm[TESTED.index(EFFECT[0])] < 0.05]))
                if i < args.compare:
                    for method, (rate_list, difference_list) in compare.items():
                        other = analyze(table, AnalysisOptions(mixed_model=False, interval=method, permutations=0))
                        other_rates, other_differences = interval_hits(other, population)
                        rate_list.append(other_rates)
                        difference_list.append(other_differences)
    elapsed = time.perf_counter() - started
    n_all = args.null_studies + args.studies
    lines = []
    if not skip:
        value, error = share(rate_hits)
        lines.append(Line("coverage, per-framing false acceptance (two-way, default)", value, error,
                          f"{n_all} studies x 6", 0.93, 0.97))
        value, error = share(difference_hits)
        lines.append(Line("coverage, difference from original (two-way, default)", value, error,
                          f"{n_all} studies x 5", 0.93, 0.97))
        value, error = share(raw_rejections)
        lines.append(Line("size, primary test per framing at 5% (no effect)", value, error,
                          f"{args.null_studies} null studies x 5", 0.035, 0.065))
        value, error = share(any_rejection)
        lines.append(Line("size, any framing rejected after Holm (no effect)", value, error,
                          f"{args.null_studies} null studies", None, 0.065))
        value, error = share(power)
        lines.append(Line(f"power, {EFFECT[0]} rejected after Holm (+{EFFECT[1]:.2f})", value, error,
                          f"{args.studies} studies"))
        for method, (rate_list, difference_list) in compare.items():
            if rate_list:
                value, error = share(rate_list)
                lines.append(Line(f"coverage, per-framing false acceptance ({method})", value, error,
                                  f"{len(rate_list)} studies x 6", 0.93, 0.97))
                value, error = share(difference_list)
                lines.append(Line(f"coverage, difference from original ({method})", value, error,
                                  f"{len(difference_list)} studies x 5", 0.93, 0.97))
    if args.mixed:
        # Half the fits under the null, half under the +0.15 effect.
        jobs = [(design.name, "null" if i % 2 == 0 else "effect", seed_base + 2_000_000 + i)
                for i in range(args.mixed)]
        if args.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                found = list(pool.map(mixed_fit, *zip(*jobs)))
        else:
            found = []
            for i, job in enumerate(jobs):
                found.append(mixed_fit(*job))
                if (i + 1) % 10 == 0:
                    print(f"    ... mixed-model fit {i + 1} of {len(jobs)}, {time.perf_counter() - started:.0f} s",
                          file=sys.stderr, flush=True)
        fits = [f for f in found if f is not None]
        if fits:
            for key, label, low, high in (
                    ("terms", "coverage, mixed model fixed effects (all terms)", 0.90, None),
                    ("framing_terms", "coverage, mixed model framing effects on false claims", 0.90, None),
                    ("rates", "coverage, mixed model implied false acceptance", 0.90, None),
                    ("differences", "coverage, mixed model implied difference from original", 0.90, None),
                    ("converged", "mixed model fits converged (R-hat, ESS, no divergences)", None, None)):
                value, error = share([f[key] for f in fits])
                lines.append(Line(label, value, error, f"{len(fits)} studies x {len(fits[0][key])}", low, high))
            seconds = np.array([f["seconds"] for f in fits])
            lines.append(Line(f"(mixed model fit time: median {np.median(seconds):.1f} s, max "
                              f"{seconds.max():.1f} s; target under 60 s; {len(fits)} of {len(jobs)} fitted)",
                              float("nan"), float("nan"), ""))
    elapsed = time.perf_counter() - started
    lines.append(Line(f"(run time {elapsed:.0f} s)", float("nan"), float("nan"), ""))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=500,
                        help="studies with the +0.15 effect (power; coverage) per design (default 500)")
    parser.add_argument("--null-studies", type=int, default=1000,
                        help="studies without an effect (size; coverage) per design (default 1000)")
    parser.add_argument("--compare", type=int, default=200,
                        help="studies on which the two bootstrap options are measured too (default 200)")
    parser.add_argument("--mixed", type=int, default=100,
                        help="null studies on which the mixed model is fitted (default 100; 0: skip)")
    parser.add_argument("--mixed-only", action="store_true",
                        help="measure the mixed model only (skip the interval and test studies)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes fitting mixed models side by side (default 1)")
    parser.add_argument("--design", choices=("frameref", "larger", "both"), default="both")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 100 effect and 200 null studies, 50 compared, 20 mixed-model fits")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.studies, args.null_studies, args.compare, args.mixed = 100, 200, 50, 20
    designs = {"frameref": [FRAMEREF], "larger": [LARGER], "both": [FRAMEREF, LARGER]}[args.design]
    started = time.perf_counter()
    print("bench/validity.py: coverage, size and power of the study analysis on simulated studies")
    print(f"CPU: {cpu_model()}; load average {load_average()}")
    print(f"command: {' '.join(['bench/validity.py'] + (argv if argv is not None else sys.argv[1:]))}")
    print(f"generator: logit-scale random intercepts, rater SD {RATER_SD}, base-claim SD {CLAIM_SD}; "
          f"population false acceptance {FALSE_ACCEPTANCE}, true acceptance {TRUE_ACCEPTANCE}; "
          f"effect {EFFECT[0]} +{EFFECT[1]}")
    print("analysis: analyze(table, AnalysisOptions()) with the defaults "
          f"(interval={AnalysisOptions().interval}, {AnalysisOptions().permutations} permutations); "
          "the mixed model only in its own line")
    any_failed = False
    for d, design in enumerate(designs):
        print(f"\n{design.name}")
        for line in run_design(design, args, seed_base=args.seed * 10_000_000 + d * 5_000_000):
            if np.isnan(line.value):
                print(f"  {line.label}")
                continue
            print(line.text())
            any_failed |= "NOT MET" in line.text() and ("(two-way, default)" in line.label
                                                        or "mixed model" in line.label)
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    return 1 if any_failed else 0


if __name__ == "__main__":
    sys.exit(main())
