"""A seeded small run of the validity bench (bench/validity.py): the report's default intervals
cover and its primary test holds its size on studies where raters and claims both vary.

Slow (about a minute or two on a 2-core machine): CI runs it, the default run skips it. The
bounds are looser than the bench's targets (fewer studies, so more Monte Carlo error) but
tight enough that the participant-only bootstrap, FrameLab's interval before issue 13, fails
them on the same studies; the test checks that it does, so the bound is known to bite.
"""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from annotation.analysis.options import AnalysisOptions
from annotation.analysis.statistics import analyze

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "validity.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_validity", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_validity", module)
    spec.loader.exec_module(module)
    return module


STUDIES = 60  # per population: 60 null and 60 with the +0.15 effect, FrameRef's size


def coverage(bench, populations, **options):
    rates, differences = [], []
    for seed, population, mu in populations:
        table = bench.simulate_study(bench.FRAMEREF, population, seed, mu)
        result = analyze(table, AnalysisOptions(mixed_model=False, permutations=0, **options))
        rate_hits, difference_hits = bench.interval_hits(result, population)
        rates.append(rate_hits)
        differences.append(difference_hits)
    return float(np.concatenate(rates).mean()), float(np.concatenate(differences).mean())


def test_default_intervals_cover_and_the_primary_test_holds_its_size():
    """Guards against intervals or a test that ignore clustering by base claim (issue 13):
    the participant-only bootstrap covers the per-framing false acceptance rate about 85% of
    the time at FrameRef's size, and fails the coverage bound below."""
    bench = load_bench()
    null, effect = bench.null_population(), bench.effect_population()
    null_mu, effect_mu = null.mu(), effect.mu()
    populations = ([(7_000 + i, null, null_mu) for i in range(STUDIES)]
                   + [(8_000 + i, effect, effect_mu) for i in range(STUDIES)])

    # The report's defaults (the mixed model and the permutations play no part in intervals).
    rate_coverage, difference_coverage = coverage(bench, populations)
    assert 0.90 <= rate_coverage <= 0.985, rate_coverage
    assert 0.90 <= difference_coverage <= 0.985, difference_coverage

    old_rate_coverage, _ = coverage(bench, populations, interval="participant-bootstrap", bootstrap_resamples=1000)
    assert not 0.90 <= old_rate_coverage <= 0.985, old_rate_coverage

    rejections = []
    for seed, population, mu in populations[:STUDIES]:
        result = analyze(bench.simulate_study(bench.FRAMEREF, population, seed, mu),
                         AnalysisOptions(mixed_model=False, permutations=500))
        raw, _ = bench.primary_p_values(result)
        rejections.append(raw < 0.05)
    size = float(np.concatenate(rejections).mean())
    assert 0.01 <= size <= 0.10, size


MODEL_STUDIES = 6  # FrameRef-sized studies, half null, half +0.15: about 25 s each


def test_the_mixed_model_intervals_cover_its_terms():
    """The report's mixed model, as its worker fits it (defaults: 4 chains x 1,500 draws), on
    seeded studies with known terms. The variational model it replaced covered 75-81% of its
    fixed effects in bench/validity.py (issue 13), below the 85% bound here; NUTS covers about
    95% there (docs/analysis.md), and every fit must converge and take under 60 s."""
    bench = load_bench()
    fits = [bench.mixed_fit(bench.FRAMEREF.name, "null" if i % 2 == 0 else "effect", 9_000 + i)
            for i in range(MODEL_STUDIES)]
    assert all(fit is not None for fit in fits)
    terms = np.concatenate([fit["terms"] for fit in fits])
    rates = np.concatenate([fit["rates"] for fit in fits])
    assert len(terms) == MODEL_STUDIES * 12
    assert terms.mean() >= 0.85, terms.mean()
    assert rates.mean() >= 0.80, rates.mean()
    assert sum(bool(fit["converged"][0]) for fit in fits) >= MODEL_STUDIES - 1
    assert max(fit["seconds"] for fit in fits) < 60
