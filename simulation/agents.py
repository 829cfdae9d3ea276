"""Agents that judge the claims of a trajectory: personas, human-calibrated and parametric.

An agent turns a batch of (trajectory, claim) pairs into a predicted label and a confidence,
the probability it gives to the label it predicted (``simulation.engine.Agent``). Agents are
pure: they hold plain arrays, so the Django side builds them from a persona's score table or
a study's ``annotation.analysis.human_profile.HumanProfile`` and the engine never touches a database.

- :class:`ScoreAgent`: a persona's (or any model's) precomputed ``p(SUPPORTS)`` per claim,
  decided by a decision rule (``modeling.decisions``): argmax, deterministic, as a language
  model scored once per claim is (method.md section 4.3), or sampled at a temperature and
  top-p (``frameref``: T 0.6, top-p 0.9), one draw per judgment from the trajectory's stream.
- :class:`RateAgent`: acceptance probabilities per framing and truth value (optionally per
  familiarity level, the level drawn from the familiarity the study's raters reported for
  the claim's base claim) and a distribution of confidence levels 1..5 per (framing, truth,
  decision[, familiarity level]), mapped to ``0.5 + 0.125 * (level - 1)``.
  :func:`human_calibrated_agent` builds it from a human profile's numbers,
  :func:`parametric_agent` from numbers a researcher gives directly.
- :class:`OracleAgent`: always right, with a fixed confidence; the ceiling of information health.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from modeling.decisions import ARGMAX, DecisionRule, DecisionRuleError, parse_decision
from simulation.engine import REFUTES, SUPPORTS, Pool

#: Confidence levels 1..5 as probabilities: 1 (not at all confident) = a coin flip, 5 = sure.
CONFIDENCE_PROBABILITIES = 0.5 + 0.125 * np.arange(5)
#: Table key that stands for any framing the table does not list.
ANY_FRAMING = "*"
DECISIONS = ("rejected", "accepted")


class AgentError(ValueError):
    """Agent parameters that cannot describe an agent (a probability outside [0, 1], ...)."""


def confidence_from_level(level) -> np.ndarray:
    """Map confidence levels 1..5 to probabilities in [0.5, 1]."""
    return 0.5 + 0.125 * (np.asarray(level, dtype=np.float64) - 1)


@dataclass(frozen=True, eq=False)
class ScoreAgent:
    """A persona's score table: ``p_supports[r]`` for the claim of canonical rank ``r``.

    With the default ``decision`` (argmax) it predicts SUPPORTS when ``p_supports >=
    p_refutes``; with a sampling rule it draws the label from the tempered, top-p-truncated
    distribution of ``p_supports / (p_supports + p_refutes)`` with one uniform draw per
    judgment. Either way it reports the chosen label's (untempered) probability as its
    confidence. ``p_refutes`` defaults to ``1 - p_supports``; when a model scored both label
    sequences separately, pass both (they need not sum to one).
    """

    name: str
    p_supports: np.ndarray
    p_refutes: np.ndarray | None = None
    decision: DecisionRule | str = ARGMAX
    uniforms_per_step: int = field(init=False, default=0)

    def __post_init__(self):
        try:
            object.__setattr__(self, "decision", parse_decision(self.decision))
        except DecisionRuleError as exc:
            raise AgentError(f"agent {self.name!r}: {exc}") from None
        object.__setattr__(self, "uniforms_per_step", self.decision.uniforms_per_judgment)
        p = np.asarray(self.p_supports, dtype=np.float64)
        object.__setattr__(self, "p_supports", p)
        _check_probabilities(f"agent {self.name!r}: p_supports", p)
        if self.p_refutes is not None:
            q = np.asarray(self.p_refutes, dtype=np.float64)
            if q.shape != p.shape:
                raise AgentError(f"agent {self.name!r}: p_refutes has {q.shape[0]} entries, p_supports {p.shape[0]}")
            _check_probabilities(f"agent {self.name!r}: p_refutes", q)
            object.__setattr__(self, "p_refutes", q)

    def judge(self, pool: Pool, claims: np.ndarray, uniforms: np.ndarray):
        if self.p_supports.shape[0] != pool.size:
            raise AgentError(f"agent {self.name!r} has {self.p_supports.shape[0]} scores for a pool of {pool.size}")
        rank = pool.rank[claims]
        p = self.p_supports[rank]
        q = 1.0 - p if self.p_refutes is None else self.p_refutes[rank]
        if self.decision.samples:
            total = p + q
            normalised = np.where(total > 0, p / np.where(total > 0, total, 1.0), 0.5)
            supports = self.decision.decide(normalised, uniforms[:, 0])
        else:
            supports = p >= q
        return supports, np.where(supports, p, q)


@dataclass(frozen=True, eq=False)
class OracleAgent:
    """Always predicts the true label, with confidence ``confidence``."""

    name: str = "oracle"
    confidence: float = 1.0
    uniforms_per_step: int = 0

    def __post_init__(self):
        if not 0 <= self.confidence <= 1:
            raise AgentError(f"agent {self.name!r}: confidence {self.confidence!r} is not in [0, 1]")

    def judge(self, pool: Pool, claims: np.ndarray, uniforms: np.ndarray):
        return pool.is_true[claims].copy(), np.full(len(claims), float(self.confidence))


@dataclass(frozen=True, eq=False)
class RateAgent:
    """Stochastic judgments from acceptance rates and confidence distributions.

    Tables are indexed ``[framing, truth]`` with truth 0 = REFUTES, 1 = SUPPORTS, framings in
    the order of ``framings`` (which may include ``"*"`` for any other framing):

    - ``acceptance: float64[F, 2]``, P(accept | framing, truth);
    - ``familiarity: float64[F, 2, 5] | None``, weights of familiarity levels 1..5; with
      ``acceptance_by_familiarity: float64[F, 2, 5]``, P(accept | framing, truth, level).
      A level is drawn first, then acceptance at that level;
    - ``claim_familiarity: {base claim id: weights[5]} | None``: the familiarity levels
      reported for each base claim. A claim whose base claim is listed draws its level from
      these weights (restricted to the levels its cell has a rate for), so familiar claims
      are judged at the familiar raters' rates; other claims draw from ``familiarity``.
      (Drawing from the cell's own ``familiarity`` alone would reproduce ``acceptance``.)
    - ``confidence: float64[F, 2, 2, 5]``, weights of confidence levels 1..5 per
      (framing, truth, decision: 0 rejected, 1 accepted), or ``confidence_value`` a fixed
      probability for every judgment;
    - ``confidence_by_familiarity: float64[F, 2, 2, 5, 5] | None`` (with ``familiarity``):
      the same per familiarity level (axis 3), confidence level last; used instead of
      ``confidence`` so that confidence follows the drawn familiarity level.

    Each judgment takes three draws from the trajectory's stream: familiarity, decision,
    confidence (always three, so the streams line up whichever tables are present).
    """

    name: str
    framings: tuple[str, ...]
    acceptance: np.ndarray
    confidence: np.ndarray | None = None
    confidence_value: float | None = None
    familiarity: np.ndarray | None = None
    acceptance_by_familiarity: np.ndarray | None = None
    claim_familiarity: Mapping[str, Sequence[float]] | None = None
    confidence_by_familiarity: np.ndarray | None = None
    uniforms_per_step: int = 3
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        F = len(self.framings)
        acc = np.asarray(self.acceptance, dtype=np.float64)
        if acc.shape != (F, 2):
            raise AgentError(f"agent {self.name!r}: acceptance has shape {acc.shape}, expected ({F}, 2)")
        _check_probabilities(f"agent {self.name!r}: acceptance", acc)
        object.__setattr__(self, "acceptance", acc)
        if (self.confidence is None) == (self.confidence_value is None):
            raise AgentError(f"agent {self.name!r}: give either a confidence distribution or a confidence_value")
        if self.confidence is not None:
            conf = np.asarray(self.confidence, dtype=np.float64)
            if conf.shape != (F, 2, 2, 5):
                raise AgentError(f"agent {self.name!r}: confidence has shape {conf.shape}, expected ({F}, 2, 2, 5)")
            object.__setattr__(self, "confidence", _normalised_weights(self.name, "confidence", conf))
        elif not 0 <= self.confidence_value <= 1:
            raise AgentError(f"agent {self.name!r}: confidence_value {self.confidence_value!r} is not in [0, 1]")
        if (self.familiarity is None) != (self.acceptance_by_familiarity is None):
            raise AgentError(f"agent {self.name!r}: familiarity and acceptance_by_familiarity go together")
        if self.familiarity is not None:
            fam = np.asarray(self.familiarity, dtype=np.float64)
            by = np.asarray(self.acceptance_by_familiarity, dtype=np.float64)
            if fam.shape != (F, 2, 5) or by.shape != (F, 2, 5):
                raise AgentError(f"agent {self.name!r}: familiarity tables must have shape ({F}, 2, 5)")
            _check_probabilities(f"agent {self.name!r}: acceptance_by_familiarity", np.nan_to_num(by))
            # A level nobody reported at has no acceptance rate: give it weight 0.
            self._cache["level_known"] = ~np.isnan(by)
            fam = np.where(np.isnan(by), 0.0, fam)
            object.__setattr__(self, "familiarity", _normalised_weights(self.name, "familiarity", fam))
            object.__setattr__(self, "acceptance_by_familiarity", np.nan_to_num(by))
        elif self.claim_familiarity is not None or self.confidence_by_familiarity is not None:
            raise AgentError(f"agent {self.name!r}: claim_familiarity and confidence_by_familiarity "
                             "need the familiarity tables")
        if self.claim_familiarity is not None:
            claims = {}
            for base, weights in self.claim_familiarity.items():
                w = np.asarray(weights, dtype=np.float64)
                if w.shape != (5,) or (w < 0).any() or not np.isfinite(w).all() or w.sum() == 0:
                    raise AgentError(f"agent {self.name!r}: claim_familiarity of base claim {base!r} "
                                     f"is {list(weights)!r}; accepted: 5 non-negative weights, not all 0")
                claims[str(base)] = w / w.sum()
            object.__setattr__(self, "claim_familiarity", claims)
        if self.confidence_by_familiarity is not None:
            cbf = np.asarray(self.confidence_by_familiarity, dtype=np.float64)
            if cbf.shape != (F, 2, 2, 5, 5):
                raise AgentError(f"agent {self.name!r}: confidence_by_familiarity has shape {cbf.shape}, "
                                 f"expected ({F}, 2, 2, 5, 5)")
            object.__setattr__(self, "confidence_by_familiarity",
                               _normalised_weights(self.name, "confidence_by_familiarity", cbf))

    def _base_familiarity(self, pool: Pool) -> tuple[np.ndarray, np.ndarray]:
        """``(weights float64[n_base, 5], known bool[n_base])`` for the pool's base claims."""
        key = ("bases", id(pool.base_ids))
        hit = self._cache.get(key)
        if hit is None or hit[0] is not pool.base_ids:
            weights = np.zeros((len(pool.base_ids), 5))
            known = np.zeros(len(pool.base_ids), dtype=bool)
            for i, base in enumerate(pool.base_ids):
                w = self.claim_familiarity.get(str(base))
                if w is not None:
                    weights[i], known[i] = w, True
            hit = (pool.base_ids, weights, known)
            self._cache[key] = hit
        return hit[1], hit[2]

    def _framing_rows(self, pool: Pool) -> np.ndarray:
        """``int64[n_pool_framings]``: this agent's table row of each pool framing."""
        key = (id(pool.framing_names), pool.framing_names)
        rows = self._cache.get(key)
        if rows is None:
            lookup = {f: i for i, f in enumerate(self.framings)}
            names = pool.framing_names or ("",)
            missing = [f for f in names if f not in lookup and ANY_FRAMING not in lookup]
            if missing:
                raise AgentError(
                    f"agent {self.name!r} has no numbers for framing {missing[0]!r}; it knows "
                    f"{', '.join(self.framings)} (add '{ANY_FRAMING}' for any other framing)"
                )
            rows = np.array([lookup.get(f, lookup.get(ANY_FRAMING)) for f in names], dtype=np.int64)
            self._cache[key] = rows
        return rows

    def judge(self, pool: Pool, claims: np.ndarray, uniforms: np.ndarray):
        rows = self._framing_rows(pool)
        f = rows[pool.framing[claims]] if pool.framing is not None else np.full(len(claims), rows[0])
        truth = pool.is_true[claims].astype(np.int64)
        familiarity = None
        if self.familiarity is not None:
            weights = self.familiarity[f, truth]
            if self.claim_familiarity:
                table, known = self._base_familiarity(pool)
                base = pool.base[claims]
                own = table[base] * self._cache["level_known"][f, truth]
                use = known[base] & (own.sum(axis=1) > 0)
                weights = np.where(use[:, None], own, weights)
            familiarity = _categorical(weights, uniforms[:, 0])
            p_accept = self.acceptance_by_familiarity[f, truth, familiarity]
        else:
            p_accept = self.acceptance[f, truth]
        accepted = uniforms[:, 1] < p_accept
        decision = accepted.astype(np.int64)
        if self.confidence_value is not None:
            conf = np.full(len(claims), float(self.confidence_value))
        else:
            if self.confidence_by_familiarity is not None:
                weights = self.confidence_by_familiarity[f, truth, decision, familiarity]
            else:
                weights = self.confidence[f, truth, decision]
            conf = CONFIDENCE_PROBABILITIES[_categorical(weights, uniforms[:, 2])]
        return accepted, conf


def _categorical(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn per row from normalised ``weights[m, K]`` by inverse CDF with ``u[m]``."""
    cumulative = np.cumsum(weights, axis=1)
    pick = (cumulative <= (u * cumulative[:, -1])[:, None]).sum(axis=1)
    return np.minimum(pick, weights.shape[1] - 1)


def _check_probabilities(what: str, values: np.ndarray) -> None:
    bad = ~((values >= 0) & (values <= 1))
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AgentError(f"{what} at {pos if len(pos) > 1 else pos[0]} is {float(values[pos])!r}; probabilities lie in [0, 1]")


def _normalised_weights(name: str, what: str, weights: np.ndarray) -> np.ndarray:
    if (weights < 0).any() or not np.isfinite(weights).all():
        raise AgentError(f"agent {name!r}: {what} weights must be finite and non-negative")
    total = weights.sum(axis=-1, keepdims=True)
    if (total == 0).any():
        raise AgentError(f"agent {name!r}: a {what} distribution has no weight at any level")
    return weights / total


def _truth_index(truth: str) -> int:
    if truth not in (SUPPORTS, REFUTES):
        raise AgentError(f"truth must be SUPPORTS or REFUTES, not {truth!r}")
    return 1 if truth == SUPPORTS else 0


def human_calibrated_agent(
    name: str,
    *,
    acceptance: Mapping[tuple[str, str], float],
    confidence: Mapping[tuple[str, str, str], Sequence[float]],
    familiarity: Mapping[tuple[str, str, int], tuple[float, float]] | None = None,
    claim_familiarity: Mapping[str, Sequence[float]] | None = None,
    confidence_by_familiarity: Mapping[tuple[str, str, str, int], Sequence[float]] | None = None,
    prior_judgments: float = 0.0,
) -> RateAgent:
    """An agent that behaves like the raters of a study, from plain tables.

    - ``acceptance[(framing, truth)]`` = P(accept), truth ``SUPPORTS``/``REFUTES``;
    - ``confidence[(framing, truth, "accepted"|"rejected")]`` = counts or weights of
      confidence levels 1..5;
    - ``familiarity[(framing, truth, level)]`` = ``(P(accept | level), weight of level)``,
      optional; when given, each judgment draws a familiarity level first;
    - ``claim_familiarity[base claim id]`` = weights of familiarity levels 1..5 reported for
      that base claim: its claims draw their level from these (see :class:`RateAgent`);
    - ``confidence_by_familiarity[(framing, truth, decision, level)]`` = counts of confidence
      levels 1..5 among the judgments at that familiarity level;
    - ``prior_judgments`` = m: thin data fall back smoothly. A level's acceptance rate
      becomes ``(accepted + m * cell rate) / (n + m)`` (its weight in ``familiarity`` is n,
      the number of judgments) and its confidence distribution ``(counts + m * the
      decision's distribution) / (n + m)``; a level with no judgments takes the cell's rate
      and distribution. With m = 0 (the default) a level without judgments has no rate and
      is never drawn.

    ``HumanProfile`` (``annotation.analysis.human_profile``) provides exactly these: ``cells``,
    ``confidence``, ``familiarity`` (rate and n), ``base_familiarity`` and
    ``confidence_by_familiarity``.
    """
    if prior_judgments < 0:
        raise AgentError(f"agent {name!r}: prior_judgments {prior_judgments!r} must not be negative")
    framings = tuple(sorted({f for f, _ in acceptance}))
    F = len(framings)
    index = {f: i for i, f in enumerate(framings)}
    acc = np.full((F, 2), np.nan)
    for (framing, truth), p in acceptance.items():
        acc[index[framing], _truth_index(truth)] = p
    if np.isnan(acc).any():
        f, t = np.argwhere(np.isnan(acc))[0]
        raise AgentError(f"agent {name!r}: no acceptance rate for framing {framings[f]!r} and "
                         f"{'SUPPORTS' if t else 'REFUTES'} claims")
    conf = np.zeros((F, 2, 2, 5))
    for (framing, truth, decision), weights in confidence.items():
        if framing not in index:
            continue
        if decision not in DECISIONS:
            raise AgentError(f"agent {name!r}: confidence decision must be accepted or rejected, not {decision!r}")
        conf[index[framing], _truth_index(truth), DECISIONS.index(decision)] = np.asarray(weights, dtype=np.float64)
    # Cells nobody answered fall back to the pooled distribution, as HumanProfile does.
    pooled = conf.sum(axis=(0, 1, 2))
    empty = conf.sum(axis=-1) == 0
    conf[empty] = pooled if pooled.sum() > 0 else np.full(5, 0.2)
    fam = by = by_conf = None
    if familiarity:
        fam = np.zeros((F, 2, 5))
        by = np.full((F, 2, 5), np.nan)
        for (framing, truth, level), (rate, weight) in familiarity.items():
            if framing not in index:
                continue
            fam[index[framing], _truth_index(truth), int(level) - 1] = weight
            by[index[framing], _truth_index(truth), int(level) - 1] = rate
        if prior_judgments > 0:
            m = float(prior_judgments)
            n = np.where(np.isnan(by), 0.0, fam)
            by = (np.nan_to_num(by) * n + m * acc[:, :, None]) / (n + m)
        # Cells without familiarity data use the plain acceptance rate.
        no_data = np.nansum(np.where(np.isnan(by), 0, fam), axis=-1) == 0
        fam[no_data] = 1.0
        by[no_data] = acc[no_data][:, None]
        # Confidence per familiarity level, shrunk toward the decision's own distribution.
        plain = conf / conf.sum(axis=-1, keepdims=True)
        counts = np.zeros((F, 2, 2, 5, 5))
        for (framing, truth, decision, level), weights in (confidence_by_familiarity or {}).items():
            if framing not in index:
                continue
            if decision not in DECISIONS:
                raise AgentError(f"agent {name!r}: confidence decision must be accepted or rejected, not {decision!r}")
            counts[index[framing], _truth_index(truth), DECISIONS.index(decision), int(level) - 1] = \
                np.asarray(weights, dtype=np.float64)
        total = counts.sum(axis=-1, keepdims=True)
        by_conf = (counts + prior_judgments * plain[:, :, :, None, :]) / np.maximum(total + prior_judgments, 1e-300)
        empty = by_conf.sum(axis=-1) == 0
        by_conf[empty] = np.broadcast_to(plain[:, :, :, None, :], by_conf.shape)[empty]
    elif claim_familiarity or confidence_by_familiarity:
        raise AgentError(f"agent {name!r}: claim_familiarity and confidence_by_familiarity need familiarity")
    return RateAgent(name=name, framings=framings, acceptance=acc, confidence=conf,
                     familiarity=fam, acceptance_by_familiarity=by,
                     claim_familiarity=dict(claim_familiarity) if claim_familiarity else None,
                     confidence_by_familiarity=by_conf)


def parametric_agent(
    name: str,
    *,
    true_acceptance: float | Mapping[str, float],
    false_acceptance: float | Mapping[str, float],
    confidence: float | Sequence[float] = 0.75,
) -> RateAgent:
    """A baseline agent from numbers given directly.

    ``true_acceptance`` = P(accept | true claim) and ``false_acceptance`` = P(accept | false
    claim), either one number or ``{framing: number}`` (``"*"`` for framings not listed).
    ``confidence`` is one probability for every judgment or five weights of levels 1..5.
    """
    def table(value) -> dict[str, float]:
        return {ANY_FRAMING: float(value)} if np.isscalar(value) else dict(value)

    true_t, false_t = table(true_acceptance), table(false_acceptance)
    framings = tuple(sorted(set(true_t) | set(false_t)))
    acc = np.empty((len(framings), 2))
    for i, f in enumerate(framings):
        for truth, tab, label in ((1, true_t, "true_acceptance"), (0, false_t, "false_acceptance")):
            if f in tab:
                acc[i, truth] = tab[f]
            elif ANY_FRAMING in tab:
                acc[i, truth] = tab[ANY_FRAMING]
            else:
                raise AgentError(f"agent {name!r}: {label} has no value for framing {f!r} (nor '*')")
    if np.isscalar(confidence):
        return RateAgent(name=name, framings=framings, acceptance=acc, confidence_value=float(confidence))
    weights = np.asarray(confidence, dtype=np.float64)
    if weights.shape != (5,):
        raise AgentError(f"agent {name!r}: confidence must be one probability or 5 level weights")
    conf = np.broadcast_to(weights, (len(framings), 2, 2, 5)).copy()
    return RateAgent(name=name, framings=framings, acceptance=acc, confidence=conf)
