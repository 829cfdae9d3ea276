"""Personas as raters: a persona takes a human study through the bot interface.

The persona answers every text a participant of the study can be shown (its framed claims
and attention checks), decided in advance, and simulated participants
(`annotation.studies.bots`) carry those answers through the study's real pages, one participant
per batch by default. Its judgments are stored like anyone's, so persona and human answers
to the same items sit side by side in the exports (`participant_source` = `persona`) and in
the analyses, which leave personas out of the human numbers unless asked (the `persona`
exclusion rule of `annotation.analysis.statistics`); a study's human profile never includes them.

How a persona's scores become the three answers of the form:

- **accurate**: by its decision rule (`modeling.decisions`): with `argmax` (the default)
  Yes when its predicted label is SUPPORTS (the more probable label sequence,
  `modeling.scoring`); with a sampling rule (`frameref`: temperature 0.6, top-p 0.9, or
  `sample:T:P`) each simulated participant draws its own answer to each text from its own
  seeded stream, Yes with the tempered, top-p-truncated P(SUPPORTS) (the answer table
  holds one such draw and, in `p_accept`, the probability of Yes);
- a **calibrated** persona (`calibration`, a `Calibration` of the persona: `rate_study
  --calibration ID`) decides its answers to the study's claims from its framing's calibrated
  P(SUPPORTS) (`p_decide`; attention checks keep the raw one), sampled unless another rule is
  given, so its acceptance per framing is the humans' that calibration fitted;
- **confidence** 1..5: the level nearest to the (untempered) probability of the label it chose,
  max(p, 1 - p) of its normalised P(SUPPORTS), by the rule the calibration uses for
  humans (`annotation.analysis.human_profile.confidence_level`: level k stands for 0.5 + 0.125 (k - 1));
- **familiarity** 1..5: how probable the persona finds the claim's own wording (mean
  log-probability per token, `modeling.scoring.claim_log_likelihood`), as quintiles among
  the texts of the study: the fifth of the texts the persona finds least probable get 1,
  the most probable fifth 5. A model has no memory of having met a topic; the likelihood of
  the wording is the nearest thing it has, and quintiles make the levels comparable across
  models whose likelihoods live on different scales.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from annotation.analysis.human_profile import confidence_level
from annotation.models import AttentionCheck, Batch, Participant, Study
from annotation.studies.bots import AnswerTablePolicy, BotsReport, Choice, run_bots
from modeling.decisions import DecisionRule, parse_decision

from .models import Persona
from .score_services import framed_claim_rows, study_framed_claim_ids, study_item_scores

if TYPE_CHECKING:
    from .scoring import ProgressCallback

LEVELS = 5
ANSWER_COLUMNS = ("text", "kind", "framed_claim_id", "claim_id", "framing", "true_label",
                  "p_supports_norm", "predicted_label", "log_likelihood", "p_decide", "p_accept", "accurate", "confidence",
                  "familiarity")


class PersonaRaterError(ValueError):
    """The persona cannot take this study; the message says why."""


def familiarity_levels(log_likelihood: np.ndarray) -> np.ndarray:
    """``int[n]`` 1..5: the quintile of each value among all of them (ties share a level)."""
    values = np.asarray(log_likelihood, dtype=float)
    if len(values) == 0:
        return np.zeros(0, dtype=int)
    if np.isnan(values).any():
        raise PersonaRaterError("a text has no scored token, so it has no familiarity")
    ranks = rankdata(values, method="average")  # 1..n
    # The middle of each value's rank interval, so tied values share the level of their middle.
    return np.clip(np.ceil((ranks - 0.5) / len(values) * LEVELS), 1, LEVELS).astype(int)


def answers_from_scores(predicted_label: np.ndarray, p_supports_norm: np.ndarray,
                        log_likelihood: np.ndarray, decision: DecisionRule | str | None = None,
                        seed: int = 0) -> pd.DataFrame:
    """The form's answers (p_accept, accurate, confidence, familiarity) from a persona's scores.

    ``decision`` (argmax by default): a sampling rule draws each answer with one uniform
    from ``numpy.random.default_rng(seed)``, in the table's order; ``p_accept`` is the
    probability the rule answers Yes (0 or 1 under argmax).
    """
    rule = parse_decision(decision)
    p = np.asarray(p_supports_norm, dtype=float)
    if rule.samples:
        accurate = rule.decide(p, np.random.default_rng(seed).random(len(p)))
        p_accept = rule.p_supports_decision(p)
    else:
        accurate = np.asarray(predicted_label) == "SUPPORTS"
        p_accept = accurate.astype(float)
    return pd.DataFrame({"p_accept": p_accept, "accurate": accurate,
                         "confidence": answer_confidence(p, accurate),
                         "familiarity": familiarity_levels(log_likelihood)})


def answer_confidence(p_supports_norm, accurate) -> np.ndarray:
    """Confidence levels 1..5 of the untempered probability of the label chosen."""
    p = np.asarray(p_supports_norm, dtype=float)
    return np.asarray(confidence_level(np.where(accurate, p, 1.0 - p)), dtype=int).reshape(p.shape)


class SampledAnswerPolicy(AnswerTablePolicy):
    """The answer table, with Yes/No drawn anew for each simulated participant from its own
    seeded stream (`run_bots` seeds participant i with ``f"{seed}:{i}"``) by a sampling rule;
    confidence follows the label drawn, familiarity is the table's."""

    def __init__(self, answers: pd.DataFrame, decision: DecisionRule, name: str = "table") -> None:
        super().__init__({row.text: Choice(bool(row.accurate), int(row.confidence), int(row.familiarity))
                          for row in answers.itertuples()}, name=name)
        self.decision = decision
        column = "p_decide" if "p_decide" in answers.columns else "p_supports_norm"
        self.p_supports = {" ".join(str(row.text).split()): float(getattr(row, column))
                           for row in answers.itertuples()}

    def answer(self, text, rng):
        table = super().answer(text, rng)
        p = self.p_supports[" ".join(text.split())]
        accurate = bool(self.decision.decide(np.array([p]), np.array([rng.random()]))[0])
        return Choice(accurate, int(answer_confidence(np.array([p]), np.array([accurate]))[0]), table.familiarity)


def study_texts(study: Study) -> pd.DataFrame:
    """Every text a participant of `study` can be shown, once: its claims, then its checks."""
    claims = framed_claim_rows(framed_claim_ids=study_framed_claim_ids(study=study))
    claims = claims.assign(kind="claim", claim_id=claims["base_id"] + ":" + claims["framing"])
    checks = pd.DataFrame({"text": list(AttentionCheck.objects.filter(study=study).order_by("position")
                                        .values_list("text", flat=True))})
    checks = checks.assign(kind="attention check", framed_claim_id=None, claim_id="", framing="", true_label="")
    columns = ["text", "kind", "framed_claim_id", "claim_id", "framing", "true_label"]
    table = pd.concat([claims[columns], checks[columns]], ignore_index=True)
    # Two items with the same wording get the same answer (the bots look answers up by text).
    return table.drop_duplicates("text").reset_index(drop=True)


def persona_answer_table(*, persona: Persona, study: Study, batch_size: int = 32,
                         progress: ProgressCallback | None = None, model_and_tokenizer=None,
                         decision: DecisionRule | str | None = None, seed: int = 0,
                         calibration: dict | None = None) -> pd.DataFrame:
    """The persona's answer to every text of the study (ANSWER_COLUMNS).

    The claims' scores are the ones calibration uses (`study_item_scores`: a finished score
    table's rows where there is one, scored now otherwise); the attention checks are scored
    here, and every text's likelihood (familiarity) too.
    """
    from core.language_models import pick_device
    from modeling.persona_models import load_persona_model

    from .scoring import ClaimScorer, claim_log_likelihood

    if not persona.is_usable:
        raise PersonaRaterError(f"persona {persona.name!r} has status {persona.status}; only a "
                                "succeeded persona (or a base model) can take a study")
    texts = study_texts(study)
    if not (texts["kind"] == "claim").any():
        raise PersonaRaterError(f"study {study.name!r} has no items")
    model, tokenizer = model_and_tokenizer or load_persona_model(persona, device=pick_device())
    claim_scores, _ = study_item_scores(persona=persona, study=study, batch_size=batch_size,
                                        progress=progress, model_and_tokenizer=(model, tokenizer))
    scored = claim_scores.assign(framed_claim_id=claim_scores["framed_claim_id"].astype(int)).set_index(
        "framed_claim_id")
    table = texts.assign(p_supports_norm=texts["framed_claim_id"].map(scored["p_supports_norm"]),
                         predicted_label=texts["framed_claim_id"].map(scored["predicted_label"]))
    checks = table["kind"] == "attention check"
    if checks.any():
        check_scores = ClaimScorer(model, tokenizer, batch_size=batch_size).score(table.loc[checks, "text"].tolist())
        table.loc[checks, "p_supports_norm"] = check_scores.p_supports_norm
        table.loc[checks, "predicted_label"] = check_scores.predicted_label
    table["log_likelihood"] = claim_log_likelihood(model, tokenizer, table["text"].tolist(),
                                                   batch_size=min(batch_size, 16))
    table["p_decide"] = table["p_supports_norm"].astype(float)
    if calibration:
        from .calibration import apply_calibration

        for framing in table.loc[~checks, "framing"].unique():
            rows = ~checks & (table["framing"] == framing)
            table.loc[rows, "p_decide"] = apply_calibration(table.loc[rows, "p_supports_norm"].to_numpy(float),
                                                            framing, calibration)
    predicted = table["predicted_label"].to_numpy() if not calibration else \
        np.where(table["p_decide"].to_numpy() >= 0.5, "SUPPORTS", "REFUTES")
    answers = answers_from_scores(predicted, table["p_decide"].to_numpy(),
                                  table["log_likelihood"].to_numpy(), decision=decision, seed=seed)
    return pd.concat([table, answers], axis=1)[list(ANSWER_COLUMNS)]


@dataclass
class PersonaRating:
    """What `persona_rate_study` did: the bots' report, the answers, the participants."""

    report: BotsReport
    answers: pd.DataFrame
    id_prefix: str
    participants_marked: int


def persona_rate_study(*, persona: Persona, study: Study, base_url: str, participants: int | None = None,
                       concurrency: int = 4, timeout: float = 60.0, batch_size: int = 32,
                       progress: ProgressCallback | None = None, answers: pd.DataFrame | None = None,
                       seed: int = 0, decision: DecisionRule | str | None = None,
                       calibration: dict | None = None) -> PersonaRating:
    """The persona takes `study` over HTTP at `base_url` as `participants` simulated
    participants (default: one per batch of the study), then its participants are marked
    with source `persona` (their status note names the persona).

    The persona occupies rater slots like anyone: run it when the humans are done, or give
    the study a rater per batch more. A full study turns its bots away (reported, not an
    error). Participant ids are ``persona<id>-<random>-00000``, ...

    ``decision``: the persona's decision rule (argmax by default, every participant giving the
    table's answers; a sampling rule draws each participant's answers from its own stream).
    ``calibration``: a calibration's parameters (``Calibration.result["parameters"]``): the
    claims' answers are decided from the calibrated P(SUPPORTS), by ``sample:1:1`` unless
    ``decision`` names a rule.
    """
    rule = parse_decision(decision if decision is not None or not calibration else "sample:1:1")
    if participants is None:
        participants = Batch.objects.filter(study=study).count()
    if participants < 0:
        raise PersonaRaterError("participants must be 0 or more")
    if answers is None:
        answers = persona_answer_table(persona=persona, study=study, batch_size=batch_size, progress=progress,
                                       decision=rule, seed=seed, calibration=calibration)
    if rule.samples:
        policy = SampledAnswerPolicy(answers, rule, name=f"persona {persona.name} ({rule.text()})")
    else:
        policy = AnswerTablePolicy({row.text: Choice(bool(row.accurate), int(row.confidence), int(row.familiarity))
                                    for row in answers.itertuples()}, name=f"persona {persona.name}")
    prefix = f"persona{persona.pk}-{secrets.token_hex(3)}-"
    report = run_bots(base_url=base_url, study_id=study.pk, participants=participants,
                      concurrency=concurrency, policy=policy,
                      seed=seed, id_prefix=prefix, timeout=timeout)
    marked = Participant.objects.filter(study=study, external_id__startswith=prefix).update(
        source=Participant.Source.PERSONA, status_note=f"persona {persona.name!r} (id {persona.pk})"[:300])
    return PersonaRating(report=report, answers=answers, id_prefix=prefix, participants_marked=marked)
