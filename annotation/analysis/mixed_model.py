"""The study report's mixed-effects logistic regression, fitted by NUTS (NumPyro on JAX).

    logit P(accept) = b0 + b_F [framing F] + g [true claim] + d_F [framing F][true claim]
                      + u_participant + v_base_claim
    u ~ Normal(0, sd_participant),  v ~ Normal(0, sd_claim)     (crossed random intercepts)

The reference cell is a *false* claim in the reference wording (`original`), so `b_F` is
framing F's effect on the log-odds of accepting a false claim (the quantity the paper
reports), `g` the difference between true and false claims in the original wording, and
`d_F` how much framing F's effect differs on true claims. Each term is reported as a
posterior mean, SD, central credible interval and odds ratio, with its split R-hat and
effective sample size.

Priors (weakly informative, on the logit scale): Normal(0, 2.5) on every fixed effect,
HalfNormal(2.5) on both random-intercept SDs; the random intercepts are sampled
non-centred (u = sd * z, z ~ Normal(0, 1)), which keeps NUTS free of divergences when an
SD is small. Four chains run side by side (vectorised), each with `warmup` adaptation
iterations and `draws` kept draws; the fit is *flagged* (`converged` false, with warnings)
when any parameter's R-hat exceeds 1.01, its effective sample size is under 400, or any
transition diverged (Vehtari et al. 2021's thresholds).

Also reported: the *implied* per-framing acceptance probabilities of false and of true
claims, averaged over the population of participants and claims (E[expit(eta + u + v)],
by Gauss-Hermite quadrature per posterior draw), comparable to the raw rates, and the same
on the difference from the reference wording.

Pure: numpy, pandas and NumPyro; JAX is imported on the first fit, so a process that
never fits a model (the web server) never loads it.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

CHAINS = 4
WARMUP = 500
DRAWS = 1500
PRIOR_SCALE = 2.5
MAX_R_HAT = 1.01
MIN_EFFECTIVE_SAMPLES = 400
#: Whatever the bound on a study's size, the model is fitted only up to this many judgments
#: (a bound on memory and time; more than FrameRef by far).
MAX_JUDGMENTS = 200_000

Progress = Callable[[float, str], None]

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def not_fitted(claims: pd.DataFrame | None, reason: str) -> dict:
    """The model's entry in a report where it was not fitted, saying why."""
    return {
        "fitted": False, "reason": reason, "method": method_name(), "formula": "",
        "reference_framing": None,
        "n": int(len(claims)) if claims is not None else 0,
        "participants": int(claims["participant"].nunique()) if claims is not None else 0,
        "claims": int(claims["base_claim"].nunique()) if claims is not None else 0,
        "fixed_effects": [], "random_effects": [], "implied_rates": [], "diagnostics": {},
        "warnings": [],
    }


def method_name(chains: int = CHAINS, warmup: int = WARMUP, draws: int = DRAWS) -> str:
    return (f"Bayesian logistic GLMM, NUTS (NumPyro): {chains} chains x {draws} draws "
            f"after {warmup} warm-up iterations")


def _why_not(claims: pd.DataFrame, present: list[str]) -> str:
    if len(present) < 2:
        return "needs judgments in at least two framings"
    if claims["participant"].nunique() < 2 or claims["base_claim"].nunique() < 2:
        return "needs at least two participants and two base claims for the random intercepts"
    if len(claims) < 20:
        return f"too few judgments ({len(claims)}; at least 20)"
    if len(claims) > MAX_JUDGMENTS:
        return f"too many judgments ({len(claims):,}; the model is fitted up to {MAX_JUDGMENTS:,})"
    accept = claims["accept"].to_numpy(dtype=float)
    if accept.min() == accept.max():
        return "every judgment has the same response"
    return ""


def _design(claims: pd.DataFrame, present: list[str], reference: str) -> tuple[np.ndarray, list[dict], bool]:
    """The fixed-effects design matrix and, per column, its term's name and meaning."""
    framing = claims["framing"].to_numpy(dtype=str)
    true_claim = claims["true_claim"].to_numpy(dtype=float)
    both_truths = 0 < true_claim.sum() < len(true_claim)
    others = [f for f in present if f != reference]
    subject = "a false claim" if both_truths else "a claim"
    columns = [np.ones(len(claims))]
    terms = [{"term": "Intercept", "kind": "intercept", "framing": reference,
              "meaning": f"log-odds that a typical participant accepts {subject} of typical "
                         f"difficulty in the {reference} wording"}]
    for other in others:
        columns.append((framing == other).astype(float))
        terms.append({"term": f"framing[{other}]", "kind": "framing", "framing": other,
                      "meaning": f"{other} vs {reference} wording: change in the log-odds of "
                                 f"accepting {subject}"})
    if both_truths:
        columns.append(true_claim)
        terms.append({"term": "true claim", "kind": "truth", "framing": reference,
                      "meaning": f"true vs false claims, in the {reference} wording"})
        for other in others:
            columns.append((framing == other).astype(float) * true_claim)
            terms.append({"term": f"framing[{other}]:true claim", "kind": "interaction", "framing": other,
                          "meaning": f"how much the {other} wording's effect differs on true claims"})
    return np.column_stack(columns), terms, both_truths


def _model(exog, participant, claim, accept, participants: int, claims: int):
    import numpyro
    import numpyro.distributions as dist

    beta = numpyro.sample("beta", dist.Normal(0.0, PRIOR_SCALE).expand([exog.shape[1]]).to_event(1))
    sd_participant = numpyro.sample("sd_participant", dist.HalfNormal(PRIOR_SCALE))
    sd_claim = numpyro.sample("sd_claim", dist.HalfNormal(PRIOR_SCALE))
    z_participant = numpyro.sample("z_participant", dist.Normal(0.0, 1.0).expand([participants]).to_event(1))
    z_claim = numpyro.sample("z_claim", dist.Normal(0.0, 1.0).expand([claims]).to_event(1))
    eta = exog @ beta + sd_participant * z_participant[participant] + sd_claim * z_claim[claim]
    numpyro.sample("accept", dist.Bernoulli(logits=eta).to_event(1), obs=accept)


def _sample(exog, participant_codes, claim_codes, accept, *, seed: int, chains: int, warmup: int,
            draws: int, progress: Progress | None) -> tuple[dict, int]:
    """Posterior draws, by chain: {"beta": (chains, draws, k), "sd_participant": ..., ...},
    and the number of divergent transitions after warm-up.

    Warm-up and drawing are two calls, so a running fit can say which it is in (splitting
    the draws further costs a recompilation each, seconds per piece)."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    jax.config.update("jax_enable_x64", True)
    args = (jnp.asarray(exog), jnp.asarray(participant_codes), jnp.asarray(claim_codes),
            jnp.asarray(accept), int(participant_codes.max()) + 1, int(claim_codes.max()) + 1)
    mcmc = MCMC(NUTS(_model, target_accept_prob=0.9), num_warmup=warmup, num_samples=draws,
                num_chains=chains, chain_method="vectorized", progress_bar=False)
    try:
        if progress:
            progress(0.0, f"warming up {chains} chains ({warmup} iterations each)")
        mcmc.warmup(jax.random.PRNGKey(seed), *args, collect_warmup=False)
        if progress:
            progress(0.5, f"drawing {draws} draws per chain from the posterior")
        mcmc.run(mcmc.post_warmup_state.rng_key, *args, extra_fields=("diverging",))
        if progress:
            progress(1.0, "summarising the posterior")
        samples = {name: np.asarray(values, dtype=float)
                   for name, values in mcmc.get_samples(group_by_chain=True).items()
                   if name in ("beta", "sd_participant", "sd_claim")}
        divergences = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())
    finally:
        # Every fit compiles its own sampler, and JAX keeps each compiled program (memory
        # maps, ~75 MiB) for the life of the process: a worker that fitted ~40 models ran out
        # of memory maps ("LLVM compilation error: Cannot allocate memory"). Drop them.
        del mcmc
        jax.clear_caches()
    return samples, divergences


def _diagnose(draws: np.ndarray) -> tuple[float, float]:
    """Split R-hat and effective sample size of one parameter's (chains, draws) array."""
    from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

    if draws.shape[0] < 2 or draws.shape[1] < 4:
        return float("nan"), float("nan")
    return float(split_gelman_rubin(draws)), float(effective_sample_size(draws))


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def _population_rate(linear: np.ndarray, total_sd: np.ndarray) -> np.ndarray:
    """E[expit(linear + e)], e ~ Normal(0, total_sd^2), per draw (Gauss-Hermite)."""
    points = linear[:, None] + total_sd[:, None] * _NODES[None, :]
    return (1.0 / (1.0 + np.exp(-points))) @ _WEIGHTS


def fit_mixed_model(claims: pd.DataFrame, framings: list[str], *, confidence_level: float = 0.95,
                    seed: int = 0, reference: str = "original", chains: int | None = None,
                    warmup: int | None = None, draws: int | None = None,
                    progress: Progress | None = None) -> dict:
    """Fits the model to `claims` (one row per judgment of a claim: `accept`, `framing`,
    `true_claim`, `participant`, `base_claim`) and returns the report's entry for it.

    Never raises for a study it cannot fit: `fitted` is false and `reason` says why, so the
    rest of the report stands. `chains`, `warmup` and `draws` default to the module's
    CHAINS, WARMUP and DRAWS (read at each call).
    """
    chains, warmup, draws = chains or CHAINS, warmup or WARMUP, draws or DRAWS
    present = [f for f in framings if (claims["framing"] == f).any()]
    reason = _why_not(claims, present)
    if reason:
        return not_fitted(claims, reason)
    reference = reference if reference in present else present[0]
    exog, terms, both_truths = _design(claims, present, reference)
    participant_codes, _ = pd.factorize(claims["participant"])
    claim_codes, _ = pd.factorize(claims["base_claim"])
    accept = claims["accept"].to_numpy(dtype=float)
    result = not_fitted(claims, "")
    result.update(method=method_name(chains, warmup, draws), reference_framing=reference, formula=(
        f"accept ~ framing{' * true_claim' if both_truths else ''} + (1 | participant) + (1 | base claim), "
        f"reference: {'false claims in ' if both_truths else ''}the {reference} wording"))
    if not both_truths:
        result["warnings"].append("only one truth value present: the truth term and the "
                                  "framing x truth interaction are left out")
    started = time.monotonic()
    try:
        samples, divergences = _sample(exog, participant_codes, claim_codes, accept, seed=seed,
                                       chains=chains, warmup=warmup, draws=draws, progress=progress)
    except Exception as exc:  # noqa: BLE001: the report must stand without the model
        result["reason"] = f"the fit failed: {type(exc).__name__}: {exc}"
        return result
    seconds = time.monotonic() - started
    beta = samples["beta"]  # (chains, draws, terms)
    if not np.isfinite(beta).all():
        result["reason"] = "the fit produced non-finite draws"
        return result
    level = confidence_level
    diagnostics = []
    for k, term in enumerate(terms):
        values = beta[:, :, k]
        flat = values.ravel()
        low, high = _interval(flat, level)
        r_hat, ess = _diagnose(values)
        diagnostics.append((r_hat, ess))
        result["fixed_effects"].append({
            **term,
            "posterior_mean": float(flat.mean()), "posterior_sd": float(flat.std(ddof=1)),
            "ci_low": low, "ci_high": high,
            "odds_ratio": math.exp(float(np.median(flat))),
            "odds_ratio_ci_low": math.exp(low), "odds_ratio_ci_high": math.exp(high),
            "posterior_probability_positive": float((flat > 0).mean()),
            "r_hat": r_hat, "effective_sample_size": ess,
        })
    for name, key in (("participant", "sd_participant"), ("base claim", "sd_claim")):
        values = samples[key]
        flat = values.ravel()
        low, high = _interval(flat, level)
        r_hat, ess = _diagnose(values)
        diagnostics.append((r_hat, ess))
        result["random_effects"].append({
            "name": name, "sd": float(np.median(flat)), "posterior_mean": float(flat.mean()),
            "sd_ci_low": low, "sd_ci_high": high, "r_hat": r_hat, "effective_sample_size": ess,
        })
    result["implied_rates"] = _implied_rates(samples, terms, present, reference, both_truths, level)
    r_hats = [r for r, _ in diagnostics if math.isfinite(r)]
    sizes = [e for _, e in diagnostics if math.isfinite(e)]
    max_r_hat = max(r_hats) if r_hats else None
    min_ess = min(sizes) if sizes else None
    converged = (divergences == 0 and max_r_hat is not None and max_r_hat <= MAX_R_HAT
                 and min_ess is not None and min_ess >= MIN_EFFECTIVE_SAMPLES)
    result["diagnostics"] = {
        "chains": chains, "warmup": warmup, "draws": draws, "divergences": divergences,
        "max_r_hat": max_r_hat, "min_effective_sample_size": min_ess, "converged": converged,
        "seconds": round(seconds, 2), "thresholds": {"max_r_hat": MAX_R_HAT,
                                                     "min_effective_sample_size": MIN_EFFECTIVE_SAMPLES},
    }
    if divergences:
        result["warnings"].append(f"{divergences} divergent transition(s) after warm-up: the "
                                  "posterior may be explored incompletely")
    if max_r_hat is not None and max_r_hat > MAX_R_HAT:
        result["warnings"].append(f"largest R-hat {max_r_hat:.3f} exceeds {MAX_R_HAT}: the chains disagree")
    if min_ess is not None and min_ess < MIN_EFFECTIVE_SAMPLES:
        result["warnings"].append(f"smallest effective sample size {min_ess:.0f} is under "
                                  f"{MIN_EFFECTIVE_SAMPLES}: intervals are imprecise")
    result["fitted"] = True
    return result


def _implied_rates(samples: dict, terms: list[dict], present: list[str], reference: str,
                   both_truths: bool, level: float) -> list[dict]:
    """Per framing, the population-averaged acceptance of false (and of true) claims implied
    by each draw, and its difference from the reference wording."""
    beta = samples["beta"].reshape(-1, samples["beta"].shape[-1])
    total_sd = np.hypot(samples["sd_participant"].ravel(), samples["sd_claim"].ravel())
    index = {term["term"]: k for k, term in enumerate(terms)}

    def linear(framing: str, true: bool) -> np.ndarray:
        value = beta[:, index["Intercept"]].copy()
        if framing != reference:
            value += beta[:, index[f"framing[{framing}]"]]
        if true:
            value += beta[:, index["true claim"]]
            if framing != reference:
                value += beta[:, index[f"framing[{framing}]:true claim"]]
        return value

    truths = [("false_acceptance", False), ("true_acceptance", True)] if both_truths else [("acceptance", False)]
    reference_rates = {name: _population_rate(linear(reference, true), total_sd) for name, true in truths}
    rows = []
    for framing in present:
        row: dict[str, Any] = {"framing": framing}
        for name, true in truths:
            rate = _population_rate(linear(framing, true), total_sd)
            low, high = _interval(rate, level)
            row[name] = {"estimate": float(np.median(rate)), "ci_low": low, "ci_high": high}
            if framing != reference:
                difference = rate - reference_rates[name]
                low, high = _interval(difference, level)
                row[f"{name}_minus_{reference}"] = {"estimate": float(np.median(difference)),
                                                    "ci_low": low, "ci_high": high}
        rows.append(row)
    return rows
